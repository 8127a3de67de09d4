import GlassboxIR
import GlassboxReference
@testable import GlassboxRuntime
import Testing

/// Max pooling of stride 2 and its gradient against a plain loop over each window, on both
/// kernels (eight windows at a time in Swift and, where the CPU has it, whole planes sixteen
/// windows at a time in CKernels, which must agree bit for bit: which one runs depends on the
/// machine). Values repeat (ties go to the first maximum, −0 or +0 whichever comes first) and
/// some are NaN of several payloads: as in PyTorch (`val > maxval || isnan(val)`), a window
/// with a NaN gives its last NaN and its gradient goes there.
struct PoolKernelTests {
  /// (H, W, kernel, padding, dilation): ResNet's stem and its half, rows whose interior windows
  /// leave a partial last vector of more and fewer than eight, unpadded windows of 2, dilated
  /// ones, rows of more than 64 windows (two blocks of CKernels, the second partial), windows
  /// of 5 padded by 2, a map smaller than a window.
  static let cases: [(Int, Int, Int, Int, Int)] = [
    (112, 112, 3, 1, 1), (56, 56, 3, 1, 1), (21, 40, 3, 1, 1), (9, 37, 3, 1, 1), (7, 70, 2, 0, 1),
    (11, 45, 3, 1, 2), (5, 150, 3, 1, 1), (13, 33, 5, 2, 1), (2, 2, 3, 1, 1),
  ]

  static func pool(_ c: (Int, Int, Int, Int, Int)) -> Pool {
    let (h, w, k, p, d) = c
    let oh = (h + 2 * p - d * (k - 1) - 1) / 2 + 1, ow = (w + 2 * p - d * (k - 1) - 1) / 2 + 1
    return Pool(
      label: "", isMax: true, planes: 3, h: h, w: w, oh: oh, ow: ow, kernel: (k, k), stride: (2, 2),
      padding: (p, p), dilation: (d, d), countIncludePad: false, x: 0, out: 3 * h * w)
  }

  /// Inputs of three planes (steps of 0.5 in [−4, 4], so ties are common, zeros of either
  /// sign, and a NaN of one of eight payloads and either sign in one value of twenty); or the
  /// outputs' gradients (sevenths, whose sums round differently in another order).
  static func values(count: Int, seed: UInt64, inputs: Bool) -> [Float] {
    var state = seed
    return (0..<count).map { _ in
      state = state &* 6364136223846793005 &+ 1442695040888963407
      let r = Int(state >> 33)
      if !inputs { return Float(r % 1001 - 500) / 7 }
      let sign: FloatingPointSign = r / 20 % 2 == 0 ? .plus : .minus
      if r % 20 == 0 {
        return Float(sign: sign, exponentBitPattern: 255, significandBitPattern: 1 << 22 | UInt32(r / 40 % 8))
      }
      return r % 17 == 8 ? Float(sign: sign, exponent: 0, significand: 0) : Float(r % 17 - 8) / 2
    }
  }

  /// The windows of output (plane, oy, ox): indices into the plane, in window order.
  static func window(_ p: Pool, _ oy: Int, _ ox: Int) -> [Int] {
    var indices: [Int] = []
    for ky in 0..<p.kernel.0 {
      for kx in 0..<p.kernel.1 {
        let y = oy * 2 - p.padding.0 + ky * p.dilation.0, x = ox * 2 - p.padding.1 + kx * p.dilation.1
        if y >= 0 && y < p.h && x >= 0 && x < p.w { indices.append(y * p.w + x) }
      }
    }
    return indices
  }

  /// Runs the forward and the gradient; the arena is x, y, dy, dx.
  static func run(_ c: (Int, Int, Int, Int, Int), wide: Bool) -> (pool: Pool, arena: [Float]) {
    let p = pool(c)
    let inputs = 3 * p.h * p.w, outputs = 3 * p.oh * p.ow
    var arena =
      values(count: inputs, seed: UInt64(p.w), inputs: true) + [Float](repeating: .nan, count: outputs)
      + values(count: outputs, seed: UInt64(p.h), inputs: false) + [Float](repeating: .nan, count: inputs)
    let backward = PoolBackward(label: "", pool: p, dy: inputs + outputs, x: 0, dx: inputs + 2 * outputs)
    arena.withUnsafeMutableBufferPointer { a in
      p.run(a.baseAddress!, planes: 0..<3, wide: wide)
      backward.run(a.baseAddress!, planes: 0..<3, wide: wide)
    }
    return (p, arena)
  }

