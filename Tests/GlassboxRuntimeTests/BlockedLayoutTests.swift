import GlassboxIR
import GlassboxPasses
import GlassboxReference
@testable import GlassboxRuntime
import Testing

/// Programs whose convolutions `choose-layouts` blocks (NCHW16c), against the Float64 reference
/// interpreter on the graph as written, on both kernel paths (AVX-512 where the CPU has it, AVX2),
/// which must agree bit for bit, on one core and on two. The shapes take the blocked kernels' edges:
/// plain inputs of 3 and 17 channels (the last block partial), 16 to 80 output channels (one to
/// five blocks, more than one step of four), strides 2 and 3 and unequal ones, padding 0 to 3,
/// dilation, 7×7, 5×3 and 1×1 kernels, maps of 1 to 37 columns (rows shorter than a step, and
/// steps that end mid-row), Winograd's 3×3s on blocks (F(2×2, 3×3) and F(4×4, 3×3)), the bias
/// or none, residuals (blocked, and a plain input converted),
/// ReLU, max pooling of the blocked layout, elementwise ops on blocked operands, and outputs and
/// taps read back in the plain layout.
struct BlockedLayoutTests {
  static let specs: [String] = [
    // A ResNet stem and first block on a small odd image, two images.
    """
    graph g(x: f32[2, 3, 37, 29]) -> (y: f32[2, 10], f: f32[2, 48, 5, 4]) {
      s = relu(conv2d(x, out: 32, kernel: 7, stride: 2, padding: 3))
      p = max_pool2d(s, kernel: 3, stride: 2, padding: 1)
      c = conv2d(relu(conv2d(p, out: 32, kernel: 3, padding: 1)), out: 32, kernel: 3, padding: 1)
      r = relu(add(c, p))
      f = conv2d(r, out: 48, kernel: 1, stride: 2)
      y = linear(flatten(global_avg_pool2d(f)), out: 10)
    }
    """,
    // Odd geometry: 17 plain input channels (a blocked result from a plain input, as written),
    // strides 3 and 2, unequal padding, dilation 2, a 5×3 kernel, 80 output channels, a plain
    // residual, elementwise ops on two blocked operands.
    """
    graph g(x: f32[1, 17, 23, 37], r: f32[1, 80, 8, 19]) -> (y: f32[1, 80, 8, 19], z: f32[1, 16, 8, 19], u: f32[1, 64, 4, 10]) {
      param w: f32[80, 17, 5, 3] init uniform(0.1)
      param b: f32[80] init uniform(0.1)
      y = from_blocked(conv2d(x, w, b, to_blocked(r), stride: [3, 2], padding: [2, 1], activation: relu, layout: blocked))
      a = conv2d(y, out: 16, kernel: 3, padding: 2, dilation: 2)
      e = conv2d(y, out: 16, kernel: 1, bias: false)
      z = sigmoid(mul(a, e))
      u = conv2d(y, out: 64, kernel: 3, stride: 2, padding: 1)
    }
    """,
    // Small maps: 7×7, 3×3 and a 1-column map; one image on two cores, so split by blocks or rows;
    // an RGB input read plain (three lanes of one block), as written; blocked max pooling with
    // ceil mode and with dilation.
    """
    graph g(x: f32[1, 64, 7, 7], q: f32[1, 32, 9, 1], c: f32[1, 3, 11, 9]) -> (y: f32[1, 128, 7, 7], z: f32[1, 64, 4, 4], t: f32[1, 16, 9, 1], u: f32[1, 16, 6, 5], m: f32[1, 64, 2, 2], d: f32[1, 128, 3, 3]) {
      y = relu(conv2d(x, out: 128, kernel: 3, padding: 1))
      z = conv2d(y, out: 64, kernel: 3, stride: 2, padding: 1, bias: false)
      t = conv2d(q, out: 16, kernel: [3, 1], padding: [1, 0])
      param k: f32[16, 3, 3, 3] init uniform(0.1)
      u = from_blocked(conv2d(c, k, stride: 2, padding: 1, layout: blocked))
      m = max_pool2d(z, kernel: 3, stride: 2, ceil_mode: true)
      d = max_pool2d(y, kernel: 3, stride: 2, padding: 1, dilation: 2)
    }
    """,
    // Winograd's 3×3 convolutions reading and writing blocks: one image (the transforms and
    // GEMMs shared over the cores), two (each core its own image), odd maps, a blocked residual
    // and ReLU; one reading a plain input, as written (on the blocked direct kernel instead).
    """
    graph g(x: f32[1, 64, 15, 13], s: f32[2, 64, 12, 17]) -> (y: f32[1, 64, 15, 13], z: f32[2, 80, 12, 17]) {
      param wa: f32[64, 64, 3, 3] init uniform(0.05)
      param ba: f32[64] init uniform(0.05)
      a = from_blocked(conv2d(x, wa, ba, padding: 1, activation: relu, layout: blocked))
      y = relu(add(conv2d(a, out: 64, kernel: 3, padding: 1), a))
      b = conv2d(s, out: 64, kernel: 3, padding: 1)
      z = relu(conv2d(b, out: 80, kernel: 3, padding: 1))
    }
    """,
    // Winograd F(4×4, 3×3) on blocks (maps of 24 outputs a side and more): three images, so
    // that a core's chunks of tile rows run from one image into the next, maps that are no
    // multiple of 4 (the last tiles partly past them), padding 1 and 2, a residual converted
    // from the plain input, and ReLU; and 96 channels on one image, where the weights outweigh
    // the tiles (every step shared over the cores, the GEMMs by ξ).
    """
    graph g(x: f32[3, 64, 24, 26], s: f32[1, 96, 24, 24]) -> (y: f32[3, 64, 24, 26], z: f32[3, 16, 26, 28], u: f32[1, 96, 24, 24]) {
      y = relu(add(conv2d(x, out: 64, kernel: 3, padding: 1), x))
      z = conv2d(y, out: 16, kernel: 3, padding: 2)
      u = relu(conv2d(s, out: 96, kernel: 3, padding: 1))
    }
    """,
    // Max pooling of convolutions on one image large enough to split over two cores, by pooled
    // rows (an odd number of them, the windows of a core's first rows reaching into the other
    // core's half): each convolution computed inside its pooling's kernel
    // (`pooledConvolutionsHaveNoStorage`) — a stem under 3×3 windows of stride 2, a dilated 3×3
    // under 2×2 windows in ceil mode (the last window one row and one column), and a 1×1 (whose
    // rows the kernel takes as one run of outputs) under 3×3 windows of stride 1.
    """
    graph g(x: f32[1, 3, 131, 125]) -> (p: f32[1, 32, 33, 32], q: f32[1, 32, 17, 16], u: f32[1, 16, 33, 32]) {
      s = relu(conv2d(x, out: 32, kernel: 7, stride: 2, padding: 3))
      p = max_pool2d(s, kernel: 3, stride: 2, padding: 1)
      q = max_pool2d(conv2d(p, out: 32, kernel: 3, padding: 2, dilation: 2), kernel: 2, stride: 2, ceil_mode: true)
      u = max_pool2d(relu(conv2d(p, out: 16, kernel: 1)), kernel: 3, stride: 1, padding: 1)
    }
    """,
  ]

