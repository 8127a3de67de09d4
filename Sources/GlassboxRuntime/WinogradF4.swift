/// Winograd F(4×4, 3×3) (Lavin & Gray, 2016): each 4×4 block of outputs from a 6×6 input tile,
/// 36 multiplications per input channel where direct convolution makes 144, with
///
///     Bᵀ = [4  0 −5  0 1 0]    G = [ 1/4     0    0 ]    Aᵀ = [1 1  1 1  1 0]
///          [0 −4 −4  1 1 0]        [−1/6 −1/6 −1/6]         [0 1 −1 2 −2 0]
///          [0  4 −4 −1 1 0]        [−1/6  1/6 −1/6]         [0 1  1 4  4 0]
///          [0 −2 −1  2 1 0]        [1/24 1/12  1/6]         [0 1 −1 8 −8 1]
///          [0  2 −1 −2 1 0]        [1/24 −1/12 1/6]
///          [0  4  0 −5 0 1]        [  0     0    1 ]
///
/// The kernel's other steps (the GEMMs, the work split, the weight gradient's sums) are those
/// of F(2×2, 3×3) with 36 points for 16 (`WinogradConv3x3.m`). The transforms take eight tiles
/// of a row at a time, as F(2×2, 3×3)'s do: tiles are four columns apart, so the padded copy
/// of a plane splits its rows by column mod 4 (`copyRowsByPhase`) and column j of eight tiles
/// is one 8-float load; every store is eight consecutive tiles of one point (extra lanes as in
/// `inputTransform`).
extension WinogradConv3x3 {
  typealias V8 = SIMD8<Float>

  /// The input transform of this kernel's tile.
  @inline(__always)
  func anyInputTransform(
    image: Int, local: Int, c: Int, a: UnsafeMutablePointer<Float>,
    padded: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, p: Int, limit: Int
  ) {
    if m == 4 {
      inputTransform4(image: image, local: local, c: c, a: a, padded: padded, v: v, p: p, limit: limit)
    } else {
      inputTransform(image: image, local: local, c: c, a: a, padded: padded, v: v, p: p, limit: limit)
    }
  }

  /// The output transform of this kernel's tile.
  @inline(__always)
  func anyOutputTransform(
    k: Int, images: Range<Int>, a: UnsafeMutablePointer<Float>, m mm: UnsafeMutablePointer<Float>, p: Int
  ) {
    if m == 4 {
      outputTransform4(k: k, images: images, a: a, m: mm, p: p)
    } else {
      outputTransform(k: k, images: images, a: a, m: mm, p: p)
    }
  }

  /// Floats of one phase of a padded row (`copyRowsByPhase`): the `tilesW + 1` columns of one
  /// residue mod 4 (columns up to `4·tilesW + 1`), and one more.
  static func phaseLength(tilesW: Int) -> Int { tilesW + 2 }

  /// `Bᵀ x` for a column (or `x B` for a row) of a 6×6 tile, eight tiles (or, blocked, one
  /// tile's 16 channels) a vector.
  @inline(__always)
  static func bt<V: SIMD>(_ x: (V, V, V, V, V, V)) -> (V, V, V, V, V, V) where V.Scalar == Float {
    let s12 = x.1 + x.2, d12 = x.1 - x.2, s34 = x.3 + x.4, d34 = x.4 - x.3, d42 = x.4 - x.2, d31 = x.3 - x.1
    return (
      4 * x.0 - 5 * x.2 + x.4, s34 - 4 * s12, d34 + 4 * d12, d42 + 2 * d31, d42 - 2 * d31, 4 * x.1 - 5 * x.3 + x.5
    )
  }

  /// `Aᵀ x` for a column (or `x A` for a row) of a 6×6 tile of `M`, as `bt`.
  @inline(__always)
  static func at<V: SIMD>(_ x: (V, V, V, V, V, V)) -> (V, V, V, V) where V.Scalar == Float {
    let s12 = x.1 + x.2, d12 = x.1 - x.2, s34 = x.3 + x.4, d34 = x.3 - x.4
    return (x.0 + s12 + s34, d12 + 2 * d34, s12 + 4 * s34, d12 + 8 * d34 + x.5)
  }

