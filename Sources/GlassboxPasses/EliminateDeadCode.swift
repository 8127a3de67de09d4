import GlassboxIR

/// Removes nodes none of whose results reach an output or a tap.
///
/// ```
/// t = tanh(x)          # used by nothing
/// y = relu(x)          →   y = relu(x)
/// ```
/// Runs last in a pipeline, to sweep what earlier passes orphaned. Parameters stay: they are
/// the model's state even when this program does not read them.
public struct EliminateDeadCode: Pass {
  public let name = "eliminate-dead-code"
  public init() {}

  public func run(_ module: inout Module) -> Bool {
    let g = module.graph
    var live = [Bool](repeating: false, count: g.values.count)
    for o in g.outputs { live[o.value.index] = true }
    for t in g.taps { for o in t.operands { live[o.index] = true } }
    var keep = [Bool](repeating: false, count: g.nodes.count)
    for (i, node) in g.nodes.enumerated().reversed() where node.results.contains(where: { live[$0.index] }) {
      keep[i] = true
      for o in node.operands { live[o.index] = true }
    }
    guard keep.contains(false) else { return false }
    let byResult = Dictionary(
      uniqueKeysWithValues: g.nodes.enumerated().flatMap { i, n in n.results.map { ($0.index, i) } })
    module.graph = g.rewritten { node, _ in
      guard let i = node.results.first.flatMap({ byResult[$0.index] }) else { return .keep }
      return keep[i] ? .keep : .drop
    }
    return true
  }
}

/// Reuses the first of several identical computations (same op, operands and attributes).
///
/// ```
/// a = tanh(x)              a = tanh(x)
/// b = tanh(x)         →    y = add(a, a)
/// y = add(a, b)
/// ```
/// Early in a pipeline, after algebraic simplification has made equal things look equal.
/// Dropout is never merged: two dropouts draw different masks in training.
public struct EliminateCommonSubexpressions: Pass {
  public let name = "eliminate-common-subexpressions"
  public init() {}

  struct Key: Hashable {
    var op: Op
    var operands: [ValueID]
    var attributes: Attributes
  }

  public func run(_ module: inout Module) -> Bool {
    var seen: [Key: [ValueID]] = [:]
    var changed = false
    module.graph = module.graph.rewritten { node, g in
      guard node.op != .dropout else { return .keep }
      let key = Key(op: node.op, operands: node.operands, attributes: node.attributes)
      if let previous = seen[key] {
        changed = true
        return .forward(previous)
      }
      // The node is added next; its results will be the next values of the new graph.
      let first = g.values.count
      seen[key] = (0..<node.results.count).map { ValueID(first + $0) }
      return .keep
    }
    return changed
  }
}
