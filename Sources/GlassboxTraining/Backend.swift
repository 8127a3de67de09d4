import GlassboxIR
import GlassboxRuntime

/// What one training step computed: the mean loss, the logits (for accuracy), a gradient per
/// trainable parameter and the batch statistics of every batch norm.
public struct StepResult: Sendable {
  /// Mean cross-entropy over the batch.
  public var loss: Double
  /// `[B, C]` row-major.
  public var logits: [Float]
  /// Parameter name → gradient (same element count as the parameter).
  public var gradients: [String: [Float]]
  /// Output name → values, for the `batchNormUpdates` outputs (`batchMean`, `batchVar`).
  public var statistics: [String: [Float]]
  /// In a data-parallel run, the global batch's summed loss, correct predictions and
  /// examples (nil for one process: the caller counts `loss` and `logits` itself).
  public var totals: (lossSum: Double, correct: Int, count: Int)?

  public init(loss: Double, logits: [Float], gradients: [String: [Float]], statistics: [String: [Float]] = [:]) {
    self.loss = loss
    self.logits = logits
    self.gradients = gradients
    self.statistics = statistics
  }
}

/// A batch norm whose running statistics the trainer updates after each step: buffer names
/// and the step's output names (biased batch variance over `count` values per channel).
public struct BatchNormUpdate: Sendable, Equatable {
  public var runningMean: String
  public var runningVariance: String
  public var batchesTracked: String
  public var batchMean: String
  public var batchVariance: String
  /// Values per channel (N·H·W), for the unbiased correction n/(n − 1); nil when the
  /// `batchVariance` output is unbiased already.
  public var count: Int?

  public init(
    runningMean: String, runningVariance: String, batchesTracked: String, batchMean: String,
    batchVariance: String, count: Int?
  ) {
    self.runningMean = runningMean
    self.runningVariance = runningVariance
    self.batchesTracked = batchesTracked
    self.batchMean = batchMean
    self.batchVariance = batchVariance
    self.count = count
  }
}

/// A dropout mask the step needs as an input: Bernoulli(1 − p)/(1 − p) of `count` elements.
public struct DropoutMask: Sendable, Equatable {
  public var input: String
  public var shape: [Int]
  public var p: Double

  public init(input: String, shape: [Int], p: Double) {
    self.input = input
    self.shape = shape
    self.p = p
  }
}

/// Computes training steps and predictions for a model at a fixed batch size; the trainer
/// owns the weights and the optimizer. Implemented over a compiled `TrainingProgram`
/// (`ProgramBackend`); tests substitute small hand-written models.
public protocol TrainingBackend: AnyObject {
  /// The batch size the programs are compiled for.
  var batchSize: Int { get }
  /// Cores the backend runs on (the trainer's updates use as many).
  var threads: Int { get }
  /// Trainable parameters in the order a step completes their gradients (empty: unknown).
  var gradientOrder: [String] { get }
  /// Dropout masks a step takes.
  var dropoutMasks: [DropoutMask] { get }
  /// Batch norms whose running statistics a step produces.
  var batchNormUpdates: [BatchNormUpdate] { get }
  /// One step in training mode on `weights` (every parameter and buffer by name).
  func step(_ batch: Batch, masks: [String: Tensor], weights: [String: Tensor]) throws -> StepResult
  /// `step`, handing each trainable parameter's gradient to `gradientReady` (a view valid
  /// during the call) as soon as it is complete.
  func step(
    _ batch: Batch, masks: [String: Tensor], weights: [String: Tensor],
    gradientReady: (_ parameter: String, _ values: UnsafeBufferPointer<Float>) -> Void
  ) throws -> StepResult
  /// With `sum`, every training batch norm of a step normalises with the statistics of the
  /// global batch of a data-parallel run, and its backward takes the global batch's sums
  /// (SyncBatchNorm), `sum` adding up each one's per-channel numbers over the processes; nil:
  /// this process's batch alone. Throws where the backend cannot.
  func synchronizeBatchNorm(_ sum: CrossProcessSum?) throws
  /// Prepares `predict` for these weights (called once before evaluating a data set).
  func beginEvaluation(weights: [String: Tensor]) throws
  /// Inference-mode logits `[B, C]` of `batch` (dropout off, batch norm on running statistics)
  /// with the weights of the last `beginEvaluation`.
  func predict(_ batch: Batch) throws -> [Float]
}

extension TrainingBackend {
  public var threads: Int { 1 }
  public var gradientOrder: [String] { [] }

  /// Refuses a sum where the backend has batch norms (it cannot hand them one); without
  /// batch norms there is nothing to synchronise.
  public func synchronizeBatchNorm(_ sum: CrossProcessSum?) throws {
    guard sum != nil, !batchNormUpdates.isEmpty else { return }
    throw TrainingError(
      "this training backend cannot normalise batch norms over the processes' batches together "
        + "(--sync-batch-norm)")
  }

  /// `step`, handing each trainable parameter's gradient to `gradientReady` once it is
  /// complete: here after the whole step; a backend that can tell (`ProgramBackend`) does it
  /// during the backward pass.
  public func step(
    _ batch: Batch, masks: [String: Tensor], weights: [String: Tensor],
    gradientReady: (_ parameter: String, _ values: UnsafeBufferPointer<Float>) -> Void
  ) throws
    -> StepResult
  {
    let result = try step(batch, masks: masks, weights: weights)
    for (name, g) in result.gradients.sorted(by: { $0.key < $1.key }) {
      g.withUnsafeBufferPointer { gradientReady(name, $0) }
    }
    return result
  }
}
