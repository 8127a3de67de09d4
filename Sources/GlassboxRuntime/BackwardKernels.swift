import CKernels
import Foundation

// Kernels of the backward ops that `Differentiate` adds (see GlassboxIR/Gradients.swift).
// Like every kernel they hold arena offsets fixed at compile time and allocate nothing.

/// One-hot rows: `out[n, c] = 1` at `class` (or each row's `target`, stored as floats), or at
/// the row's argmax (first on ties) where that is -1. A class outside `0..<c` also takes the
/// argmax: callers check targets before a run, and the kernel never writes outside its row.
struct ClassSeed: Kernel {
  var label = "class_seed"
  var n: Int, c: Int, fixedClass: Int
  var logits: Int, target: Int?, out: Int

  func run(_ a: UnsafeMutablePointer<Float>) {
    (a + out).update(repeating: 0, count: n * c)
    for i in 0..<n {
      let row = a + logits + i * c
      var best = 0
      let k = target.map { t in a[t + i] >= 0 && a[t + i] < Float(c) ? Int(a[t + i]) : -1 } ?? fixedClass
      if k >= 0 && k < c {
        best = k
      } else {
        for j in 1..<Swift.max(c, 1) where row[j] > row[best] { best = j }
      }
      a[out + i * c + best] = 1
    }
  }
}

/// `dx = x > 0 ? dy : 0`.
struct ReluBackward: Kernel {
  var label: String
  var dy: Int, x: Int, dx: Int, count: Int
  var threads = 1

  func run(_ a: UnsafeMutablePointer<Float>) {
    forEachElementRange(count: count, threads: threads) { range in
      let g = a + dy + range.lowerBound, s = a + x + range.lowerBound, d = a + dx + range.lowerBound
      zipSIMD(g, s, d, range.count) { g, s in SIMD8<Float>(repeating: 0).replacing(with: g, where: s .> 0) }
    }
  }
}

/// `dW[out, in] = dyᵀ[out, rows] · x[rows, in]`: one GEMM over every row.
///
/// Over all time steps of an LSTM (`rows` = B·T, tens of thousands) the product is long and
/// thin, and splitting `dw`'s columns leaves each core a narrow, slow GEMM. There the rows
/// split instead: each core sums its share of the rows into its own `dw` (the first into
/// `dw`, the others into scratch), added in part order, so a thread count always gives the
/// same bits.
struct LinearBackwardWeight: Kernel {
  var label: String
  var rows: Int, outFeatures: Int, inFeatures: Int
  var dy: Int, x: Int, dw: Int
  var threads = 1
  var scratch = 0

  /// Parts the rows split into (1: the product splits `dw` itself, if at all).
  static func rowParts(rows: Int, outFeatures: Int, inFeatures: Int, threads: Int) -> Int {
    let long = rows >= 8 * Swift.max(outFeatures, inFeatures) && rows * outFeatures * inFeatures >= BLAS.parallelWork
    return long ? Swift.min(threads, rows / 256) : 1
  }

  static func scratchCount(rows: Int, outFeatures: Int, inFeatures: Int, threads: Int) -> Int {
    (rowParts(rows: rows, outFeatures: outFeatures, inFeatures: inFeatures, threads: threads) - 1) * outFeatures
      * inFeatures
  }

  func run(_ a: UnsafeMutablePointer<Float>) {
    let parts = Self.rowParts(rows: rows, outFeatures: outFeatures, inFeatures: inFeatures, threads: threads)
    guard parts > 1 else {
      return BLAS.sgemm(
        threads: threads, transA: true, m: outFeatures, n: inFeatures, k: rows, a: a + dy,
        lda: outFeatures, b: a + x, ldb: inFeatures, c: a + dw, ldc: inFeatures)
    }
    let base = UnsafeSendable(a), size = outFeatures * inFeatures
    parallelFor(parts) { part in
      let a = base.pointer
      let lo = rows * part / parts, hi = rows * (part + 1) / parts
      let c = part == 0 ? a + dw : a + scratch + (part - 1) * size
      BLAS.sgemm(
        transA: true, m: outFeatures, n: inFeatures, k: hi - lo, a: a + dy + lo * outFeatures, lda: outFeatures,
        b: a + x + lo * inFeatures, ldb: inFeatures, c: c, ldc: inFeatures)
    }
    for part in 1..<parts { vadd(a + dw, a + scratch + (part - 1) * size, count: size) }
  }
}

/// The gradient of `max` over some axes: `dy` shared evenly among the elements equal to their
/// lane's maximum. `outStrides` view the reduced `dy`/`y` with stride 0 on reduced axes;
/// scratch holds the tie counts.
struct MaxBackward: Kernel {
  var label: String
  var shape: [Int], outStrides: [Int], outCount: Int
  var dy: Int, x: Int, y: Int, dx: Int, scratch: Int

  func run(_ a: UnsafeMutablePointer<Float>) {
    let ties = a + scratch
    ties.update(repeating: 0, count: outCount)
    let n = shape.last ?? 1, os = outStrides.last ?? 0
    let inStrides = rowMajorStrides(shape)
    let full = shape.isEmpty ? [1] : shape, ins = inStrides.isEmpty ? [1] : inStrides
    let outs = outStrides.isEmpty ? [0] : outStrides
    forEachRun(full, ins, outs, outs) { o0, o1, _ in
      for i in 0..<n where a[x + o0 + i] == a[y + o1 + i * os] { ties[o1 + i * os] += 1 }
    }
    forEachRun(full, ins, outs, outs) { o0, o1, _ in
      for i in 0..<n {
        let t = o1 + i * os
        a[dx + o0 + i] = a[x + o0 + i] == a[y + t] ? a[dy + t] / ties[t] : 0
      }
    }
  }
}

