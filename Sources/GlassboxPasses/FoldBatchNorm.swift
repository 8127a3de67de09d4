import GlassboxIR

/// Folds inference batch norm into the convolution before it: with
/// `s = γ/√(var + ε)`, `W' = W·s` (per output channel) and `b' = (b − mean)·s + β`.
///
/// ```
/// c = conv2d(x, W)                         param bn.folded_weight, bn.folded_bias
/// bn = batch_norm(c, γ, β, mean, var, n)   →   bn = conv2d(x, bn.folded_weight, bn.folded_bias)
/// ```
/// Inference only (training updates the statistics). Needs the weights; a convolution whose
/// result has another use, or whose parameters have no values, is left alone. Runs after
/// CSE (which may merge convolutions) and before dead-code elimination.
public struct FoldBatchNorm: Pass {
  public let name = "fold-batch-norm"
  public init() {}

  public func run(_ module: inout Module) -> Bool {
    let g = module.graph
    let uses = g.useCounts
    // Batch norms to fold, by node index, with the convolution node they absorb.
    var folds: [Int: Int] = [:]
    var absorbed = Set<Int>()
    for (i, node) in g.nodes.enumerated() where node.op == .batchNorm {
      guard let c = g.producer(of: node.operands[0]), g[c].op == .conv2d, uses[node.operands[0].index] == 1,
        (g[c].operands.dropFirst() + node.operands.dropFirst().prefix(4)).allSatisfy({
          module.weights[g[$0].name] != nil
        })
      else { continue }
      folds[i] = c.index
      absorbed.insert(c.index)
    }
    guard !folds.isEmpty else { return false }
    let nodeOfResult = Dictionary(
      uniqueKeysWithValues: g.nodes.enumerated().flatMap { i, n in n.results.map { ($0.index, i) } })
    var weights = module.weights
    module.graph = g.rewritten { node, newGraph in
      guard let i = node.results.first.flatMap({ nodeOfResult[$0.index] }) else { return .keep }
      if absorbed.contains(i) { return .drop }
      guard let c = folds[i] else { return .keep }
      let conv = g.nodes[c], bn = g.nodes[i]
      let name = g[bn.results[0]].name
      let w = weights[g[conv.operands[1]].name]?.doubles ?? []
      let wShape = weights[g[conv.operands[1]].name]?.shape ?? []
      let bias = conv.operands.count > 2 ? (weights[g[conv.operands[2]].name]?.doubles ?? []) : nil
      let gamma = weights[g[bn.operands[1]].name]?.doubles ?? [], beta = weights[g[bn.operands[2]].name]?.doubles ?? []
      let mean = weights[g[bn.operands[3]].name]?.doubles ?? [],
        variance = weights[g[bn.operands[4]].name]?.doubles ?? []
      let eps = BatchNormAttributes(of: bn).eps
      let cout = wShape.first ?? 0, per = cout == 0 ? 0 : w.count / cout
      var folded = [Float](repeating: 0, count: w.count), foldedBias = [Float](repeating: 0, count: cout)
      for o in 0..<cout {
        let s = gamma[o] / (variance[o] + eps).squareRoot()
        for k in 0..<per { folded[o * per + k] = Float(w[o * per + k] * s) }
        foldedBias[o] = Float(((bias?[o] ?? 0) - mean[o]) * s + beta[o])
      }
      let wType = g[conv.operands[1]].type
      let wID = newGraph.addParameter(name: "\(name).folded_weight", type: wType, role: .trainable, initializer: .zeros)
      let bID = newGraph.addParameter(
        name: "\(name).folded_bias", type: TensorType(wType.dtype, [wType.shape[0]]),
        role: .trainable, initializer: .zeros)
      weights["\(name).folded_weight"] = Tensor(shape: wShape, f32: folded)
      weights["\(name).folded_bias"] = Tensor(shape: [cout], f32: foldedBias)
      // The convolution's input was renumbered with the convolution, which was dropped:
      // find it in the new graph by name.
      let x = newGraph.value(named: g[conv.operands[0]].name) ?? node.operands[0]
      var n = node
      n.op = .conv2d
      n.operands = [x, wID, bID]
      n.attributes = conv.attributes
      return .replace(n)
    }
    module.weights = weights
    return true
  }
}
