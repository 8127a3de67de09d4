import CKernels

/// A convolution computed directly, without im2col columns or a GEMM library: per image, the
/// input is copied once into a zero-padded, phase-split form (`q`, below), then CKernels'
/// micro-kernels run blocks of 8 output channels over runs of consecutive outputs, the bias as
/// the sums' start and the epilogue (residual, ReLU) applied as the results are stored.
///
/// Layouts (one image; NCHW in and out, as every other kernel reads and writes them):
/// ```
/// x        [Cin, H, W]
/// q        [Cin, sy·sx, hq, wq]   q[c][fy·sx + fx][i][j] = x[c][i·sy + fy − py][j·sx + fx − px] (0 outside)
/// packed   [⌈Cout/8⌉, Cin, kh·kw, 8]   the weights, packed by `prepare` (zeros past Cout)
/// out      [Cout, OH, OW]
/// ```
/// with `hq = OH + ⌊(kh−1)·dy/sy⌋` and `wq = OW + ⌊(kw−1)·dx/sx⌋`. Output (oy, ox) is computed at
/// the flat index `p = oy·wq + ox`, and tap (ky, kx) reads phase plane `((ky·dy) mod sy, (kx·dx) mod
/// sx)` at `p + ⌊ky·dy/sy⌋·wq + ⌊kx·dx/sx⌋`: one offset per tap (`offsets`), so sixteen consecutive
/// outputs read sixteen consecutive floats whatever the stride, padding or dilation. The columns
/// `OW..<wq` of each row are computed too and dropped when stored.
///
/// Maps less than 16 outputs wide (`byChannels`: ResNet's layer3 and layer4) run another pair of
/// micro-kernels instead, with 16 output channels per vector and each output's inputs broadcast:
/// a 7×7 map is 49 outputs there, where runs of 16 flat outputs compute 64 (the weights are then
/// packed in blocks of 16 channels).
///
/// Each output's sum runs over input channels, then taps, in order, one fused multiply-add per
/// term, on the AVX-512 and the AVX2 kernel alike: both give the same bits (tests run both).
///
/// Work is shared over the cores as `Conv2d` shares it: several images, each core its own (with
/// its own `q`); one image, `q` packed by channels on every core and then the outputs split
/// by channel blocks where the weights outweigh the input (layer3 and layer4 of a ResNet), else
/// by runs of outputs (the stem, layer1).
struct DirectConv2d: Kernel {
  var label: String
  var n: Int, cin: Int, h: Int, w: Int, cout: Int, kh: Int, kw: Int
  var stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int)
  var oh: Int, ow: Int
  var x: Int
  /// The OIHW weights `prepare` packs (read nowhere else).
  var weight: WeightSource
  var bias: Int?, out: Int
  /// Offset of the packed weights (`persistentCount` floats).
  var packed: Int
  /// Offset of the packed inputs, one per part (`scratchCount` floats).
  var scratch: Int
  var epilogue: Epilogue
  var threads: Int

  /// Whether a convolution takes this kernel: ungrouped, on x86-64 (the micro-kernels are
  /// AVX-512 and AVX2 + FMA). 1×1 convolutions too: a GEMM through OpenBLAS repacked the weights
  /// on every call and wrote the bias and the epilogue in passes of their own over the output.
  static func applies(groups: Int, kh: Int, kw: Int) -> Bool {
    #if arch(x86_64)
    return groups == 1
    #else
    return false
    #endif
  }

  /// A 1×1 convolution without padding: every tap reads phase plane (0, 0), so only that plane
  /// is packed (`phases` 1), and at stride 1 the input itself is that plane.
  static func pointwise(kh: Int, kw: Int, padding: (Int, Int)) -> Bool { kh == 1 && kw == 1 && padding == (0, 0) }

  var pointwise: Bool { Self.pointwise(kh: kh, kw: kw, padding: padding) }

  /// Phase planes packed per input channel: `sy·sx`, or 1 where every tap reads phase (0, 0).
  static func phases(kh: Int, kw: Int, stride: (Int, Int), padding: (Int, Int)) -> Int {
    pointwise(kh: kh, kw: kw, padding: padding) ? 1 : stride.0 * stride.1
  }

  /// Output positions per image below which a pointwise convolution on the flat kernel would
  /// rather stay a GEMM (im2col and OpenBLAS): on ResNet-50's 7×7 maps at batch 1 OpenBLAS kept
  /// up with the flat kernel on one core and led it on two; from 14×14 up the flat kernel, its
  /// bias and epilogue in registers and the work split over the cores without OpenBLAS's
  /// threads, led or tied. (Narrow maps with a small input take the channel kernel instead.)
  static let minimumPointwiseOutputs = 128

  /// Input floats per image up to which a pointwise convolution of a map smaller than
  /// `minimumPointwiseOutputs` goes by channels: each step of three blocks reads seven or eight
  /// outputs' inputs across every input channel, which stays in L2 up to about this size
  /// (ResNet-50's 7×7 maps: 10–15% faster than OpenBLAS on one core). Larger maps stay flat: on
  /// ResNet-50's 14×14 maps the channel kernel was 7–45% slower than the flat kernel (our
  /// reading: its scattered stores and gathered residuals).
  static let pointwiseChannelInput = 1 << 17

  /// Whether the kernels read the input in place, unpacked: a pointwise convolution of stride 1
  /// on the channel kernels (which read no output past the map) or the AVX-512 flat kernel (whose
  /// loads are masked at the map's end; the AVX2 one reads past it, into the packed slack).
  func readsInPlace(wide: Bool) -> Bool { pointwise && stride == (1, 1) && (wide || byChannels) }

  /// Output channels per block of packed weights: 8 for runs of flat outputs, 16 by channels.
  static func block(byChannels: Bool) -> Int { byChannels ? 16 : Int(GLASSBOX_DIRECT_BLOCK) }

  /// Whether outputs go 16 channels to a vector: maps less than one 16-float vector wide, where
  /// flat runs would compute the dropped columns `ow..<wq` too; pointwise ones (which drop no
  /// columns) only on maps too small for the flat kernel and with a small input
  /// (`minimumPointwiseOutputs`, `pointwiseChannelInput`).
  static func byChannels(cin: Int, oh: Int, ow: Int, pointwise: Bool) -> Bool {
    ow < 16 && (!pointwise || (oh * ow < minimumPointwiseOutputs && cin * oh * ow <= pointwiseChannelInput))
  }

  var byChannels: Bool { Self.byChannels(cin: cin, oh: oh, ow: ow, pointwise: pointwise) }
  /// Floats the micro-kernels may read past the end of `q` (three 16-float vectors from the last
  /// run's start), kept zero.
  static let slack = 64

  static func rows(oh: Int, kh: Int, stride: Int, dilation: Int) -> Int { oh + (kh - 1) * dilation / stride }

  var hq: Int { Self.rows(oh: oh, kh: kh, stride: stride.0, dilation: dilation.0) }
  var wq: Int { Self.rows(oh: ow, kh: kw, stride: stride.1, dilation: dilation.1) }
  var blocks: Int { (cout + Self.block(byChannels: byChannels) - 1) / Self.block(byChannels: byChannels) }
  /// Flat outputs per image: `oh` rows of `wq`.
  var flat: Int { oh * wq }

  /// Floats of one image's packed input, slack included.
  static func packedInputCount(
    cin: Int, oh: Int, ow: Int, kh: Int, kw: Int, stride: (Int, Int),
    padding: (Int, Int), dilation: (Int, Int)
  ) -> Int {
    return cin * phases(kh: kh, kw: kw, stride: stride, padding: padding)
      * rows(oh: oh, kh: kh, stride: stride.0, dilation: dilation.0)
      * rows(oh: ow, kh: kw, stride: stride.1, dilation: dilation.1) + slack
  }

  var packedInputCount: Int {
    Self.packedInputCount(
      cin: cin, oh: oh, ow: ow, kh: kh, kw: kw, stride: stride, padding: padding, dilation: dilation)
  }

  static func persistentCount(
    cin: Int, cout: Int, kh: Int, kw: Int, padding: (Int, Int), oh: Int, ow: Int
  ) -> Int {
    let pointwise = pointwise(kh: kh, kw: kw, padding: padding)
    let block = block(byChannels: byChannels(cin: cin, oh: oh, ow: ow, pointwise: pointwise))
    return (cout + block - 1) / block * block * cin * kh * kw
  }

  /// Scratch floats: one packed input per part (`Conv2d.parts`).
  static func scratchCount(
    n: Int, cin: Int, oh: Int, ow: Int, kh: Int, kw: Int, stride: (Int, Int),
    padding: (Int, Int), dilation: (Int, Int), threads: Int
  ) -> Int {
    Conv2d.parts(images: n, threads: threads)
      * packedInputCount(
        cin: cin, oh: oh, ow: ow, kh: kh, kw: kw, stride: stride, padding: padding, dilation: dilation)
  }

  /// The GEMM this convolution is as im2col would run it, so profiles rate it on the same work.
  var gemms: [GEMMShape] { [GEMMShape(m: cout, n: n * oh * ow, k: cin * kh * kw, transB: false, count: 1)] }

  /// The micro-kernels' multiply-adds, AVX-512's: whole blocks of channels over whole vectors of
  /// flat outputs (16 lanes), or over steps of 7 or 8 outputs by channels.
  var executedFlops: Double {
    let block = Self.block(byChannels: byChannels), step = Int(glassbox_conv_channels_step(Int32(oh * ow)))
    let outputs = byChannels ? (oh * ow + step - 1) / step * step : (flat + 15) / 16 * 16
    return 2 * Double(n) * Double(blocks * block) * Double(cin * kh * kw) * Double(outputs)
  }

  /// Where each tap reads in a channel of `q`, relative to the flat output.
  var offsets: [Int] {
    let plane = hq * wq
    return (0..<kh).flatMap { ky in
      (0..<kw).map { kx in
        let dy = ky * dilation.0, dx = kx * dilation.1
        return ((dy % stride.0) * stride.1 + dx % stride.1) * plane + dy / stride.0 * wq + dx / stride.1
      }
    }
  }

  func prepare(_ a: UnsafeMutablePointer<Float>, callers: CallerParameters) {
    let w = weight.pointer(a, callers)
    if byChannels {
      glassbox_conv_channels_pack_weights(w, Int32(cout), Int32(cin), Int32(kh * kw), a + packed)
    } else {
      glassbox_conv_direct_pack_weights(w, Int32(cout), Int32(cin), Int32(kh * kw), a + packed)
    }
  }

  /// The C kernels' description of the convolution; its pointers live while `body` runs.
  func withDescription<T>(
    _ a: UnsafeMutablePointer<Float>, wide: Bool = AVX512.enabled,
    _ body: (UnsafePointer<glassbox_conv_direct>) -> T
  ) -> T {
    offsets.withUnsafeBufferPointer { offsets in
      var c = glassbox_conv_direct(
        cin: Int32(cin), h: Int32(h), w: Int32(w), cout: Int32(cout), oh: Int32(oh),
        ow: Int32(ow), sy: Int32(stride.0), sx: Int32(stride.1), py: Int32(padding.0),
        px: Int32(padding.1), hq: Int32(hq), wq: Int32(wq), taps: Int32(kh * kw),
        offsets: offsets.baseAddress, bias: bias.map { UnsafePointer(a + $0) },
        relu: epilogue.relu ? 1 : 0, phases: Int32(Self.phases(kh: kh, kw: kw, stride: stride, padding: padding)),
        masked: readsInPlace(wide: wide) && !byChannels ? 1 : 0)
      return body(&c)
    }
  }

  func run(_ a: UnsafeMutablePointer<Float>) {
    let kernel = self
    let each = packedInputCount
    forEachImagePart(images: n, threads: threads, a, scratch: scratch, partScratch: { _ in each }) {
      a, _, images, offset, threads in
      kernel.withDescription(a) { c in
        for image in images { kernel.run(a, c, image: image, q: a + offset, threads: threads) }
      }
    }
  }

  /// One image on `threads` cores: its input packed into `q`, then its outputs.
  func run(
    _ a: UnsafeMutablePointer<Float>, _ c: UnsafePointer<glassbox_conv_direct>, image: Int,
    q: UnsafeMutablePointer<Float>, threads: Int, wide: Bool = AVX512.enabled
  ) {
    let input = a + x + image * cin * h * w
    let qCount = packedInputCount
    let inPlace = readsInPlace(wide: wide)
    let q = inPlace ? input : q
    if !inPlace {
      (q + qCount - Self.slack).update(repeating: 0, count: Self.slack)
      // Packing is a copy: worth a second core from a few hundred kilobytes.
      splitOverCores(a, count: cin, threads: threads, worthIt: qCount >= 1 << 16) { _, range in
        glassbox_conv_direct_pack(c, input, q, Int32(range.lowerBound), Int32(range.upperBound))
      }
    }
    let plane = image * cout * oh * ow
    let output = a + out + plane, residual = epilogue.residual.map { UnsafePointer(a + $0 + plane) }
    let weights = UnsafePointer(a + packed), blocks = self.blocks, byChannels = self.byChannels
    // The outputs a kernel call takes: flat indices, or output indices by channels.
    let outputs = byChannels ? oh * ow : flat
    func compute(blocks b: Range<Int>, outputs o: Range<Int>) {
      let (b0, b1, o0, o1) = (Int32(b.lowerBound), Int32(b.upperBound), Int32(o.lowerBound), Int32(o.upperBound))
      switch (byChannels, wide) {
      case (true, true): glassbox_conv_channels_avx512(c, q, weights, output, residual, b0, b1, o0, o1)
      case (true, false): glassbox_conv_channels_avx2(c, q, weights, output, residual, b0, b1, o0, o1)
      case (false, true): glassbox_conv_direct_avx512(c, q, weights, output, residual, b0, b1, o0, o1)
      case (false, false): glassbox_conv_direct_avx2(c, q, weights, output, residual, b0, b1, o0, o1)
      }
    }
    let work = cout * cin * kh * kw * oh * ow
    guard threads > 1, work >= BLAS.parallelWork else { return compute(blocks: 0..<blocks, outputs: 0..<outputs) }
    // The weights of a block are read once per run of outputs, the input once per block. Parts
    // of whole blocks, or of whole steps of outputs (48 flat outputs, or the channel kernel's 7
    // or 8), so that the cores split the work as one core steps through it.
    let outputStep = byChannels ? Int(glassbox_conv_channels_step(Int32(oh * ow))) : 48
    let outputSteps = (outputs + outputStep - 1) / outputStep
    let byBlocks = blocks >= 2 * threads && cout * cin * kh * kw > qCount
    let parts = Swift.min(threads, byBlocks ? blocks : outputSteps)
    parallelFor(parts) { part in
      if byBlocks {
        let lo = blocks * part / parts, hi = blocks * (part + 1) / parts
        compute(blocks: lo..<hi, outputs: 0..<outputs)
      } else {
        let lo = outputSteps * part / parts * outputStep
        let hi = Swift.min(outputs, outputSteps * (part + 1) / parts * outputStep)
        compute(blocks: 0..<blocks, outputs: lo..<hi)
      }
    }
  }
}
