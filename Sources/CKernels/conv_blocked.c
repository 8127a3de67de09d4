#include "blocked.h"

/* No contraction of a*b + c into one FMA: the explicit FMAs below are the only ones, so the AVX-512
 * and AVX2 kernels give the same bits. */
#pragma clang fp contract(off)

/* Input blocks of a convolution: ⌈cin/16⌉ (a plain input's last one may be partial). */
static inline int input_blocks(int cin) { return (cin + GLASSBOX_CHANNEL_BLOCK - 1) / GLASSBOX_CHANNEL_BLOCK; }

/* Input blocks per chunk: the chunk's weights for `blocks` output blocks within about 32 KiB of
 * the 48 KiB L1 (each block's weights per input block are taps·1 KiB), at least one. (16 KiB
 * chunks ran the pointwise layers 5–10% slower, whole-input ones ResNet-50's 3×3 512 layer 20%
 * slower.) */
static int chunk_blocks(int kh, int kw, int blocks) {
  const long perBlock = (long)blocks * kh * kw * 1024;
  const long n = (32L << 10) / perBlock;
  return n < 1 ? 1 : (int)n;
}

/* One chunk for the widest group (four blocks, the AVX-512 kernel's) is one for every group. */
int glassbox_conv_blocked_one_chunk(int cin, int kh, int kw) { return input_blocks(cin) <= chunk_blocks(kh, kw, 4); }

long glassbox_conv_blocked_packed_count(int cout, int cin, int kh, int kw) {
  return (long)(cout / 16) * input_blocks(cin) * kh * kw * 256;
}

/* packed[ob][ib][ky][kx][il][ol] = w[16·ob + ol][16·ib + il][ky][kx], 0 where 16·ib + il ≥ cin. */
void glassbox_conv_blocked_pack_weights(const float *w, int cout, int cin, int kh, int kw, float *packed) {
  const int nib = input_blocks(cin), taps = kh * kw;
  for (int ob = 0; ob < cout / 16; ob++) {
    for (int ib = 0; ib < nib; ib++) {
      for (int t = 0; t < taps; t++) {
        float *dst = packed + (((long)ob * nib + ib) * taps + t) * 256;
        for (int il = 0; il < 16; il++) {
          const int ci = 16 * ib + il;
          for (int ol = 0; ol < 16; ol++) {
            const int co = 16 * ob + ol;
            dst[il * 16 + ol] = ci < cin ? w[((long)co * cin + ci) * taps + t] : 0;
          }
        }
      }
    }
  }
}

/* The taps of one axis (of k) whose input coordinate i0 + tap·d lies in 0..<n: k0..<k1 (k1 = k0
 * ≤ k when none). */
static inline void tap_range(int i0, int d, int n, int k, int *k0, int *k1) {
  int lo = i0 >= 0 ? 0 : (-i0 + d - 1) / d;
  if (lo > k) lo = k;
  int hi = n - i0 <= 0 ? 0 : (n - i0 + d - 1) / d;
  if (hi > k) hi = k;
  *k0 = lo;
  *k1 = hi > lo ? hi : lo;
}


/* The scalar reorders (the tail of the vector ones, and the whole of them off x86-64). */
static void to_blocked_scalar(const float *x, float *y, long plane, int b, long pLo, long pHi) {
  for (long p = pLo; p < pHi; p++)
    for (int l = 0; l < 16; l++) y[((long)b * plane + p) * 16 + l] = x[(16L * b + l) * plane + p];
}

static void from_blocked_scalar(const float *y, float *x, long plane, int b, long pLo, long pHi) {
  for (long p = pLo; p < pHi; p++)
    for (int l = 0; l < 16; l++) x[(16L * b + l) * plane + p] = y[((long)b * plane + p) * 16 + l];
}

#if defined(__x86_64__)
#include <immintrin.h>

/* ---- Reorders: 8×8 transposes (8 channels by 8 pixels), two per block of 16 channels. ---- */

__attribute__((target("avx2"), always_inline)) static inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

__attribute__((target("avx2")))
void glassbox_to_blocked(const float *x, float *y, int channels, long plane, int blockLo, int blockHi) {
  (void)channels;
  for (int b = blockLo; b < blockHi; b++) {
    long p = 0;
    for (; p + 8 <= plane; p += 8) {
      for (int h = 0; h < 2; h++) {
        __m256 r[8];
        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(x + (16L * b + 8 * h + i) * plane + p);
        transpose8(r);
        for (int k = 0; k < 8; k++) _mm256_storeu_ps(y + ((long)b * plane + p + k) * 16 + 8 * h, r[k]);
      }
    }
    to_blocked_scalar(x, y, plane, b, p, plane);
  }
}

__attribute__((target("avx2")))
void glassbox_from_blocked(const float *y, float *x, int channels, long plane, int blockLo, int blockHi) {
  (void)channels;
  for (int b = blockLo; b < blockHi; b++) {
    long p = 0;
    for (; p + 8 <= plane; p += 8) {
      for (int h = 0; h < 2; h++) {
        __m256 r[8];
        for (int k = 0; k < 8; k++) r[k] = _mm256_loadu_ps(y + ((long)b * plane + p + k) * 16 + 8 * h);
        transpose8(r);
        for (int i = 0; i < 8; i++) _mm256_storeu_ps(x + (16L * b + 8 * h + i) * plane + p, r[i]);
      }
    }
    from_blocked_scalar(y, x, plane, b, p, plane);
  }
}

