/// Gradient rules, one per op, next to the op catalogue. `Differentiate` (GlassboxPasses)
/// walks a graph backwards and asks each node's op for the gradients of its operands, given
/// the gradients of its results; the rules build those as ordinary nodes, composed from
/// existing ops where that costs nothing and from the backward ops of `Op` otherwise.
///
/// Conventions: `dy` is the gradient of a result (same type); a rule returns one gradient per
/// operand, `nil` where the operand is not wanted or carries none (the i64 `target` of
/// `cross_entropy`, batch-norm buffers).

/// Whether and how an op propagates gradients.
public enum GradientKind: Sendable, Equatable {
  /// `Op.gradients` builds the operands' gradients.
  case rule
  /// The result does not depend differentiably on any operand (a constant, a one-hot seed):
  /// gradients stop here.
  case nonDifferentiable
  /// The op is differentiated through its unrolled form (`lstm` → per-step `lstm_cell`s).
  case unrollFirst
  /// No rule: a gradient that must pass through the op is an error naming it.
  case none
}

extension Op {
  /// How this op propagates gradients.
  public var gradientKind: GradientKind {
    switch self {
    case .conv2d, .maxPool2d, .avgPool2d, .globalAvgPool2d, .batchNorm, .batchNormTrain, .linear, .matmul, .batchMatmul,
      .add, .sub, .mul, .div, .relu, .sigmoid, .tanh, .exp, .log, .sqrt, .abs, .erf, .pow, .maximum, .minimum,
      .softmax, .logSoftmax, .sum, .mean, .max, .reshape, .flatten, .transpose, .concat, .slice, .select, .split,
      .pad, .lstmCell, .dropout, .crossEntropy, .fusedElementwise, .layerNorm, .lrn, .toBlocked, .fromBlocked:
      .rule
    case .lstm: .unrollFirst
    case .constant, .classSeed: .nonDifferentiable
    case .reluBackward, .linearBackwardWeight, .sliceBackward, .maxBackward, .lstmCellBackward, .crossEntropyBackward,
      .conv2dBackwardInput, .conv2dBackwardWeight, .maxPool2dBackward, .avgPool2dBackward, .batchNormTrainBackward,
      .layerNormBackward, .lrnBackward:
      .none
    }
  }

  /// Whether operand `i` can carry a gradient (the class indices of `cross_entropy`, the
  /// buffers of `batch_norm` cannot).
  public func isDifferentiable(operand i: Int) -> Bool {
    switch self {
    case .crossEntropy: i == 0
    case .batchNorm: i < 3
    case .conv2d, .maxPool2d, .avgPool2d, .globalAvgPool2d, .linear, .matmul, .batchMatmul, .add, .sub, .mul, .div,
      .relu, .sigmoid, .tanh, .exp, .log, .sqrt, .abs, .erf, .pow, .maximum, .minimum, .softmax, .logSoftmax,
      .sum, .mean, .max, .reshape, .flatten, .transpose, .concat, .slice, .select, .split, .pad, .lstm, .lstmCell,
      .dropout, .batchNormTrain, .fusedElementwise, .layerNorm, .lrn, .toBlocked, .fromBlocked:
      true
    // No rule, but their results do depend on their operands: a gradient asked through them
    // is an error, not a silent zero.
    case .reluBackward, .linearBackwardWeight, .sliceBackward, .maxBackward, .lstmCellBackward, .crossEntropyBackward,
      .conv2dBackwardInput, .conv2dBackwardWeight, .maxPool2dBackward, .avgPool2dBackward, .batchNormTrainBackward,
      .layerNormBackward, .lrnBackward:
      true
    case .constant, .classSeed:
      false
    }
  }

