import GlassboxIR
import GlassboxPasses
import GlassboxReference
import GlassboxRuntime
import Testing

/// The compiled program against the Float64 reference interpreter on graphs that take kernel
/// paths the PyTorch fixtures do not (batched LSTM recurrences, scalar tails, aliases reused).
struct InterpreterEquivalenceTests {
  static let specs: [String] = [
    // Batch ≥ 8: the recurrence runs as one GEMM per step; hidden 16: vectorised cell.
    """
    graph g(x: f32[9, 6, 5]) -> (y: f32[9, 6, 32]) {
      y = lstm(x, hidden: 16, bidirectional: true)
    }
    """,
    // Hidden 5: scalar cell; unidirectional; batch 3.
    """
    graph g(x: f32[3, 7, 4]) -> (y: f32[3, 7, 5]) {
      y = lstm(x, hidden: 5)
    }
    """,
    // Only the last step, batched (GEMM recurrences) and single, vectorised and scalar cells.
    """
    graph g(x: f32[9, 6, 5], s: f32[1, 4, 3]) -> (y: f32[9, 32], z: f32[1, 10]) {
      y = lstm(x, hidden: 16, bidirectional: true, last: true)
      z = lstm(s, hidden: 5, bidirectional: true, last: true)
    }
    """,
    // Batch 17 over two cores: one direction after the other, the recurrence's batch rows
    // split (8 and 9 rows, each a GEMM per step) — last step only, and a whole
    // unidirectional sequence.
    """
    graph g(x: f32[17, 5, 4]) -> (y: f32[17, 32], w: f32[17, 5, 8]) {
      y = lstm(x, hidden: 16, bidirectional: true, last: true)
      w = lstm(x, hidden: 8)
    }
    """,
    // Sequences longer than one chunk of projection (`LSTMLayer.chunkFloats`): batch 9,
    // hidden 16 projects 455 steps at a time (chunks 455, 455, 90; the reverse direction starts
    // in the short one); batch 17, last step only, 240 at a time, each core projecting its rows.
    """
    graph g(x: f32[9, 1000, 5], s: f32[17, 500, 3]) -> (y: f32[9, 1000, 32], z: f32[17, 32]) {
      y = lstm(x, hidden: 16, bidirectional: true)
      z = lstm(s, hidden: 16, bidirectional: true, last: true)
    }
    """,
    // Softmaxes over a middle axis: 75 inner positions (a block of 64, one vector and three
    // single lanes), 130 (two blocks and two lanes), 16 (two vectors).
    """
    graph g(x: f32[2, 37, 75], y: f32[3, 9, 130], z: f32[4, 5, 16]) -> (s: f32[2, 37, 75], l: f32[2, 37, 75], t: f32[3, 9, 130], u: f32[4, 5, 16], v: f32[4, 5, 16]) {
      s = softmax(x, axis: 1)
      l = log_softmax(x, axis: 1)
      t = softmax(y, axis: 1)
      u = softmax(z, axis: 1)
      v = log_softmax(z, axis: 1)
    }
    """,
    // Explicit fused cells (what unroll-lstm emits): batch 2, hidden 3 and 19 (two vectors and
    // three units).
    """
    graph g(gx: f32[2, 12], h: f32[2, 3], c: f32[2, 3], w: f32[12, 3], kx: f32[2, 76], k: f32[2, 19], kc: f32[2, 19], kw: f32[76, 19]) -> (h1: f32[2, 3], c1: f32[2, 3], k1: f32[2, 19], kc1: f32[2, 19]) {
      h1, c1 = lstm_cell(gx, h, c, w)
      k1, kc1 = lstm_cell(kx, k, kc, kw)
    }
    """,
    // Cells backwards: batches of 2 and 3 (two GEMMs; hidden 3, and 19: two vectors and three
    // units); one sequence, one pass over the weights, eight units at a time over two cores
    // (hidden 76: nine blocks and four units) or one (hidden 13).
    """
    graph g(kh: f32[3, 19], kc: f32[3, 19], kx: f32[3, 76], k: f32[3, 19], kd: f32[3, 19], kw: f32[76, 19], dh: f32[2, 3], dc: f32[2, 3], gx: f32[2, 12], h: f32[2, 3], c: f32[2, 3], w: f32[12, 3], eh: f32[1, 76], ec: f32[1, 76], ex: f32[1, 304], e: f32[1, 76], ed: f32[1, 76], v: f32[304, 76], fh: f32[1, 13], fc: f32[1, 13], fx: f32[1, 52], f: f32[1, 13], fd: f32[1, 13], u: f32[52, 13]) -> (kg: f32[3, 76], kh0: f32[3, 19], kc0: f32[3, 19], dg: f32[2, 12], dh0: f32[2, 3], dc0: f32[2, 3], eg: f32[1, 304], eh0: f32[1, 76], ec0: f32[1, 76], fg: f32[1, 52], fh0: f32[1, 13], fc0: f32[1, 13]) {
      kg, kh0, kc0 = lstm_cell_backward(kh, kc, kx, k, kd, kw)
      dg, dh0, dc0 = lstm_cell_backward(dh, dc, gx, h, c, w)
      eg, eh0, ec0 = lstm_cell_backward(eh, ec, ex, e, ed, v)
      fg, fh0, fc0 = lstm_cell_backward(fh, fc, fx, f, fd, u)
    }
    """,
    // A value used twice, an alias (reshape) feeding two users, broadcasting both ways.
    """
    graph g(x: f32[2, 3, 4], b: f32[4]) -> (y: f32[2, 12], z: f32[3, 2, 4]) {
      r = relu(x)
      s = add(r, mul(r, b))
      y = reshape(s, shape: [2, 12])
      z = transpose(sub(sigmoid(s), tanh(x)), perm: [1, 0, 2])
    }
    """,
    // A fused elementwise program over more than one 512-element block, with a scalar
    // operand (read by a binary step and by exp, which fills a block with one value), every
    // step code and a register read twice: r3 = a + b, r4 = r3 − k, r5 = r4·r4, r6 = r5/b,
    // r7 = relu(r6), r8 = σ(r7), r9 = tanh(r8), r10 = r9·r9, r11 = maximum(r10, k),
    // r12 = minimum(k, r11), r13 = |a|, r14 = √r13, r15 = log r14, r16 = exp r15,
    // r17 = erf b, r18 = r16^r17, r19 = exp k, r20 = r19·r18, y = r12 + r20.
    """
    graph g(a: f32[3, 700], b: f32[3, 700], k: f32[]) -> (y: f32[3, 700]) {
      y = fused_elementwise(a, b, k, program: [0, 0, 1, 1, 3, 2, 2, 4, 4, 3, 5, 1, 4, 6, 0, 5, 7, 0, 6, 8, 0,
                                               2, 9, 9, 7, 10, 2, 8, 2, 11, 13, 0, 0, 12, 13, 0, 11, 14, 0,
                                               10, 15, 0, 14, 1, 0, 9, 16, 17, 10, 2, 0, 2, 19, 18, 0, 12, 20])
    }
    """,
    // The elementwise math ops over rows of 37 (four vectors and a tail of five): exp, log and
    // sqrt of positive values, erf, abs (their limits: UnaryKernelTests); pow with a
    // broadcast exponent, a scalar one (libm) and 2 (x·x); maximum and minimum with a row and a
    // scalar broadcast, either side.
    """
    graph g(x: f32[3, 5, 37], r: f32[37]) -> (
      e: f32[3, 5, 37], l: f32[3, 5, 37], q: f32[3, 5, 37], f: f32[3, 5, 37], a: f32[3, 5, 37],
      p: f32[3, 5, 37], s: f32[3, 5, 37], t: f32[3, 5, 37], m: f32[3, 5, 37], n: f32[3, 5, 37]) {
      e = exp(x)
      l = log(abs(x))
      q = sqrt(abs(x))
      f = erf(mul(x, constant(value: 3.0)))
      a = abs(x)
      p = pow(abs(x), r)
      s = pow(abs(x), constant(value: 0.75))
      t = pow(x, constant(value: 2.0))
      m = maximum(x, r)
      n = minimum(constant(value: 0.25), x)
    }
    """,
    // Padding: reflect over 2·3·211·236 floats (rows split over two cores), constant with the
    // outer axes padded (rows wholly of the value), edge of one axis and of a scalar (no axes).
    """
    graph g(x: f32[2, 3, 207, 233], v: f32[5], s: f32[]) -> (
        r: f32[2, 3, 211, 236], c: f32[3, 4, 208, 233], e: f32[12], t: f32[]) {
      r = pad(x, pads: [0, 0, 3, 1, 0, 0, 1, 2], mode: reflect)
      c = pad(x, pads: [1, 0, 1, 0, 0, 1, 0, 0], value: 2.5)
      e = pad(v, pads: [3, 4], mode: edge)
      t = pad(s, pads: [])
    }
    """,
    // Max pooling: interior columns swept row by row, border columns window by window,
    // planes split over threads (32 planes of ≥ 380 outputs); strided, padded, dilated.
    """
    graph g(x: f32[2, 16, 41, 37]) -> (a: f32[2, 16, 21, 19], b: f32[2, 16, 20, 18], c: f32[2, 16, 39, 35]) {
      a = max_pool2d(x, kernel: 3, stride: 2, padding: 1)
      b = max_pool2d(x, kernel: 2)
      c = max_pool2d(x, kernel: 3, stride: 1, padding: 1, dilation: 2)
    }
    """,
    // Reductions: adjacent reduced or kept axes merged, axes of one dropped; runs reduced into
    // one output (eight lanes, then the rest) or added onto a run of outputs.
    """
    graph g(x: f32[2, 3, 1, 5, 6]) -> (a: f32[2, 3, 1], b: f32[2, 1, 5, 6], c: f32[3, 5, 6], d: f32[], e: f32[2, 3, 1, 6], f: f32[2, 1, 1, 5, 1]) {
      a = sum(x, axes: [3, 4])
      b = mean(x, axes: [1])
      c = max(x, axes: [0, 2])
      d = sum(x)
      e = mean(x, axes: [-2])
      f = sum(x, axes: [1, 4], keepdims: true)
    }
    """,
    // Pooling gradients whose windows skip rows and columns (stride 3 over windows of 2, and
    // rows after the last window): zero there, over storage an earlier value (e, dead after
    // its sum) left dirty.
    """
    graph g(x: f32[2, 3, 18, 16], dy: f32[2, 3, 6, 5]) -> (s: f32[], a: f32[2, 3, 18, 16], b: f32[2, 3, 18, 16]) {
      e = tanh(x)
      s = sum(e)
      a = max_pool2d_backward(dy, x, kernel: 2, stride: 3)
      b = avg_pool2d_backward(dy, x, kernel: 2, stride: 3)
    }
    """,
    // Max-pooling gradients: eight windows of stride 2 at a time inside, window by window at
    // the borders; ties (the zeros of min(x, 0)) go to the first maximum.
    """
    graph g(x: f32[2, 3, 21, 40], dy: f32[2, 3, 11, 20], dz: f32[2, 3, 10, 20]) -> (a: f32[2, 3, 21, 40], b: f32[2, 3, 21, 40]) {
      r = sub(x, relu(x))
      a = max_pool2d_backward(dy, r, kernel: 3, stride: 2, padding: 1)
      b = max_pool2d_backward(dz, x, kernel: 2)
    }
    """,
    // Layer norm over the last axis (rows split over two cores: 3 × 700 rows of 37) and over
    // the last two without a bias.
    """
    graph g(x: f32[3, 700, 37]) -> (y: f32[3, 700, 37], z: f32[3, 700, 37]) {
      param w: f32[37] init uniform(1)
      param b: f32[37] init uniform(1)
      param w2: f32[700, 37] init uniform(1)
      y = layer_norm(x, w, b)
      z = layer_norm(x, w2, axis: 1, eps: 0.01)
    }
    """,
    // Its gradient over rows of 37 (one core, dweight and dbias summed over the rows in order).
    """
    graph g(x: f32[3, 700, 37], dy: f32[3, 700, 37]) -> (dx: f32[3, 700, 37], dw: f32[37], db: f32[37]) {
      param w: f32[37] init uniform(1)
      dx, dw, db = layer_norm_backward(dy, x, w)
    }
    """,
    // Local response normalisation: 2·16 planes of 91·93 (split over two cores, a vector tail
    // of 7) with each β path (the roots of 0.75, 0.5 and 1, powf otherwise) and an even window;
    // a window wider than the channels over a rank-3 input.
    """
    graph g(x: f32[2, 16, 91, 93], v: f32[3, 4, 13]) -> (
        a: f32[2, 16, 91, 93], b: f32[2, 16, 91, 93], c: f32[2, 16, 91, 93], d: f32[2, 16, 91, 93],
        e: f32[3, 4, 13]) {
      a = lrn(x, size: 5, alpha: 0.5, beta: 0.75, bias: 2)
      b = lrn(x, size: 4, alpha: 1, beta: 0.5)
      c = lrn(x, size: 3, alpha: 0.25, beta: 1, bias: 0.5)
      d = lrn(x, size: 2, alpha: 0.75, beta: 0.3, bias: 1.5)
      e = lrn(v, size: 9, alpha: 3, beta: 0.75)
    }
    """,
    // Its gradient: both passes split over two cores, odd and even windows.
    """
    graph g(x: f32[2, 16, 91, 93], dy: f32[2, 16, 91, 93], v: f32[3, 4, 13], dv: f32[3, 4, 13]) -> (
        dx: f32[2, 16, 91, 93], dz: f32[2, 16, 91, 93], dw: f32[3, 4, 13]) {
      dx = lrn_backward(dy, x, size: 5, alpha: 0.5, beta: 0.75, bias: 2)
      dz = lrn_backward(dy, x, size: 4, alpha: 1, beta: 0.3)
      dw = lrn_backward(dv, v, size: 9, alpha: 3, beta: 0.75)
    }
    """,
    // Linear layers over many rows: split over the cores (1050 rows each) and taken 442 rows
    // (≈ 64 KiB of 37 outputs) at a time, the bias copied in per chunk, the residual + ReLU
    // epilogue over each core's rows; and without a bias.
    """
    graph g(x: f32[3, 700, 20], r: f32[3, 700, 37]) -> (y: f32[3, 700, 37], z: f32[3, 700, 37]) {
      param w: f32[37, 20] init uniform(0.1)
      param b: f32[37] init uniform(0.1)
      y = linear(x, w, b, r, activation: relu)
      z = linear(x, w)
    }
    """,
    // Average pooling over the whole map (a plane's mean), and over all but a row of it.
    """
    graph g(x: f32[2, 33, 7, 5]) -> (y: f32[2, 33, 1, 1], z: f32[2, 33, 2, 1]) {
      y = avg_pool2d(x, kernel: [7, 5])
      z = avg_pool2d(x, kernel: [6, 5], stride: 1)
    }
    """,
    // Linear layers of one and two rows (a classifier at batch 1): dot products split over the
    // cores by output features (71 each: groups of four and the rest), input features not a
    // multiple of the sixteen lanes (2051), the residual + ReLU epilogue; and without a bias.
    """
    graph g(x: f32[1, 2051], v: f32[2, 2051], r: f32[1, 142]) -> (y: f32[1, 142], z: f32[2, 142]) {
      param w: f32[142, 2051] init uniform(0.1)
      param b: f32[142] init uniform(0.1)
      y = linear(x, w, b, r, activation: relu)
      z = linear(v, w)
    }
    """,
    // 3×3 stride-1 convolutions run as Winograd F(2×2, 3×3): odd sizes (partial tiles),
    // padding 0, 1 and 2, bias or none, the fused residual + ReLU epilogue, and weights
    // given as an input (which must take the im2col path: only parameters are transformed).
    // Eight images, so that every one has the 32 tiles Winograd takes.
    """
    graph g(x: f32[8, 128, 7, 5], r: f32[8, 24, 7, 5], wi: f32[24, 128, 3, 3]) -> (y: f32[8, 24, 7, 5], z: f32[8, 24, 5, 3], u: f32[8, 24, 9, 7], v: f32[8, 24, 7, 5]) {
      param w: f32[24, 128, 3, 3] init uniform(0.1)
      param b: f32[24] init uniform(0.1)
      y = conv2d(x, w, b, r, padding: [1, 1], activation: relu)
      z = conv2d(x, w, padding: [0, 0])
      u = conv2d(x, w, b, padding: [2, 2])
      v = conv2d(x, wi, padding: [1, 1])
    }
    """,
    // Rows of more than eight tiles (the transforms take eight at a time, then the rest),
    // channels from 64, and four images split over the cores, Winograd (a block of one image
    // of 285 tiles at a time) and im2col alike.
    """
    graph g(x: f32[4, 64, 30, 37], r: f32[4, 16, 30, 37], wi: f32[16, 64, 3, 3]) -> (y: f32[4, 16, 30, 37], z: f32[4, 16, 30, 39], v: f32[4, 16, 30, 37]) {
      param w: f32[16, 64, 3, 3] init uniform(0.1)
      param b: f32[16] init uniform(0.1)
      y = conv2d(x, w, b, r, padding: [1, 1], activation: relu)
      z = conv2d(x, w, b, padding: [1, 2])
      v = conv2d(x, wi, b, r, padding: [1, 1], activation: relu)
    }
    """,
    // Weights outweighing the tiles (like ResNet's layer4): the transforms split in runs of
    // planes over the cores (where a run's stores stop: WinogradTests); rows of two and three
    // tiles stored as whole vectors, and a single tile per plane.
    """
    graph g(x: f32[3, 64, 4, 4], r: f32[3, 64, 4, 4]) -> (y: f32[3, 64, 4, 4], z: f32[3, 64, 6, 4], u: f32[3, 64, 2, 2]) {
      param w: f32[64, 64, 3, 3] init uniform(0.1)
      param b: f32[64] init uniform(0.1)
      y = conv2d(x, w, b, r, padding: [1, 1], activation: relu)
      z = conv2d(x, w, b, padding: [2, 1])
      u = conv2d(x, w, padding: [0, 0])
    }
    """,
    // Input gradients of 3×3 stride-1 convolutions, Winograd convolutions of dy by the flipped,
    // transposed weights (padding 2 − p: 1, 2 and 0); with the weights an input, im2col.
    """
    graph g(dy: f32[2, 64, 7, 5], dz: f32[2, 64, 5, 3], du: f32[2, 64, 9, 7], wi: f32[64, 24, 3, 3]) -> (y: f32[2, 24, 7, 5], z: f32[2, 24, 7, 5], u: f32[2, 24, 7, 5], v: f32[2, 24, 7, 5]) {
      param w: f32[64, 24, 3, 3] init uniform(0.1)
      y = conv2d_backward_input(dy, w, input_size: [7, 5], stride: [1, 1], padding: [1, 1])
      z = conv2d_backward_input(dz, w, input_size: [7, 5], stride: [1, 1], padding: [0, 0])
      u = conv2d_backward_input(du, w, input_size: [7, 5], stride: [1, 1], padding: [2, 2])
      v = conv2d_backward_input(dy, wi, input_size: [7, 5], stride: [1, 1], padding: [1, 1])
    }
    """,
    // An input gradient beside its forward convolution reads the forward's transformed
    // weights (ξ rotated, transposed), over the image split and the plane split (the forward
    // of the 2×2 maps, two tiles, runs directly).
    """
    graph g(x: f32[2, 72, 9, 7], dy: f32[2, 64, 9, 7], s: f32[2, 72, 2, 2], ds: f32[2, 64, 2, 2]) -> (y: f32[2, 64, 9, 7], dx: f32[2, 72, 9, 7], ys: f32[2, 64, 2, 2], dxs: f32[2, 72, 2, 2]) {
      param w: f32[64, 72, 3, 3] init uniform(0.1)
      y = conv2d(x, w, padding: [1, 1])
      dx = conv2d_backward_input(dy, w, input_size: [9, 7], stride: [1, 1], padding: [1, 1])
      ys = conv2d(s, w, padding: [1, 1])
      dxs = conv2d_backward_input(ds, w, input_size: [2, 2], stride: [1, 1], padding: [1, 1])
    }
    """,
    // Weight gradients of 3×3 stride-1 convolutions by Winograd: 64 channels of tiles split
    // by image over the cores (x: 4 images, rows of 19 tiles) and, where the weights outweigh
    // the tiles (s: 4×3 maps), by plane and ξ; padding 0, 1 and 2 (partial tiles, odd sizes).
    // The filters come out eight input channels at a time, and one by one past the last eight
    // (r: 70 channels).
    """
    graph g(x: f32[4, 64, 30, 37], dy: f32[4, 16, 30, 37], dz: f32[4, 16, 28, 35], s: f32[3, 64, 4, 3], ds: f32[3, 64, 6, 5], r: f32[2, 70, 5, 6], dr: f32[2, 16, 5, 6]) -> (y: f32[16, 64, 3, 3], z: f32[16, 64, 3, 3], u: f32[64, 64, 3, 3], v: f32[16, 70, 3, 3]) {
      y = conv2d_backward_weight(dy, x, kernel: [3, 3], stride: [1, 1], padding: [1, 1])
      z = conv2d_backward_weight(dz, x, kernel: [3, 3], stride: [1, 1], padding: [0, 0])
      u = conv2d_backward_weight(ds, s, kernel: [3, 3], stride: [1, 1], padding: [2, 2])
      v = conv2d_backward_weight(dr, r, kernel: [3, 3], stride: [1, 1], padding: [1, 1])
    }
    """,
    // Planes of one tile (VGG's last block on small frames), forward and weight gradient: a
    // transform step's eight lanes reach seven planes ahead (where they stop: WinogradTests).
    """
    graph g(x: f32[2, 128, 2, 2], dy: f32[2, 128, 2, 2]) -> (y: f32[2, 128, 2, 2], dw: f32[128, 128, 3, 3]) {
      param w: f32[128, 128, 3, 3] init uniform(0.1)
      y = conv2d(x, w, padding: [1, 1])
      dw = conv2d_backward_weight(dy, x, kernel: [3, 3], stride: [1, 1], padding: [1, 1])
    }
    """,
    // Maps of 24 outputs a side and more run as Winograd F(4×4, 3×3) (6×6 tiles): sizes that
    // are not multiples of four, padding 0, 1 and 2, 70 input channels (the weight transform's
    // last eight lanes partly filled), bias, residual and ReLU; three images split over the
    // cores, and one image whose planes are split instead.
    """
    graph g(x: f32[3, 70, 27, 28], r: f32[3, 20, 27, 28], s: f32[1, 64, 26, 29]) -> (y: f32[3, 20, 27, 28], z: f32[3, 20, 25, 26], u: f32[3, 20, 29, 30], v: f32[1, 16, 26, 29]) {
      param w: f32[20, 70, 3, 3] init uniform(0.1)
      param b: f32[20] init uniform(0.1)
      param k: f32[16, 64, 3, 3] init uniform(0.1)
      y = conv2d(x, w, b, r, padding: [1, 1], activation: relu)
      z = conv2d(x, w, padding: [0, 0])
      u = conv2d(x, w, b, padding: [2, 2])
      v = conv2d(s, k, padding: [1, 1])
    }
    """,
    // Input gradients by F(4×4, 3×3): the flipped weights transformed by the input gradient
    // itself (F(4×4, 3×3)'s points have no rotation of the forward's transform), padding 2 − p,
    // images split and one image's planes split.
    """
    graph g(dy: f32[2, 64, 26, 25], dz: f32[2, 64, 24, 23], du: f32[2, 64, 28, 27], ds: f32[1, 64, 26, 25]) -> (y: f32[2, 24, 26, 25], z: f32[2, 24, 26, 25], u: f32[2, 24, 26, 25], v: f32[1, 24, 26, 25]) {
      param w: f32[64, 24, 3, 3] init uniform(0.1)
      y = conv2d_backward_input(dy, w, input_size: [26, 25], stride: [1, 1], padding: [1, 1])
      z = conv2d_backward_input(dz, w, input_size: [26, 25], stride: [1, 1], padding: [0, 0])
      u = conv2d_backward_input(du, w, input_size: [26, 25], stride: [1, 1], padding: [2, 2])
      v = conv2d_backward_input(ds, w, input_size: [26, 25], stride: [1, 1], padding: [1, 1])
    }
    """,
    // Weight gradients by F(4×4, 3×3) of one image (transforms split by plane, the GEMMs by
    // point), 70 input channels (the last eight filters partly filled), padding 0, 1 and 2.
    """
    graph g(x: f32[1, 70, 26, 27], dy: f32[1, 16, 26, 27], dz: f32[1, 16, 24, 25], du: f32[1, 16, 28, 29]) -> (y: f32[16, 70, 3, 3], z: f32[16, 70, 3, 3], u: f32[16, 70, 3, 3]) {
      y = conv2d_backward_weight(dy, x, kernel: [3, 3], stride: [1, 1], padding: [1, 1])
      z = conv2d_backward_weight(dz, x, kernel: [3, 3], stride: [1, 1], padding: [0, 0])
      u = conv2d_backward_weight(du, x, kernel: [3, 3], stride: [1, 1], padding: [2, 2])
    }
    """,
  ]

