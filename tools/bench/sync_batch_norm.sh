#!/usr/bin/env bash
# What --sync-batch-norm costs a data-parallel training step: resnet18_lstm (B=4, T=16; 20
# batch norms over 32 frames per process) as 2 processes × 1 thread (mpirun, shared memory),
# the all-reduce overlapped with the backward pass, with and without the option; the two
# alternate, ROUNDS times, because the machine is shared. Each batch norm then sums twice in
# the forward pass and once in the backward, each sum waiting for the other process to get
# there.
#   tools/bench/sync_batch_norm.sh [ROUNDS]      (after swift build -c release --product glassbox)
# Writes out/sync_batch_norm/resnet18_lstm.json (one bench result per line) and prints, per
# configuration, the range over runs of each run's median step, all-reduce share and batch
# norms' sums.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=.build/release/glassbox
ROUNDS=${1:-5}
OUT=out/sync_batch_norm
mkdir -p "$OUT"
MPI=(mpirun --allow-run-as-root --oversubscribe --mca btl self,vader --mca oob_tcp_if_include lo -np 2)
ARGS=(bench graphs/resnet18_lstm.graph --bind B=4 --bind T=16 --bind C=51 --train --iterations 8 --json --threads 1)

rm -f "$OUT/resnet18_lstm.json"
lscpu | grep -E "Model name|^CPU\(s\)" > "$OUT/cpu.txt"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round" >&2
  "${MPI[@]}" "$B" "${ARGS[@]}" | sed 's/^{/{"config":"2x1",/' >> "$OUT/resnet18_lstm.json"
  "${MPI[@]}" "$B" "${ARGS[@]}" --sync-batch-norm \
    | sed 's/^{/{"config":"2x1 --sync-batch-norm",/' >> "$OUT/resnet18_lstm.json"
done
cat "$OUT/cpu.txt"
python3 - "$OUT/resnet18_lstm.json" <<'EOF'
import json, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs.setdefault(r["config"], []).append(r)
for config, rs in runs.items():
    def span(key):
        values = sorted(r[key] for r in rs)
        return f"{values[0]:.1f}–{values[-1]:.1f} ms"
    print(f"{config} ({len(rs)} runs): step {span('medianMs')}, all-reduce {span('allReduceMs')}, "
          f"of it the batch norms' sums {span('batchNormSumMs')}")
EOF
