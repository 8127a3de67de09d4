#!/usr/bin/env python3
"""The CNN rows of issue 29 against ONNX Runtime: each row's forward timed by one or two glassbox
binaries (before and after a change) and by ONNX Runtime (tools/bench/ort_peer.py), at 1 and 2
threads, the three alternating within each round so that a busy machine's drift lands on all of
them. Prints the median over rounds of each side's median, each side's best thread count, ONNX
Runtime's best over Glassbox's best (above 1: Glassbox is faster), each side's peak resident
memory (MiB) at its best thread count (ONNX Runtime's: its Python process, numpy and onnxruntime
imported), and the lowest and highest of that ratio over the rounds. The last row is an ONNX model
run as it is by both (the onnx package's light_resnet50).

    tools/bench/ort_table.py --before /tmp/glassbox-main --rounds 3 --python /work/venv/bin/python
"""
import argparse
import json
import os
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORT = os.path.join(ROOT, "tools", "bench", "ort_peer.py")

# (spec, bindings, iterations per timing)
ROWS = [
    ("resnet18", {"B": 1, "C": 1000}, 30),
    ("resnet18", {"B": 8, "C": 1000}, 10),
    ("resnet18", {"B": 32, "C": 1000}, 5),
    ("resnet18_lstm", {"B": 1, "T": 16, "C": 51}, 10),
    ("bilstm_attention2d", {"B": 1, "C": 5}, 300),
    ("bilstm_attention2d", {"B": 32, "C": 5}, 30),
    # An ONNX model as it is (issue 26): glassbox bench and ONNX Runtime on the same file.
    ("onnx:light/light_resnet50.onnx", {"B": 1}, 20),
]


def onnx_test_data(python):
    """The onnx package's backend test data folder, as the bench venv's Python sees it."""
    code = "import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), 'backend', 'test', 'data'))"
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def run(cmd):
    """The median (ms) and peak resident memory (MiB) a bench or ort_peer.py run reports."""
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["medianMs"], result["peakRSSBytes"] / 2**20


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--before", help="a glassbox binary to time beside --after")
    p.add_argument("--after", default=os.path.join(ROOT, ".build", "release", "glassbox"))
    p.add_argument("--python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", help="spec name (onnx:light/light_resnet50.onnx for the ONNX row)")
    a = p.parse_args()
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    print(f"CPU: {model}, {os.cpu_count()} cores; load average at start {os.getloadavg()[0]:.1f}")
    sides = ([("before", a.before)] if a.before else []) + [("after", a.after), ("ort", None)]
    print(f"{'model':20} {'shape':10} " + " ".join(f"{s + ' ' + str(t) + 't':>10}" for s, _ in sides for t in (1, 2))
          + "  " + " ".join(f"{'ort/' + s:>10}" for s, _ in sides if s != "ort")
          + "  " + " ".join(f"{s + ' MiB':>10}" for s, _ in sides)
          + "  " + " ".join(f"ort/{s} per round" for s, _ in sides if s != "ort"))
    for name, bindings, iterations in ROWS:
        if a.only and a.only != name:
            continue
        if name.startswith("onnx:"):
            spec = os.path.join(onnx_test_data(a.python), name[len("onnx:"):])
            binds, peer = [], spec
        else:
            spec = os.path.join(ROOT, "graphs", name + ".graph")
            binds = sum((["--bind", f"{k}={v}"] for k, v in bindings.items()), [])
            peer = name
        times = {(s, t): [] for s, _ in sides for t in (1, 2)}
        memory = {(s, t): 0.0 for s, _ in sides for t in (1, 2)}
        for _ in range(a.rounds):
            for t in (1, 2):
                for side, binary in sides:
                    common = [*binds, "--threads", str(t), "--iterations", str(iterations)]
                    if binary:
                        ms, mib = run([binary, "bench", spec, *common, "--json"])
                    else:
                        ms, mib = run([a.python, ORT, peer, *common])
                    times[(side, t)].append(ms)
                    memory[(side, t)] = max(memory[(side, t)], mib)
        median = {k: statistics.median(v) for k, v in times.items()}
        # Each round's ratio of the best thread counts, so that a ratio's spread over rounds shows.
        rounds = [{s: min(times[(s, 1)][r], times[(s, 2)][r]) for s, _ in sides} for r in range(a.rounds)]
        spread = {s: (min(x["ort"] / x[s] for x in rounds), max(x["ort"] / x[s] for x in rounds))
                  for s, _ in sides if s != "ort"}
        best = {s: min(median[(s, 1)], median[(s, 2)]) for s, _ in sides}
        best_threads = {s: 1 if median[(s, 1)] <= median[(s, 2)] else 2 for s, _ in sides}
        shape = " ".join(f"{k}={v}" for k, v in bindings.items() if k in "BT")
        label = os.path.basename(name)[: -len(".onnx")] if name.startswith("onnx:") else name
        print(f"{label:20} {shape:10} " + " ".join(f"{median[(s, t)]:10.2f}" for s, _ in sides for t in (1, 2))
              + "  " + " ".join(f"{best['ort'] / best[s]:9.2f}x" for s, _ in sides if s != "ort")
              + "  " + " ".join(f"{memory[(s, best_threads[s])]:10.0f}" for s, _ in sides)
              + "  " + " ".join(f"{spread[s][0]:.2f}-{spread[s][1]:.2f}x" for s, _ in sides if s != "ort"), flush=True)
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
