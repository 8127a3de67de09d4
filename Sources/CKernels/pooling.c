#include "ckernels.h"

/* No contraction of a*b + c into one FMA: each kernel gives the same bits as the Swift code it
 * stands in for (also without -ffp-contract=off, which a package built as a dependency lacks). */
#pragma clang fp contract(off)

#if defined(__x86_64__)
#include <immintrin.h>

/* The floats that windows 0..<count of stride 2 read from a 32-float run: 2·count − 1 of
 * them (masked loads read nothing else, so a last window may end where its row does). */
__attribute__((target("avx512f"), always_inline))
static inline __mmask32 reads(int count) {
  return (__mmask32)((1ull << (2 * count - 1)) - 1);
}

/* Column c of up to sixteen windows of stride 2: the even floats of the 32 from p. */
__attribute__((target("avx512f"), always_inline))
static inline __m512 evens(const float *p, __m512i even, __mmask32 m) {
  return _mm512_permutex2var_ps(_mm512_maskz_loadu_ps((__mmask16)m, p), even,
                                _mm512_maskz_loadu_ps((__mmask16)(m >> 16), p + 16));
}

/* Where the 32 floats from row + b lie inside the row's [0, w): the lanes a window may take
 * (the others load −∞, which no comparison takes: the padding of max pooling). */
__attribute__((target("avx512f"), always_inline))
static inline __mmask32 inside(long b, int w) {
  if (b >= 0 && b + 32 <= w) return 0xFFFFFFFFu;
  const long lo = b < 0 ? -b : 0, hi = w - b < 32 ? w - b : 32;
  if (hi <= lo) return 0;
  return (__mmask32)(((1ull << hi) - 1) & ~((1ull << lo) - 1));
}

/* The running maximum m after the next value v of a window, a NaN winning as in PyTorch
 * (v > m or v is NaN: take v). max(v, m) is v where v > m and m where they are equal (−0 and
 * +0: the first kept) or either is NaN; the lanes where v is NaN then take v. */
__attribute__((target("avx512f"), always_inline))
static inline __m512 take(__m512 m, __m512 v) {
  return _mm512_mask_mov_ps(_mm512_max_ps(v, m), _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v);
}

/* Windows per block of a row: four vectors of sixteen, each window row's maxima and the four
 * blocks independent chains. */
enum { GROUPS = 4 };

/* Input rows ahead of the window that the pooling kernels prefetch (two rows from there): a
 * training batch's input (ResNet-18's stem on 64 frames: 51 MB) comes from memory, and the
 * hardware prefetcher, meeting each plane's rows in short runs, left the loads waiting. */
enum { PREFETCH_ROWS = 8 };

