import CPrefetch
import Foundation

/// A 3×3, stride-1, undilated, ungrouped convolution by Winograd's minimal filtering
/// F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
/// each 2×2 block of outputs costs 16 multiplications per input channel instead of 36, and
/// the multiplications of all blocks are 16 GEMMs. Maps of 24 outputs a side and more take
/// F(4×4, 3×3) instead (`m`, `tileSize`; its transforms in WinogradF4.swift): 6×6 tiles, 36
/// GEMMs, 2.25 multiplications per output and channel instead of 4.
///
/// - `prepare` (whenever parameters are set: once for inference, before every step in
///   training) transforms the weights: `U[ξ, k, c] = (G g[k, c] Gᵀ)[ξ]`, kept in the static
///   region. The same kernel runs the input gradient of such a convolution (`flipped`).
/// - Input transform: every 4×4 input tile `d` (zero padded) of every channel becomes
///   `V[ξ, c, p] = (Bᵀ d B)[ξ]`, tiles `p` of all images side by side.
/// - 16 GEMMs: `M[ξ] = U[ξ] · V[ξ]` (`[Cout, Cin] × [Cin, P]`).
/// - Output transform: `y = Aᵀ M A` per tile, plus bias, then the epilogue.
///
/// Two ways to share the work over `threads` cores (`plan`). When the tiles outweigh the
/// weights (ResNet's layer1–3 over 16 frames), each core takes its own images, a block of them
/// at a time, through all three steps: its `V` and `M` stay in cache between the steps. When
/// the weights outweigh the tiles (layer4: 4×4 maps, 512 channels), each core reading all of
/// `U` would double the traffic: then the transforms are split in runs of planes and the
/// GEMMs by ξ.
struct WinogradConv3x3: Kernel {
  var label: String
  var n: Int, cin: Int, h: Int, w: Int, cout: Int
  var padding: (Int, Int)
  var oh: Int, ow: Int
  var x: Int
  /// The OIHW weights `prepare` transforms (read nowhere else).
  var weight: WeightSource
  var bias: Int?, out: Int
  /// Offset of the transformed weights (`16·Cout·Cin` floats, persistent).
  var transformed: Int
  /// Offset of `V` then `M` (`scratchCount` floats).
  var scratch: Int
  var epilogue: Epilogue
  var threads: Int
  /// Whether `weight` holds the forward convolution whose input gradient this is
  /// (`[Cin, Cout, 3, 3]` in this kernel's terms): each filter is then `weight[c, k]` rotated
  /// by 180°, transformed here (`own`) or read from the forward's transform (`forward`).
  var flipped: Flipped? = nil
  /// Whether the input, the output and its residual are channel-blocked (`[C/16, H, W, 16]` per
  /// image, `choose-layouts`): the blocked transforms run (`runBlocked`).
  var blocked = false
  /// Outputs per tile side: 2 for F(2×2, 3×3) (4×4 tiles, 16 GEMMs), 4 for F(4×4, 3×3) (6×6
  /// tiles, 36 GEMMs: 2.25 multiplications per output and channel instead of 4, and `V` and `M`
  /// that much smaller; `tileSize` chooses).
  var m = 2

  enum Flipped: Sendable {
    case own
    /// Rotating a filter by 180° reverses its taps, and `G·rev(g)` is `G·g` with entries 0
    /// and 3 swapped, so `U'[ξ] = U_forward[σξ]ᵀ` with σ swapping rows 0, 3 and columns 0, 3:
    /// the GEMMs read the forward's `U` transposed, and nothing is transformed twice.
    case forward
  }

  /// `σξ`: the 4×4 entry (i, j) ↦ (σ(i), σ(j)), σ = (3, 1, 2, 0).
  static let rotated: [Int] = (0..<16).map { xi in
    let sigma = [3, 1, 2, 0]
    return 4 * sigma[xi / 4] + sigma[xi % 4]
  }

  /// Whether a convolution of these attributes takes this kernel: 3×3, stride 1, dilation 1,
  /// one group, padding at most 2, and enough channels for the GEMMs to pay off: each of the
  /// 16 GEMMs has depth Cin. From 64 input channels (ResNet's layer1) it is faster than im2col
  /// and one GEMM (`bench --profile` compares them); fewer channels keep im2col, untried.
  static func applies(
    kh: Int, kw: Int, stride: [Int], dilation: [Int], padding: [Int], groups: Int,
    cin: Int, cout: Int
  ) -> Bool {
    kh == 3 && kw == 3 && stride == [1, 1] && dilation == [1, 1] && groups == 1
      && padding.allSatisfy { $0 >= 0 && $0 <= 2 } && cin >= 64 && cout >= 16
  }

