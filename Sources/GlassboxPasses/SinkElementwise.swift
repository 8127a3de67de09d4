import GlassboxIR

/// Moves elementwise nodes down to just before the first node that reads them, where that
/// shortens what is live: the memory plan keeps a value from the node that makes it to the
/// last that reads it, and a backward pass makes some large products long before they are
/// used — a value's gradient is built when its user is differentiated, not when its own
/// producer is.
///
/// ```
/// d_weights = mul(d_context, lstm)              d_weights = mul(d_context, lstm)
/// d_lstm = mul(d_context, weights)    →         …the softmax's backward…
/// …the softmax's backward…                      d_lstm = mul(d_context, weights)   # [B, T, 64]
/// d_h = fused_elementwise(d_lstm, …)            d_h = fused_elementwise(d_lstm, …)
/// ```
/// A node moves only past some node that does not feed its reader, when its result is at
/// least as large as the operands whose last reader it is (their lives grow by what its
/// result's shrinks), and never past a reader of its result. The program computes the same
/// values; only their order and the arena change. Last in the training pipeline, after fusion.
public struct SinkElementwise: Pass {
  public let name = "sink-elementwise"
  public init() {}

  /// Whether nodes of `op` may move: elementwise arithmetic and its fused chains. `relu_backward`
  /// (elementwise too) stays where differentiation put it; moving it has not been measured.
  static func isMovable(_ op: Op) -> Bool {
    switch op {
    case .add, .sub, .mul, .div, .relu, .sigmoid, .tanh, .exp, .log, .sqrt, .abs, .erf, .pow, .maximum, .minimum,
      .fusedElementwise:
      true
    case .conv2d, .maxPool2d, .avgPool2d, .globalAvgPool2d, .batchNorm, .linear, .matmul, .batchMatmul, .softmax,
      .logSoftmax, .sum, .mean, .max, .reshape, .flatten, .transpose, .concat, .slice, .select, .split, .pad, .lstm,
      .lstmCell, .dropout, .crossEntropy, .constant, .classSeed, .reluBackward, .linearBackwardWeight,
      .sliceBackward, .maxBackward, .lstmCellBackward, .crossEntropyBackward, .conv2dBackwardInput,
      .conv2dBackwardWeight, .maxPool2dBackward, .avgPool2dBackward, .batchNormTrain, .batchNormTrainBackward,
      .layerNorm, .layerNormBackward, .lrn, .lrnBackward, .toBlocked, .fromBlocked:
      false
    }
  }

  public func run(_ module: inout Module) -> Bool {
    let g = module.graph
    let count = g.nodes.count
    var readers = [[Int]](repeating: [], count: g.values.count)
    for (i, node) in g.nodes.enumerated() {
      for o in node.operands where readers[o.index].last != i { readers[o.index].append(i) }
    }
    var exported = Set(g.outputs.map(\.value.index))
    for t in g.taps { for o in t.operands { exported.insert(o.index) } }
    func size(_ v: ValueID) -> Int { g[v].type.shape.reduce(1) { $0 * ($1.staticValue ?? 1) } }

    // Decided from the last node back, so every reader's final place is known: `place[i]`
    // is node i's rank in the new order (its index when it stays; just below its first
    // reader's, nodes moved before the same reader in their old order, when it moves).
    var place = (0..<count).map(Double.init)
    var moved = false
    for i in stride(from: count - 1, through: 0, by: -1) {
      let node = g.nodes[i]
      guard Self.isMovable(node.op), node.results.count == 1, !exported.contains(node.results[0].index),
        let first = readers[node.results[0].index].min(by: { place[$0] < place[$1] }),
        place[first] > Double(i + 1)
      else { continue }
      // Only past some node that does not feed that reader (a node just before its reader,
      // beside the reader's other operands, stays: it would shorten nothing, and swapping
      // such neighbours would never settle).
      let feeds = Set(g.nodes[first].operands.compactMap { g.producer(of: $0)?.index })
      var crosses = false, j = i + 1, looked = 0
      while j < count && looked < 64 && j - i < 4096 && !crosses {
        if place[j] < place[first] {
          if !feeds.contains(j) { crosses = true }
          looked += 1
        }
        j += 1
      }
      guard crosses else { continue }
      // Operands whose last reader this is would live on to the new place.
      let extended = node.operands.filter { o in
        g.producer(of: o) != nil && readers[o.index].allSatisfy { place[$0] <= Double(i) }
      }
      guard size(node.results[0]) >= extended.reduce(0, { $0 + size($1) }) else { continue }
      place[i] = place[first] - 0.5 / Double(count + 1) * Double(count - i)
      moved = true
    }
    guard moved else { return false }
    let order = (0..<count).sorted { place[$0] < place[$1] || (place[$0] == place[$1] && $0 < $1) }
    module.graph = g.reordered(order)
    return true
  }
}
