import Foundation
@testable import GlassboxRuntime
import Testing

/// `LSTMLayer.cells` (the fused cell of the inference LSTM) and `LSTMLayer.accumulateRows` (its
/// recurrent product below 8 batch rows) against Float64, on both of their kernels (Swift's
/// eight lanes and, where the CPU has it, CKernels' sixteen), which must also agree bit for
/// bit: which one runs depends on the machine.
struct LSTMCellsTests {
  /// Hidden sizes: whole 16-lane vectors, and a last half vector (the AVX-512 kernel's mask).
  static let hiddens = [8, 16, 24, 32, 40]

  /// Three rows with padding between them (strides past the row), gates spanning the exp
  /// clamps (±100); returns c, h and out (NaN where nothing may be written) and the Float64
  /// c and h.
  static func cells(
    hidden: Int, writesOut: Bool, wide: Bool
  )
    -> (c: [Float], h: [Float], out: [Float], expectedC: [Double], expectedH: [Double])
  {
    let rows = 3, gateStride = 4 * hidden + 3, stateStride = hidden + 1, outStride = hidden + 5
    var seed = UInt64(hidden * 10 + (writesOut ? 1 : 0))
    func next(_ scale: Float) -> Float {
      seed = seed &* 6364136223846793005 &+ 1442695040888963407
      return Float(Int(seed >> 40) % 2001 - 1000) / 1000 * scale
    }
    var gates = (0..<(rows * gateStride)).map { i in next(i % 7 == 0 ? 100 : 6) }
    var c = [Float](repeating: .nan, count: rows * stateStride), h = c
    var out = [Float](repeating: .nan, count: rows * outStride)
    for b in 0..<rows { for j in 0..<hidden { c[b * stateStride + j] = next(3) } }
    var expectedC = [Double](repeating: .nan, count: c.count), expectedH = expectedC
    func sigmoid(_ x: Float) -> Double { 1 / (1 + Foundation.exp(-Double(x))) }
    for b in 0..<rows {
      for j in 0..<hidden {
        let gate = { (k: Int) in gates[b * gateStride + k * hidden + j] }
        let cell =
          sigmoid(gate(1)) * Double(c[b * stateStride + j]) + sigmoid(gate(0)) * Foundation.tanh(Double(gate(2)))
        expectedC[b * stateStride + j] = cell
        expectedH[b * stateStride + j] = sigmoid(gate(3)) * Foundation.tanh(cell)
      }
    }
    gates.withUnsafeMutableBufferPointer { g in
      c.withUnsafeMutableBufferPointer { c in
        h.withUnsafeMutableBufferPointer { h in
          out.withUnsafeMutableBufferPointer { out in
            LSTMLayer.cells(
              rows, hidden: hidden, gates: g.baseAddress!, gateStride: gateStride, c: c.baseAddress!,
              h: h.baseAddress!, stateStride: stateStride, out: writesOut ? out.baseAddress! : nil,
              outStride: outStride, wide: wide)
          }
        }
      }
    }
    return (c, h, out, expectedC, expectedH)
  }

  static func check(wide: Bool) {
    for hidden in hiddens {
      for writesOut in [false, true] {
        let r = cells(hidden: hidden, writesOut: writesOut, wide: wide)
        func wrong(_ actual: [Float], _ expected: [Double]) -> [Int] {
          zip(actual, expected).enumerated().filter { _, pair in
            pair.1.isNaN ? !pair.0.isNaN : !(abs(Double(pair.0) - pair.1) <= 2e-6 * max(1, abs(pair.1)))
          }.map(\.offset)
        }
        let label = "wide \(wide), hidden \(hidden), out \(writesOut)"
        #expect(wrong(r.c, r.expectedC).isEmpty, "\(label): c wrong at \(wrong(r.c, r.expectedC))")
        #expect(wrong(r.h, r.expectedH).isEmpty, "\(label): h wrong at \(wrong(r.h, r.expectedH))")
        // out holds h's rows (at its own stride) or nothing at all.
        let expectedOut = (0..<r.out.count).map { i -> Double in
          let b = i / (hidden + 5), j = i % (hidden + 5)
          return writesOut && j < hidden ? r.expectedH[b * (hidden + 1) + j] : .nan
        }
        #expect(wrong(r.out, expectedOut).isEmpty, "\(label): out wrong at \(wrong(r.out, expectedOut))")
      }
    }
  }

