import GlassboxIR

/// A tensor with its name (a PyTorch `state_dict` key).
public struct NamedTensor: Sendable, Equatable {
  public var name: String
  public var tensor: Tensor
  public init(_ name: String, _ tensor: Tensor) {
    self.name = name
    self.tensor = tensor
  }
}

/// The contents of a safetensors file.
public struct SafeTensorsFile: Sendable, Equatable {
  /// Tensors in the order of their data in the file.
  public var tensors: [NamedTensor]
  /// The `__metadata__` strings (`{"format": "pt"}` from PyTorch).
  public var metadata: [String: String]

  public init(tensors: [NamedTensor], metadata: [String: String] = [:]) {
    self.tensors = tensors
    self.metadata = metadata
  }

  /// The tensor with this name, if any.
  public subscript(name: String) -> Tensor? { tensors.first { $0.name == name }?.tensor }
}

/// Hugging Face's safetensors format, as the reference implementation reads and writes it.
///
/// ```
/// offset 0   8 bytes   N, the header length (u64 little-endian)
///        8   N bytes   JSON object, UTF-8, padded with spaces to a multiple of 8:
///                      {"__metadata__": {"format": "pt"},
///                       "fc.weight": {"dtype": "F32", "shape": [1000, 512], "data_offsets": [0, 2048000]}, …}
///        8+N           the data: every tensor's row-major little-endian bytes at its
///                      [begin, end) offsets, relative to 8+N; tensors tile the data exactly
/// ```
/// Every offset and size is checked with overflow-safe arithmetic against the file's size;
/// overlapping tensors, gaps, and ranges past the end are refused. Element types F32, F64, I64
/// and BOOL are read as they are; F16 and BF16 (PyTorch's `half` and `bfloat16` weights) are
/// converted to F32 on load, exactly; others are refused naming the tensor.
public enum SafeTensors {
  /// The 16-bit floating-point types read as F32.
  enum Half { case float16, bfloat16 }

  /// The reference implementation's header limit.
  static let maxHeaderBytes = 100_000_000

  public static func read(_ path: String) throws(TensorFileError) -> SafeTensorsFile {
    let bytes: [UInt8]
    do {
      bytes = try FileIO.readWhole(path)
    } catch {
      throw TensorFileError(path: path, error.message)
    }
    return try decode(bytes, fileName: path)
  }

  /// Decodes the bytes of a safetensors file; `fileName` names it in errors.
  public static func decode(_ bytes: [UInt8], fileName: String) throws(TensorFileError) -> SafeTensorsFile {
    try bytes.withUnsafeBytes { b in
      Result { () throws(TensorFileError) in try decode(b, fileName: fileName) }
    }.get()
  }

