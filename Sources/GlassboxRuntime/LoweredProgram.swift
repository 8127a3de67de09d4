import GlassboxIR

extension Executable {
  /// The lowered program as text: the arena's regions, where every value lives, and the nodes
  /// in run order with their kernels and the offsets and sizes (in floats) of what they read
  /// and write. Lanes of a group run side by side, one core each.
  ///
  /// ```
  /// program bilstm: 3 kernels, 2 threads
  /// arena 427216 floats: static 0..<181328 (parameters, inputs, derived weights), planned …
  ///
  /// values
  ///   @41808   +98304  mfcc: f32[1, 768, 128]                    input
  ///   @0       +16384  lstm.weight_ih_l0: f32[128, 128]          parameter
  ///   …
  ///   @378064  +49152  lstm: f32[1, 768, 64]                     buffer, kept (exported)
  ///   @181328  +64     last: f32[1, 64]                          buffer
  ///
  /// program
  ///   lstm lstm (hidden: 32, bidirectional: true)
  ///     kernel lstm lstm
  ///     x                  mfcc @41808 +98304
  ///     …
  ///     result             lstm @378064 +49152
  ///     scratch @181328 +196736
  ///     derived weights @140112 +41216
  ///   select last
  ///     …
  /// ```
  public var loweredDescription: String {
    var out = "program \(graph.name): \(kernels.count) kernels, \(threads) thread\(threads == 1 ? "" : "s")\n"
    out += buffers.description(of: graph) + "\n"
    out += "program\n"
    for step in schedule.steps {
      switch step {
      case .node(let i):
        out += describe(node: i, indent: "  ")
      case .group(let g):
        out += "  group \(g) (\(schedule.groups[g].count) lanes side by side)\n"
        for (l, nodes) in schedule.groups[g].enumerated() {
          out += "    lane \(l)\n"
          for i in nodes { out += describe(node: i, indent: "      ") }
        }
      }
    }
    return out
  }

  /// One node: its op, results and attributes other than the defaults, its kernels (or why it
  /// has none), then each operand and result with its offset and size, and its scratch and
  /// derived regions.
  func describe(node i: Int, indent: String) -> String {
    let node = graph.nodes[i]
    let results = node.results.map { graph[$0].name }.joined(separator: ", ")
    let attributes = Printer.nonDefault(node.attributes, schema: node.op.attributes)
    var out =
      "\(indent)\(node.op.name) \(results)"
      + (attributes.isEmpty ? "" : " (\(attributes.joined(separator: ", ")))") + "\n"
    let more = indent + "  "
    if kernelLabels[i].isEmpty {
      let reason = buffers.storage[node.results[0].index].summary(graph)
      out += "\(more)no kernel: the result is \(reason)\n"
    }
    for label in kernelLabels[i] { out += "\(more)kernel \(label)\n" }
    let names = node.op.operands.names
    var rows: [(role: String, value: ValueID)] = []
    for (k, o) in node.operands.enumerated() {
      let role = k < names.count ? names[k] : "\(names.last ?? "x")\(k - names.count + 1)"
      rows.append((role, o))
    }
    for (k, r) in node.results.enumerated() { rows.append((node.results.count == 1 ? "result" : "result\(k)", r)) }
    let roleWidth = rows.map(\.role.count).max() ?? 0
    for (role, v) in rows {
      out +=
        "\(more)\(role.padding(toLength: roleWidth, withPad: " ", startingAt: 0))  \(graph[v].name) "
        + buffers.location(of: v.index, graph) + "\n"
    }
    if !buffers.scratch[i].isEmpty {
      out += "\(more)scratch @\(buffers.scratch[i].lowerBound) +\(buffers.scratch[i].count)\n"
    }
    if buffers.persistent[i] > 0 {
      // A pooling that computes its convolution uses the convolution's.
      let pooled = Lowering.pooledConvolution(node, graph).map { graph.nodes[$0] }
      out +=
        "\(more)derived weights @\(buffers.persistent[i]) +\(Lowering.persistent(pooled ?? node, graph))"
        + (buffers.sharesForward[i] ? " (the forward convolution's)" : pooled == nil ? "" : " (the convolution's)")
        + "\n"
    }
    return out
  }
}

extension BufferAssignment {
  /// `@offset +floats`, and the row stride of a value whose rows are not contiguous.
  func location(of v: Int, _ graph: Graph) -> String {
    guard offsets[v] >= 0 else {
      return storage[v] == .derivedOnly ? "(no slot: derived from the caller's tensor)" : "(no storage)"
    }
    var s = "@\(offsets[v]) +\(Self.elementCount(graph.values[v].type))"
    if let stride = rowStrides[v] { s += ", rows \(stride) apart" }
    return s
  }

  /// The arena's regions, then every value with storage (and every parameter with no slot):
  /// offset, size, name, type and how it got its storage.
  func description(of graph: Graph) -> String {
    var out =
      "arena \(count) floats: static 0..<\(staticCount) (parameters, inputs, derived weights), "
      + "planned \(staticCount)..<\(count); \(unsharedCount) if no buffer were shared\n\nvalues\n"
    var exported = Set(graph.outputs.map(\.value.index))
    for t in graph.taps { for o in t.operands { exported.insert(o.index) } }
    // A parameter with no slot is listed too, where it would be, without an offset.
    let rows = graph.values.indices.filter { offsets[$0] >= 0 || storage[$0] == .derivedOnly }.map { v in
      (
        location: offsets[v] >= 0 ? "@\(offsets[v])" : "-", size: "+\(Self.elementCount(graph.values[v].type))",
        value: "\(graph.values[v].name): \(graph.values[v].type)",
        storage: storage[v].summary(graph)
          + (rowStrides[v].map { ", rows \($0) apart" } ?? "") + (exported.contains(v) ? ", kept (exported)" : "")
      )
    }
    let w0 = rows.map(\.location.count).max() ?? 0, w1 = rows.map(\.size.count).max() ?? 0
    let w2 = rows.map(\.value.count).max() ?? 0
    for r in rows {
      out +=
        "  " + r.location.padding(toLength: w0, withPad: " ", startingAt: 0) + "  "
        + r.size.padding(toLength: w1, withPad: " ", startingAt: 0) + "  "
        + r.value.padding(toLength: w2, withPad: " ", startingAt: 0) + "  " + r.storage + "\n"
    }
    return out
  }
}

extension BufferAssignment.Storage {
  /// `parameter`, `alias of x`, `in place over y`, ….
  func summary(_ graph: Graph) -> String {
    func name(_ v: Int) -> String { graph.values[v].name }
    switch self {
    case .parameter: return "parameter"
    case .derivedOnly: return "parameter, no slot (kernels derive theirs from the caller's tensor)"
    case .input: return "input"
    case .buffer: return "buffer"
    case .unused: return "unused"
    case .alias(let v): return "alias of \(name(v))"
    case .stepView(let v, let start, _):
      let width = graph.values[v].type.shape.last?.staticValue ?? 1
      return "step \(start / Swift.max(width, 1)) of \(name(v)), a view"
    case .piece(let v, let start, _): return "piece of \(name(v)) at +\(start)"
    case .stack(let v): return "stack in the storage of \(name(v))"
    case .inPlace(let v): return "in place over \(name(v))"
    case .pooled(let v): return "computed row by row inside the kernel of the pooling into \(name(v)), no storage"
    case .mappedInput(let v):
      return "computed a chunk of rows at a time inside the kernel of the linear layer into \(name(v)), no storage"
    }
  }
}
