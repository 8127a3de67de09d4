import GlassboxIR

/// Protobuf graph → `GlassboxIR.Graph`, rebuilt through the graph's own builder in value order,
/// with every index, count and attribute checked first, then verified by `Verifier` (which
/// re-infers every node's and tap's type).
///
/// Bounds that keep hostile numbers away from the shape rules' arithmetic: sizes and integer
/// attributes lie below 2^31 (slice's open `end`, `Int64.max`, excepted), ranks at most 16,
/// a dimension has at most 8 symbols, and attribute values have the kind the op declares.
struct GraphDecoder {
  let proto: Glassbox_Graph
  var graph: Graph

  static let maxInt = Int(Int32.max)
  static let maxRank = 16
  static let maxSymbols = 8

  struct Failure: Error { var message: String }

  init(proto: Glassbox_Graph) {
    self.proto = proto
    graph = Graph(name: proto.name)
  }

  func fail(_ m: String) -> Failure { Failure(message: m) }

  mutating func decode() throws(Failure) -> Graph {
    let values = proto.values
    let n = values.count
    var i = 0
    while i < n {
      let v = values[i]
      let type = try tensorType(v.type, what: "value \(i) '\(v.name)'")
      switch v.origin {
      case .input(let k)?:
        guard Int(k) == graph.inputs.count, Int(k) < proto.inputs.count, proto.inputs[Int(k)] == UInt32(i) else {
          throw fail("value \(i) '\(v.name)' claims to be input \(k), which the graph's inputs do not list there")
        }
        graph.addInput(name: v.name, type: type)
        i += 1
      case .parameter(let k)?:
        guard Int(k) == graph.parameters.count, Int(k) < proto.parameters.count else {
          throw fail("value \(i) '\(v.name)' claims to be parameter \(k), which is not the next parameter")
        }
        let p = proto.parameters[Int(k)]
        guard p.value == UInt32(i), p.name == v.name else {
          throw fail("parameter \(k) '\(p.name)' and value \(i) '\(v.name)' do not refer to each other")
        }
        guard try tensorType(p.type, what: "parameter '\(p.name)'") == type else {
          throw fail("parameter '\(p.name)' and its value disagree on the type")
        }
        let role: ParameterRole
        switch p.role {
        case .trainable: role = .trainable
        case .buffer: role = .buffer
        default: throw fail("parameter '\(p.name)' has no valid role")
        }
        graph.addParameter(name: v.name, type: type, role: role, initializer: try initializer(p.initializer, p.name))
        i += 1
      case .node(let nr)?:
        let k = Int(nr.node)
        guard nr.result == 0, k == graph.nodes.count, k < proto.nodes.count else {
          throw fail(
            "value \(i) '\(v.name)' claims to be result \(nr.result) of node \(nr.node), out of definition order")
        }
        let node = proto.nodes[k]
        let count = node.results.count
        guard count >= 1, count <= n - i else { throw fail("node \(k) has \(count) results, past the graph's values") }
        var results: [(name: String, type: TensorType)] = []
        for r in 0..<count {
          let rv = values[i + r]
          guard node.results[r] == UInt32(i + r), case .node(let o)? = rv.origin, o.node == nr.node,
            o.result == UInt32(r)
          else {
            throw fail("node \(k)'s results and values \(i)…\(i + count - 1) do not refer to each other")
          }
          results.append((rv.name, r == 0 ? type : try tensorType(rv.type, what: "value \(i + r) '\(rv.name)'")))
        }
        guard let op = Op(rawValue: node.op) else {
          throw fail(
            "node \(k) ('\(v.name)') has unknown op '\(node.op.prefix(100))'; this glassbox knows \(Op.allCases.map(\.name).joined(separator: ", "))"
          )
        }
        var operands: [ValueID] = []
        for o in node.operands {
          guard Int(o) < i else { throw fail("node \(k) ('\(v.name)') uses value \(o) before it is defined") }
          operands.append(ValueID(Int(o)))
        }
        let attrs = try attributes(node.attributes, schema: op.attributes, owner: "node \(k) ('\(v.name)', \(op.name))")
        graph.addNode(op, operands: operands, attributes: attrs, results: results)
        i += count
      case nil:
        throw fail("value \(i) '\(v.name)' says nothing about what defines it")
      }
    }
    guard graph.inputs.count == proto.inputs.count else {
      throw fail("the graph lists \(proto.inputs.count) inputs but \(graph.inputs.count) values are inputs")
    }
    guard graph.parameters.count == proto.parameters.count else {
      throw fail(
        "the graph lists \(proto.parameters.count) parameters but \(graph.parameters.count) values are parameters")
    }
    guard graph.nodes.count == proto.nodes.count else {
      throw fail("the graph lists \(proto.nodes.count) nodes but values define \(graph.nodes.count)")
    }
    for o in proto.outputs {
      guard Int(o.value) < n else { throw fail("output '\(o.name)' refers to value \(o.value) of \(n)") }
      graph.outputs.append((o.name, ValueID(Int(o.value))))
    }
    for s in proto.scopes {
      var steps: Scope.Steps?
      if s.hasSteps {
        steps = Scope.Steps(
          batch: try dim(s.steps.batch, what: "scope '\(s.path)'"),
          time: try dim(s.steps.time, what: "scope '\(s.path)'"))
      }
      graph.scopes.append(Scope(path: s.path, block: s.block, steps: steps))
    }
    for r in proto.recipes {
      guard let kind = RecipeKind(rawValue: r.kind) else {
        throw fail("recipe for '\(r.input)' has unknown kind '\(r.kind.prefix(100))'")
      }
      graph.recipes.append(
        InputRecipe(
          input: r.input, kind: kind,
          options: try attributes(r.options, schema: kind.options, owner: "recipe \(r.kind)")))
    }
    for t in proto.taps {
      guard let kind = TapKind(rawValue: t.kind) else {
        throw fail(
          "tap '\(t.name)' has unknown kind '\(t.kind.prefix(100))'; this glassbox knows \(TapKind.allCases.map(\.rawValue).joined(separator: ", "))"
        )
      }
      guard t.operands.count == kind.operandCount, t.operands.allSatisfy({ Int($0) < n }) else {
        throw fail(
          "tap '\(t.name)' (\(kind.rawValue)) needs \(kind.operandCount) operand\(kind.operandCount == 1 ? "" : "s") that \(kind.operandCount == 1 ? "is a value" : "are values") of the graph"
        )
      }
      graph.taps.append(
        Tap(
          name: t.name, kind: kind, operands: t.operands.map { ValueID(Int($0)) },
          options: try attributes(t.options, schema: kind.options, owner: "tap '\(t.name)'"),
          type: try tensorType(t.type, what: "tap '\(t.name)'")))
    }
    let problems = Verifier.verify(graph)
    if let first = problems.first {
      throw fail(
        "graph fails verification: \(first.message)\(problems.count > 1 ? " (and \(problems.count - 1) more)" : "")")
    }
    return graph
  }