  /// Tiles (of all images) below which a convolution this kernel takes runs directly
  /// (`DirectConv2d`, `Lowering.direct`): each GEMM is then at most 31 columns wide, and a 7×7 map
  /// (ResNet's layer4 on one 224×224 image) is 16 tiles of 8×8 outputs, a third of them past the map.
  static let minimumTiles = 32

  /// Whether `n` images of `oh`×`ow` outputs are fewer than `minimumTiles` tiles.
  static func fewTiles(n: Int, oh: Int, ow: Int) -> Bool { n * ((oh + 1) / 2) * ((ow + 1) / 2) < minimumTiles }

  var tilesH: Int { (oh + m - 1) / m }
  var tilesW: Int { (ow + m - 1) / m }
  var tiles: Int { n * tilesH * tilesW }
  /// The transform points per tile, `(m + 2)²`: the GEMMs' count.
  var points: Int { (m + 2) * (m + 2) }

  /// Tiles of one image of `oh`×`ow` outputs.
  static func tilesPerImage(oh: Int, ow: Int, m: Int) -> Int { ((oh + m - 1) / m) * ((ow + m - 1) / m) }

  /// The tile for a convolution of `oh`×`ow` outputs: F(4×4, 3×3) on maps of at least
  /// `largeTileSide` outputs a side (`largeBlockedTileSide` blocked).
  static func tileSize(oh: Int, ow: Int, blocked: Bool) -> Int {
    Swift.min(oh, ow) >= (blocked ? largeBlockedTileSide : largeTileSide) ? 4 : 2
  }

  /// The smallest map side that takes F(4×4, 3×3). Its GEMMs make 36 multiplications per 4×4
  /// outputs where F(2×2, 3×3)'s make 64, but its transforms cost more per output, a map that is
  /// not a multiple of four wastes more of its tiles, and a small map's GEMMs are narrow: on
  /// ResNet-18's training step it was the faster on 28×28 maps and not on 14×14 and smaller
  /// (figures in the commit that set it).
  static let largeTileSide = 24

  /// `largeTileSide` for blocked convolutions (whose transforms load and store a tile's 16
  /// channels as vectors): on ResNet-18 at batch 1 it was the faster on 56×56 and 28×28 maps,
  /// not on 14×14.
  static let largeBlockedTileSide = 24

  /// Images split over `parts` cores, each taking `block` images at a time (the fewest whole
  /// images that make 256 tiles, so the GEMMs stay wide, or all of a core's images); nil to
  /// share every step over the cores instead. One core takes several images a block at a time
  /// too: `V` and `M` of all the tiles at once (ResNet-18's layer1 on 32 images: 200 MB) would
  /// go through memory between the steps, a block's stay in L2.
  static func plan(n: Int, cin: Int, cout: Int, oh: Int, ow: Int, threads: Int, m: Int) -> (parts: Int, block: Int)? {
    let perImage = tilesPerImage(oh: oh, ow: ow, m: m)
    let parts = Conv2d.parts(images: n, threads: threads)
    guard parts > 1 || threads == 1 && n > 1, n * perImage * (cin + cout) > cin * cout else { return nil }
    return (parts, Swift.min((n + parts - 1) / parts, (256 + perImage - 1) / perImage))
  }

  /// Scratch floats: `V` and `M` (of all tiles, or of one block per part), plus one
  /// zero-padded channel per thread; for a `blocked` kernel `V` and `M` of all tiles, or of one
  /// chunk per part (`blockedChunks`).
  static func scratchCount(
    n: Int, cin: Int, cout: Int, oh: Int, ow: Int, threads: Int, m: Int, blocked: Bool = false
  ) -> Int {
    let perImage = tilesPerImage(oh: oh, ow: ow, m: m)
    if blocked {
      guard let plan = blockedChunks(n: n, cin: cin, cout: cout, oh: oh, ow: ow, threads: threads, m: m) else {
        return transformedCount(cin: cin, cout: cout, tiles: n * perImage, m: m)
      }
      return plan.parts * transformedCount(cin: cin, cout: cout, tiles: plan.rows * ((ow + m - 1) / m), m: m)
    }
    if let plan = plan(n: n, cin: cin, cout: cout, oh: oh, ow: ow, threads: threads, m: m) {
      return plan.parts
        * (transformedCount(cin: cin, cout: cout, tiles: plan.block * perImage, m: m)
          + paddedPlane(oh: oh, ow: ow, m: m))
    }
    return transformedCount(cin: cin, cout: cout, tiles: n * perImage, m: m)
      + Swift.max(threads, 1) * paddedPlane(oh: oh, ow: ow, m: m)
  }

