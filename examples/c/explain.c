/* explain: load a Glassbox .model, run it on one input and write its Grad-CAM as a picture.
 *
 *   explain MODEL [--input X.f32] [--output MAP.pgm] [--tap NAME] [--class K] [--bind SYMBOL=N]...
 *
 * Prints the model's signature, runs it on X.f32 (raw little-endian float32 in the input's
 * row-major layout, batch of one) or, without --input, on a deterministic pattern, prints the
 * predicted class (and its label when the model has labels), explains the predicted class
 * (or --class K) with the tap (gradcam by default) and writes the map resized to the input
 * as a binary PGM (frames side by side for a video model). Every call's status is checked;
 * a failure prints gbx_last_error() and exits with status 1.
 *
 *   make lib && cc -std=c11 examples/c/explain.c -Iinclude -L.build/release -lglassbox \
 *       -Wl,-rpath,$PWD/.build/release -lm -o explain
 *   (or, after make install: cc -std=c11 explain.c $(pkg-config --cflags --libs glassbox) -lm)
 */
#include <glassbox.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BINDINGS 8

/* Fails with the library's message when a call did not return GBX_OK. */
#define CHECK(call)                                                                    \
  do {                                                                                 \
    gbx_status status_ = (call);                                                       \
    if (status_ != GBX_OK) {                                                           \
      fprintf(stderr, "explain: %s failed (status %d): %s\n", #call, (int)status_,     \
              gbx_last_error());                                                       \
      exit(1);                                                                         \
    }                                                                                  \
  } while (0)