  @Test(arguments: specs.indices)
  func compiledEqualsReference(_ index: Int) throws {
    let graph = try Spec.checkedGraph(SourceText(fileName: "case\(index).graph", text: Self.specs[index]))
    try expectMatchesReference(graph, "case \(index)") { program in
      let convolutions = graph.nodes.filter { [.conv2d, .conv2dBackwardInput, .conv2dBackwardWeight].contains($0.op) }
      if !convolutions.isEmpty {
        // The parameter-weighted convolutions (and all weight gradients) took the Winograd
        // path, the input-weighted ones not; forward ones of fewer than 32 tiles (2×2 outputs
        // each, over all images) run directly instead.
        let transformed = convolutions.filter { graph[$0.operands[1]].name != "wi" }
        let direct = transformed.filter { node in
          let o = graph[node.results[0]].type.shape.map { $0.staticValue ?? 0 }
          return node.op == .conv2d && o[0] * ((o[2] + 1) / 2) * ((o[3] + 1) / 2) < 32
        }
        #expect(program.program.filter { $0.contains("(winograd") }.count == transformed.count - direct.count)
        #expect(program.program.filter { $0.hasSuffix("(direct)") }.count == direct.count)
        // Those whose transforms tile maps of 24 outputs a side or more (a weight gradient's:
        // dy) take 6×6 tiles, F(4×4, 3×3).
        let large = transformed.filter { node in
          let o = graph[node.op == .conv2dBackwardWeight ? node.operands[0] : node.results[0]].type.shape
          return min(o[2].staticValue ?? 0, o[3].staticValue ?? 0) >= 24
        }
        #expect(program.program.filter { $0.hasSuffix("(winograd 4×4)") }.count == large.count)
      }
    }
  }