  /// Floats past the tiles of each ξ's `V[ξ]` and `M[ξ]`. The transforms work eight tiles at
  /// a time and store all eight lanes even where fewer are tiles (a row of 7 or 4 tiles): the
  /// extra lanes land on tiles that a later step writes, or here. Sixteen, not eight: a
  /// blocked kernel's `V[ξ]` and `M[ξ]` (a multiple of 16 floats each) then all start on a
  /// cache line, as the scratch does, and no vector its GEMM reads straddles two lines.
  static let overhang = 16

  /// Floats of `V` and `M` for `tiles` tiles, each ξ's matrix followed by its overhang.
  static func transformedCount(cin: Int, cout: Int, tiles: Int, m: Int) -> Int {
    (m + 2) * (m + 2) * (cin * tiles + cout * tiles + 2 * overhang)
  }

  /// Distance between `V[ξ]` and `V[ξ+1]` for `p` tiles.
  func vStride(_ p: Int) -> Int { cin * p + Self.overhang }

  /// Distance between `M[ξ]` and `M[ξ+1]` for `p` tiles.
  func mStride(_ p: Int) -> Int { cout * p + Self.overhang }

  /// Floats of one zero-padded input plane: every tile's window lies inside it (for 6×6 tiles,
  /// rows split by phase: `copyRowsByPhase`). Rounded to a cache line, so that each part's
  /// scratch after it starts on one.
  static func paddedPlane(oh: Int, ow: Int, m: Int) -> Int {
    if m == 4 { return MemoryPlan.round(((oh + 3) / 4 * 4 + 2) * 4 * phaseLength(tilesW: (ow + 3) / 4) + slack) }
    return MemoryPlan.round(((oh + 1) / 2 * 2 + 2) * ((ow + 1) / 2 * 2 + 2) + slack)
  }

  /// The GEMM this convolution is as im2col would run it (`[Cout, Cin·9] × [Cin·9, N·OH·OW]`),
  /// so profiles compare the Winograd kernel with what it replaces.
  var gemms: [GEMMShape] { [GEMMShape(m: cout, n: n * oh * ow, k: cin * 9, transB: false, count: 1)] }

  static func persistentCount(cin: Int, cout: Int, m: Int) -> Int { (m + 2) * (m + 2) * cin * cout }

  /// The GEMMs' operations (the transforms' additions left out).
  var executedFlops: Double { 2 * Double(points) * Double(cout) * Double(cin) * Double(tiles) }

  /// `U = G g Gᵀ` for every filter, eight input channels at a time (their 3×3 taps gathered
  /// into vectors, so the sixteen stores of `U[ξ, k, c…c+7]` are whole vectors), output
  /// channels split over the cores: in training this runs before every step, for every
  /// convolution and input gradient. A blocked kernel then packs each `U[ξ]` as its GEMM reads
  /// it (`packBlocked`).
  func prepare(_ a: UnsafeMutablePointer<Float>, callers: CallerParameters) {
    if flipped == .forward { return }
    if m == 4 { prepare4(a, callers: callers) } else { prepare2(a, callers: callers) }
    if blocked { packBlocked(a) }
  }

