#ifndef GLASSBOX_CKERNELS_H
#define GLASSBOX_CKERNELS_H

/* GlassboxRuntime's AVX-512 microkernels. Swift compiles the runtime for one CPU level (AVX2
 * + FMA); these functions carry their own target attribute and are called only where
 * glassbox_cpu_has_avx512() says the CPU and the OS run 512-bit code. */

/* Whether this CPU runs AVX-512F code (its 512-bit registers enabled by the OS). */
int glassbox_cpu_has_avx512(void);

/* Up to six rows of a product against a weight matrix packed in panels of 16 columns
 * (GlassboxRuntime's PackedGEMM): c[r][0..<n] = init[r][0..<n] + a[r][0..<k] · Wᵀ.
 * Rows past `count` repeat the last row's pointers and are not stored. */
typedef struct {
  const float *a[6];
  const float *init[6];
  float *c[6];
} glassbox_packed_rows;

/* `packed`: (n + 15) / 16 panels, each k runs of 16 floats. Each row's sum runs over k in
 * order with one fused multiply-add per term, lane by lane as PackedGEMM's Swift loop does,
 * so both give the same bits. `init` and `c` are read and written in n floats only. */
void glassbox_packed_rows_avx512(int count, int n, int k, const float *packed, const glassbox_packed_rows *rows);

/* The fused LSTM cell of `rows` batch rows (GlassboxRuntime's LSTMLayer): from each row's
 * summed gate pre-activations gates[b][0..<4·hidden] (i, f, g, o, `gateStride` floats apart),
 * c[b] = σ(f)·c[b] + σ(i)·tanh(g) and h[b] = σ(o)·tanh(c[b]), rows `stateStride` apart;
 * h[b] is also written to out[b] (`outStride` apart) unless `out` is null. The same
 * operations in the same order as the runtime's Swift cell (FastMath), so the same bits. */
void glassbox_lstm_cells_avx512(int rows, int hidden, float *gates, long gateStride, float *c, float *h,
                                long stateStride, float *out, long outStride);

/* acc[b][0..<n] += h[b][0..<k] · w for `rows` rows (h and acc rows `hStride`, `accStride`
 * apart), w being [k, n] row-major: an LSTM's recurrent product row by row against W_hhᵀ.
 * Each sum runs over k in order with one fused multiply-add per term, as the runtime's Swift
 * loop does, so both give the same bits. */
void glassbox_accumulate_rows_avx512(int rows, int n, int k, const float *w, const float *h, long hStride,
                                     float *acc, long accStride);

/* dst[i] = f(src[i]) for `count` floats, f FastMath's sigmoid or tanh (`function`), the same
 * operations in the same order as its eight-lane Swift form, so the same bits. */
enum { GLASSBOX_SIGMOID = 0, GLASSBOX_TANH = 1 };
void glassbox_map_avx512(int function, const float *src, float *dst, long count);

/* Max pooling of horizontal stride 2 over `planes` planes of [h, w] (src) into [oh, ow] (dst):
 * output (oy, ox) is the maximum of window rows ky < kh, columns kx < kw at input
 * (oy·sy − py + ky·dy, 2·ox − px + kx·dx), only those inside the plane, a NaN winning as in
 * PyTorch (the first maximum, the last NaN in window order: the same bits as the runtime's
 * Swift loop); a window with none inside gives −∞. Only the plane's own floats are read.
 * kw ≤ GLASSBOX_MAX_POOL_COLUMNS. */
enum { GLASSBOX_MAX_POOL_COLUMNS = 32 };
void glassbox_max_pool_planes_avx512(int planes, const float *src, float *dst, int h, int w, int oh, int ow,
                                     int kh, int kw, int sy, int py, int px, int dy, int dx);

/* Its gradient: the windows' first maxima found as above (from plane + firstOffset), then
 * dx[argmax of window l] += dy[l] for l = 0..<count in order, as the Swift loop adds them. */
void glassbox_max_pool16_backward_avx512(int count, const float *plane, long firstOffset, long rowStride, int rows,
                                         int columns, long columnStep, const float *dy, float *dx);

