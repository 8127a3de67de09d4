#include "ckernels.h"

/* No contraction of a*b + c into one FMA: the explicit FMAs below are the only ones, so the AVX-512
 * and AVX2 kernels give the same bits. */
#pragma clang fp contract(off)

#include <string.h>

/* The packed input of one image: for every channel, sy·sx phase planes (phase
 * (fy, fx) at index fy·sx + fx), each a plane of hq rows of wq floats:
 *   q[c][fy·sx + fx][i][j] = x[c][i·sy + fy − py][j·sx + fx − px]   (0 outside the image).
 * Every tap of the convolution then reads, for the output at flat index p = oy·wq + ox, the float
 * at one fixed offset from p in one phase plane of each channel, so a run of consecutive outputs
 * reads a run of consecutive floats. */
void glassbox_conv_direct_pack(const glassbox_conv_direct *c, const float *x, float *q, int channelLo, int channelHi) {
  const int phases = c->phases;
  const long plane = (long)c->hq * c->wq;
  for (int ch = channelLo; ch < channelHi; ch++) {
    const float *src = x + (long)ch * c->h * c->w;
    for (int fy = 0; fy < c->sy; fy++) {
      for (int fx = 0; fx < c->sx && fy * c->sx + fx < phases; fx++) {
        float *dst = q + ((long)ch * phases + fy * c->sx + fx) * plane;
        /* Columns j whose input column j·sx + fx − px lies in 0..<w: jlo..<jhi. */
        const int x0 = fx - c->px;
        int jlo = x0 >= 0 ? 0 : (-x0 + c->sx - 1) / c->sx;
        int jhi = c->w - x0 <= 0 ? 0 : (c->w - x0 + c->sx - 1) / c->sx;
        if (jlo > c->wq) jlo = c->wq;
        if (jhi > c->wq) jhi = c->wq;
        if (jhi < jlo) jhi = jlo;
        for (int i = 0; i < c->hq; i++) {
          float *row = dst + (long)i * c->wq;
          const int iy = i * c->sy + fy - c->py;
          if (iy < 0 || iy >= c->h) {
            memset(row, 0, sizeof(float) * c->wq);
            continue;
          }
          const float *in = src + (long)iy * c->w + x0;
          for (int j = 0; j < jlo; j++) row[j] = 0;
          if (c->sx == 1) {
            memcpy(row + jlo, in + jlo, sizeof(float) * (jhi - jlo));
          } else {
            for (int j = jlo; j < jhi; j++) row[j] = in[(long)j * c->sx];
          }
          for (int j = jhi; j < c->wq; j++) row[j] = 0;
        }
      }
    }
  }
}

/* Weights [cout][cin][kh][kw] (PyTorch's OIHW) into blocks of 8 output channels, each block
 * [cin][kh·kw][8] (the channels past cout zero), the order the kernels read them in. */
void glassbox_conv_direct_pack_weights(const float *w, int cout, int cin, int taps, float *packed) {
  const int blocks = (cout + GLASSBOX_DIRECT_BLOCK - 1) / GLASSBOX_DIRECT_BLOCK;
  for (int b = 0; b < blocks; b++) {
    float *dst = packed + (long)b * cin * taps * GLASSBOX_DIRECT_BLOCK;
    for (int ci = 0; ci < cin; ci++) {
      for (int t = 0; t < taps; t++) {
        for (int r = 0; r < GLASSBOX_DIRECT_BLOCK; r++) {
          const int co = b * GLASSBOX_DIRECT_BLOCK + r;
          dst[((long)ci * taps + t) * GLASSBOX_DIRECT_BLOCK + r] = co < cout ? w[((long)co * cin + ci) * taps + t] : 0;
        }
      }
    }
  }
}

/* Which of `count` flat outputs from p0 are outputs (column below ow, row below oh), as bits, and
 * where the first of them lands in the output plane: consecutive valid flat outputs are
 * consecutive outputs (the columns ow..<wq between two rows are skipped). */
