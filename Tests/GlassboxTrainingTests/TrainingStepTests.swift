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
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/bilstm_sgd_step.json")
    let fixture = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    let after = try #require(fixture["after"] as? [String: [Double]])
    let stride = try #require(fixture["stride"] as? Int)
    let (lr, momentum, decay) = (0.5, 0.9, 1e-2)
    #expect((fixture["lr"] as? Double) == lr && (fixture["momentum"] as? Double) == momentum
            && (fixture["weight_decay"] as? Double) == decay)

    let text = try String(contentsOf: Self.root.appendingPathComponent("graphs/bilstm.graph"), encoding: .utf8)
    let result = Spec.compile(SourceText(fileName: "bilstm.graph", text: text), bindings: ["C": 3, "B": 2])
    var graph = try #require(result.graph, "\(result.diagnostics)")
    graph.taps = []
    let weights = DeterministicTensors.parameters(of: graph)
    let step = try TrainingStepGraph.make(from: graph, logits: "logits")
    let backend = try ProgramBackend(step: step, model: graph, bindings: [:], batchSize: 2, weights: weights, threads: 2)
    let input = DeterministicTensors.tensor("input:mfcc", shape: [2, 768, 128]).floats
    let n = 768 * 128
    let examples = InMemoryExamples(root: "fixture", classes: ["a", "b", "c"], exampleShape: [768, 128],
                                    values: [Array(input[0..<n]), Array(input[n..<(2 * n)])], labels: [0, 2])
    let trainer = try Trainer(
      model: ModelContents(graph: graph, weights: graph.parameters.map { weights[$0.name] ?? Tensor(zeros: .f32, shape: []) }),
      backend: backend, data: TrainingData(train: examples),
      settings: TrainingSettings(epochs: 1, batchSize: 2, learningRate: lr,
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
        #expect(abs(Double(updated[i]) - expected[k]) <= 1e-4 * scale, "\(name)[\(i)]: \(updated[i]) vs PyTorch \(expected[k])")
        // …and the gradient it implies (first step: p' = p − lr·(g + wd·p)) to 1e-3.
        let g = (Double(before[i]) - Double(updated[i])) / lr - decay * Double(before[i])
        let gTorch = (Double(before[i]) - expected[k]) / lr - decay * Double(before[i])
        #expect(abs(g - gTorch) <= 1e-3 * max(abs(gTorch), 1e-3), "\(name)[\(i)] gradient: \(g) vs PyTorch \(gTorch)")
      }
    }
  }
}
