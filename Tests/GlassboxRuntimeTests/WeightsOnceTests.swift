import GlassboxIR
import GlassboxPasses
import GlassboxReference
@testable import GlassboxRuntime
import Testing

/// Weights stored once: a parameter that only kernels deriving their own copy of it read (a
/// direct or Winograd convolution's weights) has no slot in the arena
/// (`BufferAssignment.Storage.derivedOnly`); `setParameters` hands the caller's tensor to the
/// kernels' `prepare`, and setting parameters again derives the copies again. A parameter any
/// other node, operand, output or tap reads keeps its slot. Values against the Float64
/// reference interpreter.
struct WeightsOnceTests {
  /// A small CNN: a direct stem (3×3, stride 2), a Winograd 3×3 (36 tiles), a pointwise
  /// convolution of 144 outputs per image (direct), and a pointwise weight `p` that two direct
  /// convolutions (one on a 6×6 map, by channels) share and an elementwise op reads at run time
  /// (`r`): `s`, `w` and `k` live only as derived weights, `p` keeps its slot.
  static let spec = """
    graph g(x: f32[1, 3, 24, 24]) -> (y: f32[1, 32, 12, 12], z: f32[1, 32, 6, 6], u: f32[1, 40, 12, 12], r: f32[32, 64, 1, 1]) {
      param s: f32[64, 3, 3, 3] init uniform(0.1)
      param sb: f32[64] init uniform(0.1)
      param w: f32[64, 64, 3, 3] init uniform(0.1)
      param p: f32[32, 64, 1, 1] init uniform(0.1)
      param k: f32[40, 64, 1, 1] init uniform(0.1)
      param kb: f32[40] init uniform(0.1)
      stem = conv2d(x, s, sb, stride: [2, 2], padding: [1, 1], activation: relu)
      body = conv2d(stem, w, padding: [1, 1], activation: relu)
      y = conv2d(body, p)
      z = conv2d(max_pool2d(body, kernel: 2, stride: 2), p)
      u = conv2d(body, k, kb, activation: relu)
      r = relu(p)
    }
    """

  static func inputs(_ graph: Graph) -> [String: Tensor] {
    var inputs: [String: Tensor] = [:]
    for id in graph.inputs where graph[id].type.dtype == .f32 {
      inputs[graph[id].name] = DeterministicTensors.tensor(
        "input:" + graph[id].name, shape: graph[id].type.shape.map { $0.staticValue ?? 1 })
    }
    return inputs
  }

  /// Other values for every f32 parameter (f64 tensors, so `setParameters` converts them too).
  static func otherParameters(_ graph: Graph, _ parameters: [String: Tensor]) -> [String: Tensor] {
    var out = parameters
    for p in graph.parameters where p.type.dtype == .f32 {
      let shape = p.type.shape.map { $0.staticValue ?? 1 }
      let values = DeterministicTensors.values("again:" + p.name, count: shape.reduce(1, *), log2Scale: 3)
      out[p.name] = Tensor(shape: shape, f64: values.map(Double.init))
    }
    return out
  }

  /// Every output of `program` against the reference on `parameters`.
  static func expectReference(
    _ program: Executable, _ graph: Graph, inputs: [String: Tensor], parameters: [String: Tensor],
    _ what: String
  ) throws -> [String: Tensor] {
    var reference = ReferenceInterpreter(graph: graph)
    let expected = try reference.run(inputs: inputs, parameters: parameters)
    let actual = try program.run(inputs: inputs)
    for output in graph.outputs {
      let e = try #require(expected[graph[output.value].name]), a = try #require(actual[output.name])
      let scale = e.doubles.reduce(1e-3) { max($0, abs($1)) }
      let diff = try #require(maxAbsDifference(a, e))
      #expect(diff <= 1e-4 * scale, "\(what) \(output.name): \(diff) (scale \(scale))")
    }
    return actual
  }