static inline unsigned flat_valid(const glassbox_conv_direct *c, int p0, int count, long *first) {
  if (c->wq == c->ow) {
    /* No dropped columns (a 1×1 convolution): the flat outputs below oh·ow are the outputs. */
    const int left = c->oh * c->ow - p0, n = left < count ? (left > 0 ? left : 0) : count;
    *first = n > 0 ? p0 : -1;
    return (1u << n) - 1;
  }
  int oy = p0 / c->wq, ox = p0 - oy * c->wq;
  if (c->wq >= count && count <= 16) {
    /* The run spans this row and at most the next: the valid lanes are a range in each. */
    const int rest = c->wq - ox; /* lanes left in this row */
    const int a = oy < c->oh ? (c->ow - ox < count ? (c->ow - ox > 0 ? c->ow - ox : 0) : count) : 0;
    const int b = rest < count && oy + 1 < c->oh ? (count - rest < c->ow ? count - rest : c->ow) : 0;
    const unsigned low = (1u << a) - 1, high = ((1u << b) - 1) << (rest < count ? rest : 0);
    *first = a > 0 ? (long)oy * c->ow + ox : b > 0 ? (long)(oy + 1) * c->ow : -1;
    return low | high;
  }
  unsigned valid = 0;
  *first = -1;
  for (int l = 0; l < count; l++) {
    if (oy < c->oh && ox < c->ow) {
      valid |= 1u << l;
      if (*first < 0) *first = (long)oy * c->ow + ox;
    }
    if (++ox == c->wq) { ox = 0; oy++; }
  }
  return valid;
}

/* Stores lanes[0..<count] of flat outputs p0… of output channel co: the valid ones, plus the
 * residual, then ReLU: y = max(acc + residual, 0), as the runtime's Epilogue computes it. */
static inline void store_flat(const glassbox_conv_direct *c, float *out, const float *residual, int co, int p0,
                              const float *lanes, int count) {
  long o;
  const unsigned valid = flat_valid(c, p0, count, &o);
  if (!valid) return;
  o += (long)co * c->oh * c->ow;
  for (int l = 0; l < count; l++) {
    if (!(valid >> l & 1)) continue;
    float v = lanes[l];
    if (residual) v = v + residual[o];
    if (c->relu) v = v > 0 ? v : 0;
    out[o++] = v;
  }
}

#if defined(__x86_64__)
#include <immintrin.h>

/* One channel and tap's terms of the block: J (masked) loads of the packed input from s, 8
 * broadcasts of the weights w[0..<8], 8·J fused multiply-adds into acc. */
#define DIRECT_TERMS(J, s, w)                                                                                \
  {                                                                                                          \
    __m512 v[J];                                                                                             \
    for (int j = 0; j < J; j++) v[j] = _mm512_maskz_loadu_ps(lanes[j], (s) + 16 * j);                         \
    for (int r = 0; r < 8; r++) {                                                                            \
      const __m512 wr = _mm512_set1_ps((w)[r]);                                                              \
      for (int j = 0; j < J; j++) acc[r][j] = _mm512_fmadd_ps(v[j], wr, acc[r][j]);                          \
    }                                                                                                        \
  }

/* One block of 8 output channels by J vectors of 16 flat outputs: 8·J accumulators started from
 * the bias; per channel and tap, J loads of the packed input, 8 broadcasts of the weights and
 * 8·J fused multiply-adds; each output's sum runs over channels, then taps, in order. */
