import GlassboxIR

/// Folds a ReLU into the training batch norm it follows, so that the normalised values are
/// written once, already rectified, and the backward masks `dy` inside the batch norm's
/// gradient (recomputing the pre-activation from `x`) instead of a `relu_backward` pass of its
/// own.
///
/// ```
/// bn, bn.mean, bn.var = batch_norm_train(x, w, b)
/// r = relu(bn)
///   →
/// bn, bn.mean, bn.var = batch_norm_train(x, w, b, activation: relu)     (r's readers read bn)
/// ```
/// In the training pipeline, after the training-mode forward is built and before it is
/// differentiated (the gradient rule is what makes it pay). The batch norm's result must have
/// the ReLU as its only use; the ReLU's readers read the batch norm's result under its name.
public struct FuseBatchNormReLU: Pass {
  public let name = "fuse-batch-norm-relu"
  public init() {}

  public func run(_ module: inout Module) -> Bool {
    let g = module.graph
    let uses = g.useCounts
    // Batch norms to give the ReLU, and the ReLUs they absorb, by node index.
    var fused = Set<Int>()
    var absorbed = Set<Int>()
    for (i, node) in g.nodes.enumerated() where node.op == .relu {
      guard let p = g.producer(of: node.operands[0]), g[p].op == .batchNormTrain, node.operands[0] == g[p].results[0],
        uses[node.operands[0].index] == 1, g[p].fusedActivation == Activation.none
      else { continue }
      fused.insert(p.index)
      absorbed.insert(i)
    }
    guard !fused.isEmpty else { return false }
    let nodeOfResult = Dictionary(
      uniqueKeysWithValues: g.nodes.enumerated().flatMap { i, n in n.results.map { ($0.index, i) } })
    module.graph = g.rewritten { node, _ in
      guard let i = node.results.first.flatMap({ nodeOfResult[$0.index] }) else { return .keep }
      if absorbed.contains(i) { return .forward([node.operands[0]]) }
      guard fused.contains(i) else { return .keep }
      var changed = node
      changed.fusedActivation = .relu
      return .replace(changed)
    }
    return true
  }
}
