import GlassboxIR
import GlassboxPasses
import GlassboxReference
@testable import GlassboxRuntime
import Testing

/// Training programs (forward, loss and every parameter gradient) compiled to f32 kernels
/// against the same graph on the Float64 reference interpreter, whose gradient rules the
/// finite-difference checks cover.
struct TrainingProgramTests {
  static let specs: [String: String] = [
    "bilstm_attention": """
      graph g(mfcc: f32[B, 5, 3]) -> (logits: f32[B, 4]) {
        lstm = lstm(mfcc, hidden: 2, bidirectional: true)
        attention = linear(tanh(lstm), out: 1)
        weights = softmax(reshape(attention, shape: [B, 5]), axis: 1)
        context = sum(mul(lstm, reshape(weights, shape: [B, 5, 1])), axes: [1])
        logits = linear(dropout(context, p: 0.5), out: 4)
      }
      """,
    "cnn": """
      graph g(image: f32[B, 3, 9, 8]) -> (logits: f32[B, 4]) {
        conv1 = conv2d(image, out: 6, kernel: 3, stride: 2, padding: 1, bias: false)
        bn1 = batch_norm(conv1)
        pool = max_pool2d(relu(bn1), kernel: 3, stride: 2, padding: 1)
        conv2 = conv2d(pool, out: 6, kernel: 3, padding: 1, groups: 2, bias: false)
        merged = relu(add(batch_norm(conv2) @bn2, pool))
        avg = avg_pool2d(merged, kernel: 2, stride: 1)
        features = flatten(global_avg_pool2d(avg))
        logits = linear(features, out: 4)
      }
      """,
    "mlp": """
      graph g(x: f32[B, 6]) -> (logits: f32[B, 3]) {
        h = relu(linear(x, out: 5))
        s = sigmoid(linear(h, out: 5))
        logits = linear(add(mul(s, h), log_softmax(h, axis: 1)), out: 3)
      }
      """,
  ]

  static func inputs(_ program: TrainingProgram) -> [String: Tensor] {
    let g = program.graph
    var out: [String: Tensor] = [:]
    for id in g.inputs {
      let v = g[id]
      let shape = v.type.shape.map { $0.staticValue ?? 1 }
      let u = DeterministicTensors.values("input:" + v.name, count: shape.reduce(1, *))
      if v.type.dtype == .i64 {
        out[v.name] = Tensor(shape: shape, storage: .i64(u.map { Int64(($0 + 1) * 1.5) }))
      } else if program.dropoutMasks.contains(where: { $0.input == v.name }) {
        out[v.name] = Tensor(shape: shape, f32: u.map { $0 > 0 ? 2 : 0 })
      } else {
        out[v.name] = Tensor(shape: shape, f32: u)
      }
    }
    return out
  }

  @Test(arguments: specs.keys.sorted())
  func compiledMatchesReference(_ name: String) throws {
    let graph = try Spec.checkedGraph(SourceText(fileName: "\(name).graph", text: try #require(Self.specs[name])),
                                      bindings: ["B": 3])
    let program = try TrainingProgram.make(from: graph, logits: "logits")
    #expect(Verifier.verify(program.graph).isEmpty)
    #expect(program.graph.outputs.first?.name == "loss")
    let parameters = DeterministicTensors.parameters(of: program.graph)
    let inputs = Self.inputs(program)
    var reference = ReferenceInterpreter(graph: program.graph)
    let expected = try reference.run(inputs: inputs, parameters: parameters)
    let executable = try Executable(graph: program.graph, parameters: parameters, threads: 1)
    let actual = try executable.run(inputs: inputs)
    for (output, value) in program.graph.outputs {
      let e = try #require(expected[program.graph[value].name])
      let a = try #require(actual[output])
      let scale = e.doubles.reduce(1e-3) { max($0, abs($1)) }
      let diff = zip(a.doubles, e.doubles).reduce(0.0) { max($0, abs($1.0 - $1.1)) }
      #expect(a.shape == e.shape && diff <= 1e-4 * scale, "\(name).\(output): max difference \(diff) (scale \(scale))")
    }
    #expect(program.gradients.count == graph.parameters.filter { $0.role == .trainable }.count)
    #expect(program.batchNormUpdates.count == graph.nodes.filter { $0.op == .batchNorm }.count)
  }
}