  /// `V[ξ, c, tiles of image local] = Bᵀ d B` for every 6×6 tile of one input plane, as
  /// `inputTransform` does for 4×4 tiles (same padded copy, same stores and limits).
  @inline(__always)
  func inputTransform4(
    image: Int, local: Int, c: Int, a: UnsafeMutablePointer<Float>,
    padded: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, p: Int, limit: Int
  ) {
    let plane = image * cin + c
    let th = tilesH, tw = tilesW
    let phase = Self.phaseLength(tilesW: tw), row = 4 * phase
    copyRowsByPhase(
      a + x + plane * h * w, rows: Swift.min(h, th * 4 + 2 - padding.0), columns: Swift.min(w, tw * 4 + 2 - padding.1),
      sourceStride: w, into: padded, phase: phase, top: padding.0, left: padding.1)
    let stride = vStride(p)
    let base = v + c * p + local * th * tw
    for ty in 0..<th {
      let r0 = padded + 4 * ty * row
      let dst = base + ty * tw
      for tx in Swift.stride(from: 0, to: tw, by: 8) {
        // Columns 0–5 of the eight tiles' windows in row r: phases 0–3 from tile tx, then
        // phases 0–1 from tile tx + 1.
        @inline(__always) func columns(_ r: UnsafeMutablePointer<Float>) -> (V8, V8, V8, V8, V8, V8) {
          let q = r + tx
          return (
            load8(q), load8(q + phase), load8(q + 2 * phase), load8(q + 3 * phase), load8(q + 1), load8(q + phase + 1)
          )
        }
        let d0 = columns(r0), d1 = columns(r0 + row), d2 = columns(r0 + 2 * row)
        let d3 = columns(r0 + 3 * row), d4 = columns(r0 + 4 * row), d5 = columns(r0 + 5 * row)
        // Column j of t = Bᵀ d.
        let t0 = Self.bt((d0.0, d1.0, d2.0, d3.0, d4.0, d5.0)), t1 = Self.bt((d0.1, d1.1, d2.1, d3.1, d4.1, d5.1))
        let t2 = Self.bt((d0.2, d1.2, d2.2, d3.2, d4.2, d5.2)), t3 = Self.bt((d0.3, d1.3, d2.3, d3.3, d4.3, d5.3))
        let t4 = Self.bt((d0.4, d1.4, d2.4, d3.4, d4.4, d5.4)), t5 = Self.bt((d0.5, d1.5, d2.5, d3.5, d4.5, d5.5))
        let valid = Swift.min(8, limit - ty * tw - tx)
        // Row i of V = t B.
        @inline(__always) func store(_ i: Int, _ row: (V8, V8, V8, V8, V8, V8)) {
          let r = Self.bt(row), q = dst + 6 * i * stride + tx
          store8(r.0, q, count: valid)
          store8(r.1, q + stride, count: valid)
          store8(r.2, q + 2 * stride, count: valid)
          store8(r.3, q + 3 * stride, count: valid)
          store8(r.4, q + 4 * stride, count: valid)
          store8(r.5, q + 5 * stride, count: valid)
        }
        store(0, (t0.0, t1.0, t2.0, t3.0, t4.0, t5.0))
        store(1, (t0.1, t1.1, t2.1, t3.1, t4.1, t5.1))
        store(2, (t0.2, t1.2, t2.2, t3.2, t4.2, t5.2))
        store(3, (t0.3, t1.3, t2.3, t3.3, t4.3, t5.3))
        store(4, (t0.4, t1.4, t2.4, t3.4, t4.4, t5.4))
        store(5, (t0.5, t1.5, t2.5, t3.5, t4.5, t5.5))
      }
    }
  }

