import CKernels
import Foundation
import GlassboxIR

/// One step of a compiled program. Kernels hold arena offsets (in floats) and sizes fixed at
/// compile time; `run` reads and writes the arena and allocates nothing.
protocol Kernel: Sendable {
  /// What the kernel computes, for `--stats` and profiles.
  var label: String { get }
  func run(_ a: UnsafeMutablePointer<Float>)
  /// Derives what the kernel keeps from the parameters (transformed weights) into its
  /// persistent region; runs whenever parameters are set. A parameter with no slot in the
  /// arena (`BufferAssignment.Storage.derivedOnly`) is read from `callers`, the caller's data.
  func prepare(_ a: UnsafeMutablePointer<Float>, callers: CallerParameters)
  /// The SGEMMs one run makes (empty for kernels not built on GEMM), for profiles.
  var gemms: [GEMMShape] { get }
  /// Floating-point operations the kernel's multiply-adds perform per run, for profiles: the
  /// `gemms`' where the kernel is those GEMMs; fewer for Winograd (16 products of a tile where a
  /// GEMM makes 36), more for a direct convolution (the lanes past a row, channels past the
  /// last block).
  var executedFlops: Double { get }
}

extension Kernel {
  func prepare(_ a: UnsafeMutablePointer<Float>, callers: CallerParameters) {}
  var gemms: [GEMMShape] { [] }
  var executedFlops: Double { gemms.reduce(0) { $0 + $1.flops } }
}

/// The data of the parameters that have no slot in the arena, by value index, as the caller
/// handed them to `Executable.setParameters` (f32): valid while kernels `prepare`.
typealias CallerParameters = [Int: UnsafePointer<Float>]

/// Where a kernel that derives its own copy of a weight (`prepare`: a direct convolution's
/// packed weights, Winograd's transformed ones) reads that weight.
enum WeightSource: Equatable, Sendable {
  /// The arena, from this offset (floats).
  case arena(Int)
  /// The caller's data of the parameter with this value index, which has no slot: only such
  /// kernels read it (`BufferAssignment.Storage.derivedOnly`).
  case caller(Int)

  /// The weight's first float, during `prepare`.
  func pointer(_ a: UnsafeMutablePointer<Float>, _ callers: CallerParameters) -> UnsafePointer<Float> {
    switch self {
    case .arena(let offset): return UnsafePointer(a + offset)
    case .caller(let value):
      guard let p = callers[value] else { preconditionFailure("parameter value \(value) has no slot and no data") }
      return p
    }
  }
}

/// One SGEMM a kernel makes per run (`count` times), for comparing the kernel with
/// OpenBLAS alone on the same shapes.
public struct GEMMShape: Hashable, Sendable {
  public var m: Int, n: Int, k: Int
  public var transB: Bool
  public var count: Int
  public var flops: Double { 2 * Double(m) * Double(n) * Double(k) * Double(count) }
}

/// Row-major strides of a shape.
func rowMajorStrides(_ shape: [Int]) -> [Int] {
  var s = [Int](repeating: 1, count: shape.count)
  var acc = 1
  for i in stride(from: shape.count - 1, through: 0, by: -1) {
    s[i] = acc
    acc *= shape[i]
  }
  return s
}

/// Visits every index of `shape` except the last axis, passing the starting offsets of each
/// innermost run in two or three strided views; the run has `shape.last` elements.
@inline(__always)
func forEachRun(
  _ shape: [Int], _ s0: [Int], _ s1: [Int], _ s2: [Int],
  _ body: (_ o0: Int, _ o1: Int, _ o2: Int) -> Void
) {
  let rank = shape.count
  if rank <= 1 { body(0, 0, 0); return }
  var idx = [Int](repeating: 0, count: rank - 1)
  var o0 = 0, o1 = 0, o2 = 0
  let outer = shape.dropLast().reduce(1, *)
  for _ in 0..<outer {
    body(o0, o1, o2)
    var d = rank - 2
    while d >= 0 {
      idx[d] += 1
      o0 += s0[d]; o1 += s1[d]; o2 += s2[d]
      if idx[d] < shape[d] { break }
      o0 -= s0[d] * shape[d]; o1 -= s1[d] * shape[d]; o2 -= s2[d] * shape[d]
      idx[d] = 0
      d -= 1
    }
  }
}

// MARK: - Copies

/// `dst[view] = src[view]`: transpose, slice, select, split and concat pieces are all strided
/// copies between two views of the same shape.
struct StridedCopy: Kernel {
  var label: String
  var shape: [Int]
  var src: Int, srcStrides: [Int]
  var dst: Int, dstStrides: [Int]

  func run(_ a: UnsafeMutablePointer<Float>) {
    guard let n = shape.last, n > 0 else {
      if shape.isEmpty { a[dst] = a[src] }
      return
    }
    let si = srcStrides.last ?? 1, di = dstStrides.last ?? 1
    forEachRun(shape, srcStrides, dstStrides, dstStrides) { o0, o1, _ in
      let s = a + src + o0, d = a + dst + o1
      if si == 1 && di == 1 { d.update(from: s, count: n) } else { for i in 0..<n { d[i * di] = s[i * si] } }
    }
  }
}

/// `out = pad(x)` (`PadAttributes`): row by row along the last axis, each output row either
/// all padding (`constant` outside an outer axis) or a copy of the input row it reads with
/// its two ends filled; rows split over the cores when there are many.
struct Pad: Kernel {
  var label: String
  /// The input's shape, and the elements each axis gains before and after.
  var shape: [Int], before: [Int], after: [Int]
  var mode: PadAttributes.Mode, value: Float
  var x: Int, out: Int
  var threads = 1

  var outShape: [Int] { shape.indices.map { shape[$0] + before[$0] + after[$0] } }

  func run(_ a: UnsafeMutablePointer<Float>) {
    guard let width = outShape.last else { a[out] = a[x]; return }
    let rows = outShape.dropLast().reduce(1, *)
    let kernel = self
    splitOverCores(a, count: rows, threads: threads, worthIt: rows * width >= elementwiseParallelCount) { a, range in
      kernel.run(a, rows: range)
    }
  }

  func run(_ a: UnsafeMutablePointer<Float>, rows range: Range<Int>) {
    let rank = shape.count, outShape = self.outShape, inStrides = rowMajorStrides(shape)
    let n = shape[rank - 1], b = before[rank - 1], e = after[rank - 1], width = outShape[rank - 1]
    let source = PadAttributes(pads: before + after, mode: mode, value: 0)
    for row in range {
      let dst = a + out + row * width
      // The input row this output row reads, axis by axis from the innermost outer one.
      var rest = row, offset: Int? = 0
      for axis in stride(from: rank - 2, through: 0, by: -1) {
        let i = rest % outShape[axis]
        rest /= outShape[axis]
        guard let o = offset, let j = source.source(i, axis: axis, size: shape[axis]) else { offset = nil; break }
        offset = o + j * inStrides[axis]
      }
      guard let o = offset else { dst.update(repeating: value, count: width); continue }
      let src = a + x + o
      (dst + b).update(from: src, count: n)
      switch mode {
      case .constant:
        dst.update(repeating: value, count: b)
        (dst + b + n).update(repeating: value, count: e)
      case .edge:
        dst.update(repeating: src[0], count: b)
        (dst + b + n).update(repeating: src[n - 1], count: e)
      case .reflect:
        for j in 0..<b { dst[b - 1 - j] = src[j + 1] }
        for j in 0..<e { dst[b + n + j] = src[n - 2 - j] }
      }
    }
  }
}

