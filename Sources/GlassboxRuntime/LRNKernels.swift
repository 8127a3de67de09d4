import Foundation
import GlassboxIR

/// An `lrn` over `[N, C, spatial]`: its window of channels and constants, and the two steps
/// both kernels take per plane (one image's channel): the denominators
/// `D = bias + alpha/size · Σ x²` over the window, eight spatial positions at a time, and
/// their power `D^−β`.
struct LRNGeometry: Sendable {
  var n: Int, c: Int, spatial: Int
  /// Channels of the window before and after its own.
  var before: Int, after: Int
  /// `alpha/size`.
  var scale: Float
  var beta: Float, bias: Float

  init(_ a: LRNAttributes, n: Int, c: Int, spatial: Int) {
    (self.n, self.c, self.spatial) = (n, c, spatial)
    (before, after) = a.window
    scale = Float(a.alpha / Double(a.size))
    beta = Float(a.beta)
    bias = Float(a.bias)
  }

  /// Planes of the whole tensor.
  var planes: Int { n * c }

  /// The channels `lo...hi` of plane `p`'s image, as plane indices, whose values enter its
  /// window (`reversed`: whose windows hold it).
  func window(of p: Int, reversed: Bool = false) -> ClosedRange<Int> {
    let ch = p % c, first = p - ch
    let (lo, hi) = reversed ? (after, before) : (before, after)
    return (first + Swift.max(0, ch - lo))...(first + Swift.min(c - 1, ch + hi))
  }

  /// `d = bias + scale·Σ x²` over plane `p`'s window (`x` the tensor's start).
  @inline(__always)
  func denominators(_ x: UnsafeMutablePointer<Float>, plane p: Int, into d: UnsafeMutablePointer<Float>) {
    let planes = window(of: p)
    var i = 0
    while i < spatial {
      let count = Swift.min(8, spatial - i)
      var sum = SIMD8<Float>()
      for q in planes {
        let v = load8(x + q * spatial + i, count: count)
        sum = sum.plusProduct(v, v)
      }
      store8(SIMD8(repeating: bias).plusProduct(sum, SIMD8(repeating: scale)), d + i, count: count)
      i += 8
    }
  }

  /// `d = d^−β` in place: as roots for β of 0.75 (every model's), 0.5 and 1, else libm's powf.
  @inline(__always)
  func raise(_ d: UnsafeMutablePointer<Float>, count: Int) {
    switch beta {
    case 0.75:
      mapSIMD(d, d, count) { v in
        let r = v.squareRoot(); return 1 / (r * r.squareRoot())
      }
    case 0.5: mapSIMD(d, d, count) { 1 / $0.squareRoot() }
    case 1: mapSIMD(d, d, count) { 1 / $0 }
    default: for i in 0..<count { d[i] = Foundation.pow(d[i], -beta) }
    }
  }

  /// Runs `body` over the planes, split over the cores when the tensor is large.
  @inline(__always)
  func forEachPlanes(
    _ a: UnsafeMutablePointer<Float>, threads: Int,
    _ body: (UnsafeMutablePointer<Float>, Range<Int>) -> Void
  ) {
    splitOverCores(a, count: planes, threads: threads, worthIt: planes * spatial >= elementwiseParallelCount, body)
  }
}

/// `out = x·D^−β` (`lrn`), plane by plane: the denominators into the output row, raised,
/// then times x.
struct LRN: Kernel {
  var label: String
  var geometry: LRNGeometry
  var x: Int, out: Int
  var threads = 1

  func run(_ a: UnsafeMutablePointer<Float>) {
    let g = geometry, x = self.x, out = self.out
    g.forEachPlanes(a, threads: threads) { a, planes in
      for p in planes {
        let d = a + out + p * g.spatial, s = a + x + p * g.spatial
        g.denominators(a + x, plane: p, into: d)
        g.raise(d, count: g.spatial)
        for i in 0..<g.spatial { d[i] *= s[i] }
      }
    }
  }
}

/// `dx` of an `lrn` (`lrn_backward`) in two passes over the planes: the first keeps `D^−β`
/// and `t = dy·x·D^(−β−1)` of every element in scratch, the second sums `t` over the planes
/// whose windows hold each plane, `dx = dy·D^−β − 2·β·alpha/size · x · Σ t`.
///
/// Scratch: `D^−β`, then `t`, each of the tensor's size.
struct LRNBackward: Kernel {
  var label: String
  var geometry: LRNGeometry
  var dy: Int, x: Int, dx: Int, scratch: Int
  var threads = 1

  static func scratchCount(_ shape: [Int]) -> Int { 2 * shape.reduce(1, *) }

  func run(_ a: UnsafeMutablePointer<Float>) {
    let g = geometry, (dy, x, dx) = (self.dy, self.x, self.dx)
    let powers = scratch, terms = scratch + g.planes * g.spatial
    g.forEachPlanes(a, threads: threads) { a, planes in
      for p in planes {
        let row = p * g.spatial
        let power = a + powers + row, t = a + terms + row, s = a + x + row, gy = a + dy + row
        g.denominators(a + x, plane: p, into: t)
        power.update(from: t, count: g.spatial)
        g.raise(power, count: g.spatial)
        for i in 0..<g.spatial { t[i] = gy[i] * s[i] * power[i] / t[i] }
      }
    }
    let k = 2 * g.beta * g.scale
    g.forEachPlanes(a, threads: threads) { a, planes in
      for p in planes {
        let row = p * g.spatial
        let d = a + dx + row, power = a + powers + row, s = a + x + row, gy = a + dy + row
        d.update(repeating: 0, count: g.spatial)
        for q in g.window(of: p, reversed: true) { vadd(d, a + terms + q * g.spatial, count: g.spatial) }
        for i in 0..<g.spatial { d[i] = gy[i] * power[i] - k * s[i] * d[i] }
      }
    }
  }
}