__attribute__((target("avx512f")))
void glassbox_max_pool_planes_avx512(int planes, const float *src, float *dst, int h, int w, int oh, int ow,
                                     int kh, int kw, int sy, int py, int px, int dy, int dx) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512 none = _mm512_set1_ps(-__builtin_inff());
  /* The load masks of a block's window columns, the same for every row: [kw][GROUPS][2]. */
  __mmask16 masks[GLASSBOX_MAX_POOL_COLUMNS][GROUPS][2];
  for (int p = 0; p < planes; p++) {
    const float *plane = src + (long)p * h * w;
    float *out = dst + (long)p * oh * ow;
    for (int ox = 0; ox < ow; ox += 16 * GROUPS) {
      int counts[GROUPS];
      /* Whether every window column's 32 floats lie in the row, for sixteen windows (that take
       * all but the last): then plain loads, which cost less than masked ones. */
      _Bool whole[GROUPS];
      for (int g = 0; g < GROUPS; g++) {
        whole[g] = 1;
        const int left = ow - ox - 16 * g;
        counts[g] = left < 0 ? 0 : left > 16 ? 16 : left;
        for (int c = 0; c < kw; c++) {
          const __mmask32 in = inside(2l * (ox + 16 * g) - px + (long)c * dx, w);
          const __mmask32 k = (counts[g] ? reads(counts[g]) : 0) & in;
          masks[c][g][0] = (__mmask16)k;
          masks[c][g][1] = (__mmask16)(k >> 16);
          whole[g] &= counts[g] == 16 && in == 0xFFFFFFFFu;
        }
      }
      for (int oy = 0; oy < oh; oy++) {
        const int y0 = oy * sy - py;
        /* Window rows inside the input: ky in ky0..<ky1 (none: the outputs stay −∞). */
        const int ky0 = y0 >= 0 ? 0 : (-y0 + dy - 1) / dy;
        const int ky1 = kh < (h - y0 + dy - 1) / dy ? kh : (h - y0 + dy - 1) / dy;
        /* Column 0 of window row 0 of the block's first window (before the row where px > 0). */
        const float *first = plane + (long)(y0 + ky0 * dy) * w + 2l * ox - px;
        for (int k = PREFETCH_ROWS; k < PREFETCH_ROWS + 2; k++) {
          const float *ahead = plane + (long)(y0 + k) * w + 2l * ox;
          for (int l = 0; l < 2 * GROUPS; l++) __builtin_prefetch(ahead + 16 * l);
        }
        __m512 m[GROUPS];
        for (int g = 0; g < GROUPS; g++) m[g] = none;
        /* Each window row's maxima in order along the row, then the rows' in order: the same
         * result as one pass in window order (the first maximum, the last NaN). */
        for (int r = 0; r < ky1 - ky0; r++) {
          const float *row = first + (long)r * dy * w;
          __m512 rowMax[GROUPS];
          for (int c = 0; c < kw; c++) {
            for (int g = 0; g < GROUPS; g++) {
              /* No load for a group past the row: a masked load of nothing still costs (and
               * more where it would cross a page). */
              if (!counts[g]) { rowMax[g] = none; continue; }
              const float *at = row + 32 * g + (long)c * dx;
              const __m512 v =
                  whole[g] ? _mm512_permutex2var_ps(_mm512_loadu_ps(at), even, _mm512_loadu_ps(at + 16))
                           : _mm512_permutex2var_ps(_mm512_mask_loadu_ps(none, masks[c][g][0], at), even,
                                                    _mm512_mask_loadu_ps(none, masks[c][g][1], at + 16));
              rowMax[g] = c == 0 ? v : take(rowMax[g], v);
            }
          }
          for (int g = 0; g < GROUPS; g++) m[g] = r == 0 ? rowMax[g] : take(m[g], rowMax[g]);
        }
        for (int g = 0; g < GROUPS; g++)
          _mm512_mask_storeu_ps(out + oy * ow + ox + 16 * g, (__mmask16)((1u << counts[g]) - 1), m[g]);
      }
    }
  }
}

__attribute__((target("avx512f")))
void glassbox_max_pool16_backward_avx512(int count, const float *plane, long firstOffset, long rowStride, int rows,
                                         int columns, long columnStep, const float *dy, float *dx) {
  const __mmask32 m32 = reads(count);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  __m512 m = _mm512_setzero_ps();
  __m512i best = _mm512_setzero_si512();
  for (int k = PREFETCH_ROWS; k < PREFETCH_ROWS + 2; k++) {
    const float *p = plane + firstOffset + k * rowStride;
    __builtin_prefetch(p);
    __builtin_prefetch(p + 16);
  }
  for (int r = 0; r < rows; r++) {
    for (int c = 0; c < columns; c++) {
      const long offset = firstOffset + r * rowStride + c * columnStep;
      const __m512 v = evens(plane + offset, even, m32);
      const __m512i index = _mm512_add_epi32(_mm512_set1_epi32((int)offset), even);
      if (r == 0 && c == 0) {
        m = v;
        best = index;
      } else {
        /* The first maximum, or the last NaN (PyTorch's val > maxval || isnan(val)). */
        const __mmask16 take = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        m = _mm512_mask_mov_ps(m, take, v);
        best = _mm512_mask_mov_epi32(best, take, index);
      }
    }
  }
  /* Added in window order: neighbouring windows can share their maximum. */
  int at[16];
  _mm512_storeu_si512(at, best);
  for (int l = 0; l < count; l++) dx[at[l]] += dy[l];
}

#else

void glassbox_max_pool16_backward_avx512(int count, const float *plane, long firstOffset, long rowStride, int rows,
                                         int columns, long columnStep, const float *dy, float *dx) {
  (void)count; (void)plane; (void)firstOffset; (void)rowStride; (void)rows; (void)columns; (void)columnStep;
  (void)dy; (void)dx;
  __builtin_trap(); /* never called: glassbox_cpu_has_avx512() is 0 */
}

void glassbox_max_pool_planes_avx512(int planes, const float *src, float *dst, int h, int w, int oh, int ow,
                                     int kh, int kw, int sy, int py, int px, int dy, int dx) {
  (void)planes; (void)src; (void)dst; (void)h; (void)w; (void)oh; (void)ow; (void)kh; (void)kw; (void)sy; (void)py;
  (void)px; (void)dy; (void)dx;
  __builtin_trap(); /* never called: glassbox_cpu_has_avx512() is 0 */
}

#endif