/// One LSTM step backwards. Recomputes the gate pre-activations `gates_x + h·W_hhᵀ` into
/// scratch `[B, 4H]` (one GEMM), turns them into `d gates` in place of `dgates`, then
/// `dh_prev = d gates · W_hh` (one GEMM). Gate order i, f, g, o.
///
/// Gradients that decay over hundreds of steps reach the subnormal range, where every later
/// multiply (the GEMMs of all earlier steps and the weight gradients over all steps) runs
/// about ten times slower; magnitudes below `flushBelow` are therefore written as zero —
/// 30 orders of magnitude under any gradient that moves a weight.
struct LSTMCellBackward: Kernel {
  var label: String
  var batch: Int, hidden: Int
  var dh: Int, dc: Int, gates: Int, h: Int, c: Int, weight: Int
  var dGates: Int, dhPrev: Int, dcPrev: Int, scratch: Int
  var threads = 1
  /// Floats between the batch rows of `gates` (4H, or T·4H where it is a step of the projection).
  var gatesStride: Int
  /// Floats between the batch rows of `dGates` (4H, or T·4H where the steps' gradients are
  /// stacked in place: `BufferAssignment.concatViews`).
  var dGatesStride: Int
  static let flushBelow: Float = 1e-30

  @inline(__always) static func flushed(_ v: Float) -> Float { Swift.abs(v) < flushBelow ? 0 : v }
  @inline(__always) static func flushed(_ v: SIMD8<Float>) -> SIMD8<Float> {
    v.replacing(with: 0, where: FastMath.abs(v) .< flushBelow)
  }

  func run(_ a: UnsafeMutablePointer<Float>) {
    if batch == 1 { return runOne(a) }
    let n = hidden, g4 = 4 * hidden
    let pre = a + scratch
    for b in 0..<batch { (pre + b * g4).update(from: a + gates + b * gatesStride, count: g4) }
    BLAS.sgemm(
      threads: threads, transB: true, m: batch, n: g4, k: n, a: a + h, lda: n, b: a + weight, ldb: n, beta: 1,
      c: pre, ldc: g4)
    for b in 0..<batch {
      let p = pre + b * g4, dg = a + dGates + b * dGatesStride
      let cv = a + c + b * n, dhv = a + dh + b * n, dcv = a + dc + b * n, dcp = a + dcPrev + b * n
      mapSIMD(p, p, 2 * n, FastMath.sigmoid)
      mapSIMD(p + 2 * n, p + 2 * n, n, FastMath.tanh)
      mapSIMD(p + 3 * n, p + 3 * n, n, FastMath.sigmoid)
      // tanh(c') parked in dc_prev, read before it is overwritten.
      var j = 0
      while j + 8 <= n {
        store8(load8(p + n + j) * load8(cv + j) + load8(p + j) * load8(p + 2 * n + j), dcp + j); j += 8
      }
      while j < n { dcp[j] = p[n + j] * cv[j] + p[j] * p[2 * n + j]; j += 1 }
      mapSIMD(dcp, dcp, n, FastMath.tanh)
      // Eight units at a time, the same operations as the scalar loop that ends the row and as
      // `runOne`'s. Written out three times: one helper with partial loads for the rest is
      // slower here.
      var u = 0
      while u + 8 <= n {
        let i = load8(p + u), f = load8(p + n + u), g = load8(p + 2 * n + u), o = load8(p + 3 * n + u)
        let tc = load8(dcp + u), dhj = load8(dhv + u), cj = load8(cv + u)
        let dct = load8(dcv + u) + dhj * o * (1 - tc * tc)
        store8(Self.flushed(dct * g * i * (1 - i)), dg + u)
        store8(Self.flushed(dct * cj * f * (1 - f)), dg + n + u)
        store8(Self.flushed(dct * i * (1 - g * g)), dg + 2 * n + u)
        store8(Self.flushed(dhj * tc * o * (1 - o)), dg + 3 * n + u)
        store8(Self.flushed(dct * f), dcp + u)
        u += 8
      }
      for j in u..<n {
        let i = p[j], f = p[n + j], g = p[2 * n + j], o = p[3 * n + j]
        let tc = dcp[j]
        let dhj = dhv[j]
        let dct = dcv[j] + dhj * o * (1 - tc * tc)
        dg[j] = Self.flushed(dct * g * i * (1 - i))
        dg[n + j] = Self.flushed(dct * cv[j] * f * (1 - f))
        dg[2 * n + j] = Self.flushed(dct * i * (1 - g * g))
        dg[3 * n + j] = Self.flushed(dhj * tc * o * (1 - o))
        dcp[j] = Self.flushed(dct * f)
      }
    }
    BLAS.sgemm(
      threads: threads, m: batch, n: n, k: g4, a: a + dGates, lda: dGatesStride, b: a + weight, ldb: n,
      c: a + dhPrev, ldc: n)
  }

