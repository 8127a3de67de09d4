/// Checks a graph's invariants, whatever built it (the elaborator, a pass, a model file):
/// operands defined before use, unique names, attributes complete and of the right kind,
/// and every stored type equal to what the shape rules give. Reports every problem found.
public enum Verifier {
  public static func verify(_ graph: Graph) -> [Diagnostic] {
    var problems: [Diagnostic] = []
    func fail(_ message: String, _ location: SourceLocation? = nil) {
      problems.append(Diagnostic("verifier: \(message)", at: location))
    }
    let n = graph.values.count
    var names: [String: Int] = [:]
    for (i, v) in graph.values.enumerated() {
      if let first = names[v.name] { fail("values \(first) and \(i) are both named '\(v.name)'") }
      names[v.name] = i
      switch v.origin {
      case .input(let k):
        if k >= graph.inputs.count || graph.inputs[k].index != i { fail("value '\(v.name)' claims to be input \(k)") }
      case .parameter(let k):
        if k >= graph.parameters.count || graph.parameters[k].value.index != i {
          fail("value '\(v.name)' claims to be parameter \(k)")
        } else if graph.parameters[k].type != v.type || graph.parameters[k].name != v.name {
          fail("parameter '\(graph.parameters[k].name)' and its value disagree on name or type")
        }
      case .node(let node, let r):
        if node.index >= graph.nodes.count || r >= graph.nodes[node.index].results.count
          || graph.nodes[node.index].results[r].index != i
        {
          fail("value '\(v.name)' claims to be result \(r) of node \(node.index)")
        }
      }
    }
    for (k, p) in graph.parameters.enumerated() where p.value.index >= n {
      fail("parameter \(k) '\(p.name)' refers to value \(p.value.index) of \(n)")
    }

    for (index, node) in graph.nodes.enumerated() {
      let label = node.results.first.flatMap { $0.index < n ? graph[$0].name : nil } ?? "node \(index)"
      guard node.results.allSatisfy({ $0.index < n }), node.operands.allSatisfy({ $0.index < n }) else {
        fail("\(label): refers to a value that does not exist", node.location)
        continue
      }
      let firstResult = node.results.map(\.index).min() ?? n
      for o in node.operands where o.index >= firstResult {
        fail("\(label): operand '\(graph[o].name)' is not defined before its use", node.location)
      }
      let spec = node.op.operands
      let countOK =
        spec.variadic
        ? node.operands.count >= spec.required
        : (node.operands.count >= spec.required && node.operands.count <= spec.names.count)
      if !countOK {
        fail("\(label): \(node.op.name) has \(node.operands.count) operands", node.location)
        continue
      }
      for a in node.op.attributes where node.attributes[a.name] == nil {
        fail("\(label): \(node.op.name) lacks attribute '\(a.name)'", node.location)
      }
      for name in node.attributes.names where !node.op.attributes.contains(where: { $0.name == name }) {
        fail("\(label): \(node.op.name) has no attribute '\(name)'", node.location)
      }
      do {
        try node.op.attributeSet.check(node.attributes)
      } catch {
        // A missing attribute is reported above.
        if node.attributes[error.name] != nil { fail("\(label): \(node.op.name) \(error.message)", node.location) }
        continue
      }
      do {
        let types = try node.op.inferTypes(node.operands.map { graph[$0].type }, node.attributes)
        let stored = node.results.map { graph[$0].type }
        if types != stored {
          fail(
            "\(label): stored type \(stored.map(\.description).joined(separator: ", ")) but \(node.op.name) gives \(types.map(\.description).joined(separator: ", "))",
            node.location)
        }
      } catch {
        fail("\(label): \(error.message)", node.location)
      }
    }

    for o in graph.outputs where o.value.index >= n { fail("output '\(o.name)' refers to a missing value") }
    for r in graph.recipes {
      guard let input = graph.inputs.first(where: { graph[$0].name == r.input }) else {
        fail("recipe for '\(r.input)', which is not an input")
        continue
      }
      do {
        let example = try r.kind.exampleShape(r.options)
        let shape = graph[input].type.shape.dropFirst()
        if shape.count != example.count || !zip(shape, example).allSatisfy({ $0 == $1 || !$0.isStatic }) {
          fail(
            "recipe \(r.kind.rawValue) for '\(r.input)' makes \(TensorType(.f32, example).shapeDescription), not \(graph[input].type)"
          )
        }
      } catch {
        fail(error.message)
      }
    }
    var tapNames = Set<String>()
    for t in graph.taps {
      if !tapNames.insert(t.name).inserted { fail("two taps are named '\(t.name)'", t.location) }
      guard t.operands.count == t.kind.operandCount, t.operands.allSatisfy({ $0.index < n }) else {
        fail("tap \(t.name): wrong or missing operands", t.location)
        continue
      }
      do {
        let type = try t.kind.inferType(t.operands, options: t.options, in: graph)
        if type != t.type { fail("tap \(t.name): stored type \(t.type) but the rule gives \(type)", t.location) }
      } catch {
        fail("tap \(t.name): \(error.message)", t.location)
      }
    }
    return problems
  }
}
