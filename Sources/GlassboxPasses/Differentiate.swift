import GlassboxIR

/// Reverse-mode differentiation, graph → graph. Appends to a graph the nodes that compute
/// the gradient of `Σ_i Σ(seeds[i].of ⊙ seeds[i].seed)` with respect to chosen values:
///
/// ```
/// h = relu(linear(x, w))                h = relu(linear(x, w))                 # unchanged
/// (seed: h ← s, wrt: w)          →      grad.h.dx = relu_backward(s, linear)    # one rule per op
///                                       grad.linear.dweight = linear_backward_weight(grad.h.dx, x)
/// ```
///
/// Only nodes that lie both downstream of a `wrt` value and upstream of a seed are
/// differentiated (the slice the gradients need); a value with several uses gets the sum of
/// their gradients. Existing values keep their IDs. An `lstm` is differentiated through its
/// unrolled form (`UnrollLSTM`: one input-projection GEMM over all steps, fused cells), so its
/// input-weight gradient is one `linear_backward_weight` over all steps; gradients arriving at
/// the per-step `select`s of one value are joined by a `concat` rather than summed.
///
/// It runs before optimisation (taps and training programs need it), on a verified graph.
public enum Differentiate {
  /// Adds the gradients; returns the new graph and one gradient per `wrt`, of its type.
  /// Throws a `Diagnostic` (`file:line:column: error: …`) naming an op without a gradient rule
  /// on the path, or a seed whose type differs from its value's.
  public static func apply(
    to graph: Graph, seeds: [(of: ValueID, seed: ValueID)],
    wrt: [ValueID]
  ) throws -> (graph: Graph, gradients: [ValueID]) {
    var state = State(builder: GradientBuilder(graph: graph))
    for (of, seed) in seeds {
      guard graph[of].type == graph[seed].type else {
        throw Diagnostic(
          "differentiate: the seed '\(graph[seed].name)' is \(graph[seed].type) but '\(graph[of].name)' is \(graph[of].type)",
          at: nil)
      }
    }
    // Values that depend differentiably on a wrt value.
    var fromWrt = Set(wrt.map(\.index))
    for node in graph.nodes {
      let depends = node.operands.indices.contains {
        fromWrt.contains(node.operands[$0].index) && node.op.isDifferentiable(operand: $0)
      }
      if depends && node.op.gradientKind != .nonDifferentiable { for r in node.results { fromWrt.insert(r.index) } }
    }
    // Values a seed depends on.
    var toSeed = Set(seeds.map(\.of.index))
    for node in graph.nodes.reversed() where node.results.contains(where: { toSeed.contains($0.index) }) {
      for o in node.operands { toSeed.insert(o.index) }
    }
    state.active = fromWrt.intersection(toSeed)
    for (of, seed) in seeds where state.active.contains(of.index) {
      state.contributions[of.index, default: []].append(.full(seed))
    }
    for i in stride(from: graph.nodes.count - 1, through: 0, by: -1) { try state.process(i) }
    var gradients: [ValueID] = []
    for w in wrt {
      state.builder.prefix = "grad"
      state.builder.location = nil
      if let t = try state.total(w) {
        gradients.append(t)
      } else {
        gradients.append(try state.builder.zeros(graph[w].type))
      }
    }
    return (state.builder.graph, gradients)
  }

  enum Contribution {
    case full(ValueID)
    /// A gradient `piece` of `select(v, axis, index)` (index made non-negative).
    case selected(axis: Int, index: Int, piece: ValueID)
    /// `dyᵀ·x` (`[K, B]·[B, N]`), the recurrent-weight gradient of one LSTM step: the steps'
    /// products are summed as one GEMM over all steps stacked.
    case weightProduct(dy: ValueID, x: ValueID)
  }

  struct State {
    var builder: GradientBuilder
    var active = Set<Int>()
    var contributions: [Int: [Contribution]] = [:]
    var totals: [Int: ValueID?] = [:]
    /// Concatenations along axis 1 of `[B, K]` pieces, one per step and none missing, by the
    /// set of their pieces: the steps' pieces in order and the stacked value. The recurrent
    /// weight's gradient stacks the same gate gradients the projection's gradient did, and
    /// reads that stack instead of a second copy.
    var stepStacks: [Set<Int>: (pieces: [ValueID], stacked: ValueID)] = [:]