  /// The gradients of `node`'s operands given its results' gradients `dys` (nil: zero), built
  /// into `b.graph`. Only operands with `want[i]` get one. Called only for `.rule` ops.
  public func gradients(
    of node: Node, dys: [ValueID?], want: [Bool],
    into b: inout GradientBuilder
  ) throws(ShapeError) -> [ValueID?] {
    let x = node.operands
    var out = [ValueID?](repeating: nil, count: x.count)
    func type(_ v: ValueID) -> TensorType { b.graph[v].type }
    // The gradient of result 0, zeros when only another result has one.
    func dy0() throws(ShapeError) -> ValueID {
      if let d = dys[0] { return d }
      return try b.zeros(type(node.results[0]))
    }
    let y = node.results[0]
    switch self {
    case .conv2d:
      let a = ConvolutionAttributes(of: node)
      guard a.layout == .plain, type(x[0]).rank == 4 else {
        throw ShapeError("conv2d: a blocked convolution has no gradient rule; differentiate before choose-layouts")
      }
      var dy = try dy0()
      if a.activation == .relu { dy = try b.add(.reluBackward, [dy, y], tag: "drelu")[0] }
      if x.count > 3, want[3] { out[3] = dy }
      let xt = type(x[0]), wt = type(x[1])
      if want[0] {
        guard let h = xt.shape[2].staticValue, let w = xt.shape[3].staticValue else {
          throw ShapeError("conv2d: the input gradient needs a static height and width, found \(xt.shapeDescription)")
        }
        let attrs = ConvolutionInputGradientAttributes(geometry: a.geometry, inputSize: Pair(h, w))
        out[0] = try b.add(.conv2dBackwardInput, [dy, x[1]], attrs, tag: "dx")[0]
      }
      if want[1] {
        guard let h = wt.shape[2].staticValue, let w = wt.shape[3].staticValue else {
          throw ShapeError("conv2d: the weight gradient needs a static kernel, found \(wt.shapeDescription)")
        }
        let attrs = ConvolutionWeightGradientAttributes(geometry: a.geometry, kernel: Pair(h, w))
        out[1] = try b.add(.conv2dBackwardWeight, [dy, x[0]], attrs, tag: "dweight")[0]
      }
      if x.count > 2, want[2] { out[2] = try b.sum(dy, axes: [0, 2, 3]) }

    case .toBlocked:
      out[0] = try b.add(.fromBlocked, [dy0()], tag: "dx")[0]

    case .fromBlocked:
      out[0] = try b.add(.toBlocked, [dy0()], tag: "dx")[0]

    case .maxPool2d:
      guard type(x[0]).rank == 4 else {
        throw ShapeError("max_pool2d: a blocked max pooling has no gradient rule; differentiate before choose-layouts")
      }
      out[0] = try b.add(.maxPool2dBackward, [dy0(), x[0]], MaxPoolAttributes(of: node), tag: "dx")[0]

    case .avgPool2d:
      out[0] = try b.add(.avgPool2dBackward, [dy0(), x[0]], AvgPoolAttributes(of: node), tag: "dx")[0]

    case .batchNormTrain:
      guard dys[1] == nil, dys[2] == nil else {
        throw ShapeError("batch_norm_train: the batch statistics it outputs carry no gradient")
      }
      // With a ReLU the backward masks dy itself, from the pre-activation it recomputes (the
      // bias is then its sixth operand): no separate pass, no saved pre-activation.
      let a = BatchNormTrainAttributes(of: node)
      let operands = try [dy0(), x[0], x[1], node.results[1], node.results[2]] + (a.activation == .relu ? [x[2]] : [])
      let r = try b.add(.batchNormTrainBackward, operands, a, tag: "d")
      out = [r[0], r[1], r[2]]

    case .globalAvgPool2d:
      let xt = type(x[0])
      let hw = xt.shape[2].multiplied(by: xt.shape[3])?.staticValue ?? 1
      out[0] = try b.broadcast(b.scale(dy0(), 1 / Double(hw)), to: xt)

    case .batchNorm:
      // Inference mode: y = (x − mean)/√(var + eps)·w + b, running statistics fixed.
      let a = BatchNormAttributes(of: node)
      let dy = try dy0()
      let xt = type(x[0])
      let channel = TensorType(xt.dtype, [xt.shape[1]])
      let axes = [0] + Array(2..<Swift.max(xt.rank, 2))
      let zeros = try b.zeros(channel)
      if want[0] {
        // dx = dy·w/√(var + eps): a batch norm of dy with zero mean and bias.
        out[0] = try b.add(.batchNorm, [dy, x[1], zeros, zeros, x[4], x[5]], a, tag: "dx")[0]
      }
      if want[1] {
        let ones = try b.constant(1, channel)
        let normalized = try b.add(.batchNorm, [x[0], ones, zeros, x[3], x[4], x[5]], a, tag: "xhat")[0]
        out[1] = try b.sum(b.binary(.mul, dy, normalized), axes: axes)
      }
      if want[2] { out[2] = try b.sum(dy, axes: axes) }

    case .linear:
      var dy = try dy0()
      if LinearAttributes(of: node).activation == .relu { dy = try b.add(.reluBackward, [dy, y], tag: "drelu")[0] }
      if x.count > 3, want[3] { out[3] = dy }
      let wt = type(x[1])
      if want[0] {
        let rows = try b.reshape(dy, [Dim(-1), wt.shape[0]])
        let dx = try b.add(.matmul, [rows, x[1]], tag: "dx")[0]
        out[0] = try b.reshape(dx, type(x[0]).shape)
      }
      if want[1] { out[1] = try b.add(.linearBackwardWeight, [dy, x[0]], tag: "dweight")[0] }
      if x.count > 2, want[2] {
        let rank = type(dy).rank
        out[2] = rank == 1 ? dy : try b.sum(dy, axes: Array(0..<(rank - 1)))
      }

    case .matmul, .batchMatmul:
      let dy = try dy0()
      let rank = type(dy).rank
      var perm = Array(0..<rank)
      perm.swapAt(rank - 1, rank - 2)
      let op: Op = self
      if want[0] { out[0] = try b.add(op, [dy, b.transpose(x[1], perm)], tag: "da")[0] }
      if want[1] { out[1] = try b.add(op, [b.transpose(x[0], perm), dy], tag: "db")[0] }

    case .add, .sub:
      let dy = try dy0()
      if want[0] { out[0] = try b.sum(dy, to: type(x[0])) }
      if want[1] { out[1] = try b.sum(self == .sub ? b.scale(dy, -1) : dy, to: type(x[1])) }

    case .mul:
      let dy = try dy0()
      if want[0] { out[0] = try b.sum(b.binary(.mul, dy, x[1]), to: type(x[0])) }
      if want[1] { out[1] = try b.sum(b.binary(.mul, dy, x[0]), to: type(x[1])) }

    case .div:
      let dy = try dy0()
      let q = try b.binary(.div, dy, x[1])
      if want[0] { out[0] = try b.sum(q, to: type(x[0])) }
      // d(a/b)/db = −(a/b)/b.
      if want[1] { out[1] = try b.sum(b.scale(b.binary(.mul, q, y), -1), to: type(x[1])) }

    case .relu:
      // The mask from the result, as PyTorch (`threshold_backward(grad, result, 0)`): the input
      // then dies at the ReLU, which can run in place or fuse with what made it.
      out[0] = try b.add(.reluBackward, [dy0(), y], tag: "dx")[0]

    case .sigmoid:
      // σ' = y(1 − y).
      let oneMinus = try b.binary(.sub, b.constant(1, TensorType(type(y).dtype, [])), y)
      out[0] = try b.binary(.mul, dy0(), b.binary(.mul, y, oneMinus))

    case .tanh:
      // tanh' = 1 − y².
      let oneMinus = try b.binary(.sub, b.constant(1, TensorType(type(y).dtype, [])), b.binary(.mul, y, y))
      out[0] = try b.binary(.mul, dy0(), oneMinus)

    case .exp:
      // (eˣ)' = eˣ, the result.
      out[0] = try b.binary(.mul, dy0(), y)

    case .log:
      out[0] = try b.binary(.div, dy0(), x[0])

    case .sqrt:
      // (√x)' = 1/(2√x), from the result as PyTorch (`grad / (2 * result)`).
      out[0] = try b.binary(.div, dy0(), b.scale(y, 2))

    case .abs:
      // dy where x > 0, −dy where x < 0 and 0 at 0 (PyTorch's `grad * sign(x)`).
      let dy = try dy0()
      let positive = try b.add(.reluBackward, [dy, x[0]], tag: "positive")[0]
      let negative = try b.add(.reluBackward, [dy, b.scale(x[0], -1)], tag: "negative")[0]
      out[0] = try b.binary(.sub, positive, negative)

    case .erf:
      // erf'(x) = 2/√π · e^(−x²).
      let density = try b.add(.exp, [b.scale(b.binary(.mul, x[0], x[0]), -1)], tag: "density")[0]
      out[0] = try b.binary(.mul, dy0(), b.scale(density, 2 / Double.pi.squareRoot()))

    case .pow:
      // ∂/∂a = b·a^(b−1), ∂/∂b = aᵇ·ln a. Unlike PyTorch, which makes them 0 there, ∂/∂a is NaN
      // where a = 0 and b = 0, and ∂/∂b where a = 0 (an exponent rarely carries a gradient).
      let dy = try dy0()
      if want[0] {
        let lowered = try b.binary(.sub, x[1], b.constant(1, TensorType(type(x[1]).dtype, [])))
        let slope = try b.binary(.mul, b.binary(.pow, x[0], lowered), x[1])
        out[0] = try b.sum(b.binary(.mul, dy, slope), to: type(x[0]))
      }
      if want[1] {
        let logarithm = try b.add(.log, [x[0]], tag: "log")[0]
        out[1] = try b.sum(b.binary(.mul, dy, b.binary(.mul, y, logarithm)), to: type(x[1]))
      }

    case .maximum, .minimum:
      // Each element's gradient goes to the operand that gave it, to `a` on a tie: `b` takes dy
      // where it is strictly the larger (the smaller), `a` the rest.
      let dy = try dy0()
      let margin = self == .maximum ? try b.binary(.sub, x[1], x[0]) : try b.binary(.sub, x[0], x[1])
      let toB = try b.add(.reluBackward, [dy, margin], tag: "db")[0]
      if want[0] { out[0] = try b.sum(b.binary(.sub, dy, toB), to: type(x[0])) }
      if want[1] { out[1] = try b.sum(toB, to: type(x[1])) }

    case .softmax:
      // dx = y ⊙ (dy − Σ_axis dy ⊙ y).
      let dy = try dy0()
      let axis = SoftmaxAttributes(of: node).axis
      let dot = try b.add(.sum, [b.binary(.mul, dy, y)], ReduceAttributes(axes: [axis], keepdims: true), tag: "dot")[0]
      out[0] = try b.binary(.mul, y, b.binary(.sub, dy, dot))

    case .logSoftmax:
      // dx = dy − softmax(x) ⊙ Σ_axis dy.
      let dy = try dy0()
      let axis = SoftmaxAttributes(of: node).axis
      let total = try b.add(.sum, [dy], ReduceAttributes(axes: [axis], keepdims: true), tag: "total")[0]
      let p = try b.add(.softmax, [x[0]], SoftmaxAttributes(axis: axis), tag: "softmax")[0]
      out[0] = try b.binary(.sub, dy, b.binary(.mul, p, total))

    case .sum, .mean:
      let xt = type(x[0])
      let axes = ReduceAttributes(of: node).axes
      let kept = try Op.sum.inferTypes([xt], ReduceAttributes(axes: axes, keepdims: true).encoded)[0]
      var dy = try b.reshape(dy0(), kept.shape)
      if self == .mean {
        let count = (xt.elementCount?.staticValue ?? 1) / Swift.max(kept.elementCount?.staticValue ?? 1, 1)
        dy = try b.scale(dy, 1 / Double(Swift.max(count, 1)))
      }
      out[0] = try b.broadcast(dy, to: xt)

    case .max:
      out[0] = try b.add(.maxBackward, [dy0(), x[0], y], ReduceAttributes(of: node), tag: "dx")[0]

    case .reshape, .flatten:
      out[0] = try b.reshape(dy0(), type(x[0]).shape)

    case .transpose:
      let perm = TransposeAttributes(of: node).perm
      var inverse = perm
      for (i, p) in perm.enumerated() { inverse[p] = i }
      out[0] = try b.transpose(dy0(), inverse)

    case .concat:
      let dy = try dy0()
      let rank = type(dy).rank
      let axis = normalizedAxis(ConcatAttributes(of: node).axis, rank: rank)
      var start = 0
      for (i, operand) in x.enumerated() {
        guard let size = type(operand).shape[axis].staticValue else {
          throw ShapeError(
            "concat: the gradient needs static sizes along axis \(axis), found \(type(operand).shape[axis])")
        }
        if want[i] { out[i] = try b.slice(dy, axis: axis, start: start, end: start + size) }
        start += size
      }

    case .slice:
      let a = SliceAttributes(of: node), xt = type(x[0])
      let attrs = SliceBackwardAttributes(slice: a, size: xt.shape[normalizedAxis(a.axis, rank: xt.rank)])
      out[0] = try b.add(.sliceBackward, [dy0()], attrs, tag: "dx")[0]

    case .select:
      let a = SelectAttributes(of: node)
      out[0] = try b.selectBackward(dy0(), input: type(x[0]), axis: a.axis, index: a.index)

    case .split:
      let axis = normalizedAxis(SplitAttributes(of: node).axis, rank: type(x[0]).rank)
      var pieces: [ValueID] = []
      for (r, d) in zip(node.results, dys) {
        if let d { pieces.append(d) } else { pieces.append(try b.zeros(type(r))) }
      }
      out[0] = pieces.count == 1 ? pieces[0] : try b.add(.concat, pieces, ConcatAttributes(axis: axis), tag: "dx")[0]

    case .pad:
      // Axis by axis from the last: the interior, plus (reflect, edge) each padded slice added
      // onto the element it copied.
      let a = PadAttributes(of: node), xt = type(x[0])
      var g = try dy0()
      for axis in stride(from: xt.rank - 1, through: 0, by: -1) where a.before(axis) > 0 || a.after(axis) > 0 {
        guard let n = xt.shape[axis].staticValue else { throw ShapeError("pad: padded axis \(axis) is not static") }
        let before = a.before(axis), after = a.after(axis)
        var total = try b.slice(g, axis: axis, start: before, end: before + n)
        func place(_ piece: ValueID, at source: Int, _ b: inout GradientBuilder) throws(ShapeError) -> ValueID {
          let slice = SliceAttributes(axis: axis, start: source, end: source + 1, step: 1)
          return try b.add(.sliceBackward, [piece], SliceBackwardAttributes(slice: slice, size: Dim(n)), tag: "dpad")[0]
        }
        switch a.mode {
        case .constant:
          break
        case .edge:
          for (start, count, source) in [(0, before, 0), (before + n, after, n - 1)] where count > 0 {
            let block = try b.slice(g, axis: axis, start: start, end: start + count)
            let piece = try b.add(.sum, [block], ReduceAttributes(axes: [axis], keepdims: true), tag: "edge")[0]
            total = try b.binary(.add, total, place(piece, at: source, &b))
          }
        case .reflect:
          for i in Array(0..<before) + Array((before + n)..<(before + n + after)) {
            guard let source = a.source(i, axis: axis, size: n) else { continue }
            total = try b.binary(.add, total, place(b.slice(g, axis: axis, start: i, end: i + 1), at: source, &b))
          }
        }
        g = total
      }
      out[0] = g

    case .lrn:
      // One backward node that recomputes the window sums from x.
      out[0] = try b.add(.lrnBackward, [dy0(), x[0]], LRNAttributes(of: node), tag: "dx")[0]

    case .lstmCell:
      let dh = try dy0()
      let dc: ValueID
      if let d = dys[1] { dc = d } else { dc = try b.zeros(type(node.results[1])) }
      let r = try b.add(.lstmCellBackward, [dh, dc, x[0], x[1], x[2], x[3]], tag: "d")
      out[0] = r[0]
      out[1] = r[1]
      out[2] = r[2]
      if want[3] { out[3] = try b.add(.linearBackwardWeight, [r[0], x[1]], tag: "dweight_hh")[0] }

    case .dropout:
      // Inference semantics (identity); training programs replace dropout by a mask product.
      out[0] = try dy0()

    case .crossEntropy:
      out[0] = try b.add(.crossEntropyBackward, [dy0(), x[0], x[1]], tag: "dlogits")[0]

    case .fusedElementwise:
      // Recompute the program's steps as the primitive nodes it fused, then differentiate
      // those backwards, accumulating into registers (operands first).
      let program = FusedElementwiseAttributes(of: node).program
      var registers = x
      var steps: [Node] = []
      for s in 0..<(program.count / 3) {
        guard let code = ElementwiseCode(rawValue: program[3 * s]) else {
          throw ShapeError("fused_elementwise: unknown code")
        }
        let operands =
          code.isBinary
          ? [registers[program[3 * s + 1]], registers[program[3 * s + 2]]] : [registers[program[3 * s + 1]]]
        let r = try b.add(code.op, operands, tag: "step\(s)")
        steps.append(
          Node(
            op: code.op, operands: operands, results: r, attributes: NoAttributes().encoded,
            location: node.location))
        registers.append(r[0])
      }
      var grads = [ValueID?](repeating: nil, count: registers.count)
      grads[registers.count - 1] = try dy0()
      for s in stride(from: steps.count - 1, through: 0, by: -1) {
        guard let d = grads[x.count + s] else { continue }
        let step = steps[s]
        let g = try step.op.gradients(of: step, dys: [d], want: step.operands.map { _ in true }, into: &b)
        let code = ElementwiseCode(rawValue: program[3 * s]) ?? .add
        let reads = code.isBinary ? [program[3 * s + 1], program[3 * s + 2]] : [program[3 * s + 1]]
        for (j, r) in reads.enumerated() {
          guard let gj = g[j] else { continue }
          grads[r] = try grads[r].map { old throws(ShapeError) in try b.binary(.add, old, gj) } ?? gj
        }
      }
      for i in x.indices where want[i] { out[i] = grads[i] }

    case .layerNorm:
      // One fused backward node: the row statistics are recomputed from x, not kept.
      let r = try b.add(.layerNormBackward, [dy0(), x[0], x[1]], LayerNormAttributes(of: node), tag: "d")
      out[0] = r[0]
      out[1] = r[1]
      if x.count > 2 { out[2] = r[2] }

    case .lstm, .constant, .classSeed, .reluBackward, .linearBackwardWeight, .sliceBackward, .maxBackward,
      .lstmCellBackward, .crossEntropyBackward, .conv2dBackwardInput, .conv2dBackwardWeight, .maxPool2dBackward,
      .avgPool2dBackward, .batchNormTrainBackward, .layerNormBackward, .lrnBackward:
      throw ShapeError("\(name) has no gradient rule")
    }
    for i in out.indices where !want[i] { out[i] = nil }
    return out
  }
}