  /// One sequence (a tap's path back through the LSTM): both products in one pass over
  /// `W_hh`, whose 4H×H floats otherwise stream through the cache twice a step. Eight hidden
  /// units at a time: their 32 rows' dot products with h, the gate gradients, then the same
  /// rows (still in cache) times those gradients added into `dh_prev`. Units are split over
  /// the cores, each with its own `dh_prev` in scratch, added in part order.
  func runOne(_ a: UnsafeMutablePointer<Float>) {
    let n = hidden, blocks = (n + 7) / 8
    let parts = n >= 64 ? Swift.min(threads, blocks, 4) : 1  // scratch holds 4H floats
    let kernel = self, base = UnsafeSendable(a)
    typealias V8 = SIMD8<Float>
    @Sendable func part(_ index: Int) {
      let a = base.pointer, w = a + kernel.weight, h = a + kernel.h, partial = a + kernel.scratch + index * n
      partial.update(repeating: 0, count: n)
      for block in (blocks * index / parts)..<(blocks * (index + 1) / parts) {
        let j0 = 8 * block, units = Swift.min(8, n - j0)
        func load(_ p: UnsafeMutablePointer<Float>) -> V8 { load8(p, count: units) }
        func save(_ v: V8, _ p: UnsafeMutablePointer<Float>) { store8(v, p, count: units) }
        // Pre-activations of gate q for the block's units: gates_x + W_hh[row]·h.
        func preactivation(_ q: Int) -> V8 {
          var v = load(a + kernel.gates + q * n + j0)
          for l in 0..<units {
            let row = w + (q * n + j0 + l) * n
            var acc = V8(), j = 0
            while j + 8 <= n { acc += load8(row + j) * load8(h + j); j += 8 }
            var dot = acc.sum()
            while j < n { dot += row[j] * h[j]; j += 1 }
            v[l] += dot
          }
          return v
        }
        let i = FastMath.sigmoid(preactivation(0)), f = FastMath.sigmoid(preactivation(1))
        let g = FastMath.tanh(preactivation(2)), o = FastMath.sigmoid(preactivation(3))
        let cv = load(a + kernel.c + j0), dhv = load(a + kernel.dh + j0)
        let tc = FastMath.tanh(f * cv + i * g)
        let dct = load(a + kernel.dc + j0) + dhv * o * (1 - tc * tc)
        // The gate gradients, stored and added back through the gate's rows into dh_prev.
        func gradient(_ q: Int, _ d: V8) {
          save(d, a + kernel.dGates + q * n + j0)
          for l in 0..<units {
            let row = w + (q * n + j0 + l) * n, coefficient = V8(repeating: d[l])
            var j = 0
            while j + 8 <= n { store8(load8(partial + j) + coefficient * load8(row + j), partial + j); j += 8 }
            while j < n { partial[j] += d[l] * row[j]; j += 1 }
          }
        }
        gradient(0, Self.flushed(dct * g * i * (1 - i)))
        gradient(1, Self.flushed(dct * cv * f * (1 - f)))
        gradient(2, Self.flushed(dct * i * (1 - g * g)))
        gradient(3, Self.flushed(dhv * tc * o * (1 - o)))
        save(Self.flushed(dct * f), a + kernel.dcPrev + j0)
      }
    }
    if parts == 1 { part(0) } else { parallelFor(parts, part) }
    let d = a + dhPrev, s = a + scratch
    for j in 0..<n {
      var sum = s[j]
      for p in 1..<Swift.max(parts, 1) { sum += s[p * n + j] }
      d[j] = sum
    }
  }
}

/// `dlogits = dloss·(softmax(logits) − onehot(target))/N`, targets stored as floats.
struct CrossEntropyBackward: Kernel {
  var label = "cross_entropy_backward"
  var n: Int, c: Int, dloss: Int, logits: Int, target: Int, out: Int

  func run(_ a: UnsafeMutablePointer<Float>) {
    let scale = a[dloss] / Float(n)
    for i in 0..<n {
      let row = a + logits + i * c, d = a + out + i * c
      var m = -Float.infinity
      for j in 0..<c { m = Swift.max(m, row[j]) }
      var sum: Float = 0
      for j in 0..<c {
        let e = Foundation.exp(row[j] - m)
        d[j] = e
        sum += e
      }
      let inv = scale / sum
      for j in 0..<c { d[j] *= inv }
      let t = Swift.min(Swift.max(Int(a[target + i]), 0), c - 1)
      d[t] -= scale
    }
  }
}

// MARK: - Convolution, pooling and batch-norm backwards

/// `dy` of `count` images from `first`, group `g`: `[og, count·spatial]` with images side by
/// side — staged into `buffer` when there are several, read in place when one.
@inline(__always)
func stagedGradient(
  _ a: UnsafeMutablePointer<Float>, dy: Int, first: Int, count: Int, g: Int, og: Int, cout: Int,
  spatial: Int, buffer: UnsafeMutablePointer<Float>
) -> UnsafeMutablePointer<Float> {
  if count == 1 { return a + dy + (first * cout + g * og) * spatial }
  let columns = count * spatial
  for i in 0..<count {
    for r in 0..<og {
      (buffer + r * columns + i * spatial).update(
        from: a + dy + ((first + i) * cout + g * og + r) * spatial, count: spatial)
    }
  }
  return buffer
}

/// Scratch floats of one part of a convolution's backward kernels: the columns and the staged
/// `dy` of one chunk of images.
func convolutionBackwardPartScratch(_ c: Conv2d, images: Int) -> Int {
  let spatial = c.oh * c.ow, chunk = Conv2d.chunk(images: images, spatial: spatial)
  return (c.cin / c.groups * c.kh * c.kw + c.cout / c.groups) * chunk * spatial
}

/// Scratch floats of a convolution's backward kernel, with the images split into
/// `Conv2d.parts` parts as in the forward; the weight gradient adds one accumulator per part
/// after the first.
func convolutionBackwardScratch(_ c: Conv2d, weight: Bool) -> Int {
  let parts = Conv2d.parts(images: c.n, threads: c.threads)
  let each = convolutionBackwardPartScratch(c, images: (c.n + parts - 1) / parts)
  return parts * each + (weight ? (parts - 1) * c.cout * (c.cin / c.groups) * c.kh * c.kw : 0)
}

