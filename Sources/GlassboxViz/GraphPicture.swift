import GlassboxIR

/// A graph drawn in the DOT language, ready for `Graphviz.render`.
///
/// One DOT node per IR node (value names, op, output shapes, and the trainable parameter count
/// of the parameters it takes as operands); parameters and buffers are not drawn. Graph inputs
/// (`invhouse`) and outputs (`house`) are nodes of their own; edges run operand → user. Every
/// scope is a `subgraph cluster_sK` nested by dotted path. Tapped values are filled amber and
/// each tap is a `note` node with a dashed edge from each target.
///
/// Ids are stable: `nK` is `graph.nodes[K]`, `iK` `graph.inputs[K]`, `oK` `graph.outputs[K]`,
/// `tK` `graph.taps[K]`, `cK` the collapsed `graph.scopes[K]`.
public struct GraphPicture: Sendable {
  /// The DOT text: `digraph "name" { … }`.
  public var text: String
  /// How many DOT nodes the text draws (ops or collapsed blocks, inputs, outputs, taps).
  public var nodeCount: Int

  /// Draws `graph`; with `collapse`, every outermost block instance (a scope with no enclosing
  /// scope) is one `box3d` node labelled with its path, block, parameter count and output
  /// shape, and parallel edges between such nodes are drawn once.
  public init(_ graph: Graph, collapse: Bool = false) {
    var drawing = Drawing(graph: graph, collapse: collapse)
    text = drawing.draw()
    nodeCount = drawing.nodeCount
  }
}

/// `"…"` for DOT: backslashes and quotes escaped, each line break a DOT `\n` (centred line).
func dotString(_ lines: [String]) -> String {
  var out = "\""
  for (i, line) in lines.enumerated() {
    if i > 0 { out += "\\n" }
    for u in line.unicodeScalars {
      switch u {
      case "\\": out += "\\\\"
      case "\"": out += "\\\""
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      default: out.unicodeScalars.append(u)
      }
    }
  }
  return out + "\""
}

private struct Drawing {
  let graph: Graph
  let collapse: Bool
  /// Enclosing scope of each scope: the longest other path that is a dotted prefix of its path
  /// (always strictly shorter, so following parents ends).
  var parent: [Int?] = []
  /// Innermost scope of each node (by its first result's name), as `Graph.scope(ofValueNamed:)`.
  var nodeScope: [Int?] = []
  /// DOT id of the drawn node that produces each value; nil for parameters and buffers.
  var owner: [String?] = []
  /// For each parameter value, the DOT id of its first user (where its count is shown).
  var parameterUser: [Int: String] = [:]
  var nodeCount = 0
  var out = ""

  init(graph: Graph, collapse: Bool) {
    self.graph = graph
    self.collapse = collapse
    parent = graph.scopes.map { s in innermostScope(of: s.path, excludingExact: true) }
    nodeScope = graph.nodes.map { n in n.results.first.flatMap { innermostScope(of: graph[$0].name) } }
    owner = graph.values.map { v in
      if case .input(let k) = v.origin { return "i\(k)" }
      return nil
    }
    for (k, node) in graph.nodes.enumerated() {
      let id = dotID(ofNode: k)
      for r in node.results { owner[r.index] = id }
      for v in node.operands where parameterUser[v.index] == nil {
        if case .parameter = graph[v].origin { parameterUser[v.index] = id }
      }
    }
  }

  /// Index of the longest scope path equal to `name` (unless `excludingExact`) or a dotted
  /// prefix of it; the first such scope when paths repeat.
  func innermostScope(of name: String, excludingExact: Bool = false) -> Int? {
    var best: Int?
    for (k, s) in graph.scopes.enumerated()
    where (!excludingExact && name == s.path) || name.hasPrefix(s.path + ".") {
      if s.path.count > (best.map { graph.scopes[$0].path.count } ?? -1) { best = k }
    }
    return best
  }

  func outermost(_ scope: Int) -> Int {
    var s = scope
    while let p = parent[s] { s = p }
    return s
  }