#define DIRECT_AVX512(J)                                                                                     \
  __attribute__((target("avx512f"))) static void direct16x##J(const glassbox_conv_direct *c, const float *q, \
                                                              const float *wb, int block, int p0, float *out, \
                                                              const float *residual) {                      \
    __m512 acc[8][J];                                                                                        \
    for (int r = 0; r < 8; r++) {                                                                            \
      const int co = block * 8 + r;                                                                          \
      const __m512 b = _mm512_set1_ps(c->bias && co < c->cout ? c->bias[co] : 0.0f);                         \
      for (int j = 0; j < J; j++) acc[r][j] = b;                                                             \
    }                                                                                                        \
    const long channel = (long)c->phases * c->hq * c->wq;                                                   \
    /* Lanes loaded: all, or (masked) those below the last flat output. */                                  \
    __mmask16 lanes[J];                                                                                      \
    for (int j = 0; j < J; j++) {                                                                            \
      const long left = c->masked ? (long)c->oh * c->wq - p0 - 16 * j : 16;                                   \
      lanes[j] = left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);             \
    }                                                                                                        \
    const float *w = wb;                                                                                     \
    if (c->taps == 1 && c->offsets[0] == 0) {                                                                \
      /* A pointwise convolution: one tap, the loop over channels only, each channel's run       \
       * fetched into L1 a few channels ahead (a run per channel, a plane apart: more streams     \
       * than the hardware prefetchers follow). */                                                \
      const float *s = q + p0;                                                                               \
      for (int ci = 0; ci < c->cin; ci++, s += channel, w += 8) {                                            \
        for (int j = 0; j < J; j++) _mm_prefetch((const char *)(s + 4 * channel + 16 * j), _MM_HINT_T0);     \
        DIRECT_TERMS(J, s, w)                                                                                \
      }                                                                                                      \
    } else                                                                                                   \
    for (int ci = 0; ci < c->cin; ci++) {                                                                    \
      const float *base = q + ci * channel + p0;                                                             \
      for (int t = 0; t < c->taps; t++, w += 8) {                                                            \
        const float *s = base + c->offsets[t];                                                               \
        DIRECT_TERMS(J, s, w)                                                                                \
      }                                                                                                      \
    }                                                                                                        \
    /* A copy to store from: indexing acc by a run-time row would keep it in memory throughout. */         \
    __m512 done[8 * J];                                                                                      \
    for (int r = 0; r < 8; r++)                                                                              \
      for (int j = 0; j < J; j++) done[r * J + j] = acc[r][j];                                               \
    store16(c, out, residual, block, p0, done, J);                                                           \
  }

/* The valid lanes of each vector packed together (vcompressps) and stored as one run. Inlined, so
 * that the accumulators stay in registers. */
__attribute__((target("avx512f"), always_inline)) static inline void store16(const glassbox_conv_direct *c, float *out,
                                                       const float *residual, int block, int p0,
                                                       const __m512 *acc, int vectors) {
  const long plane = (long)c->oh * c->ow;
  const int rows = c->cout - block * 8 < 8 ? c->cout - block * 8 : 8;
  for (int j = 0; j < vectors; j++) {
    long at;
    const __mmask16 valid = (__mmask16)flat_valid(c, p0 + 16 * j, 16, &at);
    if (!valid) continue;
    const int count = __builtin_popcount(valid);
    const __mmask16 run = count >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
    const __m512 zero = _mm512_setzero_ps();
    for (int r = 0; r < rows; r++) {
      const long o = (long)(block * 8 + r) * plane + at;
      __m512 v = _mm512_maskz_compress_ps(valid, acc[r * vectors + j]);
      if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(run, residual + o));
      if (c->relu) v = _mm512_max_ps(v, zero);
      _mm512_mask_storeu_ps(out + o, run, v);
    }
  }
}

DIRECT_AVX512(1)
DIRECT_AVX512(2)
DIRECT_AVX512(3)

/* Flat outputs per band: a band's input rows in every channel take about 256 KiB (in L2 while
 * every block runs over the band), whole steps of `step` outputs, at least one. Within a band
 * each block's weights stay in L1 or L2 while its steps run; a map smaller than one band
 * (ResNet's layer4) reads each block's weights once. */
static int band_length(const glassbox_conv_direct *c, int step) {
  const long perColumn = (long)c->cin * c->phases * (long)sizeof(float);
  const long budget = (256L << 10) / perColumn - (long)(c->hq - c->oh + 1) * c->wq;
  const long steps = budget / step;
  return (int)(steps < 1 ? step : steps * step);
}

