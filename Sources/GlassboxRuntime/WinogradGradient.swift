import Foundation

/// The weight gradient of a convolution that runs as Winograd F(2×2, 3×3) (or F(4×4, 3×3):
/// the forward's `m`, 36 points for 16, its transforms in WinogradF4.swift), by the same
/// transforms. Per tile the forward is `y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A`, linear in
/// `U = G g Gᵀ`; so `∂L/∂U[ξ, k, c] = Σ_tiles (A dy Aᵀ)[ξ, k] · (Bᵀ d B)[ξ, c]` and
/// `∂L/∂g = Gᵀ (∂L/∂U) G`:
///
/// - the input transform `V[ξ, c, p]` of the forward (`WinogradConv3x3.inputTransform`);
/// - the gradient transform `Y[ξ, k, p] = (A dy Aᵀ)[ξ]` of every 2×2 block of `dy`;
/// - a GEMM per point, `dU[ξ] = Y[ξ] · V[ξ]ᵀ` (`[Cout, P] × [P, Cin]`, depth the tile count):
///   16 multiplications per tile and channel pair where im2col's GEMM makes 36 (F(4×4, 3×3):
///   36 where it makes 144);
/// - `dw[k, c] = Gᵀ dU[·, k, c] G`.
///
/// The work is shared as in the forward (`WinogradConv3x3.plan`): each core its own images
/// in blocks, accumulating its own `dU` (added in part order, so a thread count always gives
/// the same bits), or, when the weights outweigh the tiles, the transforms split by plane and
/// the GEMMs by ξ.
struct WinogradWeightGradient: Kernel {
  var label: String
  /// The forward convolution: its geometry, `x`, `threads` and `scratch` (its weight, bias,
  /// output and transformed weights unused).
  var forward: WinogradConv3x3
  var dy: Int, dw: Int

  var gemms: [GEMMShape] {
    let f = forward
    return [GEMMShape(m: f.cout, n: f.cin * 9, k: f.n * f.oh * f.ow, transB: true, count: 1)]
  }

  /// The forward's: one product per transform point, filter pair and tile (`dU[ξ] += Yᵀ[ξ] · V[ξ]`).
  var executedFlops: Double { forward.executedFlops }

  /// Scratch floats: `V` and `Y` (of all tiles, or of one block per part), a padded plane per
  /// thread, and `dU` (one, or one per part: as many floats as the transformed weights).
  static func scratchCount(n: Int, cin: Int, cout: Int, oh: Int, ow: Int, threads: Int, m: Int) -> Int {
    let perImage = WinogradConv3x3.tilesPerImage(oh: oh, ow: ow, m: m)
    let padded = WinogradConv3x3.paddedPlane(oh: oh, ow: ow, m: m)
    if let plan = WinogradConv3x3.plan(n: n, cin: cin, cout: cout, oh: oh, ow: ow, threads: threads, m: m) {
      return plan.parts * partCount(cin: cin, cout: cout, tiles: plan.block * perImage, padded: padded, m: m)
    }
    return WinogradConv3x3.transformedCount(cin: cin, cout: cout, tiles: n * perImage, m: m)
      + Swift.max(threads, 1) * padded + WinogradConv3x3.persistentCount(cin: cin, cout: cout, m: m)
  }

  /// Floats of one part's scratch in the image split: `V`, `Y`, a padded plane, `dU`.
  static func partCount(cin: Int, cout: Int, tiles: Int, padded: Int, m: Int) -> Int {
    WinogradConv3x3.transformedCount(cin: cin, cout: cout, tiles: tiles, m: m) + padded
      + WinogradConv3x3.persistentCount(cin: cin, cout: cout, m: m)
  }

