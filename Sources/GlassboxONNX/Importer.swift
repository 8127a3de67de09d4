import Foundation
import GlassboxIR

/// An ONNX model as a Glassbox graph and its weights.
public struct ONNXImport: Sendable {
  /// The checked graph: ONNX values under their spec names (`ONNXNames`), initializers as
  /// parameters, a dynamic batch dimension as the symbol `B`.
  public var graph: Graph
  /// A value per parameter, in `graph.parameters` order.
  public var weights: [Tensor]
  /// Each ONNX value name that stands in the graph → the graph value's name (one value may
  /// stand for several ONNX names: `Identity` and `Dropout` pass their input through).
  public var valueNames: [String: String]
  /// The opset of the default domain (`ai.onnx`).
  public var opset: Int
  /// `producer_name producer_version` (`pytorch 2.13.0`).
  public var producer: String
  /// Things a user may want to know (a weight stored transposed, a batch size fixed in the file).
  public var notes: [String]

  /// The ONNX names whose spec names are spelt differently, as `(onnx, spec)` pairs in the
  /// graph's value order: the mapping `check --print` shows.
  public var renamed: [(onnx: String, spec: String)] {
    var order: [String: Int] = [:]
    for (i, v) in graph.values.enumerated() { order[v.name] = i }
    return valueNames.filter { $0.key != $0.value && order[$0.value] != nil }
      .sorted { (order[$0.value] ?? 0, $0.key) < (order[$1.value] ?? 0, $1.key) }
      .map { (onnx: $0.key, spec: $0.value) }
  }

  /// The graph value an ONNX name stands for: its recorded spec name, or its readable form.
  public func valueName(forONNXName name: String) -> String? {
    if let v = valueNames[name] { return v }
    let readable = ONNXNames.readable(name)
    return graph.value(named: readable) != nil ? readable : nil
  }
}

/// Imports ONNX models (opsets 6 to 21 of the default domain).
///
/// Each node becomes Glassbox ops, or folds away when its value is known at import time
/// (`Constant`, `Shape`, `Gather` on shapes, `Cast`, `Unsqueeze`, `Concat` of shape values and
/// the rest of torch.onnx's shape arithmetic). An operator without a Glassbox form is listed
/// with every other one in one `ONNXError`; nothing in a file makes the importer crash.
public enum ONNXImporter {
  /// The opsets of the default domain the importer knows the operators of.
  public static let opsets = 6...21

  /// Whether `path` names an ONNX model, by its extension.
  public static func isONNXFile(_ path: String) -> Bool { path.lowercased().hasSuffix(".onnx") }

  /// Imports the model at `path`; external data is read from the file's folder. `bindings`
  /// size symbols (`B`, or a `dim_param`'s symbol) at import.
  public static func importModel(
    contentsOf path: String, bindings: [String: Int] = [:]
  ) throws(ONNXError)
    -> ONNXImport
  {
    let bytes = try ONNXFile.bytes(of: path)
    let directory = (path as NSString).deletingLastPathComponent
    let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
    return try importModel(
      bytes: bytes, fileName: path, directory: directory.isEmpty ? "." : directory,
      defaultName: stem, bindings: bindings)
  }

  /// Imports a model from its bytes; `fileName` names it in errors. External data is refused
  /// unless `directory` says where the model's folder is.
  public static func importModel(
    bytes: [UInt8], fileName: String = "model.onnx", directory: String? = nil,
    defaultName: String = "model", bindings: [String: Int] = [:]
  ) throws(ONNXError)
    -> ONNXImport
  {
    let model = try ONNXFile.model(bytes, file: fileName)
    var importer = try Importer(
      model: model, context: ONNXFile.Context(file: fileName, directory: directory),
      defaultName: defaultName, bindings: bindings)
    return try importer.run()
  }
}

/// Why one node (or one tensor) cannot be imported; the importer adds the node's name.
enum ImportFailure: Error {
  /// An operator type (or domain) without a Glassbox form at all.
  case unsupportedOperator
  /// Known operator, form without a Glassbox equivalent.
  case unsupported(String)
  /// Malformed model.
  case invalid(String)
}

/// What an ONNX value is during import.
enum Entry {
  /// A value of the graph.
  case value(ValueID)
  /// Known at import.
  case constant(Constant)
  /// `ConstantOfShape` of a shape with symbols (a dynamic batch): every element `value`.
  case fill(Float, DType, [Dim])
}

