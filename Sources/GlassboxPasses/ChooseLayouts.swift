import GlassboxIR

/// Chooses each image value's layout: plain NCHW, or channel-blocked NCHW16c (`[N, C/16, H, W,
/// 16]`), where convolutions broadcast inputs against packed weight vectors without im2col or a
/// per-call copy of their input. Convolutions the blocked kernels take (ungrouped, parameter
/// weights, a multiple of 16 output channels) get `layout: blocked`, reading a blocked input, or
/// a plain one where its channels are no multiple of 16 (a network's RGB stem, read in place);
/// max pooling and elementwise ops whose operands are all blocked stay blocked. Conversions are
/// inserted only where a value crosses to an op that needs the other layout — a plain input of
/// 16·k channels or a plain residual of a blocked convolution (`to_blocked`), an op without a
/// blocked kernel, a graph output or a tap (`from_blocked`) — and each value is converted at
/// most once, whatever reads it.
///
/// ```
/// a = conv2d(p, W1, b1, activation: relu)         p.blocked = to_blocked(p)
/// z = conv2d(a, W2, b2, p, activation: relu)  →   a.blocked = conv2d(p.blocked, W1, b1, activation: relu, layout: blocked)
/// g = global_avg_pool2d(z)                         z.blocked = conv2d(a.blocked, W2, b2, p.blocked, activation: relu, layout: blocked)
///                                                  z = from_blocked(z.blocked)
///                                                  g = global_avg_pool2d(z)
/// ```
/// A converted value keeps its name; its blocked form is `NAME.blocked`. Backward ops (a tap's
/// Grad-CAM, lowered before this pass) read the plain forms, so explanations see the same tensors.
/// Runs after the fusions (so the epilogues are in the convolutions) and before dead-code
/// elimination (which removes forms nothing reads).
public struct ChooseLayouts: Pass {
  public let name = "choose-layouts"
  /// Whether convolutions are blocked at all; off, the pass changes nothing. The runtime says
  /// where blocked convolutions are the faster (`Executable.blockedLayouts`).
  public var blockConvolutions: Bool

  public init(blockConvolutions: Bool) { self.blockConvolutions = blockConvolutions }

  public func run(_ module: inout Module) -> Bool {
    let g = module.graph
    guard blockConvolutions, g.nodes.contains(where: { blocks($0, in: g) }) else { return false }
    // Both forms of a value, by the new graph's value index: a blocked value's plain form and a
    // plain value's blocked form, once made.
    var plainForm: [Int: ValueID] = [:], blockedForm: [Int: ValueID] = [:]
    // The new graph's blocked values (a rank-5 value may be plain: a clip [B, T, C, H, W]).
    var blockedValues = Set<Int>()
    func isBlocked(_ v: ValueID) -> Bool { blockedValues.contains(v.index) }
    /// Records `p` and `b` as the plain and blocked forms of one value.
    func pair(plain p: ValueID, blocked b: ValueID) {
      plainForm[b.index] = p
      blockedForm[p.index] = b
      blockedValues.insert(b.index)
    }
    func plain(_ v: ValueID, _ graph: inout Graph) -> ValueID {
      guard isBlocked(v) else { return v }
      if let p = plainForm[v.index] { return p }
      if let t = graph.producer(of: v), graph[t].op == .toBlocked { return graph[t].operands[0] }
      let blockedName = graph[v].name
      let name =
        blockedName.hasSuffix(".blocked") ? String(blockedName.dropLast(".blocked".count)) : blockedName + ".plain"
      let type = try! Op.fromBlocked.inferTypes([graph[v].type], NoAttributes().encoded)[0]
      let p = graph.addNode(.fromBlocked, operands: [v], attributes: NoAttributes().encoded, results: [(name, type)])[0]
      pair(plain: p, blocked: v)
      return p
    }
    func blocked(_ v: ValueID, _ graph: inout Graph) -> ValueID {
      if isBlocked(v) { return v }
      if let b = blockedForm[v.index] { return b }
      if let f = graph.producer(of: v), graph[f].op == .fromBlocked {
        // Written as from_blocked: its operand is the blocked form.
        pair(plain: v, blocked: graph[f].operands[0])
        return graph[f].operands[0]
      }
      let type = try! Op.toBlocked.inferTypes([graph[v].type], NoAttributes().encoded)[0]
      let b = graph.addNode(
        .toBlocked, operands: [v], attributes: NoAttributes().encoded, results: [(graph[v].name + ".blocked", type)])[0]
      pair(plain: v, blocked: b)
      return b
    }
    /// The node with blocked results (its operands already chosen): added, its results forwarded.
    func addBlocked(_ node: Node, attributes: Attributes, _ graph: inout Graph) -> Rewrite {
      let types = try! node.op.inferTypes(node.operands.map { graph[$0].type }, attributes)
      let ids = graph.addNode(
        node.op, operands: node.operands, attributes: attributes,
        results: zip(node.results, types).map { (g[$0].name + ".blocked", $1) }, location: node.location)
      blockedValues.formUnion(ids.map(\.index))
      return .forward(ids)
    }

    var rebuilt = g.rewritten { node, newGraph in
      var node = node
      // The node's operands are the new graph's; its results still the old graph's.
      if let original = node.results.first.flatMap({ g.producer(of: $0) }), blocks(g[original], in: g) {
        // An input of 16·k channels is read blocked; others (RGB) plain, as they are.
        if newGraph[node.operands[0]].type.shape[1].staticValue.map({ $0 % 16 == 0 }) ?? false {
          node.operands[0] = blocked(node.operands[0], &newGraph)
        }
        if node.operands.count > 3 { node.operands[3] = blocked(node.operands[3], &newGraph) }
        for i in 1..<min(node.operands.count, 3) { node.operands[i] = plain(node.operands[i], &newGraph) }
        var a = ConvolutionAttributes(of: node)
        a.layout = .blocked
        return addBlocked(node, attributes: a.encoded, &newGraph)
      }
      guard node.operands.contains(where: isBlocked) else { return .keep }
      // Elementwise ops without broadcasting compute the same in either layout.
      let first = newGraph[node.operands[0]].type
      let keepsBlocked =
        (node.op == .maxPool2d && node.operands.count == 1)
        || (node.op.isElementwise && node.op != .dropout && node.results.count == 1
          && node.operands.allSatisfy { isBlocked($0) && newGraph[$0].type == first })
      if keepsBlocked { return addBlocked(node, attributes: node.attributes, &newGraph) }
      node.operands = node.operands.map { plain($0, &newGraph) }
      return .replace(node)
    }
    // The graph's edges read plain values.
    for i in rebuilt.outputs.indices { rebuilt.outputs[i].value = plain(rebuilt.outputs[i].value, &rebuilt) }
    for t in rebuilt.taps.indices {
      rebuilt.taps[t].operands = rebuilt.taps[t].operands.map { plain($0, &rebuilt) }
    }
    module.graph = rebuilt
    return true
  }

  /// Whether a node is a convolution this pass blocks: plain still, ungrouped, with parameter
  /// weights (the kernel packs them once), a multiple of 16 output channels and a static number
  /// of input channels.
  private func blocks(_ node: Node, in g: Graph) -> Bool {
    guard node.op == .conv2d else { return false }
    let a = ConvolutionAttributes(of: node)
    guard a.layout == .plain, a.geometry.groups == 1, g[node.operands[0]].type.rank == 4,
      case .parameter = g[node.operands[1]].origin, g[node.operands[0]].type.shape[1].staticValue != nil,
      let cout = g[node.operands[1]].type.shape[0].staticValue
    else { return false }
    return cout % 16 == 0
  }
}
