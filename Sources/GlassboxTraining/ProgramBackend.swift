import GlassboxIR
import GlassboxPasses
import GlassboxRuntime

/// A training step as a graph: what `TrainingProgram` (GlassboxPasses) produces, in plain
/// terms, so the trainer does not depend on how it was made.
///
/// The graph's inputs are the model's input, `target: i64[B]` and the dropout masks; its
/// outputs include `loss: f32[]`, the model's logits, one gradient per trainable parameter and
/// the batch statistics of every batch norm.
public struct TrainingStepGraph: Sendable {
  public var graph: Graph
  /// Parameter name → output name of its gradient.
  public var gradients: [(parameter: String, output: String)]
  public var dropoutMasks: [(input: String, type: TensorType, p: Double)]
  public var batchNormUpdates: [BatchNormUpdate]
  /// The output holding the mean loss and the one holding the logits.
  public var loss: String
  public var logits: String
  /// The input the class indices go to.
  public var target: String

  public init(
    graph: Graph, gradients: [(parameter: String, output: String)],
    dropoutMasks: [(input: String, type: TensorType, p: Double)], batchNormUpdates: [BatchNormUpdate],
    loss: String = "loss", logits: String, target: String = "target"
  ) {
    self.graph = graph
    self.gradients = gradients
    self.dropoutMasks = dropoutMasks
    self.batchNormUpdates = batchNormUpdates
    self.loss = loss
    self.logits = logits
    self.target = target
  }
}

/// The training backend over compiled programs: the training step graph and the model's
/// inference graph, each bound to the batch size and lowered by the runtime. Parameters are
/// copied into the step's arena before each step; the inference program is recompiled (with
/// the inference passes, which fold batch norms into the weights) once per evaluation.
public final class ProgramBackend: TrainingBackend {
  public let batchSize: Int
  public let dropoutMasks: [DropoutMask]
  public let batchNormUpdates: [BatchNormUpdate]
  let step: TrainingStepGraph
  let trainProgram: Executable
  let inferenceGraph: Graph
  let input: String
  public let threads: Int
  var inference: Executable?
  /// The last step's outputs by name, reused by the next.
  var outputs: [String: [Float]] = [:]
  /// Output name → the parameter whose gradient it is.
  let parameterOfGradient: [String: String]

  /// Compiles `step` (its symbols bound by `bindings`, which must size every symbol, the
  /// batch included) and keeps `model` (the forward graph) for evaluation.
  public init(
    step: TrainingStepGraph, model: Graph, bindings: [String: Int], batchSize: Int, weights: [String: Tensor],
    threads: Int
  ) throws {
    guard model.inputs.count == 1, let first = model.inputs.first else {
      throw TrainingError("training supports models with one input; \(model.name) has \(model.inputs.count)")
    }
    input = model[first].name
    self.batchSize = batchSize
    self.step = step
    self.threads = threads
    let bound = try step.graph.bound(bindings)
    var dropout: [DropoutMask] = []
    for m in step.dropoutMasks {
      guard let id = bound.inputs.first(where: { bound[$0].name == m.input }) else {
        throw TrainingError("training step has no input '\(m.input)' for a dropout mask")
      }
      dropout.append(DropoutMask(input: m.input, shape: bound[id].type.shape.map { $0.staticValue ?? 0 }, p: m.p))
    }
    dropoutMasks = dropout
    batchNormUpdates = step.batchNormUpdates
    parameterOfGradient = Dictionary(step.gradients.map { ($0.output, $0.parameter) }) { first, _ in first }
    trainProgram = try Executable(graph: bound, parameters: weights, threads: threads)
    inferenceGraph = try model.bound(bindings)
  }

  public func step(_ batch: Batch, masks: [String: Tensor], weights: [String: Tensor]) throws -> StepResult {
    try step(batch, masks: masks, weights: weights, reporting: false) { _, _ in }
  }