  @Test(arguments: specs.indices)
  func blockedProgramsEqualTheReference(_ index: Int) throws {
    let graph = try Spec.checkedGraph(SourceText(fileName: "blocked\(index).graph", text: Self.specs[index]))
    let parameters = DeterministicTensors.parameters(of: graph)
    let inputs = DeterministicTensors.inputs(of: graph)
    var reference = ReferenceInterpreter(graph: graph)
    let expected = try reference.run(inputs: inputs, parameters: parameters)
    var module = Module(graph: graph, weights: parameters)
    Pipeline.run(Pipeline.inference(blockedLayouts: true), on: &module)
    #expect(Verifier.verify(module.graph).isEmpty)
    // Blocked: every convolution of 16·k output channels (so all here).
    let convolutions = graph.nodes.filter { $0.op == .conv2d }.count
    let blocked = module.graph.nodes.filter { $0.op == .conv2d && ConvolutionAttributes(of: $0).layout == .blocked }
    #expect(blocked.count == convolutions)
    // The kernel paths agree bit for bit at each core count (a GEMM on OpenBLAS, as the linear
    // layer's, may sum in another order when the work is split differently over two cores).
    var first: [Int: [String: Tensor]] = [:]
    for path in KernelPath.available {
      for threads in [1, 2] {
        let actual = try path.run {
          let program = try Executable(graph: module.graph, parameters: module.weights, threads: threads)
          #expect(program.program.filter { $0.hasSuffix("blocked)") }.count >= convolutions)
          if index == 4 {  // F(4×4, 3×3): all three
            #expect(program.program.filter { $0.hasSuffix("(winograd 4×4, blocked)") }.count == 3)
          }
          return try program.run(inputs: inputs)
        }
        for output in graph.outputs {
          let e = try #require(expected[graph[output.value].name]), a = try #require(actual[output.name])
          #expect(a.shape == e.shape)
          let scale = e.doubles.reduce(1e-3) { max($0, abs($1)) }
          let diff = try #require(maxAbsDifference(a, e))
          #expect(diff <= 1e-5 * scale, "case \(index) \(output.name), \(path), \(threads) threads: \(diff)")
        }
        if let first = first[threads] {
          let differences = sameBits(first, actual)
          #expect(differences.isEmpty, "case \(index), \(path), \(threads) threads: \(differences)")
        } else {
          first[threads] = actual
        }
      }
    }
  }

