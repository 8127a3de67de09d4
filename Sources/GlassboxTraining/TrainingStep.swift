import GlassboxIR
import GlassboxPasses

extension TrainingStepGraph {
  /// The training step of `model` whose logits are the output named `logits`: forward in
  /// training mode, mean cross-entropy against the target input, and every trainable
  /// parameter's gradient, from GlassboxPasses' `TrainingProgram` (automatic differentiation).
  public static func make(from model: Graph, logits: String) throws -> TrainingStepGraph {
    let program: TrainingProgram
    do {
      program = try TrainingProgram.make(from: model, logits: logits)
    } catch {
      throw TrainingError("\(model.name): \(error)")
    }
    // The target is the one input that is neither the model's nor a dropout mask (its name is
    // `target` unless the model already uses that name).
    let modelInputs = Set(model.inputs.map { model[$0].name }), masks = Set(program.dropoutMasks.map(\.input))
    let target = program.graph.inputs.map { program.graph[$0].name }.first {
      !modelInputs.contains($0) && !masks.contains($0)
    }
    return TrainingStepGraph(
      graph: program.graph, gradients: program.gradients,
      dropoutMasks: program.dropoutMasks.map { ($0.input, $0.shape, $0.p) },
      batchNormUpdates: program.batchNormUpdates.map {
        BatchNormUpdate(
          runningMean: $0.runningMean, runningVariance: $0.runningVar, batchesTracked: $0.batchesTracked,
          batchMean: $0.batchMean, batchVariance: $0.batchVar, count: $0.count)
      },
      logits: logits, target: target ?? "target")
  }
}