  func dotID(ofNode k: Int) -> String {
    if collapse, let s = nodeScope[k] { return "c\(outermost(s))" }
    return "n\(k)"
  }

  /// The DOT node a tap or output edge starts from: the producer, or a parameter's user.
  func source(of v: ValueID) -> String? { owner[v.index] ?? parameterUser[v.index] }

  mutating func emit(_ id: String, _ label: [String], _ attributes: String, indent: Int = 1) {
    out += String(repeating: "  ", count: indent)
    out += "\(id) [label=\(dotString(label))\(attributes.isEmpty ? "" : ", " + attributes)]\n"
    nodeCount += 1
  }

  /// `N params` for the trainable parameters among `operands`, each counted once; nothing for 0.
  func parameterLine(_ operands: some Sequence<ValueID>) -> [String] {
    var total = DimPolynomial()
    var seen = Set<Int>()
    for v in operands where seen.insert(v.index).inserted {
      if case .parameter(let p) = graph[v].origin, graph.parameters[p].role == .trainable,
        let n = graph.parameters[p].type.elementCount
      {
        total.add(n)
      }
    }
    return total.staticValue == 0 ? [] : ["\(grouped(total)) params"]
  }

  /// `conv1`, `conv2d`, `[B, 64, 112, 112]`, `9,408 params`; the op line is left out when it
  /// repeats the name (`relu`, `add`).
  func opLabel(_ k: Int, names: [String]) -> [String] {
    let node = graph.nodes[k]
    let name = names.joined(separator: ", ")
    return [name] + (name == node.op.name ? [] : [node.op.name])
      + node.results.map { graph[$0].type.shapeDescription } + parameterLine(node.operands)
  }

  func blockTitle(_ s: Scope) -> String { s.block + (s.steps == nil ? "" : " (per time step)") }

  mutating func draw() -> String {
    out = "digraph \(dotString([graph.name])) {\n"
    out +=
      "  graph [label=\(dotString([graph.name])), labelloc=t, fontname=\"Helvetica\", fontsize=14, nodesep=0.3, ranksep=0.3]\n"
    out +=
      "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef3fb\", color=\"#5b7db1\", fontname=\"Helvetica\", fontsize=10]\n"
    out += "  edge [color=\"#555555\", arrowsize=0.6]\n"
    var tapped = Set<String>()
    for t in graph.taps { for v in t.operands { if let id = source(of: v) { tapped.insert(id) } } }
    let highlight = "fillcolor=\"#ffd54f\", color=\"#e65100\", penwidth=2"

    for (k, v) in graph.inputs.enumerated() {
      emit(
        "i\(k)", [graph[v].name, graph[v].type.description],
        "shape=invhouse, style=filled, " + (tapped.contains("i\(k)") ? highlight : "fillcolor=\"#dff0d8\""))
    }
    if collapse {
      drawBlocks(tapped: tapped, highlight: highlight)
    } else {
      drawClusters(tapped: tapped, highlight: highlight)
    }
    for (k, o) in graph.outputs.enumerated() {
      emit("o\(k)", [o.name, graph[o.value].type.description], "shape=house, style=filled, fillcolor=\"#d9edf7\"")
    }
    for (k, t) in graph.taps.enumerated() {
      emit(
        "t\(k)", ["tap \(t.name): \(t.kind.rawValue)", t.type.description],
        "shape=note, style=filled, fillcolor=\"#fff3c4\", color=\"#e69500\", fontcolor=\"#7a4a00\"")
    }

    var drawn = Set<String>()
    func edge(_ from: String?, _ to: String, _ attributes: String = "") {
      guard let from, from != to, drawn.insert("\(from)->\(to)").inserted else { return }
      out += "  \(from) -> \(to)\(attributes.isEmpty ? "" : " [\(attributes)]")\n"
    }
    for (k, node) in graph.nodes.enumerated() {
      for v in node.operands { edge(owner[v.index], dotID(ofNode: k)) }
    }
    for (k, o) in graph.outputs.enumerated() { edge(source(of: o.value), "o\(k)") }
    for (k, t) in graph.taps.enumerated() {
      for v in t.operands { edge(source(of: v), "t\(k)", "style=dashed, color=\"#e69500\"") }
    }
    out += "}\n"
    return out
  }

