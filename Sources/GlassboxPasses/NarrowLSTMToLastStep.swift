import GlassboxIR

/// When only the last time step of an LSTM is used, asks the LSTM for just that step.
///
/// ```
/// h = lstm(x, …, bidirectional: true)           h = lstm(x, …, bidirectional: true, last: true)
/// y = select(h, axis: 1, index: -1)        →    y = h
/// ```
/// The forward direction still runs every step but stores one output; the reverse direction,
/// whose output at the last step is its first, runs a single step — half the work of a
/// BiLSTM classifier. Runs before dead-code elimination. Only an LSTM whose sequence output
/// has no other use is narrowed.
public struct NarrowLSTMToLastStep: Pass {
  public let name = "narrow-lstm-to-last-step"
  public init() {}

  public func run(_ module: inout Module) -> Bool {
    let g = module.graph
    let uses = g.useCounts
    var narrowed: [Int: Int] = [:]  // select node index → lstm node index
    for (i, node) in g.nodes.enumerated() where node.op == .select {
      guard let p = g.producer(of: node.operands[0]), g[p].op == .lstm, !LSTMAttributes(of: g[p]).last,
        uses[node.operands[0].index] == 1
      else { continue }
      let x = g[node.operands[0]].type
      let select = SelectAttributes(of: node)
      let axis = normalizedAxis(select.axis, rank: x.rank), index = select.index
      let steps = x.shape[1].staticValue
      guard axis == 1, index == -1 || steps.map({ index == $0 - 1 }) == true else { continue }
      narrowed[i] = p.index
    }
    guard !narrowed.isEmpty else { return false }
    let dropped = Set(narrowed.values)
    let nodeOfResult = Dictionary(
      uniqueKeysWithValues: g.nodes.enumerated().flatMap { i, n in n.results.map { ($0.index, i) } })
    module.graph = g.rewritten { node, newGraph in
      guard let i = node.results.first.flatMap({ nodeOfResult[$0.index] }) else { return .keep }
      if dropped.contains(i) { return .drop }
      guard let l = narrowed[i] else { return .keep }
      // The LSTM's operands were renumbered when it was dropped; they keep their names.
      var lstm = g.nodes[l]
      lstm.operands = lstm.operands.map { newGraph.value(named: g[$0].name) ?? $0 }
      var attributes = LSTMAttributes(of: lstm)
      attributes.last = true
      lstm.attributes = attributes.encoded
      return .replace(lstm)
    }
    return true
  }
}
