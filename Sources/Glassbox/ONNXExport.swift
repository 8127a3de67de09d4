import Foundation
import GlassboxAnalysis
import GlassboxFormat
import GlassboxIR
import GlassboxONNX
import GlassboxPasses

/// How a model is written as ONNX.
public struct ONNXExportOptions: Sendable {
  /// Taps written as outputs, by name; nil for every tap of the model, empty for none.
  public var taps: [String]?
  /// Opset of the default domain (13 to 21).
  public var opset: Int
  /// Sizes for symbols other than the batch `B` (`["T": 16]`); `B` stays symbolic unless
  /// bound here.
  public var bindings: [String: Int]

  public init(taps: [String]? = nil, opset: Int = 17, bindings: [String: Int] = [:]) {
    self.taps = taps
    self.opset = opset
    self.bindings = bindings
  }
}

/// What an ONNX export wrote.
public struct ONNXExportSummary: Sendable {
  /// The ONNX file's bytes.
  public var bytes: [UInt8]
  /// Nodes in the ONNX graph.
  public var nodeCount: Int
  /// Initializers (weights and constants).
  public var initializerCount: Int
  /// The graph's inputs (`target` among them when a tap explains a class).
  public var inputs: [String]
  /// The graph's outputs: the model's, then each tap's (`gradcam`, `gradcam.normalized`, …).
  public var outputs: [String]
  /// The taps written, with their outputs by role.
  public var taps: [(name: String, kind: TapKind, outputs: [String: String])]
}

extension Model {
  /// The sizes symbols left open are bound to while taps are lowered (`B` first): primes no
  /// real size is a multiple of, so the exporter can write each size they divide back as the
  /// symbol. They only ever size tensors there: taps reduce over channels, positions and
  /// frames, never over the batch, and the one lowering that counts steps (an LSTM's
  /// backward, unrolled) needs them bound, so no constant value depends on them (the agreement
  /// tests run batches of 1, 2 and 3 and clips of 3 and 5 frames through one file).
  static let symbolSentinels = [1_000_003, 1_000_033, 1_000_037]

  /// Whether an `lstm` node depends on `value` (a gradient at it flows back through the LSTM).
  func reachesLSTM(from value: ValueID) -> Bool {
    var reached: Set<Int> = [value.index]
    for node in graph.nodes where node.operands.contains(where: { reached.contains($0.index) }) {
      if node.op == .lstm { return true }
      for r in node.results { reached.insert(r.index) }
    }
    return false
  }

  /// The metadata key holding the model's graph, labels and provenance (a `.model` message
  /// without weights, base64): `Model(contentsOf:)` on an exported file gives back this graph.
  public static let onnxGraphKey = "glassbox.graph"
  /// The metadata key holding the values of parameters no node of the export reads, by name.
  static let onnxUnreadWeightsKey = "glassbox.unread_weights"