  func run(_ a: UnsafeMutablePointer<Float>) {
    let f = forward
    let base = UnsafeSendable(a), kernel = self
    let padded = WinogradConv3x3.paddedPlane(oh: f.oh, ow: f.ow, m: f.m), perImage = f.tilesH * f.tilesW
    guard
      let plan = WinogradConv3x3.plan(n: f.n, cin: f.cin, cout: f.cout, oh: f.oh, ow: f.ow, threads: f.threads, m: f.m)
    else {
      // Transforms of all tiles split by plane, in runs in `V`'s and `Y`'s order (see
      // `WinogradConv3x3.run`); then the GEMMs by ξ into the one `dU`.
      let p = f.tiles, parts = Swift.max(1, Swift.min(f.threads, 8))
      let v = f.scratch, y = v + f.points * f.vStride(p)
      let pads = v + WinogradConv3x3.transformedCount(cin: f.cin, cout: f.cout, tiles: p, m: f.m)
      let du = pads + parts * padded
      f.forEachPart(parts) { part in
        let a = base.pointer, plane = a + pads + part * padded
        f.clearPadded(plane)
        f.forEachPlane(of: f.n * f.cin, part: part, parts: parts) { q, limit in
          let ahead = q + WinogradConv3x3.prefetchDistance
          if ahead < f.n * f.cin { f.prefetchPlane(a, ahead) }
          f.anyInputTransform(
            image: q % f.n, local: q % f.n, c: q / f.n, a: a, padded: plane, v: a + v, p: p, limit: limit)
        }
        f.clearPadded(plane)
        f.forEachPlane(of: f.n * f.cout, part: part, parts: parts) { q, limit in
          let ahead = q + WinogradConv3x3.prefetchDistance
          if ahead < f.n * f.cout { kernel.prefetchPlane(a, ahead) }
          kernel.anyGradientTransform(
            image: q % f.n, local: q % f.n, k: q / f.n, a: a, padded: plane, y: a + y, p: p,
            limit: limit)
        }
      }
      f.forEachPart(parts) { part in
        let a = base.pointer
        for xi in stride(from: part, to: f.points, by: parts) {
          kernel.multiply(a, xi: xi, y: a + y, v: a + v, du: a + du, p: p, accumulate: false)
        }
      }
      return finish(a, parts: [du])
    }

    let each = Self.partCount(cin: f.cin, cout: f.cout, tiles: plan.block * perImage, padded: padded, m: f.m)
    let transformed = WinogradConv3x3.transformedCount(cin: f.cin, cout: f.cout, tiles: plan.block * perImage, m: f.m)
    forEachImagePart(images: f.n, threads: f.threads, a, scratch: f.scratch, partScratch: { _ in each }) {
      a, _, images, offset, _ in
      let own = a + offset, plane = own + transformed, du = plane + padded
      du.update(repeating: 0, count: f.points * f.cin * f.cout)
      var first = images.lowerBound
      while first < images.upperBound {
        let count = Swift.min(plan.block, images.upperBound - first), p = count * perImage
        let v = own, y = own + f.points * f.vStride(p)
        f.inputTransforms(images: first..<(first + count), a: a, padded: plane, v: v)
        // In `Y`'s order (channel, then image): the extra lanes land on later tiles.
        f.clearPadded(plane)
        for k in 0..<f.cout {
          for i in 0..<count {
            if k + WinogradConv3x3.prefetchDistance < f.cout {
              prefetch(
                a + kernel.dy + ((first + i) * f.cout + k + WinogradConv3x3.prefetchDistance) * f.oh * f.ow,
                count: f.oh * f.ow)
            }
            kernel.anyGradientTransform(
              image: first + i, local: i, k: k, a: a, padded: plane, y: y, p: p, limit: .max)
          }
        }
        for xi in 0..<f.points { kernel.multiply(a, xi: xi, y: y, v: v, du: du, p: p, accumulate: true) }
        first += count
      }
    }
    finish(a, parts: (0..<plan.parts).map { f.scratch + $0 * each + transformed + padded })
  }

