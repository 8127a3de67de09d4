import Foundation

/// A 3×3, stride-1, undilated, ungrouped convolution by Winograd's minimal filtering
/// F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
/// each 2×2 block of outputs costs 16 multiplications per input channel instead of 36, and
/// the multiplications of all blocks are 16 GEMMs.
///
/// - `prepare` (whenever parameters are set) transforms the weights once:
///   `U[ξ, k, c] = (G g[k, c] Gᵀ)[ξ]`, kept in the static region.
/// - Input transform: every 4×4 input tile `d` (zero padded) of every channel becomes
///   `V[ξ, c, p] = (Bᵀ d B)[ξ]`, tiles `p` of all images side by side.
/// - 16 GEMMs: `M[ξ] = U[ξ] · V[ξ]` (`[Cout, Cin] × [Cin, P]`).
/// - Output transform: `y = Aᵀ M A` per tile, plus bias, then the epilogue.
///
/// Transforms are split over `threads` cores by channel; the GEMMs use OpenBLAS's threads.
struct WinogradConv3x3: Kernel {
  var label: String
  var n: Int, cin: Int, h: Int, w: Int, cout: Int
  var padding: (Int, Int)
  var oh: Int, ow: Int
  var x: Int, weight: Int, bias: Int?, out: Int
  /// Offset of the transformed weights (`16·Cout·Cin` floats, persistent).
  var transformed: Int
  /// Offset of `V` then `M` (`scratchCount` floats).
  var scratch: Int
  var epilogue: Epilogue
  var threads: Int

  /// Whether a convolution of these attributes takes this kernel: 3×3, stride 1, dilation 1,
  /// one group, padding at most 2, and enough channels for the GEMMs to pay off. Each of the
  /// 16 GEMMs has depth Cin, and the transforms are memory-bound: with 64 input channels
  /// (ResNet's layer1, VGG's first block) the kernel ran at 37–59% of the im2col GEMM's SGEMM
  /// rate on AVX2 (`bench --profile`), from 128 at 79–130%, from 256 at 105–155%.
  static func applies(kh: Int, kw: Int, stride: [Int], dilation: [Int], padding: [Int], groups: Int,
                      cin: Int, cout: Int) -> Bool {
    kh == 3 && kw == 3 && stride == [1, 1] && dilation == [1, 1] && groups == 1
      && padding.allSatisfy { $0 >= 0 && $0 <= 2 } && cin >= 128 && cout >= 16
  }

  var tilesH: Int { (oh + 1) / 2 }
  var tilesW: Int { (ow + 1) / 2 }
  var tiles: Int { n * tilesH * tilesW }

  /// Scratch floats: `V` and `M`, plus one zero-padded channel per thread.
  static func scratchCount(n: Int, cin: Int, cout: Int, oh: Int, ow: Int, threads: Int) -> Int {
    let p = n * ((oh + 1) / 2) * ((ow + 1) / 2)
    return 16 * cin * p + 16 * cout * p + Swift.max(threads, 1) * paddedPlane(oh: oh, ow: ow)
  }

  /// Floats of one zero-padded input plane: every tile's 4×4 window lies inside it.
  static func paddedPlane(oh: Int, ow: Int) -> Int { ((oh + 1) / 2 * 2 + 2) * ((ow + 1) / 2 * 2 + 2) }

  /// The GEMM this convolution is as im2col would run it (`[Cout, Cin·9] × [Cin·9, N·OH·OW]`),
  /// so profiles compare the Winograd kernel with what it replaces.
  var gemms: [GEMMShape] { [GEMMShape(m: cout, n: n * oh * ow, k: cin * 9, transB: false, count: 1)] }

  static func persistentCount(cin: Int, cout: Int) -> Int { 16 * cin * cout }

  func prepare(_ a: UnsafeMutablePointer<Float>) {
    let g = a + weight, u = a + transformed
    let plane = cout * cin
    for k in 0..<cout {
      for c in 0..<cin {
        let f = g + (k * cin + c) * 9
        // t = G·g (4×3, rows as SIMD4 with a zero lane), then U = t·Gᵀ (4×4).
        let g0 = SIMD4<Float>(f[0], f[1], f[2], 0), g1 = SIMD4<Float>(f[3], f[4], f[5], 0)
        let g2 = SIMD4<Float>(f[6], f[7], f[8], 0)
        let rows = (g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2)
        func store(_ i: Int, _ t: SIMD4<Float>) {
          let q = u + 4 * i * plane + k * cin + c
          q[0] = t[0]
          q[plane] = 0.5 * (t[0] + t[1] + t[2])
          q[2 * plane] = 0.5 * (t[0] - t[1] + t[2])
          q[3 * plane] = t[2]
        }
        store(0, rows.0)
        store(1, rows.1)
        store(2, rows.2)
        store(3, rows.3)
      }
    }
  }