  /// The model as an ONNX model: the inference graph with the selected taps lowered into
  /// outputs under their names (`NAME`, `NAME.normalized`, `NAME.upsampled` as a `Resize`,
  /// `NAME.relevance`), backward slices written as standard ONNX operators, and, when a tap
  /// explains a class, an input `target: int64 [B]` (-1: the row's predicted class, chosen
  /// in the graph). Symbols not bound by `options` stay symbolic (`B`, and `T` unless a tap
  /// differentiates through an LSTM, whose backward is unrolled over the steps). Taps that run
  /// copies of their input (`TapKind.runsCopies`) graft the forward again at a multiple of the
  /// batch, which must then be bound.
  /// Labels, recipes, provenance and the taps are in `metadata_props`.
  public func onnx(_ options: ONNXExportOptions = ONNXExportOptions()) throws(GlassboxError) -> ONNXExportSummary {
    // Symbols left open stay symbolic (each bound to a sentinel while lowering).
    var bindings = options.bindings
    let unknown = bindings.keys.filter { !graph.symbols.contains($0) }.sorted()
    guard unknown.isEmpty else {
      throw GlassboxError(
        .input, file: path,
        "bindings name \(unknown.joined(separator: ", ")), not a symbol of the "
          + "model (its symbols: "
          + (graph.symbols.isEmpty ? "none" : graph.symbols.joined(separator: ", ")) + ")")
    }
    // Symbols other than B stay open too (`T`), unless they size a parameter, or a selected
    // tap differentiates through an LSTM: that backward pass is unrolled over the steps.
    let selected = options.taps ?? graph.taps.map(\.name)
    for name in selected { _ = try tap(named: name) }
    let open = graph.symbols.filter { bindings[$0] == nil }
    let unrolled = graph.taps.contains {
      selected.contains($0.name) && $0.kind.needsGradient && reachesLSTM(from: $0.operands[0])
    }
    let sizing = Set(graph.parameters.flatMap { $0.type.shape.flatMap(\.symbols) })
    let mustBind = open.filter { $0 != "B" && (unrolled || sizing.contains($0)) }
    guard mustBind.isEmpty else {
      throw GlassboxError(
        .input, file: path,
        "export: bind \(mustBind.joined(separator: ", ")) (a symbol that sizes a "
          + "parameter, or the steps of an LSTM a tap's backward pass is unrolled through, cannot "
          + "stay symbolic), e.g. " + mustBind.map { "\($0)=16" }.joined(separator: " "))
    }
    guard open.count <= Model.symbolSentinels.count else {
      throw GlassboxError(
        .input, file: path,
        "export: bind some of \(open.joined(separator: ", ")); at most "
          + "\(Model.symbolSentinels.count) symbols stay symbolic")
    }
    // Taps that run copies of their input stack them along the batch, so the export's batch
    // is a number (the copies' graph is the model bound at a multiple of it).
    let copying = graph.taps.filter { selected.contains($0.name) && $0.kind.runsCopies }.map(\.name)
    let batchAxis = graph.inputs.first.flatMap { graph[$0].type.shape.first }
    if !copying.isEmpty, let batch = batchAxis?.symbols.first, options.bindings[batch] == nil {
      throw GlassboxError(
        .input, file: path,
        "export: bind \(batch) (taps \(copying.joined(separator: ", ")) stack copies of the input "
          + "along the batch, so the exported batch is fixed), e.g. \(batch)=1")
    }
    var sentinels: [String: Int] = [:]
    let batchFirst = open.filter { $0 == "B" } + open.filter { $0 != "B" }.sorted()
    for (symbol, sentinel) in zip(batchFirst, Model.symbolSentinels) {
      bindings[symbol] = sentinel
      sentinels[symbol] = sentinel
    }
    let bound = try withGlassboxErrors(file: path) { try graph.bound(bindings) }
    let parameters = try parameterValues(for: bound)

    // Taps lowered into outputs.
    var module = Module(graph: bound, weights: parameters)
    var lowered: [LowerTaps.Lowered] = []
    if selected.isEmpty {
      module.graph.taps = []
    } else {
      let target = bound.value(named: "target") == nil ? "target" : "tap.target"
      (module, lowered) = try withGlassboxErrors(file: path) {
        try LowerTaps.apply(
          to: module,
          options: .init(
            taps: selected, targetInput: target,
            rebatch: copying.isEmpty ? nil : LowerTaps.rebatcher(unbound: graph, bindings: bindings)))
      }
    }
    // Upsampled maps become a Resize of the normalised map (what the matrix products of the
    // lowering compute), so the products and their interpolation matrices are swept.
    var resized: [String: Pair] = [:]
    var tapOfOutput: [String: String] = [:]
    for t in lowered {
      for name in t.outputs.values { tapOfOutput[name] = t.name }
      guard let up = t.outputs["upsampled"], let normalized = t.outputs["normalized"],
        let source = module.graph.outputs.first(where: { $0.name == normalized })?.value,
        let i = module.graph.outputs.firstIndex(where: { $0.name == up })
      else { continue }
      let shape = module.graph[module.graph.outputs[i].value].type.shape
      resized[up] = Pair(shape[shape.count - 2].staticValue ?? 0, shape[shape.count - 1].staticValue ?? 0)
      module.graph.outputs[i].value = source
    }
    _ = EliminateDeadCode().run(&module)
    // Weights: the model's own parameters (its state, read or not) and what the lowering
    // added that nodes read.
    let own = Set(graph.parameters.map(\.name))
    let used = Set(module.graph.nodes.flatMap { $0.operands.map(\.index) } + module.graph.outputs.map(\.value.index))
    let weights = module.weights.filter { name, _ in
      own.contains(name) || module.graph.parameters.contains { $0.name == name && used.contains($0.value.index) }
    }
    var exportOptions = ONNXExporter.Options(
      opset: options.opset, symbolSentinels: sentinels, resized: resized,
      tapOfOutput: tapOfOutput,
      keptParameters: own,
      producer: ("glassbox", glassboxVersion))
    // The graph as stored: the symbols other than B bound, as the weights are.
    let described =
      options.bindings.isEmpty
      ? graph
      : try withGlassboxErrors(file: path) { try graph.bound(options.bindings) }
    exportOptions.metadata = try onnxMetadata(described, lowered)
    exportOptions.unreadParametersKey = Model.onnxUnreadWeightsKey
    let result: ONNXExporter.Result
    do {
      result = try ONNXExporter.export(module.graph, weights: weights, options: exportOptions)
    } catch {
      throw GlassboxError(error.op == nil ? .input : .unsupported, file: path, error.message)
    }
    let g = module.graph
    return ONNXExportSummary(
      bytes: result.bytes, nodeCount: result.nodeCount,
      initializerCount: result.initializerCount,
      inputs: g.inputs.map { g[$0].name }, outputs: g.outputs.map(\.name),
      taps: lowered.map { ($0.name, $0.kind, $0.outputs) })
  }