/// Fills a region with a value.
struct Fill: Kernel {
  var label = "fill"
  var dst: Int, count: Int, value: Float
  func run(_ a: UnsafeMutablePointer<Float>) { (a + dst).update(repeating: value, count: count) }
}

// MARK: - Elementwise

enum BinaryOp: Sendable {
  case add, sub, mul, div, pow, maximum, minimum

  /// The op of a two-register `fused_elementwise` step; nil for a one-register code.
  init?(_ code: ElementwiseCode) {
    switch code {
    case .add: self = .add
    case .sub: self = .sub
    case .mul: self = .mul
    case .div: self = .div
    case .pow: self = .pow
    case .maximum: self = .maximum
    case .minimum: self = .minimum
    case .relu, .sigmoid, .tanh, .exp, .log, .sqrt, .abs, .erf: return nil
    }
  }
}

enum UnaryOp: Sendable {
  case relu, sigmoid, tanh, exp, log, sqrt, abs, erf

  /// The op of a one-register `fused_elementwise` step; nil for a two-register code.
  init?(_ code: ElementwiseCode) {
    switch code {
    case .relu: self = .relu
    case .sigmoid: self = .sigmoid
    case .tanh: self = .tanh
    case .exp: self = .exp
    case .log: self = .log
    case .sqrt: self = .sqrt
    case .abs: self = .abs
    case .erf: self = .erf
    case .add, .sub, .mul, .div, .pow, .maximum, .minimum: return nil
    }
  }
}

/// Elements from which an elementwise kernel splits its work over the cores: a memory-bound
/// pass over 1 MiB of floats; below it, waking the other core costs more than it saves.
let elementwiseParallelCount = 1 << 18

/// Parts an elementwise pass of `count` elements over an outer axis of `outer` splits into.
func elementwiseParts(count: Int, outer: Int, threads: Int) -> Int {
  count >= elementwiseParallelCount ? Swift.max(1, Swift.min(threads, outer)) : 1
}

/// `body` over `0..<count` flat elements, split over the cores in whole vectors of 8 (so each
/// element takes the same path whatever the split) when there are enough of them.
@inline(__always)
func forEachElementRange(count: Int, threads: Int, _ body: (Range<Int>) -> Void) {
  let parts = elementwiseParts(count: count, outer: count / 8, threads: threads)
  guard parts > 1 else { return body(0..<count) }
  let vectors = count / 8
  parallelFor(parts) { part in
    body((vectors * part / parts * 8)..<(part == parts - 1 ? count : vectors * (part + 1) / parts * 8))
  }
}

/// `out = lhs ∘ rhs` with NumPy broadcasting (a broadcast axis has stride 0). A large one
/// splits its outermost axis over the cores.
struct Binary: Kernel {
  var label: String
  var op: BinaryOp
  var shape: [Int]
  var lhs: Int, lhsStrides: [Int]
  var rhs: Int, rhsStrides: [Int]
  var out: Int
  var threads = 1

  func run(_ a: UnsafeMutablePointer<Float>) {
    let shape = self.shape.isEmpty ? [1] : self.shape
    let lhsStrides = self.lhsStrides.isEmpty ? [0] : self.lhsStrides,
      rhsStrides = self.rhsStrides.isEmpty ? [0] : self.rhsStrides
    let outStrides = rowMajorStrides(shape)
    let parts = shape.count > 1 ? elementwiseParts(count: shape.reduce(1, *), outer: shape[0], threads: threads) : 1
    guard parts > 1 else { return run(a, shape, lhs, lhsStrides, rhs, rhsStrides, out, outStrides) }
    let base = UnsafeSendable(a), kernel = self
    parallelFor(parts) { part in
      let lo = shape[0] * part / parts, hi = shape[0] * (part + 1) / parts
      var sub = shape
      sub[0] = hi - lo
      kernel.run(
        base.pointer, sub, kernel.lhs + lo * lhsStrides[0], lhsStrides, kernel.rhs + lo * rhsStrides[0], rhsStrides,
        kernel.out + lo * outStrides[0], outStrides)
    }
  }

  @inline(__always)
  func run(
    _ a: UnsafeMutablePointer<Float>, _ shape: [Int], _ lhs: Int, _ lhsStrides: [Int], _ rhs: Int, _ rhsStrides: [Int],
    _ out: Int, _ outStrides: [Int]
  ) {
    let n = shape.last ?? 1
    let ls = lhsStrides.last ?? 0, rs = rhsStrides.last ?? 0
    let op = self.op
    forEachRun(shape, lhsStrides, rhsStrides, outStrides) { o0, o1, o2 in
      let l = a + lhs + o0, r = a + rhs + o1, d = a + out + o2
      Binary.runRow(op, l, ls, r, rs, d, n)
    }
  }

  /// The same elementwise product over fewer, longer rows: axes after the first merge where
  /// both operands and the (row-major) output step through them as one (a same-shape add
  /// of `[N, C, H, W]` becomes `[N, C·H·W]`, a per-channel bias `[N, C, H·W]`). The first axis
  /// stays for the split over cores.
  static func collapsed(_ shape: [Int], _ lhs: [Int], _ rhs: [Int]) -> (shape: [Int], lhs: [Int], rhs: [Int]) {
    guard shape.count > 2 else { return (shape, lhs, rhs) }
    let full = rowMajorStrides(shape)
    var (s, l, r, out) = (Array(shape.prefix(2)), Array(lhs.prefix(2)), Array(rhs.prefix(2)), Array(full.prefix(2)))
    for d in 2..<shape.count {
      let k = s.count - 1
      if k >= 1 && l[k] == lhs[d] * shape[d] && r[k] == rhs[d] * shape[d] && out[k] == full[d] * shape[d] {
        s[k] *= shape[d]
        (l[k], r[k], out[k]) = (lhs[d], rhs[d], full[d])
      } else {
        s.append(shape[d]); l.append(lhs[d]); r.append(rhs[d]); out.append(full[d])
      }
    }
    return (s, l, r)
  }

  @inline(__always)
  static func runRow(
    _ op: BinaryOp, _ l: UnsafeMutablePointer<Float>, _ ls: Int, _ r: UnsafeMutablePointer<Float>,
    _ rs: Int, _ d: UnsafeMutablePointer<Float>, _ n: Int
  ) {
    if ls <= 1 && rs <= 1 {
      let (lScalar, rScalar) = (ls == 0, rs == 0)
      let done =
        switch op {
        case .add: zipRowSIMD(l, lScalar, r, rScalar, d, n) { $0 + $1 }
        case .sub: zipRowSIMD(l, lScalar, r, rScalar, d, n) { $0 - $1 }
        case .mul: zipRowSIMD(l, lScalar, r, rScalar, d, n) { $0 * $1 }
        case .div: zipRowSIMD(l, lScalar, r, rScalar, d, n) { $0 / $1 }
        case .maximum: zipRowSIMD(l, lScalar, r, rScalar, d, n, FastMath.maximum)
        case .minimum: zipRowSIMD(l, lScalar, r, rScalar, d, n, FastMath.minimum)
        // x² is what a correctly rounded powf gives for an exponent of 2 (Pow(x, 2), common in
        // exported models); other exponents go through libm's powf.
        case .pow where rScalar && r[0] == 2 && !lScalar: zipRowSIMD(l, false, l, false, d, n) { $0 * $1 }
        case .pow: false
        }
      if done { return }
    }
    for i in 0..<n {
      let x = l[i * ls], y = r[i * rs]
      switch op {
      case .add: d[i] = x + y
      case .sub: d[i] = x - y
      case .mul: d[i] = x * y
      case .div: d[i] = x / y
      case .pow: d[i] = Foundation.pow(x, y)
      case .maximum: d[i] = x.isNaN || y.isNaN ? .nan : Swift.max(x, y)
      case .minimum: d[i] = x.isNaN || y.isNaN ? .nan : Swift.min(x, y)
      }
    }
  }
}