/* The outputs o of one axis (of `on`) all of whose k taps read inside 0..<n: lo..<hi, where
 * o·s − p ≥ 0 and o·s − p + (k − 1)·d ≤ n − 1. */
static inline void interior(int n, int on, int k, int s, int p, int d, int *lo, int *hi) {
  int a = (p + s - 1) / s;
  const int top = n - 1 + p - (k - 1) * d;
  int b = top < 0 ? 0 : top / s + 1;
  if (a > on) a = on;
  if (b > on) b = on;
  *lo = a;
  *hi = b > a ? b : a;
}

/* ---- The convolution. ----
 *
 * A tile is FB output blocks (16·FB channels) by R consecutive outputs of one row: FB·R
 * accumulators. Per input block, tap (ky, kx) and input lane il it loads the FB weight vectors
 * w[ob][ib][ky][kx][il][·], broadcasts the input float each of the R outputs reads at lane il,
 * and does FB·R fused multiply-adds, so every output's sum runs over input blocks, then taps,
 * then lanes, in order. A tile runs the rows of taps ky0..<ky1 that lie inside the image for its
 * row, and the columns kx0..<kx1 that do for at least one of its outputs. Where a column lies
 * inside the image for all R outputs (always, away from the left and right borders) the lanes
 * run unrolled; where it does not (`border` tiles), the outputs it lies outside of skip its terms
 * (a masked FMA on AVX-512, a branch on AVX2) and read a column inside instead of the padding.
 *
 * The input blocks run in chunks (ib0..<ib1): the sums of a chunk after the first start from
 * the partial sums the previous chunk stored in the output (the same floats: a store and a load
 * round nothing), so the weights of a chunk stay in L1 while the chunk runs over a row. The
 * last chunk adds the residual and applies ReLU as it stores.
 *
 * The accumulators stay in registers only where every loop that indexes them is unrolled:
 * hence the _Pragma("unroll") on each (without them clang kept the array in memory). */
typedef struct {
  const glassbox_conv_blocked *c;
  const float *x;    /* the image's input */
  const float *w;    /* packed weights of the tile's first output block */
  long wBlock;       /* floats from one output block's weights to the next's */
  float *out;        /* output of the tile's first block at its first output */
  const float *res;  /* residual at the same place, or null */
  long oBlock;       /* floats from one output block to the next: oh·ow·16 */
  const float *bias; /* bias of the tile's first channel, or null */
  int oy, ox0;       /* the tile's row and first column */
  int ky0, ky1, kx0, kx1;
  int border;        /* whether some column kx0..<kx1 lies outside the image for some output */
  int ib0, ib1;      /* the chunk of input blocks */
  int first, last;   /* whether the chunk is the first (start from the bias), the last (epilogue) */
} tile_args;

/* What both kernels' tiles compute before their loops: the image's plane, E (floats per pixel of
 * an input block: 16 blocked, 1 plain), the floats from one lane to the next and from one
 * output's input to the next's (stride sx), the taps, and the input row and column of tap (0, 0)
 * of the tile's first output. */
#define TILE_SETUP(PLAIN)                                                                          \
  const glassbox_conv_blocked *c = t->c;                                                         \
  const long hw = (long)c->h * c->w;                                                             \
  const long E = (PLAIN) ? 1 : 16;                                                               \
  const long laneStep = (PLAIN) ? hw : 1, pixStep = (long)c->sx * E;                            \
  const long taps = (long)c->kh * c->kw;                                                          \
  const int iy0 = t->oy * c->sy - c->py, ix0 = t->ox0 * c->sx - c->px;

/* Whether column col0 + j·sx lies in the image for every j < R. */
#define ALL_INSIDE(col0, R) ((col0) >= 0 && (col0) + ((R) - 1) * c->sx < c->w)

/* AVX-512: FB blocks, R outputs; PLAIN: the input is NCHW (lanes a plane apart, the last block's
 * lanes past cin skipped: they are not there to read); POINT: a flat pointwise tile (see
 * conv_blocked), its inputs' offsets constants, which the general loops keep in registers and,
 * with 24 accumulators live, spill to the stack. Inlined into one function per
 * (FB, R, PLAIN, POINT). */