  /// Convolutions by im2col and GEMM (no Winograd: strided, 7×7, few channels), forward and
  /// weight gradient: the gathers' vector paths over rows of 37 and 21 columns (stride 2 reads
  /// sixteen floats for eight columns while they lie in the row, then column by column; stride
  /// 1 eight at a time), the columns that padding leaves outside on either side, output rows
  /// wholly outside (padding 3 of a 7×7 kernel), stride 3's scalar path, and small maps of
  /// many images in one GEMM (4×4 outputs, like ResNet's layer4.0.conv1). Maps less than
  /// eight outputs wide (u, v, dv, dt) gather and scatter through index tables, wider ones
  /// row by row (y, z, dw, dx); the input gradients through col2im. The forward convolutions
  /// of parameter weights run directly (`DirectConv2d`); `im2colConvolutionsOfInputWeights`
  /// runs them by im2col.
  @Test func im2colConvolutions() throws {
    let spec = """
      graph g(x: f32[3, 3, 9, 37], s: f32[2, 5, 11, 21], t: f32[5, 16, 7, 7], dy: f32[3, 4, 5, 19], dt: f32[5, 8, 4, 4]) -> (y: f32[3, 4, 5, 19], z: f32[2, 6, 11, 21], u: f32[2, 6, 4, 7], v: f32[5, 8, 4, 4], dw: f32[4, 3, 7, 7], dv: f32[8, 16, 3, 3], dx: f32[3, 3, 9, 37], dtx: f32[5, 16, 7, 7]) {
        param w: f32[4, 3, 7, 7] init uniform(0.1)
        param k: f32[6, 5, 3, 3] init uniform(0.1)
        param q: f32[8, 16, 3, 3] init uniform(0.1)
        y = conv2d(x, w, stride: [2, 2], padding: [3, 3])
        z = conv2d(s, k, padding: [1, 1])
        u = conv2d(s, k, stride: [3, 3], padding: [1, 1])
        v = conv2d(t, q, stride: [2, 2], padding: [1, 1])
        dw = conv2d_backward_weight(dy, x, kernel: [7, 7], stride: [2, 2], padding: [3, 3])
        dv = conv2d_backward_weight(dt, t, kernel: [3, 3], stride: [2, 2], padding: [1, 1])
        dx = conv2d_backward_input(dy, w, input_size: [9, 37], stride: [2, 2], padding: [3, 3])
        dtx = conv2d_backward_input(dt, q, input_size: [7, 7], stride: [2, 2], padding: [1, 1])
      }
      """
    let graph = try Spec.checkedGraph(SourceText(fileName: "im2col.graph", text: spec))
    try expectMatchesReference(graph, "im2col") { program in
      #expect(!program.program.contains { $0.hasSuffix("(winograd)") })
    }
  }