  /// `dU[ξ] (+)= Y[ξ] · V[ξ]ᵀ` for `p` tiles, on one thread.
  @inline(__always)
  func multiply(
    _ a: UnsafeMutablePointer<Float>, xi: Int, y: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
    du: UnsafeMutablePointer<Float>, p: Int, accumulate: Bool
  ) {
    let f = forward
    BLAS.sgemm(
      transB: true, m: f.cout, n: f.cin, k: p, a: y + xi * f.mStride(p), lda: p, b: v + xi * f.vStride(p),
      ldb: p, beta: accumulate ? 1 : 0, c: du + xi * f.cout * f.cin, ldc: f.cin)
  }

  /// `dw[k, c] = Gᵀ (Σ_parts dU[·, k, c]) G` (parts added in order), output channels split over
  /// the cores.
  func finish(_ a: UnsafeMutablePointer<Float>, parts: [Int]) {
    if forward.m == 4 { return finish4(a, parts: parts) }
    let f = forward, plane = f.cout * f.cin, dw = dw
    splitOverCores(a, count: f.cout, threads: f.threads, worthIt: true) { a, range in
      typealias V8 = SIMD8<Float>
      let vectorEnd = f.cin / 8 * 8
      for k in range {
        // Eight input channels at a time: dU[ξ, k, c…c+7] are eight consecutive floats. The
        // same operations in the same order as the scalar loop below, lane by lane.
        for c in Swift.stride(from: 0, to: vectorEnd, by: 8) {
          // Row i of the 4×4 dU[·, k, c…c+7], summed over the parts.
          @inline(__always) func row(_ i: Int) -> (V8, V8, V8, V8) {
            var r = (V8(), V8(), V8(), V8())
            for part in parts {
              let u = a + part + k * f.cin + c + 4 * i * plane
              r = (r.0 + load8(u), r.1 + load8(u + plane), r.2 + load8(u + 2 * plane), r.3 + load8(u + 3 * plane))
            }
            return r
          }
          // Gᵀ applied to four entries: the three rows of Gᵀ x (or the three taps of x G).
          @inline(__always) func gt(_ x0: V8, _ x1: V8, _ x2: V8, _ x3: V8) -> (V8, V8, V8) {
            (x0 + 0.5 * (x1 + x2), 0.5 * (x1 - x2), 0.5 * (x1 + x2) + x3)
          }
          let m0 = row(0), m1 = row(1), m2 = row(2), m3 = row(3)
          // Column j of t = Gᵀ dU (3×4).
          let t0 = gt(m0.0, m1.0, m2.0, m3.0), t1 = gt(m0.1, m1.1, m2.1, m3.1)
          let t2 = gt(m0.2, m1.2, m2.2, m3.2), t3 = gt(m0.3, m1.3, m2.3, m3.3)
          let out = a + dw + (k * f.cin + c) * 9
          // Row i of dw = t G, lane l to filter (k, c + l).
          @inline(__always) func put(_ i: Int, _ taps: (V8, V8, V8)) {
            for l in 0..<8 {
              out[l * 9 + 3 * i] = taps.0[l]
              out[l * 9 + 3 * i + 1] = taps.1[l]
              out[l * 9 + 3 * i + 2] = taps.2[l]
            }
          }
          put(0, gt(t0.0, t1.0, t2.0, t3.0))
          put(1, gt(t0.1, t1.1, t2.1, t3.1))
          put(2, gt(t0.2, t1.2, t2.2, t3.2))
        }
        for c in vectorEnd..<f.cin {
          // The 4×4 dU[·, k, c], rows as SIMD4, summed over the parts.
          var m = (SIMD4<Float>(), SIMD4<Float>(), SIMD4<Float>(), SIMD4<Float>())
          for part in parts {
            let u = a + part + k * f.cin + c
            func row(_ i: Int) -> SIMD4<Float> {
              SIMD4(u[4 * i * plane], u[(4 * i + 1) * plane], u[(4 * i + 2) * plane], u[(4 * i + 3) * plane])
            }
            m = (m.0 + row(0), m.1 + row(1), m.2 + row(2), m.3 + row(3))
          }
          // t = Gᵀ dU (3×4), then dw = t G (3×3).
          let t = (m.0 + 0.5 * (m.1 + m.2), 0.5 * (m.1 - m.2), 0.5 * (m.1 + m.2) + m.3)
          let out = a + dw + (k * f.cin + c) * 9
          func put(_ i: Int, _ q: SIMD4<Float>) {
            out[3 * i] = q[0] + 0.5 * (q[1] + q[2])
            out[3 * i + 1] = 0.5 * (q[1] - q[2])
            out[3 * i + 2] = 0.5 * (q[1] + q[2]) + q[3]
          }
          put(0, t.0)
          put(1, t.1)
          put(2, t.2)
        }
      }
    }
  }