__attribute__((target("avx512f"), always_inline)) static inline void tile512(const tile_args *t, const int FB,
                                                                           const int R, const int PLAIN,
                                                                           const int POINT) {
  TILE_SETUP(PLAIN)
  __m512 acc[4][8];
  _Pragma("unroll") for (int fb = 0; fb < FB; fb++) {
    if (t->first) {
      const __m512 b = t->bias ? _mm512_loadu_ps(t->bias + 16 * fb) : _mm512_setzero_ps();
      _Pragma("unroll") for (int j = 0; j < R; j++) acc[fb][j] = b;
    } else {
      _Pragma("unroll") for (int j = 0; j < R; j++) acc[fb][j] = _mm512_loadu_ps(t->out + fb * t->oBlock + 16 * j);
    }
  }
  const long wBlock = t->wBlock;
  /* Output column ox0 reads input pixel ox0, one tap, no border: the terms of the loops below,
   * in their order. */
  const float *xp0 = t->x + (long)t->ox0 * 16;
  for (int ib = t->ib0; POINT && ib < t->ib1; ib++) {
    const float *xp = xp0 + (long)ib * hw * 16, *wt = t->w + (long)ib * 256;
    _Pragma("unroll") for (int il = 0; il < 16; il++) {
      __m512 wv[4];
      _Pragma("unroll") for (int fb = 0; fb < FB; fb++) wv[fb] = _mm512_loadu_ps(wt + 16 * il + fb * wBlock);
      _Pragma("unroll") for (int j = 0; j < R; j++) {
        const __m512 v = _mm512_set1_ps(xp[16 * j + il]);
        _Pragma("unroll") for (int fb = 0; fb < FB; fb++) acc[fb][j] = _mm512_fmadd_ps(v, wv[fb], acc[fb][j]);
      }
    }
  }
  for (int ib = t->ib0; !POINT && ib < t->ib1; ib++) {
    const float *xb = t->x + (long)ib * hw * 16;
    const float *wb = t->w + (long)ib * taps * 256;
    const int lanes = PLAIN ? (c->cin - 16 * ib < 16 ? c->cin - 16 * ib : 16) : 16;
    for (int ky = t->ky0; ky < t->ky1; ky++) {
      const float *xr = xb + (long)(iy0 + ky * c->dy) * c->w * E;
      for (int kx = t->kx0; kx < t->kx1; kx++) {
        const int col0 = ix0 + kx * c->dx;
        const float *xp = xr + (long)col0 * E;
        const float *wt = wb + (long)(ky * c->kw + kx) * 256;
        /* Lane il's terms: FB weight loads, R broadcasts, FB·R FMAs. */
#define TERMS512(il)                                                                               \
  {                                                                                              \
    __m512 wv[4];                                                                                \
    _Pragma("unroll") for (int fb = 0; fb < FB; fb++) wv[fb] = _mm512_loadu_ps(wt + 16 * (il) + fb * wBlock); \
    _Pragma("unroll") for (int j = 0; j < R; j++) {                                              \
      const __m512 v = _mm512_set1_ps(xp[j * pixStep + (il) * laneStep]);                       \
      _Pragma("unroll") for (int fb = 0; fb < FB; fb++) acc[fb][j] = _mm512_fmadd_ps(v, wv[fb], acc[fb][j]); \
    }                                                                                            \
  }
        if (!t->border || ALL_INSIDE(col0, R)) {
          if (PLAIN) {
            for (int il = 0; il < lanes; il++) TERMS512(il)
          } else {
            _Pragma("unroll") for (int il = 0; il < 16; il++) TERMS512(il)
          }
        } else {
          /* Outputs whose column is in the padding: no terms (mask 0), and they read column 0. */
          long d[8];
          __mmask16 m[8];
          _Pragma("unroll") for (int j = 0; j < R; j++) {
            const int col = col0 + j * c->sx, in = col >= 0 && col < c->w;
            m[j] = in ? (__mmask16)0xFFFF : 0;
            d[j] = (long)((in ? col : 0) - col0) * E;
          }
          for (int il = 0; il < lanes; il++) {
            __m512 wv[4];
            _Pragma("unroll") for (int fb = 0; fb < FB; fb++) wv[fb] = _mm512_loadu_ps(wt + 16 * il + fb * wBlock);
            _Pragma("unroll") for (int j = 0; j < R; j++) {
              const __m512 v = _mm512_set1_ps(xp[d[j] + il * laneStep]);
              _Pragma("unroll") for (int fb = 0; fb < FB; fb++) acc[fb][j] = _mm512_mask3_fmadd_ps(v, wv[fb], acc[fb][j], m[j]);
            }
          }
        }
#undef TERMS512
      }
    }
  }
  const __m512 zero = _mm512_setzero_ps();
  _Pragma("unroll") for (int fb = 0; fb < FB; fb++) {
    _Pragma("unroll") for (int j = 0; j < R; j++) {
      __m512 v = acc[fb][j];
      const long o = fb * t->oBlock + 16 * j;
      if (t->last) {
        if (t->res) v = _mm512_add_ps(v, _mm512_loadu_ps(t->res + o));
        if (c->relu) v = _mm512_max_ps(v, zero);
      }
      _mm512_storeu_ps(t->out + o, v);
    }
  }
}

/* Outputs per tile at most: on AVX-512 6 (four blocks: 24 accumulators, four weight vectors and
 * a broadcast of the 32 registers; at 7 clang spilled and the pointwise layers ran ~15% slower),
 * on AVX2 6 (12 accumulators, two weight vectors and a broadcast of the 16). */
enum { R512 = 6, R256 = 6 };

typedef void (*tile_fn)(const tile_args *);

#define TILE512(FB, R)                                                                             \
  __attribute__((target("avx512f"))) static void tile512_##FB##_##R##_0(const tile_args *t) {     \
    tile512(t, FB, R, 0, 0);                                                                     \
  }                                                                                              \
  __attribute__((target("avx512f"))) static void tile512_##FB##_##R##_1(const tile_args *t) {     \
    tile512(t, FB, R, 1, 0);                                                                     \
  }                                                                                              \
  __attribute__((target("avx512f"))) static void tile512_##FB##_##R##_2(const tile_args *t) {     \
    tile512(t, FB, R, 0, 1);                                                                     \
  }
