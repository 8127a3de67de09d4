import Foundation
import GlassboxIR
import SwiftProtobuf

/// A graph that cannot be written as ONNX: the op without an ONNX form, the node, and the taps
/// (or outputs) whose computation needs it.
public struct ONNXExportError: Error, Sendable, CustomStringConvertible, Equatable {
  /// The op at fault, when one is (`layer_norm_backward`).
  public var op: String?
  /// The taps whose outputs depend on that op (empty when only the model's outputs do).
  public var taps: [String]
  public var message: String

  public init(op: String? = nil, taps: [String] = [], _ message: String) {
    self.op = op
    self.taps = taps
    self.message = message
  }

  public var description: String { message }
}

/// Writes a graph (inference form: taps already lowered into outputs, backward ops included)
/// as an ONNX `ModelProto` of the default domain, opsets 13 to 21.
///
/// Every Glassbox op has one form, chosen in one exhaustive `switch` (`emit`), so a new op
/// does not build until it has an ONNX form or an explicit "no ONNX form" error:
///
/// ```
/// conv2d                 → Conv (+ Add residual, Relu epilogue)
/// conv2d_backward_input  → ConvTranspose (output_padding gives back the input size)
/// relu_backward          → Where(Greater(x, 0), dy, 0)
/// max_pool2d_backward    → MaxPool's indices, ScatterElements(reduction: add) into zeros
/// lstm                   → LSTM (gates reordered i,f,g,o → i,o,f,c; time-first between Transposes)
/// lstm_cell(_backward)   → MatMul, Split, Sigmoid, Tanh, Mul, Add (the backward reads the forward's gates)
/// class_seed             → ArgMax, Where(target < 0, argmax, target), Equal + Cast one-hot
/// ```
///
/// Symbolic sizes: the graph arrives bound (every size static), its symbols bound to
/// *sentinels* (`symbolSentinels`, large primes that no real size is a multiple of). A size
/// that is a multiple of a sentinel is written back as that symbol: `dim_param` on inputs and
/// outputs, and shape tensors computed at run time (`Shape` of the input that carries the
/// symbol) wherever a node needs the size.
public enum ONNXExporter {
  /// The opsets of the default domain the exporter writes.
  public static let opsets = 13...21

  /// What to write besides the graph.
  public struct Options: Sendable {
    /// Opset of the default domain.
    public var opset: Int
    /// Symbol name → the size it was bound to for lowering (a sentinel), to write back as the symbol.
    public var symbolSentinels: [String: Int]
    /// Outputs written as a bilinear `Resize` (`align_corners=False`, ONNX `half_pixel`) of
    /// their value's last two axes to `(height, width)`, by output name.
    public var resized: [String: Pair]
    /// Output name → the tap that made it, for errors.
    public var tapOfOutput: [String: String]
    /// Parameters kept even when no ONNX node reads them (the model's state: a batch norm's
    /// `num_batches_tracked`): those of at most `unreadParameterLimit` finite elements go in
    /// the metadata under `unreadParametersKey` (a JSON object, name → elements in row-major
    /// order), so that runtimes see no unused initializer; larger ones stay initializers.
    public var keptParameters: Set<String>
    public var unreadParametersKey = "glassbox.unread_weights"
    public var unreadParameterLimit = 4096
    /// `metadata_props`, in order.
    public var metadata: [(key: String, value: String)]
    /// `producer_name` and `producer_version`.
    public var producer: (name: String, version: String)

    public init(
      opset: Int = 17, symbolSentinels: [String: Int] = [:], resized: [String: Pair] = [:],
      tapOfOutput: [String: String] = [:], keptParameters: Set<String> = [],
      metadata: [(key: String, value: String)] = [],
      producer: (name: String, version: String) = ("glassbox", "")
    ) {
      self.opset = opset
      self.symbolSentinels = symbolSentinels
      self.resized = resized
      self.tapOfOutput = tapOfOutput
      self.keptParameters = keptParameters
      self.metadata = metadata
      self.producer = producer
    }
  }

  /// What was written: the file's bytes and its node count.
  public struct Result: Sendable {
    public var bytes: [UInt8]
    public var nodeCount: Int
    public var initializerCount: Int
  }

  /// The ONNX model of `graph` (bound, verified) with `weights` by parameter name.
  public static func export(
    _ graph: Graph, weights: [String: Tensor], options: Options
  ) throws(ONNXExportError)
    -> Result
  {
    guard opsets.contains(options.opset) else {
      throw ONNXExportError(
        "export: opset \(options.opset) is not supported; the exporter writes opsets "
          + "\(opsets.lowerBound) to \(opsets.upperBound)")
    }
    var w = Writer(graph: graph, options: options)
    try w.run(weights: weights)
    var model = Onnx_ModelProto()
    model.irVersion = irVersion(options.opset)
    model.producerName = options.producer.name
    model.producerVersion = options.producer.version
    var opset = Onnx_OperatorSetIdProto()
    opset.domain = ""
    opset.version = Int64(options.opset)
    model.opsetImport = [opset]
    model.graph = w.proto
    model.metadataProps = (options.metadata + [(options.unreadParametersKey, w.unreadParameters)]).map { k, v in
      var e = Onnx_StringStringEntryProto()
      e.key = k
      e.value = v
      return e
    }
    let bytes: [UInt8]
    do {
      var o = BinaryEncodingOptions()
      o.useDeterministicOrdering = true
      bytes = try model.serializedBytes(options: o)
    } catch {
      throw ONNXExportError("export: cannot encode the ONNX model (\(error))")
    }
    return Result(bytes: bytes, nodeCount: w.proto.node.count, initializerCount: w.proto.initializer.count)
  }

  /// The IR version that goes with an opset (ONNX's versioning table).
  static func irVersion(_ opset: Int) -> Int64 {
    switch opset {
    case ...14: 7
    case 15...18: 8
    case 19, 20: 9
    default: 10
    }
  }

  /// `TensorProto.DataType` of an element type.
  static func dataType(_ d: DType) -> Int32 {
    switch d {
    case .f32: 1
    case .i64: 7
    case .bool: 9
    case .f64: 11
    }
  }
}