  func run(_ a: UnsafeMutablePointer<Float>) {
    let p = tiles
    let v = a + scratch, m = v + 16 * cin * p
    let parts = Swift.max(1, Swift.min(threads, 8))

    // Input transform, channels split over the threads (each with its own padded plane).
    let planes = n * cin
    let base = UnsafeSendable(a)
    let kernel = self
    forEachPart(parts) { part in
      let a = base.pointer
      let v = a + kernel.scratch, m = v + 16 * kernel.cin * p
      let padded = m + 16 * kernel.cout * p + part * Self.paddedPlane(oh: kernel.oh, ow: kernel.ow)
      for plane in stride(from: part, to: planes, by: parts) {
        kernel.inputTransform(plane: plane, a: a, padded: padded, v: v, p: p)
      }
    }

    for xi in 0..<16 {
      BLAS.sgemm(m: cout, n: p, k: cin, a: a + transformed + xi * cout * cin, lda: cin,
                 b: v + xi * cin * p, ldb: p, c: m + xi * cout * p, ldc: p)
    }

    forEachPart(parts) { part in
      let a = base.pointer
      let m = a + kernel.scratch + 16 * kernel.cin * p
      for k in stride(from: part, to: kernel.cout, by: parts) { kernel.outputTransform(k: k, a: a, m: m, p: p) }
    }
    epilogue.apply(a, out: out, count: n * cout * oh * ow, at: 0)
  }

  func forEachPart(_ parts: Int, _ body: @Sendable (Int) -> Void) {
    if parts == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: parts, execute: body) }
  }

  /// `V[ξ, c, tiles of image i] = Bᵀ d B` for every tile of one input plane (image `i`,
  /// channel `c`), through a zero-padded copy.
  @inline(__always)
  func inputTransform(plane: Int, a: UnsafeMutablePointer<Float>, padded: UnsafeMutablePointer<Float>,
                      v: UnsafeMutablePointer<Float>, p: Int) {
    let image = plane / cin, c = plane % cin
    let th = tilesH, tw = tilesW
    let pw = tw * 2 + 2, ph = th * 2 + 2
    padded.update(repeating: 0, count: ph * pw)
    let src = a + x + plane * h * w
    for y in 0..<h {
      let py = y + padding.0
      guard py < ph else { break }
      let count = Swift.min(w, pw - padding.1)
      (padded + py * pw + padding.1).update(from: src + y * w, count: count)
    }
    let stride = cin * p
    let base = v + c * p + image * th * tw
    for ty in 0..<th {
      let r0 = padded + 2 * ty * pw, r1 = r0 + pw, r2 = r1 + pw, r3 = r2 + pw
      let dst = base + ty * tw
      for tx in 0..<tw {
        let o = 2 * tx
        // t = Bᵀ d, rows: d0 − d2, d1 + d2, d2 − d1, d1 − d3.
        var t0 = SIMD4<Float>(r0[o], r0[o + 1], r0[o + 2], r0[o + 3])
        let d1 = SIMD4<Float>(r1[o], r1[o + 1], r1[o + 2], r1[o + 3])
        let d2 = SIMD4<Float>(r2[o], r2[o + 1], r2[o + 2], r2[o + 3])
        let d3 = SIMD4<Float>(r3[o], r3[o + 1], r3[o + 2], r3[o + 3])
        t0 -= d2
        let t1 = d1 + d2, t2 = d2 - d1, t3 = d1 - d3
        // V = t B, per row: t0 − t2, t1 + t2, t2 − t1, t1 − t3.
        @inline(__always) func store(_ i: Int, _ t: SIMD4<Float>) {
          let q = dst + 4 * i * stride + tx
          q[0] = t[0] - t[2]
          q[stride] = t[1] + t[2]
          q[2 * stride] = t[2] - t[1]
          q[3 * stride] = t[1] - t[3]
        }
        store(0, t0)
        store(1, t1)
        store(2, t2)
        store(3, t3)
      }
    }
  }

  /// `y = Aᵀ M A` (+ bias) for every tile of output channel `k` in every image.
  @inline(__always)
  func outputTransform(k: Int, a: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>, p: Int) {
    let th = tilesH, tw = tilesW
    let stride = cout * p
    let b: Float = bias.map { a[$0 + k] } ?? 0
    for image in 0..<n {
      let src = m + k * p + image * th * tw
      let dst = a + out + (image * cout + k) * oh * ow
      for ty in 0..<th {
        for tx in 0..<tw {
          let q = src + ty * tw + tx
          // Rows of M (4×4) combined: s0 = m0 + m1 + m2, s1 = m1 − m2 − m3.
          var s0 = SIMD4<Float>(), s1 = SIMD4<Float>()
          for j in 0..<4 {
            let m0 = q[j * stride], m1 = q[(4 + j) * stride], m2 = q[(8 + j) * stride], m3 = q[(12 + j) * stride]
            s0[j] = m0 + m1 + m2
            s1[j] = m1 - m2 - m3
          }
          let y0 = 2 * ty, x0 = 2 * tx
          let row0 = dst + y0 * ow + x0
          row0[0] = s0[0] + s0[1] + s0[2] + b
          if x0 + 1 < ow { row0[1] = s0[1] - s0[2] - s0[3] + b }
          if y0 + 1 < oh {
            let row1 = row0 + ow
            row1[0] = s1[0] + s1[1] + s1[2] + b
            if x0 + 1 < ow { row1[1] = s1[1] - s1[2] - s1[3] + b }
          }
        }
      }
    }
  }
}