  /// The same convolutions by im2col with their weights given as inputs: only parameter weights
  /// are packed for `DirectConv2d`, so these keep the GEMM path and its gathers.
  @Test func im2colConvolutionsOfInputWeights() throws {
    let spec = """
      graph g(x: f32[3, 3, 9, 37], s: f32[2, 5, 11, 21], t: f32[5, 16, 7, 7], w: f32[4, 3, 7, 7], k: f32[6, 5, 3, 3], q: f32[8, 16, 3, 3]) -> (y: f32[3, 4, 5, 19], z: f32[2, 6, 11, 21], u: f32[2, 6, 4, 7], v: f32[5, 8, 4, 4]) {
        y = conv2d(x, w, stride: [2, 2], padding: [3, 3])
        z = conv2d(s, k, padding: [1, 1])
        u = conv2d(s, k, stride: [3, 3], padding: [1, 1])
        v = conv2d(t, q, stride: [2, 2], padding: [1, 1])
      }
      """
    let graph = try Spec.checkedGraph(SourceText(fileName: "im2col-inputs.graph", text: spec))
    try expectMatchesReference(graph, "im2col of input weights") { program in
      #expect(!program.program.contains { $0.hasSuffix("(winograd)") || $0.hasSuffix("(direct)") })
    }
  }