  @Test func convolutionWeightsLiveOnlyAsDerivedWeights() throws {
    let graph = try Spec.checkedGraph(SourceText(fileName: "weights.graph", text: Self.spec))
    let parameters = DeterministicTensors.parameters(of: graph)
    let inputs = Self.inputs(graph)
    for threads in [1, 2] {
      let program = try Executable(graph: graph, parameters: parameters, threads: threads)
      #expect(program.program.filter { $0.hasSuffix("(direct)") }.count == 4)
      #expect(program.program.filter { $0.hasSuffix("(winograd)") }.count == 1)
      #expect(program.program.filter { $0.hasPrefix("conv2d z") }.count == 1)
      let buffers = program.buffers
      func value(_ name: String) throws -> Int { try #require(graph.value(named: name)).index }
      for name in ["s", "w", "k"] {
        #expect(buffers.storage[try value(name)] == .derivedOnly, "\(name)")
        #expect(buffers.offsets[try value(name)] == -1, "\(name)")
      }
      for name in ["sb", "p", "kb"] { #expect(buffers.storage[try value(name)] == .parameter, "\(name)") }
      // The static region is the parameters read as they are, the input and the derived
      // weights: the OIHW originals of s, w and k (1,728 + 36,864 + 2,560 floats) are not in it.
      let count = { (v: Int) in MemoryPlan.round(BufferAssignment.elementCount(graph.values[v].type)) }
      let slotted = try ["sb", "p", "kb", "x"].reduce(0) { $0 + count(try value($1)) }
      let derived = graph.nodes.map { Lowering.persistent($0, graph) }.filter { $0 > 0 }.reduce(0) {
        $0 + MemoryPlan.round($1)
      }
      #expect(buffers.staticCount == slotted + derived)
      let originals = try ["s", "w", "k"].reduce(0) { $0 + count(try value($1)) }
      #expect(originals == 1728 + 36864 + 2560)

      let first = try Self.expectReference(program, graph, inputs: inputs, parameters: parameters, "first")
      // New weights (f64, converted on the way) are derived again: the outputs are the
      // reference's for them, not the first ones.
      let other = Self.otherParameters(graph, parameters)
      try program.setParameters(other)
      let second = try Self.expectReference(program, graph, inputs: inputs, parameters: other, "second")
      for name in ["y", "z", "u"] {
        let a = try #require(first[name]), b = try #require(second[name])
        #expect(try #require(maxAbsDifference(a, b)) > 1e-3, "\(name)")
      }
      // Back to the first weights: the first outputs, bit for bit.
      try program.setParameters(parameters)
      #expect(sameBits(first, try program.run(inputs: inputs)).isEmpty)
    }
  }

  @Test func aParameterWithNoSlotIsStillRequired() throws {
    let graph = try Spec.checkedGraph(SourceText(fileName: "weights.graph", text: Self.spec))
    var parameters = DeterministicTensors.parameters(of: graph)
    let program = try Executable(graph: graph, parameters: parameters, threads: 1)
    parameters["w"] = nil
    #expect(throws: Executable.InputError.self) { try program.setParameters(parameters) }
    parameters["w"] = Tensor(zeros: .f32, shape: [64, 64, 3, 1])
    #expect(throws: Executable.InputError.self) { try program.setParameters(parameters) }
    #expect(throws: Executable.InputError.self) { try Executable(graph: graph, parameters: parameters) }
  }

  /// In a training step the weights of the stem (direct; no input gradient wanted) and of the
  /// Winograd convolution (its input gradient reads the forward's transform) have no slot; the
  /// stride-2 convolution's keeps one, since its input gradient (im2col, `Conv2dBackwardInput`)
  /// reads the weights at run time. The loss and gradients are the reference's, for the first
  /// weights and for new ones set as each training step sets them.
  @Test func trainingStepsKeepWhatTheirGradientsRead() throws {
    let spec = """
      graph g(image: f32[B, 3, 24, 24]) -> (logits: f32[B, 5]) {
        param s: f32[64, 3, 3, 3] init uniform(0.1)
        param w: f32[64, 64, 3, 3] init uniform(0.1)
        param d: f32[16, 64, 3, 3] init uniform(0.1)
        stem = conv2d(image, s, stride: [2, 2], padding: [1, 1], activation: relu)
        body = conv2d(stem, w, padding: [1, 1], activation: relu)
        down = conv2d(body, d, stride: [2, 2], padding: [1, 1], activation: relu)
        logits = linear(flatten(global_avg_pool2d(down)), out: 5)
      }
      """
    let model = try Spec.checkedGraph(SourceText(fileName: "train.graph", text: spec), bindings: ["B": 1])
    let step = try TrainingProgram.make(from: model, logits: "logits")
    let g = step.graph
    let parameters = DeterministicTensors.parameters(of: g)
    let program = try Executable(graph: g, parameters: parameters, threads: 2)
    let buffers = program.buffers
    func value(_ name: String) throws -> Int { try #require(g.value(named: name)).index }
    #expect(buffers.storage[try value("s")] == .derivedOnly)
    #expect(buffers.storage[try value("w")] == .derivedOnly)
    #expect(buffers.storage[try value("d")] == .parameter)
    let backward = g.nodes.indices.filter { g.nodes[$0].op == .conv2dBackwardInput }
    let byWeight = Dictionary(uniqueKeysWithValues: backward.map { (g.nodes[$0].operands[1].index, $0) })
    #expect(buffers.sharesForward[try #require(byWeight[try value("w")])])
    #expect(program.program.contains { $0.hasPrefix("conv2d_backward_input") && $0.hasSuffix("(winograd)") })
    let inputs = TrainingProgramTests.inputs(step)
    _ = try Self.expectReference(program, g, inputs: inputs, parameters: parameters, "step 1")
    let other = Self.otherParameters(g, parameters)
    try program.setParameters(other)
    _ = try Self.expectReference(program, g, inputs: inputs, parameters: other, "step 2")
  }
}
