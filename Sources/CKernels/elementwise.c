#include "ckernels.h"

/* No contraction of a*b + c into one FMA: each kernel gives the same bits as the Swift code it
 * stands in for (also without -ffp-contract=off, which a package built as a dependency lacks). */
#pragma clang fp contract(off)

#if defined(__x86_64__)
#include "fastmath16.h"

__attribute__((target("avx512f")))
void glassbox_map_avx512(int function, const float *src, float *dst, long count) {
  for (long i = 0; i < count; i += 16) {
    const __mmask16 m = count - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - i)) - 1);
    const __m512 x = _mm512_maskz_loadu_ps(m, src + i);
    _mm512_mask_storeu_ps(dst + i, m, function == GLASSBOX_TANH ? tanh16(x) : sigmoid16(x));
  }
}

#else

void glassbox_map_avx512(int function, const float *src, float *dst, long count) {
  (void)function; (void)src; (void)dst; (void)count;
  __builtin_trap(); /* never called: glassbox_cpu_has_avx512() is 0 */
}

#endif
