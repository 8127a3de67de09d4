/* The blocked convolution kernel (Sources/CKernels/conv_blocked.c, NCHW16c in and out) against the
 * plain direct kernels (Sources/CKernels/conv_direct.c, NCHW, driven as DirectConvolution.swift
 * drives them) on ResNet-50 batch-1 layer shapes, one core. Each shape runs the two alternately,
 * many times; the best time of each, in ms and in GFLOP/s of the convolution's own work
 * (2·Cout·Cin·kh·kw·OH·OW). The plain kernel's time includes packing its input where Swift packs
 * it (not for a stride-1 1×1 convolution, read in place); the blocked kernel's input is already
 * blocked (the stem's is NCHW, read as it is). Both outputs are checked against each other.
 *
 *   clang -O2 -I Sources/CKernels/include tools/bench/conv_blocked.c -lm -o /tmp/conv_blocked
 *   /tmp/conv_blocked [SECONDS PER SHAPE, default 0.4] [AVX2: 1 times the blocked AVX2 kernel too]
 */
#include "../../Sources/CKernels/conv_blocked.c"
#include "../../Sources/CKernels/conv_direct.c"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct { const char *name; int cin, h, cout, k, s, p; } shape;

static const shape shapes[] = {
    {"stem 7x7 s2 3->64 @224", 3, 224, 64, 7, 2, 3},
    {"1x1 64->256 @56", 64, 56, 256, 1, 1, 0},
    {"1x1 256->64 @56", 256, 56, 64, 1, 1, 0},
    {"1x1 256->128 @56", 256, 56, 128, 1, 1, 0},
    {"3x3 64->64 @56", 64, 56, 64, 3, 1, 1},
    {"3x3 s2 128 56->28", 128, 56, 128, 3, 2, 1},
    {"1x1 512->128 @28", 512, 28, 128, 1, 1, 0},
    {"1x1 128->512 @28", 128, 28, 512, 1, 1, 0},
    {"3x3 128->128 @28", 128, 28, 128, 3, 1, 1},
    {"1x1 1024->256 @14", 1024, 14, 256, 1, 1, 0},
    {"1x1 256->1024 @14", 256, 14, 1024, 1, 1, 0},
    {"3x3 256->256 @14", 256, 14, 256, 3, 1, 1},
    {"3x3 s2 256 14->7", 256, 14, 256, 3, 2, 1},
    {"1x1 2048->512 @7", 2048, 7, 512, 1, 1, 0},
    {"1x1 512->2048 @7", 512, 7, 2048, 1, 1, 0},
    {"3x3 512->512 @7", 512, 7, 512, 3, 1, 1},
};

static float *alloc(long n) {
  float *p = aligned_alloc(64, (n * 4 + 63) / 64 * 64);
  memset(p, 0, n * 4);
  return p;
}