/// Adds backward nodes to a graph: unique names under a prefix, the forward node's location,
/// typed attributes, and types from the shape rules.
public struct GradientBuilder {
  public var graph: Graph
  /// Prefix of the names made for the node being differentiated (`grad.lstm.h3`).
  public var prefix = "grad"
  /// Where the forward node was written; backward nodes point there.
  public var location: SourceLocation?
  var names: FreshNames

  public init(graph: Graph) {
    self.graph = graph
    names = FreshNames(graph)
  }

  /// A name not yet taken, `base` itself when free.
  public mutating func unique(_ base: String) -> String { names.make(base) }

  /// Adds `op(operands, attributes)`; results are named `prefix.tag`. `attributes` must be
  /// of the op's `attributeSet`.
  @discardableResult
  public mutating func add<A: AttributeSet>(
    _ op: Op, _ operands: [ValueID], _ attributes: A,
    tag: String
  ) throws(ShapeError) -> [ValueID] {
    precondition(ObjectIdentifier(op.attributeSet) == ObjectIdentifier(A.self), "\(op.name) reads \(op.attributeSet)")
    let attrs = attributes.encoded
    let types = try op.inferTypes(operands.map { graph[$0].type }, attrs)
    let results = types.enumerated().map { i, t in
      (name: unique(types.count == 1 ? "\(prefix).\(tag)" : "\(prefix).\(tag)\(i)"), type: t)
    }
    return graph.addNode(op, operands: operands, attributes: attrs, results: results, location: location)
  }

