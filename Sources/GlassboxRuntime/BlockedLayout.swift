import CKernels

/// Kernels over the channel-blocked layout (NCHW16c) the `choose-layouts` pass gives values:
/// an image of `C` channels is `[C/16, H, W, 16]`, each pixel's 16 channels of a block adjacent,
/// so a vector holds one pixel's block and a convolution broadcasts inputs against packed
/// weight vectors with no im2col columns and no per-call packing of its input
/// (`CKernels/conv_blocked.c`).

/// A convolution whose result is blocked, from a blocked input or (`plainInput`) an NCHW one
/// of any channel count (a network's stem): the weights packed once into output blocks of 16
/// (`prepare`), the bias as the sums' start and the epilogue (residual, ReLU) as they are stored.
///
/// Work is shared over the cores by images, then by output blocks and rows of one image: each
/// core's part is a range of output blocks times a range of output rows.
struct BlockedConv2d: Kernel {
  var label: String
  var n: Int, cin: Int, h: Int, w: Int, cout: Int, kh: Int, kw: Int
  var stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int)
  var oh: Int, ow: Int
  var plainInput: Bool
  var x: Int
  /// The OIHW weights `prepare` packs (read nowhere else).
  var weight: WeightSource
  var bias: Int?, out: Int
  /// Offset of the packed weights (`persistentCount` floats).
  var packed: Int
  var epilogue: Epilogue
  var threads: Int

  static func persistentCount(cin: Int, cout: Int, kh: Int, kw: Int) -> Int {
    glassbox_conv_blocked_packed_count(Int32(cout), Int32(cin), Int32(kh), Int32(kw))
  }

  var blocks: Int { cout / 16 }

  var gemms: [GEMMShape] { [GEMMShape(m: cout, n: n * oh * ow, k: cin * kh * kw, transB: false, count: 1)] }

  func prepare(_ a: UnsafeMutablePointer<Float>, callers: CallerParameters) {
    glassbox_conv_blocked_pack_weights(
      weight.pointer(a, callers), Int32(cout), Int32(cin), Int32(kh), Int32(kw), a + packed)
  }

  /// The C kernels' description; `bias` points into the arena while `body` runs.
  func withDescription<T>(_ a: UnsafeMutablePointer<Float>, _ body: (UnsafePointer<glassbox_conv_blocked>) -> T) -> T {
    var c = glassbox_conv_blocked(
      cin: Int32(cin), h: Int32(h), w: Int32(w), cout: Int32(cout), oh: Int32(oh), ow: Int32(ow),
      kh: Int32(kh), kw: Int32(kw), sy: Int32(stride.0), sx: Int32(stride.1), py: Int32(padding.0),
      px: Int32(padding.1), dy: Int32(dilation.0), dx: Int32(dilation.1), plainInput: plainInput ? 1 : 0,
      bias: bias.map { UnsafePointer(a + $0) }, relu: epilogue.relu ? 1 : 0)
    return body(&c)
  }

  func run(_ a: UnsafeMutablePointer<Float>) {
    // A blocked input has 16·k channels: either layout is cin·h·w floats per image.
    let inputCount = cin * h * w, outputCount = cout * oh * ow
    let blocks = self.blocks, oh = self.oh, wide = AVX512.enabled
    let work = cout * cin * kh * kw * oh * ow
    withDescription(a) { c in
      let weights = UnsafePointer(a + packed)
      func compute(image: Int, blocks b: Range<Int>, rows r: Range<Int>) {
        let input = UnsafePointer(a + x + image * inputCount), output = a + out + image * outputCount
        let residual = epilogue.residual.map { UnsafePointer(a + $0 + image * outputCount) }
        let (b0, b1, r0, r1) = (Int32(b.lowerBound), Int32(b.upperBound), Int32(r.lowerBound), Int32(r.upperBound))
        if wide {
          glassbox_conv_blocked_avx512(c, input, weights, output, residual, b0, b1, r0, r1)
        } else {
          glassbox_conv_blocked_avx2(c, input, weights, output, residual, b0, b1, r0, r1)
        }
      }
      guard threads > 1, n * work >= BLAS.parallelWork else {
        for image in 0..<n { compute(image: image, blocks: 0..<blocks, rows: 0..<oh) }
        return
      }
      // Images first; one image's parts by output blocks where the weights outweigh the input
      // (each core then reads only its blocks' weights), else by rows.
      if n >= threads {
        parallelFor(threads) { part in
          for image in (n * part / threads)..<(n * (part + 1) / threads) {
            compute(image: image, blocks: 0..<blocks, rows: 0..<oh)
          }
        }
        return
      }
      let byBlocks = blocks >= 2 * threads && cout * cin * kh * kw > inputCount
      let parts = Swift.min(threads, byBlocks ? blocks : oh)
      parallelFor(parts) { part in
        for image in 0..<n {
          if byBlocks {
            compute(image: image, blocks: (blocks * part / parts)..<(blocks * (part + 1) / parts), rows: 0..<oh)
          } else {
            compute(image: image, blocks: 0..<blocks, rows: (oh * part / parts)..<(oh * (part + 1) / parts))
          }
        }
      }
    }
  }
}

