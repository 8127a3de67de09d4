#ifndef GLASSBOX_BLOCKED_H
#define GLASSBOX_BLOCKED_H

/* Kernels over the channel-blocked layout the compiler's `layout` pass chooses (NCHW16c): one
 * image of C channels (C a multiple of 16) is [C/16][H][W][16], the 16 channels of a block
 * adjacent for each pixel. A 512-bit vector (two 256-bit ones in the AVX2 kernels) holds one
 * pixel's 16 channels of a block. The AVX-512 and AVX2 kernel of each pair compute the same
 * sums in the same order, one fused multiply-add per term: the same bits (tests run both). */

enum { GLASSBOX_CHANNEL_BLOCK = 16 };

/* x[C][plane] (NCHW, one image) into y[C/16][plane][16], blocks blockLo..<blockHi. */
void glassbox_to_blocked(const float *x, float *y, int channels, long plane, int blockLo, int blockHi);
/* y[C/16][plane][16] back into x[C][plane], blocks blockLo..<blockHi. */
void glassbox_from_blocked(const float *y, float *x, int channels, long plane, int blockLo, int blockHi);

/* A convolution whose output is blocked. Its input is blocked too (`plainInput` 0: cin a
 * multiple of 16), or NCHW (`plainInput` 1: any cin, e.g. a network's RGB stem; the last block's
 * missing channels read nothing). cout is a multiple of 16. */
typedef struct {
  int cin, h, w, cout, oh, ow;
  int kh, kw, sy, sx, py, px, dy, dx;
  int plainInput;
  /* cout floats, or null. */
  const float *bias;
  /* The epilogue: y = relu?(sum + residual), residual blocked like the output, or null. */
  int relu;
} glassbox_conv_blocked;

/* OIHW weights [cout][cin][kh][kw] into [cout/16][⌈cin/16⌉][kh][kw][16 input lanes][16 output
 * lanes] (zeros past cin): per output block, input block, tap and input lane, one vector of the
 * block's 16 output channels. */
void glassbox_conv_blocked_pack_weights(const float *w, int cout, int cin, int kh, int kw, float *packed);
/* Floats glassbox_conv_blocked_pack_weights writes. */
long glassbox_conv_blocked_packed_count(int cout, int cin, int kh, int kw);

/* Whether the kernels below take all input blocks of a convolution of `cin` input channels and a
 * kh×kw kernel in one chunk (see conv_blocked.c): then each residual float is read just before
 * the output float at its place is written, its only write, and `residual` may be `out`. */
int glassbox_conv_blocked_one_chunk(int cin, int kh, int kw);

/* Output blocks blockLo..<blockHi at output rows rowLo..<rowHi of one image:
 *   out[ob][oy][ox][l] = relu?(bias[16·ob + l] + Σ x·w + residual[ob][oy][ox][l]),
 * the sum over input blocks, then taps (ky, kx), then input lanes, in order; taps that fall in
 * the padding are skipped (they add nothing). */
void glassbox_conv_blocked_avx512(const glassbox_conv_blocked *c, const float *x, const float *packed, float *out,
                                  const float *residual, int blockLo, int blockHi, int rowLo, int rowHi);
void glassbox_conv_blocked_avx2(const glassbox_conv_blocked *c, const float *x, const float *packed, float *out,
                                const float *residual, int blockLo, int blockHi, int rowLo, int rowHi);

/* Max pooling of blocks blockLo..<blockHi of x[blocks][h][w][16] into output rows rowLo..<rowHi
 * of y[blocks][oh][ow][16]: each output the maximum of its window's inputs inside the image (−∞ padding), a NaN winning
 * as in PyTorch. */
void glassbox_max_pool_blocked(const float *x, float *y, int h, int w, int oh, int ow, int kh, int kw, int sy,
                               int sx, int py, int px, int dy, int dx, int blockLo, int blockHi, int rowLo,
                               int rowHi);
/* The same with one 512-bit vector per output (the same bits: maxima are exact). */
void glassbox_max_pool_blocked_avx512(const float *x, float *y, int h, int w, int oh, int ow, int kh, int kw,
                                      int sy, int sx, int py, int px, int dy, int dx, int blockLo, int blockHi,
                                      int rowLo, int rowHi);
/* Max pooling (dilation 1) of a blocked convolution's result: the pooled map's size oh×ow, the
 * window kh×kw, stride and padding. */
typedef struct {
  int oh, ow, kh, kw, sy, sx, py, px;
} glassbox_max_pool;

/* Floats of the ring the two kernels below keep a convolution's rows in. */
static inline long glassbox_conv_max_pool_ring_count(const glassbox_conv_blocked *c, const glassbox_max_pool *p) {
  return (long)p->kh * c->cout * c->ow;
}

/* Pooled rows rowLo..<rowHi of one image, every block, of max pooling `p` of convolution `c`
 * (all output blocks, no residual), into y[cout/16][p->oh][p->ow][16]: the convolution's rows
 * computed as the window needs them, into `ring` (glassbox_conv_max_pool_ring_count floats, one
 * per core), and pooled from there. Each output is glassbox_max_pool_blocked's of the result
 * glassbox_conv_blocked_* would have written: the same bits. */
void glassbox_conv_max_pool_blocked_avx512(const glassbox_conv_blocked *c, const glassbox_max_pool *p, const float *x,
                                           const float *packed, float *y, float *ring, int rowLo, int rowHi);
void glassbox_conv_max_pool_blocked_avx2(const glassbox_conv_blocked *c, const glassbox_max_pool *p, const float *x,
                                         const float *packed, float *y, float *ring, int rowLo, int rowHi);

#endif