  /// Adds `op(operands)` for an op without attributes.
  @discardableResult
  public mutating func add(_ op: Op, _ operands: [ValueID], tag: String) throws(ShapeError) -> [ValueID] {
    try add(op, operands, NoAttributes(), tag: tag)
  }

  /// A tensor of `type` filled with `value`.
  public mutating func constant(_ value: Double, _ type: TensorType) throws(ShapeError) -> ValueID {
    try add(
      .constant, [], ConstantAttributes(value: value, shape: type.shape, dtype: type.dtype),
      tag: value == 0 ? "zeros" : "fill")[0]
  }

  public mutating func zeros(_ type: TensorType) throws(ShapeError) -> ValueID { try constant(0, type) }

  public mutating func binary(_ op: Op, _ l: ValueID, _ r: ValueID) throws(ShapeError) -> ValueID {
    try add(op, [l, r], tag: op.name)[0]
  }

  /// `v·k` (k a scalar constant).
  public mutating func scale(_ v: ValueID, _ k: Double) throws(ShapeError) -> ValueID {
    try binary(.mul, v, constant(k, TensorType(graph[v].type.dtype, [])))
  }

  public mutating func reshape(_ v: ValueID, _ shape: [Dim]) throws(ShapeError) -> ValueID {
    if graph[v].type.shape == shape { return v }
    return try add(.reshape, [v], ReshapeAttributes(shape: shape), tag: "reshape")[0]
  }