  /// `Y[ξ, k, tiles of image local] = A dy Aᵀ` for every 2×2 block of one plane of `dy` (image
  /// `image`, channel `k`), through a zero-padded copy (blocks past the map's edge are zero;
  /// `padded` cleared by the caller: `WinogradConv3x3.clearPadded`),
  /// eight blocks of a row at a time: the two columns of each block are the even and odd lanes
  /// of one 16-float load. Extra lanes as in `WinogradConv3x3.inputTransform`.
  @inline(__always)
  func gradientTransform(
    image: Int, local: Int, k: Int, a: UnsafeMutablePointer<Float>,
    padded: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, p: Int, limit: Int
  ) {
    let f = forward
    let th = f.tilesH, tw = f.tilesW, pw = 2 * tw
    copyRows(
      a + dy + (image * f.cout + k) * f.oh * f.ow, rows: f.oh, columns: f.ow, sourceStride: f.ow,
      into: padded, stride: pw, top: 0, left: 0)
    let stride = f.mStride(p)
    let base = y + k * p + local * th * tw
    typealias V8 = SIMD8<Float>
    for ty in 0..<th {
      let r0 = padded + 2 * ty * pw, r1 = r0 + pw
      let dst = base + ty * tw
      // A constant per step: the nested functions capture it (a captured `var` is boxed on the heap).
      for tx in Swift.stride(from: 0, to: tw, by: 8) {
        let top = UnsafeRawPointer(r0 + 2 * tx).loadUnaligned(as: SIMD16<Float>.self)
        let bottom = UnsafeRawPointer(r1 + 2 * tx).loadUnaligned(as: SIMD16<Float>.self)
        let d00 = top.evenHalf, d01 = top.oddHalf, d10 = bottom.evenHalf, d11 = bottom.oddHalf
        let valid = Swift.min(8, limit - ty * tw - tx)
        // Rows of A dy (4×2): d0, d0 + d1, d0 − d1, −d1; each row (u, v) then times Aᵀ:
        // u, u + v, u − v, −v.
        @inline(__always) func store(_ i: Int, _ u: V8, _ v: V8) {
          let q = dst + 4 * i * stride + tx
          store8(u, q, count: valid)
          store8(u + v, q + stride, count: valid)
          store8(u - v, q + 2 * stride, count: valid)
          store8(-v, q + 3 * stride, count: valid)
        }
        store(0, d00, d01)
        store(1, d00 + d10, d01 + d11)
        store(2, d00 - d10, d01 - d11)
        store(3, -d10, -d11)
      }
    }
  }
}

extension WinogradWeightGradient {
  /// Prefetches plane `q` of `dy` in `Y`'s order (channel, then image).
  @inline(__always)
  func prefetchPlane(_ a: UnsafeMutablePointer<Float>, _ q: Int) {
    let f = forward
    prefetch(a + dy + ((q % f.n) * f.cout + q / f.n) * f.oh * f.ow, count: f.oh * f.ow)
  }
}