#define TILE512_ROW(FB) TILE512(FB, 1) TILE512(FB, 2) TILE512(FB, 3) TILE512(FB, 4) TILE512(FB, 5) TILE512(FB, 6)
TILE512_ROW(1)
TILE512_ROW(2)
TILE512_ROW(3)
TILE512_ROW(4)

#define FN512(FB, R) {tile512_##FB##_##R##_0, tile512_##FB##_##R##_1, tile512_##FB##_##R##_2}
#define FN512_ROW(FB) {FN512(FB, 1), FN512(FB, 2), FN512(FB, 3), FN512(FB, 4), FN512(FB, 5), FN512(FB, 6)}
/* [FB − 1][R − 1][kind]: kind 0 a blocked input, 1 a plain one, 2 a flat pointwise tile. */
static const tile_fn tiles512[4][R512][3] = {FN512_ROW(1), FN512_ROW(2), FN512_ROW(3), FN512_ROW(4)};

/* AVX2: one block (two vectors of 8 lanes) by R outputs, the same terms in the same order as
 * tile512. */
__attribute__((target("avx2,fma"), always_inline)) static inline void tile256(const tile_args *t, const int R,
                                                                             const int PLAIN) {
  TILE_SETUP(PLAIN)
  __m256 acc[8][2];
  if (t->first) {
    const __m256 b0 = t->bias ? _mm256_loadu_ps(t->bias) : _mm256_setzero_ps();
    const __m256 b1 = t->bias ? _mm256_loadu_ps(t->bias + 8) : _mm256_setzero_ps();
    _Pragma("unroll") for (int j = 0; j < R; j++) acc[j][0] = b0, acc[j][1] = b1;
  } else {
    _Pragma("unroll") for (int j = 0; j < R; j++) {
      acc[j][0] = _mm256_loadu_ps(t->out + 16 * j);
      acc[j][1] = _mm256_loadu_ps(t->out + 16 * j + 8);
    }
  }
  for (int ib = t->ib0; ib < t->ib1; ib++) {
    const float *xb = t->x + (long)ib * hw * 16;
    const float *wb = t->w + (long)ib * taps * 256;
    const int lanes = PLAIN ? (c->cin - 16 * ib < 16 ? c->cin - 16 * ib : 16) : 16;
    for (int ky = t->ky0; ky < t->ky1; ky++) {
      const float *xr = xb + (long)(iy0 + ky * c->dy) * c->w * E;
      for (int kx = t->kx0; kx < t->kx1; kx++) {
        const int col0 = ix0 + kx * c->dx;
        const float *xp = xr + (long)col0 * E;
        const float *wt = wb + (long)(ky * c->kw + kx) * 256;
#define TERMS256(il)                                                                               \
  {                                                                                              \
    const __m256 w0 = _mm256_loadu_ps(wt + 16 * (il)), w1 = _mm256_loadu_ps(wt + 16 * (il) + 8); \
    _Pragma("unroll") for (int j = 0; j < R; j++) {                                              \
      const __m256 v = _mm256_set1_ps(xp[j * pixStep + (il) * laneStep]);                        \
      acc[j][0] = _mm256_fmadd_ps(v, w0, acc[j][0]);                                             \
      acc[j][1] = _mm256_fmadd_ps(v, w1, acc[j][1]);                                             \
    }                                                                                            \
  }
        if (!t->border || ALL_INSIDE(col0, R)) {
          if (PLAIN) {
            for (int il = 0; il < lanes; il++) TERMS256(il)
          } else {
            _Pragma("unroll") for (int il = 0; il < 16; il++) TERMS256(il)
          }
        } else {
          /* Outputs whose column is in the padding: no terms. */
          int in[8];
          _Pragma("unroll") for (int j = 0; j < R; j++) {
            const int col = col0 + j * c->sx;
            in[j] = col >= 0 && col < c->w;
          }
          for (int il = 0; il < lanes; il++) {
            const __m256 w0 = _mm256_loadu_ps(wt + 16 * il), w1 = _mm256_loadu_ps(wt + 16 * il + 8);
            _Pragma("unroll") for (int j = 0; j < R; j++) {
              if (!in[j]) continue;
              const __m256 v = _mm256_set1_ps(xp[j * pixStep + il * laneStep]);
              acc[j][0] = _mm256_fmadd_ps(v, w0, acc[j][0]);
              acc[j][1] = _mm256_fmadd_ps(v, w1, acc[j][1]);
            }
          }
        }
#undef TERMS256
      }
    }
  }
  const __m256 zero = _mm256_setzero_ps();
  _Pragma("unroll") for (int j = 0; j < R; j++) {
    _Pragma("unroll") for (int h = 0; h < 2; h++) {
      __m256 v = acc[j][h];
      const long o = 16 * j + 8 * h;
      if (t->last) {
        if (t->res) v = _mm256_add_ps(v, _mm256_loadu_ps(t->res + o));
        if (c->relu) v = _mm256_max_ps(v, zero);
      }
      _mm256_storeu_ps(t->out + o, v);
    }
  }
}

#define TILE256(R)                                                                                 \
  __attribute__((target("avx2,fma"))) static void tile256_##R##_0(const tile_args *t) { tile256(t, R, 0); } \
  __attribute__((target("avx2,fma"))) static void tile256_##R##_1(const tile_args *t) { tile256(t, R, 1); }