/// One export's state: the ONNX nodes and initializers written so far and the ONNX name of
/// every graph value.
struct Writer {
  let graph: Graph
  let options: ONNXExporter.Options
  var proto = Onnx_GraphProto()
  var names: [String]
  var taken: Set<String>
  /// Initializers made for constants, by content, so each is written once.
  var constants: [String: String] = [:]
  /// Run-time sizes of symbols (`int64 [1]`), by symbol.
  var symbolSizes: [String: String] = [:]
  /// Where each symbol's size can be read: input name and axis.
  var symbolSources: [String: (input: String, axis: Int)] = [:]
  /// Values computed once for several nodes (a transposed weight), by key.
  var shared: [String: String] = [:]
  /// The kept parameters no node reads, as a JSON object (`Options.keptParameters`).
  var unreadParameters = "{}"
  /// The activated gates and cell state of each LSTM step written, by its operands
  /// (`gates_x, h, c, weight_hh`): the step's backward reads them instead of recomputing.
  var cells: [[String]: Cell] = [:]

  /// One LSTM step's activated gates `[B, H]` each, its new cell state and that state's tanh.
  struct Cell {
    var i, f, g, o, c, tanhC: String
  }

  var opset: Int { options.opset }

  init(graph: Graph, options: ONNXExporter.Options) {
    self.graph = graph
    self.options = options
    // Output names are the model's signature: a value of the same name that is not that
    // output's value (or is resized for it) is renamed out of the way.
    var outputOwner: [String: ValueID] = [:]
    for o in graph.outputs where outputOwner[o.name] == nil { outputOwner[o.name] = o.value }
    let outputNames = Set(graph.outputs.map(\.name))
    var names: [String] = []
    var taken = Set<String>()
    for (i, v) in graph.values.enumerated() {
      let ownsOutput = outputOwner[v.name]?.index == i && options.resized[v.name] == nil
      var name = v.name
      while taken.contains(name) || (outputNames.contains(name) && !(ownsOutput && name == v.name)) { name += ".value" }
      taken.insert(name)
      names.append(name)
    }
    taken.formUnion(outputNames)
    self.names = names
    self.taken = taken
  }

  // MARK: Driving

  mutating func run(weights: [String: Tensor]) throws(ONNXExportError) {
    proto.name = graph.name
    // Inputs, and where each symbol's size can be read.
    for id in graph.inputs {
      let v = graph[id]
      proto.input.append(valueInfo(names[id.index], v.type))
      for (axis, d) in v.type.shape.enumerated() {
        let dim = decode(d)
        if dim.coefficient == 1, dim.symbols.count == 1, symbolSources[dim.symbols[0]] == nil {
          symbolSources[dim.symbols[0]] = (names[id.index], axis)
        }
      }
    }
    for (i, node) in graph.nodes.enumerated() {
      do {
        try emit(node)
      } catch {
        throw attributed(error, node: i)
      }
    }
    // Outputs under their signature names.
    var written = Set<String>()
    for o in graph.outputs where !written.contains(o.name) {
      written.insert(o.name)
      let t = graph[o.value].type
      if let size = options.resized[o.name] {
        resize(names[o.value.index], t, to: size, output: o.name)
        let outShape = Array(t.shape.dropLast(2)) + [Dim(size.h), Dim(size.w)]
        proto.output.append(valueInfo(o.name, TensorType(t.dtype, outShape)))
        continue
      }
      if names[o.value.index] != o.name { add("Identity", [names[o.value.index]], [o.name]) }
      proto.output.append(valueInfo(o.name, t))
    }
    // Parameters: initializers where an ONNX node reads them, the rest of the model's state
    // in the metadata.
    let read = Set(proto.node.flatMap(\.input) + proto.output.map(\.name))
    var unread: [String] = []
    for p in graph.parameters {
      let name = names[p.value.index]
      let isRead = read.contains(name)
      guard isRead || options.keptParameters.contains(p.name) else { continue }
      guard let t = weights[p.name] else { throw ONNXExportError("export: parameter '\(p.name)' has no weights") }
      let values = t.doubles
      if !isRead, values.count <= options.unreadParameterLimit, values.allSatisfy(\.isFinite) {
        let escaped = p.name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        unread.append("\"\(escaped)\":[" + values.map { "\($0)" }.joined(separator: ",") + "]")
      } else {
        proto.initializer.append(tensorProto(name, t))
      }
    }
    unreadParameters = "{" + unread.joined(separator: ",") + "}"
  }

  /// The error of node `i`, naming the taps whose outputs depend on it.
  func attributed(_ error: ONNXExportError, node i: Int) -> ONNXExportError {
    var needs = Set(graph.nodes[i].results.map(\.index))
    for n in graph.nodes[(i + 1)...] where n.operands.contains(where: { needs.contains($0.index) }) {
      for r in n.results { needs.insert(r.index) }
    }
    var taps: [String] = []
    var model = false
    for o in graph.outputs where needs.contains(o.value.index) {
      if let t = options.tapOfOutput[o.name] {
        if !taps.contains(t) { taps.append(t) }
      } else {
        model = true
      }
    }
    let node = graph[graph.nodes[i].results[0]].name
    let op = graph.nodes[i].op.name
    let who =
      taps.isEmpty
      ? (model ? "the model's outputs" : "no output")
      : (taps.count == 1 ? "tap '\(taps[0])'" : "taps " + taps.map { "'\($0)'" }.joined(separator: ", "))
    return ONNXExportError(op: op, taps: taps, "export: \(who) needs \(op) (node '\(node)'), which \(error.message)")
  }

  // MARK: Building blocks

  /// A name not yet taken, from `base`.
  mutating func fresh(_ base: String) -> String {
    var name = base, k = 1
    while taken.contains(name) {
      k += 1
      name = "\(base)_\(k)"
    }
    taken.insert(name)
    return name
  }

  /// Appends a node; returns its output names.
  @discardableResult
  mutating func add(
    _ op: String, _ inputs: [String], _ outputs: [String], _ attributes: [Onnx_AttributeProto] = []
  )
    -> [String]
  {
    var n = Onnx_NodeProto()
    n.opType = op
    n.input = inputs
    n.output = outputs
    n.attribute = attributes
    n.name = fresh("\(outputs.first ?? op).\(op)")
    proto.node.append(n)
    return outputs
  }

  /// Appends a node with one fresh output named from `base`.
  mutating func add1(
    _ op: String, _ inputs: [String], _ base: String, _ attributes: [Onnx_AttributeProto] = []
  )
    -> String
  {
    add(op, inputs, [fresh(base)], attributes)[0]
  }

  func attr(_ name: String, _ v: Int) -> Onnx_AttributeProto {
    var a = Onnx_AttributeProto()
    a.name = name
    a.type = .int
    a.i = Int64(v)
    return a
  }

  func attr(_ name: String, ints v: [Int]) -> Onnx_AttributeProto {
    var a = Onnx_AttributeProto()
    a.name = name
    a.type = .ints
    a.ints = v.map(Int64.init)
    return a
  }

