/// Turns a parsed spec into a flat, typed graph: instantiates blocks (their nodes get the
/// instance path as a name prefix and a `Scope`), creates the parameters that layer calls
/// imply, checks every shape, and collects every diagnostic instead of stopping at the first.
///
/// Naming rules, which make parameter names deterministic and equal to PyTorch's `state_dict`:
/// - `name = call(…)` names the call's value `PREFIX.name`; `call(…) @path` names it `PREFIX.path`.
/// - A call without a name of its own (an operand of another call) is named after the value
///   that uses it: `y = relu(add(a, b))` names the sum `y.add`.
/// - A layer call (`conv2d`, `linear`, `batch_norm`, `lstm` with only an input operand) creates
///   its parameters under its value's name: `conv1 = conv2d(x, out: 64, kernel: 7)` declares
///   `conv1.weight` and `conv1.bias`.
/// - A block instance named `layer1.0` prefixes everything inside with `layer1.0.` and gives
///   its returned value the name `layer1.0`.
struct Elaborator {
  /// Block instances nested deeper than this are refused.
  static let maxInstanceDepth = 64

  private var graph: Graph
  private var diagnostics: [Diagnostic] = []
  private var reported = Set<Diagnostic>()
  private var blocks: [String: BlockDecl] = [:]
  private var globals: [String: ValueID] = [:]
  private var definedAt: [String: SourceLocation] = [:]
  private var bindings: [String: Int] = [:]
  private var symbols: Set<String> = []
  private var instanceStack: [String] = []
  private var scopePaths: Set<String> = []
  private var scopeLocations: [String: SourceLocation] = [:]
  private let brokenNames: Set<String>
  private let file: SpecFile

  /// A local name's meaning: a value, or nothing usable (its statement failed).
  private enum Local {
    case value(ValueID)
    case poisoned
  }

  /// What names mean inside one body (the graph's, or a block instance's).
  private struct Env {
    var prefix: String
    var locals: [String: Local] = [:]
    var attrs: [String: AttrValue] = [:]
    /// The instance being elaborated, for messages ("in block instance layer2.0").
    var instance: String?
  }

  init(file: SpecFile, graphName: String) {
    graph = Graph(name: graphName)
    brokenNames = file.brokenNames
    self.file = file
    for block in file.blocks {
      if let first = blocks[block.name] {
        report(
          "duplicate block '\(block.name)' (first defined at \(first.location.line):\(first.location.column))",
          at: block.location)
      } else {
        blocks[block.name] = block
      }
    }
  }

  private mutating func report(_ message: String, at location: SourceLocation?, in env: Env? = nil) {
    var text = message
    if let instance = env?.instance { text += " (in block instance \(instance))" }
    let d = Diagnostic(text, at: location)
    if reported.insert(d).inserted { diagnostics.append(d) }
  }

  // MARK: Graph

  mutating func elaborate(_ decl: GraphDecl, bindings user: [String: Int]) -> (Graph, [Diagnostic]) {
    graph.name = decl.name
    // Symbols are the names used in the signature's shapes.
    for entry in decl.inputs + decl.outputs {
      for d in entry.type.dims { collectNames(d, into: &symbols) }
    }
    for (symbol, value, loc) in decl.defaults {
      if !symbols.contains(symbol) {
        report("'where' names \(symbol), which is not a symbol of the signature (symbols: \(listed(symbols)))", at: loc)
      } else if value < 1 {
        report("symbol \(symbol) must be bound to a positive size, found \(value)", at: loc)
      } else {
        bindings[symbol] = value
      }
    }
    for (symbol, value) in user.sorted(by: { $0.key < $1.key }) {
      if !symbols.contains(symbol) {
        report(
          "--bind \(symbol)=\(value): graph '\(decl.name)' has no symbol \(symbol) (symbols: \(listed(symbols)))",
          at: nil)
      } else if value < 1 {
        report("--bind \(symbol)=\(value): sizes must be positive", at: nil)
      } else {
        bindings[symbol] = value
      }
    }

    var env = Env(prefix: "")
    for entry in decl.inputs {
      guard let type = resolveType(entry.type, env: env) else {
        env.locals[entry.name] = .poisoned
        continue
      }
      guard claim(entry.name, at: entry.location) else { continue }
      let id = graph.addInput(name: entry.name, type: type)
      globals[entry.name] = id
      env.locals[entry.name] = .value(id)
    }

    let taps = elaborateBody(decl.body, env: &env).taps
    if let ret = decl.body.first(where: { if case .ret = $0 { true } else { false } }), case .ret(_, let loc) = ret {
      report("'return' belongs in a block; a graph names its outputs in its signature", at: loc)
    }

    var seen = Set<String>()
    for entry in decl.outputs {
      guard seen.insert(entry.name).inserted else {
        report("duplicate output '\(entry.name)'", at: entry.location)
        continue
      }
      let declared = resolveType(entry.type, env: env)
      switch env.locals[entry.name] {
      case .value(let id)?:
        let actual = graph[id].type
        if let declared, declared != actual {
          report("output '\(entry.name)' is declared \(declared) but computed \(actual)", at: entry.location)
        }
        graph.outputs.append((entry.name, id))
      case .poisoned?:
        break
      case nil:
        if !brokenNames.contains(entry.name) {
          report("output '\(entry.name)' is never assigned in the body", at: entry.location)
        }
      }
    }

    if diagnostics.isEmpty && !file.hadSyntaxErrors && graph.outputs.count != decl.outputs.count {
      report("internal error: an output was lost without a diagnostic; please report this spec", at: decl.location)
    }

    var tapNames: [String: SourceLocation] = [:]
    for (name, call, type, loc) in taps {
      if let first = tapNames[name] {
        report("duplicate tap '\(name)' (first declared at \(first.line):\(first.column))", at: loc)
        continue
      }
      tapNames[name] = loc
      elaborateTap(name: name, call: call, type: type, location: loc, env: env)
    }
    return (graph, diagnostics)
  }

