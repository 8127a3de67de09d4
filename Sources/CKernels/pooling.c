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

__attribute__((target("avx512f")))
void glassbox_max_pool16_avx512(int count, const float *first, long rowStride, int rows, int columns,
                                long columnStep, float *out) {
  const __mmask32 m32 = reads(count);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  __m512 m = _mm512_set1_ps(-__builtin_inff());
  for (int r = 0; r < rows; r++) {
    for (int c = 0; c < columns; c++) {
      const __m512 v = evens(first + r * rowStride + c * columnStep, even, m32);
      /* v > m, or v is NaN: NaN wins, as in PyTorch. */
      const __mmask16 take = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
      m = _mm512_mask_mov_ps(m, take, v);
    }
  }
  _mm512_mask_storeu_ps(out, (__mmask16)((1u << count) - 1), m);
}

__attribute__((target("avx512f")))
void glassbox_max_pool16_backward_avx512(int count, const float *plane, long firstOffset, long rowStride, int rows,
                                         int columns, long columnStep, const float *dy, float *dx) {
  const __mmask32 m32 = reads(count);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  __m512 m = _mm512_setzero_ps();
  __m512i best = _mm512_setzero_si512();
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

void glassbox_max_pool16_avx512(int count, const float *first, long rowStride, int rows, int columns,
                                long columnStep, float *out) {
  (void)count; (void)first; (void)rowStride; (void)rows; (void)columns; (void)columnStep; (void)out;
  __builtin_trap(); /* never called: glassbox_cpu_has_avx512() is 0 */
}

void glassbox_max_pool16_backward_avx512(int count, const float *plane, long firstOffset, long rowStride, int rows,
                                         int columns, long columnStep, const float *dy, float *dx) {
  (void)count; (void)plane; (void)firstOffset; (void)rowStride; (void)rows; (void)columns; (void)columnStep;
  (void)dy; (void)dx;
  __builtin_trap(); /* never called: glassbox_cpu_has_avx512() is 0 */
}

#endif
