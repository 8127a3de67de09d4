/// Sizing a graph's symbols after the fact: a `.model` keeps `B` and `T` symbolic and is
/// bound to the shapes of the inputs it is run on.
extension Graph {
  /// The graph with `bindings` substituted in every type, attribute, scope and tap; types are
  /// then re-derived by the shape rules, so a binding that makes a rule fail (a reshape that no
  /// longer divides) is reported as the verifier reports it.
  public func bound(_ bindings: [String: Int]) throws(DiagnosticList) -> Graph {
    guard !bindings.isEmpty else { return self }
    for (symbol, value) in bindings where value < 1 {
      throw DiagnosticList([Diagnostic("cannot bind \(symbol) to \(value): sizes must be positive", at: nil)])
    }
    var g = self
    for i in g.values.indices { g.values[i].type = g.values[i].type.substituting(bindings) }
    for i in g.parameters.indices { g.parameters[i].type = g.parameters[i].type.substituting(bindings) }
    for i in g.nodes.indices {
      var attrs = g.nodes[i].attributes
      for name in attrs.names {
        if let v = attrs[name] { attrs[name] = Self.substitute(v, bindings) }
      }
      g.nodes[i].attributes = attrs
    }
    for i in g.scopes.indices {
      if let steps = g.scopes[i].steps {
        g.scopes[i].steps = Scope.Steps(
          batch: steps.batch.substituting(bindings), time: steps.time.substituting(bindings))
      }
    }
    for i in g.taps.indices { g.taps[i].type = g.taps[i].type.substituting(bindings) }
    for i in g.recipes.indices {
      var options = g.recipes[i].options
      for name in options.names {
        if let v = options[name] { options[name] = Self.substitute(v, bindings) }
      }
      g.recipes[i].options = options
    }
    let problems = Verifier.verify(g)
    guard problems.isEmpty else { throw DiagnosticList(problems) }
    return g
  }

  static func substitute(_ v: AttrValue, _ bindings: [String: Int]) -> AttrValue {
    switch v {
    case .dim(let d): .dimension(d.substituting(bindings))
    case .list(let items): .list(items.map { substitute($0, bindings) })
    case .int, .float, .bool, .string: v
    }
  }

  /// The symbol sizes implied by concrete input shapes: a dimension that is a single symbol
  /// takes the size found there; static sizes and products must then agree.
  public func inferBindings(inputShapes: [String: [Int]]) throws(DiagnosticList) -> [String: Int] {
    var found: [String: Int] = [:]
    var problems: [Diagnostic] = []
    for id in inputs {
      let v = values[id.index]
      guard let shape = inputShapes[v.name] else { continue }
      guard shape.count == v.type.rank else {
        problems.append(
          Diagnostic(
            "input '\(v.name)' has \(shape.count) axes \(shape) but the graph expects \(v.type.rank): \(v.type)",
            at: nil))
        continue
      }
      for (axis, (d, size)) in zip(v.type.shape, shape).enumerated() where d.coefficient == 1 && d.symbols.count == 1 {
        let s = d.symbols[0]
        if let previous = found[s], previous != size {
          problems.append(
            Diagnostic(
              "input '\(v.name)' has size \(size) on axis \(axis), but \(s) is \(previous) from another axis", at: nil))
        } else {
          found[s] = size
        }
      }
    }
    for id in inputs {
      let v = values[id.index]
      guard let shape = inputShapes[v.name], shape.count == v.type.rank else { continue }
      for (axis, (d, size)) in zip(v.type.shape, shape).enumerated() {
        let bound = d.substituting(found)
        if let s = bound.staticValue, s != size {
          let symbolic = d.staticValue == nil ? " (\(d))" : ""
          problems.append(
            Diagnostic(
              "input '\(v.name)' has size \(size) on axis \(axis) but the graph expects \(s)\(symbolic)", at: nil))
        }
      }
    }
    guard problems.isEmpty else { throw DiagnosticList(problems) }
    return found
  }
}