  private func listed(_ s: Set<String>) -> String { s.isEmpty ? "none" : s.sorted().joined(separator: ", ") }

  private func collectNames(_ e: AttrExpr, into set: inout Set<String>) {
    switch e {
    case .name(let n, _): set.insert(n)
    case .product(let items, _), .list(let items, _): for i in items { collectNames(i, into: &set) }
    case .int, .float, .bool: break
    }
  }

  /// " (first defined at L:C)" for a name already taken, when its place is known.
  private func firstDefined(_ name: String) -> String {
    guard let l = definedAt[name] ?? scopeLocations[name] else { return "" }
    return " (first defined at \(l.line):\(l.column))"
  }

  /// Records a global name, or reports the duplicate.
  private mutating func claim(_ name: String, at location: SourceLocation?, in env: Env? = nil) -> Bool {
    if let first = definedAt[name] ?? (globals[name] != nil ? location : nil) {
      report("duplicate name '\(name)' (first defined at \(first.line):\(first.column))", at: location, in: env)
      return false
    }
    if let location { definedAt[name] = location }
    return true
  }

  // MARK: Bodies

  /// Elaborates the statements of a body in dependency order (a statement may use a name
  /// defined below it), reporting cycles.
  private mutating func elaborateBody(
    _ body: [Stmt], env: inout Env, isBlock: Bool = false,
    returnName: String? = nil
  ) -> BodyResult {
    // Which statement defines each local name.
    var definer: [String: Int] = [:]
    for (i, stmt) in body.enumerated() {
      switch stmt {
      case .binding(let names, _, _, _):
        for (n, _) in names where definer[n] == nil { definer[n] = i }
      case .parameter(let name, _, _, _, _):
        if definer[name] == nil { definer[name] = i }
      case .scope, .tap, .ret, .recipe:
        break
      }
    }
    let order = dependencyOrder(body, definer: definer, env: &env)

    var result = BodyResult()
    for i in order {
      switch body[i] {
      case .parameter(let name, let typeExpr, let role, let initExpr, let loc):
        if env.locals[name] != nil || definer[name] != i {
          let first = definer[name].flatMap { $0 == i ? definedAt[env.prefix + name] : location(of: body[$0]) }
          report(
            "duplicate name '\(name)'\(first.map { " (first defined at \($0.line):\($0.column))" } ?? "")", at: loc,
            in: env)
          continue
        }
        guard let type = resolveType(typeExpr, env: env), let initializer = resolveInit(initExpr, role: role, env: env),
          claim(env.prefix + name, at: loc, in: env)
        else { env.locals[name] = .poisoned; continue }
        let id = graph.addParameter(name: env.prefix + name, type: type, role: role, initializer: initializer)
        globals[env.prefix + name] = id
        env.locals[name] = .value(id)

      case .scope(let path, let block, let steps, let loc):
        var s = Scope(path: env.prefix + path, block: block, steps: nil)
        if let (b, t) = steps {
          guard let batch = evalDim(b, env: env), let time = evalDim(t, env: env) else { continue }
          s.steps = Scope.Steps(batch: batch, time: time)
        }
        if scopePaths.insert(s.path).inserted {
          graph.scopes.append(s)
        } else {
          report("duplicate scope '\(s.path)'", at: loc, in: env)
        }

      case .binding(let names, let expr, let types, let loc):
        if let (dup, dupLoc) = names.first(where: { n, _ in
          if case .value? = env.locals[n] { return true }
          return definer[n] != i
        }) {
          let first = definer[dup].flatMap { $0 == i ? definedAt[env.prefix + dup] : location(of: body[$0]) }
          report(
            "duplicate name '\(dup)'\(first.map { " (first defined at \($0.line):\($0.column))" } ?? "")", at: dupLoc,
            in: env)
          continue
        }
        let results: [ValueID]?
        switch expr {
        case .ref(let name, let refLoc):
          // An alias: the local name stands for an existing value.
          if names.count != 1 {
            report("a reference has one value but \(names.count) names are bound", at: loc, in: env)
            results = nil
          } else {
            results = resolve(name, at: refLoc, env: env).map { [$0] }
          }
        case .call(let call):
          let owner = env.prefix + (call.path ?? names[0].0)
          results = elaborateCall(
            call, name: owner, resultNames: names.map { env.prefix + $0.0 },
            env: &env)
        }
        guard let results else {
          for (n, _) in names { env.locals[n] = .poisoned }
          continue
        }
        if results.count != names.count {
          report(
            "\(names.count) names are bound but the call has \(results.count) result\(results.count == 1 ? "" : "s")",
            at: loc, in: env)
          for (n, _) in names { env.locals[n] = .poisoned }
          continue
        }
        for ((n, _), id) in zip(names, results) { env.locals[n] = .value(id) }
        if let types {
          checkAnnotations(types, results: results, location: loc, env: env)
        }

      case .tap(let name, let call, let type, let loc):
        result.taps.append((name, call, type, loc))

      case .recipe(let input, let call, let loc):
        if env.instance != nil {
          report("recipes are declared at graph level, not inside a block", at: loc)
        } else {
          elaborateRecipe(input: input, call: call, location: loc, env: env)
        }

      case .ret(let expr, let loc):
        guard isBlock else { continue }
        if result.returned != nil {
          report("a block has one 'return'", at: loc, in: env)
          continue
        }
        switch expr {
        case .ref(let name, let refLoc):
          if let id = resolve(name, at: refLoc, env: env) { result.returned = id }
        case .call(let call):
          // An op's value takes the instance's name; a nested block instance needs a scope
          // of its own (`y.inner`), and its value is renamed to the instance's name after.
          let owner = returnName ?? String(env.prefix.dropLast())
          let isInstance = blocks[call.callee] != nil || call.callee == "each_step"
          let name = call.path.map { env.prefix + $0 } ?? (isInstance ? fresh(env.prefix + call.callee) : owner)
          if let ids = elaborateCall(call, name: name, resultNames: nil, env: &env) {
            if ids.count == 1 {
              result.returned = ids[0]
            } else {
              report("a block returns one value; the call has \(ids.count) results", at: loc, in: env)
            }
          }
        }
      }
    }
    return result
  }

