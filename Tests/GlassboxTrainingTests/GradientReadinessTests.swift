import Foundation
import GlassboxFormat
import GlassboxIR
import GlassboxReference
import Testing
@testable import GlassboxTraining

/// What a data-parallel step builds on: each gradient handed over as soon as the backward
/// pass completes it, and the fixed buckets the gradients are summed in.
@Suite struct GradientReadinessTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  /// `bench --train --profile`'s GEMM table: every convolution of the training program and
  /// both of its gradients, each counted with the forward's multiply-adds (the weight gradient
  /// sums the same products over the images, the input gradient spreads them back).
  @Test func profileCountsEachGradientAsItsConvolution() throws {
    let spec = "examples/tiny_cnn.graph"
    let text = try String(contentsOf: Self.root.appendingPathComponent(spec), encoding: .utf8)
    var graph = try #require(Spec.compile(SourceText(fileName: spec, text: text), bindings: ["B": 2]).graph)
    graph.taps = []
    let weights = DeterministicTensors.parameters(of: graph)
    let step = try TrainingStepGraph.make(from: graph, logits: "logits")
    let backend = try ProgramBackend(
      step: step, model: graph, bindings: [:], batchSize: 2, weights: weights, threads: 1)
    let input = graph[graph.inputs[0]]
    let batch = Batch(
      inputs: DeterministicTensors.tensor("x", shape: input.type.shape.map { $0.staticValue ?? 0 }),
      labels: Tensor(shape: [2], storage: .i64([1, 2])), count: 2)
    _ = try backend.step(batch, masks: [:], weights: weights)
    let rows = backend.gemmEfficiency(runs: 1)
    func flops(_ prefix: String) throws -> Double {
      try #require(rows.first { $0.label.hasPrefix(prefix) }, "no row \(prefix): \(rows.map(\.label))").flops
    }
    // conv1: 8 × (3·9) × (2·32·32) products; conv2: 16 × (8·9) × (2·16·16).
    for (name, products) in [("conv1", 8.0 * 27 * 2048), ("conv2", 16.0 * 72 * 512)] {
      #expect(try flops("conv2d \(name)") == 2 * products)
      #expect(try flops("conv2d_backward_weight grad.\(name).dweight") == 2 * products)
    }
    // The first convolution's input gradient is not needed (the image is not trained).
    #expect(try flops("conv2d_backward_input grad.conv2.dx") == 2 * 16.0 * 72 * 512)
    for row in rows where row.label.hasPrefix("conv2d") {
      #expect(row.kernelMs > 0 && row.sgemmMs > 0 && row.executedFlops > 0, "\(row)")
    }
  }

  /// A CNN-LSTM (a convolution per frame, an LSTM over the frames) and a CNN with a batch
  /// norm: every trainable parameter's gradient is announced once, holds then the bits the
  /// step returns at its end (no later kernel writes it), and the classifier's comes before
  /// the first convolution's (announced during the backward pass, not after it).
  @Test(arguments: [("examples/tiny_video.graph", ["B": 2, "T": 3]), ("examples/tiny_cnn.graph", ["B": 2])])
  func gradientsAreFinalWhenAnnounced(spec: String, bindings: [String: Int]) throws {
    let text = try String(contentsOf: Self.root.appendingPathComponent(spec), encoding: .utf8)
    let compiled = Spec.compile(SourceText(fileName: spec, text: text), bindings: bindings)
    var graph = try #require(compiled.graph, "\(compiled.diagnostics)")
    graph.taps = []
    let weights = DeterministicTensors.parameters(of: graph)
    let step = try TrainingStepGraph.make(from: graph, logits: "logits")
    let backend = try ProgramBackend(
      step: step, model: graph, bindings: [:], batchSize: 2, weights: weights,
      threads: 2)
    let input = graph[graph.inputs[0]]
    let shape = input.type.shape.map { $0.staticValue ?? 0 }
    let batch = Batch(
      inputs: DeterministicTensors.tensor("x", shape: shape),
      labels: Tensor(shape: [2], storage: .i64([1, 2])), count: 2)
    let plain = try backend.step(batch, masks: [:], weights: weights)
    var announced: [(String, [Float])] = []
    let result = try backend.step(batch, masks: [:], weights: weights) { name, values in
      announced.append((name, Array(values)))
    }
    let trainable = graph.parameters.filter { $0.role == .trainable }.map(\.name)
    #expect(announced.map(\.0).sorted() == trainable.sorted())
    for (name, values) in announced {
      #expect(values == result.gradients[name], "\(name) changed after it was announced")
      #expect(values == plain.gradients[name], "\(name) differs from a plain step's")
    }
    let order = announced.map(\.0)
    #expect(backend.gradientOrder == order)
    let classifier = try #require(order.firstIndex { $0.hasPrefix("classifier.") || $0.hasPrefix("fc.") })
    let first = try #require(order.firstIndex { $0.hasSuffix("conv1.weight") })
    #expect(classifier < first, "\(order)")
  }

  /// Parameters in the order given (the backward pass's) fill buckets up to the size; one
  /// larger than a bucket gets its own.
  @Test func bucketsFollowTheOrderGradientsComplete() {
    let b = GradientBuckets(parameters: [("d", 5), ("c", 5), ("b", 300), ("a", 10)], bucketBytes: 100)
    #expect(b.sizes == [10, 300, 10])
    #expect(b.slots["d"]?.bucket == 0 && b.slots["d"]?.offset == 0)
    #expect(b.slots["c"]?.bucket == 0 && b.slots["c"]?.offset == 5)
    #expect(b.slots["b"]?.bucket == 1 && b.slots["a"]?.bucket == 2)
    #expect(b.bytes == 1280)
  }
}