  /// `y = Aᵀ M A` (+ bias, then the epilogue) for every 6×6 tile of output channel `k`, as
  /// `outputTransform` does for 4×4 tiles; a row of outputs is one 32-float store, cut at the
  /// row's end.
  @inline(__always)
  func outputTransform4(
    k: Int, images: Range<Int>, a: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>, p: Int
  ) {
    let th = tilesH, tw = tilesW
    let stride = mStride(p)
    let b = V8(repeating: bias.map { a[$0 + k] } ?? 0)
    for image in images {
      let src = m + k * p + (image - images.lowerBound) * th * tw
      let plane = (image * cout + k) * oh * ow
      if image + Self.prefetchDistance < images.upperBound {
        prefetch(a + out + plane + Self.prefetchDistance * cout * oh * ow, count: oh * ow)
      }
      let dst = a + out + plane
      for ty in 0..<th {
        for tx in Swift.stride(from: 0, to: tw, by: 8) {
          let q = src + ty * tw + tx
          // Column j of Aᵀ M (4×6): points j, 6 + j, …, 30 + j.
          @inline(__always) func column(_ j: Int) -> (V8, V8, V8, V8) {
            Self.at(
              (
                load8(q + j * stride), load8(q + (6 + j) * stride), load8(q + (12 + j) * stride),
                load8(q + (18 + j) * stride), load8(q + (24 + j) * stride), load8(q + (30 + j) * stride)
              ))
          }
          let s0 = column(0), s1 = column(1), s2 = column(2), s3 = column(3), s4 = column(4), s5 = column(5)
          let y0 = 4 * ty, x0 = 4 * tx, count = Swift.min(32, ow - x0)
          // Output row r = row r of (Aᵀ M) times A, the eight tiles' four columns interleaved.
          @inline(__always) func row(_ r: Int, _ s: (V8, V8, V8, V8, V8, V8)) {
            guard y0 + r < oh else { return }
            let y = Self.at(s)
            let outputs = interleave(interleave(y.0 + b, y.2 + b), interleave(y.1 + b, y.3 + b))
            store32(outputs, dst + (y0 + r) * ow + x0, count: count)
          }
          row(0, (s0.0, s1.0, s2.0, s3.0, s4.0, s5.0))
          row(1, (s0.1, s1.1, s2.1, s3.1, s4.1, s5.1))
          row(2, (s0.2, s1.2, s2.2, s3.2, s4.2, s5.2))
          row(3, (s0.3, s1.3, s2.3, s3.3, s4.3, s5.3))
        }
      }
      epilogue.apply(a, out: out, count: oh * ow, at: plane)
    }
  }

