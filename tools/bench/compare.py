#!/usr/bin/env python3
"""`make bench`: Glassbox against PyTorch eager and ONNX Runtime on the same shapes and thread
counts, in one run. Prints each side's median (ms) at 1 and 2 threads, the speed-ups (the
peer's best / Glassbox's best) and peak resident memory; the `train` rows time one training
step (forward, backward, SGD-with-momentum update) against PyTorch (ONNX Runtime does not
train). ONNX Runtime runs the twins exported with torch.onnx.export (tools/bench/ort_peer.py).

Each row's timings run in rounds (--rounds, default 3), every side and thread count once per
round, so that the drift of a shared machine's speed (this VM's medians move by 20% over
minutes) lands on every side rather than on whichever ran during a slow spell. A median printed
is the median over rounds of each round's median; `ort range` is the lowest and highest over
rounds of ONNX Runtime's best over Glassbox's best.

    tools/bench/compare.py [--iterations 30] [--rounds 3] [--python .venv/bin/python] [--only bilstm]
                           [--no-train | --train-only]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GLASSBOX = os.path.join(ROOT, ".build", "release", "glassbox")
PEER = os.path.join(ROOT, "tools", "bench", "torch_peer.py")
ORT = os.path.join(ROOT, "tools", "bench", "ort_peer.py")

CASES = [
    ("bilstm", {"B": 1, "C": 5}), ("bilstm", {"B": 32, "C": 5}),
    ("bilstm_attention1d", {"B": 1, "C": 5}), ("bilstm_attention1d", {"B": 32, "C": 5}),
    ("bilstm_attention2d", {"B": 1, "C": 5}), ("bilstm_attention2d", {"B": 32, "C": 5}),
    ("resnet18_lstm", {"B": 1, "T": 16, "C": 51}),
    ("vgg19_lstm", {"B": 1, "T": 16, "C": 51}),
    ("resnet18", {"B": 1, "C": 1000}), ("resnet18", {"B": 8, "C": 1000}), ("resnet18", {"B": 32, "C": 1000}),
]

# One training step each (forward, backward, update).
TRAIN_CASES = [
    ("bilstm", {"B": 32, "C": 5}),
    ("bilstm_attention1d", {"B": 32, "C": 5}),
    ("bilstm_attention2d", {"B": 32, "C": 5}),
    ("resnet18_lstm", {"B": 4, "T": 16, "C": 51}),
]


# Grad-CAM for every frame: a forward with the tap against the forward alone, pytorch-grad-cam's
# work (frames as the batch, backward through every parameter) and a hand-pruned PyTorch version.
GRADCAM_CASES = [("resnet18_lstm", {"B": 1, "T": 16, "C": 51}, "gradcam")]

# ONNX models imported as they are: glassbox bench on the .onnx file against ONNX Runtime on
# the same file (the onnx package's light_resnet50, batch 1, when the bench venv has onnx).
ONNX_CASES = [("light_resnet50", os.path.join("light", "light_resnet50.onnx"))]

# Attention taps (no backward): what reading the weights out adds to a forward.
ATTENTION_CASES = [("bilstm_attention1d", {"B": 1, "C": 5}, "attention"), ("bilstm_attention2d", {"B": 1, "C": 5}, "attention"),
                   ("bilstm_attention2d", {"B": 32, "C": 5}, "attention")]


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def rounds(commands, count):
    """Runs every command once per round, in order, for `count` rounds. Returns, per key, its
    runs' reports with `medianMs` replaced by the median over rounds and the largest peak RSS,
    and each round's medians (`perRound`), so that ratios can be taken round by round."""
    reports = {key: [] for key in commands}
    for _ in range(max(count, 1)):
        for key, cmd in commands.items():
            reports[key].append(run(cmd))
    merged = {}
    for key, rs in reports.items():
        merged[key] = dict(rs[0], medianMs=statistics.median(r["medianMs"] for r in rs),
                           peakRSSBytes=max(r["peakRSSBytes"] for r in rs), perRound=[r["medianMs"] for r in rs])
    return merged


def best_of(results, side):
    """The side's report at its faster thread count."""
    return min((results[(side, t)] for t in (1, 2)), key=lambda r: r["medianMs"])


