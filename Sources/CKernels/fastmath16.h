#ifndef GLASSBOX_FASTMATH16_H
#define GLASSBOX_FASTMATH16_H

/* GlassboxRuntime's FastMath (exp, sigmoid, tanh) sixteen lanes at a time, for the kernels
 * of this target only (x86-64). */

#include <immintrin.h>

/* GlassboxRuntime's FastMath.exp, sixteen lanes: the same operations in the same order
 * (each addingProduct one fused multiply-add), so the same bits. */
__attribute__((target("avx512f"), always_inline))
static inline __m512 exp16(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-87.33f), hi = _mm512_set1_ps(88.72f);
  /* x.replace(with:where: x < lo / x > hi): a NaN stays NaN. */
  x = _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), lo);
  x = _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), hi);
  const __m512 magic = _mm512_set1_ps(12582912.0f);
  const __m512 shifted = _mm512_add_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(0.44269504f), x), magic);
  const __m512 n = _mm512_sub_ps(shifted, magic);
  __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693359375f), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.1219444e-4f), r);
  __m512 p = _mm512_set1_ps(1.98756915e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.39819995e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665796e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.66666655e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001e-1f));
  const __m512 e = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i bits = _mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_set1_epi32(0x4B400000));
  const __m512 scale = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(bits, _mm512_set1_epi32(127)), 23));
  return _mm512_mul_ps(e, scale);
}

/* 1 / (1 + exp(−x)), −x as Swift's SIMD negation computes it, 0 − x (so a NaN keeps its
 * sign, as there). */
__attribute__((target("avx512f"), always_inline))
static inline __m512 sigmoid16(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 negated = _mm512_sub_ps(_mm512_setzero_ps(), x);
  return _mm512_div_ps(one, _mm512_add_ps(one, exp16(negated)));
}

/* sign(x)·(1 − 2/(e^{2|x|} + 1)). */
__attribute__((target("avx512f"), always_inline))
static inline __m512 tanh16(__m512 x) {
  const __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF);
  const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), magnitude));
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 e = exp16(_mm512_add_ps(a, a));
  const __m512 t = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, one)));
  return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(magnitude, _mm512_castps_si512(t), _mm512_castps_si512(x), 0xCA));
}

#endif