/// The chunks of `images` (`Conv2d.chunk` at a time) of one part: `body(first, count, cols,
/// buffer)` with the part's im2col columns and its staged-`dy` buffer in `scratch`.
@inline(__always)
func forEachChunk(
  _ c: Conv2d, images: Range<Int>, scratch: UnsafeMutablePointer<Float>,
  _ body: (Int, Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void
) {
  let spatial = c.oh * c.ow, chunk = Conv2d.chunk(images: images.count, spatial: spatial)
  let cols = scratch, buffer = cols + c.cin / c.groups * c.kh * c.kw * chunk * spatial
  var first = images.lowerBound
  while first < images.upperBound {
    let count = Swift.min(chunk, images.upperBound - first)
    body(first, count, cols, buffer)
    first += count
  }
}

/// The weight gradient of a convolution: images taken `Conv2d.chunk` at a time (small feature
/// maps still make one wide GEMM), per group `dW_g[Cout/g, Cin/g·kh·kw] += dy_g · colsᵀ` with
/// `cols` the images' im2col columns side by side in scratch, then the staged `dy_g` after them.
/// With the images split over the cores each part accumulates its own `dW` (the first into the
/// result, the others in scratch), added up in part order at the end.
struct Conv2dBackwardWeight: Kernel {
  var label: String
  /// The forward convolution's geometry (its offsets unused but `scratch`).
  var geometry: Conv2d
  var dy: Int, x: Int, dw: Int

  /// The GEMMs' work as one product per group over every image (the kernel makes one per
  /// chunk of images and group), for profiles.
  var gemms: [GEMMShape] {
    let c = geometry
    return [
      GEMMShape(
        m: c.cout / c.groups, n: c.cin / c.groups * c.kh * c.kw, k: c.n * c.oh * c.ow, transB: true, count: c.groups)
    ]
  }

  func run(_ a: UnsafeMutablePointer<Float>) {
    let c = geometry
    let cg = c.cin / c.groups, og = c.cout / c.groups, k = cg * c.kh * c.kw, spatial = c.oh * c.ow
    let parts = Conv2d.parts(images: c.n, threads: c.threads)
    let accumulators = c.scratch + parts * convolutionBackwardPartScratch(c, images: (c.n + parts - 1) / parts)
    let dy = dy, x = x, dw = dw
    let each = { convolutionBackwardPartScratch(c, images: $0) }
    forEachImagePart(images: c.n, threads: c.threads, a, scratch: c.scratch, partScratch: each) {
      a, part, images, scratch, threads in
      let target = part == 0 ? a + dw : a + accumulators + (part - 1) * c.cout * k
      target.update(repeating: 0, count: c.cout * k)
      forEachChunk(c, images: images, scratch: a + scratch) { first, count, cols, buffer in
        let columns = count * spatial
        for g in 0..<c.groups {
          for i in 0..<count {
            c.im2col(
              a + x + ((first + i) * c.cin + g * cg) * c.h * c.w, cols + i * spatial, channels: cg, rowStride: columns)
          }
          let d = stagedGradient(
            a, dy: dy, first: first, count: count, g: g, og: og, cout: c.cout, spatial: spatial,
            buffer: buffer)
          BLAS.sgemm(
            threads: threads, transB: true, m: og, n: k, k: columns, a: d, lda: columns, b: cols, ldb: columns,
            beta: 1, c: target + g * og * k, ldc: k)
        }
      }
    }
    guard parts > 1 else { return }
    splitOverCores(a, count: c.cout * k, threads: c.threads, worthIt: true) { a, range in
      let d = a + dw
      for part in 1..<parts {
        let s = a + accumulators + (part - 1) * c.cout * k
        vadd(d + range.lowerBound, s + range.lowerBound, count: range.count)
      }
    }
  }
}

/// The input gradient of a convolution: per chunk of images and group, `cols = W_gᵀ · dy_g`
/// (one GEMM into scratch), then col2im adds each column entry back at the input element it
/// was read from. Images are split over the cores as in the forward.
struct Conv2dBackwardInput: Kernel {
  var label: String
  var geometry: Conv2d
  var dy: Int, weight: Int, dx: Int

  /// The GEMMs' work as one product per group over every image, as `Conv2dBackwardWeight`'s.
  var gemms: [GEMMShape] {
    let c = geometry
    return [
      GEMMShape(
        m: c.cin / c.groups * c.kh * c.kw, n: c.n * c.oh * c.ow, k: c.cout / c.groups, transB: false, count: c.groups)
    ]
  }

  func run(_ a: UnsafeMutablePointer<Float>) {
    let c = geometry
    let cg = c.cin / c.groups, og = c.cout / c.groups, k = cg * c.kh * c.kw, spatial = c.oh * c.ow
    let dy = dy, weight = weight, dx = dx, kernel = self
    let each = { convolutionBackwardPartScratch(c, images: $0) }
    forEachImagePart(images: c.n, threads: c.threads, a, scratch: c.scratch, partScratch: each) {
      a, _, images, scratch, threads in
      (a + dx + images.lowerBound * c.cin * c.h * c.w).update(repeating: 0, count: images.count * c.cin * c.h * c.w)
      forEachChunk(c, images: images, scratch: a + scratch) { first, count, cols, buffer in
        let columns = count * spatial
        for g in 0..<c.groups {
          let d = stagedGradient(
            a, dy: dy, first: first, count: count, g: g, og: og, cout: c.cout, spatial: spatial,
            buffer: buffer)
          BLAS.sgemm(
            threads: threads, transA: true, m: k, n: columns, k: og, a: a + weight + g * og * k, lda: k, b: d,
            ldb: columns, c: cols, ldc: columns)
          for i in 0..<count {
            kernel.col2im(
              cols + i * spatial, a + dx + ((first + i) * c.cin + g * cg) * c.h * c.w, channels: cg,
              rowStride: columns)
          }
        }
      }
    }
  }

  /// `x[c, oy·s − p + ky·d, ox·s − p + kx·d] += cols[(c·kh + ky)·kw + kx, oy·OW + ox]` inside
  /// the image: the adjoint of `Conv2d.im2col` (rows `rowStride` apart).
  func col2im(_ cols: UnsafeMutablePointer<Float>, _ x: UnsafeMutablePointer<Float>, channels: Int, rowStride: Int) {
    let c = geometry
    if c.ow < 8 { return col2imSmall(cols, x, channels: channels, rowStride: rowStride) }
    for ch in 0..<channels {
      for ky in 0..<c.kh {
        for kx in 0..<c.kw {
          let row = cols + ((ch * c.kh + ky) * c.kw + kx) * rowStride
          let x0 = kx * c.dilation.1 - c.padding.1, sx = c.stride.1
          let (lo, hi) = Conv2d.inside(offset: x0, stride: sx, extent: c.w, outputs: c.ow)
          for oy in 0..<c.oh {
            let iy = oy * c.stride.0 - c.padding.0 + ky * c.dilation.0
            guard iy >= 0 && iy < c.h else { continue }
            let dst = x + (ch * c.h + iy) * c.w, src = row + oy * c.ow
            for ox in lo..<hi { dst[ox * sx + x0] += src[ox] }
          }
        }
      }
    }
  }

  /// `col2im` for maps less than eight outputs wide, as `Conv2d.im2colSmall`: the input
  /// index of every output per kernel offset (`Conv2d.inputIndices`), then each channel adds
  /// through it (in the same order as the row loops, so the same sums).
  func col2imSmall(
    _ cols: UnsafeMutablePointer<Float>, _ x: UnsafeMutablePointer<Float>, channels: Int,
    rowStride: Int
  ) {
    let c = geometry, spatial = c.oh * c.ow, taps = c.kh * c.kw
    withUnsafeTemporaryAllocation(of: Int.self, capacity: taps * spatial) { index in
      for tap in 0..<taps { c.inputIndices(ky: tap / c.kw, kx: tap % c.kw, into: index.baseAddress! + tap * spatial) }
      for ch in 0..<channels {
        let dst = x + ch * c.h * c.w
        for tap in 0..<taps {
          let row = cols + (ch * taps + tap) * rowStride, at = index.baseAddress! + tap * spatial
          for j in 0..<spatial where at[j] >= 0 { dst[at[j]] += row[j] }
        }
      }
    }
  }
}

/// The gradient of max or average pooling over `[planes, H, W]`: each window's `dy` goes to
/// its first maximum, or is spread over the window's elements divided by the forward count.
struct PoolBackward: Kernel {
  var label: String
  var pool: Pool
  var dy: Int, x: Int, dx: Int

  func run(_ a: UnsafeMutablePointer<Float>) {
    let p = pool
    splitOverCores(a, count: p.planes, threads: p.threads, worthIt: p.planes * p.oh * p.ow >= 1 << 14) {
      run($0, planes: $1)
    }
  }

  /// `wide`: the interior windows of max pooling of stride 2 up to sixteen at a time in
  /// CKernels, else eight at a time here; the same comparisons and additions in the same
  /// order, so the same bits (tests run both).
  func run(_ a: UnsafeMutablePointer<Float>, planes: Range<Int>, wide: Bool = AVX512.enabled) {
    let p = pool
    let dilation = p.isMax ? p.dilation : (1, 1)
    let interior = p.interiorColumns
    typealias Lanes = SIMD8<Int32>
    let evens = Lanes(0, 2, 4, 6, 8, 10, 12, 14)
    for plane in planes {
      let src = a + x + plane * p.h * p.w, dst = a + dx + plane * p.h * p.w, g = a + dy + plane * p.oh * p.ow
      // Zeroed plane by plane, so that the plane is still in cache when its gradients are added
      // (zeroing a core's whole range first wrote it out to memory and read it back).
      dst.update(repeating: 0, count: p.h * p.w)
      for oy in 0..<p.oh {
        let y0 = oy * p.stride.0 - p.padding.0
        let ky0 = y0 >= 0 ? 0 : (-y0 + dilation.0 - 1) / dilation.0
        let ky1 = Swift.min(p.kernel.0, (p.h - y0 + dilation.0 - 1) / dilation.0)
        // Window by window: the border columns, and all of them where no vector path applies.
        // Columns go in order, so each gradient is added in the windows' order (PyTorch's).
        @inline(__always) func window(_ ox: Int) {
          let x0 = ox * p.stride.1 - p.padding.1
          let kx0 = x0 >= 0 ? 0 : (-x0 + dilation.1 - 1) / dilation.1
          let kx1 = Swift.min(p.kernel.1, (p.w - x0 + dilation.1 - 1) / dilation.1)
          guard ky1 > ky0 && kx1 > kx0 else { return }
          let d = g[oy * p.ow + ox]
          if p.isMax {
            var best = -1
            var m = -Float.infinity
            for ky in ky0..<ky1 {
              for kx in kx0..<kx1 {
                let i = (y0 + ky * dilation.0) * p.w + x0 + kx * dilation.1
                if best < 0 || src[i] > m || src[i].isNaN { best = i; m = src[i] }
              }
            }
            dst[best] += d
          } else {
            let count: Int
            if p.countIncludePad {
              count =
                (Swift.min(y0 + p.kernel.0, p.h + p.padding.0) - y0)
                * (Swift.min(x0 + p.kernel.1, p.w + p.padding.1) - x0)
            } else {
              count = Swift.max(
                (Swift.min(y0 + p.kernel.0, p.h) - Swift.max(y0, 0))
                  * (Swift.min(x0 + p.kernel.1, p.w) - Swift.max(x0, 0)), 1)
            }
            let share = d / Float(count)
            for ky in ky0..<ky1 {
              let row = dst + (y0 + ky) * p.w + x0
              for kx in kx0..<kx1 { row[kx] += share }
            }
          }
        }
        for ox in 0..<interior.lowerBound { window(ox) }
        // Max pooling of stride 2 inside: the argmax of eight windows at a time (columns as in
        // the forward's vector path), then the eight gradients added in column order.
        var oxV = interior.lowerBound
        if p.isMax && p.stride.1 == 2 && ky1 > ky0 {
          // Every interior window, up to sixteen at a time (its loads read only theirs).
          while wide && oxV < interior.upperBound {
            let count = Swift.min(16, interior.upperBound - oxV)
            glassbox_max_pool16_backward_avx512(
              Int32(count), src, (y0 + ky0 * dilation.0) * p.w - p.padding.1 + 2 * oxV,
              dilation.0 * p.w, Int32(ky1 - ky0), Int32(p.kernel.1), dilation.1,
              g + oy * p.ow + oxV, dst)
            oxV += count
          }
          let lastRead = p.lastRead(y0: y0, ky1: ky1)
          while oxV + 8 <= interior.upperBound && lastRead + 2 * oxV < p.h * p.w {
            var m = SIMD8<Float>(), best = Lanes()
            for ky in ky0..<ky1 {
              let row = (y0 + ky * dilation.0) * p.w - p.padding.1 + 2 * oxV
              for kx in 0..<p.kernel.1 {
                let i = row + kx * dilation.1
                let v = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD16<Float>.self).evenHalf
                let index = Lanes(repeating: Int32(i)) &+ evens
                if ky == ky0 && kx == 0 {
                  (m, best) = (v, index)
                } else {
                  // The first maximum, or the last NaN (as the scalar loop below).
                  let take = (v .> m) .| (v .!= v)
                  m.replace(with: v, where: take)
                  best.replace(with: index, where: take)
                }
              }
            }
            for l in 0..<8 { dst[Int(best[l])] += g[oy * p.ow + oxV + l] }
            oxV += 8
          }
        }
        for ox in oxV..<p.ow { window(ox) }
      }
    }
  }
}

