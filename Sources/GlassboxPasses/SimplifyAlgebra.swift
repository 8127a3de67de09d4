import GlassboxIR
import GlassboxReference

/// Identities that remove work:
///
/// ```
/// add(x, 0), sub(x, 0), mul(x, 1), div(x, 1)   →  x      (when the constant does not widen x)
/// mul(add(x, 0), y) (any of add, sub, mul, div)  →  mul(x, y)   (when y widens x as the 0 did:
///                                                   a gradient's broadcast, never materialised)
/// relu(relu(x))                                  →  relu(x)
/// reshape(x) or flatten(x) to x's own shape      →  x
/// reshape(reshape(x)), reshape(flatten(x)) …     →  reshape(x)
/// transpose(transpose(x, p), q) that undoes p    →  x
/// ```
/// First in a pipeline: it exposes equal subexpressions and dead nodes to the passes after.
public struct SimplifyAlgebra: Pass {
  public let name = "simplify-algebra"
  public init() {}

  public func run(_ module: inout Module) -> Bool {
    var changed = false
    module.graph = module.graph.rewritten { node, g in
      // A rewritten node may simplify further (reshape(reshape(x)) → reshape(x) → x).
      var current = node
      var replaced = false
      while true {
        switch simplify(current, g) {
        case .keep, .drop:
          if replaced { changed = true }
          return replaced ? .replace(current) : .keep
        case .forward(let values):
          changed = true
          return .forward(values)
        case .replace(let next):
          current = next
          replaced = true
        }
      }
    }
    return changed
  }

  /// The uniform value of a `constant` node's result.
  static func constantValue(_ v: ValueID, _ g: Graph) -> Double? {
    guard let n = g.producer(of: v), g[n].op == .constant else { return nil }
    return ConstantAttributes(of: g[n]).value
  }

  func simplify(_ node: Node, _ g: Graph) -> Rewrite {
    let x = node.operands.first
    let resultType = { (i: Int) -> TensorType? in
      // The result type as the shape rules give it (the node is not in `g` yet).
      (try? node.op.inferTypes(node.operands.map { g[$0].type }, node.attributes))?[i]
    }
    switch node.op {
    case .add, .sub, .mul, .div:
      let identity: Double = node.op == .add || node.op == .sub ? 0 : 1
      let (a, b) = (node.operands[0], node.operands[1])
      if Self.constantValue(b, g) == identity, g[a].type == resultType(0) { return .forward([a]) }
      if node.op == .add || node.op == .mul, Self.constantValue(a, g) == identity, g[b].type == resultType(0) {
        return .forward([b])
      }
      // An operand that is x widened by adding zeros: x itself, when the other operand widens
      // it to the same result.
      for k in 0..<2 {
        guard let p = g.producer(of: node.operands[k]), g[p].op == .add else { continue }
        let inner = g[p].operands
        guard let zero = inner.firstIndex(where: { Self.constantValue($0, g) == 0 }) else { continue }
        var n = node
        n.operands[k] = inner[1 - zero]
        if let widened = try? n.op.inferTypes(n.operands.map { g[$0].type }, n.attributes).first,
          widened == resultType(0)
        {
          return .replace(n)
        }
      }
    case .relu:
      if let x, let p = g.producer(of: x), g[p].op == .relu { return .forward([x]) }
    case .reshape, .flatten:
      guard let x, let out = resultType(0) else { return .keep }
      if g[x].type == out { return .forward([x]) }
      if let p = g.producer(of: x), [.reshape, .flatten].contains(g[p].op) {
        var n = node
        n.op = .reshape
        n.operands = [g[p].operands[0]]
        n.attributes = ReshapeAttributes(shape: out.shape).encoded
        return .replace(n)
      }
    case .transpose:
      if let x, let p = g.producer(of: x), g[p].op == .transpose {
        let inner = TransposeAttributes(of: g[p]).perm, outer = TransposeAttributes(of: node).perm
        if outer.indices.allSatisfy({ inner[outer[$0]] == $0 }) { return .forward([g[p].operands[0]]) }
      }
    case .conv2d, .maxPool2d, .avgPool2d, .globalAvgPool2d, .batchNorm, .linear, .matmul, .batchMatmul,
      .sigmoid, .tanh, .softmax, .logSoftmax, .sum, .mean, .max, .concat, .slice, .select, .split, .pad,
      .lstm, .lstmCell, .dropout, .crossEntropy, .constant, .classSeed, .reluBackward, .linearBackwardWeight,
      .sliceBackward, .maxBackward, .lstmCellBackward, .crossEntropyBackward, .conv2dBackwardInput,
      .conv2dBackwardWeight, .maxPool2dBackward, .avgPool2dBackward, .batchNormTrain, .batchNormTrainBackward,
      .fusedElementwise, .layerNorm, .layerNormBackward, .lrn, .lrnBackward,
      .exp, .log, .sqrt, .abs, .erf, .pow, .maximum, .minimum, .toBlocked, .fromBlocked:
      break
    }
    return .keep
  }
}

/// Evaluates nodes whose operands are all uniform constants, when the result is uniform too
/// (`add(constant 1, constant 2)` → `constant 3`), with the reference interpreter.
///
/// ```
/// c = add(constant(value: 1.0, shape: [4]), constant(value: 2.0))   →   c = constant(value: 3.0, shape: [4])
/// ```
/// After algebraic simplification, before deduplication. Results larger than 65,536
/// elements are left alone (folding them would only move work to compile time).
public struct FoldConstants: Pass {
  public let name = "fold-constants"
  public init() {}

  public func run(_ module: inout Module) -> Bool {
    var changed = false
    module.graph = module.graph.rewritten { node, g in
      guard node.op != .constant, node.op != .dropout, !node.operands.isEmpty, node.results.count == 1,
        let type = try? node.op.inferTypes(node.operands.map { g[$0].type }, node.attributes).first,
        type.dtype.isFloatingPoint,
        let count = type.shape.reduce(Optional(1), { acc, d in acc.flatMap { a in d.staticValue.map { a * $0 } } }),
        count <= 65_536
      else { return .keep }
      var tensors: [Tensor] = []
      for o in node.operands {
        guard let v = SimplifyAlgebra.constantValue(o, g) else { return .keep }
        let shape = g[o].type.shape.compactMap(\.staticValue)
        guard shape.count == g[o].type.rank else { return .keep }
        tensors.append(Tensor(shape: shape, f64: [Double](repeating: v, count: shape.reduce(1, *))))
      }
      guard let result = ReferenceInterpreter.evaluate(node.op, tensors, node.attributes).first,
        let first = result.doubles.first, result.doubles.allSatisfy({ $0 == first || ($0.isNaN && first.isNaN) })
      else { return .keep }
      changed = true
      var n = node
      n.op = .constant
      n.operands = []
      n.attributes = ConstantAttributes(value: first, shape: type.shape, dtype: type.dtype).encoded
      return .replace(n)
    }
    return changed
  }
}