/// The state of one import: the graph built so far and what each ONNX name stands for.
struct Importer {
  let model: Onnx_ModelProto
  let context: ONNXFile.Context
  let opset: Int
  var graph: Graph
  var weights: [Tensor] = []
  var env: [String: Entry] = [:]
  var names = NameTable()
  var problems: [ONNXError.Problem] = []
  var notes: [String] = []
  /// Constants made into graph values, by ONNX name (a weight used twice is one parameter).
  var materialized: [String: ValueID] = [:]
  /// Weights stored in another layout than the file's (a MatMul operand transposed to a linear
  /// layer's `[out, in]`), by layout and ONNX name.
  var derivedWeights: [String: ValueID] = [:]
  /// Symbols by ONNX `dim_param`.
  var symbols: [String: String] = [:]
  let bindings: [String: Int]
  /// ONNX names read by some node or returned by the graph.
  var used: Set<String> = []
  /// The nodes that read each ONNX name, by index.
  var readers: [String: [Int]] = [:]
  /// Nodes another node's conversion took in (the `Add` of a bias after a `MatMul`).
  var absorbed: Set<Int> = []
  /// Recurrent layers met so far under each name prefix (`lstm` → the next is `_l1`).
  var layerCounts: [String: Int] = [:]
  /// Parameters that must be buffers (batch-norm statistics), by ONNX name.
  var bufferNames: Set<String> = []

  init(
    model: Onnx_ModelProto, context: ONNXFile.Context, defaultName: String, bindings: [String: Int]
  )
    throws(ONNXError)
  {
    self.model = model
    self.context = context
    self.bindings = bindings
    var version: Int?
    for o in model.opsetImport where o.domain.isEmpty || o.domain == "ai.onnx" { version = Int(o.version) }
    if model.opsetImport.isEmpty && model.irVersion < 3 { version = 1 }
    guard let version else {
      throw ONNXError(
        file: context.file,
        "imports no opset of the default ONNX domain (ai.onnx); opsets: "
          + model.opsetImport.map { "\($0.domain.isEmpty ? "ai.onnx" : $0.domain) \($0.version)" }
          .joined(separator: ", "))
    }
    guard ONNXImporter.opsets.contains(version) else {
      throw ONNXError(
        file: context.file,
        "uses opset \(version) of ai.onnx; the importer reads opsets "
          + "\(ONNXImporter.opsets.lowerBound) to \(ONNXImporter.opsets.upperBound)")
    }
    opset = version
    let name = ONNXNames.readable(model.graph.name.isEmpty ? defaultName : model.graph.name)
      .replacingOccurrences(of: ".", with: "_")
    graph = Graph(name: name)
  }

  // MARK: The whole import

