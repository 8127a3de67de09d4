#include "ckernels.h"

/* No contraction of a*b + c into one FMA: each kernel gives the same bits as the Swift code it
 * stands in for (also without -ffp-contract=off, which a package built as a dependency lacks). */
#pragma clang fp contract(off)

#if defined(__x86_64__)
#include "fastmath16.h"

__attribute__((target("avx512f")))
void glassbox_lstm_cells_avx512(int rows, int hidden, float *gates, long gateStride, float *c, float *h,
                                long stateStride, float *out, long outStride) {
  for (int b = 0; b < rows; b++) {
    const float *gate = gates + b * gateStride;
    float *cb = c + b * stateStride, *hb = h + b * stateStride;
    float *dst = out ? out + b * outStride : 0;
    for (int j = 0; j < hidden; j += 16) {
      const __mmask16 m = hidden - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (hidden - j)) - 1);
      const __m512 i = sigmoid16(_mm512_maskz_loadu_ps(m, gate + j));
      const __m512 f = sigmoid16(_mm512_maskz_loadu_ps(m, gate + hidden + j));
      const __m512 g = tanh16(_mm512_maskz_loadu_ps(m, gate + 2 * hidden + j));
      const __m512 o = sigmoid16(_mm512_maskz_loadu_ps(m, gate + 3 * hidden + j));
      const __m512 cell = _mm512_add_ps(_mm512_mul_ps(f, _mm512_maskz_loadu_ps(m, cb + j)), _mm512_mul_ps(i, g));
      const __m512 hv = _mm512_mul_ps(o, tanh16(cell));
      _mm512_mask_storeu_ps(cb + j, m, cell);
      _mm512_mask_storeu_ps(hb + j, m, hv);
      if (dst) _mm512_mask_storeu_ps(dst + j, m, hv);
    }
  }
}

/* acc[b][0..<n] += Σ_k h[b][k] · w[k][0..<n], eight vectors (128 columns) at a time kept in
 * registers over k, then the rest of the columns a masked vector at a time. */
__attribute__((target("avx512f")))
void glassbox_accumulate_rows_avx512(int rows, int n, int k, const float *w, const float *h, long hStride,
                                     float *acc, long accStride) {
  for (int b = 0; b < rows; b++) {
    const float *hb = h + b * hStride;
    float *ab = acc + b * accStride;
    int j = 0;
    for (; j + 128 <= n; j += 128) {
      __m512 a[8];
      for (int v = 0; v < 8; v++) a[v] = _mm512_loadu_ps(ab + j + 16 * v);
      const float *row = w + j;
      for (int i = 0; i < k; i++, row += n) {
        const __m512 s = _mm512_set1_ps(hb[i]);
        for (int v = 0; v < 8; v++) a[v] = _mm512_fmadd_ps(s, _mm512_loadu_ps(row + 16 * v), a[v]);
      }
      for (int v = 0; v < 8; v++) _mm512_storeu_ps(ab + j + 16 * v, a[v]);
    }
    for (; j < n; j += 16) {
      const __mmask16 m = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
      __m512 a = _mm512_maskz_loadu_ps(m, ab + j);
      for (int i = 0; i < k; i++) {
        a = _mm512_fmadd_ps(_mm512_set1_ps(hb[i]), _mm512_maskz_loadu_ps(m, w + (long)i * n + j), a);
      }
      _mm512_mask_storeu_ps(ab + j, m, a);
    }
  }
}

#else

void glassbox_accumulate_rows_avx512(int rows, int n, int k, const float *w, const float *h, long hStride,
                                     float *acc, long accStride) {
  (void)rows; (void)n; (void)k; (void)w; (void)h; (void)hStride; (void)acc; (void)accStride;
  __builtin_trap(); /* never called: glassbox_cpu_has_avx512() is 0 */
}

void glassbox_lstm_cells_avx512(int rows, int hidden, float *gates, long gateStride, float *c, float *h,
                                long stateStride, float *out, long outStride) {
  (void)rows; (void)hidden; (void)gates; (void)gateStride; (void)c; (void)h; (void)stateStride;
  (void)out; (void)outStride;
  __builtin_trap(); /* never called: glassbox_cpu_has_avx512() is 0 */
}

#endif