TILE256(1)
TILE256(2)
TILE256(3)
TILE256(4)
TILE256(5)
TILE256(6)
#define FN256(R) {tile256_##R##_0, tile256_##R##_1}
static const tile_fn tiles256[R256][2] = {FN256(1), FN256(2), FN256(3), FN256(4), FN256(5), FN256(6)};

/* Blocks of the next group when `left` remain: up to maxFB, five left going as three and two,
 * not four and one. */
static inline int group_blocks(int left, int maxFB) {
  return left >= maxFB ? (left == maxFB + 1 && maxFB > 2 ? maxFB - 1 : maxFB) : left;
}

/* The tiles of output blocks blockLo..<blockHi at rows rowLo..<rowHi: groups of up to maxFB
 * blocks, within a group chunks of input blocks, within a chunk rows, within a row tiles of up to
 * maxR outputs (`pick` gives the tile function of a group, a tile's outputs and its kind: a plain
 * input, a flat pointwise tile or any other). A tile that reaches into the columns whose taps
 * leave the image (outside oxLo..<oxHi) is a `border` tile. Output (ob, oy, ox) is written at
 * out + ob·oBlock + ((oy − rowBase)·ow + ox)·16 (the residual read at the same offset): oBlock =
 * oh·ow·16 and rowBase 0 for a whole image, a row's floats and the row itself for one row written
 * alone (`conv_max_pool`). */
static void conv_blocked(const glassbox_conv_blocked *c, const float *x, const float *packed, float *out,
                         const float *residual, int blockLo, int blockHi, int rowLo, int rowHi, int maxFB, int maxR,
                         tile_fn (*pick)(int fb, int r, int kind), long oBlock, int rowBase) {
  const int nib = input_blocks(c->cin);
  const long wBlock = (long)nib * c->kh * c->kw * 256;
  int oxLo, oxHi;
  interior(c->w, c->ow, c->kw, c->sx, c->px, c->dx, &oxLo, &oxHi);
  /* A 1×1 convolution of stride 1 without padding reads output pixel i's input at input pixel i
   * (the map is the same size): its rows run as one row of outputs rowLo·ow..<rowHi·ow, in tiles
   * that may span rows (a 7×7 map: 49 outputs in nine tiles, not seven rows of 6 + 1). */
  const int flat = c->kh == 1 && c->kw == 1 && c->sy == 1 && c->sx == 1 && c->py == 0 && c->px == 0;
  const int rows = flat ? (rowLo < rowHi ? 1 : 0) : rowHi - rowLo;
  const int columns = flat ? (rowHi - rowLo) * c->ow : c->ow, columnLo = flat ? rowLo * c->ow : 0;
  if (flat) {
    oxLo = columnLo;
    oxHi = columnLo + columns;
  }
  tile_args t;
  t.c = c;
  t.x = x;
  t.wBlock = wBlock;
  t.oBlock = oBlock;
  const long perInputBlock = (long)c->kh * c->kw * 256;
  /* The weights are fetched a chunk ahead: each tile of a chunk prefetches its share of the next
   * chunk's lines, so that they arrive spread over the chunk's time instead of stalling the next
   * chunk's first tile. A network whose weights outgrow the caches (ResNet-50's 100 MB) streams
   * them from memory on every run. */
  const int tilesPerRow = (columns + maxR - 1) / maxR, chunkTiles = rows * tilesPerRow;
  for (int b = blockLo, fb; b < blockHi; b += fb) {
    fb = group_blocks(blockHi - b, maxFB);
    t.w = packed + b * wBlock;
    t.bias = c->bias ? c->bias + 16 * b : 0;
    const int step = chunk_blocks(c->kh, c->kw, fb);
    for (int ib = 0; ib < nib; ib += step) {
      t.ib0 = ib;
      t.ib1 = ib + step < nib ? ib + step : nib;
      t.first = ib == 0;
      t.last = t.ib1 == nib;
      /* The next chunk in this loop's order: nextFb streams of nextLines lines from next. */
      const float *next = 0;
      int nextFb = 0;
      long nextLines = 0;
      if (t.ib1 < nib) {
        next = t.w + t.ib1 * perInputBlock;
        nextFb = fb;
        nextLines = (long)((t.ib1 + step < nib ? t.ib1 + step : nib) - t.ib1) * perInputBlock / 16;
      } else if (b + fb < blockHi) {
        nextFb = group_blocks(blockHi - b - fb, maxFB);
        const int nextStep = chunk_blocks(c->kh, c->kw, nextFb);
        next = packed + (b + fb) * wBlock;
        nextLines = (long)(nextStep < nib ? nextStep : nib) * perInputBlock / 16;
      }
      int tile = 0;
      for (int row = 0; row < rows; row++) {
        const int oy = flat ? 0 : rowLo + row;
        t.oy = oy;
        tap_range(oy * c->sy - c->py, c->dy, c->h, c->kh, &t.ky0, &t.ky1);
        /* The row's outputs in as few tiles as maxR allows, of sizes that differ by one at most
         * (56: 6,6,6,6,6,6,5,5,5,5, not nine of 6 and one of 2). */
        for (int ox = columnLo, r; ox < columnLo + columns; ox += r) {
          const int rest = columnLo + columns - ox, tiles = (rest + maxR - 1) / maxR;
          r = (rest + tiles - 1) / tiles;
          t.border = ox < oxLo || ox + r > oxHi;
          if (t.border) {
            /* The columns inside for the last output (the lowest first) to those inside for the
             * first (the highest last). */
            int lo, hi, unused;
            tap_range((ox + r - 1) * c->sx - c->px, c->dx, c->w, c->kw, &lo, &unused);
            tap_range(ox * c->sx - c->px, c->dx, c->w, c->kw, &unused, &hi);
            t.kx0 = lo;
            t.kx1 = hi > lo ? hi : lo;
          } else {
            t.kx0 = 0;
            t.kx1 = c->kw;
          }
          t.ox0 = ox;
          const long o = b * oBlock + ((long)(oy - rowBase) * c->ow + ox) * 16;
          t.out = out + o;
          t.res = residual ? residual + o : 0;
          if (next) {
            const long lo = nextLines * tile / chunkTiles, hi = nextLines * (tile + 1) / chunkTiles;
            for (int s = 0; s < nextFb; s++) {
              for (long l = lo; l < hi; l++) __builtin_prefetch(next + s * wBlock + l * 16, 0, 3);
            }
          }
          tile++;
          pick(fb, r, c->plainInput ? 1 : flat ? 2 : 0)(&t);
        }
      }
    }
  }
}