  mutating func run() throws(ONNXError) -> ONNXImport {
    let g = model.graph
    for (k, n) in g.node.enumerated() {
      for i in Set(n.input) where !i.isEmpty {
        used.insert(i)
        readers[i, default: []].append(k)
      }
    }
    for o in g.output { used.insert(o.name) }

    // Names: inputs, initializers, node outputs, in that order, so clashes resolve the same way.
    let initializerNames = Set(g.initializer.map(\.name))
    for i in g.input where !initializerNames.contains(i.name) { _ = names.claim(i.name) }
    for t in g.initializer { _ = names.claim(t.name) }
    for n in g.node { for o in n.output where !o.isEmpty { _ = names.claim(o) } }

    // Initializers are constants until something needs them as graph values.
    for t in g.initializer {
      do {
        env[t.name] = .constant(try ONNXFile.constant(t, what: "initializer '\(t.name)'", context: context))
      } catch {
        record(error, node: nil, opType: nil)
      }
    }
    if !g.sparseInitializer.isEmpty {
      problems.append(.init(.unsupportedForm, "the graph has \(g.sparseInitializer.count) sparse initializers"))
    }
    for input in g.input where !initializerNames.contains(input.name) {
      do {
        try addInput(input)
      } catch {
        record(error, node: nil, opType: nil, prefix: "input '\(input.name)': ")
      }
    }
    guard problems.isEmpty else { throw ONNXError(file: context.file, problems: problems, opset: opset) }

    let order = try topologicalOrder()
    var poisoned = Set<String>()
    // Every operator without a Glassbox form, listed whether or not an earlier node failed:
    // unknown types, and folding-only ones on values computed at run time. A value is known
    // at import when it is an initializer, a constant, a shape, or what folding-only or shape
    // operators make of known values.
    var known = Set(g.initializer.map(\.name))
    let shapeOps: Set<String> = [
      "Constant", "Shape", "Size", "ConstantOfShape", "Identity", "Cast", "Concat",
      "Gather", "Unsqueeze", "Squeeze", "Reshape", "Slice", "Add", "Sub", "Mul", "Div",
      "Transpose", "Flatten", "Expand", "Tile", "Split", "Neg", "Abs", "Min", "Max",
    ]
    for index in order {
      let node = g.node[index]
      let inputsKnown = node.input.allSatisfy { $0.isEmpty || known.contains($0) }
      if ["Constant", "Shape", "Size"].contains(node.opType)
        || (inputsKnown && (Importer.foldedOnly.contains(node.opType) || shapeOps.contains(node.opType)))
      {
        known.formUnion(node.output)
      }
    }
    var unknown = Set<Int>()
    for (i, node) in g.node.enumerated() {
      let domain = node.domain
      if !(domain.isEmpty || domain == "ai.onnx") {
        problems.append(
          .init(
            .unsupportedOperator, node: NodeView.label(node, index: i),
            opType: "\(domain).\(node.opType)", "domain '\(domain)' is not the default ONNX domain"))
        unknown.insert(i)
      } else if !Importer.operators.contains(node.opType)
        || (Importer.foldedOnly.contains(node.opType)
          && !node.input.allSatisfy({ $0.isEmpty || known.contains($0) }))
      {
        problems.append(
          .init(
            .unsupportedOperator, node: NodeView.label(node, index: i), opType: node.opType,
            "no Glassbox op computes it"))
        unknown.insert(i)
      }
    }
    for index in order {
      let node = g.node[index]
      let view = NodeView(node, index: index)
      if node.input.contains(where: { poisoned.contains($0) }) {
        for o in node.output { poisoned.insert(o) }
        continue
      }
      if unknown.contains(index) {
        for o in node.output { poisoned.insert(o) }
        continue
      }
      if absorbed.contains(index) { continue }
      do throws(ImportFailure) {
        try convert(view)
        for (k, o) in node.output.enumerated() where !o.isEmpty && env[o] == nil && needed(o) {
          throw ImportFailure.unsupported(
            "its output \(k) ('\(o)') is used, but Glassbox computes only "
              + (k == 0 ? "what another node makes of it" : "its first \(k) outputs"))
        }
      } catch {
        record(error, node: view.label, opType: node.opType)
        for o in node.output { poisoned.insert(o) }
      }
    }

    for output in g.output {
      guard !poisoned.contains(output.name) else { continue }
      do {
        let v = try value(output.name)
        graph.outputs.append((names.claim(output.name), v))
      } catch {
        record(error, node: nil, opType: nil, prefix: "output '\(output.name)': ")
      }
    }
    guard problems.isEmpty else { throw ONNXError(file: context.file, problems: problems, opset: opset) }
    if graph.outputs.isEmpty { throw ONNXError(file: context.file, "the graph has no outputs") }

    let broken = Verifier.verify(graph)
    guard broken.isEmpty else {
      throw ONNXError(
        file: context.file,
        problems: broken.map {
          .init(.invalid, "the imported graph does not verify: \($0.message)")
        }, opset: opset)
    }

    var valueNames: [String: String] = [:]
    for (onnx, entry) in env {
      if case .value(let id) = entry { valueNames[onnx] = graph[id].name }
    }
    for (onnx, id) in materialized { valueNames[onnx] = graph[id].name }
    let producer = [model.producerName, model.producerVersion].filter { !$0.isEmpty }.joined(separator: " ")
    return ONNXImport(
      graph: graph, weights: weights, valueNames: valueNames, opset: opset, producer: producer,
      notes: notes)
  }

  /// Whether a node or the graph's outputs still need an ONNX value (not only nodes taken in).
  func needed(_ name: String) -> Bool {
    model.graph.output.contains { $0.name == name } || (readers[name] ?? []).contains { !absorbed.contains($0) }
  }

