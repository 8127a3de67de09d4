import CKernels

/// Winograd F(2×2, 3×3) and F(4×4, 3×3) between channel-blocked values (`choose-layouts`'
/// NCHW16c in and out): the transforms take a block's 16 channels as one vector, so a tile's 4×4
/// (6×6) window is 16 (36) vector loads with no padded copy of the plane, and its 2×2 (4×4)
/// outputs as many vector stores with the bias, residual and ReLU applied in registers. `V` and
/// `M` are blocked too — `V[ξ]: [Cin/16, P, 16]`, `M[ξ]: [Cout/16, P, 16]`, tiles `P` in place of
/// a plane's pixels — so each GEMM `M[ξ] = V[ξ] · U[ξ]ᵀ` is a 1×1 convolution over a P-pixel
/// blocked image, run by the blocked convolution kernel (`CKernels/conv_blocked.c`) on `U[ξ]`
/// packed once as its weights (`packBlocked`): no per-call packing of `V`, no zeroing of `M`.
/// The same sums as the plain transforms (`inputTransform`, `outputTransform`, and F(4×4, 3×3)'s
/// `inputTransform4`, `outputTransform4`), lane by lane.
extension WinogradConv3x3 {
  typealias V16 = SIMD16<Float>

  /// V and M floats (of all points) a chunk of tile rows keeps to: with the transformed weights
  /// of ResNet's layer1 they stay in a core's L2 between the three steps.
  static let blockedChunkFloats = 1 << 17

  /// How a blocked convolution whose tiles outweigh its weights shares its work: the (image, tile
  /// row) pairs split over `parts` cores, each core taking `rows` of its pairs at a time through
  /// the input transform, the GEMMs and the output transform, so that the chunk's `V` and `M`
  /// (`blockedChunkFloats` at most, one tile row at least) stay in cache between the steps; nil
  /// where the weights outweigh the tiles (then every step is shared, the GEMMs by ξ, so that
  /// each core reads only its points' weights).
  static func blockedChunks(
    n: Int, cin: Int, cout: Int, oh: Int, ow: Int, threads: Int, m: Int
  ) -> (parts: Int, rows: Int)? {
    let tilesH = (oh + m - 1) / m, tilesW = (ow + m - 1) / m
    guard n * tilesH * tilesW * (cin + cout) > cin * cout else { return nil }
    let units = n * tilesH, parts = Swift.max(1, Swift.min(threads, units))
    let perRow = (m + 2) * (m + 2) * tilesW * (cin + cout)
    return (parts, Swift.max(1, Swift.min((units + parts - 1) / parts, blockedChunkFloats / perRow)))
  }

