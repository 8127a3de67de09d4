#!/bin/bash
# Runs a command with the machine's other work paused: processes whose command line matches
# QUIET_PATTERN (by default compilers, linkers, test runners, FFmpeg and study jobs) are stopped
# with SIGSTOP — also ones that start while the command runs — and continued when it ends.
# On a 2-core machine shared with builds, a benchmark's two-thread times otherwise measure the
# other jobs; ONNX Runtime's spinning thread pool suffers more from them than Glassbox's does.
#   tools/bench/quiet.sh tools/bench/ort_table.py --rounds 3 --python /work/venv/bin/python
#   QUIET_PATTERN='my-job|swift-build' tools/bench/quiet.sh .build/release/glassbox bench …
pattern=${QUIET_PATTERN:-"swift-frontend|swift-build|swift-test|swift-driver|swiftc|clang|/ld|ld\.|xctest|PackageTests|pytest|ffmpeg|gen_actions|gen_speech|glassbox study|glassbox train|glassbox evaluate"}
stopped=$(mktemp)
stopper() {
  while true; do
    for p in $(pgrep -f "$pattern"); do
      [ "$p" = "$$" ] && continue
      kill -STOP "$p" 2>/dev/null && echo "$p" >> "$stopped"
    done
    sleep 0.2
  done
}
stopper &
loop=$!
trap 'kill $loop 2>/dev/null; wait $loop 2>/dev/null; for p in $(sort -u "$stopped"); do kill -CONT "$p" 2>/dev/null; done; rm -f "$stopped"' EXIT
sleep 0.8
"$@"