/// `to_blocked` or `from_blocked`: `[N, C, plane]` to `[N, C/16, plane, 16]` or back, the
/// blocks split over the cores.
struct Reorder: Kernel {
  var label: String
  var toBlocked: Bool
  var n: Int, channels: Int, plane: Int
  var x: Int, out: Int
  var threads: Int

  func run(_ a: UnsafeMutablePointer<Float>) {
    let blocks = channels / 16, image = channels * plane, toBlocked = self.toBlocked
    let (channels, plane, x, out) = (self.channels, self.plane, self.x, self.out)
    splitOverCores(a, count: n * blocks, threads: threads, worthIt: n * image >= 1 << 16) { a, range in
      for image in range.lowerBound / blocks...(range.upperBound - 1) / blocks {
        let lo = Swift.max(range.lowerBound - image * blocks, 0),
          hi = Swift.min(range.upperBound - image * blocks, blocks)
        let src = a + x + image * channels * plane, dst = a + out + image * channels * plane
        if toBlocked {
          glassbox_to_blocked(src, dst, Int32(channels), plane, Int32(lo), Int32(hi))
        } else {
          glassbox_from_blocked(src, dst, Int32(channels), plane, Int32(lo), Int32(hi))
        }
      }
    }
  }
}

/// Max pooling of a blocked `[N, C/16, H, W, 16]` (−∞ padding, a NaN winning as in PyTorch),
/// shared over the cores as a blocked convolution shares its output: by images, else by output
/// rows of every block. The convolution before it (a network's stem) split its rows the same way,
/// so each core pools what it has just written, from its own cache (split by blocks, half of
/// each core's reads came from the other core's).
struct BlockedMaxPool: Kernel {
  var label: String
  var n: Int, blocks: Int, h: Int, w: Int, oh: Int, ow: Int
  var kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int)
  var x: Int, out: Int
  var threads: Int

  func run(_ a: UnsafeMutablePointer<Float>) {
    let p = self, pool = AVX512.enabled ? glassbox_max_pool_blocked_avx512 : glassbox_max_pool_blocked
    func compute(blocks b: Range<Int>, rows r: Range<Int>) {
      pool(
        a + p.x, a + p.out, Int32(p.h), Int32(p.w), Int32(p.oh), Int32(p.ow), Int32(p.kernel.0), Int32(p.kernel.1),
        Int32(p.stride.0), Int32(p.stride.1), Int32(p.padding.0), Int32(p.padding.1), Int32(p.dilation.0),
        Int32(p.dilation.1), Int32(b.lowerBound), Int32(b.upperBound), Int32(r.lowerBound), Int32(r.upperBound))
    }
    let all = n * blocks
    guard threads > 1, all * oh * ow * 16 >= 1 << 14 else { return compute(blocks: 0..<all, rows: 0..<oh) }
    if n >= threads {
      parallelFor(threads) { part in
        compute(blocks: (n * part / threads * blocks)..<(n * (part + 1) / threads * blocks), rows: 0..<oh)
      }
      return
    }
    let parts = Swift.min(threads, oh)
    parallelFor(parts) { part in compute(blocks: 0..<all, rows: (oh * part / parts)..<(oh * (part + 1) / parts)) }
  }
}