/// Sums of one row in blocks of 256 floats, eight lanes at a time in Float, the blocks added in
/// Double: vector speed, and Double's accuracy across blocks and images.
@inline(__always)
func blockSum(_ count: Int, _ term: (Int) -> SIMD8<Float>, scalar: (Int) -> Float) -> Double {
  var total = 0.0, i = 0
  while i + 8 <= count {
    let end = Swift.min(count, i + 256) & ~7
    var acc = SIMD8<Float>()
    while i + 8 <= end { acc += term(i); i += 8 }
    total += Double(acc.sum())
  }
  while i < count { total += Double(scalar(i)); i += 1 }
  return total
}

/// Two sums of one row at once, each as `blockSum` makes it (so each has its bits).
@inline(__always)
func blockSums(
  _ count: Int, _ term: (Int) -> (SIMD8<Float>, SIMD8<Float>), scalar: (Int) -> (Float, Float)
)
  -> (Double, Double)
{
  var total = (0.0, 0.0), i = 0
  while i + 8 <= count {
    let end = Swift.min(count, i + 256) & ~7
    var acc = (SIMD8<Float>(), SIMD8<Float>())
    while i + 8 <= end {
      let t = term(i)
      acc.0 += t.0
      acc.1 += t.1
      i += 8
    }
    total.0 += Double(acc.0.sum())
    total.1 += Double(acc.1.sum())
  }
  while i < count {
    let t = scalar(i)
    total.0 += Double(t.0)
    total.1 += Double(t.1)
    i += 1
  }
  return total
}

