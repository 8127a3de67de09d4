import GlassboxIR
import SwiftProtobuf

/// The fixed 64-byte header that precedes the protobuf message (see Formats/glassbox.proto).
///
/// ```
/// 0  "GBXMODEL"   8  u32 version   12  u32 message CRC-32   16  u64 message length M
/// 24 u64 weights offset W (= 64 + M rounded up to 64)   32  u64 weights length L   40  zeros
/// ```
enum ModelLayout {
  static let magic = Array("GBXMODEL".utf8)
  static let headerSize = 64
  /// Tensor data and the weight section start at multiples of this.
  static let alignment = 64
  /// Protobuf's own limit on one message.
  static let maxMessageBytes = Int(Int32.max)
}

/// Graph → protobuf message, and the bytes of a whole file.
enum ModelEncoder {
  /// The bytes of a file; with `weights: false`, the protobuf message alone, its parameters
  /// without data (`c.weights` unread).
  static func encode(
    _ c: ModelContents, fileName: String, weights withWeights: Bool = true
  ) throws(ModelFileError)
    -> [UInt8]
  {
    func fail(_ m: String) -> ModelFileError { ModelFileError(path: fileName, m) }
    let g = c.graph
    let problems = Verifier.verify(g)
    if let first = problems.first {
      throw fail(
        "graph fails verification: \(first.message)\(problems.count > 1 ? " (and \(problems.count - 1) more)" : "")")
    }
    guard !withWeights || c.weights.count == g.parameters.count else {
      throw fail("\(c.weights.count) weight tensors for \(g.parameters.count) parameters")
    }
    if !c.labels.isEmpty, let n = g.labelCount, n != c.labels.count {
      throw fail("\(c.labels.count) labels but output '\(g.outputs[0].name)' has \(n) classes")
    }

    var model = Glassbox_Model()
    model.formatVersion = UInt32(ModelFile.formatVersion)
    model.labels = c.labels
    model.provenance = provenance(c.provenance)
    var pg = Glassbox_Graph()
    pg.name = g.name
    pg.values = g.values.map { v in
      var pv = Glassbox_Value()
      pv.name = v.name
      pv.type = type(v.type)
      switch v.origin {
      case .input(let k): pv.input = UInt32(k)
      case .parameter(let k): pv.parameter = UInt32(k)
      case .node(let n, let r):
        var nr = Glassbox_NodeResult()
        nr.node = UInt32(n.index)
        nr.result = UInt32(r)
        pv.node = nr
      }
      return pv
    }
    pg.inputs = g.inputs.map { UInt32($0.index) }
    pg.outputs = g.outputs.map { o in
      var po = Glassbox_Output()
      po.name = o.name
      po.value = UInt32(o.value.index)
      return po
    }
    // Weight section: each tensor at the next multiple of 64.
    var section: [UInt8] = []
    var params: [Glassbox_Parameter] = []
    for (p, w) in zip(g.parameters, withWeights ? c.weights : g.parameters.map { _ in Tensor(shape: [0], f32: []) }) {
      var pp = Glassbox_Parameter()
      pp.name = p.name
      pp.type = type(p.type)
      pp.role = p.role == .trainable ? .trainable : .buffer
      pp.initializer = initializer(p.initializer)
      pp.value = UInt32(p.value.index)
      guard withWeights else {
        params.append(pp)
        continue
      }
      guard w.isConsistent, w.type == p.type else {
        throw fail("parameter '\(p.name)' is \(p.type) but its weights are \(w.type)")
      }
      section += [UInt8](
        repeating: 0, count: (ModelLayout.alignment - section.count % ModelLayout.alignment) % ModelLayout.alignment)
      var data = Glassbox_TensorData()
      data.offset = UInt64(section.count)
      data.length = UInt64(w.byteCount)
      data.crc32 = w.withLittleEndianBytes { CRC32.checksum($0) }
      w.withLittleEndianBytes { section.append(contentsOf: $0) }
      pp.data = data
      params.append(pp)
    }
    pg.parameters = params
    pg.nodes = g.nodes.map { n in
      var pn = Glassbox_Node()
      pn.op = n.op.name
      pn.operands = n.operands.map { UInt32($0.index) }
      pn.results = n.results.map { UInt32($0.index) }
      pn.attributes = attributes(n.attributes)
      return pn
    }
    pg.taps = g.taps.map { t in
      var pt = Glassbox_Tap()
      pt.name = t.name
      pt.kind = t.kind.rawValue
      pt.operands = t.operands.map { UInt32($0.index) }
      pt.options = attributes(t.options)
      pt.type = type(t.type)
      return pt
    }
    pg.scopes = g.scopes.map { s in
      var ps = Glassbox_Scope()
      ps.path = s.path
      ps.block = s.block
      if let steps = s.steps {
        var st = Glassbox_Steps()
        st.batch = dim(steps.batch)
        st.time = dim(steps.time)
        ps.steps = st
      }
      return ps
    }
    pg.recipes = g.recipes.map { r in
      var pr = Glassbox_Recipe()
      pr.input = r.input
      pr.kind = r.kind.rawValue
      pr.options = attributes(r.options)
      return pr
    }
    model.graph = pg

    let message: [UInt8]
    do {
      var options = BinaryEncodingOptions()
      options.useDeterministicOrdering = true
      message = try model.serializedBytes(options: options)
    } catch {
      throw fail("cannot encode the model: \(error)")
    }
    guard message.count <= ModelLayout.maxMessageBytes else {
      throw fail("the graph's message is \(message.count) bytes; protobuf's limit is \(ModelLayout.maxMessageBytes)")
    }
    guard withWeights else { return message }
    return assemble(message: message, weightSection: section)
  }