  /// `U = G g Gᵀ` (6×6) for every filter, as `prepare` does for F(2×2, 3×3) (eight input
  /// channels at a time, output channels split over the cores; an input gradient's filters
  /// rotated by 180°, transformed here: F(4×4, 3×3)'s points are not closed under 1/x, so
  /// there is no reading of the forward's transform).
  func prepare4(_ a: UnsafeMutablePointer<Float>, callers: CallerParameters) {
    let kernel = self, plane = cout * cin, g = weight.pointer(a, callers)
    splitOverCores(a, count: cout, threads: threads, worthIt: plane * 36 >= 1 << 16) { a, range in
      let u = a + kernel.transformed
      for k in range {
        for c in Swift.stride(from: 0, to: kernel.cin, by: 8) {
          let lanes = Swift.min(8, kernel.cin - c)
          func tap(_ i: Int) -> V8 { kernel.tap(i, of: g, k: k, c: c, lanes: lanes) }
          // G applied to three taps: six entries.
          @inline(__always) func gx(_ x0: V8, _ x1: V8, _ x2: V8) -> (V8, V8, V8, V8, V8, V8) {
            let s = x0 + x2, a = twentyFourth * x0 + sixth * x2, b = twelfth * x1
            return (
              0.25 * x0, -sixth * (s + x1), -sixth * (s - x1), a + b, a - b, x2
            )
          }
          // Column j of t = G g (6×3), then row i of U = t Gᵀ.
          let c0 = gx(tap(0), tap(3), tap(6)), c1 = gx(tap(1), tap(4), tap(7)), c2 = gx(tap(2), tap(5), tap(8))
          @inline(__always) func store(_ i: Int, _ t0: V8, _ t1: V8, _ t2: V8) {
            let r = gx(t0, t1, t2), q = u + 6 * i * plane + k * kernel.cin + c
            store8(r.0, q, count: lanes)
            store8(r.1, q + plane, count: lanes)
            store8(r.2, q + 2 * plane, count: lanes)
            store8(r.3, q + 3 * plane, count: lanes)
            store8(r.4, q + 4 * plane, count: lanes)
            store8(r.5, q + 5 * plane, count: lanes)
          }
          store(0, c0.0, c1.0, c2.0)
          store(1, c0.1, c1.1, c2.1)
          store(2, c0.2, c1.2, c2.2)
          store(3, c0.3, c1.3, c2.3)
          store(4, c0.4, c1.4, c2.4)
          store(5, c0.5, c1.5, c2.5)
        }
      }
    }
  }
}

extension WinogradWeightGradient {
  typealias V8 = SIMD8<Float>

  /// The gradient transform of the forward's tile.
  @inline(__always)
  func anyGradientTransform(
    image: Int, local: Int, k: Int, a: UnsafeMutablePointer<Float>,
    padded: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, p: Int, limit: Int
  ) {
    if forward.m == 4 {
      gradientTransform4(image: image, local: local, k: k, a: a, padded: padded, y: y, p: p, limit: limit)
    } else {
      gradientTransform(image: image, local: local, k: k, a: a, padded: padded, y: y, p: p, limit: limit)
    }
  }

  /// `A x` for a column (or `x Aᵀ` for a row) of a 4×4 block of `dy`: six entries.
  @inline(__always)
  static func az(_ x0: V8, _ x1: V8, _ x2: V8, _ x3: V8) -> (V8, V8, V8, V8, V8, V8) {
    let s02 = x0 + x2, s13 = x1 + x3, f02 = x0 + 4 * x2, f13 = 2 * x1 + 8 * x3
    return (x0, s02 + s13, s02 - s13, f02 + f13, f02 - f13, x3)
  }

  /// `Y[ξ, k, tiles of image local] = A dy Aᵀ` for every 4×4 block of one plane of `dy`, as
  /// `gradientTransform` does for 2×2 blocks (the padded copy split by phase, as in
  /// `inputTransform4`).
  @inline(__always)
  func gradientTransform4(
    image: Int, local: Int, k: Int, a: UnsafeMutablePointer<Float>,
    padded: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, p: Int, limit: Int
  ) {
    let f = forward
    let th = f.tilesH, tw = f.tilesW
    let phase = WinogradConv3x3.phaseLength(tilesW: tw), row = 4 * phase
    copyRowsByPhase(
      a + dy + (image * f.cout + k) * f.oh * f.ow, rows: f.oh, columns: f.ow, sourceStride: f.ow,
      into: padded, phase: phase, top: 0, left: 0)
    let stride = f.mStride(p)
    let base = y + k * p + local * th * tw
    for ty in 0..<th {
      let r0 = padded + 4 * ty * row
      let dst = base + ty * tw
      for tx in Swift.stride(from: 0, to: tw, by: 8) {
        @inline(__always) func columns(_ r: UnsafeMutablePointer<Float>) -> (V8, V8, V8, V8) {
          let q = r + tx
          return (load8(q), load8(q + phase), load8(q + 2 * phase), load8(q + 3 * phase))
        }
        let e0 = columns(r0), e1 = columns(r0 + row), e2 = columns(r0 + 2 * row), e3 = columns(r0 + 3 * row)
        // Column j of A dy (6×4).
        let c0 = Self.az(e0.0, e1.0, e2.0, e3.0), c1 = Self.az(e0.1, e1.1, e2.1, e3.1)
        let c2 = Self.az(e0.2, e1.2, e2.2, e3.2), c3 = Self.az(e0.3, e1.3, e2.3, e3.3)
        let valid = Swift.min(8, limit - ty * tw - tx)
        // Row i of Y = (A dy) Aᵀ.
        @inline(__always) func store(_ i: Int, _ x0: V8, _ x1: V8, _ x2: V8, _ x3: V8) {
          let r = Self.az(x0, x1, x2, x3), q = dst + 6 * i * stride + tx
          store8(r.0, q, count: valid)
          store8(r.1, q + stride, count: valid)
          store8(r.2, q + 2 * stride, count: valid)
          store8(r.3, q + 3 * stride, count: valid)
          store8(r.4, q + 4 * stride, count: valid)
          store8(r.5, q + 5 * stride, count: valid)
        }
        store(0, c0.0, c1.0, c2.0, c3.0)
        store(1, c0.1, c1.1, c2.1, c3.1)
        store(2, c0.2, c1.2, c2.2, c3.2)
        store(3, c0.3, c1.3, c2.3, c3.3)
        store(4, c0.4, c1.4, c2.4, c3.4)
        store(5, c0.5, c1.5, c2.5, c3.5)
      }
    }
  }

