/// Prints a graph in the spec language. The output parses back to an equal graph: names are
/// the graph's full names, parameters are declared explicitly just before their first use
/// (in value order, so value numbering survives the round trip), attributes equal to their
/// defaults are left out, and every value carries its type as an annotation.
///
/// ```
/// graph bilstm(mfcc: f32[B, 768, 128]) -> (logits: f32[B, 5]) {
///   param lstm.weight_ih_l0: f32[128, 128] init uniform(0.17677669529663687)
///   …
///   lstm = lstm(mfcc, lstm.weight_ih_l0, …, hidden: 32, bidirectional: true) : f32[B, 768, 64]
/// }
/// ```
public enum Printer {
  public static func print(_ graph: Graph) -> String {
    var out = ""
    let sig = { (ids: [(String, ValueID)]) in
      ids.map { "\($0.0): \(graph[$0.1].type)" }.joined(separator: ", ")
    }
    out +=
      "graph \(graph.name)(\(sig(graph.inputs.map { (graph[$0].name, $0) }))) -> (\(sig(graph.outputs.map { ($0.name, $0.value) }))) {\n"
    for s in graph.scopes {
      out += "  scope \(s.path) = \(s.block)"
      if let steps = s.steps { out += " steps(\(steps.batch), \(steps.time))" }
      out += "\n"
    }
    var printedNode = Set<Int>()
    for v in graph.values {
      switch v.origin {
      case .input:
        continue
      case .parameter(let p):
        let param = graph.parameters[p]
        out += "  \(param.role.rawValue) \(param.name): \(param.type) init \(param.initializer)\n"
      case .node(let n, _):
        guard printedNode.insert(n.index).inserted else { continue }
        out += "  " + line(for: graph[n], in: graph) + "\n"
      }
    }
    for o in graph.outputs where graph[o.value].name != o.name {
      out += "  \(o.name) = \(graph[o.value].name)\n"
    }
    for r in graph.recipes {
      out +=
        "  recipe \(r.input) = \(r.kind.rawValue)(\(nonDefault(r.options, schema: r.kind.options).joined(separator: ", ")))\n"
    }
    for t in graph.taps {
      let operands = t.operands.map { graph[$0].name }
      let options = nonDefault(t.options, schema: t.kind.options)
      out += "  tap \(t.name) = \(t.kind.rawValue)(\((operands + options).joined(separator: ", "))) : \(t.type)\n"
    }
    out += "}\n"
    return out
  }

  /// `a, b = op(operands, attr: value) : type, type`.
  static func line(for node: Node, in graph: Graph) -> String {
    let results = node.results.map { graph[$0].name }.joined(separator: ", ")
    let operands = node.operands.map { graph[$0].name }
    let attrs = nonDefault(node.attributes, schema: node.op.attributes)
    let types = node.results.map { graph[$0].type.description }.joined(separator: ", ")
    return "\(results) = \(node.op.name)(\((operands + attrs).joined(separator: ", "))) : \(types)"
  }

  /// `name: value` for attributes that differ from the schema's default, in schema order.
  public static func nonDefault(_ attrs: Attributes, schema: [Op.AttrSpec]) -> [String] {
    schema.compactMap { spec in
      guard let v = attrs[spec.name], v != spec.defaultValue else { return nil }
      return "\(spec.name): \(spec.kind == .pair ? format(pair: v) : v.description)"
    }
  }

  /// Pairs with equal halves print as one number (`stride: 2`).
  static func format(pair v: AttrValue) -> String {
    if case .list(let items) = v, items.count == 2, items[0] == items[1], case .int = items[0] {
      return items[0].description
    }
    return v.description
  }
}