  /// What a body leaves for its caller: taps (handled once every value exists) and the value
  /// of a block's `return`.
  private struct BodyResult {
    var taps: [(String, Call, TypeExpr?, SourceLocation)] = []
    var returned: ValueID?
  }

  /// Statement indices in an order where each name is defined before it is used: source
  /// order where possible. Statements on a cycle are reported and left out.
  private mutating func dependencyOrder(_ body: [Stmt], definer: [String: Int], env: inout Env) -> [Int] {
    func deps(_ i: Int) -> [Int] {
      var names: [String] = []
      switch body[i] {
      case .binding(_, let expr, _, _), .ret(let expr, _): collectRefs(expr, into: &names)
      case .parameter, .scope, .tap, .recipe: break
      }
      return names.compactMap { definer[$0] }
    }
    enum Mark { case fresh, active, done }
    var mark = [Mark](repeating: .fresh, count: body.count)
    var order: [Int] = []
    order.reserveCapacity(body.count)
    // Iterative depth-first search, so a 10,000-statement chain written backwards does not
    // overflow the stack.
    for root in body.indices where mark[root] == .fresh {
      var stack: [(node: Int, deps: [Int], next: Int)] = [(root, deps(root), 0)]
      mark[root] = .active
      while let top = stack.last {
        if top.next < top.deps.count {
          stack[stack.count - 1].next += 1
          let d = top.deps[top.next]
          switch mark[d] {
          case .fresh:
            mark[d] = .active
            stack.append((d, deps(d), 0))
          case .active:
            // A cycle: the statements from `d` to the top of the stack.
            let start = stack.firstIndex { $0.node == d } ?? 0
            let cycle = stack[start...].map(\.node)
            let names = (cycle + [d]).map { definedName(body[$0]) }
            let message =
              cycle.count == 1
              ? "'\(names[0])' is used in its own definition"
              : "cycle: \(names.joined(separator: " → ")) depend on each other"
            report(message, at: location(of: body[d]), in: env)
            for n in cycle {
              if case .binding(let bound, _, _, _) = body[n] { for (b, _) in bound { env.locals[b] = .poisoned } }
            }
          case .done:
            break
          }
        } else {
          stack.removeLast()
          mark[top.node] = .done
          order.append(top.node)
        }
      }
    }
    // Statements poisoned by a cycle are dropped.
    return order.filter { i in
      if case .binding(let bound, _, _, _) = body[i], case .poisoned? = env.locals[bound[0].0] { return false }
      return true
    }
  }

  private func definedName(_ s: Stmt) -> String {
    switch s {
    case .binding(let names, _, _, _): names.map(\.0).joined(separator: ", ")
    case .parameter(let name, _, _, _, _): name
    case .scope(let path, _, _, _): path
    case .recipe(let input, _, _): "recipe \(input)"
    case .tap(let name, _, _, _): name
    case .ret: "return"
    }
  }

  private func location(of s: Stmt) -> SourceLocation {
    switch s {
    case .binding(_, _, _, let l), .parameter(_, _, _, _, let l), .scope(_, _, _, let l), .tap(_, _, _, let l),
      .recipe(_, _, let l),
      .ret(_, let l):
      l
    }
  }

  private func collectRefs(_ e: Expr, into names: inout [String]) {
    switch e {
    case .ref(let n, _): names.append(n)
    case .call(let c): for o in c.operands { collectRefs(o, into: &names) }
    }
  }

  private mutating func checkAnnotations(_ types: [TypeExpr], results: [ValueID], location: SourceLocation, env: Env) {
    guard types.count == results.count else {
      report(
        "\(types.count) type\(types.count == 1 ? "" : "s") annotated but the call has \(results.count) result\(results.count == 1 ? "" : "s")",
        at: location, in: env)
      return
    }
    for (t, id) in zip(types, results) {
      guard let declared = resolveType(t, env: env) else { continue }
      let actual = graph[id].type
      if declared != actual {
        report("'\(graph[id].name)' is annotated \(declared) but its type is \(actual)", at: t.location, in: env)
      }
    }
  }

  // MARK: Names

  /// A local name, or a dotted global name (`cnn.layer4`, `fc.weight`).
  private mutating func resolve(_ name: String, at location: SourceLocation, env: Env) -> ValueID? {
    switch env.locals[name] {
    case .value(let id)?: return id
    case .poisoned?: return nil
    case nil: break
    }
    if let id = globals[env.prefix + name] ?? globals[name] { return id }
    if brokenNames.contains(name) { return nil }
    if blocks[name] != nil {
      report("'\(name)' is a block, not a value; call it as \(name)(…)", at: location, in: env)
    } else {
      report("undefined value '\(name)'", at: location, in: env)
    }
    return nil
  }

  /// A fresh name `base`, or `base_2`, `base_3`… when taken.
  private func fresh(_ base: String) -> String {
    if globals[base] == nil && definedAt[base] == nil { return base }
    var k = 2
    while globals["\(base)_\(k)"] != nil || definedAt["\(base)_\(k)"] != nil { k += 1 }
    return "\(base)_\(k)"
  }

  /// Elaborates one operand of a call named `user`: a reference, or a nested call named
  /// after its user. A nested call must have exactly one result.
  private mutating func elaborateOperand(_ operand: Expr, user: String, env: inout Env) -> ValueID? {
    switch operand {
    case .ref(let n, let loc):
      return resolve(n, at: loc, env: env)
    case .call(let inner):
      let innerName = inner.path.map { env.prefix + $0 } ?? fresh("\(user).\(inner.callee)")
      guard let ids = elaborateCall(inner, name: innerName, resultNames: nil, env: &env) else { return nil }
      guard ids.count == 1 else {
        report(
          "'\(inner.callee)' has \(ids.count) results; bind them to names before using one", at: inner.location, in: env
        )
        return nil
      }
      return ids[0]
    }
  }