  /// Writes `onnx(options)` to `path` through a temporary file renamed into place.
  @discardableResult
  public func exportONNX(
    to path: String, _ options: ONNXExportOptions = ONNXExportOptions()
  ) throws(GlassboxError)
    -> ONNXExportSummary
  {
    let summary = try onnx(options)
    do {
      try writeAtomically(Data(summary.bytes), to: path)
    } catch {
      throw GlassboxError(.file, file: path, error.description)
    }
    return summary
  }

  /// `metadata_props`: what a user of the ONNX file wants to read (labels, recipes,
  /// provenance, the taps' outputs) and the graph itself for `glassbox import`.
  func onnxMetadata(
    _ graph: Graph, _ lowered: [LowerTaps.Lowered]
  ) throws(GlassboxError)
    -> [(key: String, value: String)]
  {
    var out: [(key: String, value: String)] = []
    out.append(("glassbox.version", glassboxVersion))
    out.append(("glassbox.labels", JSONValue.array(labels.map(JSONValue.string)).text))
    let recipes = graph.recipes.map { r in
      let options = Printer.nonDefault(r.options, schema: r.kind.options).joined(separator: ", ")
      return (r.input, JSONValue.string("\(r.kind.rawValue)(\(options))"))
    }
    out.append(("glassbox.recipes", JSONValue.object(recipes).text))
    var weights: JSONValue = .null
    switch provenance.weights {
    case .unknown: break
    case .initialized(let seed): weights = .object([("initSeed", .string(String(seed)))])
    case .imported(let sha): weights = .object([("importedSHA256", .string(sha))])
    }
    let p = provenance
    out.append(
      (
        "glassbox.provenance",
        JSONValue.object([
          ("producer", .string(p.producer)), ("producerVersion", .string(p.producerVersion)),
          ("specSHA256", .string(p.specSHA256)),
          ("bindings", .object(p.bindings.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
          ("weights", weights),
        ]).text
      ))
    let taps = lowered.map { t in
      var fields: [(String, JSONValue)] = [("name", .string(t.name)), ("kind", .string(t.kind.rawValue))]
      fields.append(("outputs", .object(t.outputs.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
      if let s = t.scope { fields.append(("scope", .string(s))) }
      fields.append(("perStep", .bool(t.perStep)))
      if let target = t.targetInput { fields.append(("target", .string(target))) }
      return JSONValue.object(fields)
    }
    out.append(("glassbox.taps", JSONValue.array(taps).text))
    let description = try withGlassboxErrors(file: path) {
      try ModelFile.encodeDescription(graph: graph, labels: labels, provenance: provenance)
    }
    out.append((Model.onnxGraphKey, Data(description).base64EncodedString()))
    return out
  }
}

extension Model {
  /// The graph, weights, labels and provenance of a Glassbox export (`onnx`), from its
  /// metadata and initializers; nil for any other ONNX file.
  static func exportedONNX(
    _ path: String, bindings: [String: Int]
  ) throws(GlassboxError)
    -> (graph: Graph, weights: [Tensor], labels: [String], provenance: Provenance)?
  {
    let contents: ONNXExportedContents?
    do {
      contents = try ONNXImporter.exportedContents(contentsOf: path, key: onnxGraphKey)
    } catch {
      throw GlassboxError.wrapping(error, file: path)
    }
    guard let contents, let text = contents.metadata[onnxGraphKey] else { return nil }
    guard let data = Data(base64Encoded: text) else {
      throw GlassboxError(.model, file: path, "metadata '\(onnxGraphKey)' is not base64")
    }
    let d = try withGlassboxErrors(file: path) { try ModelFile.decodeDescription([UInt8](data), fileName: path) }
    var unread: [String: [Double]] = [:]
    if let json = contents.metadata[onnxUnreadWeightsKey] {
      guard let value = try? JSONValue(parsing: Array(json.utf8)), let pairs = value.objectValue else {
        throw GlassboxError(.model, file: path, "metadata '\(onnxUnreadWeightsKey)' is not a JSON object")
      }
      for (name, v) in pairs { unread[name] = v.arrayValue?.compactMap(\.doubleValue) }
    }
    var weights: [Tensor] = []
    var problems: [String] = []
    for p in d.graph.parameters {
      let shape = p.type.shape.map { $0.staticValue ?? -1 }
      var t = contents.initializers[p.name]
      if t == nil, let values = unread[p.name] {
        switch p.type.dtype {
        case .f32: t = Tensor(shape: shape, f32: values.map(Float.init))
        case .f64: t = Tensor(shape: shape, f64: values)
        case .i64: t = Tensor(shape: shape, storage: .i64(values.map { Int64($0) }))
        case .bool: t = Tensor(shape: shape, storage: .bool(values.map { $0 != 0 }))
        }
      }
      guard let t else {
        problems.append("parameter '\(p.name)' has no initializer")
        continue
      }
      guard t.type == p.type, t.count == shape.reduce(1, *) else {
        problems.append("parameter '\(p.name)' is \(p.type) but its initializer is \(t.type)")
        continue
      }
      weights.append(t)
    }
    guard problems.isEmpty else { throw GlassboxError(.model, file: path, problems.joined(separator: "; ")) }
    var graph = d.graph
    if !bindings.isEmpty {
      let unknown = bindings.keys.filter { !graph.symbols.contains($0) }.sorted()
      guard unknown.isEmpty else {
        throw GlassboxError(
          .input, file: path,
          "bindings name \(unknown.joined(separator: ", ")), not a symbol of the model")
      }
      graph = try withGlassboxErrors(file: path) { try graph.bound(bindings) }
    }
    return (graph, weights, d.labels, d.provenance)
  }
}
