/// Vectorised exp, sigmoid and tanh for f32 kernels (≈1 ulp exp; Cephes' expf reduction).
enum FastMath {
  typealias V = SIMD8<Float>

  /// e^x for x clamped to [−87.3, 88.7] (beyond, the result saturates to 0 or f32's max).
  @inline(__always)
  static func exp(_ x: V) -> V {
    var x = x
    x.replace(with: V(repeating: -87.33), where: x .< -87.33)
    x.replace(with: V(repeating: 88.72), where: x .> 88.72)
    // n = round(x / ln2) by the 1.5·2^23 trick: adding it leaves n in the low mantissa bits.
    let magic = V(repeating: 12_582_912)
    let shifted = x.plusProduct(x, V(repeating: 0.442_695_04)) + magic  // x·log2(e) + magic
    let n = shifted - magic
    // r = x − n·ln2, with ln2 split in two for an exact reduction.
    var r = x.plusProduct(n, V(repeating: -0.693_359_375))
    r = r.plusProduct(n, V(repeating: 2.121_944_4e-4))
    var p = V(repeating: 1.987_569_15e-4)
    p = V(repeating: 1.398_199_95e-3).plusProduct(p, r)
    p = V(repeating: 8.333_451_9e-3).plusProduct(p, r)
    p = V(repeating: 4.166_579_6e-2).plusProduct(p, r)
    p = V(repeating: 1.666_666_55e-1).plusProduct(p, r)
    p = V(repeating: 5.000_000_1e-1).plusProduct(p, r)
    let e = (r + 1).plusProduct(p, r * r)
    // 2^n through the exponent bits: the low bits of `shifted` hold n + 0x400000.
    let bits = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
    let scale = unsafeBitCast((bits &+ 127) &<< 23, to: V.self)
    return e * scale
  }

  /// e^x with libm's limits: +∞ above ln(f32's max) and 0 below the clamp of `exp` (whose
  /// sigmoid and tanh keep their bits).
  @inline(__always)
  static func expWithLimits(_ x: V) -> V {
    var e = exp(x)
    e.replace(with: .infinity, where: x .> 88.722_84)
    e.replace(with: 0, where: x .< -87.33)
    return e
  }

  /// The larger of `a` and `b` lane by lane, NaN where either is (`torch.maximum`).
  @inline(__always)
  static func maximum(_ a: V, _ b: V) -> V {
    var r = a
    r.replace(with: b, where: b .> a)
    r.replace(with: b, where: b .!= b)
    return r
  }

  /// The smaller of `a` and `b` lane by lane, NaN where either is (`torch.minimum`).
  @inline(__always)
  static func minimum(_ a: V, _ b: V) -> V {
    var r = a
    r.replace(with: b, where: b .< a)
    r.replace(with: b, where: b .!= b)
    return r
  }

  @inline(__always)
  static func sigmoid(_ x: V) -> V { 1 / (1 + exp(-x)) }

  /// tanh(x) = sign(x)·(1 − 2/(e^{2|x|} + 1)).
  @inline(__always)
  static func tanh(_ x: V) -> V {
    let a = abs(x)
    let t = 1 - 2 / (exp(a + a) + 1)
    return V(sign: x, magnitudeOf: t)
  }

  @inline(__always)
  static func abs(_ x: V) -> V { unsafeBitCast(unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: V.self) }
}

extension SIMD8 where Scalar == Float {
  /// Magnitude of `m` with the sign of `sign`, lane by lane.
  @inline(__always)
  init(sign: SIMD8<Float>, magnitudeOf m: SIMD8<Float>) {
    let s = unsafeBitCast(sign, to: SIMD8<UInt32>.self) & 0x8000_0000
    let v = unsafeBitCast(m, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF
    self = unsafeBitCast(s | v, to: SIMD8<Float>.self)
  }
}

/// Eight floats from `p` (any alignment).
@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }

/// Eight floats to `p` (any alignment).
@inline(__always)
func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
  UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// The first `count` floats from `p` (all eight when `count` ≥ 8), the other lanes zero.
@inline(__always)
func load8(_ p: UnsafePointer<Float>, count: Int) -> SIMD8<Float> {
  if count >= 8 { return load8(p) }
  var v = SIMD8<Float>()
  for l in 0..<count { v[l] = p[l] }
  return v
}

/// The first `count` lanes of `v` to `p` (all eight in one store when `count` ≥ 8), in at
/// most three stores of 4, 2 and 1 lanes: a lane picked by a variable index sends the vector
/// through the stack and back, a stall per lane.
@inline(__always)
func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, count: Int) {
  if count >= 8 { return store8(v, p) }
  guard count > 0 else { return }
  let raw = UnsafeMutableRawPointer(p)
  var q = 0, rest = v.lowHalf
  if count & 4 != 0 { raw.storeBytes(of: rest, as: SIMD4<Float>.self); q = 4; rest = v.highHalf }
  if count & 2 != 0 {
    (raw + 4 * q).storeBytes(of: rest.lowHalf, as: SIMD2<Float>.self)
    q += 2
    rest = SIMD4(lowHalf: rest.highHalf, highHalf: rest.highHalf)
  }
  if count & 1 != 0 { p[q] = rest[0] }
}