/// Training batch norm over `[N, C, inner]`: per channel the batch mean and biased variance
/// (`blockSum`), then `y = (x − mean)/√(var + eps)·w + b`, then ReLU where `relu`. Channels
/// are independent: split over the cores.
///
/// With a cross-process sum attached (`Executable.crossProcessSum`, a data-parallel run's
/// SyncBatchNorm) the statistics are those of every process's batch together, in three phases
/// split over the cores, the sum called between them on the running thread: each channel's
/// sum of x and this batch's count (`C + 1` Doubles) summed over the processes, the mean;
/// each channel's sum of squared deviations from it (`C`) summed, the variance; then the
/// normalisation. Alone, the phases make the same operations as the one pass, so a sum over
/// one process gives the same bits.
struct BatchNormTrain: SumsAcrossProcesses {
  var label: String
  var n: Int, c: Int, inner: Int, eps: Float
  var x: Int, weight: Int, bias: Int, out: Int, mean: Int, variance: Int
  var relu = false
  var threads = 1
  var processes: CrossProcessReduction? = nil

  var crossProcessValues: Int { c + 1 }

  func run(_ a: UnsafeMutablePointer<Float>) {
    if let shared = processes, let sum = shared.sum { return run(a, summingWith: sum, into: shared.values) }
    splitOverCores(a, count: c, threads: threads, worthIt: worthSplitting) { run($0, channels: $1) }
  }

  var worthSplitting: Bool { n * c * inner >= 1 << 15 }

  func run(_ a: UnsafeMutablePointer<Float>, channels: Range<Int>) {
    let m = Double(n * inner)
    for ch in channels {
      let fmu = Float(total(a, channel: ch) / m)
      normalise(a, channel: ch, mean: fmu, variance: Float(squaredDeviations(a, channel: ch, from: fmu) / m))
    }
  }