  /// Names at graph level start with a letter or `_` (so the printed form lexes them as names).
  private mutating func checkTopLevelName(_ name: String, at location: SourceLocation, env: Env) -> Bool {
    guard env.prefix.isEmpty, let first = name.first, first.isNumber else { return true }
    report("name '\(name)' must start with a letter outside a block", at: location, in: env)
    return false
  }

  private mutating func reportUnknownSize(_ name: String, at location: SourceLocation, env: Env) {
    report(
      "unknown size '\(name)': use a number or a symbol of the signature (symbols: \(listed(symbols)))",
      at: location, in: env)
  }

  // MARK: Calls

  /// Elaborates a call whose value is named `name` (results of a multi-result op are named by
  /// `resultNames`, or `name.0`, `name.1`, …). Returns nil when an error was reported.
  private mutating func elaborateCall(_ call: Call, name: String, resultNames: [String]?, env: inout Env) -> [ValueID]?
  {
    if call.callee == "each_step" {
      return elaborateEachStep(call, name: name, env: &env).map { [$0] }
    }
    if let block = blocks[call.callee] {
      return instantiate(block, call: call, name: name, env: &env, stepsOutputName: nil).map { [$0] }
    }
    if let composite = Composite(rawValue: call.callee) {
      return elaborateComposite(composite, call, name: name, env: &env).map { [$0] }
    }
    guard let op = Op(rawValue: call.callee) else {
      if TapKind(rawValue: call.callee) != nil {
        report(
          "'\(call.callee)' is a tap kind; declare it as `tap NAME = \(call.callee)(value)`", at: call.location, in: env
        )
      } else if !brokenNames.contains(call.callee) {
        report("unknown op or block '\(call.callee)'\(suggestion(for: call.callee))", at: call.location, in: env)
      }
      return nil
    }
    guard checkTopLevelName(name, at: call.pathLocation ?? call.location, env: env) else { return nil }

    // Operands first: nested calls are named after this one.
    var operands: [ValueID] = []
    var poisoned = false
    for operand in call.operands {
      if let id = elaborateOperand(operand, user: name, env: &env) { operands.append(id) } else { poisoned = true }
    }

    // Named arguments; layer calls consume their own (out, kernel, bias, init) first.
    guard var named = namedArguments(call, owner: op.name, env: env), !poisoned else { return nil }

    // The layer form (`linear(x, out: 10)`) takes only the input; it sizes the parameters
    // from its own arguments and the op's attributes, then passes them as operands.
    let layer = operands.count == 1 ? LayerSugar(op: op) : nil
    let spec = op.operands
    let countOK =
      spec.variadic
      ? operands.count >= spec.required
      : (operands.count >= spec.required && operands.count <= spec.names.count)
    guard countOK || layer != nil else {
      let expected =
        spec.variadic
        ? "at least \(spec.required)"
        : spec.required == spec.names.count ? "\(spec.required)" : "\(spec.required) to \(spec.names.count)"
      let names = spec.names.isEmpty ? "" : " (\(spec.names.joined(separator: ", ")))"
      let plural = spec.required == 1 && spec.names.count == 1 ? "" : "s"
      report(
        "\(op.name) takes \(expected) operand\(plural)\(names), found \(operands.count)", at: call.location, in: env)
      return nil
    }
    var own: [String: (AttrValue, SourceLocation)] = [:]
    if let layer {
      for key in layer.ownArguments.map(\.name) { own[key] = named.removeValue(forKey: key) }
    }
    let accepted = (layer?.ownArguments ?? []) + op.attributes
    guard
      let attrs = checkAttributes(
        op.attributes, named, owner: op.name, accepted: layer == nil ? nil : accepted,
        at: call.location, env: env)
    else { return nil }
    if let layer {
      guard claim(name, at: call.location, in: env) else { return nil }
      definedAt[name] = nil  // claimed again when the node is added
      guard
        let params = makeLayerParameters(
          layer, input: operands[0], own: own, attributes: attrs, name: name,
          call: call, env: env)
      else { return nil }
      operands += params
    }

    let types: [TensorType]
    do {
      types = try op.inferTypes(operands.map { graph[$0].type }, attrs)
    } catch {
      report(error.message, at: call.location, in: env)
      return nil
    }

    var names: [String]
    if types.count == 1 {
      names = [name]
    } else if let resultNames, resultNames.count == types.count {
      names = resultNames
    } else if resultNames != nil {
      names = (0..<types.count).map { "\(name).\($0)" }
    } else {
      names = (0..<types.count).map { "\(name).\($0)" }
    }
    for n in names where !claim(n, at: call.location, in: env) { return nil }
    let ids = graph.addNode(
      op, operands: operands, attributes: attrs,
      results: zip(names, types).map { ($0, $1) }, location: call.location)
    for (n, id) in zip(names, ids) { globals[n] = id }
    return ids
  }

  /// The named arguments of a call evaluated, by name; nil when one was given twice or does
  /// not evaluate (each reported).
  private mutating func namedArguments(
    _ call: Call, owner: String,
    env: Env
  ) -> [String: (AttrValue, SourceLocation)]? {
    var named: [String: (AttrValue, SourceLocation)] = [:]
    var ok = true
    for arg in call.named {
      if named[arg.name] != nil {
        report("\(owner): attribute '\(arg.name)' is given twice", at: arg.location, in: env)
        ok = false
        continue
      }
      guard let v = evalAttr(arg.value, env: env) else { ok = false; continue }
      named[arg.name] = (v, arg.location)
    }
    return ok ? named : nil
  }