  /// Adds a problem for a failure at a node (or a tensor when `node` is nil).
  mutating func record(_ error: ImportFailure, node: String?, opType: String?, prefix: String = "") {
    switch error {
    case .unsupportedOperator:
      problems.append(.init(.unsupportedOperator, node: node, opType: opType, prefix + "no Glassbox op computes it"))
    case .unsupported(let m): problems.append(.init(.unsupportedForm, node: node, opType: opType, prefix + m))
    case .invalid(let m): problems.append(.init(.invalid, node: node, opType: opType, prefix + m))
    }
  }

  /// Node indices in an order where every input is defined first; a cycle or an undefined
  /// input is an error naming the nodes.
  func topologicalOrder() throws(ONNXError) -> [Int] {
    let nodes = model.graph.node
    var available = Set(model.graph.input.map(\.name)).union(model.graph.initializer.map(\.name))
    var producer: [String: Int] = [:]
    var problems: [ONNXError.Problem] = []
    for (i, n) in nodes.enumerated() {
      for o in n.output where !o.isEmpty {
        if let first = producer[o] {
          let other = NodeView.label(nodes[first], index: first)
          problems.append(
            .init(
              .invalid, node: NodeView.label(n, index: i), opType: n.opType,
              "its output '\(o)' is also an output of node '\(other)'"))
        } else if available.contains(o) {
          problems.append(
            .init(
              .invalid, node: NodeView.label(n, index: i), opType: n.opType,
              "its output '\(o)' is also a graph input or initializer"))
        }
        producer[o] = i
      }
    }
    var waiting = [Int](repeating: 0, count: nodes.count)
    var readers: [Int: [Int]] = [:]
    for (i, n) in nodes.enumerated() {
      var needs = Set<Int>()
      for input in n.input where !input.isEmpty && !available.contains(input) {
        guard let p = producer[input] else {
          problems.append(
            .init(
              .invalid, node: NodeView.label(n, index: i), opType: n.opType,
              "its input '\(input)' is not defined: no graph input, initializer or node output "
                + "has that name"))
          continue
        }
        needs.insert(p)
      }
      waiting[i] = needs.count
      for p in needs { readers[p, default: []].append(i) }
    }
    guard problems.isEmpty else { throw ONNXError(file: context.file, problems: problems, opset: opset) }
    var ready = (0..<nodes.count).filter { waiting[$0] == 0 }
    var order: [Int] = []
    order.reserveCapacity(nodes.count)
    var head = 0
    while head < ready.count {
      let i = ready[head]
      head += 1
      order.append(i)
      for o in nodes[i].output { available.insert(o) }
      for r in readers[i] ?? [] {
        waiting[r] -= 1
        if waiting[r] == 0 { ready.append(r) }
      }
    }
    guard order.count == nodes.count else {
      let stuck = (0..<nodes.count).filter { waiting[$0] > 0 }.map { NodeView.label(nodes[$0], index: $0) }
      throw ONNXError(
        file: context.file,
        "the graph has a cycle: nodes \(stuck.prefix(8).joined(separator: ", "))"
          + (stuck.count > 8 ? ", …" : "") + " each wait, directly or not, for their own outputs")
    }
    return order
  }

  // MARK: Inputs

