/* The C side of tools/bench/api_overhead.py: the time of one gbx_session_run (and the
 * gbx_result_free of its result) on a model with one float32 input, called in a loop.
 *
 *   api_overhead MODEL THREADS CALLS D0 D1 ...      (the input's shape)
 *
 * Warms up for at least 250 ms (this VM's cores take ~100 ms of load to reach full speed),
 * then prints one JSON object: the median and the 10th and 90th percentiles in microseconds.
 */
#define _POSIX_C_SOURCE 200809L
#include <glassbox.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

#define CHECK(call)                                                      \
  do {                                                                   \
    if ((call) != GBX_OK) {                                              \
      fprintf(stderr, "api_overhead: %s: %s\n", #call, gbx_last_error()); \
      return 1;                                                          \
    }                                                                    \
  } while (0)

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: api_overhead MODEL THREADS CALLS D0 [D1 ...]\n");
    return 2;
  }
  int threads = atoi(argv[2]), calls = atoi(argv[3]), rank = argc - 4;
  int64_t shape[GBX_MAX_RANK];
  size_t count = 1;
  for (int i = 0; i < rank && i < GBX_MAX_RANK; i++) {
    shape[i] = atoll(argv[4 + i]);
    count *= (size_t)shape[i];
  }
  float *x = malloc(count * sizeof(float));
  double *times = malloc((size_t)calls * sizeof(double));
  if (!x || !times || calls < 1) return 1;
  for (size_t i = 0; i < count; i++) x[i] = (float)sin((double)i * 0.37);

  gbx_model *model;
  gbx_session *session;
  gbx_tensor_info info;
  CHECK(gbx_model_load(argv[1], &model));
  CHECK(gbx_model_input(model, 0, &info));
  CHECK(gbx_session_create(model, threads, NULL, NULL, 0, NULL, 0, &session));
  gbx_tensor input = {info.name, GBX_F32, rank, shape, x};
  gbx_result *result;
  double start = now_us();
  for (int i = 0; i < 10 || now_us() - start < 250e3; i++) {
    CHECK(gbx_session_run(session, &input, 1, &result));
    CHECK(gbx_result_free(result));
  }
  for (int i = 0; i < calls; i++) {
    double t0 = now_us();
    CHECK(gbx_session_run(session, &input, 1, &result));
    CHECK(gbx_result_free(result));
    times[i] = now_us() - t0;
  }
  qsort(times, (size_t)calls, sizeof(double), by_value);
  printf("{\"median_us\": %.3f, \"p10_us\": %.3f, \"p90_us\": %.3f, \"calls\": %d}\n", times[calls / 2],
         times[calls / 10], times[calls * 9 / 10], calls);
  CHECK(gbx_session_free(session));
  CHECK(gbx_model_free(model));
  free(times);
  free(x);
  return 0;
}
