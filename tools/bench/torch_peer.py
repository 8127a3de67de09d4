"""The PyTorch peer of `glassbox bench`: the same model (tools/reference/models.py), shapes
and thread count, eager mode, inference (torch.inference_mode); with --train, one training
step (zero_grad, forward in training mode, mean cross-entropy, backward, SGD with momentum
0.9 step), as `glassbox bench --train` times it. Prints one JSON object like
`glassbox bench --json`.

    .venv/bin/python tools/bench/torch_peer.py bilstm --bind B=1 --bind C=5 --threads 1 [--train]
    .venv/bin/python tools/bench/torch_peer.py resnet18_lstm --bind C=51 --gradcam pruned   # forward + Grad-CAM

`--gradcam` times a forward together with Grad-CAM on the CNN's last stage for every frame
(a CNN-LSTM or resnet18), class = the prediction:
  full    what pytorch-grad-cam does (frames as the batch of a hooked `layer4`): a forward with
          autograd on, `score.backward()` through every parameter, channel weights, ReLU map;
  pruned  the hand-pruned version: the trunk up to `layer4` without autograd, the rest with it,
          `torch.autograd.grad(score, features)` only.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))

import torch  # noqa: E402

from models import BiLSTM, CNNLSTM, ResNet18, vgg19_features  # noqa: E402


def build(name, b):
    c = b.get("C", 5)
    if name == "bilstm":
        return BiLSTM(c), [(b.get("B", 1), 768, 128)]
    if name == "bilstm_attention1d":
        return BiLSTM(c, attention=1), [(b.get("B", 1), 768, 128)]
    if name == "bilstm_attention2d":
        return BiLSTM(c, attention=64), [(b.get("B", 1), 768, 128)]
    h, w = b.get("H", 224 if name == "resnet18" else 112), b.get("W", 224 if name == "resnet18" else 112)
    if name == "resnet18":
        return ResNet18(c), [(b.get("B", 1), 3, h, w)]
    cnn = ResNet18(classes=None) if name == "resnet18_lstm" else vgg19_features()
    return CNNLSTM(cnn, c), [(b.get("B", 1), b.get("T", 16), 3, h, w)]


def gradcam_step(model, mode):
    """A function of the input returning (logits, Grad-CAM maps [N, h, w]) for the predicted class."""
    cnn = model.cnn if isinstance(model, CNNLSTM) else model

    def trunk(x):
        return cnn.layer3(cnn.layer2(cnn.layer1(cnn.maxpool(cnn.relu(cnn.bn1(cnn.conv1(x)))))))

    def head(f, shape):
        v = torch.flatten(cnn.avgpool(f), 1)
        if isinstance(model, CNNLSTM):
            h, _ = model.lstm(v.reshape(shape[0], shape[1], -1))
            return model.classifier(h[:, -1])
        return cnn.fc(v)

    def cam(f, g):
        return torch.relu((g.mean(dim=(2, 3), keepdim=True) * f).sum(dim=1))

    def full(x):
        model.zero_grad(set_to_none=True)
        frames = x.reshape(-1, *x.shape[-3:])
        f = cnn.layer4(trunk(frames))
        f.retain_grad()
        logits = head(f, x.shape)
        logits.gather(1, logits.argmax(1, keepdim=True)).sum().backward()
        with torch.no_grad():
            return logits, cam(f, f.grad)

    def pruned(x):
        frames = x.reshape(-1, *x.shape[-3:])
        with torch.no_grad():
            below = trunk(frames)
        # Parameters below layer4's output need no gradient: only the features do.
        f = cnn.layer4(below).detach().requires_grad_(True)
        logits = head(f, x.shape)
        (g,) = torch.autograd.grad(logits.gather(1, logits.argmax(1, keepdim=True)).sum(), f)
        with torch.no_grad():
            return logits, cam(f, g)

    if mode == "pruned":
        for p in model.parameters():
            p.requires_grad_(False)
    return full if mode == "full" else pruned


def warm_up(a, step):
    """Runs `step` untimed `a.warmup` times, and on until `a.warmup_ms` have passed."""
    start, runs = time.perf_counter(), 0
    while runs < a.warmup or (time.perf_counter() - start) * 1e3 < a.warmup_ms:
        step()
        runs += 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("spec")
    p.add_argument("--bind", action="append", default=[])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    # As glassbox bench: keep warming up this long (a VM's cores take ~100 ms of load to
    # reach full speed).
    p.add_argument("--warmup-ms", type=float, default=250.0)
    p.add_argument("--gradcam", choices=["none", "full", "pruned"], default="none")
    p.add_argument("--train", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    bindings = {k: int(v) for k, v in (x.split("=") for x in a.bind)}
    model, shapes = build(os.path.basename(a.spec).removesuffix(".graph"), bindings)
    model.eval()
    inputs = [torch.randn(*s) for s in shapes]
    samples = []
    if a.gradcam != "none":
        step = gradcam_step(model, a.gradcam)
        warm_up(a, lambda: step(*inputs))
        for _ in range(a.iterations):
            start = time.perf_counter()
            step(*inputs)
            samples.append((time.perf_counter() - start) * 1e3)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({"medianMs": statistics.median(samples), "minMs": min(samples), "maxMs": max(samples),
                          "peakRSSBytes": peak, "threads": a.threads, "iterations": a.iterations, "gradcam": a.gradcam}))
        return
    if a.train:
        model.train()
        classes = bindings.get("C", 5)
        target = torch.randint(0, classes, (shapes[0][0],))
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def train_step():
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(*inputs), target)
            loss.backward()
            opt.step()

        warm_up(a, train_step)
        for _ in range(a.iterations):
            start = time.perf_counter()
            train_step()
            samples.append((time.perf_counter() - start) * 1e3)
    else:
        with torch.inference_mode():
            warm_up(a, lambda: model(*inputs))
            for _ in range(a.iterations):
                start = time.perf_counter()
                model(*inputs)
                samples.append((time.perf_counter() - start) * 1e3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"medianMs": statistics.median(samples), "minMs": min(samples), "maxMs": max(samples),
                      "peakRSSBytes": peak, "threads": a.threads, "iterations": a.iterations, "train": a.train}))


if __name__ == "__main__":
    main()