/// `out = f(x)` elementwise: SIMD where the function is arithmetic (exp by `FastMath`, ≈1 ulp),
/// libm's logf and erff a lane at a time.
struct Unary: Kernel {
  var label: String
  var op: UnaryOp
  var src: Int, dst: Int, count: Int
  var threads = 1

  func run(_ a: UnsafeMutablePointer<Float>) {
    forEachElementRange(count: count, threads: threads) { run(a, $0) }
  }

  /// `wide`: sigmoid and tanh sixteen lanes at a time in CKernels, the same bits (tests run
  /// both).
  func run(_ a: UnsafeMutablePointer<Float>, _ range: Range<Int>, wide: Bool = AVX512.enabled) {
    Unary.apply(op, a + src + range.lowerBound, a + dst + range.lowerBound, count: range.count, wide: wide)
  }

  /// `d[i] = op(s[i])` for `i < count`; `d` may be `s`.
  @inline(__always)
  static func apply(
    _ op: UnaryOp, _ s: UnsafeMutablePointer<Float>, _ d: UnsafeMutablePointer<Float>, count: Int,
    wide: Bool = AVX512.enabled
  ) {
    switch op {
    case .relu: for i in 0..<count { d[i] = Swift.max(s[i], 0) }
    case .sigmoid where wide: glassbox_map_avx512(Int32(GLASSBOX_SIGMOID), s, d, count)
    case .sigmoid: mapSIMD(s, d, count, FastMath.sigmoid)
    case .tanh where wide: glassbox_map_avx512(Int32(GLASSBOX_TANH), s, d, count)
    case .tanh: mapSIMD(s, d, count, FastMath.tanh)
    case .exp: mapSIMD(s, d, count, FastMath.expWithLimits)
    case .log: for i in 0..<count { d[i] = Foundation.log(s[i]) }
    case .sqrt: mapSIMD(s, d, count) { $0.squareRoot() }
    case .abs: mapSIMD(s, d, count, FastMath.abs)
    case .erf: for i in 0..<count { d[i] = Foundation.erf(s[i]) }
    }
  }
}

// MARK: - Matrix products

/// `out[rows, out] = f(x[rows, in]) · Wᵀ + b`, optionally followed by ReLU; `f` is the identity,
/// or an elementwise function whose result only this product reads (`inputFunction`:
/// `Lowering.functionOfInput`), applied to a chunk of rows at a time in scratch.
struct Linear: Kernel {
  var label: String
  var rows: Int, inFeatures: Int, outFeatures: Int
  var x: Int, weight: Int, bias: Int?, out: Int
  var epilogue: Epilogue
  var threads = 1
  var inputFunction: UnaryOp? = nil
  var scratch = 0

  var gemms: [GEMMShape] { [GEMMShape(m: rows, n: outFeatures, k: inFeatures, transB: true, count: 1)] }

  /// Rows per GEMM: about 64 KiB of output, so that the bias copied in as the GEMM's initial
  /// value is still in cache when the GEMM adds to it.
  var chunkRows: Int { Self.chunkRows(outFeatures: outFeatures) }
  static func chunkRows(outFeatures: Int) -> Int { Swift.max(16, (1 << 14) / Swift.max(1, outFeatures)) }

  /// The rows split over the cores when the product is large enough (`BLAS.parallelWork`),
  /// each core its rows a chunk at a time: bias rows, then a single-threaded GEMM over them,
  /// then the epilogue over the core's rows: the bias rows are written by the core that then
  /// adds the product to them, while they are in its cache, not over the whole output by one
  /// core first.
  func run(_ a: UnsafeMutablePointer<Float>) {
    if rows <= Self.dotRows { return runDots(a) }
    let f = inFeatures, o = outFeatures
    let parts = Self.parts(rows: rows, inFeatures: f, outFeatures: o, threads: threads)
    // With an input function each core's chunk of rows goes through it into the core's
    // scratch first, where the product reads it from cache.
    let step =
      inputFunction == nil ? chunkRows : Self.functionRows(rows: rows, inFeatures: f, outFeatures: o, parts: parts)
    parallelFor(parts) { part in
      let lo = rows * part / parts, hi = rows * (part + 1) / parts
      let rowsIn = a + scratch + part * step * f
      var r = lo
      while r < hi {
        let n = Swift.min(step, hi - r)
        var input = a + x + r * f
        if let inputFunction {
          Unary.apply(inputFunction, input, rowsIn, count: n * f)
          input = rowsIn
        }
        if o <= Self.narrowOutputs {
          for i in 0..<n {
            let y = a + out + (r + i) * o
            for j in 0..<o { y[j] = Linear.dot(UnsafePointer(a + weight + j * f), count: f, input + i * f) }
            if let bias { for j in 0..<o { y[j] += a[bias + j] } }
          }
        } else {
          if let bias { for i in r..<(r + n) { (a + out + i * o).update(from: a + bias, count: o) } }
          BLAS.sgemm(
            transB: true, m: n, n: o, k: f, a: input, lda: f, b: a + weight, ldb: f,
            beta: bias == nil ? 0 : 1, c: a + out + r * o, ldc: o)
        }
        r += n
      }
      epilogue.apply(a, out: out, count: (hi - lo) * o, at: lo * o)
    }
  }

  /// Output features up to which each row is dot products (an attention score, a one-logit
  /// head): a GEMM of so few columns runs far below its rate, and its packing costs more than
  /// the product.
  static let narrowOutputs = 4

  /// Cores the rows split over: all of them when the product is large enough
  /// (`BLAS.parallelWork`).
  static func parts(rows: Int, inFeatures: Int, outFeatures: Int, threads: Int) -> Int {
    threads > 1 && rows >= 8 * threads && rows * inFeatures * outFeatures >= BLAS.parallelWork
      ? Swift.min(threads, rows / 4) : 1
  }

  /// Rows at a time through an input function, of a core's share of the rows: at most 64 KiB
  /// of them for a GEMM, 16 KiB for dot products, which stay in the core's cache until the
  /// product reads them.
  static func functionRows(rows: Int, inFeatures: Int, outFeatures: Int, parts: Int) -> Int {
    let floats = outFeatures <= narrowOutputs ? 1 << 12 : 1 << 14
    return Swift.min(
      chunkRows(outFeatures: outFeatures), Swift.max(8, floats / Swift.max(1, inFeatures)), (rows + parts - 1) / parts)
  }

  /// Scratch floats for an input function: a chunk of mapped rows per core.
  static func scratchCount(rows: Int, inFeatures: Int, outFeatures: Int, threads: Int) -> Int {
    let parts = parts(rows: rows, inFeatures: inFeatures, outFeatures: outFeatures, threads: threads)
    return parts * functionRows(rows: rows, inFeatures: inFeatures, outFeatures: outFeatures, parts: parts) * inFeatures
  }
}

extension Linear {
  /// Rows up to which the product is dot products (a classifier at batch 1 or 2): OpenBLAS's
  /// SGEMM packs all of the weight for a one-row product (8 MB for ResNet-50's classifier) and
  /// runs it on one core, where the dot products read the weight once, split over the cores.
  static let dotRows = 2

