#!/usr/bin/env python3
"""Explanation methods on resnet18 at B=1 (224×224, 1000 classes, the predicted class): Glassbox's
taps against the peer libraries on the same machine, weights (detrand.py ≡ the deterministic
weights `glassbox bench` gives a spec) and thread count, alternating the two sides run by run.

    /work/venv/bin/python tools/bench/explain_methods.py [--rounds 5] [--threads 2] [--only ig,smoothgrad,scorecam]

  ig          `ig(image, steps: 32)`            vs Captum IntegratedGradients(n_steps=32, internal_batch_size=32)
  smoothgrad  `smoothgrad(image, samples: 16)`  vs Captum NoiseTunnel(Saliency), nt_samples=16, stdevs=0.15, abs=False
  scorecam    `scorecam(layer4)`                vs pytorch-grad-cam ScoreCAM (batch_size 16, its default; 512
                                                   masked forwards)
plus Glassbox's forward at B=1, and its forward with the input gradient (`saliency`) at B=32, what
IG-32 costs at best (one B=32 forward and backward). Each side runs as its own process per round
(`glassbox bench --json`, this script with --peer) so that neither warms the other's caches;
the table gives each side's median over rounds and the range of the rounds' medians.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GLASSBOX = os.path.join(ROOT, ".build", "release", "glassbox")
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))

TAPS = {
    "ig": "tap ig = ig(image, steps: 32)",
    "smoothgrad": "tap smoothgrad = smoothgrad(image, samples: 16, stdev: 0.15)",
    "scorecam": "tap scorecam = scorecam(layer4)",
    "saliency": "tap saliency = saliency(image)",
}


def spec_with_taps(directory):
    """graphs/resnet18.graph with the benchmark's taps added to its graph body."""
    with open(os.path.join(ROOT, "graphs", "resnet18.graph")) as f:
        text = f.read()
    end = text.index("\n}\n")
    text = text[:end] + "\n" + "\n".join("  " + t for t in TAPS.values()) + text[end:]
    path = os.path.join(directory, "resnet18_explain.graph")
    with open(path, "w") as f:
        f.write(text)
    return path


def glassbox(spec, tap, batch, threads, iterations):
    cmd = [GLASSBOX, "bench", spec, "--bind", f"B={batch}", "--bind", "C=1000", "--threads", str(threads),
           "--iterations", str(iterations), "--warmup", "1", "--json"] + (["--tap", tap] if tap else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["medianMs"]


def peer(method, threads, iterations):
    """One process of the peer: the median of `iterations` timed calls after one untimed call."""
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    import detrand
    from models import ResNet18
    model = ResNet18(1000)
    shapes = {k: (list(v.shape), "i64" if v.dtype == torch.int64 else "f32") for k, v in model.state_dict().items()}
    model.load_state_dict({k: torch.from_numpy(v) for k, v in detrand.parameters(shapes).items()})
    model.eval()
    x = torch.from_numpy(detrand.tensor("input:image", [1, 3, 224, 224]).astype(np.float32))
    with torch.no_grad():
        target = int(model(x).argmax(1))
    if method == "ig":
        from captum.attr import IntegratedGradients
        ig = IntegratedGradients(model)
        step = lambda: ig.attribute(x, target=target, n_steps=32, internal_batch_size=32)  # noqa: E731
    elif method == "smoothgrad":
        from captum.attr import NoiseTunnel, Saliency
        nt = NoiseTunnel(Saliency(model))
        step = lambda: nt.attribute(x, nt_type="smoothgrad", nt_samples=16, stdevs=0.15, target=target,  # noqa: E731
                                    abs=False)
    elif method == "scorecam":
        sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
        import explain_methods  # noqa: F401  (stubs torchvision and scikit-learn for pytorch-grad-cam)
        torch.set_default_dtype(torch.float32)  # explain_methods works in float64
        from pytorch_grad_cam import ScoreCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        import tqdm
        tqdm.tqdm = lambda it, **kw: it  # its progress bar, per call, is not part of the method
        import pytorch_grad_cam.score_cam as sc
        sc.tqdm.tqdm = tqdm.tqdm
        cam = ScoreCAM(model=model, target_layers=[model.layer4])
        step = lambda: cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])  # noqa: E731
    else:
        raise SystemExit(f"unknown method {method}")
    step()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        step()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", default="ig,smoothgrad,scorecam")
    p.add_argument("--peer", default=None, help=argparse.SUPPRESS)
    p.add_argument("--iterations", type=int, default=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.peer:
        print(json.dumps({"medianMs": peer(a.peer, a.threads, a.iterations)}))
        return
    if not os.path.exists(GLASSBOX):
        raise SystemExit("build first: swift build -c release --product glassbox")
    methods = a.only.split(",")
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; threads {a.threads}; {a.rounds} rounds, alternating")
    with tempfile.TemporaryDirectory() as d:
        spec = spec_with_taps(d)
        rows = [("forward B=1", lambda: glassbox(spec, None, 1, a.threads, 5), None),
                ("forward+input grad B=32", lambda: glassbox(spec, "saliency", 32, a.threads, 2), None)]
        for m in methods:
            iterations = 1 if m == "scorecam" else 3
            rows.append((m, lambda m=m, i=iterations: glassbox(spec, m, 1, a.threads, i),
                         lambda m=m, i=iterations: json.loads(subprocess.run(
                             [sys.executable, __file__, "--peer", m, "--threads", str(a.threads), "--iterations", str(i)],
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])["medianMs"]))
        print(f"{'method':26} {'glassbox ms (range)':>28} {'peer ms (range)':>28} {'speed-up':>9}")
        for name, ours, theirs in rows:
            gb, pt = [], []
            for _ in range(a.rounds):
                gb.append(ours())
                if theirs:
                    pt.append(theirs())
            g = statistics.median(gb)
            line = f"{name:26} {g:10.1f} ({min(gb):7.1f}–{max(gb):7.1f})"
            if pt:
                t = statistics.median(pt)
                line += f" {t:10.1f} ({min(pt):7.1f}–{max(pt):7.1f}) {t / g:8.2f}x"
            print(line, flush=True)


if __name__ == "__main__":
    main()