  /// A max pooling computes the convolution it reads inside its own kernel where nothing else
  /// reads the convolution's result: that result has no storage and the convolution no kernel of
  /// its own. Not where the result is also an output, or where a residual is added (the
  /// convolutions of specs 0 and 2, whose pooled values are outputs or feed a residual, keep
  /// their kernels). The numbers are checked against the reference with the other specs
  /// (`blockedProgramsEqualTheReference`, spec 5; spec 0 pools its stem on two images).
  @Test func pooledConvolutionsHaveNoStorage() throws {
    for (index, fused) in [(5, ["s", "q.conv2d", "u.relu"]), (0, ["s"]), (2, [])] {
      let graph = try Spec.checkedGraph(SourceText(fileName: "blocked\(index).graph", text: Self.specs[index]))
      var module = Module(graph: graph, weights: DeterministicTensors.parameters(of: graph))
      Pipeline.run(Pipeline.inference(blockedLayouts: true), on: &module)
      let g = module.graph
      for threads in [1, 2] {
        let program = try Executable(graph: g, parameters: module.weights, threads: threads)
        let pooled = g.values.indices.filter {
          if case .pooled = program.buffers.storage[$0] { return true }
          return false
        }
        #expect(
          Set(pooled.map { g.values[$0].name }) == Set(fused.map { $0 + ".blocked" }),
          "spec \(index): \(pooled.map { g.values[$0].name })")
        let together = program.program.filter { $0.contains(" + max_pool2d") }
        #expect(together.count == fused.count, "spec \(index): \(program.program)")
        #expect(
          program.program.count { $0.hasPrefix("max_pool2d") } == g.nodes.count { $0.op == .maxPool2d } - fused.count)
      }
    }
  }

  /// Blocked convolutions written over their residual where nothing reads it after: a 1×1 of 64
  /// input channels (the direct kernel's one chunk) and a Winograd 3×3 each add a shortcut that is
  /// not their own input, in place; a 1×1 of 256 input channels (several chunks: a chunk's partial
  /// sums reach the output before the residual is added) and a 3×3 whose shortcut is its own
  /// input get buffers of their own. Against the Float64 reference on both kernel paths, one and
  /// two cores.
  @Test func convolutionsAddTheirShortcutInPlace() throws {
    let text = """
      graph g(x: f32[2, 64, 16, 14]) -> (y: f32[2, 64, 16, 14], z: f32[2, 64, 16, 14]) {
        p = relu(conv2d(x, out: 64, kernel: 1))
        a = relu(conv2d(p, out: 64, kernel: 1))
        b = relu(add(conv2d(a, out: 64, kernel: 1), p))
        c = relu(conv2d(b, out: 64, kernel: 3, padding: 1))
        y = relu(add(conv2d(c, out: 64, kernel: 3, padding: 1), b))
        q = relu(conv2d(y, out: 256, kernel: 1))
        e = relu(add(conv2d(q, out: 64, kernel: 1), c))
        z = relu(add(conv2d(e, out: 64, kernel: 3, padding: 1), e))
      }
      """
    let graph = try Spec.checkedGraph(SourceText(fileName: "inplace.graph", text: text))
    let parameters = DeterministicTensors.parameters(of: graph), inputs = DeterministicTensors.inputs(of: graph)
    var reference = ReferenceInterpreter(graph: graph)
    let expected = try reference.run(inputs: inputs, parameters: parameters)
    var module = Module(graph: graph, weights: parameters)
    Pipeline.run(Pipeline.inference(blockedLayouts: true), on: &module)
    let g = module.graph
    func value(_ name: String) throws -> Int { try #require(g.values.firstIndex { $0.name == name }) }
    let (p, b, y) = (try value("p.blocked"), try value("b.blocked"), try value("y.blocked"))
    let (e, z) = (try value("e.blocked"), try value("z.blocked"))
    for path in KernelPath.available {
      for threads in [1, 2] {
        let program = try path.run { try Executable(graph: g, parameters: module.weights, threads: threads) }
        let storage = program.buffers.storage
        #expect(storage[b] == .inPlace(over: p), "b: \(storage[b])")
        #expect(storage[y] == .inPlace(over: b) || storage[y] == .inPlace(over: p), "y: \(storage[y])")
        #expect(storage[e] == .buffer && storage[z] == .buffer, "e: \(storage[e]), z: \(storage[z])")
        #expect(program.program.contains { $0.hasPrefix("conv2d y.blocked (winograd") })
        let actual = try path.run { try program.run(inputs: inputs) }
        for output in graph.outputs {
          let e = try #require(expected[graph[output.value].name]), a = try #require(actual[output.name])
          let scale = e.doubles.reduce(1e-3) { max($0, abs($1)) }
          let diff = try #require(maxAbsDifference(a, e))
          #expect(diff <= 1e-5 * scale, "\(output.name), \(path), \(threads) threads: \(diff)")
        }
      }
    }
  }

  /// Max pooling of the blocked layout lets a NaN win, as the plain kernel and PyTorch do, and
  /// pads with −∞ (a window of negative numbers over the border keeps its maximum).
  @Test func blockedMaxPoolingLetsNaNWin() throws {
    let graph = try Spec.checkedGraph(
      SourceText(
        fileName: "nan.graph",
        text: """
          graph g(x: f32[1, 32, 5, 5]) -> (y: f32[1, 32, 3, 3]) {
            y = from_blocked(max_pool2d(to_blocked(x), kernel: 3, stride: 2, padding: 1))
          }
          """))
    var values = (0..<(32 * 25)).map { -1 - Float($0 % 7) }
    values[17 * 25 + 1 * 5 + 1] = .nan  // channel 17 (second block, lane 1), row 1, column 1: four windows
    let x = Tensor(shape: [1, 32, 5, 5], f32: values)
    var reference = ReferenceInterpreter(graph: graph)
    let expected = try #require(try reference.run(inputs: ["x": x])["y"])
    for path in KernelPath.available {
      let y = try #require(
        try path.run { try Executable(graph: graph, parameters: [:], threads: 1).run(inputs: ["x": x]) }["y"])
      let a = y.floats, e = expected.doubles
      #expect(a.count == e.count)
      for i in a.indices {
        #expect(a[i].isNaN == e[i].isNaN && (a[i].isNaN || Double(a[i]) == e[i]), "\(path) element \(i)")
      }
      #expect(a.filter(\.isNaN).count == 4)
    }
  }
}