  func attr(_ name: String, float v: Double) -> Onnx_AttributeProto {
    var a = Onnx_AttributeProto()
    a.name = name
    a.type = .float
    a.f = Float(v)
    return a
  }

  func attr(_ name: String, string v: String) -> Onnx_AttributeProto {
    var a = Onnx_AttributeProto()
    a.name = name
    a.type = .string
    a.s = Data(v.utf8)
    return a
  }

  func attr(_ name: String, tensor t: Onnx_TensorProto) -> Onnx_AttributeProto {
    var a = Onnx_AttributeProto()
    a.name = name
    a.type = .tensor
    a.t = t
    return a
  }

  func tensorProto(_ name: String, _ t: Tensor) -> Onnx_TensorProto {
    var p = Onnx_TensorProto()
    p.name = name
    p.dims = t.shape.map(Int64.init)
    p.dataType = ONNXExporter.dataType(t.dtype)
    var raw = Data()
    switch t.storage {
    case .f32(let v): v.withUnsafeBufferPointer { b in raw = Data(buffer: b) }
    case .f64(let v): v.withUnsafeBufferPointer { b in raw = Data(buffer: b) }
    case .i64(let v): v.withUnsafeBufferPointer { b in raw = Data(buffer: b) }
    case .bool(let v): raw = Data(v.map { $0 ? 1 : 0 })
    }
    p.rawData = raw
    return p
  }

  /// An initializer holding `t`, written once per content.
  mutating func constant(_ t: Tensor, _ base: String) -> String {
    let key = "\(t.dtype.rawValue)\(t.shape):\(t.doubles)"
    if let name = constants[key] { return name }
    let name = fresh(base)
    proto.initializer.append(tensorProto(name, t))
    constants[key] = name
    return name
  }

  mutating func ints(_ v: [Int]) -> String {
    constant(
      Tensor(shape: [v.count], storage: .i64(v.map(Int64.init))),
      "const.i" + v.map(String.init).joined(separator: "_"))
  }

  mutating func scalarInt(_ v: Int) -> String {
    constant(Tensor(shape: [], storage: .i64([Int64(v)])), "const.i\(v)")
  }

  mutating func scalar(_ v: Double, _ dtype: DType = .f32) -> String {
    let t: Tensor
    switch dtype {
    case .f32: t = Tensor(shape: [], f32: [Float(v)])
    case .f64: t = Tensor(shape: [], f64: [v])
    case .i64: t = Tensor(shape: [], storage: .i64([Int64(v)]))
    case .bool: t = Tensor(shape: [], storage: .bool([v != 0]))
    }
    return constant(t, "const.\(dtype.rawValue)")
  }

  /// Axes as an input (`ReduceSum` from opset 13, the others from 18) or as an attribute.
  mutating func reduce(_ op: String, _ x: String, axes: [Int], keepdims: Bool, _ out: String) {
    let axesAsInput = op == "ReduceSum" || opset >= 18
    if axes.isEmpty {
      add(op, [x], [out], [attr("keepdims", keepdims ? 1 : 0)])
    } else if axesAsInput {
      add(op, [x, ints(axes)], [out], [attr("keepdims", keepdims ? 1 : 0)])
    } else {
      add(op, [x], [out], [attr("axes", ints: axes), attr("keepdims", keepdims ? 1 : 0)])
    }
  }

  // MARK: Sizes

  /// A bound size with its sentinels written back as symbols.
  func decode(_ d: Dim) -> Dim {
    guard var c = d.staticValue, c != 0 else { return d }
    var symbols: [String] = []
    for (s, v) in options.symbolSentinels.sorted(by: { $0.key < $1.key }) where v > 1 {
      while c % v == 0 && c != 0 {
        c /= v
        symbols.append(s)
      }
    }
    return Dim(coefficient: c, symbols: symbols)
  }

  func valueInfo(_ name: String, _ t: TensorType) -> Onnx_ValueInfoProto {
    var v = Onnx_ValueInfoProto()
    v.name = name
    var tt = Onnx_TypeProto.Tensor()
    tt.elemType = ONNXExporter.dataType(t.dtype)
    var shape = Onnx_TensorShapeProto()
    shape.dim = t.shape.map { d in
      var dim = Onnx_TensorShapeProto.Dimension()
      let decoded = decode(d)
      if let n = decoded.staticValue { dim.dimValue = Int64(n) } else { dim.dimParam = decoded.description }
      return dim
    }
    tt.shape = shape
    var type = Onnx_TypeProto()
    type.tensorType = tt
    v.type = type
    return v
  }

  /// The run-time size of a symbol, `int64 [1]`: one axis of the input that carries it.
  mutating func symbolSize(_ s: String) throws(ONNXExportError) -> String {
    if let name = symbolSizes[s] { return name }
    guard let source = symbolSources[s] else {
      throw ONNXExportError("cannot be written: no input carries the size \(s) on an axis of its own")
    }
    let shape = add1("Shape", [source.input], "size.\(s).shape")
    let name = add1("Gather", [shape, ints([source.axis])], "size.\(s)", [attr("axis", 0)])
    symbolSizes[s] = name
    return name
  }

  /// A shape as an `int64 [rank]` tensor: an initializer when every size is static, else
  /// computed from the inputs' shapes.
  mutating func shapeTensor(_ shape: [Dim]) throws(ONNXExportError) -> String {
    let dims = shape.map(decode)
    if dims.allSatisfy(\.isStatic) { return ints(dims.map { $0.staticValue ?? 0 }) }
    let key = "shape:" + dims.map(\.description).joined(separator: ",")
    if let name = shared[key] { return name }
    var pieces: [String] = []
    for d in dims {
      if let n = d.staticValue {
        pieces.append(ints([n]))
        continue
      }
      var v = try symbolSize(d.symbols[0])
      for s in d.symbols.dropFirst() { v = add1("Mul", [v, try symbolSize(s)], "size.\(d)") }
      if d.coefficient != 1 { v = add1("Mul", [v, ints([d.coefficient])], "size.\(d)") }
      pieces.append(v)
    }
    let name = add1("Concat", pieces, "shape", [attr("axis", 0)])
    shared[key] = name
    return name
  }

  /// A target shape for `Reshape`: static, with at most one symbolic size written as -1.
  mutating func reshapeTarget(_ shape: [Dim]) throws(ONNXExportError) -> String {
    let dims = shape.map(decode)
    let open = dims.filter { !$0.isStatic }.count
    if open == 1, !dims.contains(Dim(0)) { return ints(dims.map { $0.staticValue ?? -1 }) }
    return try shapeTensor(shape)
  }

