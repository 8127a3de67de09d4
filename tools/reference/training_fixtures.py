"""One training step of graphs/bilstm.graph (C = 3, B = 2) in PyTorch, float64: deterministic
weights and input (detrand.py ≡ GlassboxReference.DeterministicTensors), targets [0, 2],
mean cross-entropy, backward, then torch.optim.SGD(lr 0.5, momentum 0.9, weight_decay 1e-2)
.step(). The fixture holds the loss and every 37th element of each updated parameter (the
whole tensors would be 170 KB), with the stride.

    /tmp/torchvenv/bin/python tools/reference/training_fixtures.py Tests/GlassboxTrainingTests/Fixtures/bilstm_sgd_step.json
"""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

import detrand
from models import BiLSTM

STRIDE = 37


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
    main(sys.argv[1])