/* Blocks blockLo..<blockHi of 8 output channels over flat outputs pLo..<pHi (pLo a multiple of
 * 48 or the range's start), band by band, three vectors at a time, fewer for the last step. */
__attribute__((target("avx512f")))
void glassbox_conv_direct_avx512(const glassbox_conv_direct *c, const float *q, const float *packed, float *out,
                                 const float *residual, int blockLo, int blockHi, int pLo, int pHi) {
  const long blockSize = (long)c->cin * c->taps * 8;
  const int band = band_length(c, 48);
  for (int lo = pLo; lo < pHi; lo += band) {
    const int hi = lo + band < pHi ? lo + band : pHi;
    for (int b = blockLo; b < blockHi; b++) {
      const float *wb = packed + b * blockSize;
      for (int p = lo; p < hi; p += 48) {
        const int vectors = (hi - p + 15) / 16;
        if (vectors >= 3) direct16x3(c, q, wb, b, p, out, residual);
        else if (vectors == 2) direct16x2(c, q, wb, b, p, out, residual);
        else direct16x1(c, q, wb, b, p, out, residual);
      }
    }
  }
}

/* The AVX2 kernel: half a block (4 output channels) by two vectors of 8 flat outputs (eight
 * accumulators: with twelve the sixteen registers spill), the same sums in the same order. */
