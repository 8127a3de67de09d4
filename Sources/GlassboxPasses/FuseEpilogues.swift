import GlassboxIR

/// Folds what follows a convolution or a linear layer into its epilogue: a residual add, then
/// a ReLU, applied while the result is still in cache instead of in separate passes.
///
/// ```
/// c = conv2d(x, W, b)
/// s = add(c, shortcut)              →    y = conv2d(x, W, b, shortcut, activation: relu)
/// y = relu(s)
/// ```
/// After batch-norm folding (which gives convolutions the bias an epilogue needs before a
/// residual) and before dead-code elimination. A value with another use — a tap included —
/// is not folded away, so taps keep their numbers.
public struct FuseEpilogues: Pass {
  public let name = "fuse-epilogues"
  public init() {}

  public func run(_ module: inout Module) -> Bool {
    let g = module.graph
    let uses = g.useCounts
    var users: [Int: Int] = [:]  // value index → the single node using it
    for (i, n) in g.nodes.enumerated() { for o in n.operands where uses[o.index] == 1 { users[o.index] = i } }
    // For each fused chain: the node it ends at → (the GEMM node, residual value, relu).
    var plans: [Int: (base: Int, residual: ValueID?, relu: Bool)] = [:]
    var absorbed = Set<Int>()
    // Nodes already part of a chain, and producers of residuals (which must stay).
    var claimed = Set<Int>()
    for (i, n) in g.nodes.enumerated()
    where (n.op == .conv2d || n.op == .linear) && n.operands.count <= 3
      && n.fusedActivation == Activation.none && !claimed.contains(i)
    {
      var chain = [i]
      var residual: ValueID?
      var relu = false
      if n.operands.count == 3, let u = users[n.results[0].index], g.nodes[u].op == .add, !claimed.contains(u) {
        let add = g.nodes[u]
        let other = add.operands[0] == n.results[0] ? add.operands[1] : add.operands[0]
        let producer = g.producer(of: other)?.index
        if other != n.results[0], g[other].type == g[n.results[0]].type, g[add.results[0]].type == g[other].type,
          producer.map({ !absorbed.contains($0) }) ?? true
        {
          residual = other
          chain.append(u)
        }
      }
      if let last = chain.last, let u = users[g.nodes[last].results[0].index], g.nodes[u].op == .relu,
        !claimed.contains(u)
      {
        relu = true
        chain.append(u)
      }
      guard chain.count > 1, let end = chain.last else { continue }
      plans[end] = (i, residual, relu)
      absorbed.formUnion(chain.dropLast())
      claimed.formUnion(chain)
      if let r = residual, let p = g.producer(of: r) { claimed.insert(p.index) }
    }
    guard !plans.isEmpty else { return false }
    let nodeOfResult = Dictionary(
      uniqueKeysWithValues: g.nodes.enumerated().flatMap { i, n in n.results.map { ($0.index, i) } })
    module.graph = g.rewritten { node, newGraph in
      guard let i = node.results.first.flatMap({ nodeOfResult[$0.index] }) else { return .keep }
      if absorbed.contains(i) { return .drop }
      guard let plan = plans[i] else { return .keep }
      var fused = g.nodes[plan.base]
      // Operands of dropped nodes keep their names in the new graph.
      fused.operands = fused.operands.map { newGraph.value(named: g[$0].name) ?? $0 }
      if let r = plan.residual { fused.operands.append(newGraph.value(named: g[r].name) ?? r) }
      if plan.relu { fused.fusedActivation = .relu }
      return .replace(fused)
    }
    return true
  }
}
