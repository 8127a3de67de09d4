#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GlassboxIR
import SwiftProtobuf

/// The bytes of a model file: a read-only memory mapping, or an owned copy.
final class ModelBytes: @unchecked Sendable {
  let buffer: UnsafeRawBufferPointer
  private let mapped: Bool

  /// Maps `fd` read-only; `size` > 0.
  init?(mapping fd: Int32, size: Int) {
    guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else { return nil }
    buffer = UnsafeRawBufferPointer(start: p, count: size)
    mapped = true
  }

  init(copying bytes: UnsafeRawBufferPointer) {
    let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: ModelLayout.alignment)
    if bytes.count > 0 { p.copyMemory(from: bytes) }
    buffer = UnsafeRawBufferPointer(start: p.baseAddress, count: bytes.count)
    mapped = false
  }

  deinit {
    if mapped {
      munmap(UnsafeMutableRawPointer(mutating: buffer.baseAddress), buffer.count)
    } else {
      buffer.baseAddress.map { UnsafeMutableRawPointer(mutating: $0).deallocate() }
    }
  }
}

/// A loaded, checked `.model` file: its verified graph, its weights in place (in a read-only
/// mapping of the file), labels and provenance.
///
/// Loading trusts nothing: the header's lengths and offsets, every count, size and offset in
/// the message are checked with overflow-safe arithmetic against the file's size before
/// anything is allocated; the message and every tensor are checked against their CRC-32s; the
/// graph is rebuilt through GlassboxIR and verified (types re-inferred) before it is returned.
public final class ModelFile: @unchecked Sendable {
  /// The newest file format version this build reads and the one it writes.
  public static let formatVersion = 1

  public let path: String
  public let graph: Graph
  public let labels: [String]
  public let provenance: Provenance
  /// The file's size in bytes.
  public let byteCount: Int
  /// Total size of the weights in bytes (parameters and buffers).
  public var weightByteCount: Int { weightRanges.reduce(0) { $0 + $1.count } }

  private let bytes: ModelBytes
  /// Absolute file range of each parameter's bytes, in `graph.parameters` order.
  private let weightRanges: [Range<Int>]

  private init(
    path: String, graph: Graph, labels: [String], provenance: Provenance, bytes: ModelBytes,
    weightRanges: [Range<Int>]
  ) {
    self.path = path
    self.graph = graph
    self.labels = labels
    self.provenance = provenance
    self.bytes = bytes
    self.byteCount = bytes.buffer.count
    self.weightRanges = weightRanges
  }

  /// Calls `body` with parameter `index`'s bytes, in place in the file: row-major,
  /// little-endian, 64-byte aligned, exactly `graph.parameters[index].type`'s size.
  public func withWeightBytes<R>(ofParameter index: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try withExtendedLifetime(bytes) {
      try body(UnsafeRawBufferPointer(rebasing: bytes.buffer[weightRanges[index]]))
    }
  }

  /// Parameter `index`'s weights as a host tensor (a copy).
  public func weight(ofParameter index: Int) -> Tensor {
    let p = graph.parameters[index]
    let shape = p.type.shape.map { $0.staticValue ?? 0 }
    return withWeightBytes(ofParameter: index) { b in
      // Sizes and bool bytes were checked at load, so this cannot fail.
      (try? Tensor(dtype: p.type.dtype, shape: shape, littleEndianBytes: b))
        ?? Tensor(zeros: p.type.dtype, shape: shape)
    }
  }

  /// Every parameter's weights under its name (PyTorch `state_dict` keys), in graph order.
  public func namedWeights() -> [NamedTensor] {
    graph.parameters.indices.map { NamedTensor(graph.parameters[$0].name, weight(ofParameter: $0)) }
  }

  /// Everything in the file, as `write` takes it.
  public var contents: ModelContents {
    ModelContents(
      graph: graph, weights: graph.parameters.indices.map { weight(ofParameter: $0) }, labels: labels,
      provenance: provenance)
  }