  /// `dw[k, c] = Gᵀ (Σ_parts dU[·, k, c]) G` (parts added in order) for 6×6 `dU`, eight input
  /// channels at a time (the last ones fewer, their other lanes zero and not written), output
  /// channels split over the cores.
  func finish4(_ a: UnsafeMutablePointer<Float>, parts: [Int]) {
    let f = forward, plane = f.cout * f.cin, dw = dw
    splitOverCores(a, count: f.cout, threads: f.threads, worthIt: true) { a, range in
      for k in range {
        for c in Swift.stride(from: 0, to: f.cin, by: 8) {
          let lanes = Swift.min(8, f.cin - c)
          // Point ξ of dU[·, k, c…c+lanes−1], summed over the parts.
          @inline(__always) func point(_ xi: Int) -> V8 {
            var r = V8()
            for part in parts { r += load8(a + part + xi * plane + k * f.cin + c, count: lanes) }
            return r
          }
          // Gᵀ applied to six entries: three.
          @inline(__always) func gt(_ x: (V8, V8, V8, V8, V8, V8)) -> (V8, V8, V8) {
            let s12 = x.1 + x.2, d12 = x.1 - x.2, s34 = x.3 + x.4, d34 = x.3 - x.4
            return (
              0.25 * x.0 - sixth * s12 + twentyFourth * s34, twelfth * d34 - sixth * d12, sixth * (s34 - s12) + x.5
            )
          }
          // Column j of t = Gᵀ dU (3×6).
          @inline(__always) func column(_ j: Int) -> (V8, V8, V8) {
            gt((point(j), point(6 + j), point(12 + j), point(18 + j), point(24 + j), point(30 + j)))
          }
          let t0 = column(0), t1 = column(1), t2 = column(2), t3 = column(3), t4 = column(4), t5 = column(5)
          let out = a + dw + (k * f.cin + c) * 9
          // Row i of dw = t G, lane l to filter (k, c + l).
          @inline(__always) func put(_ i: Int, _ taps: (V8, V8, V8)) {
            for l in 0..<lanes {
              out[l * 9 + 3 * i] = taps.0[l]
              out[l * 9 + 3 * i + 1] = taps.1[l]
              out[l * 9 + 3 * i + 2] = taps.2[l]
            }
          }
          put(0, gt((t0.0, t1.0, t2.0, t3.0, t4.0, t5.0)))
          put(1, gt((t0.1, t1.1, t2.1, t3.1, t4.1, t5.1)))
          put(2, gt((t0.2, t1.2, t2.2, t3.2, t4.2, t5.2)))
        }
      }
    }
  }
}