  /// The compiled program on one core and on two against the reference interpreter, every
  /// output within 1e-5 of the largest reference value; `check` looks at each program.
  func expectMatchesReference(_ graph: Graph, _ label: String, check: (Executable) -> Void = { _ in }) throws {
    let parameters = DeterministicTensors.parameters(of: graph)
    var inputs: [String: Tensor] = [:]
    for id in graph.inputs {
      inputs[graph[id].name] = DeterministicTensors.tensor(
        "input:" + graph[id].name,
        shape: graph[id].type.shape.map { $0.staticValue ?? 1 })
    }
    var reference = ReferenceInterpreter(graph: graph)
    let expected = try reference.run(inputs: inputs, parameters: parameters)
    // One core and two: the kernels that split their work (images, products, planes) agree.
    for threads in [1, 2] {
      let program = try Executable(graph: graph, parameters: parameters, threads: threads)
      let actual = try program.run(inputs: inputs)
      check(program)
      for output in graph.outputs {
        let e = try #require(expected[graph[output.value].name]), a = try #require(actual[output.name])
        let scale = e.doubles.reduce(1e-3) { max($0, abs($1)) }
        let diff = try #require(maxAbsDifference(a, e))
        #expect(diff <= 1e-5 * scale, "\(label) output \(output.name), \(threads) threads: \(diff)")
      }
    }
  }