  /// A graph input: its element type and shape; a dynamic first axis is `B`.
  mutating func addInput(_ input: Onnx_ValueInfoProto) throws(ImportFailure) {
    guard input.type.tensorType.hasElemType, input.type.tensorType.hasShape else {
      throw .invalid("needs a tensor type with a shape (the importer sizes every value from the inputs)")
    }
    let t = input.type.tensorType
    guard let type = ONNXFile.DataType(rawValue: t.elemType), let dtype = type.dtype else {
      throw .unsupported("element type \(ONNXFile.DataType.name(t.elemType)) is not supported")
    }
    guard t.shape.dim.count <= Constant.maxRank else {
      throw .invalid("has rank \(t.shape.dim.count); the limit is \(Constant.maxRank)")
    }
    var shape: [Dim] = []
    for (axis, d) in t.shape.dim.enumerated() {
      var dim: Dim
      switch d.value {
      case .dimValue(let v)? where v > Int32.max:
        throw .invalid("axis \(axis) has size \(v), over \(Int32.max)")
      case .dimValue(let v)? where v > 0:
        dim = Dim(Int(v))
      case .dimParam(let p)? where !p.isEmpty:
        if let s = symbols[p] {
          dim = Dim(symbol: s)
        } else {
          let s = axis == 0 && !symbols.values.contains("B") ? "B" : uniqueSymbol(ONNXNames.symbol(p))
          symbols[p] = s
          dim = Dim(symbol: s)
        }
      default:
        dim = Dim(symbol: axis == 0 ? "B" : uniqueSymbol("D\(axis)"))
      }
      if let s = dim.symbols.first, let v = bindings[s] {
        guard v >= 1, v <= Int32.max else { throw .invalid("the binding \(s)=\(v) is not a size") }
        dim = Dim(v)
      }
      shape.append(dim)
    }
    let name = names.claim(input.name)
    env[input.name] = .value(
      graph.addInput(
        name: name,
        type: TensorType(
          dtype == .bool
            ? .bool
            : dtype == .i64
              ? .i64 : .f32, shape)))
    // An RGB image input reads image files as torchvision's usual preprocessing makes them.
    if dtype == .f32, shape.count == 4, shape[1] == Dim(3), let side = shape[2].staticValue, shape[3] == shape[2] {
      var options = Attributes()
      for spec in RecipeKind.image.options { options[spec.name] = spec.defaultValue }
      options["size"] = .int(side)
      graph.recipes.append(InputRecipe(input: name, kind: .image, options: options))
      notes.append(
        "input \(name) reads image files through an image recipe: resized to \(side)×\(side), scaled to "
          + "[0, 1], normalised by ImageNet's mean and std (torchvision's preprocessing); a model trained "
          + "otherwise needs the recipe in its spec changed (glassbox import -o NAME.graph)")
    }
  }

  /// A symbol name not used by another `dim_param`.
  func uniqueSymbol(_ base: String) -> String {
    var s = base == "B" ? "B_" : base
    var k = 2
    while symbols.values.contains(s) {
      s = "\(base)_\(k)"
      k += 1
    }
    return s
  }

  // MARK: Values

  /// The graph value for an ONNX name: constants become a `constant` node (one element) or a
  /// parameter (named after the ONNX name) the first time something needs them.
  mutating func value(
    _ onnxName: String, asWeight: Bool = false, initializer: ParameterInit = .zeros,
    preferredName: String? = nil
  ) throws(ImportFailure) -> ValueID {
    guard let entry = env[onnxName] else { throw .invalid("value '\(onnxName)' is not defined") }
    switch entry {
    case .value(let id):
      return id
    case .constant(let c):
      if let id = materialized[onnxName] { return id }
      let id = try materialize(
        c, name: preferredName ?? names.claim(onnxName), asWeight: asWeight,
        buffer: bufferNames.contains(onnxName), initializer: initializer)
      materialized[onnxName] = id
      return id
    case .fill(let v, let dtype, let shape):
      if let id = materialized[onnxName] { return id }
      let id = try emit(
        .constant, [], ConstantAttributes(value: Double(v), shape: shape, dtype: dtype),
        names.claim(onnxName))
      materialized[onnxName] = id
      return id
    }
  }

  /// A constant as a graph value named `name`: one element (not a weight) as a `constant`
  /// node, anything else as a parameter holding its values.
  mutating func materialize(
    _ c: Constant, name: String, asWeight: Bool = false, buffer: Bool = false,
    initializer: ParameterInit = .zeros
  ) throws(ImportFailure) -> ValueID {
    if c.count == 1, !asWeight, let v = c.uniformFloat {
      return try emit(
        .constant, [],
        ConstantAttributes(
          value: Double(v), shape: c.shape.map { Dim($0) },
          dtype: c.dtype == .f32 ? .f32 : c.dtype), name)
    }
    let tensor: Tensor
    switch c.dtype {
    case .f32, .f64: tensor = Tensor(shape: c.shape, f32: try c.floatValues())
    case .i64: tensor = Tensor(shape: c.shape, storage: .i64(try c.intValues().map { Int64($0) }))
    case .bool: tensor = Tensor(shape: c.shape, storage: .bool(try c.intValues().map { $0 != 0 }))
    }
    return addParameter(name, tensor, role: buffer ? .buffer : .trainable, initializer: initializer)
  }

  /// A parameter with its value.
  mutating func addParameter(
    _ name: String, _ tensor: Tensor, role: ParameterRole, initializer: ParameterInit
  )
    -> ValueID
  {
    weights.append(tensor)
    return graph.addParameter(name: name, type: tensor.type, role: role, initializer: initializer)
  }