  func type(_ v: ValueID) -> TensorType { graph[v].type }

  func staticShape(_ v: ValueID) -> [Int] { graph[v].type.shape.map { $0.staticValue ?? 0 } }

  /// A weight transposed (`[out, in]` → `[in, out]`), once per weight.
  mutating func transposed(_ w: String) -> String {
    if let t = shared["T:" + w] { return t }
    let t = add1("Transpose", [w], w + ".T", [attr("perm", ints: [1, 0])])
    shared["T:" + w] = t
    return t
  }

  /// `Where(condition, a, 0)`, the elements of `a` where the condition holds.
  mutating func masked(_ condition: String, _ a: String, _ dtype: DType, _ base: String) -> String {
    add1("Where", [condition, a, scalar(0, dtype)], base)
  }

  /// A one-hot `[N, C]` (float) of class indices `k: int64 [N]`.
  mutating func oneHot(_ k: String, classes: Int, _ base: String) -> String {
    let column = add1("Unsqueeze", [k, ints([1])], base + ".column")
    let range = constant(
      Tensor(shape: [1, classes], storage: .i64((0..<classes).map(Int64.init))),
      "const.classes\(classes)")
    let equal = add1("Equal", [column, range], base + ".equal")
    return add1("Cast", [equal], base + ".onehot", [attr("to", 1)])
  }

  /// Output padding that makes a transposed convolution give back size `size` along one axis.
  func outputPadding(input: Int, size: Int, kernel: Int, stride: Int, padding: Int, dilation: Int) -> Int {
    size - ((input - 1) * stride - 2 * padding + dilation * (kernel - 1) + 1)
  }

  /// A bilinear resize of the last two axes of `x` to `size`, `half_pixel` (PyTorch's
  /// `align_corners=False`), written to `output`. A rank-3 map gets a channel axis for it.
  mutating func resize(_ x: String, _ t: TensorType, to size: Pair, output: String) {
    let rank = t.rank
    let input = rank == 3 ? add1("Unsqueeze", [x, ints([1])], output + ".channel") : x
    let lead = rank == 3 ? [t.shape[0], Dim(1)] : Array(t.shape.dropLast(2))
    let sizes: String
    if lead.map(decode).allSatisfy(\.isStatic) {
      sizes = ints(lead.map { decode($0).staticValue ?? 0 } + [size.h, size.w])
    } else {
      let shape = add1("Shape", [input], output + ".shape")
      let front = add1("Slice", [shape, ints([0]), ints([lead.count])], output + ".lead")
      sizes = add1("Concat", [front, ints([size.h, size.w])], output + ".sizes", [attr("axis", 0)])
    }
    let attributes = [attr("mode", string: "linear"), attr("coordinate_transformation_mode", string: "half_pixel")]
    if rank == 3 {
      let r = add1("Resize", [input, "", "", sizes], output + ".resized", attributes)
      add("Squeeze", [r, ints([1])], [output])
    } else {
      add("Resize", [input, "", "", sizes], [output], attributes)
    }
  }

  static func noForm(_ detail: String = "") -> ONNXExportError {
    ONNXExportError("has no ONNX form" + (detail.isEmpty ? "" : " (\(detail))"))
  }

  // MARK: Ops

