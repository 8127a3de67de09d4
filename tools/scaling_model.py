#!/usr/bin/env python3
"""Glassbox's data-parallel training on N nodes, on paper: all-reduce bytes, ring all-reduce
time and predicted scaling efficiency, from a step measured on this machine.

    tools/scaling_model.py out/data_parallel/resnet18_lstm.trace.jsonl \
        out/data_parallel/bilstm_attention2d.trace.jsonl

Each trace is `glassbox bench SPEC --train --trace FILE` run as one MPI process (what
tools/bench/data_parallel.sh writes): per step, when the backward pass ended, and when each
gradient was complete and how many bytes it has. The median step stands for a node's step.

Assumptions (each a flag):
- Weak scaling: every node runs the measured local batch (the global batch grows with N), so
  the compute per step is the measured one; a node `--node-speed` times faster divides it.
- Gradients are f32; every trainable parameter's gradient is summed every step
  (4 × parameters bytes). Buckets are filled in the order the backward pass completes the
  gradients, up to `--bucket-mb` (Glassbox's default, 8 MiB), and summed one after another.
- Ring all-reduce of S bytes over N nodes: 2(N−1) rounds, each moving S/N bytes over every
  link and paying a latency α: T = 2(N−1)·α + 2·(N−1)/N · S / (η·bandwidth). α = 25 µs (TCP
  over Ethernet), η = 0.85 of the line rate achieved by TCP.
- Without overlap a step is compute + all-reduces. With overlap a bucket starts when it is
  complete and the one before it has finished; the step ends when the backward pass and the
  last bucket have, then runs the update. Open MPI moves a non-blocking all-reduce only inside
  MPI calls, so a round of the ring can start only at one. Two cases:
  "at gradients": MPI is called as each gradient completes (`--progress-us 0`): during the
  backward pass a round starts at the next gradient's completion;
  "progress thread": Glassbox's default, a thread calls MPI every `--progress-us` (100 µs):
  a round starts at the next tick. After the backward pass, rounds follow one another.
  The progress thread's own CPU time and the copies into the buckets are in the measured step
  only as far as the trace's one-process run has them (its buckets, no peers).
Printed beside the published figures the issue cites (Horovod, PyTorch DDP).
"""
import argparse
import json
import math
import statistics

# Trainable parameters (glassbox check graphs/NAME.graph --bind C=… --json: parameterCount).
PARAMETERS = {
    "bilstm": (41_797, "C=5"),
    "bilstm_attention1d": (41_862, "C=5"),
    "bilstm_attention2d": (45_957, "C=5"),
    "resnet18_lstm": (11_978_099, "C=51"),
    "vgg19_lstm": (20_825_971, "C=51"),
}

PUBLISHED = [
    ("Horovod, ResNet-101 and Inception V3, 512 GPUs (Sergeev & Del Balso 2018)", "90%"),
    ("Horovod, VGG-16, 512 GPUs", "68%"),
    ("PyTorch DDP, ResNet-50, 16 GPUs, buckets overlapped with backward (Li et al. 2020)", "93%"),
]


def ring_seconds(nodes, size_bytes, gbits, alpha, efficiency):
    if nodes <= 1 or size_bytes == 0:
        return 0.0
    bandwidth = gbits * 1e9 / 8 * efficiency
    return 2 * (nodes - 1) * alpha + 2 * (nodes - 1) / nodes * size_bytes / bandwidth


def buckets_of(arrivals, bucket_bytes):
    """(ready time, bytes) per bucket from gradients in the order they completed."""
    out = []
    for t, size in arrivals:
        if not out or (out[-1][1] > 0 and out[-1][1] + size > bucket_bytes):
            out.append([t, 0])
        out[-1][0] = t
        out[-1][1] += size
    return [tuple(b) for b in out]