  /// `run` for a blocked convolution: in chunks of tile rows per core (`blockedChunks`), or each
  /// step shared over the cores, the transforms in units of one image's block of 16 channels.
  func runBlocked(_ a: UnsafeMutablePointer<Float>) {
    let inputBlocks = cin / 16, outputBlocks = cout / 16, th = tilesH, tw = tilesW
    if let plan = Self.blockedChunks(n: n, cin: cin, cout: cout, oh: oh, ow: ow, threads: threads, m: m) {
      let units = n * th, perPart = Self.transformedCount(cin: cin, cout: cout, tiles: plan.rows * tw, m: m)
      let base = UnsafeSendable(a), kernel = self
      forEachPart(plan.parts) { part in
        let a = base.pointer, v = a + kernel.scratch + part * perPart
        var first = units * part / plan.parts
        let last = units * (part + 1) / plan.parts
        while first < last {
          let start = first, end = Swift.min(first + plan.rows, last), p = (end - start) * tw
          let m = v + kernel.points * kernel.vStride(p)
          // The chunk's rows image by image: each image, its rows, and their first tile in V.
          func pieces(_ body: (_ image: Int, _ rows: Range<Int>, _ at: Int) -> Void) {
            var u = start
            while u < end {
              let image = u / th, stop = Swift.min(end, (image + 1) * th)
              body(image, (u - image * th)..<(stop - image * th), (u - start) * tw)
              u = stop
            }
          }
          pieces { image, rows, at in
            for b in 0..<inputBlocks {
              kernel.blockedInputTransform(image: image, rows: rows, at: at, block: b, a: a, v: v, p: p)
            }
          }
          for xi in 0..<kernel.points { kernel.multiplyBlocked(a, xi: xi, v: v, m: m, p: p) }
          pieces { image, rows, at in
            for b in 0..<outputBlocks {
              kernel.blockedOutputTransform(image: image, rows: rows, at: at, block: b, a: a, m: m, p: p)
            }
          }
          first = end
        }
      }
      return
    }
    let p = tiles, parts = Swift.max(1, Swift.min(threads, 8))
    let base = UnsafeSendable(a), kernel = self
    let v = scratch, m = scratch + points * vStride(p)
    // Each part a run of (image, block) pairs, in order.
    func forEachBlock(_ blocks: Int, _ body: @escaping @Sendable (_ image: Int, _ block: Int) -> Void) {
      forEachPart(parts) { part in
        let units = kernel.n * blocks
        for u in (units * part / parts)..<(units * (part + 1) / parts) { body(u / blocks, u % blocks) }
      }
    }
    forEachBlock(inputBlocks) { image, block in
      kernel.blockedInputTransform(
        image: image, rows: 0..<th, at: image * th * tw, block: block, a: base.pointer, v: base.pointer + v, p: p)
    }
    forEachPart(parts) { part in
      for xi in stride(from: part, to: kernel.points, by: parts) {
        kernel.multiplyBlocked(base.pointer, xi: xi, v: base.pointer + v, m: base.pointer + m, p: p)
      }
    }
    forEachBlock(outputBlocks) { image, block in
      kernel.blockedOutputTransform(
        image: image, rows: 0..<th, at: image * th * tw, block: block, a: base.pointer, m: base.pointer + m, p: p)
    }
  }

  /// Packs each `U[ξ]` (`[Cout, Cin]`, as `prepare` transformed it) in place as the blocked 1×1
  /// convolution's weights (`glassbox_conv_blocked_pack_weights`: `[Cout/16, Cin/16, 16, 16]`,
  /// the same count of floats), ξ split over the cores.
  func packBlocked(_ a: UnsafeMutablePointer<Float>) {
    let plane = cout * cin, (cout, cin, transformed) = (self.cout, self.cin, self.transformed)
    splitOverCores(a, count: points, threads: threads, worthIt: plane * points >= 1 << 16) { a, range in
      let copy = UnsafeMutablePointer<Float>.allocate(capacity: plane)
      defer { copy.deallocate() }
      for xi in range {
        let u = a + transformed + xi * plane
        copy.update(from: u, count: plane)
        glassbox_conv_blocked_pack_weights(copy, Int32(cout), Int32(cin), 1, 1, u)
      }
    }
  }

  /// `M[ξ] = V[ξ] · U[ξ]ᵀ`, on one thread: the 1×1 convolution of `V[ξ]` (`Cin` channels of `p`
  /// pixels, blocked) by the packed `U[ξ]`, into `M[ξ]`.
  @inline(__always)
  func multiplyBlocked(
    _ a: UnsafeMutablePointer<Float>, xi: Int, v: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>, p: Int
  ) {
    var c = glassbox_conv_blocked(
      cin: Int32(cin), h: 1, w: Int32(p), cout: Int32(cout), oh: 1, ow: Int32(p), kh: 1, kw: 1, sy: 1, sx: 1,
      py: 0, px: 0, dy: 1, dx: 1, plainInput: 0, bias: nil, relu: 0)
    let x = UnsafePointer(v + xi * vStride(p)), u = UnsafePointer(a + transformed + xi * cout * cin)
    let y = m + xi * mStride(p), blocks = Int32(cout / 16)
    if AVX512.enabled {
      glassbox_conv_blocked_avx512(&c, x, u, y, nil, 0, blocks, 0, 1)
    } else {
      glassbox_conv_blocked_avx2(&c, x, u, y, nil, 0, blocks, 0, 1)
    }
  }

