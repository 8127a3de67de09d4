/* api_test: every call of include/glassbox.h on good and bad input, built with AddressSanitizer
 * and UndefinedBehaviorSanitizer by `make c-api-test` (examples/c/test.sh).
 *
 *   api_test DIR SPEC
 *
 * DIR holds what test.sh made with the glassbox command (the Swift library's outputs, the
 * oracle): tiny.model (examples/tiny_cnn.graph with labels cat, dog, bird, fish), x.npy (three
 * images), run/ (`glassbox run`), tap-auto/, tap-0/, tap-2/ (`glassbox tap … gradcam` for the
 * predicted class, class 0 and class 2), cam-2/ (`tap … cam --class 2`), video.model
 * (examples/tiny_video.graph), v.npy and vtap/ (its per-frame Grad-CAM), two.model
 * (examples/two_inputs.graph), two_image.npy, two_vector.npy and two-tap/TAP/ (`glassbox tap`
 * with four taps at once, NAME=FILE per input). SPEC is
 * examples/tiny_cnn.graph. Results must equal the oracle's bit for bit; every bad argument must
 * give its status and a message naming the problem, and the process must go on.
 * Prints one line per check (`ok` or `not ok`) and exits 1 when any failed.
 */
#define _POSIX_C_SOURCE 200809L
#include <glassbox.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks, failures;

/* Records one check. */
static void check(int passed, const char *format, ...) {
  va_list args;
  va_start(args, format);
  checks++;
  if (!passed) failures++;
  printf("%s %d - ", passed ? "ok" : "not ok", checks);
  vprintf(format, args);
  printf("\n");
  va_end(args);
}

/* A call that must fail with `want` and a message containing `needle`. */
static void expect_error(gbx_status got, gbx_status want, const char *needle, const char *what) {
  const char *message = gbx_last_error();
  int passed = got == want && strstr(message, needle) != NULL;
  check(passed, "%s: status %d, \"%s\"", what, (int)got, message);
  if (!passed) printf("#   expected status %d and a message containing \"%s\"\n", (int)want, needle);
}

/* A call that must succeed; stops the program when it does not (what follows needs it). */
static void require(gbx_status got, const char *what) {
  if (got != GBX_OK) {
    printf("not ok %d - %s: status %d, \"%s\"\nBail out!\n", ++checks, what, (int)got, gbx_last_error());
    exit(1);
  }
}

static void *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    printf("Bail out! cannot open %s\n", path);
    exit(1);
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  void *bytes = malloc((size_t)n + 1);
  if (!bytes || fread(bytes, 1, (size_t)n, f) != (size_t)n) {
    printf("Bail out! cannot read %s\n", path);
    exit(1);
  }
  fclose(f);
  *size = (size_t)n;
  return bytes;
}

static void write_file(const char *path, const void *bytes, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(bytes, 1, size, f) != size || fclose(f) != 0) {
    printf("Bail out! cannot write %s\n", path);
    exit(1);
  }
}

/* A little-endian float32 or int64 .npy file (version 1 or 2, C order), as NPY.write makes. */
typedef struct npy {
  char type; /* 'f' (float32) or 'i' (int64) */
  int32_t rank;
  int64_t shape[GBX_MAX_RANK];
  size_t count;
  void *file; /* the whole file; data points into it */
  const void *data;
} npy;

static npy read_npy(const char *dir, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  npy a = {0};
  size_t size;
  unsigned char *b = read_file(path, &size);
  a.file = b;
  if (size < 12 || memcmp(b, "\x93NUMPY", 6) != 0) {
    printf("Bail out! %s is not a .npy file\n", path);
    exit(1);
  }
  size_t header_len = b[6] == 1 ? (size_t)(b[8] | b[9] << 8) : (size_t)(b[8] | b[9] << 8 | b[10] << 16);
  size_t start = b[6] == 1 ? 10 : 12;
  char *header = (char *)b + start;
  char saved = header[header_len - 1];
  header[header_len - 1] = '\0';
  a.type = strstr(header, "'<f4'") ? 'f' : (strstr(header, "'<i8'") ? 'i' : '?');
  const char *p = strstr(header, "'shape': (");
  if (a.type == '?' || !p || strstr(header, "'fortran_order': True")) {
    printf("Bail out! %s: unsupported header %s\n", path, header);
    exit(1);
  }
  p += strlen("'shape': (");
  a.count = 1;
  while (*p && *p != ')') {
    char *end;
    long long n = strtoll(p, &end, 10);
    if (end == p) break;
    a.shape[a.rank++] = n;
    a.count *= (size_t)n;
    p = end;
    while (*p == ',' || *p == ' ') p++;
  }
  header[header_len - 1] = saved;
  a.data = b + start + header_len;
  return a;
}

/* Whether a result tensor equals a .npy's dtype, shape and bits. */
static int same(const gbx_output *o, const npy *a) {
  if (o->rank != a->rank || (a->type == 'f' ? o->dtype != GBX_F32 : o->dtype != GBX_I64)) return 0;
  for (int i = 0; i < a->rank; i++)
    if (o->shape[i] != a->shape[i]) return 0;
  return o->byte_count == a->count * 4 * (a->type == 'f' ? 1 : 2) && memcmp(o->data, a->data, o->byte_count) == 0;
}