  /// `out[r][j] = x[r] · W[j] + bias[j]` for every row, the output features split over the
  /// cores when the weight is large; the epilogue over each core's features. Each feature's sum
  /// is the same whichever core or group of four computes it.
  func runDots(_ a: UnsafeMutablePointer<Float>) {
    let f = inFeatures, o = outFeatures
    let parts = threads > 1 && o >= 64 && rows * f * o >= BLAS.parallelWork / 4 ? Swift.min(threads, o / 32) : 1
    parallelFor(parts) { part in
      let lo = o * part / parts, hi = o * (part + 1) / parts
      for r in 0..<rows {
        let x = UnsafePointer(a + self.x + r * f), y = a + out + r * o
        var j = lo
        while j + 4 <= hi {
          var d = Linear.dots4(UnsafePointer(a + weight + j * f), count: f, x)
          if let bias { d += UnsafeRawPointer(a + bias + j).loadUnaligned(as: SIMD4<Float>.self) }
          UnsafeMutableRawPointer(y + j).storeBytes(of: d, as: SIMD4<Float>.self)
          j += 4
        }
        while j < hi {
          y[j] = Linear.dot(UnsafePointer(a + weight + j * f), count: f, x) + (bias.map { a[$0 + j] } ?? 0)
          j += 1
        }
        epilogue.apply(a, out: out, count: hi - lo, at: r * o + lo)
      }
    }
  }

  /// Four rows of `w` (`count` apart) dotted with `x`: sixteen lanes of partial sums per row,
  /// summed, then the tail in order.
  @inline(__always)
  static func dots4(_ w: UnsafePointer<Float>, count f: Int, _ x: UnsafePointer<Float>) -> SIMD4<Float> {
    typealias V = SIMD16<Float>
    func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    var s0 = V(), s1 = V(), s2 = V(), s3 = V()
    var i = 0
    while i + 16 <= f {
      let v = load(x + i)
      s0 += load(w + i) * v
      s1 += load(w + f + i) * v
      s2 += load(w + 2 * f + i) * v
      s3 += load(w + 3 * f + i) * v
      i += 16
    }
    var d = SIMD4(s0.sum(), s1.sum(), s2.sum(), s3.sum())
    while i < f {
      d += SIMD4(w[i], w[f + i], w[2 * f + i], w[3 * f + i]) * x[i]
      i += 1
    }
    return d
  }

  /// One row of `w` dotted with `x`, as `dots4` computes each of its rows.
  @inline(__always)
  static func dot(_ w: UnsafePointer<Float>, count f: Int, _ x: UnsafePointer<Float>) -> Float {
    typealias V = SIMD16<Float>
    var s = V()
    var i = 0
    while i + 16 <= f {
      s += UnsafeRawPointer(w + i).loadUnaligned(as: V.self) * UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
      i += 16
    }
    var d = s.sum()
    while i < f {
      d += w[i] * x[i]
      i += 1
    }
    return d
  }
}

/// What a GEMM or convolution does to its result before anyone reads it: add a residual of
/// the same shape, then ReLU — while the result is still in cache.
struct Epilogue: Sendable {
  var residual: Int?
  var relu: Bool

  var isEmpty: Bool { residual == nil && !relu }

  /// Applies to `count` elements starting `at` elements into the result (and the residual).
  @inline(__always)
  func apply(_ a: UnsafeMutablePointer<Float>, out: Int, count: Int, at start: Int) {
    guard !isEmpty else { return }
    let d = a + out + start
    if let residual {
      let r = a + residual + start
      if relu { for i in 0..<count { d[i] = Swift.max(d[i] + r[i], 0) } } else { for i in 0..<count { d[i] += r[i] } }
    } else {
      for i in 0..<count { d[i] = Swift.max(d[i], 0) }
    }
  }
}

/// `out[b] = lhs[b] · rhs[b]` for each of `batch` matrices `[m, k] · [k, n]`.
struct Matmul: Kernel {
  var label: String
  var batch: Int, m: Int, n: Int, k: Int
  var lhs: Int, rhs: Int, out: Int
  var threads = 1

  var gemms: [GEMMShape] { [GEMMShape(m: m, n: n, k: k, transB: false, count: batch)] }

  func run(_ a: UnsafeMutablePointer<Float>) {
    for b in 0..<batch {
      BLAS.sgemm(
        threads: threads, m: m, n: n, k: k, a: a + lhs + b * m * k, lda: k, b: a + rhs + b * k * n, ldb: n,
        c: a + out + b * m * n, ldc: n)
    }
  }
}