  /// A composite (`leaky_relu(x, alpha: 0.1)`): its one operand, its attributes against its
  /// schema, then the ops it expands to (`Composite.build`), named `NAME.TAG` around the
  /// result `NAME`. Returns nil when an error was reported.
  private mutating func elaborateComposite(
    _ composite: Composite, _ call: Call, name: String,
    env: inout Env
  ) -> ValueID? {
    guard checkTopLevelName(name, at: call.pathLocation ?? call.location, env: env) else { return nil }
    var operands: [ValueID] = []
    var poisoned = false
    for operand in call.operands {
      if let id = elaborateOperand(operand, user: name, env: &env) { operands.append(id) } else { poisoned = true }
    }
    guard let named = namedArguments(call, owner: composite.name, env: env), !poisoned else { return nil }
    guard operands.count == 1 else {
      report("\(composite.name) takes 1 operand (x), found \(operands.count)", at: call.location, in: env)
      return nil
    }
    guard let attrs = checkAttributes(composite.attributes, named, owner: composite.name, at: call.location, env: env),
      claim(name, at: call.location, in: env)
    else { return nil }
    let first = graph.values.count
    let result: ValueID
    do {
      result = try composite.build(operands[0], attrs, named: name, into: &graph, location: call.location)
    } catch {
      definedAt[name] = nil
      report(error.message, at: call.location, in: env)
      return nil
    }
    // The name stands for x itself when the composite is the identity (clip without bounds).
    if result.index < first { definedAt[name] = nil }
    for i in first..<graph.values.count {
      let valueName = graph.values[i].name
      guard valueName == name || claim(valueName, at: call.location, in: env) else { return nil }
      globals[valueName] = ValueID(i)
    }
    return result
  }

  /// Checks named arguments against an attribute schema and fills defaults.
  /// `accepted` lists every name the call could take (for the message), when more than `schema`.
  private mutating func checkAttributes(
    _ schema: [Op.AttrSpec], _ named: [String: (AttrValue, SourceLocation)],
    owner: String, accepted: [Op.AttrSpec]? = nil, at location: SourceLocation,
    env: Env
  ) -> Attributes? {
    var attrs = Attributes()
    var ok = true
    let all = accepted ?? schema
    for (key, (_, loc)) in named.sorted(by: { $0.key < $1.key }) where !schema.contains(where: { $0.name == key }) {
      let list = all.isEmpty ? "it takes none" : "expected \(all.map(\.name).joined(separator: ", "))"
      // `linear(x, w, out: 4)`: the layer's own arguments belong to its one-operand form.
      let layerForm = Op(rawValue: owner).flatMap(LayerSugar.init)
      let hint =
        accepted == nil && layerForm?.ownArguments.contains(where: { $0.name == key }) == true
        ? " ('\(key)' belongs to the layer form \(owner)(x, \(key): …), which takes only the input)" : ""
      report("\(owner) has no attribute '\(key)'; \(list)\(hint)", at: loc, in: env)
      ok = false
    }
    for spec in schema {
      if let (value, loc) = named[spec.name] {
        if let v = coerce(value, to: spec.kind) {
          attrs[spec.name] = v
        } else if case .string(let s) = value, [.int, .dim, .pair].contains(spec.kind) {
          reportUnknownSize(s, at: loc, env: env)
          ok = false
        } else {
          report(
            "\(owner): attribute '\(spec.name)' must be \(describe(spec.kind)), found \(describeValue(value))",
            at: loc, in: env)
          ok = false
        }
      } else if let d = spec.defaultValue {
        attrs[spec.name] = d
      } else {
        report("\(owner): missing attribute '\(spec.name)' (\(describe(spec.kind)))", at: location, in: env)
        ok = false
      }
    }
    return ok ? attrs : nil
  }

  private func describeValue(_ v: AttrValue) -> String {
    if case .string(let s) = v { return "'\(s)'" }
    return "\(v.kindName) (\(v))"
  }

  private func describe(_ kind: Op.AttrKind) -> String {
    switch kind {
    case .int: "an integer"
    case .float: "a number"
    case .bool: "true or false"
    case .dim: "a size"
    case .pair: "an integer or a pair [h, w]"
    case .ints: "a list of integers"
    case .floats: "a list of numbers"
    case .dims: "a list of sizes"
    case .choice(let options): "one of \(options.joined(separator: ", "))"
    }
  }

  /// The value in the attribute's canonical form, or nil when it is of the wrong kind.
  private func coerce(_ v: AttrValue, to kind: Op.AttrKind) -> AttrValue? {
    switch (kind, v) {
    case (.int, .int), (.bool, .bool), (.float, .float): return v
    case (.float, .int(let i)): return .float(Double(i))
    case (.dim, .int), (.dim, .dim): return v
    case (.pair, .int(let i)): return .list([.int(i), .int(i)])
    case (.pair, .list(let items))
    where items.count == 2 && items.allSatisfy({ if case .int = $0 { true } else { false } }):
      return v
    case (.ints, .list(let items)) where items.allSatisfy({ if case .int = $0 { true } else { false } }):
      return v
    case (.ints, .int(let i)): return .list([.int(i)])
    case (.floats, .list(let items))
    where items.allSatisfy({
      switch $0 {
      case .int, .float: true;
      default: false
      }
    }):
      return .list(items.map { if case .int(let i) = $0 { .float(Double(i)) } else { $0 } })
    case (.dims, .list(let items))
    where items.allSatisfy({
      switch $0 {
      case .int, .dim: true;
      default: false
      }
    }):
      return v
    case (.choice(let options), .string(let s)) where options.contains(s): return v
    default: return nil
    }
  }