    var graph: Graph { builder.graph }

    /// The summed gradient of a value, nil when nothing reached it. Computed once: every user
    /// is processed before the value's producer.
    mutating func total(_ v: ValueID) throws -> ValueID? {
      if let t = totals[v.index] { return t }
      let parts = contributions[v.index] ?? []
      contributions[v.index] = nil
      let type = graph[v].type
      builder.prefix = "grad.\(graph[v].name)"
      var fulls: [ValueID] = []
      var byAxis: [Int: [Int: ValueID]] = [:]
      var products: [(dy: ValueID, x: ValueID)] = []
      for p in parts {
        switch p {
        case .full(let id): fulls.append(id)
        case .weightProduct(let dy, let x): products.append((dy, x))
        case .selected(let axis, let index, let piece):
          if let existing = byAxis[axis, default: [:]][index] {
            byAxis[axis]![index] = try builder.binary(.add, existing, piece)
          } else {
            byAxis[axis, default: [:]][index] = piece
          }
        }
      }
      for (axis, pieces) in byAxis.sorted(by: { $0.key < $1.key }) {
        if pieces.count == 1, let (index, piece) = pieces.first {
          fulls.append(try builder.selectBackward(piece, input: type, axis: axis, index: index))
          continue
        }
        // Pieces side by side along the axis, zeros for runs of steps nobody read.
        var kept = type.shape
        kept[axis] = 1
        let n = type.shape[axis].staticValue ?? 0
        var columns: [ValueID] = []
        var gap = 0
        func flushGap(_ b: inout GradientBuilder) throws {
          guard gap > 0 else { return }
          var shape = type.shape
          shape[axis] = Dim(gap)
          columns.append(try b.zeros(TensorType(type.dtype, shape)))
          gap = 0
        }
        for t in 0..<n {
          if let piece = pieces[t] {
            try flushGap(&builder)
            columns.append(try builder.reshape(piece, kept))
          } else {
            gap += 1
          }
        }
        try flushGap(&builder)
        let stacked = try builder.add(.concat, columns, ConcatAttributes(axis: axis), tag: "steps")[0]
        if axis == 1, pieces.count == n, let (_, first) = pieces.first, graph[first].type.rank == 2 {
          let ordered = (0..<n).map { pieces[$0]! }
          stepStacks[Set(ordered.map(\.index))] = (ordered, stacked)
        }
        fulls.append(stacked)
      }
      if !products.isEmpty {
        let (dt, xt) = (graph[products[0].dy].type, graph[products[0].x].type)
        let uniform =
          products.allSatisfy { graph[$0.dy].type == dt && graph[$0.x].type == xt } && dt.rank == 2 && xt.rank == 2
        if products.count > 1 && uniform {
          // [B, K] pieces → [B, steps, K]: one GEMM instead of one per step and a chain of adds.
          func stack(_ values: [ValueID], _ t: TensorType, _ tag: String) throws -> ValueID {
            let column = [t.shape[0], Dim(1), t.shape[1]]
            let columns = try values.map { try builder.reshape($0, column) }
            return try builder.add(.concat, columns, ConcatAttributes(axis: 1), tag: tag)[0]
          }
          let dys: ValueID, xs: ValueID
          if let known = stepStacks[Set(products.map(\.dy.index))], known.pieces.count == products.count {
            // The gate gradients are already stacked (for the projection): the inputs in their order.
            let x = Dictionary(products.map { ($0.dy, $0.x) }, uniquingKeysWith: { a, _ in a })
            (dys, xs) = (known.stacked, try stack(known.pieces.map { x[$0]! }, xt, "x_steps"))
          } else {
            (dys, xs) = (try stack(products.map(\.dy), dt, "dy_steps"), try stack(products.map(\.x), xt, "x_steps"))
          }
          fulls.append(try builder.add(.linearBackwardWeight, [dys, xs], tag: "steps")[0])
        } else {
          for p in products { fulls.append(try builder.add(.linearBackwardWeight, [p.dy, p.x], tag: "step")[0]) }
        }
      }
      var sum = fulls.first
      for f in fulls.dropFirst() { sum = try builder.binary(.add, sum!, f) }
      if let s = sum, builder.graph[s].type != type {
        throw Diagnostic(
          "differentiate: internal: gradient of '\(graph[v].name)' is \(builder.graph[s].type), not \(type)", at: nil)
      }
      totals[v.index] = sum
      return sum
    }