/// 2-D convolution as GEMM: per group, `out[Cout/g, images·OH·OW] = W_g · cols`, with
/// `cols[Cin/g·kh·kw, images·OH·OW]` gathered (im2col) into scratch. Images are taken
/// `chunk` at a time so that small feature maps still make one wide GEMM; with one image per
/// chunk the GEMM writes the output directly, otherwise into scratch and then per image.
/// A 1×1, stride-1, unpadded convolution of one image reads its input as the columns. Bias is
/// the GEMM's initial value.
///
/// With several images and several cores the images are split over the cores (`parts`), each
/// part with its own scratch and a single-threaded BLAS: gathering, GEMM, scattering and the
/// epilogue then all run in parallel on data that stays in that core's cache, where a threaded
/// GEMM alone left the rest to one core.
struct Conv2d: Kernel {
  var label: String
  var n: Int, cin: Int, h: Int, w: Int
  var cout: Int, kh: Int, kw: Int
  var stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int), groups: Int
  var oh: Int, ow: Int
  var x: Int, weight: Int, bias: Int?, out: Int, scratch: Int
  var epilogue: Epilogue
  /// Cores the images are split over (`parts`), or the GEMMs when the images are not split.
  var threads = 1

  /// Images per GEMM: enough for about 2,048 columns.
  static func chunk(images n: Int, spatial: Int) -> Int {
    Swift.max(1, Swift.min(n, (2048 + spatial - 1) / Swift.max(spatial, 1)))
  }

  /// How many parts the `n` images are split into: one per core when every core gets the
  /// same number of images or at least two (so that no core idles for long).
  static func parts(images n: Int, threads: Int) -> Int {
    guard threads > 1, n >= 2 else { return 1 }
    let parts = Swift.min(threads, n)
    return n % parts == 0 || n >= 2 * parts ? parts : 1
  }

  /// Scratch floats: per part, columns, plus the GEMM result when several images share a GEMM.
  static func scratchCount(
    images n: Int, cin: Int, cout: Int, kh: Int, kw: Int, groups: Int, spatial: Int,
    pointwise: Bool, threads: Int = 1
  ) -> Int {
    let parts = parts(images: n, threads: threads)
    return parts
      * partScratch(
        images: (n + parts - 1) / parts, cin: cin, cout: cout, kh: kh, kw: kw, groups: groups,
        spatial: spatial, pointwise: pointwise)
  }

  static func partScratch(
    images n: Int, cin: Int, cout: Int, kh: Int, kw: Int, groups: Int, spatial: Int,
    pointwise: Bool
  ) -> Int {
    let c = chunk(images: n, spatial: spatial)
    if c == 1 && pointwise { return 0 }
    return cin / groups * kh * kw * c * spatial + (c > 1 ? cout / groups * c * spatial : 0)
  }

  var gemms: [GEMMShape] {
    let parts = Conv2d.parts(images: n, threads: threads), k = cin / groups * kh * kw
    var shapes: [GEMMShape] = []
    for part in 0..<parts {
      let images = n * (part + 1) / parts - n * part / parts
      let chunk = Conv2d.chunk(images: images, spatial: oh * ow)
      shapes.append(
        GEMMShape(m: cout / groups, n: chunk * oh * ow, k: k, transB: false, count: images / chunk * groups))
      if images % chunk != 0 {
        shapes.append(GEMMShape(m: cout / groups, n: images % chunk * oh * ow, k: k, transB: false, count: groups))
      }
    }
    return shapes
  }

  var isPointwise: Bool {
    kh == 1 && kw == 1 && stride == (1, 1) && padding == (0, 0)
  }

  func run(_ a: UnsafeMutablePointer<Float>) {
    let kernel = self
    let each = { images in
      Conv2d.partScratch(
        images: images, cin: kernel.cin, cout: kernel.cout, kh: kernel.kh, kw: kernel.kw,
        groups: kernel.groups, spatial: kernel.oh * kernel.ow, pointwise: kernel.isPointwise)
    }
    forEachImagePart(images: n, threads: threads, a, scratch: scratch, partScratch: each) {
      a, _, images, offset, threads in
      kernel.run(a, images: images, scratch: offset, threads: threads)
    }
  }

  /// The convolution of images `range`, with `scratch` (`partScratch` floats for as many
  /// images) to itself and its GEMMs over `threads` cores.
  func run(_ a: UnsafeMutablePointer<Float>, images range: Range<Int>, scratch: Int, threads: Int) {
    let cg = cin / groups, og = cout / groups
    let k = cg * kh * kw, spatial = oh * ow
    let chunk = Conv2d.chunk(images: range.count, spatial: spatial)
    var first = range.lowerBound
    while first < range.upperBound {
      let count = Swift.min(chunk, range.upperBound - first)
      let columns = count * spatial
      for g in 0..<groups {
        let cols: UnsafeMutablePointer<Float>
        if chunk == 1 && isPointwise {
          cols = a + x + (first * cin + g * cg) * h * w
        } else {
          cols = a + scratch
          for i in 0..<count {
            im2col(a + x + ((first + i) * cin + g * cg) * h * w, cols + i * spatial, channels: cg, rowStride: columns)
          }
        }
        // One image: straight into the output; several: into scratch, then scattered.
        let direct = chunk == 1
        let dst = direct ? a + out + (first * cout + g * og) * spatial : a + scratch + k * chunk * spatial
        if let bias {
          for c in 0..<og { (dst + c * columns).update(repeating: a[bias + g * og + c], count: columns) }
        }
        BLAS.sgemm(
          threads: threads, m: og, n: columns, k: k, a: a + weight + g * og * k, lda: k, b: cols, ldb: columns,
          beta: bias == nil ? 0 : 1, c: dst, ldc: columns)
        if !direct {
          for i in 0..<count {
            for c in 0..<og {
              (a + out + ((first + i) * cout + g * og + c) * spatial).update(
                from: dst + c * columns + i * spatial, count: spatial)
            }
          }
        }
      }
      // The chunk's images are contiguous in the output: one epilogue pass over them.
      epilogue.apply(a, out: out, count: count * cout * spatial, at: first * cout * spatial)
      first += count
    }
  }

  /// `cols[(c·kh + ky)·kw + kx, oy·OW + ox] = x[c, oy·s − p + ky·d, ox·s − p + kx·d]` (0 outside).
  /// Rows of `cols` are `rowStride` apart (several images side by side). The output rows and
  /// columns that read inside the image depend on the kernel offset only, so they are found
  /// once per (ky, kx) and every channel copies between them; stride 2 gathers eight columns
  /// from sixteen floats at a time.
  @inline(__always)
  func im2col(_ x: UnsafeMutablePointer<Float>, _ cols: UnsafeMutablePointer<Float>, channels: Int, rowStride: Int) {
    let sy = stride.0, sx = stride.1
    if ow < 8 { return im2colSmall(x, cols, channels: channels, rowStride: rowStride) }
    for ky in 0..<kh {
      let y0 = ky * dilation.0 - padding.0
      let (oyLo, oyHi) = Conv2d.inside(offset: y0, stride: sy, extent: h, outputs: oh)
      for kx in 0..<kw {
        let x0 = kx * dilation.1 - padding.1
        let (lo, hi) = Conv2d.inside(offset: x0, stride: sx, extent: w, outputs: ow)
        for c in 0..<channels {
          let row = cols + ((c * kh + ky) * kw + kx) * rowStride
          if oyLo > 0 { row.update(repeating: 0, count: oyLo * ow) }
          if oyHi < oh { (row + oyHi * ow).update(repeating: 0, count: (oh - oyHi) * ow) }
          for oy in oyLo..<oyHi {
            let dst = row + oy * ow
            // The input element of column ox is src[ox · sx] (src may point before the row).
            let src = x + (c * h + oy * sy + y0) * w + x0
            for ox in 0..<lo { dst[ox] = 0 }
            var ox = lo
            if sx == 1 {
              while ox + 8 <= hi { store8(load8(src + ox), dst + ox); ox += 8 }
              while ox < hi { dst[ox] = src[ox]; ox += 1 }
            } else if sx == 2 {
              // While src[2·ox ..< 2·ox + 16] lies inside the input row.
              while ox + 8 <= hi && 2 * (ox + 8) + x0 <= w {
                store8(UnsafeRawPointer(src + 2 * ox).loadUnaligned(as: SIMD16<Float>.self).evenHalf, dst + ox)
                ox += 8
              }
              while ox < hi { dst[ox] = src[2 * ox]; ox += 1 }
            } else {
              while ox < hi { dst[ox] = src[ox * sx]; ox += 1 }
            }
            for ox in hi..<ow { dst[ox] = 0 }
          }
        }
      }
    }
  }

  /// `im2col` for maps less than eight outputs wide (ResNet's layer4 on 112×112 frames:
  /// 4×4): rows of a few floats made the row-by-row copy all loop overhead and mispredicted
  /// branches. Per kernel offset the input index of every output (`inputIndices`), then every
  /// channel gathers through it.
  func im2colSmall(
    _ x: UnsafeMutablePointer<Float>, _ cols: UnsafeMutablePointer<Float>, channels: Int,
    rowStride: Int
  ) {
    let spatial = oh * ow
    withUnsafeTemporaryAllocation(of: Int.self, capacity: spatial) { index in
      for ky in 0..<kh {
        for kx in 0..<kw {
          inputIndices(ky: ky, kx: kx, into: index.baseAddress!)
          for c in 0..<channels {
            let row = cols + ((c * kh + ky) * kw + kx) * rowStride, src = x + c * h * w
            for j in 0..<spatial {
              let i = index[j]
              row[j] = i >= 0 ? src[Swift.max(i, 0)] : 0
            }
          }
        }
      }
    }
  }

  /// `index[oy·OW + ox]`: where in an input plane kernel offset (ky, kx) of output (oy, ox)
  /// reads, −1 where that is padding (`im2colSmall`, `Conv2dBackwardInput.col2imSmall`).
  @inline(__always)
  func inputIndices(ky: Int, kx: Int, into index: UnsafeMutablePointer<Int>) {
    for oy in 0..<oh {
      let iy = oy * stride.0 + ky * dilation.0 - padding.0
      for ox in 0..<ow {
        let ix = ox * stride.1 + kx * dilation.1 - padding.1
        index[oy * ow + ox] = iy >= 0 && iy < h && ix >= 0 && ix < w ? iy * w + ix : -1
      }
    }
  }

  /// The outputs `lo..<hi` of a row or column whose input `o·stride + offset` lies in
  /// `0..<extent` (empty when none does).
  @inline(__always)
  static func inside(offset: Int, stride s: Int, extent: Int, outputs: Int) -> (Int, Int) {
    let lo = offset >= 0 ? 0 : Swift.min(outputs, (-offset + s - 1) / s)
    let hi = Swift.max(lo, Swift.min(outputs, extent - offset <= 0 ? 0 : (extent - offset + s - 1) / s))
    return (lo, hi)
  }
}