/// F(4×4, 3×3)'s fractions, multiplied by (a division per use cost the weight transform, run
/// before every training step, more than the step's largest convolution).
let sixth: Float = 1.0 / 6, twelfth: Float = 1.0 / 12, twentyFourth: Float = 1.0 / 24

/// `rows` rows of `columns` floats from `src` (rows `sourceStride` apart) into a padded plane
/// of rows split by phase: column `j` of row `r` (from row `top`, column `left`) goes to
/// `dst[4·phase·r + (j mod 4)·phase + j / 4]`, so the column `j` of eight consecutive 6×6 (or
/// 4×4) tiles, every fourth float of a row, is eight consecutive floats. The padding is the
/// caller's, as in `copyRows`. Sixteen (or eight) columns at a time where they start at a
/// multiple of four.
@inline(__always)
func copyRowsByPhase(
  _ src: UnsafePointer<Float>, rows: Int, columns: Int, sourceStride: Int,
  into dst: UnsafeMutablePointer<Float>, phase: Int, top: Int, left: Int
) {
  let head = Swift.min((4 - left % 4) % 4, Swift.max(columns, 0))
  for r in 0..<Swift.max(rows, 0) {
    let to = dst + (top + r) * 4 * phase, row = src + r * sourceStride
    @inline(__always) func one(_ i: Int) { to[(left + i) % 4 * phase + (left + i) / 4] = row[i] }
    for i in 0..<head { one(i) }
    var i = head
    while i + 16 <= columns {
      let v = UnsafeRawPointer(row + i).loadUnaligned(as: SIMD16<Float>.self), q = to + (left + i) / 4
      let e = v.evenHalf, o = v.oddHalf
      UnsafeMutableRawPointer(q).storeBytes(of: e.evenHalf, as: SIMD4<Float>.self)
      UnsafeMutableRawPointer(q + phase).storeBytes(of: o.evenHalf, as: SIMD4<Float>.self)
      UnsafeMutableRawPointer(q + 2 * phase).storeBytes(of: e.oddHalf, as: SIMD4<Float>.self)
      UnsafeMutableRawPointer(q + 3 * phase).storeBytes(of: o.oddHalf, as: SIMD4<Float>.self)
      i += 16
    }
    if i + 8 <= columns {
      let v = load8(row + i), q = to + (left + i) / 4
      let e = v.evenHalf, o = v.oddHalf
      UnsafeMutableRawPointer(q).storeBytes(of: e.evenHalf, as: SIMD2<Float>.self)
      UnsafeMutableRawPointer(q + phase).storeBytes(of: o.evenHalf, as: SIMD2<Float>.self)
      UnsafeMutableRawPointer(q + 2 * phase).storeBytes(of: e.oddHalf, as: SIMD2<Float>.self)
      UnsafeMutableRawPointer(q + 3 * phase).storeBytes(of: o.oddHalf, as: SIMD2<Float>.self)
      i += 8
    }
    while i < columns { one(i); i += 1 }
  }
}

/// The first `count` lanes of `v` to `p` (all 32 when `count` ≥ 32).
@inline(__always)
func store32(_ v: SIMD32<Float>, _ p: UnsafeMutablePointer<Float>, count: Int) {
  if count >= 32 { return UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD32<Float>.self) }
  if count > 16 {
    store16(v.lowHalf, p)
    store16(v.highHalf, p + 16, count: count - 16)
  } else {
    store16(v.lowHalf, p, count: count)
  }
}

/// `a[0], b[0], a[1], b[1], …`: two rows of sixteen interleaved.
@inline(__always)
func interleave(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD32<Float> {
  SIMD32(lowHalf: interleave(a.lowHalf, b.lowHalf), highHalf: interleave(a.highHalf, b.highHalf))
}