  /// Writes one node. One case per op, no `default:`.
  mutating func emit(_ node: Node) throws(ONNXExportError) {
    let x = node.operands.map { names[$0.index] }
    let y = node.results.map { names[$0.index] }
    let result = node.results[0]
    let base = y[0]
    switch node.op {
    case .toBlocked, .fromBlocked:
      // Layouts are the runtime's choice (`choose-layouts`, after export's graph is taken).
      throw Self.noForm("a layout conversion; export the model's graph, not a compiled one")

    case .conv2d:
      let a = ConvolutionAttributes(of: node)
      guard a.layout == .plain else {
        throw Self.noForm("layout blocked; export the model's graph, not a compiled one")
      }
      let k = staticShape(node.operands[1])
      let epilogue = x.count > 3 || a.activation == .relu
      let out = epilogue ? fresh(base + ".conv") : y[0]
      add("Conv", Array(x.prefix(3)), [out], convAttributes(a.geometry, kernel: Pair(k[2], k[3])))
      var v = out
      if x.count > 3 {
        v = a.activation == .relu ? add1("Add", [v, x[3]], base + ".residual") : add("Add", [v, x[3]], [y[0]])[0]
      }
      if a.activation == .relu { add("Relu", [v], [y[0]]) }

    case .maxPool2d:
      add("MaxPool", x, y, poolAttributes(MaxPoolAttributes(of: node).window, max: true))

    case .avgPool2d:
      add("AveragePool", x, y, poolAttributes(AvgPoolAttributes(of: node).window, max: false))

    case .globalAvgPool2d:
      add("GlobalAveragePool", x, y)

    case .batchNorm:
      add("BatchNormalization", Array(x.prefix(5)), y, [attr("epsilon", float: BatchNormAttributes(of: node).eps)])

    case .layerNorm:
      let a = LayerNormAttributes(of: node)
      let rank = type(node.operands[0]).rank
      let axis = a.axis < 0 ? a.axis + rank : a.axis
      if opset >= 17 {
        add("LayerNormalization", x, y, [attr("axis", axis), attr("epsilon", float: a.eps)])
      } else {
        let axes = Array(axis..<rank)
        let mean = fresh(base + ".mean"), variance = fresh(base + ".variance")
        reduce("ReduceMean", x[0], axes: axes, keepdims: true, mean)
        let centred = add1("Sub", [x[0], mean], base + ".centred")
        reduce("ReduceMean", add1("Mul", [centred, centred], base + ".squares"), axes: axes, keepdims: true, variance)
        let sd = add1("Sqrt", [add1("Add", [variance, scalar(a.eps)], base + ".var_eps")], base + ".sd")
        let normalized = add1("Div", [centred, sd], base + ".normalized")
        if x.count > 2 {
          add("Add", [add1("Mul", [normalized, x[1]], base + ".scaled"), x[2]], y)
        } else {
          add("Mul", [normalized, x[1]], y)
        }
      }

    case .linear:
      let a = LinearAttributes(of: node)
      let epilogue = x.count > 3 || a.activation == .relu
      let out = epilogue ? fresh(base + ".linear") : y[0]
      if type(node.operands[0]).rank == 2 {
        add("Gemm", Array(x.prefix(3)), [out], [attr("transB", 1)])
      } else if x.count > 2 {
        add("Add", [add1("MatMul", [x[0], transposed(x[1])], base + ".matmul"), x[2]], [out])
      } else {
        add("MatMul", [x[0], transposed(x[1])], [out])
      }
      var v = out
      if x.count > 3 {
        v = a.activation == .relu ? add1("Add", [v, x[3]], base + ".residual") : add("Add", [v, x[3]], [y[0]])[0]
      }
      if a.activation == .relu { add("Relu", [v], [y[0]]) }

    case .matmul, .batchMatmul:
      add("MatMul", x, y)

    case .add: add("Add", x, y)
    case .sub: add("Sub", x, y)
    case .mul: add("Mul", x, y)
    case .div: add("Div", x, y)
    case .relu: add("Relu", x, y)
    case .sigmoid: add("Sigmoid", x, y)
    case .tanh: add("Tanh", x, y)
    case .exp: add("Exp", x, y)
    case .log: add("Log", x, y)
    case .sqrt: add("Sqrt", x, y)
    case .abs: add("Abs", x, y)
    case .erf: add("Erf", x, y)
    case .pow: add("Pow", x, y)
    case .maximum: add("Max", x, y)
    case .minimum: add("Min", x, y)

    case .pad:
      let a = PadAttributes(of: node)
      var inputs = [x[0], ints(a.pads)]
      if a.mode == .constant { inputs.append(scalar(a.value, type(node.operands[0]).dtype)) }
      add("Pad", inputs, y, [attr("mode", string: a.mode.rawValue)])

    case .lrn:
      let a = LRNAttributes(of: node)
      add(
        "LRN", x, y,
        [attr("size", a.size), attr("alpha", float: a.alpha), attr("beta", float: a.beta), attr("bias", float: a.bias)])

    case .softmax:
      add("Softmax", x, y, [attr("axis", SoftmaxAttributes(of: node).axis)])

    case .logSoftmax:
      add("LogSoftmax", x, y, [attr("axis", SoftmaxAttributes(of: node).axis)])

    case .sum, .mean, .max:
      let a = ReduceAttributes(of: node)
      let op = node.op == .sum ? "ReduceSum" : node.op == .mean ? "ReduceMean" : "ReduceMax"
      reduce(op, x[0], axes: a.axes, keepdims: a.keepdims, y[0])

    case .reshape, .flatten:
      add("Reshape", [x[0], try reshapeTarget(type(result).shape)], y)

    case .transpose:
      add("Transpose", x, y, [attr("perm", ints: TransposeAttributes(of: node).perm)])

    case .concat:
      add("Concat", x, y, [attr("axis", ConcatAttributes(of: node).axis)])

    case .slice:
      let a = SliceAttributes(of: node)
      add("Slice", [x[0], ints([a.start]), ints([a.end]), ints([a.axis]), ints([a.step])], y)

    case .select:
      let a = SelectAttributes(of: node)
      add("Gather", [x[0], scalarInt(a.index)], y, [attr("axis", a.axis)])

    case .split:
      let a = SplitAttributes(of: node)
      add("Split", [x[0], ints(a.sizes)], y, [attr("axis", a.axis)])

    case .lstm:
      try lstm(node, x, y)

    case .lstmCell:
      let (gates, h, c, w) = (x[0], x[1], x[2], x[3])
      let pre = add1("Add", [gates, add1("MatMul", [h, transposed(w)], base + ".hw")], base + ".gates")
      let g = lstmGates(pre, hidden: staticShape(node.operands[1])[1], base)
      let cNext = node.results.count > 1 ? y[1] : fresh(base + ".c")
      add("Add", [add1("Mul", [g.f, c], base + ".fc"), add1("Mul", [g.i, g.g], base + ".ig")], [cNext])
      let tc = add1("Tanh", [cNext], base + ".tanh_c")
      add("Mul", [g.o, tc], [y[0]])
      cells[[gates, h, c, w]] = Cell(i: g.i, f: g.f, g: g.g, o: g.o, c: cNext, tanhC: tc)

    case .lstmCellBackward:
      // The step's gates, from the forward step of the same operands when one was written
      // (recomputed otherwise), then the chain rule through c' = f·c + i·g, h' = o·tanh(c').
      let (dh, dc, gates, h, c, w) = (x[0], x[1], x[2], x[3], x[4], x[5])
      let g: Cell
      if let forward = cells[[gates, h, c, w]] {
        g = forward
      } else {
        let pre = add1("Add", [gates, add1("MatMul", [h, transposed(w)], base + ".hw")], base + ".gates")
        let a = lstmGates(pre, hidden: staticShape(node.operands[3])[1], base)
        let cNext = add1(
          "Add", [add1("Mul", [a.f, c], base + ".fc"), add1("Mul", [a.i, a.g], base + ".ig")],
          base + ".c")
        g = Cell(i: a.i, f: a.f, g: a.g, o: a.o, c: cNext, tanhC: add1("Tanh", [cNext], base + ".tanh_c"))
      }
      let tc = g.tanhC
      let one = scalar(1)
      func sigmoidSlope(_ s: String, _ tag: String) -> String {
        add1("Mul", [s, add1("Sub", [one, s], base + ".1m" + tag)], base + ".slope" + tag)
      }
      let tc2 = add1("Sub", [one, add1("Mul", [tc, tc], base + ".tc2")], base + ".1mtc2")
      let dcTotal = add1(
        "Add", [dc, add1("Mul", [add1("Mul", [dh, g.o], base + ".dho"), tc2], base + ".dc_h")],
        base + ".dc_total")
      let dO = add1("Mul", [add1("Mul", [dh, tc], base + ".dh_tc"), sigmoidSlope(g.o, "o")], base + ".do")
      let dI = add1("Mul", [add1("Mul", [dcTotal, g.g], base + ".dc_g"), sigmoidSlope(g.i, "i")], base + ".di")
      let dF = add1("Mul", [add1("Mul", [dcTotal, c], base + ".dc_c"), sigmoidSlope(g.f, "f")], base + ".df")
      let g2 = add1("Sub", [one, add1("Mul", [g.g, g.g], base + ".g2")], base + ".1mg2")
      let dG = add1("Mul", [add1("Mul", [dcTotal, g.i], base + ".dc_i"), g2], base + ".dg")
      add("Concat", [dI, dF, dG, dO], [y[0]], [attr("axis", 1)])
      add("MatMul", [y[0], w], [y[1]])
      add("Mul", [dcTotal, g.f], [y[2]])

    case .dropout:
      add("Identity", x, y)

    case .crossEntropy:
      let log = add1("LogSoftmax", [x[0]], base + ".log_softmax", [attr("axis", 1)])
      add("NegativeLogLikelihoodLoss", [log, x[1]], y, [attr("reduction", string: "mean")])

    case .constant:
      let a = ConstantAttributes(of: node)
      let t = type(result)
      let dims = t.shape.map(decode)
      let count = dims.allSatisfy(\.isStatic) ? dims.reduce(1) { $0 * ($1.staticValue ?? 0) } : Int.max
      if count <= 64 {
        let values = [Double](repeating: a.value, count: count)
        let shape = dims.map { $0.staticValue ?? 0 }
        let tensor: Tensor
        switch t.dtype {
        case .f32: tensor = Tensor(shape: shape, f32: values.map(Float.init))
        case .f64: tensor = Tensor(shape: shape, f64: values)
        case .i64: tensor = Tensor(shape: shape, storage: .i64(values.map { Int64($0) }))
        case .bool: tensor = Tensor(shape: shape, storage: .bool(values.map { $0 != 0 }))
        }
        proto.initializer.append(tensorProto(y[0], tensor))
      } else {
        var fill = tensorProto("", Tensor(shape: [1], f32: [Float(a.value)]))
        switch t.dtype {
        case .f32: break
        case .f64: fill = tensorProto("", Tensor(shape: [1], f64: [a.value]))
        case .i64: fill = tensorProto("", Tensor(shape: [1], storage: .i64([Int64(a.value)])))
        case .bool: fill = tensorProto("", Tensor(shape: [1], storage: .bool([a.value != 0])))
        }
        add("ConstantOfShape", [try shapeTensor(t.shape)], y, [attr("value", tensor: fill)])
      }

    case .fusedElementwise:
      let program = FusedElementwiseAttributes(of: node).program
      var registers = x
      let steps = program.count / 3
      for s in 0..<steps {
        guard let code = ElementwiseCode(rawValue: program[3 * s]) else { throw Writer.noForm("unknown step code") }
        let out = s == steps - 1 ? y[0] : fresh(base + ".step\(s)")
        let a = registers[program[3 * s + 1]]
        let inputs = code.isBinary ? [a, registers[program[3 * s + 2]]] : [a]
        let op =
          switch code {
          case .add: "Add"
          case .sub: "Sub"
          case .mul: "Mul"
          case .div: "Div"
          case .relu: "Relu"
          case .sigmoid: "Sigmoid"
          case .tanh: "Tanh"
          case .maximum: "Max"
          case .minimum: "Min"
          case .pow: "Pow"
          case .exp: "Exp"
          case .log: "Log"
          case .sqrt: "Sqrt"
          case .abs: "Abs"
          case .erf: "Erf"
          }
        add(op, inputs, [out])
        registers.append(out)
      }

    case .classSeed:
      // The class of each row: the target's (its -1s the row's argmax), or the fixed class,
      // or the argmax; then a one-hot row.
      let classes = staticShape(node.operands[0])[1]
      let k = ClassSeedAttributes(of: node).classIndex
      if x.count > 1 || k < 0 {
        let argmax = add1("ArgMax", [x[0]], base + ".argmax", [attr("axis", 1), attr("keepdims", 0)])
        var chosen = argmax
        if x.count > 1 {
          var target = x[1]
          if type(node.operands[1]).dtype != .i64 { target = add1("Cast", [target], base + ".target", [attr("to", 7)]) }
          let predicted = add1("Less", [target, scalarInt(0)], base + ".predicted")
          chosen = add1("Where", [predicted, argmax, target], base + ".class")
        }
        let hot = oneHot(chosen, classes: classes, base)
        add("Identity", [hot], y)
      } else {
        var row = [Float](repeating: 0, count: classes)
        if k < classes { row[k] = 1 }
        let hot = constant(Tensor(shape: [1, classes], f32: row), base + ".row")
        add("Expand", [hot, add1("Shape", [x[0]], base + ".shape")], y)
      }

    case .reluBackward:
      let positive = add1("Greater", [x[1], scalar(0, type(node.operands[1]).dtype)], base + ".positive")
      add("Where", [positive, x[0], scalar(0, type(node.operands[0]).dtype)], y)

    case .linearBackwardWeight:
      let dyShape = type(node.operands[0]).shape, xShape = type(node.operands[1]).shape
      let dy2 =
        dyShape.count == 2
        ? x[0]
        : add1("Reshape", [x[0], ints([-1, dyShape.last?.staticValue ?? 0])], base + ".dy_rows")
      let x2 =
        xShape.count == 2
        ? x[1]
        : add1("Reshape", [x[1], ints([-1, xShape.last?.staticValue ?? 0])], base + ".x_rows")
      add("Gemm", [dy2, x2], y, [attr("transA", 1)])

    case .sliceBackward:
      let a = SliceBackwardAttributes(of: node)
      let t = type(node.operands[0])
      let rank = t.rank
      let axis = a.slice.axis < 0 ? a.slice.axis + rank : a.slice.axis
      guard let size = decode(a.size).staticValue, let length = decode(t.shape[axis]).staticValue else {
        throw Writer.noForm("the sliced axis must have a static size")
      }
      guard a.slice.step == 1 else { throw Writer.noForm("a slice with step \(a.slice.step)") }
      var start = a.slice.start < 0 ? a.slice.start + size : a.slice.start
      start = min(max(start, 0), size)
      var pads = [Int](repeating: 0, count: 2 * rank)
      pads[axis] = start
      pads[rank + axis] = size - start - length
      add("Pad", [x[0], ints(pads)], y)

    case .maxBackward:
      let a = ReduceAttributes(of: node)
      let xt = type(node.operands[1])
      let axes = a.axes.isEmpty ? Array(0..<xt.rank) : a.axes.map { $0 < 0 ? $0 + xt.rank : $0 }
      var kept = xt.shape
      for i in axes { kept[i] = 1 }
      let dy = a.keepdims ? x[0] : add1("Reshape", [x[0], try reshapeTarget(kept)], base + ".dy")
      let m = a.keepdims ? x[2] : add1("Reshape", [x[2], try reshapeTarget(kept)], base + ".max")
      let mask = add1("Cast", [add1("Equal", [x[1], m], base + ".equal")], base + ".mask", [attr("to", 1)])
      let count = fresh(base + ".count")
      reduce("ReduceSum", mask, axes: axes, keepdims: true, count)
      add("Mul", [mask, add1("Div", [dy, count], base + ".share")], y)

    case .crossEntropyBackward:
      let classes = staticShape(node.operands[1])[1]
      let p = add1("Softmax", [x[1]], base + ".softmax", [attr("axis", 1)])
      let diff = add1("Sub", [p, oneHot(x[2], classes: classes, base)], base + ".diff")
      let rows = add1(
        "Cast",
        [
          add1(
            "Gather", [add1("Shape", [x[1]], base + ".shape"), scalarInt(0)], base + ".n",
            [attr("axis", 0)])
        ], base + ".rows", [attr("to", 1)])
      add("Mul", [diff, add1("Div", [x[0], rows], base + ".scale")], y)

    case .conv2dBackwardInput:
      let a = ConvolutionInputGradientAttributes(of: node)
      let k = staticShape(node.operands[1]), dyShape = staticShape(node.operands[0])
      let g = a.geometry
      let padding = [
        outputPadding(
          input: dyShape[2], size: a.inputSize.h, kernel: k[2], stride: g.stride.h, padding: g.padding.h,
          dilation: g.dilation.h),
        outputPadding(
          input: dyShape[3], size: a.inputSize.w, kernel: k[3], stride: g.stride.w, padding: g.padding.w,
          dilation: g.dilation.w),
      ]
      guard padding.allSatisfy({ $0 >= 0 }) else { throw Writer.noForm("a negative output padding") }
      add("ConvTranspose", x, y, convAttributes(g, kernel: Pair(k[2], k[3])) + [attr("output_padding", ints: padding)])

    case .maxPool2dBackward:
      // Each window's gradient goes to the first maximum, the index MaxPool reports
      // (flat over the whole tensor), summed where windows overlap.
      guard opset >= 16 else { throw Writer.noForm("ScatterElements with reduction 'add' needs opset 16 or later") }
      let window = MaxPoolAttributes(of: node).window
      let pooled = fresh(base + ".pooled"), indices = fresh(base + ".indices")
      add("MaxPool", [x[1]], [pooled, indices], poolAttributes(window, max: true))
      let flatIndices = add1("Reshape", [indices, ints([-1])], base + ".flat_indices")
      let flatDy = add1("Reshape", [x[0], ints([-1])], base + ".flat_dy")
      let flatX = add1("Reshape", [x[1], ints([-1])], base + ".flat_x")
      let zeros = add1(
        "ConstantOfShape", [add1("Shape", [flatX], base + ".size")], base + ".zeros",
        [attr("value", tensor: tensorProto("", Tensor(shape: [1], f32: [0])))])
      let scattered = add1(
        "ScatterElements", [zeros, flatIndices, flatDy], base + ".scattered",
        [attr("axis", 0), attr("reduction", string: "add")])
      add("Reshape", [scattered, add1("Shape", [x[1]], base + ".shape")], y)

    case .avgPool2dBackward:
      // Each window's gradient spread evenly over it: a transposed depthwise convolution with
      // a kernel of 1/(kh·kw).
      let window = AvgPoolAttributes(of: node).window
      let dyShape = staticShape(node.operands[0]), xShape = staticShape(node.operands[1])
      guard !window.ceilMode, window.countIncludePad || window.padding == Pair(0) else {
        throw Writer.noForm("ceil_mode, or padding left out of the count")
      }
      let channels = xShape[1]
      let area = window.kernel.h * window.kernel.w
      let kernel = constant(
        Tensor(
          shape: [channels, 1, window.kernel.h, window.kernel.w],
          f32: [Float](repeating: 1 / Float(area), count: channels * area)), base + ".kernel")
      let geometry = ConvolutionGeometry(
        stride: window.stride, padding: window.padding, dilation: Pair(1),
        groups: channels)
      let padding = [
        outputPadding(
          input: dyShape[2], size: xShape[2], kernel: window.kernel.h, stride: window.stride.h,
          padding: window.padding.h, dilation: 1),
        outputPadding(
          input: dyShape[3], size: xShape[3], kernel: window.kernel.w, stride: window.stride.w,
          padding: window.padding.w, dilation: 1),
      ]
      add(
        "ConvTranspose", [x[0], kernel], y,
        convAttributes(geometry, kernel: window.kernel)
          + [attr("output_padding", ints: padding)])

    case .layerNormBackward:
      // Row statistics recomputed from x; dx = (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))/√(var + eps) with
      // ĝ = dy·weight, and the weight's and bias's gradients summed over the leading axes.
      let a = LayerNormAttributes(of: node)
      let rank = type(node.operands[1]).rank
      let axis = a.axis < 0 ? a.axis + rank : a.axis
      let rows = Array(axis..<rank), lead = Array(0..<axis)
      let mean = fresh(base + ".mean"), variance = fresh(base + ".variance")
      reduce("ReduceMean", x[1], axes: rows, keepdims: true, mean)
      let centred = add1("Sub", [x[1], mean], base + ".centred")
      reduce("ReduceMean", add1("Mul", [centred, centred], base + ".squares"), axes: rows, keepdims: true, variance)
      let sd = add1("Sqrt", [add1("Add", [variance, scalar(a.eps)], base + ".var_eps")], base + ".sd")
      let xhat = add1("Div", [centred, sd], base + ".xhat")
      let ghat = add1("Mul", [x[0], x[2]], base + ".ghat")
      let m1 = fresh(base + ".mean_g"), m2 = fresh(base + ".mean_gx")
      reduce("ReduceMean", ghat, axes: rows, keepdims: true, m1)
      reduce("ReduceMean", add1("Mul", [ghat, xhat], base + ".gx"), axes: rows, keepdims: true, m2)
      let numerator = add1(
        "Sub",
        [
          add1("Sub", [ghat, m1], base + ".g_centred"),
          add1("Mul", [xhat, m2], base + ".x_m2"),
        ], base + ".numerator")
      add("Div", [numerator, sd], [y[0]])
      if y.count > 1 {
        reduce("ReduceSum", add1("Mul", [x[0], xhat], base + ".dy_xhat"), axes: lead, keepdims: false, y[1])
      }
      if y.count > 2 { reduce("ReduceSum", x[0], axes: lead, keepdims: false, y[2]) }

    case .lrnBackward:
      // ONNX has no LRN gradient, and its window sum over channels has no one-node form.
      throw Writer.noForm("the gradient through a local response normalisation")

    case .conv2dBackwardWeight, .batchNormTrain, .batchNormTrainBackward:
      // Training ops: an inference graph's taps differentiate values, never weights, and
      // batch statistics are fixed.
      throw Writer.noForm()
    }
  }

