@testable import GlassboxRuntime
import Testing

/// The Winograd transforms (of 4×4 and of 6×6 tiles) store eight tiles at a time. When the weights outweigh the tiles,
/// the planes are split over the cores in runs, and a plane can be a single tile (VGG's last
/// block, ResNet's layer4 on small frames), so a store's extra lanes reach several planes
/// ahead. Whether the core owning those planes has written them already depends on timing, so
/// a race would pass most runs of a whole program: here each transform writes one plane at the
/// end of its run into a buffer of NaNs, and nothing past the run may change.
struct WinogradTests {
  /// Two images of three channels, 2×2 maps, padding 1: one tile per plane.
  static let forward = WinogradConv3x3(
    label: "", n: 2, cin: 3, h: 2, w: 2, cout: 3, padding: (1, 1), oh: 2, ow: 2,
    x: 0, weight: .arena(0), bias: nil, out: 0, transformed: 0, scratch: 0,
    epilogue: Epilogue(residual: nil, relu: false), threads: 1)

  /// Two images of three channels, 4×4 maps, padding 1: one 6×6 tile per plane (F(4×4, 3×3)).
  static let large: WinogradConv3x3 = {
    var f = WinogradConv3x3(
      label: "", n: 2, cin: 3, h: 4, w: 4, cout: 3, padding: (1, 1), oh: 4, ow: 4,
      x: 0, weight: .arena(0), bias: nil, out: 0, transformed: 0, scratch: 0,
      epilogue: Epilogue(residual: nil, relu: false), threads: 1)
    f.m = 4
    return f
  }()

  /// Runs `transform` of `f` (writing at `target` for `p` tiles, the plane at tile `first`)
  /// and returns the indices of the target's ξ matrices that it changed.
  static func written(
    _ f: WinogradConv3x3, stride: Int, _ transform: (UnsafeMutablePointer<Float>, Int) -> Void
  ) -> [Int] {
    let x = 0, target = 128, padded = target + f.points * stride
    let count = padded + WinogradConv3x3.paddedPlane(oh: f.oh, ow: f.ow, m: f.m)
    let a = UnsafeMutablePointer<Float>.allocate(capacity: count)
    defer { a.deallocate() }
    a.initialize(repeating: .nan, count: count)
    for i in 0..<(f.n * f.cin * f.h * f.w) { a[x + i] = Float(i + 1) }
    transform(a, padded)
    return (target..<padded).filter { !a[$0].isNaN }.map { $0 - target }
  }

  @Test(arguments: [2, 4])
  func inputTransformStopsAtTheEndOfItsRun(m: Int) {
    let f = m == 4 ? Self.large : Self.forward, p = 2
    // Plane (channel 1, image 0) is tile 2 of V[ξ]; a run ending there may write only it.
    let changed = Self.written(f, stride: f.vStride(p)) { a, padded in
      f.clearPadded(a + padded)
      f.anyInputTransform(image: 0, local: 0, c: 1, a: a, padded: a + padded, v: a + 128, p: p, limit: 1)
    }
    #expect(changed == (0..<f.points).map { $0 * f.vStride(p) + 2 })
  }

  @Test(arguments: [2, 4])
  func gradientTransformStopsAtTheEndOfItsRun(m: Int) {
    let f = m == 4 ? Self.large : Self.forward, p = 2
    let gradient = WinogradWeightGradient(label: "", forward: f, dy: 0, dw: 0)
    let changed = Self.written(f, stride: f.mStride(p)) { a, padded in
      f.clearPadded(a + padded)
      gradient.anyGradientTransform(image: 0, local: 0, k: 1, a: a, padded: a + padded, y: a + 128, p: p, limit: 1)
    }
    #expect(changed == (0..<f.points).map { $0 * f.mStride(p) + 2 })
  }

  /// A row copied by phase (`copyRowsByPhase`) puts column `j` at `(j mod 4)·phase + j / 4`
  /// of its row and writes nothing else, for every start column and width the vector steps
  /// (16 and 8 columns) and the scalar head and tail divide differently.
  @Test func rowsCopiedByPhase() {
    for left in 0..<6 {
      for columns in 0..<40 {
        let phase = (left + columns) / 4 + 2
        let source = (0..<(2 * 41)).map { Float($0 + 1) }
        var plane = [Float](repeating: .nan, count: 3 * 4 * phase)
        source.withUnsafeBufferPointer { s in
          plane.withUnsafeMutableBufferPointer { d in
            copyRowsByPhase(
              s.baseAddress!, rows: 2, columns: columns, sourceStride: 41, into: d.baseAddress!, phase: phase, top: 1,
              left: left)
          }
        }
        var expected = [Float](repeating: .nan, count: plane.count)
        for r in 0..<2 {
          for j in 0..<columns {
            let c = left + j
            expected[(1 + r) * 4 * phase + c % 4 * phase + c / 4] = source[r * 41 + j]
          }
        }
        #expect(plane.map(\.bitPattern) == expected.map(\.bitPattern), "left \(left), \(columns) columns")
      }
    }
  }

  /// The transforms' partial stores (`store8`/`store16` with a count, in pieces of 8, 4, 2
  /// and 1 lanes): each count writes its first lanes, in place, and nothing after them.
  @Test func partialStoresWriteTheirLanesOnly() {
    let lanes = SIMD16<Float>((0..<16).map { Float($0 + 1) })
    for count in 0...17 {
      var wide = [Float](repeating: .nan, count: 18), narrow = wide
      wide.withUnsafeMutableBufferPointer { store16(lanes, $0.baseAddress! + 1, count: count) }
      narrow.withUnsafeMutableBufferPointer { store8(lanes.lowHalf, $0.baseAddress! + 1, count: count) }
      let expected = (0..<18).map { $0 >= 1 && $0 <= Swift.min(count, 16) ? Float($0) : .nan }
      #expect(wide.map(\.bitPattern) == expected.map(\.bitPattern), "store16, count \(count)")
      #expect(
        narrow.map(\.bitPattern) == expected.enumerated().map { $0.offset <= 8 ? $0.element : .nan }.map(\.bitPattern),
        "store8, count \(count)")
    }
  }
}