/// Runs `body(a, part, images, scratch, threads)` over the `n` images of a convolution cut into
/// `Conv2d.parts(images: n, threads:)` parts: each part on its own core with a single-threaded
/// BLAS and `partScratch(images per part)` floats of scratch at offset `scratch + part·that`;
/// or, when the images are not split, once over all of them with the GEMMs over every core.
func forEachImagePart(
  images n: Int, threads: Int, _ a: UnsafeMutablePointer<Float>, scratch: Int,
  partScratch: (Int) -> Int,
  _ body: @Sendable (UnsafeMutablePointer<Float>, Int, Range<Int>, Int, Int) -> Void
) {
  let parts = Conv2d.parts(images: n, threads: threads)
  guard parts > 1 else { return body(a, 0, 0..<n, scratch, threads) }
  let each = partScratch((n + parts - 1) / parts)
  let base = UnsafeSendable(a)
  parallelFor(parts) { part in
    body(base.pointer, part, (n * part / parts)..<(n * (part + 1) / parts), scratch + part * each, 1)
  }
}

// MARK: - Pooling and normalisation

/// Runs `body` over `0..<count` cut into `min(threads, count)` contiguous ranges, one per core
/// (in place when there is one core, one item, or not `worthIt`): for kernels whose items —
/// planes, rows — are independent.
@inline(__always)
func splitOverCores(
  _ a: UnsafeMutablePointer<Float>, count: Int, threads: Int, worthIt: Bool,
  _ body: (UnsafeMutablePointer<Float>, Range<Int>) -> Void
) {
  let parts = Swift.min(threads, count)
  guard parts > 1, worthIt else { return body(a, 0..<count) }
  // The ranges are disjoint, so the threads never share an item.
  parallelFor(parts) { part in body(a, (count * part / parts)..<(count * (part + 1) / parts)) }
}

/// Max or average pooling over `[planes, H, W]` (PyTorch's window placement and counts).
struct Pool: Kernel {
  var label: String
  var isMax: Bool
  var planes: Int, h: Int, w: Int, oh: Int, ow: Int
  var kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int)
  var countIncludePad: Bool
  var x: Int, out: Int
  /// Cores the planes are split over (outputs of separate planes are independent).
  var threads = 1

  func run(_ a: UnsafeMutablePointer<Float>) {
    splitOverCores(a, count: planes, threads: threads, worthIt: planes * oh * ow >= 1 << 14) { run($0, planes: $1) }
  }

  /// Output columns whose window lies inside the input.
  var interiorColumns: Range<Int> {
    let span = (kernel.1 - 1) * dilation.1 + 1
    let oxA = Swift.min(ow, (padding.1 + stride.1 - 1) / stride.1)
    return oxA..<Swift.max(oxA, Swift.min(ow, w + padding.1 - span >= 0 ? (w + padding.1 - span) / stride.1 + 1 : 0))
  }

  /// For the vector paths of stride 2: the index of the last float that the 16-float loads
  /// of a window reach from output column 0 of a row whose window rows are `ky0..<ky1` from
  /// input row `y0` (plus 2·ox for column ox), so they stay in the plane while it is `< h·w`.
  func lastRead(y0: Int, ky1: Int) -> Int {
    (y0 + (ky1 - 1) * dilation.0) * w - padding.1 + (kernel.1 - 1) * dilation.1 + 15
  }

  /// `wide`: max pooling of stride 2 across (windows up to 32 wide), every window of the planes
  /// in one call to CKernels (sixteen at a time, the padding loaded as −∞), else its interior
  /// windows eight at a time here; the same comparisons, so the same bits (tests run both).
  func run(_ a: UnsafeMutablePointer<Float>, planes range: Range<Int>, wide: Bool = AVX512.enabled) {
    if wide && isMax && stride.1 == 2 && kernel.1 <= Int(GLASSBOX_MAX_POOL_COLUMNS) {
      return glassbox_max_pool_planes_avx512(
        Int32(range.count), a + x + range.lowerBound * h * w, a + out + range.lowerBound * oh * ow, Int32(h),
        Int32(w), Int32(oh), Int32(ow), Int32(kernel.0), Int32(kernel.1), Int32(stride.0), Int32(padding.0),
        Int32(padding.1), Int32(dilation.0), Int32(dilation.1))
    }
    let oxA = interiorColumns.lowerBound, oxB = interiorColumns.upperBound
    for p in range {
      let src = a + x + p * h * w, dst = a + out + p * oh * ow
      for oy in 0..<oh {
        let y0 = oy * stride.0 - padding.0
        // Window rows inside the input: ky in ky0..<ky1.
        let ky0 = y0 >= 0 ? 0 : (-y0 + dilation.0 - 1) / dilation.0
        let ky1 = Swift.min(kernel.0, (h - y0 + dilation.0 - 1) / dilation.0)
        if isMax && ky1 > ky0 && oxB > oxA {
          let d = dst + oy * ow
          var oxV = oxA
          if stride.1 == 2 {
            // Eight outputs at a time, two vectors at once, the maximum kept in registers: a
            // window column of eight outputs is the even half of a 16-float load. Only while the
            // last load (window row ky1 − 1, column kernel − 1, 16 floats from 2·ox) stays in the
            // plane. Each window row's maxima, then the rows' in order: independent chains with
            // the result of one pass in window order (the first maximum, the last NaN).
            let lastRead = lastRead(y0: y0, ky1: ky1)
            while oxV + 16 <= oxB && lastRead + 2 * (oxV + 8) < h * w {
              var m0 = SIMD8<Float>(), m1 = SIMD8<Float>()
              for ky in ky0..<ky1 {
                let row = src + (y0 + ky * dilation.0) * w - padding.1 + 2 * oxV
                var r0 = evens(row), r1 = evens(row + 16)
                for kx in 1..<Swift.max(kernel.1, 1) {
                  r0 = Self.taking(r0, evens(row + kx * dilation.1))
                  r1 = Self.taking(r1, evens(row + kx * dilation.1 + 16))
                }
                (m0, m1) = ky == ky0 ? (r0, r1) : (Self.taking(m0, r0), Self.taking(m1, r1))
              }
              store8(m0, d + oxV)
              store8(m1, d + oxV + 8)
              oxV += 16
            }
            while oxV + 8 <= oxB && lastRead + 2 * oxV < h * w {
              var m = SIMD8<Float>()
              for ky in ky0..<ky1 {
                let row = src + (y0 + ky * dilation.0) * w - padding.1 + 2 * oxV
                var r = evens(row)
                for kx in 1..<Swift.max(kernel.1, 1) { r = Self.taking(r, evens(row + kx * dilation.1)) }
                m = ky == ky0 ? r : Self.taking(m, r)
              }
              store8(m, d + oxV)
              oxV += 8
            }
          }
          // Interior columns: sweep each window row across the output row (no per-output
          // bounds), the output row itself accumulating.
          for ox in oxV..<oxB { d[ox] = -.infinity }
          for ky in ky0..<ky1 {
            let row = src + (y0 + ky * dilation.0) * w - padding.1
            for kx in 0..<kernel.1 {
              let r = row + kx * dilation.1
              for ox in oxV..<oxB {
                let v = r[ox * stride.1], m = d[ox]
                d[ox] = v > m || v != v ? v : m  // NaN wins, as in PyTorch
              }
            }
          }
        }
        // The columns the loops above left, skipping the interior they took: testing every
        // column of the row cost as much as the windows themselves.
        let interiorDone = isMax && ky1 > ky0 && oxB > oxA
        var ox = 0
        while ox < ow {
          if interiorDone && ox == oxA {
            ox = oxB
            continue
          }
          defer { ox += 1 }
          let x0 = ox * stride.1 - padding.1
          let kx0 = x0 >= 0 ? 0 : (-x0 + dilation.1 - 1) / dilation.1
          let kx1 = Swift.min(kernel.1, (w - x0 + dilation.1 - 1) / dilation.1)
          var acc: Float = isMax ? -.infinity : 0
          if ky1 > ky0 && kx1 > kx0 {
            if isMax && dilation.1 == 1 {
              // The common case, without the per-element dilation product.
              for ky in ky0..<ky1 {
                let row = src + (y0 + ky * dilation.0) * w + x0
                for kx in kx0..<kx1 {
                  let v = row[kx]
                  if v > acc || v.isNaN { acc = v }  // NaN wins, as in PyTorch
                }
              }
            } else {
              for ky in ky0..<ky1 {
                let row = src + (y0 + ky * dilation.0) * w + x0
                for kx in kx0..<kx1 {
                  let v = row[kx * dilation.1]
                  if isMax { if v > acc || v.isNaN { acc = v } } else { acc += v }  // NaN wins, as in PyTorch
                }
              }
            }
          }
          if !isMax {
            let count: Int
            if countIncludePad {
              count = (Swift.min(y0 + kernel.0, h + padding.0) - y0) * (Swift.min(x0 + kernel.1, w + padding.1) - x0)
            } else {
              count = Swift.max(
                (Swift.min(y0 + kernel.0, h) - Swift.max(y0, 0)) * (Swift.min(x0 + kernel.1, w) - Swift.max(x0, 0)), 1)
            }
            acc /= Float(count)
          }
          dst[oy * ow + ox] = acc
        }
      }
    }
  }

  /// The running maximum `m` after the next value `v` of eight windows: `v` where `v > m` or
  /// `v` is NaN (NaN wins, as in PyTorch; of equal values, −0 and +0, the first is kept).
  @inline(__always)
  static func taking(_ m: SIMD8<Float>, _ v: SIMD8<Float>) -> SIMD8<Float> {
    m.replacing(with: v, where: (v .> m) .| (v .!= v))
  }

  /// The even floats of the sixteen from `p`: a window column of eight outputs of stride 2.
  @inline(__always)
  func evens(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self).evenHalf
  }
}

