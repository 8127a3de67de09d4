"""Expected training-step results of the study models, computed by PyTorch in float64 on
deterministic inputs and weights (detrand.py ≡ GlassboxReference.DeterministicTensors): the
mean cross-entropy loss against `target`, and the gradients of that loss for every parameter
and for the input, in training mode (batch norm on batch statistics).

    /tmp/torchvenv/bin/python tools/reference/gradient_fixtures.py Tests/GlassboxRuntimeTests/Fixtures/gradient

Inputs are as in forward_fixtures.py; `target` is the i64 input `input:target`, floor((u + 1)·2).
To keep fixtures small, each gradient is summarised by its sum, its L2 norm, its largest
magnitude and 24 sampled elements (at ⌊i·n/24⌋ of the flattened tensor).
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

import detrand
from forward_fixtures import inp
from models import BiLSTM, CNNLSTM, ResNet18, vgg19_features

torch.set_default_dtype(torch.float64)

STUDY = {
    "bilstm": ({"B": 2, "C": 5}, lambda: BiLSTM(5), ("mfcc", [2, 768, 128])),
    "bilstm_attention1d": ({"B": 2, "C": 5}, lambda: BiLSTM(5, attention=1), ("mfcc", [2, 768, 128])),
    "bilstm_attention2d": ({"B": 2, "C": 5}, lambda: BiLSTM(5, attention=64), ("mfcc", [2, 768, 128])),
    "resnet18": ({"B": 2, "C": 10, "H": 32, "W": 32}, lambda: ResNet18(10), ("image", [2, 3, 32, 32])),
    "resnet18_lstm": ({"B": 2, "T": 3, "C": 7, "H": 32, "W": 32}, lambda: CNNLSTM(ResNet18(classes=None), 7),
                      ("frames", [2, 3, 3, 32, 32])),
    "vgg19_lstm": ({"B": 1, "T": 2, "C": 7, "H": 32, "W": 32}, lambda: CNNLSTM(vgg19_features(), 7),
                   ("frames", [1, 2, 3, 32, 32])),
}

SAMPLES = 24


def summary(t):
    v = t.detach().reshape(-1)
    n = v.numel()
    idx = sorted({int(i * n / SAMPLES) for i in range(min(SAMPLES, n))})
    return {"shape": list(t.shape), "sum": float(v.sum()), "norm": float(v.norm()), "absmax": float(v.abs().max()),
            "indices": idx, "values": [float(v[i]) for i in idx]}


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name, (bindings, make, (input_name, shape)) in STUDY.items():
        torch.manual_seed(0)
        model = make().double().train()
        shapes = {k: (list(v.shape), "i64" if v.dtype == torch.int64 else "f32") for k, v in model.state_dict().items()}
        state = {k: torch.from_numpy(v if v.dtype == np.int64 else v.astype(np.float64))
                 for k, v in detrand.parameters(shapes).items()}
        model.load_state_dict(state)
        x = inp(input_name, shape).requires_grad_(True)
        target = inp("target", [shape[0]], "i64")
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        gradients = {k: summary(p.grad) for k, p in model.named_parameters()}
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump({"spec": name, "bindings": bindings, "loss": float(loss.detach()), "gradients": gradients,
                       "input_gradients": {input_name: summary(x.grad)}}, f)
        print(name, float(loss), len(gradients))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Tests/GlassboxRuntimeTests/Fixtures/gradient")
