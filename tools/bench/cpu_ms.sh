#!/bin/sh
# CPU time (user + system, ms) per forward of one glassbox binary, or of ONNX Runtime (BIN = ort:
# tools/bench/ort_peer.py with PYTHON), on one bench row: the process's CPU time over 10 and over
# 10 + RUNS timed runs, differenced. On a machine shared with other jobs the wall clock counts the
# time other processes hold the cores; CPU time does not (cache sharing remains). With 2 threads
# it counts spinning workers too, so it is a one-thread measure.
#   tools/bench/cpu_ms.sh BIN THREADS graphs/resnet18.graph --bind B=1 --bind C=1000
#   RUNS=20 PYTHON=/work/venv/bin/python tools/bench/cpu_ms.sh ort 1 graphs/resnet18.graph --bind B=1 --bind C=1000
bin=$1 threads=$2
shift 2
runs=${RUNS:-200}
root=$(dirname "$0")/../..
cpu() {
  if [ "$bin" = ort ]; then
    spec=$1
    shift
    set -- "${PYTHON:-$root/.venv/bin/python}" "$root/tools/bench/ort_peer.py" "$(basename "$spec" .graph)" "$@"
  else
    set -- "$bin" bench "$@" --json
  fi
  /usr/bin/time -f '%U %S' "$@" --threads "$threads" --iterations "$n" --warmup 1 --warmup-ms 0 2>&1 >/dev/null \
    | tail -1 | awk '{ print ($1 + $2) * 1000 }'
}
n=10; a=$(cpu "$@")
n=$((10 + runs)); b=$(cpu "$@")
echo "$(basename "$bin") $(echo "$a $b $runs" | awk '{ printf "%.2f", ($2 - $1) / $3 }') ms CPU per forward"