__attribute__((target("avx2,fma"))) static void direct8(const glassbox_conv_direct *c, const float *q,
                                                        const float *wb, int block, int half, int p0, int vectors,
                                                        float *out, const float *residual) {
  __m256 acc[4][2];
  for (int r = 0; r < 4; r++) {
    const int co = block * 8 + half * 4 + r;
    const __m256 b = _mm256_set1_ps(c->bias && co < c->cout ? c->bias[co] : 0.0f);
    for (int j = 0; j < 2; j++) acc[r][j] = b;
  }
  const long channel = (long)c->phases * c->hq * c->wq;
  const float *w = wb + half * 4;
  for (int ci = 0; ci < c->cin; ci++) {
    const float *base = q + ci * channel + p0;
    for (int t = 0; t < c->taps; t++, w += 8) {
      const float *s = base + c->offsets[t];
      const __m256 v0 = _mm256_loadu_ps(s), v1 = _mm256_loadu_ps(s + 8);
      for (int r = 0; r < 4; r++) {
        const __m256 wr = _mm256_set1_ps(w[r]);
        acc[r][0] = _mm256_fmadd_ps(v0, wr, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(v1, wr, acc[r][1]);
      }
    }
  }
  /* Stored from a copy: indexing acc by a run-time row would keep it in memory throughout. */
  float lanes[4][16];
  for (int r = 0; r < 4; r++) {
    _mm256_storeu_ps(lanes[r], acc[r][0]);
    _mm256_storeu_ps(lanes[r] + 8, acc[r][1]);
  }
  for (int r = 0; r < 4 && block * 8 + half * 4 + r < c->cout; r++) {
    store_flat(c, out, residual, block * 8 + half * 4 + r, p0, lanes[r], vectors * 8);
  }
}

__attribute__((target("avx2,fma")))
void glassbox_conv_direct_avx2(const glassbox_conv_direct *c, const float *q, const float *packed, float *out,
                               const float *residual, int blockLo, int blockHi, int pLo, int pHi) {
  const long blockSize = (long)c->cin * c->taps * 8;
  const int band = band_length(c, 48);
  for (int lo = pLo; lo < pHi; lo += band) {
    const int hi = lo + band < pHi ? lo + band : pHi;
    for (int b = blockLo; b < blockHi; b++) {
      const float *wb = packed + b * blockSize;
      for (int p = lo; p < hi; p += 16) {
        const int vectors = (hi - p + 7) / 8 < 2 ? (hi - p + 7) / 8 : 2;
        direct8(c, q, wb, b, 0, p, vectors, out, residual);
        if (b * 8 + 4 < c->cout) direct8(c, q, wb, b, 1, p, vectors, out, residual);
      }
    }
  }
}


/* Small maps: 16 output channels per vector, the outputs broadcast. A step takes up to R
 * consecutive outputs (`count`; missing ones repeat the last, and are not stored) by NB blocks of
 * 16 channels: per channel and tap, NB loads of the weights (packed [block][cin][taps][16]),
 * R broadcasts of the inputs the outputs read and R·NB fused multiply-adds. No flat output past
 * a row is computed. R is 7 where it divides the map and 8 does not (a 7×7 map: seven steps,
 * where steps of 8 computed 56 outputs for 49), else 8; three blocks a step (21 or 24
 * accumulators: per FMA fewer loads than two blocks' 16). */
/* One channel and tap's terms of a step: NB loads of the weights from w (blocks blockSize apart), R
 * broadcasts of the outputs' inputs at offset `at` from x[r], R·NB fused multiply-adds into acc. */
#define CHANNEL_TERMS(NB, R, at, w)                                                                             \
  {                                                                                                             \
    const long a_ = (at);                                                                                       \
    __m512 wv[NB];                                                                                              \
    for (int b = 0; b < NB; b++) wv[b] = _mm512_loadu_ps((w) + b * blockSize);                                  \
    for (int r = 0; r < R; r++) {                                                                               \
      const __m512 v = _mm512_set1_ps(x[r][a_]);                                                                \
      for (int b = 0; b < NB; b++) acc[r][b] = _mm512_fmadd_ps(v, wv[b], acc[r][b]);                            \
    }                                                                                                           \
  }

#define CHANNELS_AVX512(NB, R)                                                                                  \
  __attribute__((target("avx512f"))) static void channels16x##NB##x##R(                                        \
      const glassbox_conv_direct *c, const float *q, const float *packed, int block, int o0, int count,         \
      float *out, const float *residual) {                                                                      \
    const float *x[R];                                                                                          \
    for (int r = 0; r < R; r++) {                                                                               \
      const int o = o0 + (r < count ? r : count - 1), oy = o / c->ow;                                           \
      x[r] = q + (long)oy * c->wq + (o - oy * c->ow);                                                           \
    }                                                                                                           \
    __m512 acc[R][NB];                                                                                          \
    for (int b = 0; b < NB; b++) {                                                                              \
      __m512 start = _mm512_setzero_ps();                                                                       \
      if (c->bias) {                                                                                            \
        const int co = (block + b) * 16, left = c->cout - co;                                                   \
        start = _mm512_maskz_loadu_ps(left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1),         \
                                      c->bias + co);                                                            \
      }                                                                                                         \
      for (int r = 0; r < R; r++) acc[r][b] = start;                                                            \
    }                                                                                                           \
    const long channel = (long)c->phases * c->hq * c->wq, blockSize = (long)c->cin * c->taps * 16;              \
    const float *w = packed + block * blockSize;                                                                \
    if (c->taps == 1 && c->offsets[0] == 0) {                                                                   \
      /* A pointwise convolution: one tap, so the loop is over channels only. */                               \
      for (int ci = 0; ci < c->cin; ci++, w += 16) {                                                            \
        CHANNEL_TERMS(NB, R, ci * channel, w)                                                                   \
      }                                                                                                         \
    } else                                                                                                      \
    for (int ci = 0; ci < c->cin; ci++) {                                                                       \
      for (int t = 0; t < c->taps; t++, w += 16) {                                                              \
        CHANNEL_TERMS(NB, R, ci * channel + c->offsets[t], w)                                                   \
      }                                                                                                         \
    }                                                                                                           \
    __m512 done[R * NB];                                                                                        \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int b = 0; b < NB; b++) done[r * NB + b] = acc[r][b];                                                \
    store_channels16(c, out, residual, block, o0, count, done, NB);                                             \
  }

/* Output r of a step, NB·16 channels: lane l goes to channel co + l, a plane apart (a scatter),
 * plus the residual (a gather), then ReLU. */