  /// "; did you mean 'conv2d'?" for a name close to a known op, block or tap kind.
  private func suggestion(for name: String) -> String {
    let candidates = Op.allCases.map(\.name) + Composite.allCases.map(\.name) + Array(blocks.keys) + ["each_step"]
    var best: (String, Int)?
    for c in candidates {
      let d = editDistance(name, c)
      if d <= max(1, name.count / 3), d < (best?.1 ?? Int.max) { best = (c, d) }
    }
    return best.map { "; did you mean '\($0.0)'?" } ?? ""
  }

  // MARK: Layers

  /// Creates the parameters a layer call implies (sized by the layer's own arguments and the
  /// op's checked attributes); returns the parameter values in operand order.
  private mutating func makeLayerParameters(
    _ layer: LayerSugar, input: ValueID, own ownNamed: [String: (AttrValue, SourceLocation)],
    attributes: Attributes, name: String, call: Call, env: Env
  ) -> [ValueID]? {
    guard let own = checkAttributes(layer.ownArguments, ownNamed, owner: layer.op.name, at: call.location, env: env)
    else { return nil }
    let specs: [LayerSugar.ParameterSpec]
    do {
      specs = try layer.parameters(input: graph[input].type, own: own, nodeAttributes: attributes)
    } catch {
      report(error.message, at: call.location, in: env)
      return nil
    }
    var ids: [ValueID] = []
    for p in specs {
      let full = "\(name).\(p.suffix)"
      guard claim(full, at: call.location, in: env) else { return nil }
      let id = graph.addParameter(name: full, type: p.type, role: p.role, initializer: p.initializer)
      globals[full] = id
      ids.append(id)
    }
    return ids
  }

  // MARK: Blocks

  /// Instantiates a block under the path `name`. The returned value is renamed to `name`
  /// (or to `stepsOutputName` for `each_step`, whose final reshape takes `name`).
  private mutating func instantiate(
    _ block: BlockDecl, call: Call, name: String, env outer: inout Env,
    stepsOutputName: String?, operandOverride: [ValueID]? = nil,
    steps: Scope.Steps? = nil
  ) -> ValueID? {
    if let cycleStart = instanceStack.firstIndex(of: block.name) {
      let chain = (instanceStack[cycleStart...] + [block.name]).joined(separator: " → ")
      report("block '\(block.name)' instantiates itself (\(chain))", at: call.location, in: outer)
      return nil
    }
    guard instanceStack.count < Elaborator.maxInstanceDepth else {
      report("blocks are nested more than \(Elaborator.maxInstanceDepth) deep", at: call.location, in: outer)
      return nil
    }
    guard checkTopLevelName(name, at: call.pathLocation ?? call.location, env: outer) else { return nil }

    let tensorParams = block.params.filter { $0.kind == .tensor }
    var operandIDs: [ValueID] = []
    if let operandOverride {
      operandIDs = operandOverride
    } else {
      var poisoned = false
      for operand in call.operands {
        if let id = elaborateOperand(operand, user: name, env: &outer) {
          operandIDs.append(id)
        } else {
          poisoned = true
        }
      }
      if poisoned { return nil }
    }
    guard operandIDs.count == tensorParams.count else {
      let takes =
        tensorParams.isEmpty
        ? "no tensor operands"
        : "\(tensorParams.count) tensor operand\(tensorParams.count == 1 ? "" : "s") (\(tensorParams.map(\.name).joined(separator: ", ")))"
      report("block \(block.name) takes \(takes), found \(operandIDs.count)", at: call.location, in: outer)
      return nil
    }

    var inner = Env(prefix: name + ".", instance: name)
    for (p, id) in zip(tensorParams, operandIDs) { inner.locals[p.name] = .value(id) }
    var ok = true
    var given: [String: NamedArg] = [:]
    for arg in call.named {
      if let p = block.params.first(where: { $0.name == arg.name }), p.kind == .tensor {
        report(
          "'\(p.name)' is a tensor operand of block \(block.name); pass it by position: \(block.name)(\(p.name))",
          at: arg.location, in: outer)
        ok = false
        continue
      }
      guard block.params.contains(where: { $0.name == arg.name }) else {
        let accepted = block.params.filter { $0.kind != .tensor }.map(\.name)
        report(
          "block \(block.name) has no parameter '\(arg.name)'; expected \(accepted.isEmpty ? "none" : accepted.joined(separator: ", "))",
          at: arg.location, in: outer)
        ok = false
        continue
      }
      given[arg.name] = arg
    }
    for p in block.params where p.kind != .tensor {
      let value: AttrValue?
      if let arg = given[p.name] {
        value = evalAttr(arg.value, env: outer)
      } else if let d = p.defaultValue {
        value = evalAttr(d, env: Env(prefix: ""))
      } else {
        report("block \(block.name) needs parameter '\(p.name)' (\(p.kind.rawValue))", at: call.location, in: outer)
        ok = false
        continue
      }
      guard let value else { ok = false; continue }
      let kindOK: Bool =
        switch (p.kind, value) {
        case (.int, .int), (.float, .float), (.float, .int), (.bool, .bool), (.dim, .int), (.dim, .dim): true
        default: false
        }
      guard kindOK else {
        report(
          "block \(block.name): parameter '\(p.name)' must be \(p.kind == .int ? "an integer" : p.kind == .bool ? "true or false" : p.kind == .dim ? "a size" : "a number"), found \(describeValue(value))",
          at: given[p.name]?.location ?? call.location, in: outer)
        ok = false
        continue
      }
      inner.attrs[p.name] = value
    }
    guard ok else { return nil }

    guard scopePaths.insert(name).inserted else {
      report("duplicate name '\(name)'\(firstDefined(name))", at: call.pathLocation ?? call.location, in: outer)
      return nil
    }
    scopeLocations[name] = call.pathLocation ?? call.location
    graph.scopes.append(Scope(path: name, block: block.name, steps: steps))
    instanceStack.append(block.name)
    defer { instanceStack.removeLast() }

    let body = elaborateBody(block.body, env: &inner, isBlock: true, returnName: stepsOutputName)
    for (_, _, _, loc) in body.taps {
      report("taps are declared at graph level, not inside a block", at: loc)
    }
    guard let result = body.returned else {
      if !block.body.contains(where: { if case .ret = $0 { true } else { false } }) {
        report("block '\(block.name)' has no 'return'", at: block.location)
      }
      return nil
    }
    // The instance's value takes the instance's name when the block made it.
    if stepsOutputName == nil, case .node = graph[result].origin, graph[result].name.hasPrefix(name + "."),
      graph[result].name != name
    {
      globals[graph[result].name] = nil
      definedAt[graph[result].name] = nil
      guard claim(name, at: call.location, in: outer) else { return nil }
      graph.values[result.index].name = name
      globals[name] = result
    }
    return result
  }