/// Mean over each plane: `[planes, spatial]` → `[planes]`.
struct PlaneMean: Kernel {
  var label = "global_avg_pool2d"
  var planes: Int, spatial: Int, x: Int, out: Int
  func run(_ a: UnsafeMutablePointer<Float>) {
    for p in 0..<planes {
      let s = a + x + p * spatial
      var acc: Float = 0
      for i in 0..<spatial { acc += s[i] }
      a[out + p] = acc / Float(spatial)
    }
  }
}

/// Inference batch norm: `y = (x − mean)/√(var + eps)·w + b` per channel of `[N, C, inner]`.
struct BatchNorm: Kernel {
  var label: String
  var n: Int, c: Int, inner: Int, eps: Float
  var x: Int, weight: Int, bias: Int, mean: Int, variance: Int, out: Int

  func run(_ a: UnsafeMutablePointer<Float>) {
    for ch in 0..<c {
      let scale = a[weight + ch] / (a[variance + ch] + eps).squareRoot()
      let shift = a[bias + ch] - a[mean + ch] * scale
      for img in 0..<n {
        let s = a + x + (img * c + ch) * inner, d = a + out + (img * c + ch) * inner
        for i in 0..<inner { d[i] = s[i] * scale + shift }
      }
    }
  }
}

/// Layer normalisation of `rows` rows of `n` floats: `(x − mean)·r·weight + bias` with
/// `r = 1/√(variance + eps)`, each row's mean and biased variance summed in order in two passes
/// (`statistics`); rows split over the cores, so a row's result is the same on any count.
struct LayerNorm: Kernel {
  var label: String
  var rows: Int, n: Int, eps: Float
  var x: Int, weight: Int, bias: Int?, out: Int
  var threads = 1

  func run(_ a: UnsafeMutablePointer<Float>) {
    splitOverCores(a, count: rows, threads: threads, worthIt: rows * n >= 1 << 15) { run($0, rows: $1) }
  }

  func run(_ a: UnsafeMutablePointer<Float>, rows range: Range<Int>) {
    let w = a + weight
    for r in range {
      let s = a + x + r * n, d = a + out + r * n
      let (mean, inverse) = Self.statistics(s, n: n, eps: eps)
      if let bias {
        let b = a + bias
        for j in 0..<n { d[j] = (s[j] - mean) * inverse * w[j] + b[j] }
      } else {
        for j in 0..<n { d[j] = (s[j] - mean) * inverse * w[j] }
      }
    }
  }

  /// A row's mean and `1/√(variance + eps)`.
  static func statistics(_ s: UnsafePointer<Float>, n: Int, eps: Float) -> (mean: Float, inverse: Float) {
    var sum: Float = 0
    for j in 0..<n { sum += s[j] }
    let mean = sum / Float(n)
    var squares: Float = 0
    for j in 0..<n {
      let c = s[j] - mean
      squares += c * c
    }
    return (mean, 1 / (squares / Float(n) + eps).squareRoot())
  }
}

// MARK: - Softmax and reductions

/// Softmax or log-softmax along the middle axis of `[outer, n, inner]`.
struct Softmax: Kernel {
  var label: String
  var isLog: Bool
  var outer: Int, n: Int, inner: Int
  var x: Int, out: Int
  /// Cores the outer rows are split over.
  var threads = 1

  func run(_ a: UnsafeMutablePointer<Float>) {
    splitOverCores(a, count: outer, threads: threads, worthIt: outer * n * inner >= 1 << 15) { run($0, rows: $1) }
  }

  /// Inner positions taken at once: eight vectors, a 256-byte piece of each of the `n` rows.
  static let block = 64

  func run(_ a: UnsafeMutablePointer<Float>, rows: Range<Int>) {
    let lanes = FastMath.V.scalarCount
    for o in rows {
      let base = o * n * inner
      var i = 0
      if inner == 1 {
        runScalarLane(a, base: base, lane: 0)
        continue
      }
      // Up to 64 neighbouring inner positions at once: each pass over j reads their 256 bytes
      // of every row in order. One vector at a time read half a cache line per row, rows
      // `inner` floats apart, and the line had left L1 by the next vector's turn.
      while i + lanes <= inner {
        let width = Swift.min(Softmax.block, (inner - i) / lanes * lanes)
        runVectors(a, at: base + i, vectors: width / lanes)
        i += width
      }
      while i < inner {
        runScalarLane(a, base: base, lane: i)
        i += 1
      }
    }
  }