  /// The phases, `values` holding `C + 1` Doubles: the channels' sums, then the count.
  func run(
    _ a: UnsafeMutablePointer<Float>, summingWith sum: CrossProcessSum,
    into values: UnsafeMutablePointer<Double>
  ) {
    splitOverCores(a, count: c, threads: threads, worthIt: worthSplitting) { a, channels in
      for ch in channels { values[ch] = total(a, channel: ch) }
    }
    values[c] = Double(n * inner)
    sum(UnsafeMutableBufferPointer(start: values, count: c + 1))
    let m = values[c]
    splitOverCores(a, count: c, threads: threads, worthIt: worthSplitting) { a, channels in
      for ch in channels {
        let fmu = Float(values[ch] / m)
        a[mean + ch] = fmu
        values[ch] = squaredDeviations(a, channel: ch, from: fmu)
      }
    }
    sum(UnsafeMutableBufferPointer(start: values, count: c))
    splitOverCores(a, count: c, threads: threads, worthIt: worthSplitting) { a, channels in
      for ch in channels { normalise(a, channel: ch, mean: a[mean + ch], variance: Float(values[ch] / m)) }
    }
  }

  /// Σx over a channel of this batch.
  @inline(__always)
  func total(_ a: UnsafeMutablePointer<Float>, channel ch: Int) -> Double {
    var sum = 0.0
    for img in 0..<n {
      let s = a + x + (img * c + ch) * inner
      sum += blockSum(inner, { load8(s + $0) }, scalar: { s[$0] })
    }
    return sum
  }

  /// Σ(x − mean)² over a channel of this batch.
  @inline(__always)
  func squaredDeviations(_ a: UnsafeMutablePointer<Float>, channel ch: Int, from fmu: Float) -> Double {
    var sq = 0.0
    for img in 0..<n {
      let s = a + x + (img * c + ch) * inner
      sq += blockSum(
        inner,
        {
          let d = load8(s + $0) - fmu; return d * d
        },
        scalar: {
          let d = s[$0] - fmu; return d * d
        })
    }
    return sq
  }

  /// Writes a channel's statistics and its normalised (and rectified) values.
  @inline(__always)
  func normalise(_ a: UnsafeMutablePointer<Float>, channel ch: Int, mean fmu: Float, variance v: Float) {
    a[mean + ch] = fmu
    a[variance + ch] = v
    let (scale, shift) = BatchNormTrain.affine(
      a, weight: weight + ch, bias: bias + ch, mean: fmu, variance: v,
      eps: eps)
    for img in 0..<n {
      let s = a + x + (img * c + ch) * inner, d = a + out + (img * c + ch) * inner
      var i = 0
      if relu {
        // ReLU as `Unary`'s: negatives and −0 to +0, a NaN kept.
        while i + 8 <= inner {
          let y = load8(s + i) * scale + shift
          store8(y.replacing(with: 0, where: y .<= 0), d + i)
          i += 8
        }
        while i < inner { d[i] = Swift.max(s[i] * scale + shift, 0); i += 1 }
      } else {
        while i + 8 <= inner { store8(load8(s + i) * scale + shift, d + i); i += 8 }
        while i < inner { d[i] = s[i] * scale + shift; i += 1 }
      }
    }
  }
}

extension BatchNormTrain {
  /// A channel's `y = x·scale + shift`: `scale = w/√(var + eps)`, `shift = b − mean·scale`. The
  /// forward and, for its ReLU's mask, the backward compute it the same way.
  @inline(__always)
  static func affine(
    _ a: UnsafeMutablePointer<Float>, weight: Int, bias: Int, mean: Float, variance: Float,
    eps: Float
  ) -> (scale: Float, shift: Float) {
    let scale = a[weight] / (variance + eps).squareRoot()
    return (scale, a[bias] - mean * scale)
  }
}

/// `dx = w/√(var + eps)/m · (m·dy − Σdy − x̂·Σ(dy·x̂))`, `dw = Σ dy·x̂`, `db = Σ dy` per channel,
/// channels split over the cores. With `bias` (the forward's ReLU), `dy` counts only where
/// `x·scale + shift > 0`, computed as the forward computed it, so the mask is the forward's.
///
/// With a cross-process sum attached (as PyTorch's SyncBatchNorm backward): `dw` and `db` are
/// this batch's sums (the data-parallel step sums every parameter's gradient over the
/// processes, these too), then each channel's Σdy and Σdy·x̂ and this batch's count (`2C + 1`
/// Doubles) are summed over the processes, and `dx` takes the sums and count of every
/// process's batch together.
struct BatchNormTrainBackward: SumsAcrossProcesses {
  var label: String
  var n: Int, c: Int, inner: Int, eps: Float
  var dy: Int, x: Int, weight: Int, mean: Int, variance: Int, dx: Int, dweight: Int, dbias: Int
  var bias: Int? = nil
  var threads = 1
  var processes: CrossProcessReduction? = nil

  var crossProcessValues: Int { 2 * c + 1 }

  func run(_ a: UnsafeMutablePointer<Float>) {
    if let shared = processes, let sum = shared.sum { return run(a, summingWith: sum, into: shared.values) }
    splitOverCores(a, count: c, threads: threads, worthIt: worthSplitting) { run($0, channels: $1) }
  }

  var worthSplitting: Bool { n * c * inner >= 1 << 15 }

  func run(_ a: UnsafeMutablePointer<Float>, channels: Range<Int>) {
    let m = Float(n * inner)
    for ch in channels {
      let (db, dw) = sums(a, channel: ch)
      inputGradient(a, channel: ch, count: m, sumDy: Float(db), sumDyXhat: Float(dw))
    }
  }