static tile_fn pick512(int fb, int r, int kind) { return tiles512[fb - 1][r - 1][kind]; }
/* AVX2 runs a flat pointwise tile as any blocked one. */
static tile_fn pick256(int fb, int r, int kind) { (void)fb; return tiles256[r - 1][kind == 1]; }

__attribute__((target("avx512f")))
void glassbox_conv_blocked_avx512(const glassbox_conv_blocked *c, const float *x, const float *packed, float *out,
                                  const float *residual, int blockLo, int blockHi, int rowLo, int rowHi) {
  conv_blocked(c, x, packed, out, residual, blockLo, blockHi, rowLo, rowHi, 4, R512, pick512, (long)c->oh * c->ow * 16,
               0);
}

__attribute__((target("avx2,fma")))
void glassbox_conv_blocked_avx2(const glassbox_conv_blocked *c, const float *x, const float *packed, float *out,
                                const float *residual, int blockLo, int blockHi, int rowLo, int rowHi) {
  conv_blocked(c, x, packed, out, residual, blockLo, blockHi, rowLo, rowHi, 1, R256, pick256, (long)c->oh * c->ow * 16,
               0);
}

/* ---- Max pooling: each output's window's inputs inside the image in window order (rows, then
 * columns), from −∞, a NaN winning. ---- */

/* The windows of blocks blockLo..<blockHi at output rows rowLo..<rowHi, output by output:
 * WINDOW(o, ROW, ky0, ky1, kx0, kx1, dx) computes output o (16 floats) from the window's rows
 * ky0..<ky1, row ky's first column at ROW(ky) (here in block `in`), its columns kx0..<kx1 dx
 * apart. Output columns whose windows lie inside the image take every column of the window;
 * the others (a few at each edge) their range computed. */
#define POOL_ROW(ky) (in + ((long)(y0 + (ky) * dy) * w + x0) * 16)
#define POOL_OUTPUTS(WINDOW)                                                                       \
  int oxLo, oxHi;                                                                                  \
  interior(w, ow, kw, sx, px, dx, &oxLo, &oxHi);                                                   \
  for (int b = blockLo; b < blockHi; b++) {                                                        \
    const float *in = x + (long)b * h * w * 16;                                                    \
    float *o = y + ((long)b * oh + rowLo) * ow * 16;                                               \
    for (int oy = rowLo; oy < rowHi; oy++) {                                                       \
      int ky0, ky1;                                                                                \
      const int y0 = oy * sy - py;                                                                 \
      tap_range(y0, dy, h, kh, &ky0, &ky1);                                                        \
      for (int ox = 0; ox < ow; ox++, o += 16) {                                                   \
        int kx0 = 0, kx1 = kw;                                                                     \
        const int x0 = ox * sx - px;                                                               \
        if (ox < oxLo || ox >= oxHi) tap_range(x0, dx, w, kw, &kx0, &kx1);                        \
        WINDOW(o, POOL_ROW, ky0, ky1, kx0, kx1, dx)                                                \
      }                                                                                            \
    }                                                                                              \
  }

/* The running maximum after v: max(v, m) is v where v > m, else m (also where either is NaN);
 * then the lanes where v is NaN take v. */
__attribute__((target("avx512f"), always_inline)) static inline __m512 take512(__m512 m, __m512 v) {
  return _mm512_mask_mov_ps(_mm512_max_ps(v, m), _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v);
}