/// The first `count` lanes of `v` to `p` (all sixteen when `count` ≥ 16), as `store8`.
@inline(__always)
func store16(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>, count: Int) {
  if count >= 16 { return store16(v, p) }
  if count >= 8 {
    store8(v.lowHalf, p)
    store8(v.highHalf, p + 8, count: count - 8)
  } else {
    store8(v.lowHalf, p, count: count)
  }
}

/// Sixteen floats to `p` (any alignment).
@inline(__always)
func store16(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
  UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
}

/// `a[0], b[0], a[1], b[1], …`: two rows of eight interleaved (LLVM makes it unpack instructions).
@inline(__always)
func interleave(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD16<Float> {
  SIMD16(a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3], a[4], b[4], a[5], b[5], a[6], b[6], a[7], b[7])
}

/// `d[i] = f(l[i], r[i])` for `i < n`, eight at a time. Each block is read before it is
/// written, so `d` may be `l` or `r` itself (a result written over its operand,
/// `BufferAssignment.inPlace`) — where a scalar loop left to the vectorizer fails its overlap check
/// and runs a lane at a time.
@inline(__always)
func zipSIMD(
  _ l: UnsafePointer<Float>, _ r: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ n: Int,
  _ f: (SIMD8<Float>, SIMD8<Float>) -> SIMD8<Float>
) {
  var i = 0
  while i + 8 <= n {
    store8(f(load8(l + i), load8(r + i)), d + i)
    i += 8
  }
  if i < n { store8(f(load8(l + i, count: n - i), load8(r + i, count: n - i)), d + i, count: n - i) }
}

/// `d[i] = f(l[i], r[i])` for `i < n` where each of `l` and `r` is a row or one scalar
/// (`lScalar`, `rScalar`), through `zipSIMD` or `mapSIMD`; false (nothing done) when both
/// are scalars.
@inline(__always)
func zipRowSIMD(
  _ l: UnsafePointer<Float>, _ lScalar: Bool, _ r: UnsafePointer<Float>, _ rScalar: Bool,
  _ d: UnsafeMutablePointer<Float>, _ n: Int, _ f: (SIMD8<Float>, SIMD8<Float>) -> SIMD8<Float>
) -> Bool {
  switch (lScalar, rScalar) {
  case (false, false): zipSIMD(l, r, d, n, f)
  case (false, true): mapSIMD(l, r[0], d, n, f)
  case (true, false): mapSIMD(r, l[0], d, n) { f($1, $0) }
  case (true, true): return false
  }
  return true
}

/// `d[i] = f(l[i])` for `i < n` with `f` also given the scalar `v` broadcast: `l` may be `d`.
@inline(__always)
func mapSIMD(
  _ l: UnsafePointer<Float>, _ v: Float, _ d: UnsafeMutablePointer<Float>, _ n: Int,
  _ f: (SIMD8<Float>, SIMD8<Float>) -> SIMD8<Float>
) {
  let s = SIMD8<Float>(repeating: v)
  var i = 0
  while i + 8 <= n {
    store8(f(load8(l + i), s), d + i)
    i += 8
  }
  if i < n { store8(f(load8(l + i, count: n - i), s), d + i, count: n - i) }
}

/// Applies a SIMD8 function to `n` floats (the tail through a padded vector).
@inline(__always)
func mapSIMD(
  _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int,
  _ f: (SIMD8<Float>) -> SIMD8<Float>
) {
  var i = 0
  while i + 8 <= n {
    store8(f(load8(src + i)), dst + i)
    i += 8
  }
  if i < n {
    var v = SIMD8<Float>(repeating: 0)
    for j in 0..<(n - i) { v[j] = src[i + j] }
    let r = f(v)
    for j in 0..<(n - i) { dst[i + j] = r[j] }
  }
}

/// `dst[0..<count] += src[0..<count]`, eight lanes at a time.
func vadd(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int) {
  var i = 0
  while i + 8 <= count { store8(load8(dst + i) + load8(src + i), dst + i); i += 8 }
  while i < count { dst[i] += src[i]; i += 1 }
}

extension SIMD8 where Scalar == Float {
  /// `self + a·b`: one fused multiply-add where the runtime is compiled for FMA (Haswell and
  /// later); a multiply then an add in a portable build (Package.swift), where `addingProduct`
  /// becomes a call to libm's `fmaf` per lane — 40 times slower in a softmax.
  @inline(__always)
  func plusProduct(_ a: Self, _ b: Self) -> Self {
    #if GLASSBOX_PORTABLE
    return self + a * b
    #else
    return addingProduct(a, b)
    #endif
  }
}

extension Float {
  /// `self + a·b`, fused or not as `SIMD8.plusProduct`.
  @inline(__always)
  func plusProduct(_ a: Float, _ b: Float) -> Float {
    #if GLASSBOX_PORTABLE
    return self + a * b
    #else
    return addingProduct(a, b)
    #endif
  }
}
