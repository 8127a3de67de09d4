import GlassboxIR
import Testing

/// Shape rules against independent formulations, on random parameters from a fixed seed.
struct ShapePropertyTests {
  static func shapeText(_ dims: [Int]) -> String { "[" + dims.map(String.init).joined(separator: ", ") + "]" }

  /// Broadcasting: operands derived from a result shape (axes replaced by 1, leading axes
  /// dropped) broadcast back to it; changing one non-1 axis to another size is refused.
  @Test func broadcastingAgreesWithConstruction() throws {
    var rng = SplitMix64(seed: 1)
    for _ in 0..<300 {
      let rank = Int.random(in: 0...4, using: &rng)
      let result = (0..<rank).map { _ in [2, 3, 5, 7].randomElement(using: &rng) ?? 2 }
      func derive() -> [Int] {
        let drop = Int.random(in: 0...rank, using: &rng)
        return result.dropFirst(drop).map { Bool.random(using: &rng) ? 1 : $0 }
      }
      var a = derive(), b = derive()
      // Where both are 1, the result is 1 there too.
      var expected = result
      let n = result.count
      for i in 0..<n {
        let da = i >= n - a.count ? a[i - (n - a.count)] : 1
        let db = i >= n - b.count ? b[i - (n - b.count)] : 1
        if da == 1 && db == 1 { expected[i] = 1 }
      }
      let text =
        "graph g(a: f32\(Self.shapeText(a)), b: f32\(Self.shapeText(b))) -> (y: f32\(Self.shapeText(expected.suffix(max(a.count, b.count))))) {\n  y = add(a, b)\n}\n"
      let ok = compile(text)
      #expect(ok.diagnostics.isEmpty, "\(a) + \(b): \(ok.diagnostics)")

      // Break compatibility at an axis where a has a non-1 size that b also has.
      if let i = a.indices.first(where: { a[$0] != 1 }), a.count == b.count {
        a[i] = a[i] == 7 ? 11 : 7 * a[i]
        b[i] = b[i] == 1 ? 13 : b[i]
        let bad = compile(
          "graph g(a: f32\(Self.shapeText(a)), b: f32\(Self.shapeText(b))) -> (y: f32[1]) {\n  y = add(a, b)\n}\n")
        #expect(bad.diagnostics.first?.message.contains("do not broadcast") == true, "\(a) + \(b)")
      }
    }
  }

  /// Window positions counted one by one: a window starts every `stride` elements from the
  /// left edge of the padding and spans `dilation·(kernel−1)+1`; in floor mode it must end
  /// inside the right padding, in ceil mode it must merely start inside input or left padding.
  static func countWindows(size: Int, kernel: Int, stride: Int, padding: Int, dilation: Int, ceil: Bool) -> Int {
    let span = dilation * (kernel - 1) + 1
    let padded = size + 2 * padding
    if padded < span { return 0 }
    var count = 0
    var start = 0
    while true {
      // Ceil mode keeps a last, partial window if it starts inside the input or left padding.
      let fits = ceil ? start < padded - span + stride && start < size + padding : start + span <= padded
      guard fits else { break }
      count += 1
      start += stride
    }
    return count
  }

  @Test func convolutionOutputSizesMatchEnumeration() {
    var rng = SplitMix64(seed: 2)
    for _ in 0..<300 {
      let size = Int.random(in: 1...40, using: &rng)
      let k = Int.random(in: 1...7, using: &rng), s = Int.random(in: 1...4, using: &rng)
      let p = Int.random(in: 0...3, using: &rng), d = Int.random(in: 1...3, using: &rng)
      let expected = Self.countWindows(size: size, kernel: k, stride: s, padding: p, dilation: d, ceil: false)
      let result = compile(
        """
        graph g(x: f32[1, 2, \(size), \(size)]) -> (y: f32[1, 3, \(max(expected, 1)), \(max(expected, 1))]) {
          y = conv2d(x, out: 3, kernel: \(k), stride: \(s), padding: \(p), dilation: \(d))
        }
        """)
      if expected == 0 {
        #expect(result.diagnostics.first?.message.contains("does not fit") == true, "size \(size) k \(k) d \(d) p \(p)")
      } else {
        #expect(result.diagnostics.isEmpty, "size \(size) k \(k) s \(s) p \(p) d \(d): \(result.diagnostics)")
      }
    }
  }

  @Test(arguments: [false, true])
  func poolingOutputSizesMatchEnumeration(ceilMode: Bool) {
    var rng = SplitMix64(seed: ceilMode ? 4 : 3)
    for _ in 0..<300 {
      let size = Int.random(in: 1...40, using: &rng)
      let k = Int.random(in: 1...6, using: &rng), s = Int.random(in: 1...4, using: &rng)
      let p = Int.random(in: 0...(k / 2), using: &rng)
      let expected = Self.countWindows(size: size, kernel: k, stride: s, padding: p, dilation: 1, ceil: ceilMode)
      guard expected > 0 else { continue }
      let result = compile(
        """
        graph g(x: f32[1, 2, \(size), \(size)]) -> (y: f32[1, 2, \(expected), \(expected)]) {
          y = max_pool2d(x, kernel: \(k), stride: \(s), padding: \(p), ceil_mode: \(ceilMode))
        }
        """)
      #expect(result.diagnostics.isEmpty, "size \(size) k \(k) s \(s) p \(p) ceil \(ceilMode): \(result.diagnostics)")
    }
  }

  /// Reshape keeps the element count: any factorisation of a shape's size is accepted, with
  /// `-1` standing for any one factor; any other count is refused.
  @Test func reshapePreservesElementCount() {
    var rng = SplitMix64(seed: 5)
    for _ in 0..<200 {
      let dims = (0..<Int.random(in: 1...4, using: &rng)).map { _ in Int.random(in: 1...6, using: &rng) }
      let total = dims.reduce(1, *)
      var target = [total]
      // Split the total into random factors.
      for f in [2, 3, 5] where target[0] % f == 0 && Bool.random(using: &rng) {
        target[0] /= f
        target.append(f)
      }
      let wild = Int.random(in: 0..<target.count, using: &rng)
      var shown = target.map(String.init)
      shown[wild] = "-1"
      let ok = compile(
        """
        graph g(x: f32\(Self.shapeText(dims))) -> (y: f32\(Self.shapeText(target))) {
          y = reshape(x, shape: [\(shown.joined(separator: ", "))])
        }
        """)
      #expect(ok.diagnostics.isEmpty, "\(dims) → \(shown): \(ok.diagnostics)")
      let bad = compile(
        """
        graph g(x: f32\(Self.shapeText(dims))) -> (y: f32[\(total + 1)]) {
          y = reshape(x, shape: [\(total + 1)])
        }
        """)
      #expect(bad.diagnostics.first?.message.contains("has \(total) elements but target") == true)
    }
  }

  /// Symbolic dimensions multiply and divide exactly.
  @Test func symbolicProducts() throws {
    let bt = try #require(Dim(symbol: "B").multiplied(by: Dim(symbol: "T")))
    #expect(bt.description == "B*T")
    #expect(bt.divided(by: Dim(symbol: "T")) == Dim(symbol: "B"))
    #expect(bt.divided(by: Dim(2)) == nil)
    let scaled = try #require(Dim(4).multiplied(by: bt))
    #expect(scaled.description == "4*B*T")
    #expect(scaled.substituting(["B": 2, "T": 3]) == Dim(24))
    #expect(Dim(Int.max).multiplied(by: Dim(2)) == nil)
  }
}
