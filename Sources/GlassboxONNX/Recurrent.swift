import GlassboxIR

/// ONNX's recurrent layers.
///
/// `LSTM` becomes Glassbox's `lstm` (batch first, PyTorch's gate order i, f, g, o) when it
/// starts from zero states and runs forward or both ways; ONNX's weights `W: [D, 4H, I]`,
/// `R: [D, 4H, H]` and `B: [D, 8H]` (gate order i, o, f, c) are reordered into PyTorch's
/// `weight_ih_l0: [4H, I]`, `weight_hh_l0: [4H, H]`, `bias_ih_l0`, `bias_hh_l0` (and
/// `_reverse`), named under the node's scope (`/lstm/LSTM` → `lstm.weight_ih_l0`; a second
/// layer under the same scope is `_l1`). With initial states, a reverse-only direction, or
/// its final cell state read, the LSTM is unrolled into `lstm_cell` steps (the sequence
/// length must be static). `GRU` and `RNN` are unrolled the same way, from `linear`,
/// `sigmoid`, `tanh` and arithmetic (GRU weights in PyTorch's gate order r, z, n).
extension Importer {
  /// The ONNX gate blocks in the order they are stored for Glassbox: LSTM i, o, f, c → i, f,
  /// c, o; GRU z, r, h → r, z, h.
  static let lstmGateOrder = [0, 2, 3, 1]
  /// The longest sequence a recurrent layer is unrolled over (each step is a handful of nodes).
  static let maxUnrolledSteps = 1 << 14
  static let gruGateOrder = [1, 0, 2]

  /// Rows `offset ..< offset + blocks·h` of direction `d` of a `[D, rows, width]` constant, its
  /// blocks of `h` rows taken in `order`: a `[blocks·h, width]` constant.
  func gateRows(_ c: Constant, direction d: Int, hidden h: Int, offset: Int, order: [Int]) -> Constant {
    let rows = c.shape[1], width = c.shape.count > 2 ? c.shape[2] : 1
    let blocks = order.count
    return c.gathered(shape: c.shape.count > 2 ? [blocks * h, width] : [blocks * h]) { flat in
      let row = flat / width, column = flat % width
      let source = offset + order[row / h] * h + row % h
      return (d * rows + source) * width + column
    }
  }

  /// The `layer`-th recurrent layer's parameter prefix: the node's module path (`/lstm/LSTM` →
  /// `lstm`), and the index of this layer under it.
  mutating func layerPrefix(_ n: NodeView) -> (prefix: String, layer: Int) {
    let source = n.proto.name.isEmpty ? (n.output(0) ?? n.label) : n.proto.name
    let parts = source.split(separator: "/").map(String.init)
    let prefix =
      ONNXNames.modulePath(ofNode: source)
      ?? ONNXNames.readable(parts.count >= 2 ? parts.dropLast().joined(separator: "/") : (parts.first ?? "rnn"))
    let layer = layerCounts[prefix, default: 0]
    layerCounts[prefix] = layer + 1
    return (prefix, layer)
  }

  /// Whether ONNX value `name` is read by a node or returned by the graph.
  func isUsed(_ name: String?) -> Bool { name.map { used.contains($0) } ?? false }

  /// A state input that is absent or all zeros (a constant, or a zero fill of a symbolic shape).
  func isZeroState(_ n: NodeView, _ i: Int) -> Bool {
    guard let name = n.input(i) else { return true }
    switch env[name] {
    case .constant(let c)?: return c.uniformFloat == 0
    case .fill(let v, _, _)?: return v == 0
    default: return false
    }
  }

  /// The sequence `X` as `[B, T, I]` (ONNX's layout 0 is `[T, B, I]`).
  mutating func batchFirst(_ n: NodeView, layout: Int) throws(ImportFailure) -> ValueID {
    let v = try x(n, 0)
    guard type(v).rank == 3 else { throw .invalid("X must be 3-D, found \(type(v).shapeDescription)") }
    guard layout == 0 else { return v }
    // torch.onnx turns a batch-first sequence time-first for the LSTM: turned back, it is the original.
    if let p = graph.producer(of: v), graph[p].op == .transpose, TransposeAttributes(of: graph[p]).perm == [1, 0, 2] {
      return graph[p].operands[0]
    }
    return try emit(.transpose, [v], TransposeAttributes(perm: [1, 0, 2]), temporary(n, "batch_first"))
  }