  func convAttributes(_ g: ConvolutionGeometry, kernel: Pair) -> [Onnx_AttributeProto] {
    [
      attr("kernel_shape", ints: [kernel.h, kernel.w]), attr("strides", ints: [g.stride.h, g.stride.w]),
      attr("pads", ints: [g.padding.h, g.padding.w, g.padding.h, g.padding.w]),
      attr("dilations", ints: [g.dilation.h, g.dilation.w]), attr("group", g.groups),
    ]
  }

  func poolAttributes(_ w: PoolWindow, max: Bool) -> [Onnx_AttributeProto] {
    var a = [
      attr("kernel_shape", ints: [w.kernel.h, w.kernel.w]), attr("strides", ints: [w.stride.h, w.stride.w]),
      attr("pads", ints: [w.padding.h, w.padding.w, w.padding.h, w.padding.w]),
      attr("ceil_mode", w.ceilMode ? 1 : 0),
    ]
    if max {
      a.append(attr("dilations", ints: [w.dilation.h, w.dilation.w]))
    } else {
      a.append(attr("count_include_pad", w.countIncludePad ? 1 : 0))
    }
    return a
  }

  /// The activated gates of pre-activations `[B, 4H]` (order i, f, g, o).
  mutating func lstmGates(_ pre: String, hidden: Int, _ base: String) -> (i: String, f: String, g: String, o: String) {
    let parts = ["i", "f", "g", "o"].map { fresh(base + ".pre_" + $0) }
    add("Split", [pre, ints([hidden, hidden, hidden, hidden])], parts, [attr("axis", 1)])
    return (
      add1("Sigmoid", [parts[0]], base + ".gate_i"), add1("Sigmoid", [parts[1]], base + ".gate_f"),
      add1("Tanh", [parts[2]], base + ".gate_g"), add1("Sigmoid", [parts[3]], base + ".gate_o")
    )
  }