  /// The input transform of this kernel's tile, blocked.
  @inline(__always)
  func blockedInputTransform(
    image: Int, rows: Range<Int>, at: Int, block: Int, a: UnsafeMutablePointer<Float>,
    v: UnsafeMutablePointer<Float>, p: Int
  ) {
    if m == 4 {
      blockedInputTransform4(image: image, rows: rows, at: at, block: block, a: a, v: v, p: p)
    } else {
      blockedInputTransform2(image: image, rows: rows, at: at, block: block, a: a, v: v, p: p)
    }
  }

  /// The output transform of this kernel's tile, blocked.
  @inline(__always)
  func blockedOutputTransform(
    image: Int, rows: Range<Int>, at: Int, block: Int, a: UnsafeMutablePointer<Float>,
    m mm: UnsafeMutablePointer<Float>, p: Int
  ) {
    if m == 4 {
      blockedOutputTransform4(image: image, rows: rows, at: at, block: block, a: a, m: mm, p: p)
    } else {
      blockedOutputTransform2(image: image, rows: rows, at: at, block: block, a: a, m: mm, p: p)
    }
  }

  /// Floats from the start of `V` or `M` to tile `column` of tile row `row` of a chunk whose rows
  /// start at tile `at` of `p`, in channel block `block`.
  @inline(__always)
  func blockedTile(block: Int, p: Int, at: Int, row: Int, column: Int) -> Int {
    (block * p + at + row * tilesW + column) * 16
  }

  /// One image's output block `block`: its bias as a vector (zeros without one), where it starts,
  /// and where its residual starts, for `blockedPut`.
  @inline(__always)
  func blockedOutput(
    image: Int, block: Int, a: UnsafeMutablePointer<Float>
  ) -> (bias: V16, dst: UnsafeMutablePointer<Float>, residual: UnsafeMutablePointer<Float>?) {
    let b = bias.map { UnsafeRawPointer(a + $0 + block * 16).loadUnaligned(as: V16.self) } ?? V16(repeating: 0)
    let plane = (image * cout + block * 16) * oh * ow
    return (b, a + out + plane, epilogue.residual.map { a + $0 + plane })
  }

  /// One image's input block (at `src`) at pixel (`y`, `x`) as a vector of its 16 channels, zero
  /// outside the image (`inside`: the whole window is in it).
  @inline(__always)
  func blockedPixel(_ src: UnsafeMutablePointer<Float>, _ y: Int, _ x: Int, inside: Bool) -> V16 {
    guard inside || (y >= 0 && y < h && x >= 0 && x < w) else { return V16(repeating: 0) }
    return UnsafeRawPointer(src + (y * w + x) * 16).loadUnaligned(as: V16.self)
  }

  /// Stores output pixel (`y`, `x`) of one image's output block (at `dst`, its residual at
  /// `residual`) after the epilogue, unless it lies past the map (a tile's last rows and
  /// columns on a map that is no multiple of the tile).
  @inline(__always)
  func blockedPut(
    _ value: V16, _ y: Int, _ x: Int, dst: UnsafeMutablePointer<Float>, residual: UnsafeMutablePointer<Float>?
  ) {
    guard y < oh, x < ow else { return }
    let o = (y * ow + x) * 16
    var v = value
    if let residual { v = v + UnsafeRawPointer(residual + o).loadUnaligned(as: V16.self) }
    if epilogue.relu { v = v.replacing(with: 0, where: v .< 0) }
    UnsafeMutableRawPointer(dst + o).storeBytes(of: v, as: V16.self)
  }