  public mutating func transpose(_ v: ValueID, _ perm: [Int]) throws(ShapeError) -> ValueID {
    try add(.transpose, [v], TransposeAttributes(perm: perm), tag: "transpose")[0]
  }

  public mutating func sum(_ v: ValueID, axes: [Int]) throws(ShapeError) -> ValueID {
    try add(.sum, [v], ReduceAttributes(axes: axes, keepdims: false), tag: "sum")[0]
  }

  /// `v` (of a broadcast shape) summed down to `type`'s shape: over leading axes and over
  /// axes where `type` has size 1 — the gradient of NumPy broadcasting.
  public mutating func sum(_ v: ValueID, to type: TensorType) throws(ShapeError) -> ValueID {
    let s = graph[v].type.shape
    if s == type.shape { return v }
    let lead = s.count - type.rank
    var axes = Array(0..<lead)
    for (i, d) in type.shape.enumerated() where d == Dim(1) && s[lead + i] != Dim(1) { axes.append(lead + i) }
    var r = v
    if !axes.isEmpty {
      r = try add(.sum, [v], ReduceAttributes(axes: axes, keepdims: true), tag: "sum")[0]
    }
    return try reshape(r, type.shape)
  }

  /// `v` broadcast to `type` (as `v + zeros`).
  public mutating func broadcast(_ v: ValueID, to type: TensorType) throws(ShapeError) -> ValueID {
    if graph[v].type.shape == type.shape { return v }
    return try binary(.add, v, zeros(type))
  }