__attribute__((target("avx512f"), always_inline)) static inline void store_channels16(
    const glassbox_conv_direct *c, float *out, const float *residual, int block, int o0, int count,
    const __m512 *acc, int nb) {
  const long plane = (long)c->oh * c->ow;
  const __m512i lanes = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)plane));
  for (int b = 0; b < nb; b++) {
    const int co = (block + b) * 16, left = c->cout - co;
    if (left <= 0) break;
    const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
    for (int r = 0; r < count; r++) {
      const long at = (long)co * plane + o0 + r;
      __m512 v = acc[r * nb + b];
      if (residual) v = _mm512_add_ps(v, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, lanes, residual + at, 4));
      if (c->relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
      _mm512_mask_i32scatter_ps(out + at, m, lanes, v, 4);
    }
  }
}

CHANNELS_AVX512(1, 7)
CHANNELS_AVX512(2, 7)
CHANNELS_AVX512(3, 7)
CHANNELS_AVX512(1, 8)
CHANNELS_AVX512(2, 8)
CHANNELS_AVX512(3, 8)

int glassbox_conv_channels_step(int outputs) { return outputs % 7 == 0 && outputs % 8 != 0 ? 7 : 8; }

/* Blocks blockLo..<blockHi of 16 output channels at outputs oLo..<oHi (of oh·ow), three blocks
 * and glassbox_conv_channels_step outputs a step. */
__attribute__((target("avx512f")))
void glassbox_conv_channels_avx512(const glassbox_conv_direct *c, const float *q, const float *packed, float *out,
                                   const float *residual, int blockLo, int blockHi, int oLo, int oHi) {
  const int step = glassbox_conv_channels_step(c->oh * c->ow);
  for (int b = blockLo, nb; b < blockHi; b += nb) {
    /* Four blocks left go as two and two, not three and one. */
    const int left = blockHi - b;
    nb = left == 4 ? 2 : left < 3 ? left : 3;
    for (int o = oLo; o < oHi; o += step) {
      const int count = oHi - o < step ? oHi - o : step;
      if (step == 7) {
        if (nb == 3) channels16x3x7(c, q, packed, b, o, count, out, residual);
        else if (nb == 2) channels16x2x7(c, q, packed, b, o, count, out, residual);
        else channels16x1x7(c, q, packed, b, o, count, out, residual);
      } else {
        if (nb == 3) channels16x3x8(c, q, packed, b, o, count, out, residual);
        else if (nb == 2) channels16x2x8(c, q, packed, b, o, count, out, residual);
        else channels16x1x8(c, q, packed, b, o, count, out, residual);
      }
    }
  }
}

/* The AVX2 kernel: one block of 16 channels as two vectors of 8, four outputs a step (eight
 * accumulators), the same sums in the same order. */
__attribute__((target("avx2,fma"))) static void channels8(const glassbox_conv_direct *c, const float *q,
                                                          const float *packed, int block, int o0, int count,
                                                          float *out, const float *residual) {
  long d[4];
  for (int r = 0; r < 4; r++) {
    const int o = o0 + (r < count ? r : count - 1), oy = o / c->ow;
    d[r] = (long)oy * c->wq + (o - oy * c->ow);
  }
  float start[16] = {0};
  const int co = block * 16, left = c->cout - co < 16 ? c->cout - co : 16;
  if (c->bias) for (int l = 0; l < left; l++) start[l] = c->bias[co + l];
  __m256 acc[4][2];
  for (int r = 0; r < 4; r++) {
    acc[r][0] = _mm256_loadu_ps(start);
    acc[r][1] = _mm256_loadu_ps(start + 8);
  }
  const long channel = (long)c->phases * c->hq * c->wq;
  const float *w = packed + block * (long)c->cin * c->taps * 16;
  for (int ci = 0; ci < c->cin; ci++) {
    const float *base = q + ci * channel;
    for (int t = 0; t < c->taps; t++, w += 16) {
      const float *s = base + c->offsets[t];
      const __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8);
      for (int r = 0; r < 4; r++) {
        const __m256 x = _mm256_set1_ps(s[d[r]]);
        acc[r][0] = _mm256_fmadd_ps(x, w0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(x, w1, acc[r][1]);
      }
    }
  }
  float lanes[4][16];
  for (int r = 0; r < 4; r++) {
    _mm256_storeu_ps(lanes[r], acc[r][0]);
    _mm256_storeu_ps(lanes[r] + 8, acc[r][1]);
  }
  const long plane = (long)c->oh * c->ow;
  for (int r = 0; r < count; r++) {
    for (int l = 0; l < left; l++) {
      const long at = (long)(co + l) * plane + o0 + r;
      float v = lanes[r][l];
      if (residual) v = v + residual[at];
      if (c->relu) v = v > 0 ? v : 0;
      out[at] = v;
    }
  }
}

