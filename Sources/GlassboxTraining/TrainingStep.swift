import GlassboxIR

extension TrainingStepGraph {
  /// The training step of `model` whose logits are the output named `logits`: forward in
  /// training mode, mean cross-entropy against `target`, and every trainable parameter's
  /// gradient, from the automatic differentiation of GlassboxPasses (`TrainingProgram`).
  public static func make(from model: Graph, logits: String) throws -> TrainingStepGraph {
    throw TrainingError("\(model.name): this build has no automatic differentiation (TrainingProgram) yet, so it cannot train a graph")
  }
}