  /// Header, message, padding and weight section: the bytes of a file.
  static func assemble(
    message: [UInt8], weightSection section: [UInt8], version: Int = ModelFile.formatVersion
  ) -> [UInt8] {
    let weightsOffset =
      (ModelLayout.headerSize + message.count + ModelLayout.alignment - 1) / ModelLayout.alignment
      * ModelLayout.alignment
    var out: [UInt8] = []
    out.reserveCapacity(weightsOffset + section.count)
    out += ModelLayout.magic
    out.appendLE(UInt32(version))
    out.appendLE(CRC32.checksum(message))
    out.appendLE(UInt64(message.count))
    out.appendLE(UInt64(weightsOffset))
    out.appendLE(UInt64(section.count))
    out += [UInt8](repeating: 0, count: ModelLayout.headerSize - out.count)
    out += message
    out += [UInt8](repeating: 0, count: weightsOffset - out.count)
    out += section
    return out
  }

  static func dim(_ d: Dim) -> Glassbox_Dim {
    var pd = Glassbox_Dim()
    pd.coefficient = Int64(d.coefficient)
    pd.symbols = d.symbols
    return pd
  }

  static func type(_ t: TensorType) -> Glassbox_TensorType {
    var pt = Glassbox_TensorType()
    pt.dtype =
      switch t.dtype {
      case .f32: .f32
      case .f64: .f64
      case .i64: .i64
      case .bool: .bool
      }
    pt.shape = t.shape.map(dim)
    return pt
  }

  static func initializer(_ i: ParameterInit) -> Glassbox_Initializer {
    var pi = Glassbox_Initializer()
    switch i {
    case .zeros: pi.kind = .zeros
    case .ones: pi.kind = .ones
    case .uniform(let b): pi.kind = .uniform; pi.scale = b
    case .normal(let s): pi.kind = .normal; pi.scale = s
    }
    return pi
  }

  static func attrValue(_ v: AttrValue) -> Glassbox_AttrValue {
    var pv = Glassbox_AttrValue()
    switch v {
    case .int(let x): pv.int = Int64(x)
    case .float(let x): pv.float = x
    case .bool(let x): pv.bool = x
    case .string(let x): pv.string = x
    case .dim(let d): pv.dim = dim(d)
    case .list(let items):
      var l = Glassbox_AttrList()
      l.items = items.map(attrValue)
      pv.list = l
    }
    return pv
  }

  static func attributes(_ a: Attributes) -> [Glassbox_Attribute] {
    a.names.map { name in
      var pa = Glassbox_Attribute()
      pa.name = name
      pa.value = attrValue(a[name] ?? .list([]))
      return pa
    }
  }

  static func provenance(_ p: Provenance) -> Glassbox_Provenance {
    var pp = Glassbox_Provenance()
    pp.producer = p.producer
    pp.producerVersion = p.producerVersion
    pp.specSha256 = p.specSHA256
    pp.bindings = p.bindings.sorted { $0.key < $1.key }.map { k, v in
      var b = Glassbox_Binding()
      b.symbol = k
      b.value = Int64(v)
      return b
    }
    switch p.weights {
    case .unknown: break
    case .initialized(let seed): pp.initSeed = seed
    case .imported(let sha): pp.importedSha256 = sha
    }
    if let t = p.training {
      var pt = Glassbox_Training()
      pt.optimizer = t.optimizer
      pt.learningRate = t.learningRate
      pt.epochs = UInt32(clamping: t.epochs)
      pt.batchSize = UInt32(clamping: t.batchSize)
      pt.seed = t.seed
      pt.examples = UInt64(clamping: t.examples)
      pt.metrics = t.metrics.map { m in
        var pm = Glassbox_Metric()
        pm.name = m.name
        pm.value = m.value
        return pm
      }
      pp.training = pt
    }
    return pp
  }
}

extension ModelFile {
  /// A file around any message and weight section, with a correct header and message CRC:
  /// lets a fuzzer's mutations reach the message decoder past the checksum.
  @_spi(Fuzzing) public static func assembleForFuzzing(message: [UInt8], weightSection: [UInt8]) -> [UInt8] {
    ModelEncoder.assemble(message: message, weightSection: weightSection)
  }
}

/// Protobuf bytes of any generated message, for tests that build hostile files (so only this
/// module imports SwiftProtobuf).
func protobufBytes(of message: some SwiftProtobuf.Message) throws -> [UInt8] {
  try message.serializedBytes()
}

/// A generated message decoded from protobuf bytes, for the same tests.
func protobufMessage<M: SwiftProtobuf.Message>(_: M.Type, from bytes: [UInt8]) throws -> M {
  try M(serializedBytes: bytes)
}