  static func decode(_ b: UnsafeRawBufferPointer, fileName: String) throws(TensorFileError) -> SafeTensorsFile {
    func fail(_ message: String, at offset: Int? = nil) -> TensorFileError {
      TensorFileError(path: fileName, message, offsetInBytes: offset)
    }
    guard b.count >= 8 else {
      throw fail(
        b.isEmpty
          ? "file is empty; a safetensors file starts with an 8-byte header length"
          : "file is \(b.count) bytes, too short for the 8-byte header length")
    }
    let claimed = b.loadLE(UInt64.self, at: 0)
    guard claimed <= UInt64(maxHeaderBytes) else {
      throw fail("header length \(claimed) exceeds the limit of \(maxHeaderBytes) bytes", at: 0)
    }
    let headerLength = Int(claimed)
    guard headerLength <= b.count - 8 else {
      throw fail("header length \(headerLength) runs past the end of the file (\(b.count - 8) bytes follow)", at: 0)
    }
    guard headerLength >= 2, b[8] == UInt8(ascii: "{") else {
      throw fail("header is not a JSON object", at: 8)
    }
    let json: JSONValue
    do {
      json = try JSONValue.parse(UnsafeRawBufferPointer(rebasing: b[8..<(8 + headerLength)]))
    } catch {
      throw fail("header: \(error.message)", at: 8 + error.offset)
    }
    guard case .object(let entries) = json else { throw fail("header is not a JSON object", at: 8) }

    let dataStart = 8 + headerLength
    let dataLength = b.count - dataStart
    var metadata: [String: String] = [:]
    var infos: [(name: String, dtype: DType, half: Half?, shape: [Int], begin: Int, end: Int)] = []
    for (name, entry) in entries {
      if name == "__metadata__" {
        guard case .object(let pairs) = entry else { throw fail("__metadata__ must be an object of strings", at: 8) }
        for (k, v) in pairs {
          guard case .string(let s) = v else { throw fail("__metadata__ value for '\(k)' is not a string", at: 8) }
          metadata[k] = s
        }
        continue
      }
      guard case .object(let fields) = entry else { throw fail("entry for tensor '\(name)' is not an object", at: 8) }
      var dtypeName: String?, shape: [Int]?, offsets: [Int]?
      for (key, value) in fields {
        switch key {
        case "dtype":
          guard case .string(let s) = value else { throw fail("tensor '\(name)': dtype is not a string", at: 8) }
          dtypeName = s
        case "shape":
          guard case .array(let items) = value, let dims = Optional(items.compactMap(\.nonNegativeInt)),
            dims.count == items.count
          else {
            throw fail("tensor '\(name)': shape is not a list of non-negative integers", at: 8)
          }
          shape = dims
        case "data_offsets":
          guard case .array(let items) = value, items.count == 2,
            let begin = items[0].nonNegativeInt, let end = items[1].nonNegativeInt
          else {
            throw fail("tensor '\(name)': data_offsets is not [begin, end] of non-negative integers", at: 8)
          }
          offsets = [begin, end]
        default:
          throw fail("tensor '\(name)': unexpected key '\(key)' (expected dtype, shape, data_offsets)", at: 8)
        }
      }
      guard let dtypeName, let shape, let offsets else {
        throw fail("tensor '\(name)': needs dtype, shape and data_offsets", at: 8)
      }
      let dtype: DType
      var half: Half?
      switch dtypeName {
      case "F32": dtype = .f32
      case "F64": dtype = .f64
      case "I64": dtype = .i64
      case "BOOL": dtype = .bool
      case "F16", "BF16":
        dtype = .f32
        half = dtypeName == "F16" ? .float16 : .bfloat16
      default:
        throw fail(
          "tensor '\(name)': dtype \(dtypeName) is not supported (supported: F32, F64, I64, BOOL, and F16 "
            + "and BF16 as F32)", at: 8)
      }
      let elementBytes = half == nil ? dtype.byteSize : 2
      guard let count = Checked.product(shape), let size = Checked.multiply(count, elementBytes) else {
        throw fail("tensor '\(name)': shape \(shape) has too many elements", at: 8)
      }
      let (begin, end) = (offsets[0], offsets[1])
      guard begin <= end, end <= dataLength else {
        throw fail("tensor '\(name)': data_offsets [\(begin), \(end)] lie outside the \(dataLength) data bytes", at: 8)
      }
      guard end - begin == size else {
        throw fail(
          "tensor '\(name)': shape \(shape) of \(dtypeName) needs \(size) bytes but data_offsets [\(begin), \(end)] hold \(end - begin)",
          at: 8)
      }
      infos.append((name, dtype, half, shape, begin, end))
    }
    // The tensors must tile the data exactly: no overlap, no gap, nothing left over.
    let ordered = infos.enumerated().sorted {
      ($0.element.begin, $0.element.end, $0.offset) < ($1.element.begin, $1.element.end, $1.offset)
    }
    .map(\.element)
    var position = 0
    for t in ordered {
      if t.begin < position {
        throw fail(
          "tensor '\(t.name)' at data_offsets [\(t.begin), \(t.end)] overlaps the tensor before it (which ends at \(position))",
          at: dataStart + t.begin)
      }
      if t.begin > position {
        throw fail(
          "data bytes [\(position), \(t.begin)) belong to no tensor (before '\(t.name)')", at: dataStart + position)
      }
      position = t.end
    }
    guard position == dataLength else {
      throw fail("data has \(dataLength) bytes but the tensors cover \(position)", at: dataStart + position)
    }
    var tensors: [NamedTensor] = []
    tensors.reserveCapacity(ordered.count)
    for t in ordered {
      do {
        let bytes = UnsafeRawBufferPointer(rebasing: b[(dataStart + t.begin)..<(dataStart + t.end)])
        if let half = t.half {
          let values = (0..<(bytes.count / 2)).map { i in
            let bits = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            return half == .float16 ? Float(float16Bits: bits) : Float(bfloat16Bits: bits)
          }
          tensors.append(NamedTensor(t.name, Tensor(shape: t.shape, f32: values)))
          continue
        }
        tensors.append(NamedTensor(t.name, try Tensor(dtype: t.dtype, shape: t.shape, littleEndianBytes: bytes)))
      } catch {
        throw fail("tensor '\(t.name)': \(error.message)", at: dataStart + t.begin + (error.offsetInBytes ?? 0))
      }
    }
    return SafeTensorsFile(tensors: tensors, metadata: metadata)
  }