__attribute__((target("avx2"), always_inline)) static inline __m256 take256(__m256 m, __m256 v) {
  return _mm256_blendv_ps(_mm256_max_ps(v, m), v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}

/* AVX-512: an output's 16 lanes as one vector. */
#define WINDOW512(o, ROW, ky0, ky1, kx0, kx1, dx)                                                  \
  {                                                                                                \
    __m512 m = _mm512_set1_ps(-__builtin_inff());                                                  \
    for (int ky = ky0; ky < ky1; ky++) {                                                           \
      const float *row = ROW(ky);                                                                  \
      for (int kx = kx0; kx < kx1; kx++) m = take512(m, _mm512_loadu_ps(row + (long)kx * dx * 16)); \
    }                                                                                              \
    _mm512_storeu_ps(o, m);                                                                        \
  }

/* AVX2: as two vectors. */
#define WINDOW256(o, ROW, ky0, ky1, kx0, kx1, dx)                                                  \
  {                                                                                                \
    __m256 m0 = _mm256_set1_ps(-__builtin_inff()), m1 = m0;                                        \
    for (int ky = ky0; ky < ky1; ky++) {                                                           \
      const float *row = ROW(ky);                                                                  \
      for (int kx = kx0; kx < kx1; kx++) {                                                         \
        const float *p = row + (long)kx * dx * 16;                                                 \
        m0 = take256(m0, _mm256_loadu_ps(p));                                                      \
        m1 = take256(m1, _mm256_loadu_ps(p + 8));                                                  \
      }                                                                                            \
    }                                                                                              \
    _mm256_storeu_ps(o, m0);                                                                       \
    _mm256_storeu_ps(o + 8, m1);                                                                   \
  }

__attribute__((target("avx512f")))
void glassbox_max_pool_blocked_avx512(const float *x, float *y, int h, int w, int oh, int ow, int kh, int kw,
                                      int sy, int sx, int py, int px, int dy, int dx, int blockLo, int blockHi,
                                      int rowLo, int rowHi) {
  POOL_OUTPUTS(WINDOW512)
}

__attribute__((target("avx2")))
void glassbox_max_pool_blocked(const float *x, float *y, int h, int w, int oh, int ow, int kh, int kw, int sy,
                               int sx, int py, int px, int dy, int dx, int blockLo, int blockHi, int rowLo,
                               int rowHi) {
  POOL_OUTPUTS(WINDOW256)
}

/* ---- A convolution and the max pooling of its result, one pooled row at a time. ----
 *
 * The convolution's rows go into a ring of p->kh rows (`ring`: [p->kh][cout/16][ow][16], row cy
 * in slot cy mod p->kh), each computed when a pooled row first needs it, and each pooled row is
 * the maximum over the rows its window covers as they lie in the ring: the result never goes
 * out to memory (a ResNet stem's is 3.2 MB, written and read back from past L2 otherwise). The
 * rows a window needs are the last ones computed, at most p->kh of them, so the ring holds
 * them. Each pooled output is glassbox_max_pool_blocked's (the window's rows inside the map,
 * then columns, from −∞, a NaN winning); each convolution output conv_blocked's. Pooling
 * dilation is 1. */
#define CONV_MAX_POOL(CONV, WINDOW)                                                                \
  const int blocks = c->cout / 16;                                                                 \
  const long slot = (long)blocks * c->ow * 16;                                                     \
  int oxLo, oxHi;                                                                                  \
  interior(c->ow, p->ow, p->kw, p->sx, p->px, 1, &oxLo, &oxHi);                                    \
  int next = 0; /* the next convolution row to compute */                                          \
  for (int oy = rowLo; oy < rowHi; oy++) {                                                         \
    int ky0, ky1;                                                                                  \
    const int y0 = oy * p->sy - p->py;                                                             \
    tap_range(y0, 1, c->oh, p->kh, &ky0, &ky1);                                                    \
    if (oy == rowLo || next < y0 + ky0) next = y0 + ky0;                                           \
    for (; next < y0 + ky1; next++) {                                                              \
      prefetch_rows(c, x, next + 1);                                                               \
      CONV(ring + (long)(next % p->kh) * slot, next);                                              \
    }                                                                                              \
    for (int b = 0; b < blocks; b++) {                                                             \
      float *o = y + ((long)b * p->oh + oy) * p->ow * 16;                                          \
      for (int ox = 0; ox < p->ow; ox++, o += 16) {                                                \
        int kx0 = 0, kx1 = p->kw;                                                                  \
        const int x0 = ox * p->sx - p->px;                                                         \
        if (ox < oxLo || ox >= oxHi) tap_range(x0, 1, c->ow, p->kw, &kx0, &kx1);                   \
        WINDOW                                                                                     \
      }                                                                                            \
    }                                                                                              \
  }

/* Prefetches the input rows that convolution row cy reads and row cy − 1 did not (those a
 * stride moves onto), every input block or plane: a network's input is out of cache when a run
 * starts, and the stem otherwise waits for each row as it reaches it. */
static inline void prefetch_rows(const glassbox_conv_blocked *c, const float *x, int cy) {
  if (cy >= c->oh) return;
  const long E = c->plainInput ? 1 : 16, hw = (long)c->h * c->w;
  const int planes = c->plainInput ? c->cin : input_blocks(c->cin), top = cy * c->sy - c->py;
  const int first = cy == 0 ? 0 : (c->kh - 1) * c->dy + 1 - c->sy;
  for (int r = first < 0 ? 0 : first; r <= (c->kh - 1) * c->dy; r++) {
    const int iy = top + r;
    if (iy < 0 || iy >= c->h) continue;
    for (int b = 0; b < planes; b++) {
      const char *row = (const char *)(x + (long)b * hw * E + (long)iy * c->w * E);
      for (long i = 0; i < (long)c->w * E * 4; i += 64) __builtin_prefetch(row + i);
    }
  }
}

/* The row of block b of convolution row y0 + ky in the ring, from column x0. */
#define RING_ROW(ky) (ring + (long)((y0 + (ky)) % p->kh) * slot + (long)b * c->ow * 16 + (long)x0 * 16)

__attribute__((target("avx512f")))
void glassbox_conv_max_pool_blocked_avx512(const glassbox_conv_blocked *c, const glassbox_max_pool *p, const float *x,
                                           const float *packed, float *y, float *ring, int rowLo, int rowHi) {
#define CONV512(dst, cy) conv_blocked(c, x, packed, dst, 0, 0, blocks, cy, (cy) + 1, 4, R512, pick512, c->ow * 16, cy)
  CONV_MAX_POOL(CONV512, WINDOW512(o, RING_ROW, ky0, ky1, kx0, kx1, 1))
#undef CONV512
}

__attribute__((target("avx2,fma")))
void glassbox_conv_max_pool_blocked_avx2(const glassbox_conv_blocked *c, const glassbox_max_pool *p, const float *x,
                                         const float *packed, float *y, float *ring, int rowLo, int rowHi) {
#define CONV256(dst, cy) conv_blocked(c, x, packed, dst, 0, 0, blocks, cy, (cy) + 1, 1, R256, pick256, c->ow * 16, cy)
  CONV_MAX_POOL(CONV256, WINDOW256(o, RING_ROW, ky0, ky1, kx0, kx1, 1))
#undef CONV256
}
#undef RING_ROW
#undef CONV_MAX_POOL

#else

/* One step of max pooling, a NaN winning as in PyTorch: v replaces the running maximum m where
 * v > m or v is NaN. */
static inline float take_scalar(float m, float v) { return v > m || v != v ? v : m; }

void glassbox_to_blocked(const float *x, float *y, int channels, long plane, int blockLo, int blockHi) {
  (void)channels;
  for (int b = blockLo; b < blockHi; b++) to_blocked_scalar(x, y, plane, b, 0, plane);
}

void glassbox_from_blocked(const float *y, float *x, int channels, long plane, int blockLo, int blockHi) {
  (void)channels;
  for (int b = blockLo; b < blockHi; b++) from_blocked_scalar(y, x, plane, b, 0, plane);
}

void glassbox_conv_blocked_avx512(const glassbox_conv_blocked *c, const float *x, const float *packed, float *out,
                                  const float *residual, int blockLo, int blockHi, int rowLo, int rowHi) {
  (void)c; (void)x; (void)packed; (void)out; (void)residual; (void)blockLo; (void)blockHi; (void)rowLo; (void)rowHi;
  __builtin_trap(); /* never called: glassbox_cpu_has_avx512() is 0 */
}

void glassbox_conv_blocked_avx2(const glassbox_conv_blocked *c, const float *x, const float *packed, float *out,
                                const float *residual, int blockLo, int blockHi, int rowLo, int rowHi) {
  (void)c; (void)x; (void)packed; (void)out; (void)residual; (void)blockLo; (void)blockHi; (void)rowLo; (void)rowHi;
  __builtin_trap(); /* never called: the runtime lowers convolutions to blocked kernels only on x86-64 */
}

void glassbox_conv_max_pool_blocked_avx512(const glassbox_conv_blocked *c, const glassbox_max_pool *p, const float *x,
                                           const float *packed, float *y, float *ring, int rowLo, int rowHi) {
  (void)c; (void)p; (void)x; (void)packed; (void)y; (void)ring; (void)rowLo; (void)rowHi;
  __builtin_trap(); /* never called: glassbox_cpu_has_avx512() is 0 */
}

void glassbox_conv_max_pool_blocked_avx2(const glassbox_conv_blocked *c, const glassbox_max_pool *p, const float *x,
                                         const float *packed, float *y, float *ring, int rowLo, int rowHi) {
  (void)c; (void)p; (void)x; (void)packed; (void)y; (void)ring; (void)rowLo; (void)rowHi;
  __builtin_trap(); /* never called: the runtime lowers convolutions to blocked kernels only on x86-64 */
}

void glassbox_max_pool_blocked(const float *x, float *y, int h, int w, int oh, int ow, int kh, int kw, int sy,
                               int sx, int py, int px, int dy, int dx, int blockLo, int blockHi, int rowLo,
                               int rowHi) {
  for (int b = blockLo; b < blockHi; b++) {
    const float *in = x + (long)b * h * w * 16;
    float *o = y + ((long)b * oh + rowLo) * ow * 16;
    for (int oy = rowLo; oy < rowHi; oy++) {
      int ky0, ky1;
      const int y0 = oy * sy - py;
      tap_range(y0, dy, h, kh, &ky0, &ky1);
      for (int ox = 0; ox < ow; ox++, o += 16) {
        int kx0, kx1;
        const int x0 = ox * sx - px;
        tap_range(x0, dx, w, kw, &kx0, &kx1);
        for (int l = 0; l < 16; l++) {
          float m = -__builtin_inff();
          for (int ky = ky0; ky < ky1; ky++)
            for (int kx = kx0; kx < kx1; kx++) m = take_scalar(m, in[((long)(y0 + ky * dy) * w + x0 + kx * dx) * 16 + l]);
          o[l] = m;
        }
      }
    }
  }
}

void glassbox_max_pool_blocked_avx512(const float *x, float *y, int h, int w, int oh, int ow, int kh, int kw,
                                      int sy, int sx, int py, int px, int dy, int dx, int blockLo, int blockHi,
                                      int rowLo, int rowHi) {
  glassbox_max_pool_blocked(x, y, h, w, oh, ow, kh, kw, sy, sx, py, px, dy, dx, blockLo, blockHi, rowLo, rowHi);
}

#endif