  /// The activation composites after the inference pipeline: each expansion (its scalar
  /// constants read as registers) fuses into one kernel — the scaling before it, whose
  /// result the expansion reads more than once, stays a kernel of its own — and the compiled
  /// program on one core and two gives the reference interpreter's numbers for the
  /// unoptimised graph.
  @Test func compositesFuseIntoOneKernelEach() throws {
    let spec = """
      graph g(x: f32[3, 5, 37]) -> (
          a: f32[3, 5, 37], b: f32[3, 5, 37], c: f32[3, 5, 37], d: f32[3, 5, 37], e: f32[3, 5, 37],
          f: f32[3, 5, 37], h: f32[3, 5, 37], k: f32[3, 5, 37]) {
        a = relu6(mul(x, constant(value: 8.0)))
        b = hard_swish(mul(x, constant(value: 5.0)))
        c = hard_sigmoid(mul(x, constant(value: 5.0)), alpha: 0.2, beta: 0.5)
        d = leaky_relu(x, alpha: 0.1)
        e = gelu(mul(x, constant(value: 3.0)), approximate: tanh)
        f = gelu(mul(x, constant(value: 2.5)))
        h = silu(mul(x, constant(value: 4.0)))
        k = clip(reciprocal(neg(x)), min: -2.0, max: 3.0)
      }
      """
    let graph = try Spec.checkedGraph(SourceText(fileName: "composites.graph", text: spec))
    var module = Module(graph: graph)
    Pipeline.run(Pipeline.inference(blockedLayouts: true), on: &module)
    #expect(module.graph.nodes.filter { $0.op == .fusedElementwise }.count == 8)
    #expect(!module.graph.nodes.contains { [.maximum, .minimum, .div, .erf, .tanh, .sigmoid].contains($0.op) })
    let inputs = ["x": DeterministicTensors.tensor("input:x", shape: [3, 5, 37])]
    var reference = ReferenceInterpreter(graph: graph)
    let expected = try reference.run(inputs: inputs, parameters: [:])
    for threads in [1, 2] {
      let actual = try Executable(graph: module.graph, parameters: [:], threads: threads).run(inputs: inputs)
      for output in graph.outputs {
        let e = try #require(expected[graph[output.value].name]), a = try #require(actual[output.name])
        let diff = try #require(maxAbsDifference(a, e))
        let scale = e.doubles.reduce(1e-3) { max($0, abs($1)) }
        #expect(diff <= 1e-5 * scale, "\(output.name), \(threads) threads: \(diff)")
      }
    }
  }