__attribute__((target("avx2,fma")))
void glassbox_conv_channels_avx2(const glassbox_conv_direct *c, const float *q, const float *packed, float *out,
                                 const float *residual, int blockLo, int blockHi, int oLo, int oHi) {
  for (int b = blockLo; b < blockHi; b++) {
    for (int o = oLo; o < oHi; o += 4) channels8(c, q, packed, b, o, oHi - o < 4 ? oHi - o : 4, out, residual);
  }
}

/* OIHW weights [cout][cin][taps] into blocks of 16 output channels, each [cin][taps][16], zeros
 * past cout: the order the channel kernels read them in. */
void glassbox_conv_channels_pack_weights(const float *w, int cout, int cin, int taps, float *packed) {
  const int blocks = (cout + 15) / 16;
  for (int b = 0; b < blocks; b++) {
    float *dst = packed + (long)b * cin * taps * 16;
    for (int ci = 0; ci < cin; ci++) {
      for (int t = 0; t < taps; t++) {
        for (int r = 0; r < 16; r++) {
          const int co = b * 16 + r;
          dst[((long)ci * taps + t) * 16 + r] = co < cout ? w[((long)co * cin + ci) * taps + t] : 0;
        }
      }
    }
  }
}

#else

int glassbox_conv_channels_step(int outputs) { return outputs % 7 == 0 && outputs % 8 != 0 ? 7 : 8; }

void glassbox_conv_direct_avx512(const glassbox_conv_direct *c, const float *q, const float *packed, float *out,
                                 const float *residual, int blockLo, int blockHi, int pLo, int pHi) {
  (void)c; (void)q; (void)packed; (void)out; (void)residual; (void)blockLo; (void)blockHi; (void)pLo; (void)pHi;
  __builtin_trap(); /* never called: glassbox_cpu_has_avx512() is 0 */
}

void glassbox_conv_direct_avx2(const glassbox_conv_direct *c, const float *q, const float *packed, float *out,
                               const float *residual, int blockLo, int blockHi, int pLo, int pHi) {
  (void)c; (void)q; (void)packed; (void)out; (void)residual; (void)blockLo; (void)blockHi; (void)pLo; (void)pHi;
  __builtin_trap(); /* never called: the runtime lowers convolutions directly only on x86-64 */
}

void glassbox_conv_channels_avx512(const glassbox_conv_direct *c, const float *q, const float *packed, float *out,
                                   const float *residual, int blockLo, int blockHi, int oLo, int oHi) {
  (void)c; (void)q; (void)packed; (void)out; (void)residual; (void)blockLo; (void)blockHi; (void)oLo; (void)oHi;
  __builtin_trap(); /* never called: glassbox_cpu_has_avx512() is 0 */
}

void glassbox_conv_channels_avx2(const glassbox_conv_direct *c, const float *q, const float *packed, float *out,
                                 const float *residual, int blockLo, int blockHi, int oLo, int oHi) {
  (void)c; (void)q; (void)packed; (void)out; (void)residual; (void)blockLo; (void)blockHi; (void)oLo; (void)oHi;
  __builtin_trap(); /* never called: the runtime lowers convolutions directly only on x86-64 */
}

void glassbox_conv_channels_pack_weights(const float *w, int cout, int cin, int taps, float *packed) {
  (void)w; (void)cout; (void)cin; (void)taps; (void)packed;
  __builtin_trap();
}

#endif
