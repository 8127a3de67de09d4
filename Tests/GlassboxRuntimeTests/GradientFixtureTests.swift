import Foundation
import GlassboxIR
import GlassboxPasses
import GlassboxReference
@testable import GlassboxRuntime
import Testing

/// Training steps of the study models against PyTorch (`tools/reference/gradient_fixtures.py`):
/// the loss and the gradients of every parameter and of the input, summarised (sum, norm,
/// largest magnitude, 24 sampled elements), within 1e-3 relative — for the compiled f32 program
/// and, for the LSTM models, the Float64 reference interpreter too.
struct GradientFixtureTests {
  static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
    "Fixtures/gradient")
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  static var names: [String] {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
    return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
  }

  struct Summary {
    var shape: [Int], sum: Double, norm: Double, absmax: Double, indices: [Int], values: [Double]

    init(_ o: [String: Any]) throws {
      guard let shape = o["shape"] as? [Int], let sum = o["sum"] as? Double, let norm = o["norm"] as? Double,
        let absmax = o["absmax"] as? Double, let indices = o["indices"] as? [Int], let values = o["values"] as? [Double]
      else { throw Executable.InputError(description: "gradient fixture: a summary lacks a field") }
      (self.shape, self.sum, self.norm, self.absmax, self.indices, self.values) = (
        shape, sum, norm, absmax, indices, values
      )
    }

    /// Problems comparing `t` with this summary, within `tolerance` relative. A gradient that
    /// is zero up to PyTorch's float64 rounding (largest magnitude below 1e-12, e.g. an
    /// attention bias, to which a softmax over time is blind) must be zero up to f32 rounding:
    /// within 1e-6 of `modelScale`, the largest gradient magnitude of the model.
    func compare(_ t: Tensor, _ label: String, modelScale: Double, tolerance: Double = 1e-3) -> [String] {
      guard t.shape == shape else { return ["\(label): shape \(t.shape), expected \(shape)"] }
      let v = t.doubles
      if absmax < 1e-12 {
        let largest = v.reduce(0) { max($0, abs($1)) }
        return largest <= 1e-6 * modelScale ? [] : ["\(label): \(largest), expected zero (model scale \(modelScale))"]
      }
      var problems: [String] = []
      let scale = absmax
      for (i, e) in zip(indices, values) where abs(v[i] - e) > tolerance * scale {
        problems.append("\(label)[\(i)]: \(v[i]), expected \(e) (largest magnitude \(absmax))")
      }
      let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
      if abs(norm - self.norm) > tolerance * max(self.norm, 1e-12) {
        problems.append("\(label): norm \(norm), expected \(self.norm)")
      }
      let sum = v.reduce(0, +)
      // Rounding errors of n elements add up to about √n·ε·rms = ε·norm in a cancelling sum.
      if abs(sum - self.sum) > tolerance * max(abs(self.sum), self.norm) {
        problems.append("\(label): sum \(sum), expected \(self.sum)")
      }
      return problems
    }
  }

  static func load(
    _ name: String
  ) throws -> (
    program: TrainingProgram, inputs: [String: Tensor], loss: Double,
    gradients: [String: Summary]
  ) {
    let json = try JSONSerialization.jsonObject(
      with: Data(contentsOf: directory.appendingPathComponent(name + ".json")))
    guard let o = json as? [String: Any], let spec = o["spec"] as? String,
      let bindings = o["bindings"] as? [String: Int],
      let loss = o["loss"] as? Double, let grads = o["gradients"] as? [String: [String: Any]],
      let inputGrads = o["input_gradients"] as? [String: [String: Any]]
    else { throw Executable.InputError(description: "\(name).json: unexpected layout") }
    let url = root.appendingPathComponent("graphs/\(spec).graph")
    let graph = try Spec.checkedGraph(
      SourceText(fileName: "graphs/\(spec).graph", text: try String(contentsOf: url, encoding: .utf8)),
      bindings: bindings)
    let program = try TrainingProgram.make(from: graph, logits: "logits", inputGradients: true)
    var inputs: [String: Tensor] = [:]
    for id in program.graph.inputs {
      let v = program.graph[id]
      let shape = v.type.shape.map { $0.staticValue ?? 1 }
      let t = DeterministicTensors.tensor("input:" + v.name, shape: shape)
      inputs[v.name] =
        v.type.dtype == .i64
        ? Tensor(shape: shape, storage: .i64(t.floats.map { Int64(((Double($0) + 1) * 2).rounded(.down)) })) : t
    }
    var gradients: [String: Summary] = [:]
    for (k, v) in grads { gradients["grad.\(k)"] = try Summary(v) }
    for (k, v) in inputGrads { gradients["grad.\(k)"] = try Summary(v) }
    return (program, inputs, loss, gradients)
  }

  static func check(_ name: String, outputs: (String) -> Tensor?, label: String, tolerance: Double = 1e-3) throws {
    let (program, _, loss, gradients) = try load(name)
    let l = try #require(outputs("loss")).doubles[0]
    #expect(abs(l - loss) <= tolerance * abs(loss), "\(name) \(label): loss \(l), expected \(loss)")
    #expect(
      Set(gradients.keys).isSubset(of: Set(program.graph.outputs.map(\.name))), "\(name): every gradient is an output")
    var problems: [String] = []
    let modelScale = gradients.values.reduce(0) { max($0, $1.absmax) }
    for (output, summary) in gradients.sorted(by: { $0.key < $1.key }) {
      guard let t = outputs(output) else { problems.append("no output \(output)"); continue }
      problems += summary.compare(t, output, modelScale: modelScale, tolerance: tolerance)
    }
    #expect(problems.isEmpty, "\(name) \(label): \(problems.prefix(10).joined(separator: "\n"))")
  }

  /// The parameterised tests below run one case per fixture file: a missing folder would
  /// pass with none.
  @Test func gradientFixturesExist() {
    #expect(
      Self.names == ["bilstm", "bilstm_attention1d", "bilstm_attention2d", "resnet18", "resnet18_lstm", "vgg19_lstm"],
      "Fixtures/gradient: \(Self.names)")
  }

  /// On the AVX2 kernels and, where the CPU has AVX-512F, on the AVX-512 ones, with the same bits.
  @Test(arguments: names)
  func compiledMatchesPyTorch(_ name: String) throws {
    let (program, inputs, _, _) = try Self.load(name)
    var runs: [KernelPath: [String: Tensor]] = [:]
    for path in KernelPath.available {
      let outputs = try path.run {
        try Executable(graph: program.graph, parameters: DeterministicTensors.parameters(of: program.graph)).run(
          inputs: inputs)
      }
      runs[path] = outputs
      try Self.check(name, outputs: { outputs[$0] }, label: "compiled f32, \(path)")
    }
    if let avx2 = runs[.avx2], let avx512 = runs[.avx512] {
      let problems = sameBits(avx2, avx512)
      #expect(problems.isEmpty, "\(name): the AVX2 and AVX-512 kernels disagree: \(problems.prefix(5))")
    }
  }

  /// The Float64 reference on the LSTM models (the CNNs take minutes in a debug build): the
  /// fixtures are PyTorch's float64 numbers, so to 1e-9, not f32's 1e-3.
  @Test(arguments: names.filter { $0.hasPrefix("bilstm") })
  func referenceMatchesPyTorch(_ name: String) throws {
    let (program, inputs, _, _) = try Self.load(name)
    var interpreter = ReferenceInterpreter(graph: program.graph)
    let values = try interpreter.run(inputs: inputs, parameters: DeterministicTensors.parameters(of: program.graph))
    let g = program.graph
    try Self.check(
      name, outputs: { name in g.outputs.first { $0.name == name }.flatMap { values[g[$0.value].name] } },
      label: "reference f64", tolerance: 1e-9)
  }

  // MARK: Every element

  static let fullDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Fixtures/gradient_full")

  /// Small models of the study's layers (`FULL` in tools/reference/gradient_fixtures.py): a spec
  /// and every element of the loss's gradient for every parameter and the input, in float64.
  static var fullNames: [String] {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: fullDirectory.path)) ?? []
    return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
  }

  @Test func fullFixturesExist() {
    #expect(
      Self.fullNames == ["bilstm_attention_small", "bilstm_last_small", "cnn_small"],
      "Fixtures/gradient_full: \(Self.fullNames)")
  }

  /// The Float64 reference's training step against PyTorch's float64 one, every element of
  /// every gradient (parameters and input) within 1e-9 of the tensor's largest magnitude. A
  /// gradient that is zero but for rounding (a bias before a softmax over time: ~1e-18) is held
  /// to 1e-9 of a millionth of the model's largest gradient instead.
  @Test(arguments: fullNames)
  func referenceMatchesPyTorchEveryElement(_ name: String) throws {
    let spec = try String(contentsOf: Self.fullDirectory.appendingPathComponent(name + ".graph"), encoding: .utf8)
    let graph = try Spec.checkedGraph(SourceText(fileName: name + ".graph", text: spec))
    let json = try JSONSerialization.jsonObject(
      with: Data(contentsOf: Self.fullDirectory.appendingPathComponent(name + ".json")))
    guard let o = json as? [String: Any], let loss = o["loss"] as? Double,
      let grads = o["gradients"] as? [String: [String: Any]],
      let inputGrads = o["input_gradients"] as? [String: [String: Any]]
    else { throw Executable.InputError(description: "\(name).json: unexpected layout") }
    let program = try TrainingProgram.make(from: graph, logits: "logits", inputGradients: true)
    var inputs: [String: Tensor] = [:]
    for id in program.graph.inputs {
      let v = program.graph[id]
      let shape = v.type.shape.map { $0.staticValue ?? 1 }
      let t = DeterministicTensors.tensor("input:" + v.name, shape: shape)
      inputs[v.name] =
        v.type.dtype == .i64
        ? Tensor(shape: shape, storage: .i64(t.floats.map { Int64(((Double($0) + 1) * 2).rounded(.down)) })) : t
    }
    var interpreter = ReferenceInterpreter(graph: program.graph)
    let values = try interpreter.run(inputs: inputs, parameters: DeterministicTensors.parameters(of: program.graph))
    let g = program.graph
    func output(_ n: String) -> Tensor? { g.outputs.first { $0.name == n }.flatMap { values[g[$0.value].name] } }
    let l = try #require(output("loss")).doubles[0]
    #expect(abs(l - loss) <= 1e-9 * abs(loss), "\(name): loss \(l), expected \(loss)")
    let expected = grads.merging(inputGrads) { a, _ in a }
    let trainable = Set(graph.parameters.filter { $0.role == .trainable }.map(\.name))
    #expect(Set(grads.keys) == trainable, "\(name): the fixture's parameters are the graph's trainable ones")
    let modelScale = expected.values.compactMap { $0["data"] as? [Double] }.joined().reduce(0) { max($0, abs($1)) }
    for (key, e) in expected.sorted(by: { $0.key < $1.key }) {
      let shape = try #require(e["shape"] as? [Int]), data = try #require(e["data"] as? [Double])
      let actual = try #require(output("grad.\(key)"), "\(name): no output grad.\(key)")
      #expect(actual.shape == shape, "\(name) grad.\(key): shape \(actual.shape), expected \(shape)")
      let scale = data.reduce(1e-6 * modelScale) { max($0, abs($1)) }
      let v = actual.doubles
      let worst = zip(v, data).map { abs($0 - $1) }.max() ?? .infinity
      #expect(
        v.count == data.count && worst <= 1e-9 * scale,
        "\(name) grad.\(key): largest difference \(worst) against magnitude \(scale) over \(data.count) elements")
    }
  }
}