  /// F(4×4, 3×3)'s `V[ξ, block, tile] = Bᵀ d B` for the 6×6 tiles of tile rows `rows` of one
  /// image's input block, as `blockedInputTransform2` does for 4×4 tiles (the sums of
  /// `inputTransform4`: `t = Bᵀ d` column by column, then `V = t B` row by row).
  @inline(__always)
  func blockedInputTransform4(
    image: Int, rows: Range<Int>, at: Int, block: Int, a: UnsafeMutablePointer<Float>,
    v: UnsafeMutablePointer<Float>, p: Int
  ) {
    let tw = tilesW, stride = vStride(p)
    let src = a + x + (image * cin + block * 16) * h * w
    for ty in rows {
      let y0 = 4 * ty - padding.0
      for tx in 0..<tw {
        let x0 = 4 * tx - padding.1
        let inside = y0 >= 0 && y0 + 6 <= h && x0 >= 0 && x0 + 6 <= w
        @inline(__always) func column(_ c: Int) -> (V16, V16, V16, V16, V16, V16) {
          @inline(__always) func d(_ r: Int) -> V16 { blockedPixel(src, y0 + r, x0 + c, inside: inside) }
          return Self.bt((d(0), d(1), d(2), d(3), d(4), d(5)))
        }
        let t0 = column(0), t1 = column(1), t2 = column(2), t3 = column(3), t4 = column(4), t5 = column(5)
        let dst = v + blockedTile(block: block, p: p, at: at, row: ty - rows.lowerBound, column: tx)
        @inline(__always) func store(_ i: Int, _ row: (V16, V16, V16, V16, V16, V16)) {
          let r = Self.bt(row), q = dst + 6 * i * stride
          UnsafeMutableRawPointer(q).storeBytes(of: r.0, as: V16.self)
          UnsafeMutableRawPointer(q + stride).storeBytes(of: r.1, as: V16.self)
          UnsafeMutableRawPointer(q + 2 * stride).storeBytes(of: r.2, as: V16.self)
          UnsafeMutableRawPointer(q + 3 * stride).storeBytes(of: r.3, as: V16.self)
          UnsafeMutableRawPointer(q + 4 * stride).storeBytes(of: r.4, as: V16.self)
          UnsafeMutableRawPointer(q + 5 * stride).storeBytes(of: r.5, as: V16.self)
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

  /// F(4×4, 3×3)'s `y = Aᵀ M A` + bias for the 6×6 tiles of tile rows `rows` of one image's
  /// output block, then the epilogue, as `blockedOutputTransform2` does for 4×4 tiles (the
  /// sums of `outputTransform4`).
  @inline(__always)
  func blockedOutputTransform4(
    image: Int, rows: Range<Int>, at: Int, block: Int, a: UnsafeMutablePointer<Float>,
    m: UnsafeMutablePointer<Float>, p: Int
  ) {
    let tw = tilesW, stride = mStride(p)
    let (b, dst, residual) = blockedOutput(image: image, block: block, a: a)
    for ty in rows {
      for tx in 0..<tw {
        let q = m + blockedTile(block: block, p: p, at: at, row: ty - rows.lowerBound, column: tx)
        @inline(__always) func mv(_ xi: Int) -> V16 { UnsafeRawPointer(q + xi * stride).loadUnaligned(as: V16.self) }
        // Column j of Aᵀ M (4×6): points j, 6 + j, …, 30 + j.
        @inline(__always) func column(_ j: Int) -> (V16, V16, V16, V16) {
          Self.at((mv(j), mv(6 + j), mv(12 + j), mv(18 + j), mv(24 + j), mv(30 + j)))
        }
        let s0 = column(0), s1 = column(1), s2 = column(2), s3 = column(3), s4 = column(4), s5 = column(5)
        let y0 = 4 * ty, x0 = 4 * tx
        // Output row r = row r of (Aᵀ M) times A.
        @inline(__always) func row(_ r: Int, _ s: (V16, V16, V16, V16, V16, V16)) {
          guard y0 + r < oh else { return }
          let y = Self.at(s)
          blockedPut(y.0 + b, y0 + r, x0, dst: dst, residual: residual)
          blockedPut(y.1 + b, y0 + r, x0 + 1, dst: dst, residual: residual)
          blockedPut(y.2 + b, y0 + r, x0 + 2, dst: dst, residual: residual)
          blockedPut(y.3 + b, y0 + r, x0 + 3, dst: dst, residual: residual)
        }
        row(0, (s0.0, s1.0, s2.0, s3.0, s4.0, s5.0))
        row(1, (s0.1, s1.1, s2.1, s3.1, s4.1, s5.1))
        row(2, (s0.2, s1.2, s2.2, s3.2, s4.2, s5.2))
        row(3, (s0.3, s1.3, s2.3, s3.3, s4.3, s5.3))
      }
    }
  }

  /// F(2×2, 3×3)'s `V[ξ, block, tile] = Bᵀ d B` for the tiles of tile rows `rows` of one image's input block
  /// (the first of them tile `at` of `V`'s `p`): the window's sixteen pixels loaded as vectors of
  /// the block's channels, zeros outside the image.
  @inline(__always)
  func blockedInputTransform2(
    image: Int, rows: Range<Int>, at: Int, block: Int, a: UnsafeMutablePointer<Float>,
    v: UnsafeMutablePointer<Float>, p: Int
  ) {
    let tw = tilesW, stride = vStride(p)
    let src = a + x + (image * cin + block * 16) * h * w
    for ty in rows {
      let y0 = 2 * ty - padding.0
      for tx in 0..<tw {
        let x0 = 2 * tx - padding.1
        let inside = y0 >= 0 && y0 + 4 <= h && x0 >= 0 && x0 + 4 <= w
        @inline(__always) func d(_ r: Int, _ c: Int) -> V16 { blockedPixel(src, y0 + r, x0 + c, inside: inside) }
        // t = Bᵀ d, row by row, each row's four columns: d0 − d2, d1 + d2, d2 − d1, d1 − d3.
        let r0 = (d(0, 0), d(0, 1), d(0, 2), d(0, 3)), r1 = (d(1, 0), d(1, 1), d(1, 2), d(1, 3))
        let r2 = (d(2, 0), d(2, 1), d(2, 2), d(2, 3)), r3 = (d(3, 0), d(3, 1), d(3, 2), d(3, 3))
        let t0 = (r0.0 - r2.0, r0.1 - r2.1, r0.2 - r2.2, r0.3 - r2.3)
        let t1 = (r1.0 + r2.0, r1.1 + r2.1, r1.2 + r2.2, r1.3 + r2.3)
        let t2 = (r2.0 - r1.0, r2.1 - r1.1, r2.2 - r1.2, r2.3 - r1.3)
        let t3 = (r1.0 - r3.0, r1.1 - r3.1, r1.2 - r3.2, r1.3 - r3.3)
        let dst = v + blockedTile(block: block, p: p, at: at, row: ty - rows.lowerBound, column: tx)
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

  /// F(2×2, 3×3)'s `y = Aᵀ M A` + bias for the tiles of tile rows `rows` of one image's output block (the
  /// first of them tile `at` of `M`'s `p`), then the epilogue (the blocked residual added,
  /// ReLU), each output pixel's 16 channels one vector store.
  @inline(__always)
  func blockedOutputTransform2(
    image: Int, rows: Range<Int>, at: Int, block: Int, a: UnsafeMutablePointer<Float>,
    m: UnsafeMutablePointer<Float>, p: Int
  ) {
    let tw = tilesW, stride = mStride(p)
    let (b, dst, residual) = blockedOutput(image: image, block: block, a: a)
    for ty in rows {
      for tx in 0..<tw {
        let q = m + blockedTile(block: block, p: p, at: at, row: ty - rows.lowerBound, column: tx)
        @inline(__always) func mv(_ xi: Int) -> V16 { UnsafeRawPointer(q + xi * stride).loadUnaligned(as: V16.self) }
        let m0 = mv(0), m1 = mv(1), m2 = mv(2), m3 = mv(3), m4 = mv(4), m5 = mv(5), m6 = mv(6), m7 = mv(7)
        let m8 = mv(8), m9 = mv(9), m10 = mv(10), m11 = mv(11), m12 = mv(12), m13 = mv(13), m14 = mv(14), m15 = mv(15)
        let s00 = m0 + m4 + m8, s01 = m1 + m5 + m9, s02 = m2 + m6 + m10, s03 = m3 + m7 + m11
        let s10 = m4 - m8 - m12, s11 = m5 - m9 - m13, s12 = m6 - m10 - m14, s13 = m7 - m11 - m15
        let y0 = 2 * ty, x0 = 2 * tx
        @inline(__always) func put(_ value: V16, _ yy: Int, _ xx: Int) {
          blockedPut(value, yy, xx, dst: dst, residual: residual)
        }
        put(s00 + s01 + s02 + b, y0, x0)
        put(s01 - s02 - s03 + b, y0, x0 + 1)
        put(s10 + s11 + s12 + b, y0 + 1, x0)
        put(s11 - s12 - s13 + b, y0 + 1, x0 + 1)
      }
    }
  }
}