  /// The phases, `values` holding `2C + 1` Doubles: the channels' Σdy, their Σdy·x̂, the count.
  func run(
    _ a: UnsafeMutablePointer<Float>, summingWith sum: CrossProcessSum,
    into values: UnsafeMutablePointer<Double>
  ) {
    splitOverCores(a, count: c, threads: threads, worthIt: worthSplitting) { a, channels in
      for ch in channels { (values[ch], values[c + ch]) = sums(a, channel: ch) }
    }
    values[2 * c] = Double(n * inner)
    sum(UnsafeMutableBufferPointer(start: values, count: 2 * c + 1))
    let m = Float(values[2 * c])
    splitOverCores(a, count: c, threads: threads, worthIt: worthSplitting) { a, channels in
      for ch in channels {
        inputGradient(a, channel: ch, count: m, sumDy: Float(values[ch]), sumDyXhat: Float(values[c + ch]))
      }
    }
  }

  /// A channel's mean, 1/√(var + eps), and the forward's affine map where its ReLU masks `dy`.
  struct Channel {
    var mu: Float, inv: Float, scale: Float, shift: Float, masked: Bool

    /// dy, masked by the forward's ReLU where there was one.
    @inline(__always)
    func g8(_ g: UnsafeMutablePointer<Float>, _ s: UnsafeMutablePointer<Float>, _ i: Int) -> SIMD8<Float> {
      let v = load8(g + i)
      return masked ? SIMD8(repeating: 0).replacing(with: v, where: load8(s + i) * scale + shift .> 0) : v
    }

    @inline(__always)
    func g1(_ g: UnsafeMutablePointer<Float>, _ s: UnsafeMutablePointer<Float>, _ i: Int) -> Float {
      masked && !(s[i] * scale + shift > 0) ? 0 : g[i]
    }
  }

  @inline(__always)
  func channel(_ a: UnsafeMutablePointer<Float>, _ ch: Int) -> Channel {
    let mu = a[mean + ch], inv = 1 / (a[variance + ch] + eps).squareRoot()
    let (scale, shift) =
      bias.map {
        BatchNormTrain.affine(a, weight: weight + ch, bias: $0 + ch, mean: mu, variance: a[variance + ch], eps: eps)
      } ?? (0, 0)
    return Channel(mu: mu, inv: inv, scale: scale, shift: shift, masked: bias != nil)
  }

  /// Σdy and Σdy·x̂ over a channel of this batch (in one pass over dy and x), written to `dbias`
  /// and `dweight`.
  @inline(__always)
  func sums(_ a: UnsafeMutablePointer<Float>, channel ch: Int) -> (sumDy: Double, sumDyXhat: Double) {
    let k = channel(a, ch), mu = k.mu, inv = k.inv
    var db = 0.0, dw = 0.0
    for img in 0..<n {
      let g = a + dy + (img * c + ch) * inner, s = a + x + (img * c + ch) * inner
      let sums = blockSums(
        inner,
        { i in
          let d = k.g8(g, s, i)
          return (d, d * ((load8(s + i) - mu) * inv))
        },
        scalar: { i in
          let d = k.g1(g, s, i)
          return (d, d * ((s[i] - mu) * inv))
        })
      db += sums.0
      dw += sums.1
    }
    a[dbias + ch] = Float(db)
    a[dweight + ch] = Float(dw)
    return (db, dw)
  }

  /// A channel's `dx` from the sums over `m` values.
  @inline(__always)
  func inputGradient(
    _ a: UnsafeMutablePointer<Float>, channel ch: Int, count m: Float, sumDy fdb: Float,
    sumDyXhat fdw: Float
  ) {
    let k = channel(a, ch), mu = k.mu, inv = k.inv
    let scale = a[weight + ch] * inv / m
    for img in 0..<n {
      let g = a + dy + (img * c + ch) * inner, s = a + x + (img * c + ch) * inner, d = a + dx + (img * c + ch) * inner
      var i = 0
      while i + 8 <= inner {
        store8(scale * (m * k.g8(g, s, i) - fdb - (load8(s + i) - mu) * inv * fdw), d + i)
        i += 8
      }
      while i < inner { d[i] = scale * (m * k.g1(g, s, i) - fdb - (s[i] - mu) * inv * fdw); i += 1 }
    }
  }
}

/// The gradients of a `LayerNorm` for `dy`: per row, the statistics recomputed from `x` as
/// the forward computes them, `x̂ = (x − mean)·r`, `ĝ = dy·weight`, then
/// `dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))`; `dweight` and `dbias` sum `dy·x̂` and `dy` over the
/// rows in order, on one core.
struct LayerNormBackward: Kernel {
  var label: String
  var rows: Int, n: Int, eps: Float
  var dy: Int, x: Int, weight: Int, dx: Int, dweight: Int, dbias: Int

  func run(_ a: UnsafeMutablePointer<Float>) {
    let w = a + weight, dw = a + dweight, db = a + dbias
    dw.update(repeating: 0, count: n)
    db.update(repeating: 0, count: n)
    for r in 0..<rows {
      let s = a + x + r * n, g = a + dy + r * n, d = a + dx + r * n
      let (mean, inverse) = LayerNorm.statistics(s, n: n, eps: eps)
      var meanG: Float = 0, meanGX: Float = 0
      for j in 0..<n {
        let gj = g[j] * w[j]
        meanG += gj
        meanGX += gj * ((s[j] - mean) * inverse)
      }
      meanG /= Float(n)
      meanGX /= Float(n)
      for j in 0..<n {
        let xhat = (s[j] - mean) * inverse
        dw[j] += g[j] * xhat
        db[j] += g[j]
        d[j] = inverse * (g[j] * w[j] - meanG - xhat * meanGX)
      }
    }
  }
}