  /// Checks `activations` against the ones Glassbox computes for this layer.
  func checkActivations(_ n: NodeView, expected: [String], directions: Int) throws(ImportFailure) {
    guard let given = try n.strings("activations") else { return }
    let wanted = Array([[String]](repeating: expected, count: directions).joined())
    guard given.map({ $0.lowercased() }) == wanted.map({ $0.lowercased() }) else {
      throw .unsupported("activations \(given) (Glassbox computes \(wanted.joined(separator: ", ")))")
    }
    if n.has("clip") { throw .unsupported("cell clipping") }
    if n.has("activation_alpha") || n.has("activation_beta") { throw .unsupported("activation_alpha/beta") }
  }

  /// The sequence length `T` when `sequence_lens` (input 4) is absent or all `T`.
  func checkSequenceLengths(_ n: NodeView, steps: Dim) throws(ImportFailure) {
    guard n.input(4) != nil else { return }
    guard let lengths = try constant(n, 4, "sequence_lens"), let t = steps.staticValue,
      try lengths.intValues().allSatisfy({ $0 == t })
    else {
      throw .unsupported("sequences of different lengths (sequence_lens)")
    }
  }

  /// The initial state of direction `d` as `[B, H]`: a zero `constant` when absent or zero.
  mutating func initialState(
    _ n: NodeView, _ i: Int, direction d: Int, layout: Int, batch: Dim, hidden: Int,
    _ suffix: String
  ) throws(ImportFailure) -> ValueID {
    if isZeroState(n, i) {
      return try emit(
        .constant, [], ConstantAttributes(value: 0, shape: [batch, Dim(hidden)], dtype: .f32),
        temporary(n, suffix))
    }
    let state = try x(n, i)
    return try emit(.select, [state], SelectAttributes(axis: layout == 0 ? 0 : 1, index: d), temporary(n, suffix))
  }

  /// `[B, T, D·H]` (directions side by side, as Glassbox's `lstm` gives them) as ONNX's `Y`:
  /// `[T, D, B, H]` (layout 0) or `[B, T, D, H]` (layout 1).
  mutating func sequenceOutput(
    _ n: NodeView, _ r: ValueID, directions: Int, hidden: Int, layout: Int
  )
    throws(ImportFailure) -> ValueID
  {
    let s = type(r).shape
    let split = try reshape(
      r, [s[0], s[1], Dim(directions), Dim(hidden)],
      layout == 0 ? temporary(n, "directions") : out(n, 0))
    guard layout == 0 else { return split }
    return try emit(.transpose, [split], TransposeAttributes(perm: [1, 2, 0, 3]), out(n, 0))
  }

  /// Final states `[B, H]` per direction as ONNX's `[D, B, H]` (layout 0) or `[B, D, H]`.
  mutating func stateOutput(
    _ n: NodeView, _ states: [ValueID], layout: Int, _ k: Int
  ) throws(ImportFailure)
    -> ValueID
  {
    var parts: [ValueID] = []
    for (d, s) in states.enumerated() {
      let shape = type(s).shape
      let target = layout == 0 ? [1, shape[0], shape[1]] : [shape[0], 1, shape[1]]
      parts.append(try reshape(s, target, states.count == 1 ? out(n, k) : temporary(n, "state\(k)_\(d)")))
    }
    if parts.count == 1 { return parts[0] }
    return try emit(.concat, parts, ConcatAttributes(axis: layout == 0 ? 0 : 1), out(n, k))
  }

  // MARK: LSTM