  func dim(_ d: Glassbox_Dim, what: String) throws(Failure) -> Dim {
    guard d.coefficient >= 0, d.coefficient <= Int64(Self.maxInt) else {
      throw fail("\(what): dimension coefficient \(d.coefficient) is out of range (0 to \(Self.maxInt))")
    }
    guard d.symbols.count <= Self.maxSymbols,
      d.symbols.allSatisfy({ s in
        !s.isEmpty && s.utf8.count <= 64
          && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0 == "_" || ("0"..."9").contains($0) }
      })
    else {
      throw fail("\(what): a dimension's symbols must be at most \(Self.maxSymbols) names")
    }
    guard d.symbols == d.symbols.sorted() else { throw fail("\(what): a dimension's symbols must be sorted") }
    return Dim(coefficient: Int(d.coefficient), symbols: d.symbols)
  }

  func tensorType(_ t: Glassbox_TensorType, what: String) throws(Failure) -> TensorType {
    let dtype: DType
    switch t.dtype {
    case .f32: dtype = .f32
    case .f64: dtype = .f64
    case .i64: dtype = .i64
    case .bool: dtype = .bool
    default: throw fail("\(what) has no valid element type")
    }
    guard t.shape.count <= Self.maxRank else {
      throw fail("\(what) has rank \(t.shape.count); the limit is \(Self.maxRank)")
    }
    var shape: [Dim] = []
    for d in t.shape { shape.append(try dim(d, what: what)) }
    return TensorType(dtype, shape)
  }

  func initializer(_ i: Glassbox_Initializer, _ name: String) throws(Failure) -> ParameterInit {
    switch i.kind {
    case .zeros: return .zeros
    case .ones: return .ones
    case .uniform where i.scale.isFinite && i.scale >= 0: return .uniform(bound: i.scale)
    case .normal where i.scale.isFinite && i.scale >= 0: return .normal(std: i.scale)
    default: throw fail("parameter '\(name)' has no valid initializer")
    }
  }

  func attrValue(_ v: Glassbox_AttrValue, what: String) throws(Failure) -> AttrValue {
    switch v.kind {
    case .int(let x)?:
      guard abs(x) <= Int64(Self.maxInt) || x == Int64.max else { throw fail("\(what): integer \(x) is out of range") }
      return .int(Int(x))
    case .float(let x)?:
      guard x.isFinite else { throw fail("\(what): number \(x) is not finite") }
      return .float(x)
    case .bool(let x)?: return .bool(x)
    case .string(let s)?: return .string(s)
    case .dim(let d)?: return .dimension(try dim(d, what: what))
    case .list(let l)?:
      var items: [AttrValue] = []
      for item in l.items {
        guard case .list? = item.kind else {
          items.append(try attrValue(item, what: what))
          continue
        }
        throw fail("\(what): lists of lists are not attributes")
      }
      return .list(items)
    case nil: throw fail("\(what): attribute has no value")
    }
  }

  /// Attributes checked against their schema: no unknown or repeated names, every value of
  /// the declared kind. A missing attribute that has a default takes it, so a file written
  /// before an optional attribute existed still loads; other missing ones are the verifier's
  /// to report.
  func attributes(_ list: [Glassbox_Attribute], schema: [Op.AttrSpec], owner: String) throws(Failure) -> Attributes {
    var a = Attributes()
    for pa in list {
      guard let spec = schema.first(where: { $0.name == pa.name }) else {
        throw fail("\(owner) has unknown attribute '\(pa.name.prefix(100))'")
      }
      guard a[pa.name] == nil else { throw fail("\(owner) has attribute '\(pa.name)' twice") }
      let v = try attrValue(pa.value, what: "\(owner) attribute '\(pa.name)'")
      guard Self.fits(v, spec.kind) else {
        throw fail("\(owner) attribute '\(pa.name)' must be \(spec.kind.summary), found \(v.description.prefix(100))")
      }
      a[pa.name] = v
    }
    for spec in schema where a[spec.name] == nil {
      if let d = spec.defaultValue { a[spec.name] = d }
    }
    return a
  }

  static func fits(_ v: AttrValue, _ kind: Op.AttrKind) -> Bool {
    func isInt(_ v: AttrValue) -> Bool { if case .int = v { true } else { false } }
    switch (kind, v) {
    case (.int, .int), (.float, .float), (.float, .int), (.bool, .bool), (.dim, .int), (.dim, .dim): return true
    case (.pair, .list(let items)): return (items.count == 2 || items.isEmpty) && items.allSatisfy(isInt)
    case (.ints, .list(let items)): return items.allSatisfy(isInt)
    case (.floats, .list(let items)):
      return items.allSatisfy { if case .float = $0 { true } else { isInt($0) } }
    case (.dims, .list(let items)):
      return items.allSatisfy { if case .dim = $0 { true } else { isInt($0) } }
    case (.choice(let names), .string(let s)): return names.contains(s)
    default: return false
    }
  }
}