/// A blocked convolution and the max pooling of its result in one kernel (a network's stem):
/// each core takes pooled rows, computing the convolution's rows as their windows need them into
/// a ring of a few rows (its scratch) and pooling them from there, so the convolution's result
/// never goes out to memory (`glassbox_conv_max_pool_blocked_*`; the same bits as the two
/// kernels it replaces). Shared over the cores as `BlockedMaxPool` is: by images, else by pooled
/// rows (the convolution's rows on either side of a boundary computed by both cores).
/// `Lowering.pooledConvolution` says where it applies.
struct BlockedConvMaxPool: Kernel {
  var label: String
  /// The convolution, its `out` unused.
  var convolution: BlockedConv2d
  var pool: glassbox_max_pool
  var out: Int
  /// Offset of the rings, one per part.
  var scratch: Int

  var gemms: [GEMMShape] { convolution.gemms }

  static func ringCount(cout: Int, convolutionWidth: Int, poolKernelHeight: Int) -> Int {
    MemoryPlan.round(poolKernelHeight * cout * convolutionWidth)
  }

  /// Rings for `threads` parts.
  static func scratchCount(cout: Int, convolutionWidth: Int, poolKernelHeight: Int, threads: Int) -> Int {
    Swift.max(threads, 1)
      * ringCount(cout: cout, convolutionWidth: convolutionWidth, poolKernelHeight: poolKernelHeight)
  }

  func prepare(_ a: UnsafeMutablePointer<Float>, callers: CallerParameters) { convolution.prepare(a, callers: callers) }

  func run(_ a: UnsafeMutablePointer<Float>) {
    let conv = convolution, n = conv.n, threads = conv.threads, oh = Int(pool.oh)
    let ring = Self.ringCount(cout: conv.cout, convolutionWidth: conv.ow, poolKernelHeight: Int(pool.kh))
    let inputCount = conv.cin * conv.h * conv.w, outputCount = conv.cout * oh * Int(pool.ow)
    let wide = AVX512.enabled
    conv.withDescription(a) { c in
      withUnsafePointer(to: pool) { p in
        let weights = UnsafePointer(a + conv.packed)
        func compute(part: Int, image: Int, rows r: Range<Int>) {
          let input = UnsafePointer(a + conv.x + image * inputCount), output = a + out + image * outputCount
          let rows = a + scratch + part * ring, (r0, r1) = (Int32(r.lowerBound), Int32(r.upperBound))
          if wide {
            glassbox_conv_max_pool_blocked_avx512(c, p, input, weights, output, rows, r0, r1)
          } else {
            glassbox_conv_max_pool_blocked_avx2(c, p, input, weights, output, rows, r0, r1)
          }
        }
        let work = conv.cout * conv.cin * conv.kh * conv.kw * conv.oh * conv.ow
        guard threads > 1, n * work >= BLAS.parallelWork else {
          for image in 0..<n { compute(part: 0, image: image, rows: 0..<oh) }
          return
        }
        if n >= threads {
          parallelFor(threads) { part in
            for image in (n * part / threads)..<(n * (part + 1) / threads) {
              compute(part: part, image: image, rows: 0..<oh)
            }
          }
          return
        }
        let parts = Swift.min(threads, oh)
        parallelFor(parts) { part in
          for image in 0..<n {
            compute(part: part, image: image, rows: (oh * part / parts)..<(oh * (part + 1) / parts))
          }
        }
      }
    }
  }
}