  mutating func lstm(_ n: NodeView) throws(ImportFailure) {
    let h = try n.int("hidden_size", 0)
    guard h > 0, h <= 1 << 20 else { throw .invalid("hidden_size must lie in 1...\(1 << 20), found \(h)") }
    let direction = try n.string("direction", "forward")
    guard ["forward", "reverse", "bidirectional"].contains(direction) else {
      throw .invalid("direction '\(direction)' is not forward, reverse or bidirectional")
    }
    let directions = direction == "bidirectional" ? 2 : 1
    let layout = opset >= 14 ? try n.int("layout", 0) : 0
    try checkActivations(n, expected: ["Sigmoid", "Tanh", "Tanh"], directions: directions)
    if try n.int("input_forget", 0) != 0 { throw .unsupported("input_forget (coupled input and forget gates)") }
    guard let w = try constant(n, 1, "W"), let r = try constant(n, 2, "R") else { throw .invalid("needs W and R") }
    let xb = try batchFirst(n, layout: layout)
    let (batch, steps, features) = (type(xb).shape[0], type(xb).shape[1], type(xb).shape[2])
    guard let inputSize = features.staticValue, w.shape == [directions, 4 * h, inputSize],
      r.shape == [directions, 4 * h, h]
    else {
      throw .invalid(
        "W \(w.shape) and R \(r.shape) must be [\(directions), \(4 * h), \(features)] and "
          + "[\(directions), \(4 * h), \(h)]")
    }
    let b = try constant(n, 3, "B") ?? Constant(dtype: .f32, shape: [directions, 8 * h], elements: .splat(0))
    guard b.shape == [directions, 8 * h] else { throw .invalid("B \(b.shape) must be [\(directions), \(8 * h)]") }
    if let p = try constant(n, 7, "P"), p.uniformFloat != 0 { throw .unsupported("peephole connections (P)") }
    try checkSequenceLengths(n, steps: steps)

    let (prefix, layer) = layerPrefix(n)
    let bound = 1 / Double(h).squareRoot()
    var parameters: [ValueID] = []
    for d in 0..<directions {
      let suffix = "_l\(layer)" + (d == 1 || direction == "reverse" ? "_reverse" : "")
      let order = Importer.lstmGateOrder
      let pieces = [
        ("weight_ih", gateRows(w, direction: d, hidden: h, offset: 0, order: order)),
        ("weight_hh", gateRows(r, direction: d, hidden: h, offset: 0, order: order)),
        ("bias_ih", gateRows(b, direction: d, hidden: h, offset: 0, order: order)),
        ("bias_hh", gateRows(b, direction: d, hidden: h, offset: 4 * h, order: order)),
      ]
      for (name, c) in pieces {
        parameters.append(
          try materialize(
            c, name: names.fresh("\(prefix).\(name)\(suffix)"), asWeight: true,
            initializer: .uniform(bound: bound)))
      }
    }
    let unrolled = direction == "reverse" || !isZeroState(n, 5) || !isZeroState(n, 6) || isUsed(n.output(2))
    if !unrolled {
      let lastOnly = directions == 1 && !isUsed(n.output(0))
      let result = try emit(
        .lstm, [xb] + parameters,
        LSTMAttributes(
          hidden: h, bidirectional: directions == 2,
          last: lastOnly), temporary(n, "lstm"))
      if lastOnly {
        set(n, try stateOutput(n, [result], layout: layout, 1), 1)
        return
      }
      if isUsed(n.output(0)) {
        set(n, try sequenceOutput(n, result, directions: directions, hidden: h, layout: layout))
      }
      if isUsed(n.output(1)) {
        var finals: [ValueID] = []
        for d in 0..<directions {
          let step = try emit(
            .select, [result], SelectAttributes(axis: 1, index: d == 0 ? -1 : 0),
            temporary(n, "final_step\(d)"))
          finals.append(
            directions == 1
              ? step
              : try emit(
                .slice, [step], SliceAttributes(axis: 1, start: d * h, end: (d + 1) * h, step: 1),
                temporary(n, "final\(d)")))
        }
        set(n, try stateOutput(n, finals, layout: layout, 1), 1)
      }
      return
    }
    guard let t = steps.staticValue, t <= Importer.maxUnrolledSteps else {
      throw .unsupported(
        "an LSTM with initial states, a reverse-only direction or its cell state read runs as "
          + "unrolled steps, which needs a static sequence length of at most "
          + "\(Importer.maxUnrolledSteps) (found \(steps))")
    }
    var sequences: [ValueID] = [], finalH: [ValueID] = [], finalC: [ValueID] = []
    for d in 0..<directions {
      let (wih, whh) = (parameters[4 * d], parameters[4 * d + 1])
      let (bih, bhh) = (parameters[4 * d + 2], parameters[4 * d + 3])
      let projected = try emit(
        .linear, [xb, wih, bih], LinearAttributes(activation: .none),
        temporary(n, "gates_x\(d)"))
      let gates = try binary(.add, projected, bhh, temporary(n, "gates\(d)"))
      var hState = try initialState(n, 5, direction: d, layout: layout, batch: batch, hidden: h, "h0_\(d)")
      var cState = try initialState(n, 6, direction: d, layout: layout, batch: batch, hidden: h, "c0_\(d)")
      let reverse = d == 1 || direction == "reverse"
      var outputs = [ValueID?](repeating: nil, count: t)
      for step in reverse ? Array((0..<t).reversed()) : Array(0..<t) {
        let g = try emit(.select, [gates], SelectAttributes(axis: 1, index: step), temporary(n, "gates\(d)_t\(step)"))
        let next = try emit(
          .lstmCell, [g, hState, cState, whh], NoAttributes(),
          names: [temporary(n, "h\(d)_t\(step)"), temporary(n, "c\(d)_t\(step)")])
        (hState, cState) = (next[0], next[1])
        outputs[step] = try reshape(hState, [batch, 1, Dim(h)], temporary(n, "y\(d)_t\(step)"))
      }
      let ordered = outputs.compactMap { $0 }
      sequences.append(
        t == 1
          ? ordered[0]
          : try emit(.concat, ordered, ConcatAttributes(axis: 1), temporary(n, "y\(d)")))
      finalH.append(hState)
      finalC.append(cState)
    }
    let result =
      directions == 1
      ? sequences[0]
      : try emit(.concat, sequences, ConcatAttributes(axis: 2), temporary(n, "y"))
    if isUsed(n.output(0)) { set(n, try sequenceOutput(n, result, directions: directions, hidden: h, layout: layout)) }
    if isUsed(n.output(1)) { set(n, try stateOutput(n, finalH, layout: layout, 1), 1) }
    if isUsed(n.output(2)) { set(n, try stateOutput(n, finalC, layout: layout, 2), 2) }
  }

