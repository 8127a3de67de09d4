#!/bin/sh
# Alternates two glassbox binaries on one bench row, ROUNDS times each, and prints every run's median
# (ms): on a shared machine the load drifts, and alternating lands the drift on both.
#   tools/bench/ab.sh OLD NEW ROUNDS THREADS graphs/resnet18.graph --bind B=1 --bind C=1000
old=$1 new=$2 rounds=$3 threads=$4
shift 4
for i in $(seq "$rounds"); do
  for bin in "$old" "$new"; do
    printf '%s ' "$(basename "$bin")"
    "$bin" bench "$@" --threads "$threads" --iterations 20 --json \
      | sed 's/.*"medianMs":\([0-9.]*\),"minMs":\([0-9.]*\).*/median \1 min \2/'
  done
done