  /// `step`, handing each gradient to `gradientReady` as soon as the kernel that completes it
  /// has run (during the backward pass).
  public func step(
    _ batch: Batch, masks: [String: Tensor], weights: [String: Tensor],
    gradientReady: (_ parameter: String, _ values: UnsafeBufferPointer<Float>) -> Void
  ) throws
    -> StepResult
  {
    try step(batch, masks: masks, weights: weights, reporting: true, gradientReady)
  }

  private func step(
    _ batch: Batch, masks: [String: Tensor], weights: [String: Tensor], reporting: Bool,
    _ gradientReady: (_ parameter: String, _ values: UnsafeBufferPointer<Float>) -> Void
  ) throws
    -> StepResult
  {
    try trainProgram.setParameters(weights)
    var inputs = masks
    inputs[input] = batch.inputs
    inputs[step.target] = batch.labels
    // The previous step's arrays are written over when the trainer has let go of them.
    if reporting {
      try trainProgram.run(inputs: inputs, into: &outputs) { name, values in
        if let parameter = parameterOfGradient[name] { gradientReady(parameter, values) }
      }
    } else {
      try trainProgram.run(inputs: inputs, into: &outputs)
    }
    func values(_ name: String) throws -> [Float] {
      guard let v = outputs[name] else { throw TrainingError("training step produced no output '\(name)'") }
      return v
    }
    var gradients: [String: [Float]] = [:]
    for g in step.gradients { gradients[g.parameter] = try values(g.output) }
    var statistics: [String: [Float]] = [:]
    for u in step.batchNormUpdates {
      statistics[u.batchMean] = try values(u.batchMean)
      statistics[u.batchVariance] = try values(u.batchVariance)
    }
    return StepResult(
      loss: Double(try values(step.loss).first ?? .nan), logits: try values(step.logits),
      gradients: gradients, statistics: statistics)
  }

  /// Trainable parameters in the order the backward pass completes their gradients.
  public var gradientOrder: [String] { trainProgram.completionOrder.compactMap { parameterOfGradient[$0] } }

  /// Bytes of the training program's arena (parameters, inputs, planned intermediates).
  public var arenaBytes: Int { trainProgram.arenaCount * 4 }

  /// Each kernel of the training program and its mean time over `runs` runs on the inputs of
  /// the last step (for `bench --train --profile`): this process alone, its batch norms on
  /// its own batch (the other processes take no part in these runs).
  public func profile(runs: Int) -> [(label: String, milliseconds: Double)] {
    alone { trainProgram.profile(runs: runs) }
  }

  /// `Executable.gemmEfficiency(runs:)` of the training program's GEMM-bound kernels (forward
  /// and backward convolutions, linear layers), run as `profile` runs them.
  public func gemmEfficiency(
    runs: Int
  ) -> [(label: String, flops: Double, executedFlops: Double, kernelMs: Double, sgemmMs: Double)] {
    alone { trainProgram.gemmEfficiency(runs: runs) }
  }

  /// `body` with the training program's batch norms on this process's batch alone.
  private func alone<T>(_ body: () -> T) -> T {
    let sum = trainProgram.crossProcessSum
    trainProgram.crossProcessSum = nil
    defer { trainProgram.crossProcessSum = sum }
    return body()
  }

  public func synchronizeBatchNorm(_ sum: CrossProcessSum?) throws { trainProgram.crossProcessSum = sum }

  public func beginEvaluation(weights: [String: Tensor]) throws {
    var forward = inferenceGraph
    forward.taps = []
    var module = Module(graph: forward, weights: weights)
    Pipeline.run(Pipeline.inference(blockedLayouts: Executable.blockedLayouts), on: &module)
    inference = try Executable(graph: module.graph, parameters: module.weights, threads: threads)
  }

  public func predict(_ batch: Batch) throws -> [Float] {
    guard let inference else { throw TrainingError("predict before beginEvaluation") }
    let out = try inference.run(inputs: [input: batch.inputs])
    guard let logits = out[inferenceGraph.outputs.first?.name ?? ""] else {
      throw TrainingError("the model produced no logits output")
    }
    return logits.floats
  }
}