  /// `prepare`'s F(2×2, 3×3) transform.
  private func prepare2(_ a: UnsafeMutablePointer<Float>, callers: CallerParameters) {
    let kernel = self, plane = cout * cin, g = weight.pointer(a, callers)
    splitOverCores(a, count: cout, threads: threads, worthIt: plane * 16 >= 1 << 16) { a, range in
      let u = a + kernel.transformed
      typealias V8 = SIMD8<Float>
      for k in range {
        // A constant per step, as the transforms' tile loops.
        for c in Swift.stride(from: 0, to: kernel.cin, by: 8) {
          let lanes = Swift.min(8, kernel.cin - c)
          func tap(_ i: Int) -> V8 { kernel.tap(i, of: g, k: k, c: c, lanes: lanes) }
          // Rows of t = G·g (4×3), then U = t·Gᵀ (4×4), one vector per entry.
          func store(_ i: Int, _ t0: V8, _ t1: V8, _ t2: V8) {
            let q = u + 4 * i * plane + k * kernel.cin + c
            store8(t0, q, count: lanes)
            store8(0.5 * (t0 + t1 + t2), q + plane, count: lanes)
            store8(0.5 * (t0 - t1 + t2), q + 2 * plane, count: lanes)
            store8(t2, q + 3 * plane, count: lanes)
          }
          let g0 = (tap(0), tap(1), tap(2)), g1 = (tap(3), tap(4), tap(5)), g2 = (tap(6), tap(7), tap(8))
          store(0, g0.0, g0.1, g0.2)
          store(1, 0.5 * (g0.0 + g1.0 + g2.0), 0.5 * (g0.1 + g1.1 + g2.1), 0.5 * (g0.2 + g1.2 + g2.2))
          store(2, 0.5 * (g0.0 - g1.0 + g2.0), 0.5 * (g0.1 - g1.1 + g2.1), 0.5 * (g0.2 - g1.2 + g2.2))
          store(3, g2.0, g2.1, g2.2)
        }
      }
    }
  }

  /// Tap `i` of filters (k, c…c+lanes−1) as one vector, its other lanes zero; filter (k, c) of
  /// an input gradient (`flipped`) is the forward filter (c, k) rotated by 180°.
  @inline(__always)
  func tap(_ i: Int, of g: UnsafePointer<Float>, k: Int, c: Int, lanes: Int) -> SIMD8<Float> {
    var v = SIMD8<Float>()
    for l in 0..<lanes {
      v[l] = flipped == .own ? g[((c + l) * cout + k) * 9 + 8 - i] : g[(k * cin + c + l) * 9 + i]
    }
    return v
  }

  func run(_ a: UnsafeMutablePointer<Float>) {
    if blocked { return runBlocked(a) }
    if let plan = Self.plan(n: n, cin: cin, cout: cout, oh: oh, ow: ow, threads: threads, m: m) {
      return run(a, block: plan.block)
    }
    let p = tiles
    let parts = Swift.max(1, Swift.min(threads, 8))

    // Input transform: each thread a run of planes in `V`'s order (channel, then image), with
    // its own padded plane; no store reaches past the run's last tile (the next is another's).
    let planes = n * cin
    let base = UnsafeSendable(a)
    let kernel = self
    forEachPart(parts) { part in
      let a = base.pointer
      let v = a + kernel.scratch
      let padded =
        v + Self.transformedCount(cin: kernel.cin, cout: kernel.cout, tiles: p, m: kernel.m)
        + part * Self.paddedPlane(oh: kernel.oh, ow: kernel.ow, m: kernel.m)
      kernel.clearPadded(padded)
      kernel.forEachPlane(of: planes, part: part, parts: parts) { q, limit in
        if q + Self.prefetchDistance < planes { kernel.prefetchPlane(a, q + Self.prefetchDistance) }
        kernel.anyInputTransform(
          image: q % kernel.n, local: q % kernel.n, c: q / kernel.n, a: a, padded: padded, v: v,
          p: p, limit: limit)
      }
    }

    // The 16 GEMMs are independent: shared out over the threads, each single-threaded.
    forEachPart(parts) { part in
      let a = base.pointer
      let v = a + kernel.scratch
      for xi in stride(from: part, to: kernel.points, by: parts) {
        kernel.multiply(a, xi: xi, v: v, m: v + kernel.points * kernel.vStride(p), p: p)
      }
    }

    forEachPart(parts) { part in
      let a = base.pointer
      let m = a + kernel.scratch + kernel.points * kernel.vStride(p)
      for k in stride(from: part, to: kernel.cout, by: parts) {
        kernel.anyOutputTransform(k: k, images: 0..<kernel.n, a: a, m: m, p: p)
      }
    }
  }

