#!/bin/sh
# CPU time (user + system, ms) per forward of one glassbox binary on one bench row: the process's CPU
# time over 10 and over 210 timed runs, differenced. On a machine shared with other jobs the wall
# clock counts the time other processes hold the cores; CPU time does not (cache sharing remains).
#   tools/bench/cpu_ms.sh BIN THREADS graphs/resnet18.graph --bind B=1 --bind C=1000
bin=$1 threads=$2
shift 2
cpu() {
  /usr/bin/time -f '%U %S' "$bin" bench "$@" --threads "$threads" --iterations "$n" --warmup 1 --warmup-ms 0 \
    --json 2>&1 >/dev/null | tail -1 | awk '{ print ($1 + $2) * 1000 }'
}
n=10; a=$(cpu "$@")
n=210; b=$(cpu "$@")
echo "$(basename "$bin") $(echo "$a $b" | awk '{ printf "%.2f", ($2 - $1) / 200 }') ms CPU per forward"