  static func check(wide: Bool) {
    for c in cases {
      let (p, a) = run(c, wide: wide)
      let inputs = 3 * p.h * p.w, outputs = 3 * p.oh * p.ow
      var dx = [Float](repeating: 0, count: inputs), wrongY: [Int] = []
      for plane in 0..<3 {
        for oy in 0..<p.oh {
          for ox in 0..<p.ow {
            let window = Self.window(p, oy, ox).map { plane * p.h * p.w + $0 }
            var best = window[0]
            for i in window.dropFirst() where a[i] > a[best] || a[i].isNaN { best = i }
            let o = (plane * p.oh + oy) * p.ow + ox
            let y = a[inputs + o]
            if y.bitPattern != a[best].bitPattern { wrongY.append(o) }
            dx[best] += a[inputs + outputs + o]
          }
        }
      }
      let wrongDx = (0..<inputs).filter { a[inputs + 2 * outputs + $0] != dx[$0] }
      #expect(wrongY.isEmpty, "\(c), wide \(wide): y wrong at \(wrongY.prefix(8))")
      #expect(wrongDx.isEmpty, "\(c), wide \(wide): dx wrong at \(wrongDx.prefix(8))")
    }
  }

  @Test func swiftKernelsMatchWindowByWindow() { Self.check(wide: false) }

  @Test(.enabled(if: AVX512.supported, KernelPath.noAVX512))
  func avx512KernelsMatchWindowByWindowAndTheSwiftKernelsBitForBit() {
    Self.check(wide: true)
    for c in Self.cases {
      let same = Self.run(c, wide: true).arena.map(\.bitPattern) == Self.run(c, wide: false).arena.map(\.bitPattern)
      #expect(same, "\(c)")
    }
  }

  /// Max pooling compiled from a graph on each kernel path, on one core and on two (64 planes,
  /// split between them), against the Float64 reference interpreter: the same bits on every
  /// run, and the reference's values (a NaN where it has one, the sign of a zero kept). Rows of
  /// 35 windows (two vectors and three), 75 (two blocks of CKernels), padded, unpadded, dilated,
  /// ceil mode, a window of 3 at stride 1 (the general loop on both paths).
  @Test func pathsAndCoresAgreeWithTheReference() throws {
    let graph = try Spec.checkedGraph(
      SourceText(
        fileName: "pool.graph",
        text: """
          graph g(x: f32[1, 64, 40, 70], s: f32[2, 4, 9, 150]) -> (
              a: f32[1, 64, 20, 35], b: f32[1, 64, 20, 35], c: f32[1, 64, 19, 34], d: f32[1, 64, 20, 35],
              e: f32[2, 4, 5, 75], f: f32[1, 64, 40, 70]) {
            a = max_pool2d(x, kernel: 3, stride: 2, padding: 1)
            b = max_pool2d(x, kernel: 2)
            c = max_pool2d(x, kernel: 3, stride: 2, padding: 1, dilation: 2)
            d = max_pool2d(x, kernel: 3, stride: 2, ceil_mode: true)
            e = max_pool2d(s, kernel: 3, stride: 2, padding: 1)
            f = max_pool2d(x, kernel: 3, stride: 1, padding: 1)
          }
          """))
    let inputs = [
      "x": Tensor(shape: [1, 64, 40, 70], f32: Self.values(count: 64 * 40 * 70, seed: 5, inputs: true)),
      "s": Tensor(shape: [2, 4, 9, 150], f32: Self.values(count: 8 * 9 * 150, seed: 7, inputs: true)),
    ]
    var reference = ReferenceInterpreter(graph: graph)
    let expected = try reference.run(inputs: inputs, parameters: [:])
    var first: [String: Tensor]?
    for path in KernelPath.available {
      for threads in [1, 2] {
        let outputs = try path.run {
          try Executable(graph: graph, parameters: [:], threads: threads).run(inputs: inputs)
        }
        if let first {
          let problems = sameBits(first, outputs)
          #expect(problems.isEmpty, "\(path), \(threads) threads: \(problems.prefix(5))")
        } else {
          first = outputs
        }
        for output in graph.outputs {
          let e = try #require(expected[graph[output.value].name]).doubles
          let a = try #require(outputs[output.name]).floats
          #expect(a.count == e.count)
          let wrong = a.indices.filter { i in
            a[i].isNaN != e[i].isNaN || !a[i].isNaN && a[i].bitPattern != Float(e[i]).bitPattern
          }
          #expect(wrong.isEmpty, "\(output.name), \(path), \(threads) threads: wrong at \(wrong.prefix(8))")
        }
      }
    }
  }
}