  /// `M[ξ] = U[ξ] · V[ξ]` for `p` tiles, on one thread.
  @inline(__always)
  func multiply(
    _ a: UnsafeMutablePointer<Float>, xi: Int, v: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>,
    p: Int
  ) {
    let forward = flipped == .forward
    BLAS.sgemm(
      transA: forward, m: cout, n: p, k: cin, a: a + transformed + (forward ? Self.rotated[xi] : xi) * cout * cin,
      lda: forward ? cout : cin, b: v + xi * vStride(p), ldb: p, c: m + xi * mStride(p), ldc: p)
  }

  /// Each core its own images (`forEachImagePart`, the parts of `plan`), `block` at a time:
  /// input transform, 16 GEMMs on a single-threaded BLAS, output transform, in its own scratch.
  func run(_ a: UnsafeMutablePointer<Float>, block: Int) {
    let perImage = tilesH * tilesW
    let transformed = Self.transformedCount(cin: cin, cout: cout, tiles: block * perImage, m: m)
    let perPart = transformed + Self.paddedPlane(oh: oh, ow: ow, m: m)
    let kernel = self
    forEachImagePart(images: n, threads: threads, a, scratch: scratch, partScratch: { _ in perPart }) {
      a, _, images, offset, _ in
      let own = a + offset
      let padded = own + transformed
      var first = images.lowerBound
      while first < images.upperBound {
        let count = Swift.min(block, images.upperBound - first), p = count * perImage
        let v = own, m = own + kernel.points * kernel.vStride(p)
        kernel.inputTransforms(images: first..<(first + count), a: a, padded: padded, v: v)
        for xi in 0..<kernel.points { kernel.multiply(a, xi: xi, v: v, m: m, p: p) }
        for k in 0..<kernel.cout { kernel.anyOutputTransform(k: k, images: first..<(first + count), a: a, m: m, p: p) }
        first += count
      }
    }
  }

  /// Part `part` of `parts` of the `planes` planes in `V`'s (or `Y`'s) order, plane by plane with
  /// the tiles from that plane's first that the part may write (its run ends where the next
  /// part's begins).
  @inline(__always)
  func forEachPlane(of planes: Int, part: Int, parts: Int, _ body: (_ q: Int, _ limit: Int) -> Void) {
    let run = (planes * part / parts)..<(planes * (part + 1) / parts)
    for q in run { body(q, (run.upperBound - q) * tilesH * tilesW) }
  }

  /// `V` of a block of `images` (held alone, its own tile count), in `V`'s order (channel, then
  /// image) so the extra lanes of a step land on later tiles or the overhang.
  @inline(__always)
  func inputTransforms(
    images: Range<Int>, a: UnsafeMutablePointer<Float>, padded: UnsafeMutablePointer<Float>,
    v: UnsafeMutablePointer<Float>
  ) {
    let p = images.count * tilesH * tilesW
    clearPadded(padded)
    for c in 0..<cin {
      for (local, image) in images.enumerated() {
        let ahead = c + Self.prefetchDistance
        if ahead < cin { prefetch(a + x + (image * cin + ahead) * h * w, count: h * w) }
        anyInputTransform(image: image, local: local, c: c, a: a, padded: padded, v: v, p: p, limit: .max)
      }
    }
  }

  func forEachPart(_ parts: Int, _ body: @Sendable (Int) -> Void) {
    if parts == 1 { body(0) } else { parallelFor(parts, body) }
  }