  static func dtypeName(_ d: DType) -> String {
    switch d {
    case .f32: "F32"
    case .f64: "F64"
    case .i64: "I64"
    case .bool: "BOOL"
    }
  }

  /// The bytes of a safetensors file, laid out as the reference writer does: tensors sorted by
  /// element size (largest first) then name, packed without gaps after a header padded with
  /// spaces to a multiple of 8, so every tensor starts aligned to its element size.
  public static func encode(_ file: SafeTensorsFile) throws(TensorFileError) -> [UInt8] {
    var names = Set<String>()
    for t in file.tensors {
      guard names.insert(t.name).inserted else {
        throw TensorFileError(path: "safetensors", "tensor '\(t.name)' appears twice")
      }
      guard t.tensor.isConsistent else {
        throw TensorFileError(
          path: "safetensors", "tensor '\(t.name)' has \(t.tensor.count) elements but shape \(t.tensor.shape)")
      }
      guard t.name != "__metadata__" else {
        throw TensorFileError(path: "safetensors", "a tensor cannot be named __metadata__")
      }
    }
    let ordered = file.tensors.sorted {
      ($0.tensor.dtype.byteSize, $1.name) > ($1.tensor.dtype.byteSize, $0.name)
    }
    var entries: [(String, JSONValue)] = []
    if !file.metadata.isEmpty {
      entries.append(
        ("__metadata__", .object(file.metadata.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
    }
    var offset = 0
    for t in ordered {
      let end = offset + t.tensor.byteCount
      entries.append(
        (
          t.name,
          .object([
            ("dtype", .string(dtypeName(t.tensor.dtype))),
            ("shape", .array(t.tensor.shape.map { .integer(negative: false, magnitude: UInt64($0)) })),
            (
              "data_offsets",
              .array([
                .integer(negative: false, magnitude: UInt64(offset)),
                .integer(negative: false, magnitude: UInt64(end)),
              ])
            ),
          ])
        ))
      offset = end
    }
    var header = Array(JSONValue.object(entries).text.utf8)
    header += [UInt8](repeating: 0x20, count: (8 - header.count % 8) % 8)
    var out: [UInt8] = []
    out.reserveCapacity(8 + header.count + offset)
    out.appendLE(UInt64(header.count))
    out += header
    for t in ordered { t.tensor.withLittleEndianBytes { out.append(contentsOf: $0) } }
    return out
  }

  /// Writes a safetensors file through a temporary file and a rename.
  public static func write(_ file: SafeTensorsFile, to path: String) throws(TensorFileError) {
    let bytes: [UInt8]
    do {
      bytes = try encode(file)
    } catch {
      throw TensorFileError(path: path, error.message)
    }
    do {
      try FileIO.writeAtomically(path, bytes: bytes)
    } catch {
      throw TensorFileError(path: path, error.message)
    }
  }
}
