#include "ckernels.h"

/* No contraction of a*b + c into one FMA: each kernel gives the same bits as the Swift code it
 * stands in for (also without -ffp-contract=off, which a package built as a dependency lacks). */
#pragma clang fp contract(off)

#if defined(__x86_64__)
#include <immintrin.h>

int glassbox_cpu_has_avx512(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}

/* The lanes of a panel that hold columns below n. */
static inline __mmask16 columns(int width) {
  return width >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << width) - 1);
}

/* Four panels (64 columns) per pass: 24 accumulators, per step of k four loads of the panels,
 * six broadcasts and 24 FMAs (ten loads for 24 FMAs: two panels took eight for twelve, and
 * ran 5–30% slower on this Xeon's n = 128 products, a C program alternating the two); then
 * two panels, then one, for what is left. */
__attribute__((target("avx512f")))
void glassbox_packed_rows_avx512(int count, int n, int k, const float *packed, const glassbox_packed_rows *rows) {
  const float *a0 = rows->a[0], *a1 = rows->a[1], *a2 = rows->a[2];
  const float *a3 = rows->a[3], *a4 = rows->a[4], *a5 = rows->a[5];
  const int panels = (n + 15) / 16;
  int p = 0;
  for (; p + 3 < panels; p += 4) {
    const int j = p * 16;
    const __mmask16 m3 = columns(n - j - 48);
    const float *b0 = packed + (long)p * k * 16, *b1 = b0 + (long)k * 16;
    const float *b2 = b1 + (long)k * 16, *b3 = b2 + (long)k * 16;
    __m512 c[6][4];
    for (int r = 0; r < 6; r++) {
      c[r][0] = _mm512_loadu_ps(rows->init[r] + j);
      c[r][1] = _mm512_loadu_ps(rows->init[r] + j + 16);
      c[r][2] = _mm512_loadu_ps(rows->init[r] + j + 32);
      c[r][3] = _mm512_maskz_loadu_ps(m3, rows->init[r] + j + 48);
    }
    for (int i = 0; i < k; i++) {
      const __m512 w0 = _mm512_loadu_ps(b0 + i * 16), w1 = _mm512_loadu_ps(b1 + i * 16);
      const __m512 w2 = _mm512_loadu_ps(b2 + i * 16), w3 = _mm512_loadu_ps(b3 + i * 16);
#define ROW(r, a) { const __m512 s = _mm512_set1_ps(a[i]); \
      c[r][0] = _mm512_fmadd_ps(s, w0, c[r][0]); c[r][1] = _mm512_fmadd_ps(s, w1, c[r][1]); \
      c[r][2] = _mm512_fmadd_ps(s, w2, c[r][2]); c[r][3] = _mm512_fmadd_ps(s, w3, c[r][3]); }
      ROW(0, a0) ROW(1, a1) ROW(2, a2) ROW(3, a3) ROW(4, a4) ROW(5, a5)
#undef ROW
    }
    for (int r = 0; r < count; r++) {
      _mm512_storeu_ps(rows->c[r] + j, c[r][0]);
      _mm512_storeu_ps(rows->c[r] + j + 16, c[r][1]);
      _mm512_storeu_ps(rows->c[r] + j + 32, c[r][2]);
      _mm512_mask_storeu_ps(rows->c[r] + j + 48, m3, c[r][3]);
    }
  }
  for (; p + 1 < panels; p += 2) {
    const int j = p * 16;
    const __mmask16 m1 = columns(n - j - 16);
    const float *b0 = packed + (long)p * k * 16, *b1 = b0 + (long)k * 16;
    __m512 c[6][2];
    for (int r = 0; r < 6; r++) {
      c[r][0] = _mm512_loadu_ps(rows->init[r] + j);
      c[r][1] = _mm512_maskz_loadu_ps(m1, rows->init[r] + j + 16);
    }
    for (int i = 0; i < k; i++) {
      const __m512 w0 = _mm512_loadu_ps(b0 + i * 16), w1 = _mm512_loadu_ps(b1 + i * 16);
      __m512 s = _mm512_set1_ps(a0[i]);
      c[0][0] = _mm512_fmadd_ps(s, w0, c[0][0]); c[0][1] = _mm512_fmadd_ps(s, w1, c[0][1]);
      s = _mm512_set1_ps(a1[i]);
      c[1][0] = _mm512_fmadd_ps(s, w0, c[1][0]); c[1][1] = _mm512_fmadd_ps(s, w1, c[1][1]);
      s = _mm512_set1_ps(a2[i]);
      c[2][0] = _mm512_fmadd_ps(s, w0, c[2][0]); c[2][1] = _mm512_fmadd_ps(s, w1, c[2][1]);
      s = _mm512_set1_ps(a3[i]);
      c[3][0] = _mm512_fmadd_ps(s, w0, c[3][0]); c[3][1] = _mm512_fmadd_ps(s, w1, c[3][1]);
      s = _mm512_set1_ps(a4[i]);
      c[4][0] = _mm512_fmadd_ps(s, w0, c[4][0]); c[4][1] = _mm512_fmadd_ps(s, w1, c[4][1]);
      s = _mm512_set1_ps(a5[i]);
      c[5][0] = _mm512_fmadd_ps(s, w0, c[5][0]); c[5][1] = _mm512_fmadd_ps(s, w1, c[5][1]);
    }
    for (int r = 0; r < count; r++) {
      _mm512_storeu_ps(rows->c[r] + j, c[r][0]);
      _mm512_mask_storeu_ps(rows->c[r] + j + 16, m1, c[r][1]);
    }
  }
  if (p < panels) {
    const int j = p * 16;
    const __mmask16 m0 = columns(n - j);
    const float *b0 = packed + (long)p * k * 16;
    __m512 c[6];
    for (int r = 0; r < 6; r++) c[r] = _mm512_maskz_loadu_ps(m0, rows->init[r] + j);
    for (int i = 0; i < k; i++) {
      const __m512 w0 = _mm512_loadu_ps(b0 + i * 16);
      c[0] = _mm512_fmadd_ps(_mm512_set1_ps(a0[i]), w0, c[0]);
      c[1] = _mm512_fmadd_ps(_mm512_set1_ps(a1[i]), w0, c[1]);
      c[2] = _mm512_fmadd_ps(_mm512_set1_ps(a2[i]), w0, c[2]);
      c[3] = _mm512_fmadd_ps(_mm512_set1_ps(a3[i]), w0, c[3]);
      c[4] = _mm512_fmadd_ps(_mm512_set1_ps(a4[i]), w0, c[4]);
      c[5] = _mm512_fmadd_ps(_mm512_set1_ps(a5[i]), w0, c[5]);
    }
    for (int r = 0; r < count; r++) _mm512_mask_storeu_ps(rows->c[r] + j, m0, c[r]);
  }
}

#else

int glassbox_cpu_has_avx512(void) { return 0; }

void glassbox_packed_rows_avx512(int count, int n, int k, const float *packed, const glassbox_packed_rows *rows) {
  (void)count; (void)n; (void)k; (void)packed; (void)rows;
  __builtin_trap(); /* never called: glassbox_cpu_has_avx512() is 0 */
}

#endif
