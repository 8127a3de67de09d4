#!/usr/bin/env bash
# `make c-api-test`: builds examples/c/explain.c and api_test.c with AddressSanitizer and
# UndefinedBehaviorSanitizer against libGlassboxC.so (the debug build that `swift build`
# makes, unless GLASSBOX_BUILD names another build folder), makes the oracle with the glassbox
# command of the same build (the Swift library's outputs as .npy), and runs both programs.
#   examples/c/test.sh            # or GLASSBOX_BUILD=.build/release examples/c/test.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${GLASSBOX_BUILD:-.build/debug}
OUT=${BUILD%/*}/c-api-test
G=$BUILD/glassbox
PY=/usr/bin/python3
for f in "$G" "$BUILD/libGlassboxC.so"; do
  [ -e "$f" ] || { echo "c-api-test: $f is missing; run swift build first" >&2; exit 1; }
done
rm -rf "$OUT"
mkdir -p "$OUT"

# C11, every warning an error, both sanitizers; UBSan stops at the first finding.
CFLAGS=(-std=c11 -Wall -Wextra -Werror -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined
        -fno-sanitize-recover=undefined -Iinclude)
LIBS=(-L"$BUILD" -lGlassboxC -Wl,-rpath,"$PWD/$BUILD" -lm)
cc "${CFLAGS[@]}" examples/c/explain.c "${LIBS[@]}" -o "$OUT/explain"
cc "${CFLAGS[@]}" -pthread examples/c/api_test.c "${LIBS[@]}" -o "$OUT/api_test"
# The example in glassbox.h's opening comment compiles as written.
{
  echo '#include <glassbox.h>'
  echo '#include <stdio.h>'
  echo 'int header_example(const float *features) {'
  sed -n '/^ \*   gbx_model \*model;/,/^ \*   gbx_result_free(result);/s/^ \*   //p' include/glassbox.h
  echo '  return 0;'
  echo '}'
} > "$OUT/header_example.c"
[ "$(wc -l < "$OUT/header_example.c")" -ge 12 ] || { echo "c-api-test: no example found in glassbox.h" >&2; exit 1; }
cc "${CFLAGS[@]}" -c "$OUT/header_example.c" -o "$OUT/header_example.o"
export ASAN_OPTIONS=abort_on_error=0:detect_leaks=1 LSAN_OPTIONS=suppressions=$PWD/examples/c/lsan.supp
export UBSAN_OPTIONS=print_stacktrace=1

# The oracle: two small models, inputs, and what `glassbox run` and `glassbox tap` make of them.
printf 'cat\ndog\nbird\nfish\n' > "$OUT/labels.txt"
"$G" compile examples/tiny_cnn.graph --labels "$OUT/labels.txt" -o "$OUT/tiny.model" > /dev/null
"$G" compile examples/tiny_video.graph -o "$OUT/video.model" > /dev/null
$PY - "$OUT" <<'PYTHON'
import sys, numpy as np
out = sys.argv[1]
i = np.arange(3 * 3 * 32 * 32, dtype=np.float64)
x = np.sin(i * 0.37 + np.repeat(np.arange(3), 3 * 32 * 32) * 1.7).astype(np.float32).reshape(3, 3, 32, 32)
np.save(f"{out}/x.npy", x)
x[0].tofile(f"{out}/x0.f32")
v = np.cos(np.arange(2 * 3 * 3 * 24 * 24) * 0.11).astype(np.float32).reshape(2, 3, 3, 24, 24)
np.save(f"{out}/v.npy", v)
PYTHON
"$G" run "$OUT/tiny.model" --input image="$OUT/x.npy" -o "$OUT/run" > /dev/null
"$G" tap "$OUT/tiny.model" gradcam "$OUT/x.npy" --no-pictures -o "$OUT/tap-auto" > /dev/null
"$G" tap "$OUT/tiny.model" gradcam "$OUT/x.npy" --class 0 --no-pictures -o "$OUT/tap-0" > /dev/null
"$G" tap "$OUT/tiny.model" gradcam "$OUT/x.npy" --class 2 --no-pictures -o "$OUT/tap-2" > /dev/null
"$G" tap "$OUT/tiny.model" cam "$OUT/x.npy" --class 2 --no-pictures -o "$OUT/cam-2" > /dev/null
"$G" tap "$OUT/video.model" gradcam "$OUT/v.npy" --no-pictures -o "$OUT/vtap" > /dev/null
# A model with two inputs (examples/two_inputs.graph), explained with four taps in one run.
"$G" compile examples/two_inputs.graph -o "$OUT/two.model" > /dev/null
$PY - "$OUT" <<'PYTHON'
import sys, numpy as np
out = sys.argv[1]
np.save(f"{out}/two_image.npy", np.sin(np.arange(2 * 3 * 16 * 16) * 0.29).astype(np.float32).reshape(2, 3, 16, 16))
np.save(f"{out}/two_vector.npy", np.cos(np.arange(2 * 5) * 0.9).astype(np.float32).reshape(2, 5))
PYTHON
"$G" tap "$OUT/two.model" gradcam,image_saliency,vector_saliency,vector_gradient image="$OUT/two_image.npy" \
  vector="$OUT/two_vector.npy" --no-pictures -o "$OUT/two-tap" > /dev/null

echo "c-api-test: api_test"
"$OUT/api_test" "$OUT" examples/tiny_cnn.graph > "$OUT/api_test.log" 2>&1 || { cat "$OUT/api_test.log"; exit 1; }
grep -c '^ok' "$OUT/api_test.log" | xargs printf '  %s checks passed\n'

echo "c-api-test: explain"
"$OUT/explain" "$OUT/tiny.model" --input "$OUT/x0.f32" --output "$OUT/tiny.pgm" | tee "$OUT/explain.log"
"$OUT/explain" "$OUT/video.model" --bind T=3 --output "$OUT/video.pgm" | tee -a "$OUT/explain.log"
# The class and the picture against the glassbox command's logits and upsampled map.
$PY - "$OUT" <<'PYTHON'
import sys, numpy as np
out = sys.argv[1]
log = open(f"{out}/explain.log").read()
k = int(np.load(f"{out}/run/logits.npy")[0].argmax())
label = ["cat", "dog", "bird", "fish"][k]
assert f"predicted class {k} ({label})" in log, f"explain: expected class {k} ({label}) in:\n{log}"
assert f"gradcam of class {k}: wrote {out}/tiny.pgm (32 x 32)" in log, log
# The example's picture: the first image's upsampled map, clamped to [0, 1] and scaled to 255.
expected = np.rint(np.clip(np.load(f"{out}/tap-auto/gradcam.upsampled.npy")[0], 0, 1) * 255).astype(np.uint8)
pgm = open(f"{out}/tiny.pgm", "rb").read()
header = b"P5\n32 32\n255\n"
assert pgm.startswith(header) and len(pgm) == len(header) + 32 * 32, pgm[:20]
assert np.array_equal(np.frombuffer(pgm[len(header):], np.uint8).reshape(32, 32), expected), "tiny.pgm differs"
video = open(f"{out}/video.pgm", "rb").read()
assert video.startswith(b"P5\n72 24\n255\n") and len(video) == 13 + 72 * 24, video[:20]
print("  explain: class and picture agree with glassbox run and tap")
PYTHON

# Failures: a status of 1 and a message naming the problem. Leak detection is off for these
# runs: they exit with live handles, whose graphs LeakSanitizer cannot follow (see lsan.supp).
expect_failure() {
  local needle=$1
  shift
  if ASAN_OPTIONS=detect_leaks=0 "$@" > "$OUT/failure.log" 2>&1; then
    echo "c-api-test: expected $* to fail" >&2
    exit 1
  fi
  if ! grep -qF -- "$needle" "$OUT/failure.log"; then
    echo "c-api-test: no '$needle' in:" >&2
    cat "$OUT/failure.log" >&2
    exit 1
  fi
  echo "  fails as it should: $(grep -F -- "$needle" "$OUT/failure.log" | head -1)"
}
expect_failure "--bind SYMBOL=N: T" "$OUT/explain" "$OUT/video.model"
expect_failure "$OUT/missing.model" "$OUT/explain" "$OUT/missing.model"
head -c 100 "$OUT/x0.f32" > "$OUT/short.f32"
expect_failure "expected 12288 bytes" "$OUT/explain" "$OUT/tiny.model" --input "$OUT/short.f32"
expect_failure "no tap 'attention'" "$OUT/explain" "$OUT/tiny.model" --tap attention
expect_failure "target class 9 is out of range" "$OUT/explain" "$OUT/tiny.model" --class 9
echo "c-api-test: passed"