  /// `each_step(block, x, attrs…)`: applies the block to every time step of `x: [B, T, …]` by
  /// merging the batch and time axes (`[B*T, …]`), as `x.view(B*T, …)` does in PyTorch, and
  /// splitting them again afterwards.
  private mutating func elaborateEachStep(_ call: Call, name: String, env: inout Env) -> ValueID? {
    guard call.operands.count == 2, case .ref(let blockName, let blockLoc) = call.operands[0] else {
      report("each_step takes a block name and one sequence operand: each_step(block, x)", at: call.location, in: env)
      return nil
    }
    guard let block = blocks[blockName] else {
      if Op(rawValue: blockName) != nil {
        report("each_step: '\(blockName)' is an op, not a block; wrap it in a block", at: blockLoc, in: env)
      } else {
        report("each_step: '\(blockName)' is not a block\(suggestion(for: blockName))", at: blockLoc, in: env)
      }
      return nil
    }
    guard let sequence = elaborateOperand(call.operands[1], user: name, env: &env) else { return nil }
    let t = graph[sequence].type
    guard t.rank >= 3 else {
      report(
        "each_step: input must be a sequence [B, T, …] of rank at least 3, found \(t.shapeDescription)",
        at: call.location, in: env)
      return nil
    }
    guard let merged = t.shape[0].multiplied(by: t.shape[1]) else {
      report("each_step: batch × time (\(t.shape[0]) × \(t.shape[1])) overflows", at: call.location, in: env)
      return nil
    }
    let steps = Scope.Steps(batch: t.shape[0], time: t.shape[1])
    let inName = "\(name).input"
    guard claim(inName, at: call.location, in: env) else { return nil }
    let mergedShape = [merged] + t.shape.dropFirst(2)
    let flat = graph.addNode(
      .reshape, operands: [sequence],
      attributes: ReshapeAttributes(shape: Array(mergedShape)),
      results: [(inName, TensorType(t.dtype, mergedShape))], location: call.location)[0]
    globals[inName] = flat
    var blockCall = call
    blockCall.operands = []
    guard
      let out = instantiate(
        block, call: blockCall, name: name, env: &env, stepsOutputName: "\(name).output",
        operandOverride: [flat], steps: steps)
    else { return nil }
    let o = graph[out].type
    guard o.rank >= 1, o.shape[0] == merged else {
      report(
        "each_step: block \(blockName) must keep the merged batch axis \(merged), but returns \(o.shapeDescription)",
        at: call.location, in: env)
      return nil
    }
    let unmerged = [steps.batch, steps.time] + o.shape.dropFirst()
    guard claim(name, at: call.location, in: env) else { return nil }
    let result = graph.addNode(
      .reshape, operands: [out],
      attributes: ReshapeAttributes(shape: Array(unmerged)),
      results: [(name, TensorType(o.dtype, unmerged))], location: call.location)[0]
    globals[name] = result
    return result
  }

  // MARK: Taps

  private mutating func elaborateTap(name: String, call: Call, type: TypeExpr?, location: SourceLocation, env: Env) {
    guard let kind = TapKind(rawValue: call.callee) else {
      let near = TapKind.allCases.map(\.rawValue).first {
        editDistance($0, call.callee) <= max(1, call.callee.count / 3)
      }
      report(
        "unknown tap kind '\(call.callee)'\(near.map { " (did you mean '\($0)'?)" } ?? ""); expected \(TapKind.allCases.map(\.rawValue).joined(separator: ", "))",
        at: call.location)
      return
    }
    guard call.operands.count == kind.operandCount else {
      report(
        "tap \(kind.rawValue) takes \(kind.operandCount) operand\(kind.operandCount == 1 ? "" : "s"), found \(call.operands.count)",
        at: call.location)
      return
    }
    var operands: [ValueID] = []
    for o in call.operands {
      guard case .ref(let n, let loc) = o else {
        report("tap operands must name values, not compute them", at: o.location)
        return
      }
      guard let id = resolve(n, at: loc, env: env) else { return }
      operands.append(id)
    }
    var named: [String: (AttrValue, SourceLocation)] = [:]
    for arg in call.named {
      guard let v = evalAttr(arg.value, env: env) else { return }
      named[arg.name] = (v, arg.location)
    }
    guard let options = checkAttributes(kind.options, named, owner: "tap \(kind.rawValue)", at: call.location, env: env)
    else { return }
    let resultType: TensorType
    do {
      resultType = try kind.inferType(operands, options: options, in: graph)
    } catch {
      report(error.message, at: call.location)
      return
    }
    if let type, let declared = resolveType(type, env: env), declared != resultType {
      report("tap '\(name)' is annotated \(declared) but its type is \(resultType)", at: type.location)
    }
    graph.taps.append(
      Tap(
        name: name, kind: kind, operands: operands, options: options, type: resultType,
        location: location))
  }

  // MARK: Recipes

