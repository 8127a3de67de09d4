#!/bin/sh
# Issue 29's rows on one core in CPU time per forward (tools/bench/cpu_ms.sh): two glassbox binaries
# (before and after a change) and ONNX Runtime, alternating, ROUNDS times. A measure for a machine
# whose other jobs make wall-clock medians drift; the 2-thread rows need tools/bench/ort_table.py.
#   PYTHON=/work/venv/bin/python tools/bench/cpu_table.sh BEFORE AFTER [ROUNDS]
before=$1 after=$2 rounds=${3:-2}
here=$(dirname "$0")
row() {
  runs=$1
  shift
  echo "== $*"
  for i in $(seq "$rounds"); do
    for bin in "$before" "$after" ort; do
      RUNS=$runs "$here/cpu_ms.sh" "$bin" 1 "$@"
    done
  done
}
lscpu | grep 'Model name'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
row 200 graphs/resnet18.graph --bind B=1 --bind C=1000
row 30 graphs/resnet18.graph --bind B=8 --bind C=1000
row 8 graphs/resnet18.graph --bind B=32 --bind C=1000
row 20 graphs/resnet18_lstm.graph --bind B=1 --bind T=16 --bind C=51
row 3000 graphs/bilstm_attention2d.graph --bind B=1 --bind C=5
row 100 graphs/bilstm_attention2d.graph --bind B=32 --bind C=5
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
