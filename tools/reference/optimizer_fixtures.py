"""Optimizer, learning-rate schedule, gradient clipping and batch-norm running-statistics
fixtures from torch.optim / torch.nn on small tensors, for Tests/GlassboxTrainingTests.

    /tmp/torchvenv/bin/python tools/reference/optimizer_fixtures.py Tests/GlassboxTrainingTests/Fixtures/optimizers.json

Each optimizer case holds the initial parameters, the gradient given at every step and the
parameters PyTorch produces after every step (float32 throughout, as in training).
"""
import json
import sys

import numpy as np
import torch

SHAPES = [(3, 4), (5,)]
STEPS = 4


def floats(t):
    return [float(x) for x in t.detach().numpy().astype(np.float32).reshape(-1)]


def optimizer_case(name, make, clip=None):
    rng = np.random.default_rng(sum(map(ord, name)))
    params = [torch.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in SHAPES]
    initial = [floats(p) for p in params]
    opt = make(params)
    grads, after, norms = [], [], []
    for _ in range(STEPS):
        g = [torch.tensor(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]
        grads.append([floats(x) for x in g])
        for p, x in zip(params, g):
            p.grad = x.clone()
        if clip is not None:
            norms.append(float(torch.nn.utils.clip_grad_norm_(params, clip)))
        opt.step()
        after.append([floats(p) for p in params])
    return {"name": name, "shapes": [list(s) for s in SHAPES], "initial": initial, "gradients": grads,
            "after": after, "clip": clip, "norms": norms}


def schedules():
    out = []
    for name, make in [
        ("step", lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
        ("cosine", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=6, eta_min=1e-3)),
    ]:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        sched = make(opt)
        rates = []
        for _ in range(10):
            rates.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        out.append({"name": name, "base": 0.1, "rates": rates})
    return out


def batch_norm():
    rng = np.random.default_rng(7)
    bn = torch.nn.BatchNorm2d(3)
    bn.train()
    inputs, states = [], []
    for _ in range(2):
        x = torch.tensor(rng.standard_normal((2, 3, 2, 2)).astype(np.float32) * 2 + 1)
        bn(x)
        inputs.append(floats(x))
        states.append({"running_mean": floats(bn.running_mean), "running_var": floats(bn.running_var),
                       "num_batches_tracked": int(bn.num_batches_tracked)})
    return {"shape": [2, 3, 2, 2], "inputs": inputs, "states": states}


def main(path):
    torch.manual_seed(0)
    cases = [
        optimizer_case("sgd", lambda p: torch.optim.SGD(p, lr=0.05)),
        optimizer_case("sgd_momentum_wd", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2)),
        optimizer_case("sgd_momentum_clip", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), clip=0.5),
        optimizer_case("adam", lambda p: torch.optim.Adam(p, lr=1e-2)),
        optimizer_case("adam_wd", lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-2)),
        optimizer_case("adamw", lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1)),
        optimizer_case("adam_clip", lambda p: torch.optim.Adam(p, lr=1e-3), clip=1.0),
    ]
    with open(path, "w") as f:
        json.dump({"torch": torch.__version__, "optimizers": cases, "schedules": schedules(),
                   "batch_norm": batch_norm()}, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