/* Whether row `row` of a [N, ...] result equals row `row` of a .npy, bit for bit. */
static int same_row(const gbx_output *o, const npy *a, int64_t row) {
  if (o->rank != a->rank || o->shape[0] != a->shape[0]) return 0;
  size_t bytes = o->byte_count / (size_t)o->shape[0];
  return memcmp((const char *)o->data + bytes * (size_t)row, (const char *)a->data + bytes * (size_t)row, bytes) == 0;
}

static gbx_output find(const gbx_result *r, const char *name) {
  gbx_output o;
  memset(&o, 0, sizeof o);
  if (gbx_result_find(r, name, &o) != GBX_OK) printf("# no %s: %s\n", name, gbx_last_error());
  return o;
}

/* A result's tensor names, comma-separated, in the result's order. */
static void names_of(const gbx_result *r, char *out, size_t size) {
  size_t count = 0;
  out[0] = '\0';
  gbx_result_count(r, &count);
  for (size_t i = 0; i < count; i++) {
    gbx_output o;
    if (gbx_result_get(r, i, &o) != GBX_OK) continue;
    strncat(out, i ? "," : "", size - strlen(out) - 1);
    strncat(out, o.name, size - strlen(out) - 1);
  }
}

/* What each worker thread does: run its session `rounds` times and compare with `expected`. */
typedef struct worker {
  gbx_session *session;
  const gbx_tensor *input;
  const npy *expected;
  int rounds, mismatches;
  char error[512];
} worker;

static void *work(void *arg) {
  worker *w = arg;
  for (int i = 0; i < w->rounds; i++) {
    gbx_result *r;
    if (gbx_session_run(w->session, w->input, 1, &r) != GBX_OK) {
      snprintf(w->error, sizeof w->error, "%s", gbx_last_error());
      w->mismatches++;
      continue;
    }
    gbx_output o = find(r, "logits");
    if (!same(&o, w->expected)) w->mismatches++;
    gbx_result_free(r);
  }
  return NULL;
}

