import GlassboxIR

/// A graph with the parameter values a pass may need (batch-norm folding rewrites weights).
public struct Module: Sendable {
  public var graph: Graph
  /// Parameter values by name; passes that do not touch weights ignore them.
  public var weights: [String: Tensor]

  public init(graph: Graph, weights: [String: Tensor] = [:]) {
    self.graph = graph
    self.weights = weights
  }
}

/// An optimisation: a named rewrite of a module that reports whether it changed anything.
/// Passes keep no state between runs; a pipeline is an explicit list of them.
public protocol Pass {
  /// The name `--print-after` takes (`fold-constants`).
  var name: String { get }
  /// Rewrites `module` in place; returns whether anything changed.
  func run(_ module: inout Module) -> Bool
}

/// What a rewrite does with one node.
public enum Rewrite {
  /// Keep the node (with operands renumbered).
  case keep
  /// Keep a changed copy of the node (operands are already renumbered).
  case replace(Node)
  /// Drop the node; its results become these existing values (already renumbered).
  case forward([ValueID])
  /// Drop the node; nothing may use its results.
  case drop
}

extension Graph {
  /// Rebuilds the graph node by node in value order, so the printed form stays in the
  /// order the spec had. `body` sees each node with operands already renumbered into the new
  /// graph and decides what becomes of it (it may add parameters to the new graph first). Inputs, parameters, scopes, recipes and outputs
  /// carry over; outputs and taps follow forwarded values.
  public func rewritten(_ body: (Node, inout Graph) -> Rewrite) -> Graph {
    var g = Graph(name: name)
    g.scopes = scopes
    g.recipes = recipes
    var map = [Int](repeating: -1, count: values.count)
    var seen = Set<Int>()
    for (i, v) in values.enumerated() {
      switch v.origin {
      case .input:
        map[i] = g.addInput(name: v.name, type: v.type).index
      case .parameter(let p):
        let param = parameters[p]
        map[i] =
          g.addParameter(name: param.name, type: param.type, role: param.role, initializer: param.initializer).index
      case .node(let n, _):
        guard seen.insert(n.index).inserted else { continue }
        var node = nodes[n.index]
        node.operands = node.operands.map { ValueID(map[$0.index]) }
        switch body(node, &g) {
        case .keep:
          let ids = g.addNode(
            node.op, operands: node.operands, attributes: node.attributes,
            results: node.results.map { (values[$0.index].name, values[$0.index].type) },
            location: node.location)
          for (old, new) in zip(node.results, ids) { map[old.index] = new.index }
        case .replace(let changed):
          let ids = g.addNode(
            changed.op, operands: changed.operands, attributes: changed.attributes,
            results: node.results.map { (values[$0.index].name, values[$0.index].type) },
            location: node.location)
          for (old, new) in zip(node.results, ids) { map[old.index] = new.index }
        case .forward(let replacements):
          for (old, new) in zip(node.results, replacements) { map[old.index] = new.index }
        case .drop:
          break
        }
      }
    }
    carryEnds(into: &g, map: map)
    return g
  }

  /// The same graph with its nodes in `order` (a permutation of the node indices that keeps
  /// every operand before its reader); inputs and parameters first, in value order.
  public func reordered(_ order: [Int]) -> Graph {
    var g = Graph(name: name)
    g.scopes = scopes
    g.recipes = recipes
    var map = [Int](repeating: -1, count: values.count)
    for (i, v) in values.enumerated() {
      switch v.origin {
      case .input: map[i] = g.addInput(name: v.name, type: v.type).index
      case .parameter(let p):
        let param = parameters[p]
        map[i] =
          g.addParameter(name: param.name, type: param.type, role: param.role, initializer: param.initializer).index
      case .node: continue
      }
    }
    for n in order {
      let node = nodes[n]
      let ids = g.addNode(
        node.op, operands: node.operands.map { ValueID(map[$0.index]) }, attributes: node.attributes,
        results: node.results.map { (values[$0.index].name, values[$0.index].type) }, location: node.location)
      for (old, new) in zip(node.results, ids) { map[old.index] = new.index }
    }
    carryEnds(into: &g, map: map)
    return g
  }

  /// Inputs, outputs and taps into a rebuilt graph, by the map from old value indices to new.
  private func carryEnds(into g: inout Graph, map: [Int]) {
    g.inputs = inputs.map { ValueID(map[$0.index]) }
    g.outputs = outputs.map { ($0.name, ValueID(map[$0.value.index])) }
    g.taps = taps.map { t in
      var t = t
      t.operands = t.operands.map { ValueID(map[$0.index]) }
      return t
    }
  }

  /// How many nodes use each value, counting outputs and taps as uses.
  public var useCounts: [Int] {
    var uses = [Int](repeating: 0, count: values.count)
    for n in nodes { for o in n.operands { uses[o.index] += 1 } }
    for o in outputs { uses[o.value.index] += 1 }
    for t in taps { for o in t.operands { uses[o.index] += 1 } }
    return uses
  }
}

/// The standard pipelines, in order.
public enum Pipeline {
  /// Inference: simplify, fold, deduplicate, fold batch norm into convolutions, compute only
  /// the LSTM steps that are read, fuse residual adds and ReLUs into GEMM epilogues, fuse
  /// elementwise chains, choose layouts (`blockedLayouts`: whether convolutions go blocked,
  /// which the runtime says: `Executable.blockedLayouts`), sweep.
  public static func inference(blockedLayouts: Bool) -> [any Pass] {
    [
      SimplifyAlgebra(), FoldConstants(), EliminateCommonSubexpressions(), FoldBatchNorm(), NarrowLSTMToLastStep(),
      FuseEpilogues(), FuseElementwise(), ChooseLayouts(blockConvolutions: blockedLayouts), EliminateDeadCode(),
    ]
  }

  /// Runs passes in order; `after` sees the module after each pass with its name and whether
  /// it changed (for `--print-after` and `--stats`).
  public static func run(
    _ passes: [any Pass], on module: inout Module,
    after: (String, Bool, Module) -> Void = { _, _, _ in }
  ) {
    for pass in passes {
      let changed = pass.run(&module)
      after(pass.name, changed, module)
    }
  }
}