  // MARK: Writing

  /// The bytes of a `.model` file (layout in Formats/glassbox.proto); `fileName` names the
  /// destination in errors. The graph must verify and every parameter have static weights.
  public static func encode(_ contents: ModelContents, fileName: String = "model") throws(ModelFileError) -> [UInt8] {
    try ModelEncoder.encode(contents, fileName: fileName)
  }

  /// Writes a `.model` file through a temporary file and a rename: never a half-written file.
  public static func write(_ contents: ModelContents, to path: String) throws(ModelFileError) {
    let bytes = try encode(contents, fileName: path)
    do {
      try FileIO.writeAtomically(path, bytes: bytes)
    } catch {
      throw ModelFileError(path: path, error.message)
    }
  }

  /// A model's graph, labels and provenance without its weights: the protobuf message of a
  /// `.model` file alone, its parameters without data. Another format that carries the
  /// weights itself (an ONNX export) keeps this to give back the same graph.
  public static func encodeDescription(
    graph: Graph, labels: [String], provenance: Provenance
  )
    throws(ModelFileError) -> [UInt8]
  {
    try ModelEncoder.encode(
      ModelContents(graph: graph, weights: [], labels: labels, provenance: provenance),
      fileName: graph.name, weights: false)
  }

  /// Decodes what `encodeDescription` wrote: the graph rebuilt and verified, labels checked
  /// against the class count, provenance. `fileName` names the source in errors.
  public static func decodeDescription(
    _ bytes: [UInt8], fileName: String
  ) throws(ModelFileError)
    -> (graph: Graph, labels: [String], provenance: Provenance)
  {
    let model: Glassbox_Model
    do {
      model = try Glassbox_Model(serializedBytes: bytes)
    } catch {
      throw ModelFileError(path: fileName, "the Glassbox graph it carries does not decode (\(error))")
    }
    guard model.hasGraph else { throw ModelFileError(path: fileName, "the Glassbox graph it carries is empty") }
    var decoder = GraphDecoder(proto: model.graph)
    let graph: Graph
    do {
      graph = try decoder.decode()
    } catch {
      throw ModelFileError(path: fileName, "the Glassbox graph it carries: \(error.message)")
    }
    if !model.labels.isEmpty, let n = graph.labelCount, n != model.labels.count {
      throw ModelFileError(
        path: fileName,
        "\(model.labels.count) labels but output '\(graph.outputs[0].name)' has \(n) classes")
    }
    return (graph, model.labels, decodeProvenance(model.provenance))
  }

  // MARK: Loading