  /// `vectors` (1…8) softmaxes of eight lanes each, side by side from `offset`: the maxima and
  /// sums of every lane in order over j, as one lane alone would take them.
  func runVectors(_ a: UnsafeMutablePointer<Float>, at offset: Int, vectors: Int) {
    typealias V = FastMath.V
    let s = a + x + offset, d = a + out + offset
    withUnsafeTemporaryAllocation(of: V.self, capacity: 2 * Softmax.block / V.scalarCount) { t in
      let m = t.baseAddress!, sum = m + vectors
      for v in 0..<vectors { m[v] = V(repeating: -.infinity); sum[v] = V() }
      for j in 0..<n {
        let row = s + j * inner
        // A select, not the standard library's pointwiseMax (a call per vector here). A NaN
        // leaves the maximum alone, but its exp makes the lane's sum and outputs NaN anyway.
        for v in 0..<vectors {
          let r = load8(row + 8 * v)
          m[v].replace(with: r, where: m[v] .< r)
        }
      }
      for j in 0..<n {
        let row = s + j * inner, dst = d + j * inner
        for v in 0..<vectors {
          let e = FastMath.exp(load8(row + 8 * v) - m[v])
          if !isLog { store8(e, dst + 8 * v) }
          sum[v] += e
        }
      }
      if isLog {
        for v in 0..<vectors {
          var lse = V()
          for k in 0..<V.scalarCount { lse[k] = m[v][k] + Foundation.log(sum[v][k]) }
          m[v] = lse
        }
        for j in 0..<n {
          for v in 0..<vectors { store8(load8(s + j * inner + 8 * v) - m[v], d + j * inner + 8 * v) }
        }
      } else {
        for v in 0..<vectors { sum[v] = 1 / sum[v] }
        for j in 0..<n {
          let dst = d + j * inner
          for v in 0..<vectors { store8(load8(dst + 8 * v) * sum[v], dst + 8 * v) }
        }
      }
    }
  }

  /// One softmax over the `n` elements `base + lane + j·inner`.
  func runScalarLane(_ a: UnsafeMutablePointer<Float>, base: Int, lane i: Int) {
    let s = a + x + base + i, d = a + out + base + i
    var m = -Float.infinity
    for j in 0..<n { m = Swift.max(m, s[j * inner]) }
    var sum: Float = 0
    for j in 0..<n {
      let e = Foundation.exp(s[j * inner] - m)
      if !isLog { d[j * inner] = e }
      sum += e
    }
    if isLog {
      let lse = m + Foundation.log(sum)
      for j in 0..<n { d[j * inner] = s[j * inner] - lse }
    } else {
      let inv = 1 / sum
      for j in 0..<n { d[j * inner] *= inv }
    }
  }
}

/// Sum, mean or max over some axes: the output view has stride 0 on reduced axes.
struct Reduce: Kernel {
  enum Kind: Sendable { case sum, mean, max }
  var label: String
  var kind: Kind
  var shape: [Int]
  var x: Int, out: Int, outCount: Int
  var outStrides: [Int]
  var divisor: Float

  func run(_ a: UnsafeMutablePointer<Float>) {
    let d = a + out
    d.update(repeating: kind == .max ? -.infinity : 0, count: outCount)
    let n = shape.last ?? 1, os = outStrides.last ?? 0
    let inStrides = rowMajorStrides(shape)
    let kind = self.kind
    forEachRun(
      shape.isEmpty ? [1] : shape, inStrides.isEmpty ? [1] : inStrides, outStrides.isEmpty ? [0] : outStrides,
      outStrides.isEmpty ? [0] : outStrides
    ) { o0, o1, _ in
      let s = a + x + o0, t = d + o1
      var i = 0
      if kind != .max && os == 0 {
        // A run reduced into one output: eight partial sums.
        var acc = SIMD8<Float>()
        while i + 8 <= n { acc += load8(s + i); i += 8 }
        t[0] += acc.sum()
      } else if kind != .max && os == 1 {
        while i + 8 <= n { store8(load8(t + i) + load8(s + i), t + i); i += 8 }
      }
      while i < n {
        if kind == .max { t[i * os] = Swift.max(t[i * os], s[i]) } else { t[i * os] += s[i] }
        i += 1
      }
    }
    if kind == .mean { for i in 0..<outCount { d[i] /= divisor } }
  }
}

/// Mean cross-entropy of `logits[n, c]` against class indices stored as floats.
struct CrossEntropy: Kernel {
  var label = "cross_entropy"
  var n: Int, c: Int, logits: Int, target: Int, out: Int
  func run(_ a: UnsafeMutablePointer<Float>) {
    var total: Double = 0
    for i in 0..<n {
      let row = a + logits + i * c
      var m = -Float.infinity
      for j in 0..<c { m = Swift.max(m, row[j]) }
      var sum: Double = 0
      for j in 0..<c { sum += Double(Foundation.exp(row[j] - m)) }
      let t = Swift.min(Swift.max(Int(a[target + i]), 0), c - 1)
      total += Double(m) + Foundation.log(sum) - Double(row[t])
    }
    a[out] = Float(total / Double(n))
  }
}

// MARK: - Fused elementwise chains

/// A `fused_elementwise` program run over blocks of 512 elements: every step's register is a
/// block in scratch, so a chain of n ops reads its operands once and writes its result once
/// instead of n round trips through memory. Scalar operands are read as constants.
struct FusedElementwise: Kernel {
  var label: String
  var operands: [(offset: Int, scalar: Bool)]
  var program: [Int]
  var count: Int, out: Int, scratch: Int
  var threads = 1

  static let block = 512
  /// A large pass splits its blocks over the cores, each with its own scratch.
  static func parts(count: Int, threads: Int) -> Int {
    elementwiseParts(count: count, outer: (count + block - 1) / block, threads: threads)
  }
  static func scratchCount(steps: Int, count: Int, threads: Int) -> Int {
    parts(count: count, threads: threads) * steps * block
  }

  func run(_ a: UnsafeMutablePointer<Float>) {
    let parts = Self.parts(count: count, threads: threads)
    guard parts > 1 else { return run(a, blocks: 0..<((count + Self.block - 1) / Self.block), scratch: scratch) }
    let base = UnsafeSendable(a), kernel = self, blocks = (count + Self.block - 1) / Self.block
    parallelFor(parts) { part in
      kernel.run(
        base.pointer, blocks: (blocks * part / parts)..<(blocks * (part + 1) / parts),
        scratch: kernel.scratch + part * (kernel.program.count / 3) * Self.block)
    }
  }

  func run(_ a: UnsafeMutablePointer<Float>, blocks: Range<Int>, scratch: Int) {
    let steps = program.count / 3
    let n = operands.count
    var start = blocks.lowerBound * Self.block
    let end = Swift.min(blocks.upperBound * Self.block, count)
    while start < end {
      let len = Swift.min(Self.block, count - start)
      // Register r: an operand (at its offset, or a scalar) or a step's block in scratch.
      for s in 0..<steps {
        let code = ElementwiseCode(rawValue: program[3 * s]) ?? .add
        let dst = s == steps - 1 ? a + out + start : a + scratch + s * Self.block
        let (l, ls) = register(program[3 * s + 1], a, start, n, scratch)
        if let op = BinaryOp(code) {
          let (r, rs) = register(program[3 * s + 2], a, start, n, scratch)
          Binary.runRow(op, l, ls ? 0 : 1, r, rs ? 0 : 1, dst, len)
        } else if let op = UnaryOp(code) {
          if ls {
            // A scalar register: its value through the same lanes as a block's, then filled.
            Unary.apply(op, l, dst, count: 1)
            dst.update(repeating: dst[0], count: len)
          } else {
            Unary.apply(op, l, dst, count: len)
          }
        }
      }
      start += len
    }
  }

  /// Where register `r` lives for the block at `start`, and whether it is one scalar.
  @inline(__always)
  func register(
    _ r: Int, _ a: UnsafeMutablePointer<Float>, _ start: Int, _ n: Int,
    _ scratch: Int
  ) -> (UnsafeMutablePointer<Float>, Bool) {
    if r < n {
      let o = operands[r]
      return o.scalar ? (a + o.offset, true) : (a + o.offset + start, false)
    }
    let step = r - n
    return (a + scratch + step * Self.block, false)
  }
}