  @Test func swiftCellsMatchFloat64() { Self.check(wide: false) }

  @Test(.enabled(if: AVX512.supported, KernelPath.noAVX512))
  func avx512CellsMatchFloat64AndTheSwiftCellsBitForBit() {
    Self.check(wide: true)
    for hidden in Self.hiddens {
      let narrow = Self.cells(hidden: hidden, writesOut: true, wide: false)
      let wide = Self.cells(hidden: hidden, writesOut: true, wide: true)
      #expect(narrow.c.map(\.bitPattern) == wide.c.map(\.bitPattern), "hidden \(hidden): c")
      #expect(narrow.h.map(\.bitPattern) == wide.h.map(\.bitPattern), "hidden \(hidden): h")
      #expect(narrow.out.map(\.bitPattern) == wide.out.map(\.bitPattern), "hidden \(hidden): out")
    }
  }

  /// Column counts (multiples of 8): whole blocks of 128 columns (the AVX-512 kernel's eight
  /// registers), a block and a half vector, blocks and whole and half vectors after them, no
  /// block at all (64: the Swift kernel's eight registers), a single half vector.
  static let columnCounts = [128, 136, 200, 256, 64, 8]

  /// Three rows of `acc[n] += h[k] · w` (h and acc rows strided past their ends, NaN there);
  /// returns acc and the Float64 sums.
  static func accumulated(n: Int, k: Int, wide: Bool) -> (acc: [Float], expected: [Double]) {
    let rows = 3, hStride = k + 2, accStride = n + 5
    var seed = UInt64(n * 100 + k)
    func next() -> Float {
      seed = seed &* 6364136223846793005 &+ 1442695040888963407
      return Float(Int(seed >> 40) % 2001 - 1000) / 1000
    }
    let w = (0..<(k * n)).map { _ in next() }
    var h = [Float](repeating: .nan, count: rows * hStride), acc = [Float](repeating: .nan, count: rows * accStride)
    for b in 0..<rows {
      for i in 0..<k { h[b * hStride + i] = next() }
      for j in 0..<n { acc[b * accStride + j] = next() }
    }
    var expected = [Double](repeating: .nan, count: acc.count)
    for b in 0..<rows {
      for j in 0..<n {
        expected[b * accStride + j] = (0..<k).reduce(Double(acc[b * accStride + j])) {
          $0 + Double(h[b * hStride + $1]) * Double(w[$1 * n + j])
        }
      }
    }
    w.withUnsafeBufferPointer { w in
      h.withUnsafeMutableBufferPointer { h in
        acc.withUnsafeMutableBufferPointer { acc in
          LSTMLayer.accumulateRows(
            rows, n: n, k: k, w: w.baseAddress!, h: h.baseAddress!, hStride: hStride,
            acc: acc.baseAddress!, accStride: accStride, wide: wide)
        }
      }
    }
    return (acc, expected)
  }

  static func checkAccumulated(wide: Bool) {
    for n in columnCounts {
      for k in [1, 5, 32] {
        let (acc, expected) = accumulated(n: n, k: k, wide: wide)
        let wrong = zip(acc, expected).enumerated().filter { _, pair in
          pair.1.isNaN ? !pair.0.isNaN : !(abs(Double(pair.0) - pair.1) <= 1e-6 * Double(k + 1))
        }.map(\.offset)
        #expect(wrong.isEmpty, "wide \(wide), n \(n), k \(k): wrong at \(wrong.prefix(8))")
      }
    }
  }

  @Test func swiftRecurrentProductMatchesFloat64() { Self.checkAccumulated(wide: false) }

  @Test(.enabled(if: AVX512.supported, KernelPath.noAVX512))
  func avx512RecurrentProductMatchesFloat64AndTheSwiftKernelBitForBit() {
    Self.checkAccumulated(wide: true)
    for n in Self.columnCounts {
      let narrow = Self.accumulated(n: n, k: 32, wide: false), wide = Self.accumulated(n: n, k: 32, wide: true)
      #expect(narrow.acc.map(\.bitPattern) == wide.acc.map(\.bitPattern), "n \(n)")
    }
  }
}
