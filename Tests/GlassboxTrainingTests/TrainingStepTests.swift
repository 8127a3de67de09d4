import Foundation
import GlassboxFormat
import GlassboxIR
import GlassboxReference
import Testing
@testable import GlassboxTraining

/// One compiled training step (generated backward pass + SGD update) of the study's BiLSTM
/// against PyTorch: tools/reference/training_fixtures.py.
@Suite struct TrainingStepTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  @Test func bilstmSGDStepMatchesPyTorch() throws {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
      "Fixtures/bilstm_sgd_step.json")
    let fixture = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    let after = try #require(fixture["after"] as? [String: [Double]])
    let stride = try #require(fixture["stride"] as? Int)
    let (lr, momentum, decay) = (0.5, 0.9, 1e-2)
    #expect(
      (fixture["lr"] as? Double) == lr && (fixture["momentum"] as? Double) == momentum
        && (fixture["weight_decay"] as? Double) == decay)

    let text = try String(contentsOf: Self.root.appendingPathComponent("graphs/bilstm.graph"), encoding: .utf8)
    let result = Spec.compile(SourceText(fileName: "bilstm.graph", text: text), bindings: ["C": 3, "B": 2])
    var graph = try #require(result.graph, "\(result.diagnostics)")
    graph.taps = []
    let weights = DeterministicTensors.parameters(of: graph)
    let step = try TrainingStepGraph.make(from: graph, logits: "logits")
    let backend = try ProgramBackend(
      step: step, model: graph, bindings: [:], batchSize: 2, weights: weights, threads: 2)
    let input = DeterministicTensors.tensor("input:mfcc", shape: [2, 768, 128]).floats
    let n = 768 * 128
    let examples = InMemoryExamples(
      root: "fixture", classes: ["a", "b", "c"], exampleShape: [768, 128],
      values: [Array(input[0..<n]), Array(input[n..<(2 * n)])], labels: [0, 2])
    let trainer = try Trainer(
      model: ModelContents(
        graph: graph, weights: graph.parameters.map { weights[$0.name] ?? Tensor(zeros: .f32, shape: []) }),
      backend: backend, data: TrainingData(train: examples),
      settings: TrainingSettings(
        epochs: 1, batchSize: 2, learningRate: lr,
        optimizer: OptimizerSettings(kind: .sgd, momentum: momentum, weightDecay: decay)))
    let stepResult = try trainer.step(try examples.batch([0, 1], size: 2), epoch: 0, step: 0, learningRate: lr)
    let loss = try #require(fixture["loss"] as? Double)
    #expect(abs(stepResult.loss - loss) <= 1e-4 * loss, "loss \(stepResult.loss) vs PyTorch \(loss)")

    #expect(Set(after.keys) == Set(graph.parameters.filter { $0.role == .trainable }.map(\.name)))
    for (name, expected) in after.sorted(by: { $0.key < $1.key }) {
      let before = try #require(weights[name]).floats
      let updated = try #require(trainer.weights[name]).floats
      let sampled = Swift.stride(from: 0, to: updated.count, by: stride).map { $0 }
      #expect(sampled.count == expected.count, "\(name): \(sampled.count) samples vs \(expected.count)")
      for (k, i) in sampled.enumerated() where k < expected.count {
        // The updated weight to 1e-4 relative…
        let scale = max(abs(expected[k]), 1e-3)
        #expect(
          abs(Double(updated[i]) - expected[k]) <= 1e-4 * scale,
          "\(name)[\(i)]: \(updated[i]) vs PyTorch \(expected[k])")
        // …and the gradient it implies (first step: p' = p − lr·(g + wd·p)) to 1e-3.
        let g = (Double(before[i]) - Double(updated[i])) / lr - decay * Double(before[i])
        let gTorch = (Double(before[i]) - expected[k]) / lr - decay * Double(before[i])
        #expect(abs(g - gTorch) <= 1e-3 * max(abs(gTorch), 1e-3), "\(name)[\(i)] gradient: \(g) vs PyTorch \(gTorch)")
      }
    }
  }

  static let tinyCNN = """
    graph tiny_cnn(image: f32[B, 2, 6, 6]) -> (logits: f32[B, C]) {
      conv = conv2d(image, out: 4, kernel: 3, padding: 1, bias: false)
      bn = batch_norm(conv)
      act = relu(bn)
      pool = global_avg_pool2d(act)
      fc = linear(flatten(pool), out: C)
      logits = fc
    }
    """

  /// Two SGD steps of a CNN with batch norm: parameters, running statistics (momentum 0.1,
  /// unbiased variance) and num_batches_tracked as PyTorch leaves them.
  @Test func batchNormModelStepsMatchPyTorch() throws {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
      "Fixtures/cnn_bn_steps.json")
    let fixture = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    let steps = try #require(fixture["steps"] as? [[String: Any]])
    let result = Spec.compile(SourceText(fileName: "tiny_cnn.graph", text: Self.tinyCNN), bindings: ["C": 2, "B": 4])
    let graph = try #require(result.graph, "\(result.diagnostics)")
    let weights = DeterministicTensors.parameters(of: graph)
    let backend = try ProgramBackend(
      step: try TrainingStepGraph.make(from: graph, logits: "logits"), model: graph,
      bindings: [:], batchSize: 4, weights: weights, threads: 2)
    #expect(backend.batchNormUpdates.count == 1)
    let input = DeterministicTensors.tensor("input:image", shape: [4, 2, 6, 6]).floats
    let examples = InMemoryExamples(
      root: "fixture", classes: ["a", "b"], exampleShape: [2, 6, 6],
      values: (0..<4).map { Array(input[($0 * 72)..<($0 * 72 + 72)]) }, labels: [0, 1, 1, 0])
    let trainer = try Trainer(
      model: ModelContents(
        graph: graph, weights: graph.parameters.map { weights[$0.name] ?? Tensor(zeros: .f32, shape: []) }),
      backend: backend, data: TrainingData(train: examples),
      settings: TrainingSettings(
        epochs: 1, batchSize: 4, learningRate: 0.2,
        optimizer: OptimizerSettings(kind: .sgd, momentum: 0.9, weightDecay: 1e-3)))
    let batch = try examples.batch([0, 1, 2, 3], size: 4)
    for (s, expected) in steps.enumerated() {
      let out = try trainer.step(batch, epoch: 0, step: s, learningRate: 0.2)
      let loss = try #require(expected["loss"] as? Double)
      #expect(abs(out.loss - loss) <= 1e-4 * loss, "step \(s + 1) loss \(out.loss) vs PyTorch \(loss)")
      let state = try #require(expected["state"] as? [String: [Double]])
      #expect(Set(state.keys) == Set(graph.parameters.map(\.name)))
      for (name, values) in state.sorted(by: { $0.key < $1.key }) {
        let ours = try #require(trainer.weights[name]).doubles
        #expect(ours.count == values.count, "\(name)")
        for (i, (x, y)) in zip(ours, values).enumerated() {
          #expect(abs(x - y) <= 1e-4 * max(abs(y), 1e-3), "step \(s + 1) \(name)[\(i)]: \(x) vs PyTorch \(y)")
        }
      }
    }
  }
}
