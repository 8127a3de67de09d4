import Foundation
@testable import GlassboxRuntime
import Testing

/// `LSTMLayer.cells` (the fused cell of the inference LSTM) against Float64, on both of its
/// kernels (Swift's eight lanes and, where the CPU has it, CKernels' sixteen), which must
/// also agree bit for bit: which one runs depends on the machine.
struct LSTMCellsTests {
  /// Hidden sizes: whole 16-lane vectors, and a last half vector (the AVX-512 kernel's mask).
  static let hiddens = [8, 16, 24, 32, 40]

  /// Three rows with padding between them (strides past the row), gates spanning the exp
  /// clamps (±100); returns c, h and out (NaN where nothing may be written) and the Float64
  /// c and h.
  static func cells(hidden: Int, writesOut: Bool, wide: Bool)
    -> (c: [Float], h: [Float], out: [Float], expectedC: [Double], expectedH: [Double]) {
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
        let cell = sigmoid(gate(1)) * Double(c[b * stateStride + j]) + sigmoid(gate(0)) * Foundation.tanh(Double(gate(2)))
        expectedC[b * stateStride + j] = cell
        expectedH[b * stateStride + j] = sigmoid(gate(3)) * Foundation.tanh(cell)
      }
    }
    gates.withUnsafeMutableBufferPointer { g in
      c.withUnsafeMutableBufferPointer { c in
        h.withUnsafeMutableBufferPointer { h in
          out.withUnsafeMutableBufferPointer { out in
            LSTMLayer.cells(rows, hidden: hidden, gates: g.baseAddress!, gateStride: gateStride, c: c.baseAddress!,
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

  @Test(.enabled(if: AVX512.supported))
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
}