  /// `v[start ..< end]` along `axis`; when `v` is a concatenation along that axis and the
  /// range is exactly one of its pieces, that piece (no copy).
  public mutating func slice(_ v: ValueID, axis: Int, start: Int, end: Int) throws(ShapeError) -> ValueID {
    let t = graph[v].type
    if start == 0, t.shape[axis] == Dim(end) { return v }
    if let p = graph.producer(of: v), graph[p].op == .concat {
      let node = graph[p]
      if normalizedAxis(ConcatAttributes(of: node).axis, rank: t.rank) == axis {
        var position = 0
        for o in node.operands {
          guard let size = graph[o].type.shape[axis].staticValue else { break }
          if position == start && position + size == end { return o }
          position += size
        }
      }
    }
    return try add(.slice, [v], SliceAttributes(axis: axis, start: start, end: end, step: 1), tag: "slice")[0]
  }

  /// The gradient of `select(x, axis, index)` for `dy`: `dy` put back at `index`, zeros elsewhere.
  public mutating func selectBackward(
    _ dy: ValueID, input: TensorType, axis rawAxis: Int,
    index: Int
  ) throws(ShapeError) -> ValueID {
    let axis = normalizedAxis(rawAxis, rank: input.rank)
    var kept = input.shape
    kept[axis] = 1
    let column = try reshape(dy, kept)
    let (start, end) = index == -1 ? (-1, Int.max) : (index, index + 1)
    let slice = SliceAttributes(axis: axis, start: start, end: end, step: 1)
    let attributes = SliceBackwardAttributes(slice: slice, size: input.shape[axis])
    return try add(.sliceBackward, [column], attributes, tag: "dx")[0]
  }
}