  /// Elementwise passes of ≥ 2^18 elements split over the cores: a broadcast add and maximum
  /// (over the outer axis, unevenly: 3 rows in 2 parts), a tanh and an erf (on vector
  /// boundaries, 270 000 = 8·33 750 floats) and a fused chain (blocks, each core its own
  /// scratch) — the same numbers on one core and two, and the reference's.
  @Test func largeElementwisePassesSplitOverCores() throws {
    let spec = """
      graph g(x: f32[3, 300, 300], y: f32[300], z: f32[3, 300, 300]) -> (
        a: f32[3, 300, 300], b: f32[3, 300, 300], c: f32[3, 300, 300], d: f32[3, 300, 300],
        e: f32[3, 300, 300], m: f32[3, 300, 300]) {
        a = add(x, y)
        e = erf(x)
        m = maximum(x, y)
        b = tanh(x)
        c = mul(sigmoid(x), sub(x, relu(x)))
        d = relu_backward(z, x)
      }
      """
    let graph = try Spec.checkedGraph(SourceText(fileName: "large.graph", text: spec))
    var module = Module(graph: graph)
    Pipeline.run([FuseElementwise(), EliminateDeadCode()], on: &module)
    #expect(module.graph.nodes.filter { $0.op == .fusedElementwise }.count == 1)
    var inputs: [String: Tensor] = [:]
    for id in graph.inputs {
      inputs[graph[id].name] = DeterministicTensors.tensor(
        "input:" + graph[id].name,
        shape: graph[id].type.shape.map { $0.staticValue ?? 1 })
    }
    var reference = ReferenceInterpreter(graph: graph)
    let expected = try reference.run(inputs: inputs, parameters: [:])
    let one = try Executable(graph: module.graph, parameters: [:], threads: 1).run(inputs: inputs)
    let two = try Executable(graph: module.graph, parameters: [:], threads: 2).run(inputs: inputs)
    for output in graph.outputs {
      let e = try #require(expected[graph[output.value].name])
      let a = try #require(one[output.name]), b = try #require(two[output.name])
      let same = a.floats == b.floats  // a Bool, so a failure does not print 270 000 floats
      #expect(same, "\(output.name) differs between one core and two")
      let diff = try #require(maxAbsDifference(b, e))
      #expect(diff <= 1e-5 * e.doubles.reduce(1e-3) { max($0, abs($1)) }, "\(output.name): \(diff)")
    }
  }
}