  /// `V[ξ, c, tiles of image local] = Bᵀ d B` for every tile of one input plane (image `image`,
  /// channel `c`; `local` is its place among the images `V` holds), through a zero-padded
  /// copy (`padded`, cleared by the caller: `clearPadded`). Eight tiles of a row at a time:
  /// the four columns of each tile are the even and odd lanes of two 16-float loads (tiles
  /// overlap by two columns), so every transform step is one vector operation and every store
  /// eight consecutive floats. A step with fewer than eight tiles left in its row stores all
  /// eight lanes anyway: the extra ones land on the
  /// tiles that follow in `V` (written later, if planes go in `V`'s order) or in the
  /// overhang. At most `limit` tiles from the plane's first are written: the caller's own
  /// (a plane can be fewer than eight tiles, so the lanes can reach several planes ahead).
  @inline(__always)
  func inputTransform(
    image: Int, local: Int, c: Int, a: UnsafeMutablePointer<Float>,
    padded: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, p: Int, limit: Int
  ) {
    let plane = image * cin + c
    let th = tilesH, tw = tilesW
    let pw = tw * 2 + 2, ph = th * 2 + 2
    copyRows(
      a + x + plane * h * w, rows: Swift.min(h, ph - padding.0), columns: Swift.min(w, pw - padding.1),
      sourceStride: w, into: padded, stride: pw, top: padding.0, left: padding.1)
    let stride = vStride(p)
    let base = v + c * p + local * th * tw
    typealias V8 = SIMD8<Float>
    typealias V16 = SIMD16<Float>
    @inline(__always) func load(_ q: UnsafeMutablePointer<Float>) -> V16 {
      UnsafeRawPointer(q).loadUnaligned(as: V16.self)
    }
    for ty in 0..<th {
      let r0 = padded + 2 * ty * pw, r1 = r0 + pw, r2 = r1 + pw, r3 = r2 + pw
      let dst = base + ty * tw
      // A constant per step: the nested functions capture it (a captured `var` is boxed on the heap).
      for tx in Swift.stride(from: 0, to: tw, by: 8) {
        let o = 2 * tx
        // Row r, column k of the eight tiles' 4×4 windows: d[r].k.
        @inline(__always) func columns(_ r: UnsafeMutablePointer<Float>) -> (V8, V8, V8, V8) {
          let lo = load(r + o), hi = load(r + o + 2)
          return (lo.evenHalf, lo.oddHalf, hi.evenHalf, hi.oddHalf)
        }
        let d0 = columns(r0), d1 = columns(r1), d2 = columns(r2), d3 = columns(r3)
        // t = Bᵀ d, rows: d0 − d2, d1 + d2, d2 − d1, d1 − d3 (column by column).
        let t0 = (d0.0 - d2.0, d0.1 - d2.1, d0.2 - d2.2, d0.3 - d2.3)
        let t1 = (d1.0 + d2.0, d1.1 + d2.1, d1.2 + d2.2, d1.3 + d2.3)
        let t2 = (d2.0 - d1.0, d2.1 - d1.1, d2.2 - d1.2, d2.3 - d1.3)
        let t3 = (d1.0 - d3.0, d1.1 - d3.1, d1.2 - d3.2, d1.3 - d3.3)
        let valid = Swift.min(8, limit - ty * tw - tx)
        // V = t B, per row: t0 − t2, t1 + t2, t2 − t1, t1 − t3.
        @inline(__always) func store(_ i: Int, _ t: (V8, V8, V8, V8)) {
          let q = dst + 4 * i * stride + tx
          store8(t.0 - t.2, q, count: valid)
          store8(t.1 + t.2, q + stride, count: valid)
          store8(t.2 - t.1, q + 2 * stride, count: valid)
          store8(t.1 - t.3, q + 3 * stride, count: valid)
        }
        store(0, t0)
        store(1, t1)
        store(2, t2)
        store(3, t3)
      }
    }
  }

  /// Floats read past the end of a padded plane by the last 16-float loads of 4×4 tiles (the
  /// loads of 6×6 tiles, by phase, stay inside their plane).
  static let slack = 18

  /// Zeros the padded plane that the transforms copy planes into (`inputTransform`,
  /// `WinogradWeightGradient.gradientTransform`): once before a run of planes of one kind,
  /// whose copies then all write the same floats of it and leave its padding zero.
  @inline(__always)
  func clearPadded(_ padded: UnsafeMutablePointer<Float>) {
    padded.update(repeating: 0, count: Self.paddedPlane(oh: oh, ow: ow, m: m))
  }