static void fail(const char *message, const char *detail) {
  fprintf(stderr, "explain: %s%s%s\n", message, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

static const char *dtype_name(gbx_dtype d) {
  switch (d) {
  case GBX_F32: return "f32";
  case GBX_F64: return "f64";
  case GBX_I64: return "i64";
  case GBX_BOOL: return "bool";
  }
  return "?";
}

/* The symbol that sizes `axis` in a shape text such as "[B, T, 3, 112, 112]". */
static void axis_symbol(const char *shape_text, int axis, char *out, size_t size) {
  const char *p = shape_text + (shape_text[0] == '[');
  for (int a = 0; a < axis && p; a++) {
    p = strchr(p, ',');
    if (p) p += 2;
  }
  size_t n = 0;
  while (p && p[n] && p[n] != ',' && p[n] != ']') n++;
  if (n >= size) n = size - 1;
  memcpy(out, p ? p : "", n);
  out[n] = '\0';
}

/* The contents of a file of exactly `bytes` bytes. */
static float *read_input(const char *path, size_t bytes) {
  FILE *f = fopen(path, "rb");
  if (!f) fail(path, strerror(errno));
  float *data = malloc(bytes ? bytes : 1);
  if (!data) fail("out of memory", NULL);
  size_t got = fread(data, 1, bytes, f);
  int extra = fgetc(f);
  fclose(f);
  if (got != bytes || extra != EOF) {
    fprintf(stderr, "explain: %s: expected %zu bytes (the input's elements as float32), found %s\n", path, bytes,
            got < bytes ? "fewer" : "more");
    exit(1);
  }
  return data;
}

/* Writes `height` x `width` values in [0, 1] as an 8-bit binary PGM. */
static void write_pgm(const char *path, const float *values, int64_t height, int64_t width) {
  FILE *f = fopen(path, "wb");
  if (!f) fail(path, strerror(errno));
  fprintf(f, "P5\n%" PRId64 " %" PRId64 "\n255\n", width, height);
  for (int64_t i = 0; i < height * width; i++) {
    float v = values[i] < 0 ? 0 : (values[i] > 1 ? 1 : values[i]);
    fputc((int)lrintf(v * 255.0f), f);
  }
  if (fclose(f) != 0) fail(path, strerror(errno));
}

int main(int argc, char **argv) {
  const char *model_path = NULL, *input_path = NULL, *output_path = "gradcam.pgm", *tap = "gradcam";
  const char *binding_names[MAX_BINDINGS];
  int64_t binding_values[MAX_BINDINGS];
  size_t binding_count = 0;
  int64_t target = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--input") && value) input_path = argv[++i];
    else if (!strcmp(a, "--output") && value) output_path = argv[++i];
    else if (!strcmp(a, "--tap") && value) tap = argv[++i];
    else if (!strcmp(a, "--class") && value) target = strtoll(argv[++i], NULL, 10);
    else if (!strcmp(a, "--bind") && value && binding_count < MAX_BINDINGS && strchr(value, '=')) {
      char *eq = strchr(argv[++i], '=');
      *eq = '\0';
      binding_names[binding_count] = argv[i];
      binding_values[binding_count++] = strtoll(eq + 1, NULL, 10);
    } else if (a[0] != '-' && !model_path) model_path = a;
    else fail("usage: explain MODEL [--input X.f32] [--output MAP.pgm] [--tap NAME] [--class K] [--bind S=N]", NULL);
  }
  if (!model_path) fail("usage: explain MODEL [--input X.f32] [--output MAP.pgm] [--tap NAME] [--class K]", NULL);
  if (gbx_abi_version() != GBX_ABI_VERSION) fail("libglassbox.so does not match glassbox.h", NULL);

  gbx_model *model;
  CHECK(gbx_model_load(model_path, &model));
  const char *name;
  CHECK(gbx_model_name(model, &name));
  printf("glassbox %s, model %s\n", gbx_version(), name);

  /* The signature: inputs, outputs, taps and labels. */
  size_t inputs, outputs, taps, labels;
  CHECK(gbx_model_input_count(model, &inputs));
  CHECK(gbx_model_output_count(model, &outputs));
  CHECK(gbx_model_tap_count(model, &taps));
  CHECK(gbx_model_label_count(model, &labels));
  gbx_tensor_info info;
  for (size_t i = 0; i < outputs; i++) {
    CHECK(gbx_model_output(model, i, &info));
    printf("  output %s: %s%s\n", info.name, dtype_name(info.dtype), info.shape_text);
  }
  for (size_t i = 0; i < taps; i++) {
    gbx_tap_info t;
    CHECK(gbx_model_tap(model, i, &t));
    printf("  tap    %s (%s%s)\n", t.name, t.kind, t.needs_class ? ", explains a class" : "");
  }
  if (labels > 0) printf("  labels: %zu\n", labels);
  if (inputs != 1) fail("this example takes models with one input", NULL);
  CHECK(gbx_model_input(model, 0, &info));
  printf("  input  %s: %s%s\n", info.name, dtype_name(info.dtype), info.shape_text);
  if (info.dtype != GBX_F32) fail("this example takes a float32 input", NULL);

  /* The input's shape: a batch of one; other symbols from --bind. */
  int64_t shape[GBX_MAX_RANK];
  size_t elements = 1;
  for (int axis = 0; axis < info.rank; axis++) {
    shape[axis] = info.shape[axis];
    if (shape[axis] < 0) {
      char symbol[64];
      axis_symbol(info.shape_text, axis, symbol, sizeof symbol);
      for (size_t b = 0; b < binding_count; b++)
        if (!strcmp(binding_names[b], symbol)) shape[axis] = binding_values[b];
      if (shape[axis] < 0 && axis == 0) shape[axis] = 1;
      if (shape[axis] < 0) fail("give the size of this symbol with --bind SYMBOL=N", symbol);
    }
    elements *= (size_t)shape[axis];
  }
  float *x;
  if (input_path) {
    x = read_input(input_path, elements * sizeof(float));
  } else {
    x = malloc(elements * sizeof(float));
    if (!x) fail("out of memory", NULL);
    for (size_t i = 0; i < elements; i++) x[i] = (float)sin((double)i * 0.37);
  }

  /* A session: two threads, the bindings, no taps besides the outputs. */
  gbx_session *session;
  CHECK(gbx_session_create(model, 2, binding_names, binding_values, binding_count, NULL, 0, &session));
  gbx_tensor input = {info.name, GBX_F32, info.rank, shape, x};
  gbx_result *result;
  CHECK(gbx_session_run(session, &input, 1, &result));
  gbx_tensor_info scores_info;
  gbx_output scores;
  CHECK(gbx_model_output(model, 0, &scores_info));
  CHECK(gbx_result_find(result, scores_info.name, &scores));
  const float *logits = scores.data;
  int64_t classes = scores.rank == 2 ? scores.shape[1] : 0, best = 0;
  for (int64_t k = 1; k < classes; k++)
    if (logits[k] > logits[best]) best = k;
  const char *label = "";
  if ((size_t)best < labels) CHECK(gbx_model_label(model, (size_t)best, &label));
  printf("predicted class %" PRId64 "%s%s%s (score %.4f)\n", best, labels ? " (" : "", label, labels ? ")" : "",
         classes ? logits[best] : 0.0f);
  CHECK(gbx_result_free(result));

  /* Grad-CAM of the predicted class (or --class), resized to the input. */
  gbx_result *explanation;
  CHECK(gbx_session_explain(session, tap, &input, 1, &target, 1, NULL, &explanation));
  gbx_output explained, map;
  CHECK(gbx_result_find(explanation, "target", &explained));
  char upsampled[256];
  snprintf(upsampled, sizeof upsampled, "%s.upsampled", tap);
  if (gbx_result_find(explanation, upsampled, &map) != GBX_OK) {
    fprintf(stderr, "explain: %s\n", gbx_last_error());
    fail("the tap has no map at the input's size (a Grad-CAM or CAM tap has)", tap);
  }
  /* [1, H, W] for an image, [1, T, H, W] for a video: the frames side by side. */
  int64_t frames = map.rank == 4 ? map.shape[1] : 1, height = map.shape[map.rank - 2];
  int64_t width = map.shape[map.rank - 1];
  float *picture = malloc((size_t)(frames * height * width) * sizeof(float));
  if (!picture) fail("out of memory", NULL);
  const float *values = map.data;
  for (int64_t t = 0; t < frames; t++)
    for (int64_t y = 0; y < height; y++)
      for (int64_t xx = 0; xx < width; xx++)
        picture[y * frames * width + t * width + xx] = values[(t * height + y) * width + xx];
  write_pgm(output_path, picture, height, frames * width);
  printf("%s of class %" PRId64 ": wrote %s (%" PRId64 " x %" PRId64 ")\n", tap, ((const int64_t *)explained.data)[0],
         output_path, frames * width, height);

  free(picture);
  free(x);
  CHECK(gbx_result_free(explanation));
  CHECK(gbx_session_free(session));
  CHECK(gbx_model_free(model));
  return 0;
}