  /// A node with typed attributes; its results' types come from the op's shape rule, whose
  /// complaint becomes the node's error.
  mutating func emit<A: AttributeSet>(
    _ op: Op, _ operands: [ValueID], _ attributes: A, names resultNames: [String]
  )
    throws(ImportFailure) -> [ValueID]
  {
    let types: [TensorType]
    do {
      types = try op.inferTypes(operands.map { graph[$0].type }, attributes.encoded)
    } catch {
      throw .invalid(error.message)
    }
    guard types.count == resultNames.count else {
      throw .invalid("\(op.name) gives \(types.count) results, expected \(resultNames.count)")
    }
    return graph.addNode(
      op, operands: operands, attributes: attributes,
      results: zip(resultNames, types).map { (name: $0, type: $1) })
  }

  /// `emit` for an op with one result.
  mutating func emit<A: AttributeSet>(
    _ op: Op, _ operands: [ValueID], _ attributes: A, _ name: String
  )
    throws(ImportFailure) -> ValueID
  {
    let r = try emit(op, operands, attributes, names: [name])
    return r[0]
  }

  /// The type of a graph value.
  func type(_ v: ValueID) -> TensorType { graph[v].type }
}

/// One ONNX node with typed access to its attributes and inputs.
struct NodeView {
  let proto: Onnx_NodeProto
  /// The node's name, or its first output's (`Conv_3`, `/layer1/layer1.0/conv1/Conv`).
  let label: String
  let attributes: [String: Onnx_AttributeProto]

  init(_ proto: Onnx_NodeProto, index: Int) {
    self.proto = proto
    label = NodeView.label(proto, index: index)
    var a: [String: Onnx_AttributeProto] = [:]
    for attribute in proto.attribute { a[attribute.name] = attribute }
    attributes = a
  }

  static func label(_ n: Onnx_NodeProto, index: Int) -> String {
    if !n.name.isEmpty { return n.name }
    if let o = n.output.first(where: { !$0.isEmpty }) { return o }
    return "#\(index)"
  }

  var opType: String { proto.opType }

  /// The name of input `i`, when given (an empty name is an omitted optional input).
  func input(_ i: Int) -> String? { i < proto.input.count && !proto.input[i].isEmpty ? proto.input[i] : nil }
  var inputCount: Int { proto.input.count }
  /// The name of output `k`, when given.
  func output(_ k: Int) -> String? { k < proto.output.count && !proto.output[k].isEmpty ? proto.output[k] : nil }

  func has(_ name: String) -> Bool { attributes[name] != nil }

  func int(_ name: String, _ defaultValue: Int) throws(ImportFailure) -> Int {
    guard let a = attributes[name] else { return defaultValue }
    guard a.type == .int || (a.type == .undefined && a.hasI) else {
      throw .invalid("attribute '\(name)' must be an integer")
    }
    return Int(a.i)
  }

  func ints(_ name: String) throws(ImportFailure) -> [Int]? {
    guard let a = attributes[name] else { return nil }
    guard a.type == .ints || a.type == .undefined else {
      throw .invalid("attribute '\(name)' must be a list of integers")
    }
    return a.ints.map { Int($0) }
  }

  func float(_ name: String, _ defaultValue: Float) throws(ImportFailure) -> Float {
    guard let a = attributes[name] else { return defaultValue }
    guard a.type == .float || (a.type == .undefined && a.hasF) else {
      throw .invalid("attribute '\(name)' must be a number")
    }
    return a.f
  }

  func floats(_ name: String) throws(ImportFailure) -> [Float]? {
    guard let a = attributes[name] else { return nil }
    guard a.type == .floats || a.type == .undefined else {
      throw .invalid("attribute '\(name)' must be a list of numbers")
    }
    return a.floats
  }

  func string(_ name: String, _ defaultValue: String) throws(ImportFailure) -> String {
    guard let a = attributes[name] else { return defaultValue }
    guard a.type == .string || (a.type == .undefined && a.hasS) else {
      throw .invalid("attribute '\(name)' must be a string")
    }
    return String(decoding: a.s, as: UTF8.self)
  }

  func strings(_ name: String) throws(ImportFailure) -> [String]? {
    guard let a = attributes[name] else { return nil }
    guard a.type == .strings || a.type == .undefined else {
      throw .invalid("attribute '\(name)' must be a list of strings")
    }
    return a.strings.map { String(decoding: $0, as: UTF8.self) }
  }
}
