@testable import GlassboxRuntime
import Testing

/// `PackedGEMM.rows` against sums in Float64, on both of its kernels (Swift's AVX2 loop and,
/// where the CPU has it, the AVX-512 one in CKernels), which must also agree bit for bit: an
/// LSTM's projection runs one or the other depending on the machine, and a training run's
/// weights are to be the same bits for the same seed.
struct PackedGEMMTests {
  /// Column counts: whole runs of four panels and of two (the AVX-512 kernel's passes), a
  /// four or a pair whose last panel is partial, fours followed by a pair and a single panel,
  /// an odd last panel (whole or partial), partial panels of more and fewer than 8 lanes.
  static let widths = [128, 100, 88, 60, 48, 40, 33, 24, 16, 9, 8, 3]

  /// Runs `count` rows of `[n, k]` and returns c (each row `n` floats followed by four
  /// sentinels) together with the Float64 sums. `inPlace`: each row's initial values are in
  /// its row of c (as the LSTM's recurrence adds to the step's projected gates).
  static func product(count: Int, n: Int, k: Int, wide: Bool, inPlace: Bool = false) -> (c: [Float], expected: [Double])
  {
    var seed: UInt64 = UInt64(count * 1000 + n * 10 + k)
    func next() -> Float {
      seed = seed &* 6364136223846793005 &+ 1442695040888963407
      return Float(Int(seed >> 40) % 2001 - 1000) / 1000
    }
    let w = (0..<(n * k)).map { _ in next() }
    // Rows of a and the initial values are not evenly spaced: each its own array.
    let a = (0..<count).map { _ in (0..<k).map { _ in next() } }
    let initial = (0..<count).map { _ in (0..<n).map { _ in next() } }
    var packed = [Float](repeating: .nan, count: PackedGEMM.packedCount(n: n, k: k))
    w.withUnsafeBufferPointer { PackedGEMM.pack($0.baseAddress!, n: n, k: k, into: &packed) }
    let rowFloats = n + 4
    var c = [Float](repeating: .nan, count: count * rowFloats)
    if inPlace { for r in 0..<count { c.replaceSubrange((r * rowFloats)..<(r * rowFloats + n), with: initial[r]) } }
    let aPointers = a.map { row -> UnsafeMutablePointer<Float> in
      let p = UnsafeMutablePointer<Float>.allocate(capacity: k); p.initialize(from: row, count: k); return p
    }
    let initialPointers = initial.map { row -> UnsafeMutablePointer<Float> in
      let p = UnsafeMutablePointer<Float>.allocate(capacity: n); p.initialize(from: row, count: n); return p
    }
    defer { (aPointers + initialPointers).forEach { $0.deallocate() } }
    packed.withUnsafeBufferPointer { packed in
      c.withUnsafeMutableBufferPointer { c in
        PackedGEMM.rows(count, n: n, k: k, packed: packed.baseAddress!, wide: wide) { r in
          let row = c.baseAddress! + r * rowFloats
          return (UnsafePointer(aPointers[r]), UnsafePointer(inPlace ? row : initialPointers[r]), row)
        }
      }
    }
    var expected = [Double](repeating: .nan, count: count * rowFloats)
    for r in 0..<count {
      for j in 0..<n {
        expected[r * rowFloats + j] =
          Double(initial[r][j]) + (0..<k).reduce(0.0) { $0 + Double(a[r][$1]) * Double(w[j * k + $1]) }
      }
    }
    return (c, expected)
  }

  static func check(wide: Bool) {
    for n in widths {
      for k in [1, 7, 128] {
        for count in 1...6 {
          for inPlace in [false, true] {
            let (c, expected) = product(count: count, n: n, k: k, wide: wide, inPlace: inPlace)
            let wrong = zip(c, expected).enumerated().filter { _, pair in
              pair.1.isNaN ? !pair.0.isNaN : !(abs(Double(pair.0) - pair.1) <= 1e-5 * Double(k))
            }
            #expect(
              wrong.isEmpty,
              "wide \(wide), n \(n), k \(k), \(count) rows, in place \(inPlace): first wrong at \(wrong.first?.offset ?? -1)"
            )
          }
        }
      }
    }
  }

  @Test func swiftKernelMatchesFloat64() { Self.check(wide: false) }

  @Test(.enabled(if: AVX512.supported, KernelPath.noAVX512))
  func avx512KernelMatchesFloat64AndTheSwiftKernelBitForBit() {
    Self.check(wide: true)
    for n in Self.widths {
      for count in [1, 5, 6] {
        let narrow = Self.product(count: count, n: n, k: 128, wide: false).c
        let wide = Self.product(count: count, n: n, k: 128, wide: true).c
        #expect(narrow.map(\.bitPattern) == wide.map(\.bitPattern), "n \(n), \(count) rows")
      }
    }
  }
}
