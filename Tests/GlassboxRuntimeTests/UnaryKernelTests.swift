import Foundation
@testable import GlassboxRuntime
import Testing

/// `Unary`'s functions against Float64: sigmoid and tanh on both kernels (Swift's eight lanes
/// and, where the CPU has it, CKernels' sixteen), which must agree bit for bit: which one runs
/// depends on the machine; exp, log, sqrt, abs and erf (one kernel) at their limits too.
struct UnaryKernelTests {
  /// Element counts: whole 16-lane vectors, a partial last vector of more and fewer than 8
  /// lanes, fewer than one vector.
  static let counts = [64, 45, 37, 5]

  /// Runs `op` over `count` values (exp's clamps, ±∞ and NaN among them) into the arena after
  /// them; returns the arena (sources, results, then 3 untouched NaNs) and the inputs.
  static func mapped(_ op: UnaryOp, count: Int, wide: Bool) -> (arena: [Float], inputs: [Float]) {
    var seed = UInt64(count)
    let special: [Float] = [.nan, .infinity, -.infinity, 100, -100, 0, -0.0]
    let inputs = (0..<count).map { i -> Float in
      if i < special.count { return special[i] }
      seed = seed &* 6364136223846793005 &+ 1442695040888963407
      return Float(Int(seed >> 40) % 2001 - 1000) / 100
    }
    var arena = inputs + [Float](repeating: .nan, count: count + 3)
    let kernel = Unary(label: "unary", op: op, src: 0, dst: count, count: count)
    arena.withUnsafeMutableBufferPointer { kernel.run($0.baseAddress!, 0..<count, wide: wide) }
    return (arena, inputs)
  }

  /// Each function and its Float64 value.
  static let functions: [(UnaryOp, @Sendable (Double) -> Double)] = [
    (.sigmoid, { 1 / (1 + Foundation.exp(-$0)) }), (.tanh, Foundation.tanh), (.exp, Foundation.exp),
    (.log, Foundation.log), (.sqrt, { $0.squareRoot() }), (.abs, { Swift.abs($0) }), (.erf, Foundation.erf),
  ]

  static func check(wide: Bool) {
    for (op, f) in functions {
      for count in counts {
        let (arena, inputs) = mapped(op, count: count, wide: wide)
        let results = Array(arena[count..<(2 * count)])
        let wrong = zip(results, inputs).enumerated().filter { _, pair in
          // In f32: e¹⁰⁰ is +∞ there, as libm's expf gives.
          let expected = Double(Float(f(Double(pair.1))))
          if expected.isNaN { return !pair.0.isNaN }
          if expected.isInfinite { return Double(pair.0) != expected }
          return !(abs(Double(pair.0) - expected) <= 2e-6 * max(1, abs(expected)))
        }.map(\.offset)
        #expect(wrong.isEmpty, "\(op), wide \(wide), \(count) values: wrong at \(wrong)")
        let untouched = arena[(2 * count)...].allSatisfy { $0.isNaN }
        #expect(untouched, "\(op), wide \(wide), \(count) values: wrote past the end")
      }
    }
  }

  @Test func swiftKernelsMatchFloat64() { Self.check(wide: false) }

  @Test(.enabled(if: AVX512.supported, KernelPath.noAVX512))
  func avx512KernelsMatchFloat64AndTheSwiftKernelsBitForBit() {
    Self.check(wide: true)
    for op in [UnaryOp.sigmoid, .tanh] {
      for count in Self.counts {
        let narrow = Self.mapped(op, count: count, wide: false), wide = Self.mapped(op, count: count, wide: true)
        #expect(narrow.arena.map(\.bitPattern) == wide.arena.map(\.bitPattern), "\(op), \(count) values")
      }
    }
  }
}