  /// Maps and checks a `.model` file. `checkingWeights: false` skips the weights' CRC-32s
  /// (sizes and offsets are still checked), for commands that only read the graph.
  public static func load(_ path: String, checkingWeights: Bool = true) throws(ModelFileError) -> ModelFile {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw ModelFileError(path: path, FileIO.errnoMessage("cannot open")) }
    defer { close(fd) }
    let size: Int
    do {
      size = try FileIO.regularFileSize(fd)
    } catch {
      throw ModelFileError(path: path, error.message)
    }
    guard size >= ModelLayout.headerSize else { throw tooShort(path, size) }
    guard let bytes = ModelBytes(mapping: fd, size: size) else {
      throw ModelFileError(path: path, FileIO.errnoMessage("cannot map the file"))
    }
    return try decode(bytes, path: path, checkingWeights: checkingWeights)
  }

  /// Checks and decodes the bytes of a `.model` file (a copy is kept); `fileName` names it in errors.
  public static func decode(
    _ data: [UInt8], fileName: String, checkingWeights: Bool = true
  ) throws(ModelFileError) -> ModelFile {
    guard data.count >= ModelLayout.headerSize else { throw tooShort(fileName, data.count) }
    let bytes = data.withUnsafeBytes { ModelBytes(copying: $0) }
    return try decode(bytes, path: fileName, checkingWeights: checkingWeights)
  }

  static func tooShort(_ path: String, _ size: Int) -> ModelFileError {
    ModelFileError(
      path: path,
      size == 0
        ? "file is empty (0 bytes); a .model file starts with a 64-byte header"
        : "file is \(size) bytes, shorter than the 64-byte .model header")
  }

  private static func decode(
    _ bytes: ModelBytes, path: String, checkingWeights: Bool
  ) throws(ModelFileError) -> ModelFile {
    let b = bytes.buffer
    let size = b.count
    func fail(_ m: String, at offset: Int? = nil) -> ModelFileError {
      ModelFileError(path: path, m, offsetInBytes: offset)
    }

    // Header.
    guard Array(b[0..<8]) == ModelLayout.magic else {
      throw fail("not a Glassbox model: the file does not start with \"GBXMODEL\"", at: 0)
    }
    let version = Int(b.loadLE(UInt32.self, at: 8))
    guard version <= formatVersion else {
      throw fail(
        "file has format version \(version); reading it needs a glassbox that reads format version \(version) (this one reads up to version \(formatVersion))",
        at: 8)
    }
    guard version >= 1 else { throw fail("format version 0 is not a valid version", at: 8) }
    let messageCRC = b.loadLE(UInt32.self, at: 12)
    let messageLength = b.loadLE(UInt64.self, at: 16)
    let weightsOffset = b.loadLE(UInt64.self, at: 24)
    let weightsLength = b.loadLE(UInt64.self, at: 32)
    guard b[40..<64].allSatisfy({ $0 == 0 }) else { throw fail("reserved header bytes are not zero", at: 40) }
    guard messageLength <= UInt64(ModelLayout.maxMessageBytes),
      let m = Checked.int(messageLength), m <= size - ModelLayout.headerSize
    else {
      throw fail(
        "header claims a \(messageLength)-byte message but the file has \(size - ModelLayout.headerSize) bytes after the header",
        at: 16)
    }
    guard let expectedW = Checked.alignUp(ModelLayout.headerSize + m, to: ModelLayout.alignment),
      weightsOffset == UInt64(expectedW)
    else {
      throw fail("header's weights offset \(weightsOffset) is not the message's end rounded up to 64 bytes", at: 24)
    }
    guard expectedW <= size, weightsLength == UInt64(size - expectedW) else {
      throw fail(
        "header claims \(weightsOffset) + \(weightsLength) bytes but the file has \(size) (truncated or padded)", at: 32
      )
    }
    let w = expectedW
    let weightsLengthInt = size - w
    guard b[(ModelLayout.headerSize + m)..<w].allSatisfy({ $0 == 0 }) else {
      throw fail("padding after the message is not zero", at: ModelLayout.headerSize + m)
    }
    let message = UnsafeRawBufferPointer(rebasing: b[ModelLayout.headerSize..<(ModelLayout.headerSize + m)])
    let actualCRC = CRC32.checksum(message)
    guard actualCRC == messageCRC else {
      throw fail(
        "message checksum mismatch: the header says \(hex(messageCRC)), the bytes give \(hex(actualCRC)) (the file is corrupt)",
        at: ModelLayout.headerSize)
    }

    // Message.
    let model: Glassbox_Model
    do {
      model = try Glassbox_Model(serializedBytes: [UInt8](message))
    } catch {
      throw fail("message is not a valid Glassbox model message (\(error))", at: ModelLayout.headerSize)
    }
    guard Int(model.formatVersion) == version else {
      throw fail(
        "message says format version \(model.formatVersion) but the header says \(version)", at: ModelLayout.headerSize)
    }
    guard model.hasGraph else { throw fail("message has no graph", at: ModelLayout.headerSize) }

    var decoder = GraphDecoder(proto: model.graph)
    let graph: Graph
    do {
      graph = try decoder.decode()
    } catch {
      throw fail(error.message)
    }

    // Weights: sizes, bounds, alignment, no overlap, zero gaps, checksums.
    var ranges: [Range<Int>] = []
    ranges.reserveCapacity(graph.parameters.count)
    for (i, p) in graph.parameters.enumerated() {
      let data = model.graph.parameters[i].data
      let sizes = p.type.shape.compactMap(\.staticValue)
      guard sizes.count == p.type.rank, let count = Checked.product(sizes),
        let expected = Checked.multiply(count, p.type.dtype.byteSize)
      else {
        throw fail("parameter '\(p.name)' has type \(p.type), which has no static size")
      }
      guard data.length == UInt64(expected) else {
        throw fail("parameter '\(p.name)' of type \(p.type) needs \(expected) bytes but the file gives \(data.length)")
      }
      guard data.offset % UInt64(ModelLayout.alignment) == 0, let offset = Checked.int(data.offset),
        offset <= weightsLengthInt, expected <= weightsLengthInt - offset
      else {
        throw fail(
          "parameter '\(p.name)': \(data.length) bytes at weight offset \(data.offset) are misaligned or past the \(weightsLengthInt)-byte weight section"
        )
      }
      ranges.append((w + offset)..<(w + offset + expected))
    }
    var position = w
    for (i, r) in ranges.enumerated().sorted(by: {
      ($0.element.lowerBound, $0.offset) < ($1.element.lowerBound, $1.offset)
    }) {
      guard r.lowerBound >= position else {
        throw fail("parameter '\(graph.parameters[i].name)' overlaps another tensor's bytes", at: r.lowerBound)
      }
      guard b[position..<r.lowerBound].allSatisfy({ $0 == 0 }) else {
        throw fail("padding between tensors is not zero", at: position)
      }
      position = r.upperBound
    }
    guard b[position..<size].allSatisfy({ $0 == 0 }) else {
      throw fail("padding after the last tensor is not zero", at: position)
    }
    for (i, r) in ranges.enumerated() {
      let p = graph.parameters[i]
      let stored = model.graph.parameters[i].data.crc32
      let t = UnsafeRawBufferPointer(rebasing: b[r])
      if checkingWeights {
        let actual = CRC32.checksum(t)
        guard actual == stored else {
          throw fail(
            "tensor '\(p.name)' fails its checksum: stored \(hex(stored)), the bytes give \(hex(actual)) (the file is corrupt)",
            at: r.lowerBound)
        }
      }
      if p.type.dtype == .bool, let bad = t.firstIndex(where: { $0 > 1 }) {
        throw fail(
          "tensor '\(p.name)' holds the byte 0x\(String(t[bad], radix: 16)), not a bool", at: r.lowerBound + bad)
      }
    }

    // Labels and provenance.
    if !model.labels.isEmpty, let n = graph.labelCount, n != model.labels.count {
      throw fail("\(model.labels.count) labels but output '\(graph.outputs[0].name)' has \(n) classes")
    }
    let provenance = decodeProvenance(model.provenance)
    return ModelFile(
      path: path, graph: graph, labels: model.labels, provenance: provenance, bytes: bytes, weightRanges: ranges)
  }

  static func hex(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - s.count) + s
  }

  static func decodeProvenance(_ p: Glassbox_Provenance) -> Provenance {
    var out = Provenance()
    out.producer = p.producer
    out.producerVersion = p.producerVersion
    out.specSHA256 = p.specSha256
    for b in p.bindings { out.bindings[b.symbol] = Int(b.value) }
    switch p.weights {
    case .initSeed(let s)?: out.weights = .initialized(seed: s)
    case .importedSha256(let s)?: out.weights = .imported(sha256: s)
    case nil: out.weights = .unknown
    }
    if p.hasTraining {
      let t = p.training
      var tr = Training()
      tr.optimizer = t.optimizer
      tr.learningRate = t.learningRate
      tr.epochs = Int(t.epochs)
      tr.batchSize = Int(t.batchSize)
      tr.seed = t.seed
      tr.examples = Int(clamping: t.examples)
      tr.metrics = t.metrics.map { ($0.name, $0.value) }
      out.training = tr
    }
    return out
  }
}
