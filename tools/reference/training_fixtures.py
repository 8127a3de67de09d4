"""Training steps in PyTorch (float64) for Tests/GlassboxTrainingTests/Fixtures:

bilstm_sgd_step.json — one training step of graphs/bilstm.graph (C = 3, B = 2) in PyTorch, float64: deterministic
weights and input (detrand.py ≡ GlassboxReference.DeterministicTensors), targets [0, 2],
mean cross-entropy, backward, then torch.optim.SGD(lr 0.5, momentum 0.9, weight_decay 1e-2)
.step(). The fixture holds the loss and every 37th element of each updated parameter (the
whole tensors would be 170 KB), with the stride.

cnn_bn_steps.json — two SGD steps (lr 0.2, momentum 0.9, weight decay 1e-3) of a tiny
CNN with batch norm (TINY_CNN below, the spec in TrainingStepTests.swift) on a deterministic
batch of 4, targets [0, 1, 1, 0]: every parameter and buffer (running statistics,
num_batches_tracked) after each step.

    /tmp/torchvenv/bin/python tools/reference/training_fixtures.py Tests/GlassboxTrainingTests/Fixtures
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

import detrand
from models import BiLSTM

STRIDE = 37


class TinyCNN(torch.nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, classes)

    def forward(self, image):
        x = torch.relu(self.bn(self.conv(image)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def cnn_bn_steps(path):
    torch.set_default_dtype(torch.float64)
    model = TinyCNN(2)
    shapes = {k: (list(v.shape), "i64" if v.dtype == torch.int64 else "f32") for k, v in model.state_dict().items()}
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float64) if v.dtype != np.int64 else v)
                           for k, v in detrand.parameters(shapes).items()})
    model.train()
    x = torch.from_numpy(detrand.tensor("input:image", [4, 2, 6, 6]).astype(np.float64))
    target = torch.tensor([0, 1, 1, 0])
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, weight_decay=1e-3)
    steps = []
    for _ in range(2):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
        steps.append({"loss": float(loss.detach()),
                      "state": {k: [float(v) for v in t.detach().numpy().reshape(-1)] for k, t in model.state_dict().items()}})
    with open(path, "w") as f:
        json.dump({"torch": torch.__version__, "steps": steps}, f, separators=(",", ":"))
        f.write("\n")


def main(path):
    torch.set_default_dtype(torch.float64)
    model = BiLSTM(3)
    shapes = {k: (list(v.shape), "f32") for k, v in model.state_dict().items()}
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in detrand.parameters(shapes).items()})
    model.train()
    x = torch.from_numpy(detrand.tensor("input:mfcc", [2, 768, 128]).astype(np.float64))
    target = torch.tensor([0, 2])
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-2)
    opt.zero_grad()
    loss = F.cross_entropy(model(x), target)
    loss.backward()
    opt.step()
    after = {k: [float(v) for v in p.detach().numpy().reshape(-1)[::STRIDE]] for k, p in model.named_parameters()}
    with open(path, "w") as f:
        json.dump({"torch": torch.__version__, "classes": 3, "batch": 2, "target": [0, 2], "lr": 0.5, "momentum": 0.9,
                   "weight_decay": 1e-2, "stride": STRIDE, "loss": float(loss.detach()), "after": after}, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main(os.path.join(sys.argv[1], "bilstm_sgd_step.json"))
    cnn_bn_steps(os.path.join(sys.argv[1], "cnn_bn_steps.json"))