  /// `lstm` as ONNX `LSTM`: weights stacked per direction with the gates reordered from
  /// PyTorch's i, f, g, o to ONNX's i, o, f, c; biases `[W_b, R_b]`.
  mutating func lstm(_ node: Node, _ x: [String], _ y: [String]) throws(ONNXExportError) {
    let a = LSTMAttributes(of: node)
    let h = a.hidden, base = y[0]
    func reordered(_ w: String, _ tag: String) -> String {
      let parts = ["i", "f", "g", "o"].map { fresh(base + "." + tag + "_" + $0) }
      add("Split", [w, ints([h, h, h, h])], parts, [attr("axis", 0)])
      return add1("Concat", [parts[0], parts[3], parts[1], parts[2]], base + "." + tag + "_iofc", [attr("axis", 0)])
    }
    func direction(_ offset: Int, _ tag: String) -> (w: String, r: String, b: String) {
      let w = add1("Unsqueeze", [reordered(x[offset], tag + "w"), ints([0])], base + "." + tag + "W")
      let r = add1("Unsqueeze", [reordered(x[offset + 1], tag + "r"), ints([0])], base + "." + tag + "R")
      let b = add1(
        "Concat", [reordered(x[offset + 2], tag + "wb"), reordered(x[offset + 3], tag + "rb")],
        base + "." + tag + "bias", [attr("axis", 0)])
      return (w, r, add1("Unsqueeze", [b, ints([0])], base + "." + tag + "B"))
    }
    var parts = [direction(1, "f")]
    if a.bidirectional { parts.append(direction(5, "r")) }
    let (w, r, b): (String, String, String)
    if parts.count == 1 {
      (w, r, b) = parts[0]
    } else {
      w = add1("Concat", parts.map(\.w), base + ".W", [attr("axis", 0)])
      r = add1("Concat", parts.map(\.r), base + ".R", [attr("axis", 0)])
      b = add1("Concat", parts.map(\.b), base + ".B", [attr("axis", 0)])
    }
    let attributes = [attr("hidden_size", h), attr("direction", string: a.bidirectional ? "bidirectional" : "forward")]
    // Time first ([T, B, in]): ONNX Runtime runs only `layout = 0`.
    let input = add1("Transpose", [x[0]], base + ".time_first", [attr("perm", ints: [1, 0, 2])])
    let timeFirst = add1("LSTM", [input, w, r, b], base + ".lstm", attributes)
    let out = add1("Transpose", [timeFirst], base + ".batch_first", [attr("perm", ints: [2, 0, 1, 3])])
    // [B, T, directions, H] → [B, T, directions·H], or the last step's [B, directions·H].
    if a.last {
      let step = add1("Gather", [out, scalarInt(-1)], base + ".last", [attr("axis", 1)])
      add("Reshape", [step, ints([0, -1])], y)
    } else {
      add("Reshape", [out, ints([0, 0, -1])], y)
    }
  }
}