  private mutating func elaborateRecipe(input: String, call: Call, location: SourceLocation, env: Env) {
    guard let id = graph.inputs.first(where: { graph[$0].name == input }) else {
      let inputs = graph.inputs.map { graph[$0].name }.joined(separator: ", ")
      report("recipe for '\(input)', which is not an input of the graph (inputs: \(inputs))", at: location)
      return
    }
    if graph.recipes.contains(where: { $0.input == input }) {
      report("input '\(input)' already has a recipe", at: location)
      return
    }
    guard let kind = RecipeKind(rawValue: call.callee) else {
      report(
        "unknown recipe kind '\(call.callee)'; expected \(RecipeKind.allCases.map(\.rawValue).joined(separator: ", "))",
        at: call.location)
      return
    }
    guard call.operands.isEmpty else {
      report("recipe \(kind.rawValue) takes only named options", at: call.location)
      return
    }
    var named: [String: (AttrValue, SourceLocation)] = [:]
    for arg in call.named {
      guard let v = evalAttr(arg.value, env: env) else { return }
      named[arg.name] = (v, arg.location)
    }
    guard
      let options = checkAttributes(kind.options, named, owner: "recipe \(kind.rawValue)", at: call.location, env: env)
    else { return }
    do {
      let example = try kind.exampleShape(options)
      let shape = Array(graph[id].type.shape.dropFirst())
      let fits = shape.count == example.count && zip(shape, example).allSatisfy { $0 == $1 || !$0.isStatic }
      guard fits else {
        report(
          "recipe \(kind.rawValue) makes examples \(TensorType(.f32, example).shapeDescription) but input '\(input)' is \(graph[id].type) (batch axis first)",
          at: call.location)
        return
      }
    } catch {
      report(error.message, at: call.location)
      return
    }
    graph.recipes.append(InputRecipe(input: input, kind: kind, options: options))
  }

  // MARK: Attributes and types

  private mutating func evalAttr(_ e: AttrExpr, env: Env) -> AttrValue? {
    switch e {
    case .int(let v, _): return .int(v)
    case .float(let v, _): return .float(v)
    case .bool(let v, _): return .bool(v)
    case .name(let n, _):
      if let v = env.attrs[n] { return v }
      if let v = bindings[n] { return .int(v) }
      if symbols.contains(n) { return .dim(Dim(symbol: n)) }
      return .string(n)
    case .product(let factors, let loc):
      var d = Dim(1)
      for f in factors {
        guard let v = evalAttr(f, env: env) else { return nil }
        let factor: Dim
        switch v {
        case .int(let i): factor = Dim(i)
        case .dim(let s): factor = s
        case .string(let s):
          reportUnknownSize(s, at: f.location, env: env)
          return nil
        default:
          report("only sizes can be multiplied, found \(v.kindName) (\(v))", at: f.location, in: env)
          return nil
        }
        guard let m = d.multiplied(by: factor) else {
          report("size \(d) × \(factor) overflows", at: loc, in: env)
          return nil
        }
        d = m
      }
      return .dimension(d)
    case .list(let items, _):
      var values: [AttrValue] = []
      for i in items {
        guard let v = evalAttr(i, env: env) else { return nil }
        if case .string(let s) = v {
          // Names in lists are sizes (reshape targets).
          reportUnknownSize(s, at: i.location, env: env)
          return nil
        }
        values.append(v)
      }
      return .list(values)
    }
  }

  private mutating func evalDim(_ e: AttrExpr, env: Env) -> Dim? {
    switch evalAttr(e, env: env) {
    case .int(let v)?:
      guard v >= 1 else {
        report("sizes must be positive, found \(v)", at: e.location, in: env)
        return nil
      }
      return Dim(v)
    case .dim(let d)?: return d
    case .string(let s)?:
      reportUnknownSize(s, at: e.location, env: env)
      return nil
    case let other?:
      report("expected a size, found \(other.kindName) (\(other))", at: e.location, in: env)
      return nil
    case nil:
      return nil
    }
  }

  private mutating func resolveType(_ t: TypeExpr, env: Env) -> TensorType? {
    guard let dtype = DType(rawValue: t.dtype) else {
      report(
        "unknown element type '\(t.dtype)'; expected \(DType.allCases.map(\.rawValue).joined(separator: ", "))",
        at: t.location, in: env)
      return nil
    }
    var shape: [Dim] = []
    for d in t.dims {
      guard let dim = evalDim(d, env: env) else { return nil }
      shape.append(dim)
    }
    return TensorType(dtype, shape)
  }

  private mutating func resolveInit(_ e: InitExpr?, role: ParameterRole, env: Env) -> ParameterInit? {
    guard let e else { return .zeros }
    let what = e.name == "uniform" ? "bound" : "std"
    switch (e.name, e.argument) {
    case ("zeros", nil): return .zeros
    case ("ones", nil): return .ones
    case ("uniform", let b?) where b >= 0 && b.isFinite: return .uniform(bound: b)
    case ("normal", let s?) where s >= 0 && s.isFinite: return .normal(std: s)
    case ("zeros", _?), ("ones", _?):
      report("initialiser \(e.name) takes no argument", at: e.location, in: env)
    case ("uniform", nil), ("normal", nil):
      report("initialiser \(e.name) needs a \(what): \(e.name)(\(what))", at: e.location, in: env)
    case ("uniform", let v?), ("normal", let v?):
      report(
        "initialiser \(e.name) needs a finite, non-negative \(what), found \(AttrValue.formatFloat(v))", at: e.location,
        in: env)
    default:
      report(
        "unknown initialiser '\(e.name)'; expected zeros, ones, uniform(bound) or normal(std)", at: e.location, in: env)
    }
    return nil
  }
}

/// Levenshtein distance, for "did you mean" suggestions.
func editDistance(_ a: String, _ b: String) -> Int {
  let a = Array(a.utf8), b = Array(b.utf8)
  if a.isEmpty { return b.count }
  if b.isEmpty { return a.count }
  var previous = Array(0...b.count)
  var current = [Int](repeating: 0, count: b.count + 1)
  for i in 1...a.count {
    current[0] = i
    for j in 1...b.count {
      current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
    }
    swap(&previous, &current)
  }
  return previous[b.count]
}