  // MARK: GRU and RNN

  /// `GRU` and `RNN` unrolled over a static sequence length.
  mutating func simpleRecurrence(_ n: NodeView) throws(ImportFailure) {
    let isGRU = n.opType == "GRU"
    let gates = isGRU ? 3 : 1
    let h = try n.int("hidden_size", 0)
    guard h > 0, h <= 1 << 20 else { throw .invalid("hidden_size must lie in 1...\(1 << 20), found \(h)") }
    let direction = try n.string("direction", "forward")
    guard ["forward", "reverse", "bidirectional"].contains(direction) else {
      throw .invalid("direction '\(direction)' is not forward, reverse or bidirectional")
    }
    let directions = direction == "bidirectional" ? 2 : 1
    let layout = opset >= 14 ? try n.int("layout", 0) : 0
    var activation: Op = .tanh
    if isGRU {
      try checkActivations(n, expected: ["Sigmoid", "Tanh"], directions: directions)
    } else {
      let given = try n.strings("activations") ?? ["Tanh"]
      let kinds: [String: Op] = ["tanh": .tanh, "relu": .relu, "sigmoid": .sigmoid]
      guard let first = given.first, let op = kinds[first.lowercased()],
        given.allSatisfy({ $0.lowercased() == first.lowercased() })
      else {
        throw .unsupported("activations \(given)")
      }
      activation = op
      if n.has("clip") { throw .unsupported("cell clipping") }
    }
    let resetAfter = isGRU ? try n.int("linear_before_reset", 0) == 1 : true
    guard let w = try constant(n, 1, "W"), let r = try constant(n, 2, "R") else { throw .invalid("needs W and R") }
    let xb = try batchFirst(n, layout: layout)
    let (batch, steps, features) = (type(xb).shape[0], type(xb).shape[1], type(xb).shape[2])
    guard let inputSize = features.staticValue, w.shape == [directions, gates * h, inputSize],
      r.shape == [directions, gates * h, h]
    else {
      throw .invalid(
        "W \(w.shape) and R \(r.shape) must be [\(directions), \(gates * h), \(features)] and "
          + "[\(directions), \(gates * h), \(h)]")
    }
    let b = try constant(n, 3, "B") ?? Constant(dtype: .f32, shape: [directions, 2 * gates * h], elements: .splat(0))
    guard b.shape == [directions, 2 * gates * h] else {
      throw .invalid("B \(b.shape) must be [\(directions), \(2 * gates * h)]")
    }
    try checkSequenceLengths(n, steps: steps)
    guard let t = steps.staticValue, t <= Importer.maxUnrolledSteps else {
      throw .unsupported(
        "\(n.opType) runs as unrolled steps, which needs a static sequence length of at most "
          + "\(Importer.maxUnrolledSteps) (found \(steps))")
    }
    let (prefix, layer) = layerPrefix(n)
    let bound = 1 / Double(h).squareRoot()
    let order = isGRU ? Importer.gruGateOrder : [0]
    var sequences: [ValueID] = [], finals: [ValueID] = []
    let hid = Dim(h)
    for d in 0..<directions {
      let suffix = "_l\(layer)" + (d == 1 || direction == "reverse" ? "_reverse" : "")
      func parameter(_ name: String, _ c: Constant) throws(ImportFailure) -> ValueID {
        try materialize(
          c, name: names.fresh("\(prefix).\(name)\(suffix)"), asWeight: true,
          initializer: .uniform(bound: bound))
      }
      let wih = try parameter("weight_ih", gateRows(w, direction: d, hidden: h, offset: 0, order: order))
      let bih = try parameter("bias_ih", gateRows(b, direction: d, hidden: h, offset: 0, order: order))
      let whh = try parameter("weight_hh", gateRows(r, direction: d, hidden: h, offset: 0, order: order))
      let bhh = try parameter("bias_hh", gateRows(b, direction: d, hidden: h, offset: gates * h, order: order))
      let projected = try emit(.linear, [xb, wih, bih], LinearAttributes(activation: .none), temporary(n, "x\(d)"))
      // Without linear_before_reset the new gate's recurrent product reads r ⊙ h: its rows apart.
      var split: (wrz: ValueID, brz: ValueID, wn: ValueID, bn: ValueID)?
      if isGRU && !resetAfter {
        split = (
          try slicedRows(n, whh, 0, 2 * h, "w_rz\(d)"), try slicedRows(n, bhh, 0, 2 * h, "b_rz\(d)"),
          try slicedRows(n, whh, 2 * h, 3 * h, "w_n\(d)"), try slicedRows(n, bhh, 2 * h, 3 * h, "b_n\(d)")
        )
      }
      var state = try initialState(n, 5, direction: d, layout: layout, batch: batch, hidden: h, "h0_\(d)")
      let reverse = d == 1 || direction == "reverse"
      var outputs = [ValueID?](repeating: nil, count: t)
      for step in reverse ? Array((0..<t).reversed()) : Array(0..<t) {
        let tag = "\(d)_t\(step)"
        let xs = try emit(.select, [projected], SelectAttributes(axis: 1, index: step), temporary(n, "x\(tag)"))
        if isGRU {
          // r, z, n pieces of the input projection and of the recurrent one (PyTorch's order).
          let xp = try emit(
            .split, [xs], SplitAttributes(axis: 1, sizes: [h, h, h]),
            names: [temporary(n, "xr\(tag)"), temporary(n, "xz\(tag)"), temporary(n, "xn\(tag)")])
          let hr: ValueID, hz: ValueID, hn: ValueID
          if let split {
            let rz = try emit(
              .linear, [state, split.wrz, split.brz], LinearAttributes(activation: .none),
              temporary(n, "hrz\(tag)"))
            let hp = try emit(
              .split, [rz], SplitAttributes(axis: 1, sizes: [h, h]),
              names: [temporary(n, "hr\(tag)"), temporary(n, "hz\(tag)")])
            (hr, hz, hn) = (hp[0], hp[1], state)
          } else {
            let hs = try emit(
              .linear, [state, whh, bhh], LinearAttributes(activation: .none), temporary(n, "hh\(tag)"))
            let hp = try emit(
              .split, [hs], SplitAttributes(axis: 1, sizes: [h, h, h]),
              names: [temporary(n, "hr\(tag)"), temporary(n, "hz\(tag)"), temporary(n, "hn\(tag)")])
            (hr, hz, hn) = (hp[0], hp[1], hp[2])
          }
          let reset = try emit(
            .sigmoid, [try binary(.add, xp[0], hr, temporary(n, "r_in\(tag)"))], NoAttributes(),
            temporary(n, "r\(tag)"))
          let update = try emit(
            .sigmoid, [try binary(.add, xp[1], hz, temporary(n, "z_in\(tag)"))], NoAttributes(),
            temporary(n, "z\(tag)"))
          var recurrent: ValueID
          if let split {
            let gated = try binary(.mul, reset, hn, temporary(n, "rh\(tag)"))
            recurrent = try emit(
              .linear, [gated, split.wn, split.bn], LinearAttributes(activation: .none),
              temporary(n, "hn\(tag)"))
          } else {
            recurrent = try binary(.mul, reset, hn, temporary(n, "rh\(tag)"))
          }
          let candidate = try emit(
            .tanh, [try binary(.add, xp[2], recurrent, temporary(n, "n_in\(tag)"))],
            NoAttributes(), temporary(n, "n\(tag)"))
          // h' = n + z ⊙ (h − n) = (1 − z) ⊙ n + z ⊙ h
          let delta = try binary(.sub, state, candidate, temporary(n, "delta\(tag)"))
          state = try binary(
            .add, candidate, try binary(.mul, update, delta, temporary(n, "kept\(tag)")),
            temporary(n, "h\(tag)"))
        } else {
          let hh = try emit(.linear, [state, whh, bhh], LinearAttributes(activation: .none), temporary(n, "hh\(tag)"))
          state = try emit(
            activation, [try binary(.add, xs, hh, temporary(n, "in\(tag)"))], NoAttributes(),
            temporary(n, "h\(tag)"))
        }
        outputs[step] = try reshape(state, [batch, 1, hid], temporary(n, "y\(tag)"))
      }
      let ordered = outputs.compactMap { $0 }
      sequences.append(
        t == 1
          ? ordered[0]
          : try emit(.concat, ordered, ConcatAttributes(axis: 1), temporary(n, "y\(d)")))
      finals.append(state)
    }
    let result =
      directions == 1
      ? sequences[0]
      : try emit(.concat, sequences, ConcatAttributes(axis: 2), temporary(n, "y"))
    if isUsed(n.output(0)) { set(n, try sequenceOutput(n, result, directions: directions, hidden: h, layout: layout)) }
    if isUsed(n.output(1)) { set(n, try stateOutput(n, finals, layout: layout, 1), 1) }
  }

  /// Rows `start..<end` of a weight (or bias) parameter, sliced in the graph.
  mutating func slicedRows(
    _ n: NodeView, _ v: ValueID, _ start: Int, _ end: Int, _ suffix: String
  )
    throws(ImportFailure) -> ValueID
  {
    try emit(.slice, [v], SliceAttributes(axis: 0, start: start, end: end, step: 1), temporary(n, suffix))
  }
}