def ratio_range(results, peer, side="gb"):
    """The lowest and highest over rounds of the peer's best thread count over the side's."""
    n = len(results[(side, 1)]["perRound"])
    ratios = [min(results[(peer, t)]["perRound"][i] for t in (1, 2)) / min(results[(side, t)]["perRound"][i] for t in (1, 2))
              for i in range(n)]
    return f"{min(ratios):.2f}-{max(ratios):.2f}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per row (see above)")
    p.add_argument("--python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    p.add_argument("--only", default=None)
    p.add_argument("--no-train", action="store_true", help="skip the training rows")
    p.add_argument("--train-only", action="store_true", help="only the training rows")
    a = p.parse_args()
    if not os.path.exists(GLASSBOX):
        raise SystemExit("build first: swift build -c release --product glassbox")
    print(f"{'model':22} {'shape':14} {'gb 1t':>8} {'gb 2t':>8} {'pt 1t':>8} {'pt 2t':>8} {'ort 1t':>8} {'ort 2t':>8} "
          f"{'vs pt':>7} {'vs ort':>7} {'gb MiB':>7} {'pt MiB':>7} {'ort MiB':>7} {'pt range':>11} {'ort range':>11}")
    cases = ([] if a.train_only else [(n, b, False) for n, b in CASES]) + \
        ([] if a.no_train else [(n, b, True) for n, b in TRAIN_CASES])
    for name, bindings, train in cases:
        if a.only and a.only != name:
            continue
        mode = ["--train"] if train else []
        binds = sum((["--bind", f"{k}={v}"] for k, v in bindings.items()), [])
        spec = os.path.join(ROOT, "graphs", name + ".graph")
        if train or "T" in bindings or bindings.get("B", 1) != 1:
            iters = max(5, a.iterations // 3)
        elif name == "resnet18":
            iters = a.iterations
        else:
            # Sub-millisecond forwards: ten times the runs (thirty span 15 ms, where one slow
            # moment of the VM moves the median).
            iters = a.iterations * 10
        common = [*binds, "--iterations", str(iters)]
        commands = {}
        for t in (1, 2):
            commands[("gb", t)] = [GLASSBOX, "bench", spec, *common, "--threads", str(t), "--json", *mode]
            commands[("pt", t)] = [a.python, PEER, name, *common, "--threads", str(t), *mode]
            if not train:
                commands[("ort", t)] = [a.python, ORT, name, *common, "--threads", str(t)]
        r = rounds(commands, a.rounds)
        best_gb, best_pt = best_of(r, "gb"), best_of(r, "pt")
        best_ort = None if train else best_of(r, "ort")
        shape = " ".join(f"{k}={v}" for k, v in bindings.items() if k in "BT") + (" train" if train else "")
        o1, o2 = (f"{r[('ort', 1)]['medianMs']:8.2f}", f"{r[('ort', 2)]['medianMs']:8.2f}") if best_ort \
            else (f"{'-':>8}", f"{'-':>8}")
        vs_ort = f"{best_ort['medianMs'] / best_gb['medianMs']:6.2f}x" if best_ort else f"{'-':>7}"
        ort_mib = f"{best_ort['peakRSSBytes'] / 2**20:7.0f}" if best_ort else f"{'-':>7}"
        print(f"{name:22} {shape:14} {r[('gb', 1)]['medianMs']:8.2f} {r[('gb', 2)]['medianMs']:8.2f} "
              f"{r[('pt', 1)]['medianMs']:8.2f} {r[('pt', 2)]['medianMs']:8.2f} {o1} {o2} "
              f"{best_pt['medianMs'] / best_gb['medianMs']:6.2f}x {vs_ort} "
              f"{best_gb['peakRSSBytes'] / 2**20:7.0f} {best_pt['peakRSSBytes'] / 2**20:7.0f} {ort_mib} "
              f"{ratio_range(r, 'pt'):>11} {ratio_range(r, 'ort') if best_ort else '-':>11}", flush=True)
    print(f"\n{'grad-cam':22} {'shape':14} {'gb fwd':>8} {'gb+tap':>8} {'tap/fwd':>8} {'pt full':>8} {'pt prun':>8} "
          f"{'vs full':>8} {'vs prun':>8}")
    for name, bindings, tap in GRADCAM_CASES:
        if a.only and a.only != name:
            continue
        binds = sum((["--bind", f"{k}={v}"] for k, v in bindings.items()), [])
        spec = os.path.join(ROOT, "graphs", name + ".graph")
        iters = max(5, a.iterations // 3)
        best = lambda rows: min(rows, key=lambda r: r["medianMs"])["medianMs"]  # noqa: E731
        fwd = best([run([GLASSBOX, "bench", spec, *binds, "--threads", str(t), "--iterations", str(iters), "--json"]) for t in (1, 2)])
        gb = best([run([GLASSBOX, "bench", spec, *binds, "--tap", tap, "--threads", str(t), "--iterations", str(iters), "--json"])
                   for t in (1, 2)])
        full = best([run([a.python, PEER, name, *binds, "--gradcam", "full", "--threads", str(t), "--iterations", str(iters)])
                     for t in (1, 2)])
        pruned = best([run([a.python, PEER, name, *binds, "--gradcam", "pruned", "--threads", str(t), "--iterations", str(iters)])
                       for t in (1, 2)])
        shape = " ".join(f"{k}={v}" for k, v in bindings.items() if k in "BT")
        print(f"{name:22} {shape:14} {fwd:8.2f} {gb:8.2f} {gb / fwd:7.2f}x {full:8.2f} {pruned:8.2f} {full / gb:7.2f}x "
              f"{pruned / gb:7.2f}x", flush=True)

    print(f"\n{'imported onnx':22} {'shape':14} {'gb 1t':>8} {'gb 2t':>8} {'ort 1t':>8} {'ort 2t':>8} {'vs ort':>7} {'ort range':>11}")
    data = subprocess.run([a.python, "-c", "import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), "
                           "'backend', 'test', 'data'))"], capture_output=True, text=True).stdout.strip()
    for name, relative in ONNX_CASES:
        path = os.path.join(data, relative)
        if (a.only and a.only != name) or not os.path.exists(path):
            continue
        commands = {}
        for t in (1, 2):
            commands[("gb", t)] = [GLASSBOX, "bench", path, "--threads", str(t), "--iterations", str(a.iterations), "--json"]
            commands[("ort", t)] = [a.python, ORT, path, "--threads", str(t), "--iterations", str(a.iterations)]
        r = rounds(commands, a.rounds)
        best_gb, best_ort = best_of(r, "gb")["medianMs"], best_of(r, "ort")["medianMs"]
        print(f"{name:22} {'B=1':14} {r[('gb', 1)]['medianMs']:8.2f} {r[('gb', 2)]['medianMs']:8.2f} "
              f"{r[('ort', 1)]['medianMs']:8.2f} {r[('ort', 2)]['medianMs']:8.2f} {best_ort / best_gb:6.2f}x "
              f"{ratio_range(r, 'ort'):>11}", flush=True)

    print(f"\n{'attention tap':22} {'shape':14} {'gb fwd':>8} {'gb+tap':>8} {'tap/fwd':>8}")
    for name, bindings, tap in ATTENTION_CASES:
        if a.only and a.only != name:
            continue
        binds = sum((["--bind", f"{k}={v}"] for k, v in bindings.items()), [])
        spec = os.path.join(ROOT, "graphs", name + ".graph")
        # Interleaved, best of each side's thread counts, so drift in the machine's speed
        # lands on both.
        fwd, gb = [], []
        iters = str(a.iterations * 10 if bindings["B"] == 1 else a.iterations)  # as the B = 1 rows above
        for t in (1, 2):
            fwd.append(run([GLASSBOX, "bench", spec, *binds, "--threads", str(t), "--iterations", iters, "--json"]))
            gb.append(run([GLASSBOX, "bench", spec, *binds, "--tap", tap, "--threads", str(t), "--iterations", iters, "--json"]))
        f = min(r["medianMs"] for r in fwd)
        g = min(r["medianMs"] for r in gb)
        shape = " ".join(f"{k}={v}" for k, v in bindings.items() if k in "BT")
        print(f"{name:22} {shape:14} {f:8.2f} {g:8.2f} {g / f:7.3f}x", flush=True)


if __name__ == "__main__":
    sys.exit(main())