def step_seconds(step, nodes, gbits, args, mode):
    """One step's seconds on `nodes` nodes: mode 'none', 'gradients' or 'thread'."""
    scale = 1 / args.node_speed
    compute = step["stepMs"] / 1000 * scale
    backward_end = step["backwardEndMs"] / 1000 * scale
    update = compute - backward_end
    arrivals = [(t / 1000 * scale, b) for t, b in step["gradients"]]
    buckets = buckets_of(arrivals, args.bucket_mb * 2**20)
    times = [ring_seconds(nodes, b, gbits, args.alpha, args.efficiency) for _, b in buckets]
    if mode == "none":
        return compute + sum(times)
    progress = sorted(t for t, _ in arrivals)
    tick = args.progress_us * 1e-6
    free = 0.0
    for (ready, size), total in zip(buckets, times):
        start = max(ready, free)
        rounds = 2 * (nodes - 1)
        per_round = total / rounds if total else 0
        t = start
        for _ in range(rounds if total else 0):
            if t < backward_end:  # a round starts at the next MPI call
                if mode == "gradients":
                    t = next((p for p in progress if p >= t), backward_end)
                else:
                    t = math.ceil(t / tick) * tick
            t += per_round
        free = t
    return max(backward_end, free) + update


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("traces", nargs="+", help="bench --train --trace files, named NAME.trace.jsonl")
    p.add_argument("--nodes", type=int, nargs="+", default=[8, 32, 128])
    p.add_argument("--gbits", type=float, nargs="+", default=[10, 25, 100])
    p.add_argument("--alpha", type=float, default=25e-6, help="latency per ring round, seconds")
    p.add_argument("--efficiency", type=float, default=0.85, help="fraction of the line rate achieved")
    p.add_argument("--bucket-mb", type=float, default=8.0)
    p.add_argument("--node-speed", type=float, default=1.0, help="node compute speed relative to this machine")
    p.add_argument("--progress-us", type=float, default=100.0, help="the progress thread's period, microseconds")
    p.add_argument("--speeds", type=float, nargs="+", default=[2, 4, 8, 16],
                   help="node speeds for the sensitivity rows")
    p.add_argument("--sensitivity-at", type=float, nargs=2, default=[32, 25], metavar=("NODES", "GBITS"))
    args = p.parse_args()

    print("All-reduce bytes per step (f32 gradients of every trainable parameter):")
    for name, (count, binding) in PARAMETERS.items():
        print(f"  {name:20s} {count:>12,d} parameters ({binding})  {4 * count / 1e6:8.2f} MB"
              f" = {4 * count / 2**20:7.2f} MiB")
    print(f"\nRing all-reduce of the whole gradient, one bucket (α = {args.alpha * 1e6:.0f} µs, "
          f"η = {args.efficiency:.2f}), milliseconds:")
    header = "  " + f"{'model':20s}" + "".join(f"{f'N={n} {g:g}G':>13s}" for n in args.nodes for g in args.gbits)
    print(header)
    for name, (count, _) in PARAMETERS.items():
        cells = "".join(f"{1000 * ring_seconds(n, 4 * count, g, args.alpha, args.efficiency):13.2f}"
                        for n in args.nodes for g in args.gbits)
        print(f"  {name:20s}{cells}")

    for path in args.traces:
        name = path.split("/")[-1].split(".")[0]
        steps = [json.loads(line) for line in open(path) if line.strip()]
        steps.sort(key=lambda s: s["stepMs"])
        step = steps[len(steps) // 2]
        grads = sum(b for _, b in step["gradients"])
        early = sum(b for t, b in step["gradients"] if t <= step["backwardEndMs"] * 0.75)
        print(f"\n{name}: measured step {step['stepMs']:.0f} ms (median of {len(steps)}; this machine, one process),"
              f" backward pass ends at {step['backwardEndMs']:.0f} ms; {grads / 2**20:.1f} MiB of gradients,"
              f" {100 * early / max(grads, 1):.0f}% of them complete by 3/4 of the step's backward end;"
              f" node speed ×{args.node_speed:g}")
        print(f"  {'nodes':>6s} {'Gbit/s':>7s} {'no overlap':>11s} {'at gradients':>13s} {'progress thread':>16s}")
        base = step["stepMs"] / 1000 / args.node_speed
        for n in args.nodes:
            for g in args.gbits:
                cells = [100 * base / step_seconds(step, n, g, args, m) for m in ("none", "gradients", "thread")]
                print(f"  {n:6d} {g:7g} {cells[0]:10.1f}% {cells[1]:12.1f}% {cells[2]:15.1f}%")
        # Faster nodes shrink the compute the all-reduce hides behind.
        n, g = args.sensitivity_at
        print(f"  at {n:g} nodes, {g:g} Gbit/s, with nodes faster than this machine:")
        for speed in args.speeds:
            faster = argparse.Namespace(**{**vars(args), "node_speed": args.node_speed * speed})
            base = step["stepMs"] / 1000 / faster.node_speed
            cells = [100 * base / step_seconds(step, int(n), g, faster, m) for m in ("none", "gradients", "thread")]
            print(f"  {'×' + format(speed, 'g'):>14s} {cells[0]:10.1f}% {cells[1]:12.1f}% {cells[2]:15.1f}%")
    print("\nPublished scaling efficiencies, for comparison:")
    for what, figure in PUBLISHED:
        print(f"  {figure:>4s}  {what}")


if __name__ == "__main__":
    main()