/* Direct convolution of one image over a padded, phase-split copy of its input (GlassboxRuntime's
 * DirectConv2d): output channels in blocks of GLASSBOX_DIRECT_BLOCK, outputs on a flat grid
 * p = oy·wq + ox whose columns ox ≥ ow are computed and dropped. `offsets[t]`: where tap t
 * (ky·kw + kx) reads, relative to p, in a channel of the packed input (its phase plane and its
 * row and column shift). `bias` (cout floats) or null; `relu`: the epilogue's ReLU. `phases`: the
 * phase planes packed per channel — sy·sx, or 1 when every tap reads phase (0, 0) (a 1×1
 * convolution); a channel of q is phases·hq·wq floats. `masked`: q may end at the last channel's
 * flat output oh·wq − 1 (a 1×1, stride-1 convolution reading its input in place, wq = ow): the flat
 * AVX-512 kernel loads no lane at or past it; the AVX2 flat kernel needs q packed (masked 0). */
enum { GLASSBOX_DIRECT_BLOCK = 8 };
typedef struct {
  int cin, h, w, cout, oh, ow;
  int sy, sx, py, px;
  int hq, wq;
  int taps;
  const long *offsets;
  const float *bias;
  int relu;
  int phases;
  int masked;
} glassbox_conv_direct;

/* Packs channels channelLo..<channelHi of one image x[cin][h][w] into q: per channel `phases` phase
 * planes of hq·wq floats (the first `phases` in fy·sx + fx order), q[c][fy·sx + fx][i][j] = x[c][i·sy + fy − py][j·sx + fx − px], 0 outside. */
void glassbox_conv_direct_pack(const glassbox_conv_direct *c, const float *x, float *q, int channelLo, int channelHi);

/* OIHW weights [cout][cin][taps] into blocks of 8 output channels, each [cin][taps][8], zeros past cout. */
void glassbox_conv_direct_pack_weights(const float *w, int cout, int cin, int taps, float *packed);

/* Output channel blocks blockLo..<blockHi at flat outputs pLo..<pHi of one image: out[co][oy][ox] =
 * relu?(bias[co] + Σ_ci Σ_t q[ci][p + offsets[t]]·w[co][ci][t] + residual[co][oy][ox]), each sum one fused
 * multiply-add per term, over ci then t in order, so both kernels give the same bits. The kernels read
 * up to 48 floats past flat output pHi − 1 of the last channel's plane (the caller's slack); they write
 * only the valid outputs of their blocks and range. */
void glassbox_conv_direct_avx512(const glassbox_conv_direct *c, const float *q, const float *packed, float *out,
                                 const float *residual, int blockLo, int blockHi, int pLo, int pHi);
void glassbox_conv_direct_avx2(const glassbox_conv_direct *c, const float *q, const float *packed, float *out,
                               const float *residual, int blockLo, int blockHi, int pLo, int pHi);

/* The same convolution for small maps, 16 output channels per vector: blocks blockLo..<blockHi of
 * 16 output channels at outputs oLo..<oHi (indices oy·ow + ox of the output plane), weights packed by
 * glassbox_conv_channels_pack_weights. The same sums in the same order as above. */
void glassbox_conv_channels_avx512(const glassbox_conv_direct *c, const float *q, const float *packed, float *out,
                                   const float *residual, int blockLo, int blockHi, int oLo, int oHi);
void glassbox_conv_channels_avx2(const glassbox_conv_direct *c, const float *q, const float *packed, float *out,
                                 const float *residual, int blockLo, int blockHi, int oLo, int oHi);
/* Outputs a step of glassbox_conv_channels_avx512 on a map of `outputs` (oh·ow): 7 or 8. Ranges of
 * outputs given to it start at multiples of it, so that cores splitting them step as one core does. */
int glassbox_conv_channels_step(int outputs);
/* OIHW weights [cout][cin][taps] into blocks of 16 output channels, each [cin][taps][16], zeros past cout. */
void glassbox_conv_channels_pack_weights(const float *w, int cout, int cin, int taps, float *packed);

#endif
