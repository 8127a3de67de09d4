#!/usr/bin/env bash
# Data-parallel training steps on this machine: 1 process × 2 threads against 2 processes ×
# 1 thread (mpirun, shared memory), the same global batch, with the all-reduce overlapped with
# the backward pass (with and without the progress thread) and after it; the four alternate,
# ROUNDS times, because the machine is shared (mpirun binds each of the 2 processes to a core).
# Then one process's step timeline (mpirun -np 1 … --trace) for tools/scaling_model.py.
#   tools/bench/data_parallel.sh [ROUNDS]      (after swift build -c release --product glassbox)
# Writes out/data_parallel/*.json (one bench result per line) and *.trace.jsonl.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=.build/release/glassbox
ROUNDS=${1:-3}
OUT=out/data_parallel
mkdir -p "$OUT"
MPI=(mpirun --allow-run-as-root --oversubscribe --mca btl self,vader --mca oob_tcp_if_include lo)

run() {  # NAME ITERATIONS SPEC BINDINGS...
  local name=$1 iterations=$2 spec=$3
  shift 3
  local args=(bench "$spec" "$@" --train --iterations "$iterations" --json)
  for round in $(seq 1 "$ROUNDS"); do
    echo "$name round $round" >&2
    "$B" "${args[@]}" --threads 2 | sed 's/^{/{"config":"1x2",/' >> "$OUT/$name.json"
    "${MPI[@]}" -np 2 "$B" "${args[@]}" --threads 1 | sed 's/^{/{"config":"2x1 overlap",/' >> "$OUT/$name.json"
    "${MPI[@]}" -np 2 "$B" "${args[@]}" --threads 1 --progress-us 0 \
      | sed 's/^{/{"config":"2x1 overlap, no thread",/' >> "$OUT/$name.json"
    "${MPI[@]}" -np 2 "$B" "${args[@]}" --threads 1 --no-overlap \
      | sed 's/^{/{"config":"2x1 after",/' >> "$OUT/$name.json"
  done
  # One process may use both cores (mpirun binds a process to one core by default).
  "${MPI[@]}" --bind-to none -np 1 "$B" "${args[@]}" --threads 2 --trace "$OUT/$name.trace.jsonl" > /dev/null
}

rm -f "$OUT"/*.json "$OUT"/*.trace.jsonl
lscpu | grep -E "Model name|^CPU\(s\)" > "$OUT/cpu.txt"
run bilstm_attention2d 30 graphs/bilstm_attention2d.graph --bind B=32 --bind C=5
run resnet18_lstm 8 graphs/resnet18_lstm.graph --bind B=4 --bind T=16 --bind C=51
cat "$OUT/cpu.txt"
for f in "$OUT"/*.json; do echo "== $f"; cat "$f"; done