  /// `y = Aᵀ M A` (+ bias, then the epilogue) for every tile of output channel `k` in each of
  /// `images` (the ones `M` holds, in order), eight tiles of a row at a time; each finished
  /// output plane gets the epilogue while it is still in cache. The loads take eight lanes
  /// even past a row's last tile (into later tiles or the overhang). A row of outputs is one
  /// 16-float store where that stays inside the row, or inside the plane when a row of tiles
  /// is a single step: stores then go in increasing address order, so the floats they write
  /// past a row are overwritten by the rows that follow.
  @inline(__always)
  func outputTransform(
    k: Int, images: Range<Int>, a: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>,
    p: Int
  ) {
    let th = tilesH, tw = tilesW
    let stride = mStride(p)
    let b = SIMD8<Float>(repeating: bias.map { a[$0 + k] } ?? 0)
    typealias V8 = SIMD8<Float>
    for image in images {
      let src = m + k * p + (image - images.lowerBound) * th * tw
      let plane = (image * cout + k) * oh * ow
      // The planes of one channel are Cout·OH·OW floats apart: asked for ahead of their stores.
      if image + Self.prefetchDistance < images.upperBound {
        prefetch(a + out + plane + Self.prefetchDistance * cout * oh * ow, count: oh * ow)
      }
      let dst = a + out + plane, end = dst + oh * ow
      for ty in 0..<th {
        // A constant per step: the nested functions capture it (a captured `var` is boxed on the heap).
        for tx in Swift.stride(from: 0, to: tw, by: 8) {
          let q = src + ty * tw + tx
          @inline(__always) func mv(_ xi: Int) -> V8 { load8(q + xi * stride) }
          // Rows of M (4×4) combined: s0 = m0 + m1 + m2, s1 = m1 − m2 − m3, column by column.
          let m0 = mv(0), m1 = mv(1), m2 = mv(2), m3 = mv(3), m4 = mv(4), m5 = mv(5), m6 = mv(6), m7 = mv(7)
          let m8 = mv(8), m9 = mv(9), m10 = mv(10), m11 = mv(11), m12 = mv(12), m13 = mv(13), m14 = mv(14), m15 = mv(15)
          let s00 = m0 + m4 + m8, s01 = m1 + m5 + m9, s02 = m2 + m6 + m10, s03 = m3 + m7 + m11
          let s10 = m4 - m8 - m12, s11 = m5 - m9 - m13, s12 = m6 - m10 - m14, s13 = m7 - m11 - m15
          let y00 = s00 + s01 + s02 + b, y01 = s01 - s02 - s03 + b
          let y10 = s10 + s11 + s12 + b, y11 = s11 - s12 - s13 + b
          let y0 = 2 * ty, x0 = 2 * tx
          let row0 = dst + y0 * ow + x0
          @inline(__always) func row(_ even: V8, _ odd: V8, _ q: UnsafeMutablePointer<Float>) {
            if tx + 8 < tw || (tw <= 8 && q + 16 <= end) { return store16(interleave(even, odd), q) }
            store16(interleave(even, odd), q, count: ow - x0)
          }
          row(y00, y01, row0)
          if y0 + 1 < oh { row(y10, y11, row0 + ow) }
        }
      }
      epilogue.apply(a, out: out, count: oh * ow, at: plane)
    }
  }
}

/// `rows` rows of `columns` floats from `src` (rows `sourceStride` apart) into the padded plane
/// `dst` (rows `stride` apart) at row `top`, column `left`. The padding is the caller's: it
/// clears the plane once (`clearPadded`) and every plane copied into it after that writes the
/// same floats. Rows here are 4 to 28 floats, where a `memset` of each plane and a `memmove`
/// per row cost more in calls than in copying.
@inline(__always)
func copyRows(
  _ src: UnsafePointer<Float>, rows: Int, columns: Int, sourceStride: Int,
  into dst: UnsafeMutablePointer<Float>, stride: Int, top: Int, left: Int
) {
  for r in 0..<Swift.max(rows, 0) {
    let to = dst + (top + r) * stride + left, row = src + r * sourceStride
    if columns >= 8 {
      // Eight at a time, the last eight ending at the row's end (over the ones before).
      var i = 0
      while i + 8 < columns { store8(load8(row + i), to + i); i += 8 }
      store8(load8(row + columns - 8), to + columns - 8)
    } else {
      for i in 0..<columns { to[i] = row[i] }
    }
  }
}

extension WinogradConv3x3 {
  /// Planes ahead of the one transformed whose first lines are prefetched: the transforms read
  /// planes `Cin·H·W` floats apart (`V`'s order), a stride the hardware prefetchers do not
  /// follow.
  static let prefetchDistance = 4

  /// Prefetches input plane `q` in `V`'s order (channel, then image).
  @inline(__always)
  func prefetchPlane(_ a: UnsafeMutablePointer<Float>, _ q: Int) {
    prefetch(a + x + ((q % n) * cin + q / n) * h * w, count: h * w)
  }
}

/// Asks for the first cache lines (up to eight) of the `count` floats at `p`.
@inline(__always)
func prefetch(_ p: UnsafePointer<Float>, count: Int) {
  var offset = 0
  while offset < Swift.min(count, 128) {
    glassbox_prefetch(p + offset)
    offset += 16
  }
}
