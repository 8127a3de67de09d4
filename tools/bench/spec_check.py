#!/usr/bin/env python3
"""Times `glassbox check` (read, parse, elaborate, shape-check) on the study specs and on
generated 10,000-node specs; prints the median of N runs per spec.

    make release && tools/bench/spec_check.py [--runs 20]
"""
import argparse
import os
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".build", "release", "glassbox")


def chain_spec(n):
    """n elementwise nodes, each using the two before it (values reused on purpose)."""
    lines = ["  v0 = relu(x)", "  v1 = tanh(v0)"]
    lines += [f"  v{i} = add(v{i - 1}, v{i - 2})" for i in range(2, n)]
    return "graph chain(x: f32[B, 256]) -> (y: f32[B, 256]) {\n" + "\n".join(lines) + f"\n  y = v{n - 1}\n}}\n"


def residual_spec(blocks):
    """`blocks` instances of a 5-node residual block with layer parameters (5 nodes each)."""
    body = [f"  h{i + 1} = res(h{i}) @block{i}" for i in range(blocks)]
    return ("graph deep(x: f32[B, 64]) -> (y: f32[B, 64]) {\n  h0 = relu(x)\n" + "\n".join(body)
            + f"\n  y = h{blocks}\n}}\n"
            + "block res(x) {\n  a = relu(linear(x, out: 64))\n  b = linear(a, out: 64)\n"
            + "  return relu(add(b, x))\n}\n")


def time_check(path, runs):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        bind = ["--bind", "C=5"] if "/graphs/" in path else []
        done = subprocess.run([BIN, "check", path] + bind, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
        samples.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{path}: check failed:\n{done.stderr.decode()}")
    return statistics.median(samples), min(samples), max(samples)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if not os.path.exists(BIN):
        raise SystemExit(f"{BIN} is missing: run `make release` first")
    specs = [os.path.join(ROOT, "graphs", f) for f in sorted(os.listdir(os.path.join(ROOT, "graphs")))]
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in [("chain_10000.graph", chain_spec(10_000)), ("residual_2000x5.graph", residual_spec(2_000))]:
            path = os.path.join(tmp, name)
            with open(path, "w") as f:
                f.write(text)
            specs.append(path)
        print(f"{'spec':32} {'median ms':>10} {'min ms':>8} {'max ms':>8}   (process start included, {args.runs} runs)")
        for path in specs:
            median, lo, hi = time_check(path, args.runs)
            print(f"{os.path.basename(path):32} {median * 1e3:10.1f} {lo * 1e3:8.1f} {hi * 1e3:8.1f}")


if __name__ == "__main__":
    main()