    /// Differentiates node `i` if one of its results is active and has a gradient.
    mutating func process(_ i: Int) throws {
      let node = graph.nodes[i]
      guard node.results.contains(where: { active.contains($0.index) }) else { return }
      let resultName = graph[node.results[0]].name
      let want = node.operands.indices.map {
        active.contains(node.operands[$0].index) && node.op.isDifferentiable(operand: $0)
      }
      guard want.contains(true) else { return }
      var dys: [ValueID?] = []
      for r in node.results { dys.append(active.contains(r.index) ? try total(r) : nil) }
      guard dys.contains(where: { $0 != nil }) else { return }
      builder.prefix = "grad.\(resultName)"
      builder.location = node.location
      switch node.op.gradientKind {
      case .nonDifferentiable:
        return
      case .none:
        throw Diagnostic(
          "differentiate: \(node.op.name) has no gradient rule, but the gradient must pass through '\(resultName)'",
          at: node.location)
      case .unrollFirst:
        try unroll(node, dy: dys[0])
      case .rule:
        if node.op == .select, let dy = dys[0] {
          let select = SelectAttributes(of: node), rank = graph[node.operands[0]].type.rank
          let axis = normalizedAxis(select.axis, rank: rank)
          if let n = graph[node.operands[0]].type.shape[axis].staticValue {
            contributions[node.operands[0].index, default: []]
              .append(.selected(axis: axis, index: select.position(size: n), piece: dy))
            return
          }
        }
        // An LSTM step's recurrent-weight gradient is deferred (summed over steps in one GEMM).
        let deferWeight = node.op == .lstmCell && want[3]
        var asked = want
        if deferWeight { asked[0] = true; asked[3] = false }
        let grads: [ValueID?]
        do { grads = try node.op.gradients(of: node, dys: dys, want: asked, into: &builder) } catch {
          throw Diagnostic("differentiate: \(error.message) (at '\(resultName)')", at: node.location)
        }
        for (i, (operand, grad)) in zip(node.operands, grads).enumerated() where want[i] {
          if let grad { contributions[operand.index, default: []].append(.full(grad)) }
        }
        if deferWeight, let dGates = grads[0] {
          contributions[node.operands[3].index, default: []].append(.weightProduct(dy: dGates, x: node.operands[1]))
        }
      }
    }

    /// An LSTM layer is differentiated through an unrolled copy of itself, appended to the
    /// graph (the forward recomputes its steps; training programs unroll beforehand instead).
    mutating func unroll(_ node: Node, dy: ValueID?) throws {
      guard let dy else { return }
      let x = node.operands[0]
      guard let steps = graph[x].type.shape[1].staticValue else {
        throw Diagnostic(
          "differentiate: lstm needs a bound time axis to be differentiated, found \(graph[x].type.shapeDescription)",
          at: node.location)
      }
      let first = graph.nodes.count
      let name = builder.unique("\(graph[node.results[0]].name).bptt")
      var g = builder.graph
      let copy = UnrollLSTM.unroll(node, steps: steps, name: name, into: &g)
      builder = GradientBuilder(graph: g)
      for i in first..<builder.graph.nodes.count {
        let n = builder.graph.nodes[i]
        let depends = n.operands.indices.contains {
          active.contains(n.operands[$0].index) || fromUnroll(n.operands[$0], first)
        }
        if depends { for r in n.results { active.insert(r.index) } }
      }
      contributions[copy.index, default: []].append(.full(dy))
      for i in stride(from: builder.graph.nodes.count - 1, through: first, by: -1) { try process(i) }
    }

    func fromUnroll(_ v: ValueID, _ firstNode: Int) -> Bool {
      if case .node(let n, _) = graph[v].origin { return n.index >= firstNode && active.contains(v.index) }
      return false
    }
  }
}
