import GlassboxIR

/// Fuses chains (trees) of elementwise ops into one `fused_elementwise` node, computed in one
/// loop over cache-sized blocks instead of one pass over memory per op:
///
/// ```
/// t = sub(one, s)                         y = fused_elementwise(g, s, one,
/// u = mul(s, t)                     →         program: [1, 2, 1,  2, 1, 3,  2, 0, 4])
/// y = mul(g, u)                           # r3 = r2 − r1; r4 = r1 · r3; y = r0 · r4
/// ```
/// A node joins the node that uses it when that use is its only one (not an output or a
/// tap, so taps keep their values), both have the same result type, and every operand has
/// that shape or is a single element. The ops that fuse are those with an `ElementwiseCode`:
/// add, sub, mul, div, maximum, minimum, pow, relu, sigmoid, tanh, exp, log, sqrt, abs, erf.
/// After epilogue fusion (GEMM epilogues absorb a residual add and ReLU more cheaply) and
/// before dead-code elimination.
public struct FuseElementwise: Pass {
  public let name = "fuse-elementwise"
  public init() {}

  public func run(_ module: inout Module) -> Bool {
    let g = module.graph
    let uses = g.useCounts
    /// A node that may take part: fusible op, f32, operands of its shape or scalars.
    func fusible(_ n: Node) -> Bool {
      guard ElementwiseCode(n.op) != nil, n.results.count == 1 else { return false }
      let t = g[n.results[0]].type
      guard t.dtype == .f32 else { return false }
      return n.operands.allSatisfy { g[$0].type.shape == t.shape || g[$0].type.elementCount == Dim(1) }
    }
    var nodeOfResult: [Int: Int] = [:]
    for (i, n) in g.nodes.enumerated() { for r in n.results { nodeOfResult[r.index] = i } }
    // A node is absorbed into its single user when both are fusible and of one type.
    var absorbed = Set<Int>()
    var isRoot = Set<Int>()
    for (i, n) in g.nodes.enumerated() where fusible(n) {
      for o in n.operands where uses[o.index] == 1 {
        guard let p = nodeOfResult[o.index], fusible(g.nodes[p]), g[o].type == g[n.results[0]].type else { continue }
        absorbed.insert(p)
        isRoot.insert(i)
      }
    }
    isRoot.subtract(absorbed)
    guard !isRoot.isEmpty else { return false }

    // Absorbed nodes are dropped; each root becomes one fused node built from the absorbed
    // nodes' operands as the rewrite saw them (renumbered into the new graph).
    var renumbered: [Int: [ValueID]] = [:]
    module.graph = g.rewritten { node, _ in
      guard let i = node.results.first.flatMap({ nodeOfResult[$0.index] }) else { return .keep }
      if absorbed.contains(i) {
        renumbered[i] = node.operands
        return .drop
      }
      guard isRoot.contains(i) else { return .keep }
      renumbered[i] = node.operands
      var leaves: [ValueID] = []
      var program: [Int] = []
      var steps: [Int] = []  // register of each emitted step, by emission order
      func leaf(_ v: ValueID) -> Int {
        if let k = leaves.firstIndex(of: v) { return k }
        leaves.append(v)
        return leaves.count - 1
      }
      // Emits node `k` (old index) after its absorbed operands; returns its step number.
      func emit(_ k: Int) -> Int {
        let old = g.nodes[k]
        let new = renumbered[k] ?? old.operands
        var args: [(step: Int?, leaf: Int?)] = []
        for (j, o) in old.operands.enumerated() {
          if let p = nodeOfResult[o.index], absorbed.contains(p), uses[o.index] == 1 {
            args.append((emit(p), nil))
          } else {
            args.append((nil, leaf(new[j])))
          }
        }
        let code = ElementwiseCode(old.op) ?? .add
        program.append(code.rawValue)
        for arg in args { program.append(arg.step.map { -1 - $0 } ?? arg.leaf ?? 0) }
        if !code.isBinary { program.append(0) }
        steps.append(steps.count)
        return steps.count - 1
      }
      _ = emit(i)
      // Registers: leaves first, then steps; step references were stored as −1 − step.
      let n = leaves.count
      for s in 0..<(program.count / 3) {
        for j in 1...2 where program[3 * s + j] < 0 { program[3 * s + j] = n + (-1 - program[3 * s + j]) }
      }
      var fused = node
      fused.op = .fusedElementwise
      fused.operands = leaves
      fused.attributes = FusedElementwiseAttributes(program: program).encoded
      return .replace(fused)
    }
    return true
  }
}
