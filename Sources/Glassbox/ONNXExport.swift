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
  /// The size the batch symbol is bound to while taps are lowered: a prime no real size is a
  /// multiple of, so the exporter can write each size it divides back as `B`. The batch size
  /// only ever sizes tensors there: taps reduce over channels, positions and frames, never
  /// over the batch, so no constant value depends on it (the agreement tests run batches of
  /// 1, 2 and 3 through one file).
  static let batchSentinel = 1_000_003

  /// The metadata key holding the model's graph, labels and provenance (a `.model` message
  /// without weights, base64): `Model(contentsOf:)` on an exported file gives back this graph.
  public static let onnxGraphKey = "glassbox.graph"
  /// The metadata key holding the values of parameters no node of the export reads, by name.
  static let onnxUnreadWeightsKey = "glassbox.unread_weights"

  /// The model as an ONNX model: the inference graph with the selected taps lowered into
  /// outputs under their names (`NAME`, `NAME.normalized`, `NAME.upsampled` as a `Resize`,
  /// `NAME.relevance`), backward slices written as standard ONNX operators, and, when a tap
  /// explains a class, an input `target: int64 [B]` (-1: the row's predicted class, chosen
  /// in the graph). The batch `B` stays symbolic; every other symbol must be bound.
  /// Labels, recipes, provenance and the taps are in `metadata_props`.
  public func onnx(_ options: ONNXExportOptions = ONNXExportOptions()) throws(GlassboxError) -> ONNXExportSummary {
    // Symbols: B stays symbolic (a sentinel while lowering); the others need sizes.
    var bindings = options.bindings
    let unknown = bindings.keys.filter { !graph.symbols.contains($0) }.sorted()
    guard unknown.isEmpty else {
      throw GlassboxError(
        .input, file: path,
        "bindings name \(unknown.joined(separator: ", ")), not a symbol of the "
          + "model (its symbols: "
          + (graph.symbols.isEmpty ? "none" : graph.symbols.joined(separator: ", ")) + ")")
    }
    let open = graph.symbols.filter { $0 != "B" && bindings[$0] == nil }
    guard open.isEmpty else {
      throw GlassboxError(
        .input, file: path,
        "export: bind \(open.joined(separator: ", ")) (only the batch B stays "
          + "symbolic in the ONNX graph), e.g. " + open.map { "\($0)=16" }.joined(separator: " "))
    }
    var sentinels: [String: Int] = [:]
    if graph.symbols.contains("B"), bindings["B"] == nil {
      bindings["B"] = Model.batchSentinel
      sentinels["B"] = Model.batchSentinel
    }
    let bound = try withGlassboxErrors(file: path) { try graph.bound(bindings) }
    let parameters = try parameterValues(for: bound)

    // Taps lowered into outputs.
    let selected = options.taps ?? bound.taps.map(\.name)
    for name in selected { _ = try tap(named: name) }
    var module = Module(graph: bound, weights: parameters)
    var lowered: [LowerTaps.Lowered] = []
    if selected.isEmpty {
      module.graph.taps = []
    } else {
      let target = bound.value(named: "target") == nil ? "target" : "tap.target"
      (module, lowered) = try withGlassboxErrors(file: path) {
        try LowerTaps.apply(to: module, options: .init(taps: selected, targetInput: target))
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