/// What a Glassbox export carries besides its nodes: its `metadata_props` and its initializers.
public struct ONNXExportedContents: Sendable {
  /// `metadata_props` by key.
  public var metadata: [String: String]
  /// Initializers by name.
  public var initializers: [String: Tensor]
}

extension ONNXImporter {
  /// The metadata and initializers of an ONNX file whose metadata holds `key` (a Glassbox
  /// export), read without converting its nodes; nil for any other ONNX file.
  public static func exportedContents(contentsOf path: String, key: String) throws(ONNXError) -> ONNXExportedContents? {
    let model = try ONNXFile.model(try ONNXFile.bytes(of: path), file: path)
    guard model.metadataProps.contains(where: { $0.key == key }) else { return nil }
    var metadata: [String: String] = [:]
    for e in model.metadataProps { metadata[e.key] = e.value }
    let directory = (path as NSString).deletingLastPathComponent
    let context = ONNXFile.Context(file: path, directory: directory.isEmpty ? "." : directory)
    var tensors: [String: Tensor] = [:]
    for t in model.graph.initializer {
      do {
        let c = try ONNXFile.constant(t, what: "initializer '\(t.name)'", context: context)
        switch c.dtype {
        case .f32, .f64: tensors[t.name] = Tensor(shape: c.shape, f32: try c.floatValues())
        case .i64: tensors[t.name] = Tensor(shape: c.shape, storage: .i64(try c.intValues().map { Int64($0) }))
        case .bool: tensors[t.name] = Tensor(shape: c.shape, storage: .bool(try c.intValues().map { $0 != 0 }))
        }
      } catch {
        let reason =
          switch error {
          case .unsupportedOperator: "its type is not supported"
          case .unsupported(let m), .invalid(let m): m
          }
        throw ONNXError(file: path, "initializer '\(t.name)' cannot be read: \(reason)")
      }
    }
    return ONNXExportedContents(metadata: metadata, initializers: tensors)
  }
}