/* A failed call on another thread, whose message must stay on that thread. */
static void *fail_elsewhere(void *arg) {
  gbx_model *m;
  gbx_model_load("/nonexistent/elsewhere.model", &m);
  snprintf(arg, 512, "%s", gbx_last_error());
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: api_test DIR SPEC\n");
    return 2;
  }
  const char *dir = argv[1], *spec = argv[2];
  char path[1024], names[512];
  setvbuf(stdout, NULL, _IOLBF, 0);

  check(gbx_abi_version() == GBX_ABI_VERSION, "gbx_abi_version() is the header's %d", GBX_ABI_VERSION);
  check(strlen(gbx_version()) > 0, "gbx_version() is \"%s\"", gbx_version());
  check(strcmp(gbx_last_error(), "") == 0, "gbx_last_error() is empty before any failure");

  /* The model and its signature. */
  gbx_model *model;
  snprintf(path, sizeof path, "%s/tiny.model", dir);
  require(gbx_model_load(path, &model), "gbx_model_load tiny.model");
  const char *name;
  require(gbx_model_name(model, &name), "gbx_model_name");
  check(strcmp(name, "tiny_cnn") == 0, "model name is tiny_cnn (\"%s\")", name);
  size_t count;
  gbx_tensor_info info;
  require(gbx_model_input_count(model, &count), "gbx_model_input_count");
  require(gbx_model_input(model, 0, &info), "gbx_model_input 0");
  check(count == 1 && strcmp(info.name, "image") == 0 && info.dtype == GBX_F32 && info.rank == 4 &&
            info.shape[0] == -1 && info.shape[1] == 3 && info.shape[2] == 32 && info.shape[3] == 32 &&
            strcmp(info.shape_text, "[B, 3, 32, 32]") == 0,
        "one input image f32 %s, the batch unbound (-1)", info.shape_text);
  require(gbx_model_output_count(model, &count), "gbx_model_output_count");
  require(gbx_model_output(model, 0, &info), "gbx_model_output 0");
  check(count == 1 && strcmp(info.name, "logits") == 0 && info.rank == 2 && info.shape[1] == 4,
        "one output logits %s", info.shape_text);
  require(gbx_model_tap_count(model, &count), "gbx_model_tap_count");
  gbx_tap_info taps[3];
  for (size_t i = 0; i < 3 && i < count; i++) require(gbx_model_tap(model, i, &taps[i]), "gbx_model_tap");
  check(count == 3 && !strcmp(taps[0].name, "gradcam") && !strcmp(taps[0].kind, "gradcam") && taps[0].needs_class &&
            !strcmp(taps[1].name, "cam") && taps[1].needs_class && !strcmp(taps[2].name, "act") &&
            !strcmp(taps[2].kind, "activation") && !taps[2].needs_class,
        "taps gradcam (gradcam, class), cam (cam, class), act (activation, no class)");
  require(gbx_model_label_count(model, &count), "gbx_model_label_count");
  const char *labels[4] = {"", "", "", ""};
  for (size_t i = 0; i < 4 && i < count; i++) require(gbx_model_label(model, i, &labels[i]), "gbx_model_label");
  check(count == 4 && !strcmp(labels[0], "cat") && !strcmp(labels[3], "fish"), "labels cat … fish (%zu)", count);

  /* Runs and explanations against the glassbox command's outputs. */
  npy x = read_npy(dir, "x.npy"), logits = read_npy(dir, "run/logits.npy"), act = read_npy(dir, "run/act.npy");
  gbx_tensor input = {"image", GBX_F32, x.rank, x.shape, x.data};
  gbx_session *session;
  require(gbx_session_create(model, 2, NULL, NULL, 0, NULL, 0, &session), "gbx_session_create");
  gbx_result *result;
  require(gbx_session_run(session, &input, 1, &result), "gbx_session_run");
  names_of(result, names, sizeof names);
  gbx_output out_logits = find(result, "logits"), out_act = find(result, "act");
  check(same(&out_logits, &logits), "run: logits equal `glassbox run`'s bit for bit");
  check(same(&out_act, &act), "run: the activation tap act equals `glassbox run`'s bit for bit (result: %s)", names);
  int64_t predicted[3];
  for (int r = 0; r < 3; r++) {
    const float *v = (const float *)out_logits.data + r * 4;
    predicted[r] = 0;
    for (int k = 1; k < 4; k++)
      if (v[k] > v[predicted[r]]) predicted[r] = k;
  }

  const char *roles[] = {"gradcam", "gradcam.normalized", "gradcam.upsampled"};
  npy automatic[3], class0[3], class2[3];
  for (int i = 0; i < 3; i++) {
    char file[128];
    snprintf(file, sizeof file, "tap-auto/%s.npy", roles[i]);
    automatic[i] = read_npy(dir, file);
    snprintf(file, sizeof file, "tap-0/%s.npy", roles[i]);
    class0[i] = read_npy(dir, file);
    snprintf(file, sizeof file, "tap-2/%s.npy", roles[i]);
    class2[i] = read_npy(dir, file);
  }
  gbx_result *explained;
  require(gbx_session_explain(session, "gradcam", &input, 1, NULL, 0, NULL, &explained), "explain gradcam");
  for (int i = 0; i < 3; i++) {
    gbx_output o = find(explained, roles[i]);
    check(same(&o, &automatic[i]), "explain, predicted classes: %s equals `glassbox tap`'s bit for bit", roles[i]);
  }
  gbx_output target = find(explained, "target"), again = find(explained, "logits");
  check(target.dtype == GBX_I64 && target.rank == 1 && target.shape[0] == 3 &&
            !memcmp(target.data, predicted, sizeof predicted),
        "explain: target holds each example's argmax");
  check(same(&again, &logits), "explain: the result holds the logits too");
  require(gbx_result_free(explained), "gbx_result_free");

  /* One class per example: 0, 2 and the predicted one. */
  int64_t mixed[3] = {0, 2, -1};
  require(gbx_session_explain(session, "gradcam", &input, 1, mixed, 3, NULL, &explained), "explain targets 0,2,-1");
  for (int i = 0; i < 3; i++) {
    gbx_output o = find(explained, roles[i]);
    check(same_row(&o, &class0[i], 0) && same_row(&o, &class2[i], 1) && same_row(&o, &automatic[i], 2),
          "explain, targets {0, 2, -1}: each row of %s equals `glassbox tap --class` for its class", roles[i]);
  }
  target = find(explained, "target");
  check(((const int64_t *)target.data)[0] == 0 && ((const int64_t *)target.data)[1] == 2 &&
            ((const int64_t *)target.data)[2] == predicted[2],
        "explain, targets {0, 2, -1}: target is {0, 2, predicted}");
  require(gbx_result_free(explained), "gbx_result_free");

  int64_t two[3] = {2, 2, 2};
  npy cam2 = read_npy(dir, "cam-2/cam.npy");
  require(gbx_session_explain(session, "cam", &input, 1, two, 3, NULL, &explained), "explain cam class 2");
  gbx_output cam = find(explained, "cam");
  check(same(&cam, &cam2), "explain cam, class 2: equals `glassbox tap cam --class 2` bit for bit");
  require(gbx_result_free(explained), "gbx_result_free");

  /* Several taps in one run: each tap's tensors equal its own call's bits, for the same targets
   * (a tap that explains no class takes none alone); the outputs come once, target last. */
  const char *several[] = {"gradcam", "cam", "act"};
  require(gbx_session_explain_taps(session, several, 3, &input, 1, mixed, 3, NULL, &explained),
          "explain_taps gradcam, cam, act");
  names_of(explained, names, sizeof names);
  check(!strcmp(names, "logits,gradcam,gradcam.normalized,gradcam.upsampled,cam,cam.normalized,cam.upsampled,act,"
                       "target"),
        "explain_taps: outputs, each tap's maps in order, target (%s)", names);
  for (int t = 0; t < 3; t++) {
    gbx_result *alone;
    int classless = !strcmp(several[t], "act");
    require(gbx_session_explain(session, several[t], &input, 1, classless ? NULL : mixed, classless ? 0 : 3, NULL,
                                &alone),
            "explain one tap");
    size_t n = 0;
    gbx_result_count(alone, &n);
    int equal = n > 0;
    for (size_t i = 0; i < n; i++) {
      gbx_output a, b;
      gbx_result_get(alone, i, &a);
      if (gbx_result_find(explained, a.name, &b) != GBX_OK || a.dtype != b.dtype || a.rank != b.rank ||
          a.byte_count != b.byte_count || memcmp(a.shape, b.shape, sizeof a.shape) ||
          memcmp(a.data, b.data, a.byte_count))
        equal = 0;
    }
    check(equal, "explain_taps: %s's tensors (and logits, target) equal its own call's bit for bit", several[t]);
    require(gbx_result_free(alone), "gbx_result_free");
  }
  require(gbx_result_free(explained), "gbx_result_free");

  /* A model with two inputs: four taps at once (Grad-CAM on the CNN branch, saliency and the
   * gradient of each input) equal `glassbox tap`'s files bit for bit. */
  gbx_model *two_model;
  snprintf(path, sizeof path, "%s/two.model", dir);
  require(gbx_model_load(path, &two_model), "gbx_model_load two.model");
  gbx_session *two_session;
  require(gbx_session_create(two_model, 1, NULL, NULL, 0, NULL, 0, &two_session), "session of the two-input model");
  npy two_image = read_npy(dir, "two_image.npy"), two_vector = read_npy(dir, "two_vector.npy");
  gbx_tensor both[2] = {{"vector", GBX_F32, two_vector.rank, two_vector.shape, two_vector.data},
                        {"image", GBX_F32, two_image.rank, two_image.shape, two_image.data}};
  const char *two_taps[] = {"gradcam", "image_saliency", "vector_saliency", "vector_gradient"};
  require(gbx_session_explain_taps(two_session, two_taps, 4, both, 2, NULL, 0, NULL, &explained),
          "explain_taps on two inputs");
  const char *two_files[] = {"gradcam/gradcam",         "gradcam/gradcam.normalized",
                             "gradcam/gradcam.upsampled", "image_saliency/image_saliency",
                             "vector_saliency/vector_saliency", "vector_gradient/vector_gradient"};
  for (int i = 0; i < 6; i++) {
    char file[128];
    snprintf(file, sizeof file, "two-tap/%s.npy", two_files[i]);
    npy expected = read_npy(dir, file);
    gbx_output o = find(explained, strchr(two_files[i], '/') + 1);
    check(same(&o, &expected), "two inputs: %s equals `glassbox tap`'s bit for bit", two_files[i]);
    free(expected.file);
  }
  require(gbx_result_free(explained), "gbx_result_free");
  expect_error(gbx_session_explain_taps(two_session, two_taps, 4, &both[1], 1, NULL, 0, NULL, &explained), GBX_ERROR_INPUT,
               "input 'vector' is missing (vector f32[B, 5])", "explain_taps without the vector input");
  int64_t short_shape[2] = {2, 4};
  gbx_tensor short_vector = {"vector", GBX_F32, 2, short_shape, two_vector.data};
  gbx_tensor mismatched[2] = {short_vector, both[1]};
  expect_error(gbx_session_explain_taps(two_session, two_taps, 4, mismatched, 2, NULL, 0, NULL, &explained), GBX_ERROR_INPUT,
               "input 'vector' has size 4 on axis 1 but the graph expects 5", "explain_taps with a short vector");
  require(gbx_session_free(two_session), "gbx_session_free");
  require(gbx_model_free(two_model), "gbx_model_free");
  free(two_image.file);
  free(two_vector.file);

  /* Per-frame Grad-CAM through an LSTM, with relevance. */
  gbx_model *video;
  snprintf(path, sizeof path, "%s/video.model", dir);
  require(gbx_model_load(path, &video), "gbx_model_load video.model");
  gbx_session *video_session;
  const char *symbol = "T";
  int64_t frames = 3;
  require(gbx_session_create(video, 1, &symbol, &frames, 1, NULL, 0, &video_session), "video session, T = 3");
  npy v = read_npy(dir, "v.npy");
  gbx_tensor clip = {"frames", GBX_F32, v.rank, v.shape, v.data};
  require(gbx_session_explain(video_session, "gradcam", &clip, 1, NULL, 0, NULL, &explained), "explain the clips");
  const char *video_roles[] = {"gradcam", "gradcam.normalized", "gradcam.upsampled", "gradcam.relevance"};
  for (int i = 0; i < 4; i++) {
    char file[128];
    snprintf(file, sizeof file, "vtap/%s.npy", video_roles[i]);
    npy expected = read_npy(dir, file);
    gbx_output o = find(explained, video_roles[i]);
    check(same(&o, &expected), "video explain: %s equals `glassbox tap`'s bit for bit", video_roles[i]);
    free(expected.file);
  }
  require(gbx_result_free(explained), "gbx_result_free");

  /* A spec compiled here, with labels and an extra tap, saved and loaded again. */
  gbx_model *compiled, *labelled, *tapped, *reloaded;
  require(gbx_model_compile_spec(spec, NULL, NULL, 0, NULL, 0, &compiled), "gbx_model_compile_spec");
  require(gbx_model_set_labels(compiled, labels, 4, &labelled), "gbx_model_set_labels");
  require(gbx_model_add_tap(labelled, "gradcam:relu1:name=early", &tapped), "gbx_model_add_tap");
  snprintf(path, sizeof path, "%s/saved.model", dir);
  require(gbx_model_save(tapped, path), "gbx_model_save");
  require(gbx_model_load(path, &reloaded), "gbx_model_load saved.model");
  gbx_session *reloaded_session;
  require(gbx_session_create(reloaded, 1, NULL, NULL, 0, NULL, 0, &reloaded_session), "session of the saved model");
  require(gbx_session_run(reloaded_session, &input, 1, &explained), "run the saved model");
  out_logits = find(explained, "logits");
  check(same(&out_logits, &logits), "a spec compiled through the API (seed 0) gives the .model's logits bit for bit");
  require(gbx_result_free(explained), "gbx_result_free");
  require(gbx_session_explain(reloaded_session, "early", &input, 1, NULL, 0, "frame", &explained), "explain early");
  gbx_output early = find(explained, "early");
  check(early.rank == 3 && early.shape[0] == 3 && early.shape[1] == 32 && early.shape[2] == 32,
        "the added tap early explains relu1: [3, 32, 32]");
  require(gbx_result_free(explained), "gbx_result_free");
  require(gbx_model_label_count(reloaded, &count), "label count");
  check(count == 4, "the saved model kept its 4 labels");

  /* Two threads on one session (they take turns) and two on sessions of their own. */
  gbx_session *own[2];
  for (int i = 0; i < 2; i++) require(gbx_session_create(model, 1, NULL, NULL, 0, NULL, 0, &own[i]), "session");
  worker workers[4];
  pthread_t threads[4];
  for (int i = 0; i < 4; i++) {
    workers[i] = (worker){i < 2 ? session : own[i - 2], &input, &logits, 10, 0, ""};
    pthread_create(&threads[i], NULL, work, &workers[i]);
  }
  int mismatches = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(threads[i], NULL);
    mismatches += workers[i].mismatches;
  }
  check(mismatches == 0, "4 threads x 10 runs (two sharing a session, two with their own): every result the same "
                         "(%d mismatches) %s", mismatches, workers[0].error);
  for (int i = 0; i < 2; i++) require(gbx_session_free(own[i]), "gbx_session_free");

  /* Error messages belong to the thread that failed. */
  expect_error(gbx_model_input(model, 7, &info), GBX_ERROR_INPUT, "input index 7 is out of range (the model has 1)",
               "gbx_model_input index 7");
  char elsewhere[512] = "";
  pthread_t other;
  pthread_create(&other, NULL, fail_elsewhere, elsewhere);
  pthread_join(other, NULL);
  check(strstr(elsewhere, "elsewhere.model") && strstr(gbx_last_error(), "input index 7"),
        "gbx_last_error is per thread: the other thread's names elsewhere.model, this one's is unchanged");

  /* NULL for each pointer argument. */
  gbx_model *m = NULL;
  gbx_session *s = NULL;
  gbx_result *r = NULL;
  expect_error(gbx_model_load(NULL, &m), GBX_ERROR_NULL, "path is NULL", "gbx_model_load(NULL path)");
  expect_error(gbx_model_load(path, NULL), GBX_ERROR_NULL, "out is NULL", "gbx_model_load(NULL out)");
  expect_error(gbx_model_load_bytes(NULL, 10, &m), GBX_ERROR_NULL, "bytes is NULL", "gbx_model_load_bytes(NULL)");
  expect_error(gbx_model_compile_spec(NULL, NULL, NULL, 0, NULL, 0, &m), GBX_ERROR_NULL, "spec_path is NULL",
               "gbx_model_compile_spec(NULL spec)");
  expect_error(gbx_model_compile_spec(spec, NULL, NULL, 1, NULL, 0, &m), GBX_ERROR_NULL,
               "binding_names is NULL but binding_count is 1", "gbx_model_compile_spec(NULL names, count 1)");
  expect_error(gbx_model_add_tap(model, NULL, &m), GBX_ERROR_NULL, "tap is NULL", "gbx_model_add_tap(NULL tap)");
  expect_error(gbx_model_set_labels(model, NULL, 4, &m), GBX_ERROR_NULL, "labels is NULL but label_count is 4",
               "gbx_model_set_labels(NULL labels)");
  expect_error(gbx_model_save(model, NULL), GBX_ERROR_NULL, "path is NULL", "gbx_model_save(NULL path)");
  expect_error(gbx_model_free(NULL), GBX_ERROR_NULL, "model is NULL", "gbx_model_free(NULL)");
  expect_error(gbx_model_name(NULL, &name), GBX_ERROR_NULL, "model is NULL", "gbx_model_name(NULL model)");
  expect_error(gbx_model_name(model, NULL), GBX_ERROR_NULL, "name is NULL", "gbx_model_name(NULL name)");
  expect_error(gbx_model_input_count(model, NULL), GBX_ERROR_NULL, "count is NULL", "gbx_model_input_count(NULL)");
  expect_error(gbx_model_input(model, 0, NULL), GBX_ERROR_NULL, "info is NULL", "gbx_model_input(NULL info)");
  expect_error(gbx_model_tap(model, 0, NULL), GBX_ERROR_NULL, "info is NULL", "gbx_model_tap(NULL info)");
  expect_error(gbx_model_label(model, 0, NULL), GBX_ERROR_NULL, "label is NULL", "gbx_model_label(NULL label)");
  expect_error(gbx_session_create(NULL, 1, NULL, NULL, 0, NULL, 0, &s), GBX_ERROR_NULL, "model is NULL",
               "gbx_session_create(NULL model)");
  expect_error(gbx_session_create(model, 1, NULL, NULL, 0, NULL, 0, NULL), GBX_ERROR_NULL, "out is NULL",
               "gbx_session_create(NULL out)");
  expect_error(gbx_session_create(model, 1, NULL, NULL, 0, NULL, 2, &s), GBX_ERROR_NULL,
               "taps is NULL but tap_count is 2", "gbx_session_create(NULL taps, count 2)");
  expect_error(gbx_session_run(NULL, &input, 1, &r), GBX_ERROR_NULL, "session is NULL", "gbx_session_run(NULL)");
  expect_error(gbx_session_run(session, NULL, 1, &r), GBX_ERROR_NULL, "inputs is NULL but input_count is 1",
               "gbx_session_run(NULL inputs)");
  expect_error(gbx_session_run(session, &input, 1, NULL), GBX_ERROR_NULL, "out is NULL", "gbx_session_run(NULL out)");
  gbx_tensor bad = input;
  bad.name = NULL;
  expect_error(gbx_session_run(session, &bad, 1, &r), GBX_ERROR_NULL, "inputs[0].name is NULL",
               "gbx_session_run(NULL input name)");
  bad = input;
  bad.shape = NULL;
  expect_error(gbx_session_run(session, &bad, 1, &r), GBX_ERROR_NULL, "input 'image': shape is NULL",
               "gbx_session_run(NULL shape)");
  bad = input;
  bad.data = NULL;
  expect_error(gbx_session_run(session, &bad, 1, &r), GBX_ERROR_NULL, "input 'image': data is NULL",
               "gbx_session_run(NULL data)");
  expect_error(gbx_session_explain(session, NULL, &input, 1, NULL, 0, NULL, &r), GBX_ERROR_NULL, "tap is NULL",
               "gbx_session_explain(NULL tap)");
  expect_error(gbx_session_explain(session, "gradcam", &input, 1, NULL, 3, NULL, &r), GBX_ERROR_NULL,
               "targets is NULL but target_count is 3", "gbx_session_explain(NULL targets, count 3)");
  const char *with_null[] = {"gradcam", NULL};
  expect_error(gbx_session_explain_taps(session, NULL, 2, &input, 1, NULL, 0, NULL, &r), GBX_ERROR_NULL,
               "taps is NULL but tap_count is 2", "gbx_session_explain_taps(NULL taps, count 2)");
  expect_error(gbx_session_explain_taps(session, with_null, 2, &input, 1, NULL, 0, NULL, &r), GBX_ERROR_NULL,
               "taps[1] is NULL", "gbx_session_explain_taps(a NULL tap)");
  expect_error(gbx_session_explain_taps(session, several, 3, &input, 1, NULL, 0, NULL, NULL), GBX_ERROR_NULL,
               "out is NULL", "gbx_session_explain_taps(NULL out)");
  require(gbx_session_run(session, &input, 1, &r), "run for the result checks");
  expect_error(gbx_result_count(r, NULL), GBX_ERROR_NULL, "count is NULL", "gbx_result_count(NULL count)");
  expect_error(gbx_result_get(r, 0, NULL), GBX_ERROR_NULL, "output is NULL", "gbx_result_get(NULL output)");
  expect_error(gbx_result_find(r, NULL, &out_logits), GBX_ERROR_NULL, "name is NULL", "gbx_result_find(NULL name)");
  expect_error(gbx_result_find(r, "logits", NULL), GBX_ERROR_NULL, "output is NULL", "gbx_result_find(NULL out)");
  expect_error(gbx_result_free(NULL), GBX_ERROR_NULL, "result is NULL", "gbx_result_free(NULL)");

  /* Handles: freed twice, used after free, of the wrong kind, never made. */
  expect_error(gbx_result_get(r, 9, &out_logits), GBX_ERROR_INPUT, "result index 9 is out of range",
               "gbx_result_get index 9");
  expect_error(gbx_result_find(r, "nope", &out_logits), GBX_ERROR_INPUT, "the result has no tensor 'nope'",
               "gbx_result_find of a name the result lacks");
  require(gbx_result_free(r), "gbx_result_free");
  expect_error(gbx_result_free(r), GBX_ERROR_HANDLE, "freed already", "gbx_result_free twice");
  expect_error(gbx_result_count(r, &count), GBX_ERROR_HANDLE, "freed already", "gbx_result_count after free");
  expect_error(gbx_model_input_count((const gbx_model *)session, &count), GBX_ERROR_HANDLE,
               "a session, not a model", "a session passed as a model");
  expect_error(gbx_session_run((gbx_session *)model, &input, 1, &r), GBX_ERROR_HANDLE, "a model, not a session",
               "a model passed as a session");
  expect_error(gbx_result_count((const gbx_result *)model, &count), GBX_ERROR_HANDLE, "a model, not a result",
               "a model passed as a result");
  expect_error(gbx_model_free((gbx_model *)(uintptr_t)0xdeadbeef), GBX_ERROR_HANDLE, "not a live handle",
               "a pointer the library never made");
  require(gbx_model_free(reloaded), "gbx_model_free");
  expect_error(gbx_model_free(reloaded), GBX_ERROR_HANDLE, "model is not a live handle", "gbx_model_free twice");
  expect_error(gbx_model_name(reloaded, &name), GBX_ERROR_HANDLE, "not a live handle", "a model used after free");
  require(gbx_session_run(reloaded_session, &input, 1, &r), "a session outlives the model handle it came from");
  require(gbx_result_free(r), "gbx_result_free");
  require(gbx_session_free(reloaded_session), "gbx_session_free");
  expect_error(gbx_session_free(reloaded_session), GBX_ERROR_HANDLE, "session is not a live handle",
               "gbx_session_free twice");
  expect_error(gbx_session_run(reloaded_session, &input, 1, &r), GBX_ERROR_HANDLE, "not a live handle",
               "a session used after free");
  check(r == NULL, "a failed call leaves *out NULL");

  /* Inputs that do not fit. */
  bad = input;
  bad.dtype = GBX_I64;
  expect_error(gbx_session_run(session, &bad, 1, &r), GBX_ERROR_INPUT, "input 'image' is i64 but the graph expects f32",
               "wrong dtype (i64 for f32)");
  bad = input;
  bad.dtype = (gbx_dtype)42;
  expect_error(gbx_session_run(session, &bad, 1, &r), GBX_ERROR_INPUT, "unknown dtype 42", "dtype 42");
  int64_t rank3[3] = {3, 3, 32};
  bad = input;
  bad.rank = 3;
  bad.shape = rank3;
  expect_error(gbx_session_run(session, &bad, 1, &r), GBX_ERROR_INPUT,
               "input 'image' has 3 axes [3, 3, 32] but the graph expects 4", "rank 3 for a rank-4 input");
  int64_t wrong[4] = {3, 3, 32, 31};
  bad = input;
  bad.shape = wrong;
  expect_error(gbx_session_run(session, &bad, 1, &r), GBX_ERROR_INPUT,
               "input 'image' has size 31 on axis 3 but the graph expects 32", "shape [3, 3, 32, 31]");
  int64_t negative[4] = {3, -3, 32, 32};
  bad = input;
  bad.shape = negative;
  expect_error(gbx_session_run(session, &bad, 1, &r), GBX_ERROR_INPUT, "size -3 on axis 1", "a negative size");
  bad = input;
  bad.rank = 9;
  expect_error(gbx_session_run(session, &bad, 1, &r), GBX_ERROR_INPUT, "rank 9", "rank 9 (over GBX_MAX_RANK)");
  bad = input;
  bad.name = "img";
  expect_error(gbx_session_run(session, &bad, 1, &r), GBX_ERROR_INPUT, "has no input 'img' (inputs: image)",
               "an unknown input name");
  expect_error(gbx_session_run(session, &bad, 1, &r), GBX_ERROR_INPUT, "input 'image' is missing",
               "…and the input it lacks");
  expect_error(gbx_session_run(session, NULL, 0, &r), GBX_ERROR_INPUT, "input 'image' is missing", "no inputs");
  gbx_tensor twice[2] = {input, input};
  expect_error(gbx_session_run(session, twice, 2, &r), GBX_ERROR_INPUT, "input 'image' is given twice",
               "an input given twice");

  /* Sessions that cannot be made. */
  expect_error(gbx_session_create(model, 0, NULL, NULL, 0, NULL, 0, &s), GBX_ERROR_INPUT,
               "threads must be at least 1", "threads 0");
  const char *unknown_symbol = "Q";
  int64_t one = 1, zero = 0;
  expect_error(gbx_session_create(model, 1, &unknown_symbol, &one, 1, NULL, 0, &s), GBX_ERROR_INPUT,
               "bindings name Q, not a symbol of the model (its symbols: B)", "a binding of an unknown symbol");
  const char *batch = "B";
  expect_error(gbx_session_create(model, 1, &batch, &zero, 1, NULL, 0, &s), GBX_ERROR_INPUT, "binding B = 0",
               "a binding of size 0");
  const char *no_tap = "saliency";
  expect_error(gbx_session_create(model, 1, NULL, NULL, 0, &no_tap, 1, &s), GBX_ERROR_INPUT, "no tap 'saliency'",
               "a session asking for a tap the model lacks");

  /* Explanations that cannot be made. */
  expect_error(gbx_session_explain(session, "saliency", &input, 1, NULL, 0, NULL, &r), GBX_ERROR_INPUT,
               "no tap 'saliency'; taps: gradcam (gradcam), cam (cam), act (activation)",
               "explain a tap the model lacks");
  const char *unknown_taps[] = {"gradcam", "saliency"}, *twice_taps[] = {"cam", "gradcam", "cam"};
  expect_error(gbx_session_explain_taps(session, several, 0, &input, 1, NULL, 0, NULL, &r), GBX_ERROR_INPUT,
               "give at least one tap to explain", "explain_taps with no taps");
  expect_error(gbx_session_explain_taps(session, unknown_taps, 2, &input, 1, NULL, 0, NULL, &r), GBX_ERROR_INPUT,
               "no tap 'saliency'; taps: gradcam (gradcam), cam (cam), act (activation)",
               "explain_taps with a tap the model lacks");
  expect_error(gbx_session_explain_taps(session, twice_taps, 3, &input, 1, NULL, 0, NULL, &r), GBX_ERROR_INPUT,
               "tap cam is asked for twice", "explain_taps with a tap twice");
  check(r == NULL, "a failed explain_taps leaves *out NULL");
  int64_t high[3] = {0, 4, 1}, low[3] = {-2, 0, 0};
  expect_error(gbx_session_explain(session, "gradcam", &input, 1, high, 3, NULL, &r), GBX_ERROR_INPUT,
               "target class 4 is out of range: tiny_cnn has 4 classes (0…3; -1 = predicted)", "target class 4 of 4");
  expect_error(gbx_session_explain(session, "gradcam", &input, 1, low, 3, NULL, &r), GBX_ERROR_INPUT,
               "target class -2 is out of range", "target class -2");
  expect_error(gbx_session_explain(session, "gradcam", &input, 1, high, 2, NULL, &r), GBX_ERROR_INPUT,
               "2 targets for 3 examples", "two targets for three examples");
  expect_error(gbx_session_explain(session, "act", &input, 1, two, 3, NULL, &r), GBX_ERROR_INPUT,
               "explains no class", "a target for a tap that explains no class");
  expect_error(gbx_session_explain(session, "gradcam", &input, 1, NULL, 0, "video", &r), GBX_ERROR_INPUT,
               "scope must be frame or clip, found 'video'", "scope video");
  bad = input;
  bad.dtype = GBX_BOOL;
  expect_error(gbx_session_explain(session, "gradcam", &bad, 1, NULL, 0, NULL, &r), GBX_ERROR_INPUT,
               "input 'image' is bool but the graph expects f32", "explain with a wrong dtype");

  /* Models that cannot be loaded or made. */
  size_t size;
  unsigned char *bytes = read_file(strcat(strcpy(path, dir), "/tiny.model"), &size);
  require(gbx_model_load_bytes(bytes, size, &m), "gbx_model_load_bytes of tiny.model");
  require(gbx_model_free(m), "gbx_model_free");
  expect_error(gbx_model_load_bytes(bytes, size / 2, &m), GBX_ERROR_MODEL, "model bytes: header claims",
               "the first half of a .model's bytes");
  bytes[size - 5] ^= 0x40;
  expect_error(gbx_model_load_bytes(bytes, size, &m), GBX_ERROR_MODEL, "fails its checksum",
               "a .model with a flipped weight bit");
  bytes[size - 5] ^= 0x40;
  bytes[100] ^= 0xFF;
  expect_error(gbx_model_load_bytes(bytes, size, &m), GBX_ERROR_MODEL, "message checksum mismatch",
               "a .model with a flipped message byte");
  expect_error(gbx_model_load_bytes(bytes, 10, &m), GBX_ERROR_MODEL, "shorter than the 64-byte .model header",
               "ten bytes");
  expect_error(gbx_model_load_bytes("GBXMODEL", 0, &m), GBX_ERROR_MODEL, "file is empty", "zero bytes");
  memset(bytes, 0, 128);
  expect_error(gbx_model_load_bytes(bytes, 128, &m), GBX_ERROR_MODEL, "not a Glassbox model", "128 zero bytes");
  char truncated[1024];
  snprintf(truncated, sizeof truncated, "%s/truncated.model", dir);
  unsigned char *original = read_file(strcat(strcpy(path, dir), "/tiny.model"), &size);
  write_file(truncated, original, size - 100);
  expect_error(gbx_model_load(truncated, &m), GBX_ERROR_MODEL, "truncated.model: header claims",
               "a truncated .model file (named in the message)");
  expect_error(gbx_model_load("/nonexistent/missing.model", &m), GBX_ERROR_FILE, "/nonexistent/missing.model",
               "a .model file that does not exist");
  expect_error(gbx_model_load(dir, &m), GBX_ERROR_FILE, dir, "a directory as a model");
  check(m == NULL, "no model handle after the failed loads");
  expect_error(gbx_model_compile_spec("/nonexistent/missing.graph", NULL, NULL, 0, NULL, 0, &m), GBX_ERROR_FILE,
               "/nonexistent/missing.graph: no such file", "a spec file that does not exist");
  char bad_spec[1024];
  snprintf(bad_spec, sizeof bad_spec, "%s/bad.graph", dir);
  const char *text = "graph bad(x: f32[B, 4]) -> (y: f32[B, 2]) {\n  y = linear(x, out: 3)\n}\n";
  write_file(bad_spec, text, strlen(text));
  expect_error(gbx_model_compile_spec(bad_spec, NULL, NULL, 0, NULL, 0, &m), GBX_ERROR_SPEC,
               "bad.graph:1:29: error: output 'y' is declared f32[B, 2] but computed f32[B, 3]",
               "a spec that does not check (file:line:column)");
  expect_error(gbx_model_compile_spec(spec, NULL, NULL, 0, "/nonexistent/w.safetensors", 0, &m), GBX_ERROR_FILE,
               "/nonexistent/w.safetensors", "a weights file that does not exist");
  expect_error(gbx_model_add_tap(model, "gradcam:nothing", &m), GBX_ERROR_INPUT,
               "the graph has no value named 'nothing'", "a tap of a value the graph lacks");
  expect_error(gbx_model_set_labels(model, labels, 3, &m), GBX_ERROR_INPUT, "3 labels but output 'logits' has 4",
               "three labels for four classes");
  expect_error(gbx_model_save(model, "/nonexistent/dir/x.model"), GBX_ERROR_FILE, "/nonexistent/dir/x.model",
               "saving where no folder is");
  expect_error(gbx_model_label(model, 4, &name), GBX_ERROR_INPUT, "label index 4 is out of range (the model has 4)",
               "label index 4");
  expect_error(gbx_model_tap(model, 3, &taps[0]), GBX_ERROR_INPUT, "tap index 3 is out of range (the model has 3)",
               "tap index 3");

  /* After all that, the model still runs and gives the same numbers. */
  require(gbx_session_run(session, &input, 1, &r), "run after the errors");
  out_logits = find(r, "logits");
  check(same(&out_logits, &logits), "after every error above, a run still gives the same logits");
  require(gbx_result_free(r), "gbx_result_free");

  require(gbx_session_free(session), "gbx_session_free");
  require(gbx_session_free(video_session), "gbx_session_free");
  require(gbx_model_free(model), "gbx_model_free");
  require(gbx_model_free(video), "gbx_model_free");
  require(gbx_model_free(compiled), "gbx_model_free");
  require(gbx_model_free(labelled), "gbx_model_free");
  require(gbx_model_free(tapped), "gbx_model_free");
  free(bytes);
  free(original);
  free(v.file);
  free(cam2.file);
  free(x.file);
  free(logits.file);
  free(act.file);
  for (int i = 0; i < 3; i++) {
    free(automatic[i].file);
    free(class0[i].file);
    free(class2[i].file);
  }
  printf("1..%d\n# %d of %d checks failed\n", checks, failures, checks);
  return failures ? 1 : 0;
}
