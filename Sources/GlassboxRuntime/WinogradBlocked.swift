/// Winograd F(2×2, 3×3) between channel-blocked values (`choose-layouts`' NCHW16c in and out):
/// the transforms take a block's 16 channels as one vector, so a tile's 4×4 window is sixteen
/// vector loads with no padded copy of the plane, and its 2×2 outputs four vector stores with
/// the bias, residual and ReLU applied in registers. `V` and `M` are kept transposed — `V[ξ]:
/// [P, Cin]`, `M[ξ]: [P, Cout]`, a tile's channels adjacent — and each GEMM is `M[ξ] = V[ξ] ·
/// U[ξ]ᵀ`. The same sums as the plain transforms (`inputTransform`, `outputTransform`), lane by
/// lane.
extension WinogradConv3x3 {
  typealias V16 = SIMD16<Float>

  /// `run` for a blocked convolution: the work shared as the plain kernel shares it, in units of
  /// one image's block of 16 channels instead of a plane.
  func runBlocked(_ a: UnsafeMutablePointer<Float>) {
    let inputBlocks = cin / 16, outputBlocks = cout / 16
    if let plan = Self.plan(n: n, cin: cin, cout: cout, oh: oh, ow: ow, threads: threads, m: m) {
      let perImage = tilesH * tilesW, block = plan.block
      // Each part's scratch as `scratchCount` plans it (the padded plane unused here).
      let perPart =
        Self.transformedCount(cin: cin, cout: cout, tiles: block * perImage, m: m)
        + Self.paddedPlane(oh: oh, ow: ow, m: m)
      let kernel = self
      forEachImagePart(images: n, threads: threads, a, scratch: scratch, partScratch: { _ in perPart }) {
        a, _, images, offset, _ in
        var first = images.lowerBound
        while first < images.upperBound {
          let count = Swift.min(block, images.upperBound - first), p = count * perImage
          let v = a + offset, m = v + 16 * kernel.vStride(p)
          for local in 0..<count {
            for b in 0..<inputBlocks {
              kernel.blockedInputTransform(image: first + local, local: local, block: b, a: a, v: v, p: p)
            }
          }
          for xi in 0..<16 { kernel.multiplyTransposed(a, xi: xi, v: v, m: m, p: p) }
          for local in 0..<count {
            for b in 0..<outputBlocks {
              kernel.blockedOutputTransform(image: first + local, local: local, block: b, a: a, m: m, p: p)
            }
          }
          first += count
        }
      }
      return
    }
    let p = tiles, parts = Swift.max(1, Swift.min(threads, 8))
    let base = UnsafeSendable(a), kernel = self
    let v = scratch, m = scratch + 16 * vStride(p)
    // Each part a run of (image, block) pairs, in order.
    func forEachBlock(_ blocks: Int, _ body: @escaping @Sendable (_ image: Int, _ block: Int) -> Void) {
      forEachPart(parts) { part in
        let units = kernel.n * blocks
        for u in (units * part / parts)..<(units * (part + 1) / parts) { body(u / blocks, u % blocks) }
      }
    }
    forEachBlock(inputBlocks) { image, block in
      kernel.blockedInputTransform(
        image: image, local: image, block: block, a: base.pointer, v: base.pointer + v, p: p)
    }
    forEachPart(parts) { part in
      for xi in stride(from: part, to: 16, by: parts) {
        kernel.multiplyTransposed(base.pointer, xi: xi, v: base.pointer + v, m: base.pointer + m, p: p)
      }
    }
    forEachBlock(outputBlocks) { image, block in
      kernel.blockedOutputTransform(
        image: image, local: image, block: block, a: base.pointer, m: base.pointer + m, p: p)
    }
  }

  /// `M[ξ] = V[ξ] · U[ξ]ᵀ` (`[P, Cin] × [Cin, Cout]`), on one thread.
  @inline(__always)
  func multiplyTransposed(
    _ a: UnsafeMutablePointer<Float>, xi: Int, v: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>,
    p: Int
  ) {
    BLAS.sgemm(
      transB: true, m: p, n: cout, k: cin, a: v + xi * vStride(p), lda: cin,
      b: a + transformed + xi * cout * cin, ldb: cin, c: m + xi * mStride(p), ldc: cout)
  }