  /// One DOT node per IR node, inside nested `cluster_sK` subgraphs; unscoped nodes at top level.
  mutating func drawClusters(tapped: Set<String>, highlight: String) {
    var members: [Int: [Int]] = [:]  // scope (-1: none) → node indices, in order
    var children: [Int: [Int]] = [:]
    var occupied = Set<Int>()  // scopes with a node inside, directly or nested
    for k in graph.nodes.indices {
      members[nodeScope[k] ?? -1, default: []].append(k)
      var s = nodeScope[k]
      while let t = s, occupied.insert(t).inserted { s = parent[t] }
    }
    for s in graph.scopes.indices where occupied.contains(s) { children[parent[s] ?? -1, default: []].append(s) }
    let fills = ["#f7f7f7", "#eeeeee", "#e4e4e4", "#dadada"]

    func drawScope(_ s: Int, depth: Int) {
      let indent = String(repeating: "  ", count: depth)
      var prefix = ""
      if s >= 0 {
        let scope = graph.scopes[s]
        prefix = scope.path + "."
        out += "\(indent)subgraph cluster_s\(s) {\n"
        out += "\(indent)  label=\(dotString(["\(scope.path): \(blockTitle(scope))"])); labeljust=l; fontsize=11; "
        out += "style=\"rounded,filled\(scope.steps == nil ? "" : ",dashed")\"; "
        out += "fillcolor=\"\(fills[min(depth - 1, fills.count - 1)])\"; color=\"#9e9e9e\"\n"
      }
      for k in members[s] ?? [] {
        let node = graph.nodes[k]
        // Inside a cluster, names drop the cluster's path (its label says it).
        let names = node.results.map { r in
          let name = graph[r].name
          return !prefix.isEmpty && name.hasPrefix(prefix) ? String(name.dropFirst(prefix.count)) : name
        }
        emit("n\(k)", opLabel(k, names: names), tapped.contains("n\(k)") ? highlight : "", indent: depth + 1)
      }
      for c in children[s] ?? [] { drawScope(c, depth: depth + 1) }
      if s >= 0 { out += "\(indent)}\n" }
    }
    drawScope(-1, depth: 0)
  }

  /// Each outermost block instance as one `box3d` node (path, block, the shapes of the values
  /// it passes out, its parameter count); unscoped nodes as themselves.
  mutating func drawBlocks(tapped: Set<String>, highlight: String) {
    var operands: [String: [ValueID]] = [:]
    var passedOut: [String: Set<ValueID>] = [:]
    for (k, node) in graph.nodes.enumerated() {
      let id = dotID(ofNode: k)
      operands[id, default: []] += node.operands
      for v in node.operands { if let from = owner[v.index], from != id { passedOut[from, default: []].insert(v) } }
    }
    for o in graph.outputs { if let from = owner[o.value.index] { passedOut[from, default: []].insert(o.value) } }
    var emitted = Set<String>()
    for (k, node) in graph.nodes.enumerated() {
      let id = dotID(ofNode: k)
      guard emitted.insert(id).inserted else { continue }
      let style = tapped.contains(id) ? highlight : ""
      if let s = nodeScope[k] {
        let scope = graph.scopes[outermost(s)]
        let shapes = (passedOut[id] ?? []).sorted().map { graph[$0].type.shapeDescription }
        emit(
          id, [scope.path, blockTitle(scope)] + shapes + parameterLine(operands[id] ?? []),
          "shape=box3d, style=filled, " + (style.isEmpty ? "fillcolor=\"#dde7f7\"" : style))
      } else {
        emit(id, opLabel(k, names: node.results.map { graph[$0].name }), style)
      }
    }
  }
}