int main(int argc, char **argv) {
  const double seconds = argc > 1 ? atof(argv[1]) : 0.4;
  const int avx2 = argc > 2 && atoi(argv[2]);
  printf("%-24s %10s %8s %10s %8s %7s%s\n", "shape", "blocked ms", "GFLOP/s", "plain ms", "GFLOP/s", "ratio",
         avx2 ? "  blocked-AVX2 ms GFLOP/s" : "");
  for (unsigned si = 0; si < sizeof shapes / sizeof *shapes; si++) {
    const shape S = shapes[si];
    const int cin = S.cin, h = S.h, w = S.h, cout = S.cout, k = S.k, s = S.s, p = S.p;
    const int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
    const long hw = (long)h * w, ohw = (long)oh * ow;
    const int nib = (cin + 15) / 16, plain = cin % 16 != 0;
    float *x = alloc((long)nib * 16 * hw), *wt = alloc((long)cout * cin * k * k), *bias = alloc(cout);
    srand(1);
    for (long i = 0; i < (long)cin * hw; i++) x[i] = (rand() % 1000) / 500.0f - 1;
    for (long i = 0; i < (long)cout * cin * k * k; i++) wt[i] = ((rand() % 1000) / 500.0f - 1) / sqrtf(cin * k * k);
    for (int i = 0; i < cout; i++) bias[i] = i * 0.01f;

    /* Blocked. */
    glassbox_conv_blocked b = {cin, h, w, cout, oh, ow, k, k, s, s, p, p, 1, 1, plain, bias, 1};
    float *xb = plain ? x : alloc((long)nib * 16 * hw);
    if (!plain) glassbox_to_blocked(x, xb, nib * 16, hw, 0, nib);
    float *pb = alloc(glassbox_conv_blocked_packed_count(cout, cin, k, k));
    glassbox_conv_blocked_pack_weights(wt, cout, cin, k, k, pb);
    float *ob = alloc(cout * ohw), *yb = alloc(cout * ohw);

    /* Plain, as DirectConv2d sets it up. */
    const int pointwise = k == 1 && p == 0;
    const int byChannels = ow < 16 && (!pointwise || (ohw < 128 && (long)cin * ohw <= 1 << 17));
    const int inPlace = pointwise && s == 1;
    glassbox_conv_direct c;
    memset(&c, 0, sizeof c);
    c.cin = cin; c.h = h; c.w = w; c.cout = cout; c.oh = oh; c.ow = ow;
    c.sy = c.sx = s; c.py = c.px = p;
    c.hq = oh + (k - 1) / s; c.wq = ow + (k - 1) / s;
    c.taps = k * k;
    c.phases = pointwise ? 1 : s * s;
    c.masked = inPlace && !byChannels;
    c.bias = bias; c.relu = 1;
    long *off = malloc(sizeof(long) * k * k);
    for (int ky = 0; ky < k; ky++)
      for (int kx = 0; kx < k; kx++)
        off[ky * k + kx] = (long)((ky % s) * s + kx % s) * c.hq * c.wq + (ky / s) * c.wq + kx / s;
    c.offsets = off;
    const long qn = (long)cin * c.phases * c.hq * c.wq + 64;
    float *q = alloc(qn);
    const int block = byChannels ? 16 : 8, blocks = (cout + block - 1) / block;
    float *pp = alloc((long)blocks * block * cin * k * k);
    if (byChannels) glassbox_conv_channels_pack_weights(wt, cout, cin, k * k, pp);
    else glassbox_conv_direct_pack_weights(wt, cout, cin, k * k, pp);
    float *op = alloc(cout * ohw);
    const int outputs = byChannels ? (int)ohw : oh * c.wq;

    double bestB = 1e9, bestP = 1e9, best2 = 1e9;
    const double start = now();
    for (int rep = 0; rep < 3 || now() - start < seconds; rep++) {
      double t = now();
      glassbox_conv_blocked_avx512(&b, xb, pb, ob, 0, 0, cout / 16, 0, oh);
      t = now() - t;
      if (t < bestB) bestB = t;
      t = now();
      const float *in = x;
      if (!inPlace) {
        glassbox_conv_direct_pack(&c, x, q, 0, cin);
        in = q;
      }
      if (byChannels) glassbox_conv_channels_avx512(&c, in, pp, op, 0, 0, blocks, 0, outputs);
      else glassbox_conv_direct_avx512(&c, in, pp, op, 0, 0, blocks, 0, outputs);
      t = now() - t;
      if (t < bestP) bestP = t;
      if (avx2) {
        t = now();
        glassbox_conv_blocked_avx2(&b, xb, pb, yb, 0, 0, cout / 16, 0, oh);
        t = now() - t;
        if (t < best2) best2 = t;
      }
    }
    glassbox_from_blocked(ob, yb, cout, ohw, 0, cout / 16);
    double err = 0;
    for (long i = 0; i < cout * ohw; i++) err = fmax(err, fabs(yb[i] - op[i]));
    const double flop = 2.0 * cout * cin * k * k * ohw;
    printf("%-24s %10.3f %8.1f %10.3f %8.1f %7.2f", S.name, bestB * 1e3, flop / bestB / 1e9, bestP * 1e3,
           flop / bestP / 1e9, bestP / bestB);
    if (avx2) printf("  %10.3f %6.1f", best2 * 1e3, flop / best2 / 1e9);
    printf("%s\n", err > 1e-3 ? "  MISMATCH" : "");
    free(x); free(wt); free(bias); if (!plain) free(xb); free(pb); free(ob); free(yb); free(off); free(q); free(pp);
    free(op);
  }
  return 0;
}