  /// `V[ξ, tile, 16·block…] = Bᵀ d B` for every tile of one image's input block (`local`: its
  /// place among the images `V` holds): the window's sixteen pixels loaded as vectors of the
  /// block's channels, zeros outside the image.
  @inline(__always)
  func blockedInputTransform(
    image: Int, local: Int, block: Int, a: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, p: Int
  ) {
    let th = tilesH, tw = tilesW, stride = vStride(p)
    let src = a + x + (image * cin + block * 16) * h * w
    let zero = V16(repeating: 0)
    for ty in 0..<th {
      let y0 = 2 * ty - padding.0
      for tx in 0..<tw {
        let x0 = 2 * tx - padding.1
        let inside = y0 >= 0 && y0 + 4 <= h && x0 >= 0 && x0 + 4 <= w
        @inline(__always) func d(_ r: Int, _ c: Int) -> V16 {
          let yy = y0 + r, xx = x0 + c
          guard inside || (yy >= 0 && yy < h && xx >= 0 && xx < w) else { return zero }
          return UnsafeRawPointer(src + (yy * w + xx) * 16).loadUnaligned(as: V16.self)
        }
        // t = Bᵀ d, row by row, each row's four columns: d0 − d2, d1 + d2, d2 − d1, d1 − d3.
        let r0 = (d(0, 0), d(0, 1), d(0, 2), d(0, 3)), r1 = (d(1, 0), d(1, 1), d(1, 2), d(1, 3))
        let r2 = (d(2, 0), d(2, 1), d(2, 2), d(2, 3)), r3 = (d(3, 0), d(3, 1), d(3, 2), d(3, 3))
        let t0 = (r0.0 - r2.0, r0.1 - r2.1, r0.2 - r2.2, r0.3 - r2.3)
        let t1 = (r1.0 + r2.0, r1.1 + r2.1, r1.2 + r2.2, r1.3 + r2.3)
        let t2 = (r2.0 - r1.0, r2.1 - r1.1, r2.2 - r1.2, r2.3 - r1.3)
        let t3 = (r1.0 - r3.0, r1.1 - r3.1, r1.2 - r3.2, r1.3 - r3.3)
        let dst = v + (local * th * tw + ty * tw + tx) * cin + block * 16
        // V = t B, per row: t0 − t2, t1 + t2, t2 − t1, t1 − t3.
        @inline(__always) func store(_ i: Int, _ t: (V16, V16, V16, V16)) {
          let q = dst + 4 * i * stride
          UnsafeMutableRawPointer(q).storeBytes(of: t.0 - t.2, as: V16.self)
          UnsafeMutableRawPointer(q + stride).storeBytes(of: t.1 + t.2, as: V16.self)
          UnsafeMutableRawPointer(q + 2 * stride).storeBytes(of: t.2 - t.1, as: V16.self)
          UnsafeMutableRawPointer(q + 3 * stride).storeBytes(of: t.1 - t.3, as: V16.self)
        }
        store(0, t0)
        store(1, t1)
        store(2, t2)
        store(3, t3)
      }
    }
  }

  /// `y = Aᵀ M A` + bias for every tile of one image's output block, then the epilogue (the
  /// blocked residual added, ReLU), each output pixel's 16 channels one vector store.
  @inline(__always)
  func blockedOutputTransform(
    image: Int, local: Int, block: Int, a: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>, p: Int
  ) {
    let th = tilesH, tw = tilesW, stride = mStride(p)
    let b = bias.map { UnsafeRawPointer(a + $0 + block * 16).loadUnaligned(as: V16.self) } ?? V16(repeating: 0)
    let at = (image * cout + block * 16) * oh * ow
    let dst = a + out + at, residual = epilogue.residual.map { a + $0 + at }, relu = epilogue.relu
    let zero = V16(repeating: 0)
    for ty in 0..<th {
      for tx in 0..<tw {
        let q = m + (local * th * tw + ty * tw + tx) * cout + block * 16
        @inline(__always) func mv(_ xi: Int) -> V16 { UnsafeRawPointer(q + xi * stride).loadUnaligned(as: V16.self) }
        let m0 = mv(0), m1 = mv(1), m2 = mv(2), m3 = mv(3), m4 = mv(4), m5 = mv(5), m6 = mv(6), m7 = mv(7)
        let m8 = mv(8), m9 = mv(9), m10 = mv(10), m11 = mv(11), m12 = mv(12), m13 = mv(13), m14 = mv(14), m15 = mv(15)
        let s00 = m0 + m4 + m8, s01 = m1 + m5 + m9, s02 = m2 + m6 + m10, s03 = m3 + m7 + m11
        let s10 = m4 - m8 - m12, s11 = m5 - m9 - m13, s12 = m6 - m10 - m14, s13 = m7 - m11 - m15
        let y0 = 2 * ty, x0 = 2 * tx
        @inline(__always) func put(_ value: V16, _ yy: Int, _ xx: Int) {
          guard yy < oh, xx < ow else { return }
          let o = (yy * ow + xx) * 16
          var v = value
          if let residual { v = v + UnsafeRawPointer(residual + o).loadUnaligned(as: V16.self) }
          if relu { v = v.replacing(with: zero, where: v .< zero) }
          UnsafeMutableRawPointer(dst + o).storeBytes(of: v, as: V16.self)
        }
        put(s00 + s01 + s02 + b, y0, x0)
        put(s01 - s02 - s03 + b, y0, x0 + 1)
        put(s10 + s11 + s12 + b, y0 + 1, x0)
        put(s11 - s12 - s13 + b, y0 + 1, x0 + 1)
      }
    }
  }
}
