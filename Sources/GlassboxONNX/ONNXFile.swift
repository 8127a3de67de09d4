import Foundation
import GlassboxIR
import SwiftProtobuf

/// Reading an ONNX file: the protobuf message, and tensors with their data (inline, or in
/// external files beside the model).
///
/// Every size is checked before anything is allocated for it: a tensor may declare at most
/// `maxTensorBytes`, its stored data must be exactly what its shape and type need, and
/// external data must lie in a regular file inside the model's folder (an absolute path, a
/// `..` or a symbolic link out of the folder is refused, as ONNX itself does since
/// CVE-2022-25882 and CVE-2024-27318).
enum ONNXFile {
  /// The largest file read (protobuf's own limit on one message).
  static let maxFileBytes = Int(Int32.max)
  /// The largest tensor a model may declare, in bytes.
  static let maxTensorBytes = Int(Int32.max)

  /// The file's bytes, naming it in every error.
  static func bytes(of path: String) throws(ONNXError) -> [UInt8] {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      throw ONNXError(file: path, "no such file")
    }
    guard !isDirectory.boolValue else { throw ONNXError(file: path, "is a directory, not an ONNX model") }
    let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
    guard size <= maxFileBytes else {
      throw ONNXError(
        file: path,
        "file is \(size) bytes; an ONNX model file is at most \(maxFileBytes) (larger "
          + "models keep their weights in external data files)")
    }
    guard let data = FileManager.default.contents(atPath: path) else { throw ONNXError(file: path, "cannot be read") }
    return [UInt8](data)
  }

  /// Decodes a `ModelProto`, refusing files that are not one.
  static func model(_ bytes: [UInt8], file: String) throws(ONNXError) -> Onnx_ModelProto {
    guard !bytes.isEmpty else {
      throw ONNXError(file: file, "file is empty; expected an ONNX model (a protobuf ModelProto)")
    }
    if bytes.starts(with: Array("GBXMODEL".utf8)) {
      throw ONNXError(file: file, "is a Glassbox .model file, not an ONNX model")
    }
    let model: Onnx_ModelProto
    do {
      model = try Onnx_ModelProto(serializedBytes: bytes)
    } catch {
      throw ONNXError(
        file: file,
        "is not an ONNX model: the protobuf does not decode (\(error)); the file may be "
          + "truncated or of another format")
    }
    guard model.hasGraph, model.irVersion > 0 else {
      throw ONNXError(
        file: file,
        "is not an ONNX model: it has no " + (model.hasGraph ? "IR version" : "graph")
          + " (a truncated file, or another format)")
    }
    return model
  }

  /// ONNX `TensorProto.DataType` values the importer reads.
  enum DataType: Int32 {
    case float = 1, uint8, int8, uint16, int16, int32, int64, string, bool, float16, double, uint32, uint64
    case complex64, complex128, bfloat16

    /// Bytes per element in `raw_data`.
    var byteSize: Int {
      switch self {
      case .bool, .int8, .uint8: 1
      case .float16, .bfloat16, .int16, .uint16: 2
      case .float, .int32, .uint32: 4
      case .double, .int64, .uint64, .complex64: 8
      case .complex128: 16
      case .string: 0
      }
    }

    /// The Glassbox element type the values become.
    var dtype: DType? {
      switch self {
      case .float, .double, .float16, .bfloat16: .f32
      case .uint8, .int8, .uint16, .int16, .int32, .int64, .uint32, .uint64: .i64
      case .bool: .bool
      case .string, .complex64, .complex128: nil
      }
    }

    static func name(_ raw: Int32) -> String {
      let names = [
        1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64", 8: "STRING",
        9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
        15: "COMPLEX128", 16: "BFLOAT16", 17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2",
        20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1",
      ]
      return names[Int(raw)] ?? "type \(raw)"
    }
  }

  /// Where external data may come from: the model's folder (nil: bytes without a folder, where
  /// external data is refused).
  struct Context {
    var file: String
    var directory: String?
  }

  /// The tensor's value. `what` names it in errors (`initializer 'conv1.weight'`).
  static func constant(_ t: Onnx_TensorProto, what: String, context: Context) throws(ImportFailure) -> Constant {
    guard let type = DataType(rawValue: t.dataType), let dtype = type.dtype else {
      throw .unsupported(
        "\(what) has element type \(DataType.name(t.dataType)); Glassbox reads floating-point, "
          + "integer and boolean tensors")
    }
    guard !t.hasSegment else { throw .unsupported("\(what) is stored in segments") }
    guard t.dims.count <= Constant.maxRank else {
      throw .invalid("\(what) has rank \(t.dims.count); the limit is \(Constant.maxRank)")
    }
    var count = 1
    for d in t.dims {
      guard d >= 0 else { throw .invalid("\(what) has a negative dimension in its shape \(t.dims)") }
      let (p, overflow) = count.multipliedReportingOverflow(by: Int(d))
      guard !overflow else { throw .invalid("\(what): shape \(t.dims) has too many elements") }
      count = p
    }
    let shape = t.dims.map { Int($0) }
    let (bytes, overflow) = count.multipliedReportingOverflow(by: type.byteSize)
    guard !overflow, bytes <= maxTensorBytes else {
      throw .invalid(
        "\(what) declares shape \(t.dims) of \(DataType.name(t.dataType)): "
          + "\(overflow ? "more than \(maxTensorBytes)" : "\(bytes)") bytes, over the limit of "
          + "\(maxTensorBytes) bytes (2 GiB)")
    }
    if t.dataLocation == .external {
      let raw = try externalData(t, what: what, bytes: bytes, context: context)
      return try fromRaw(raw, type: type, dtype: dtype, shape: shape, count: count)
    }
    if t.hasRawData {
      guard t.rawData.count == bytes else {
        throw .invalid(
          "\(what): shape \(t.dims) of \(DataType.name(t.dataType)) needs \(bytes) bytes of raw data, "
            + "found \(t.rawData.count)")
      }
      return try fromRaw([UInt8](t.rawData), type: type, dtype: dtype, shape: shape, count: count)
    }
    func check(_ found: Int, _ field: String) throws(ImportFailure) {
      guard found == count else {
        throw .invalid("\(what): shape \(t.dims) has \(count) elements but \(field) holds \(found)")
      }
    }
    switch type {
    case .float:
      try check(t.floatData.count, "float_data")
      return Constant(floats: t.floatData, shape: shape)
    case .double:
      try check(t.doubleData.count, "double_data")
      return Constant(floats: t.doubleData.map { Float($0) }, shape: shape)
    case .float16, .bfloat16:
      try check(t.int32Data.count, "int32_data")
      let half = type == .float16
      return Constant(
        floats: t.int32Data.map {
          half
            ? Float(float16Bits: UInt16(truncatingIfNeeded: $0))
            : Float(bfloat16Bits: UInt16(truncatingIfNeeded: $0))
        },
        shape: shape)
    case .int64:
      try check(t.int64Data.count, "int64_data")
      return Constant(dims: t.int64Data.map { Dim(Int($0)) }, shape: shape)
    case .uint64:
      try check(t.uint64Data.count, "uint64_data")
      return Constant(dims: t.uint64Data.map { Dim(Int(truncatingIfNeeded: $0)) }, shape: shape)
    case .uint32:
      try check(t.uint64Data.count, "uint64_data")
      return Constant(dims: t.uint64Data.map { Dim(Int(truncatingIfNeeded: $0)) }, shape: shape)
    case .int32, .int16, .int8, .uint16, .uint8, .bool:
      try check(t.int32Data.count, "int32_data")
      return Constant(dims: t.int32Data.map { Dim(Int($0)) }, shape: shape, dtype: dtype)
    case .string, .complex64, .complex128:
      throw .unsupported("\(what) has element type \(DataType.name(t.dataType))")
    }
  }

  /// Little-endian raw bytes as a constant.
  static func fromRaw(
    _ raw: [UInt8], type: DataType, dtype: DType, shape: [Int], count: Int
  ) throws(ImportFailure)
    -> Constant
  {
    func load<T: FixedWidthInteger>(_: T.Type) -> [T] {
      raw.withUnsafeBytes { b in
        (0..<count).map { T(littleEndian: b.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self)) }
      }
    }
    switch type {
    case .float: return Constant(floats: load(UInt32.self).map { Float(bitPattern: $0) }, shape: shape)
    case .double: return Constant(floats: load(UInt64.self).map { Float(Double(bitPattern: $0)) }, shape: shape)
    case .float16: return Constant(floats: load(UInt16.self).map { Float(float16Bits: $0) }, shape: shape)
    case .bfloat16: return Constant(floats: load(UInt16.self).map { Float(bfloat16Bits: $0) }, shape: shape)
    case .int64: return Constant(dims: load(Int64.self).map { Dim(Int($0)) }, shape: shape)
    case .uint64: return Constant(dims: load(UInt64.self).map { Dim(Int(truncatingIfNeeded: $0)) }, shape: shape)
    case .int32: return Constant(dims: load(Int32.self).map { Dim(Int($0)) }, shape: shape)
    case .uint32: return Constant(dims: load(UInt32.self).map { Dim(Int($0)) }, shape: shape)
    case .int16: return Constant(dims: load(Int16.self).map { Dim(Int($0)) }, shape: shape)
    case .uint16: return Constant(dims: load(UInt16.self).map { Dim(Int($0)) }, shape: shape)
    case .int8: return Constant(dims: load(Int8.self).map { Dim(Int($0)) }, shape: shape)
    case .uint8: return Constant(dims: load(UInt8.self).map { Dim(Int($0)) }, shape: shape)
    case .bool: return Constant(dims: load(UInt8.self).map { Dim($0 == 0 ? 0 : 1) }, shape: shape, dtype: dtype)
    case .string, .complex64, .complex128: throw .unsupported("element type \(DataType.name(type.rawValue))")
    }
  }

  /// The bytes of a tensor stored in an external file: `location` relative to the model's
  /// folder and inside it, `offset` and `length` within the file.
  static func externalData(
    _ t: Onnx_TensorProto, what: String, bytes: Int, context: Context
  ) throws(ImportFailure)
    -> [UInt8]
  {
    var fields: [String: String] = [:]
    for entry in t.externalData { fields[entry.key] = entry.value }
    guard let location = fields["location"], !location.isEmpty else {
      throw .invalid("\(what) is stored externally but names no location")
    }
    guard let directory = context.directory else {
      throw .invalid(
        "\(what) keeps its data in the external file '\(location)', but the model was given as bytes "
          + "without a folder to find it in")
    }
    let components = location.split(separator: "/", omittingEmptySubsequences: false)
    guard !location.hasPrefix("/"), !location.contains("\\"), !location.contains("\0"),
      !components.contains(where: { $0 == ".." || $0.isEmpty })
    else {
      throw .invalid(
        "\(what): external data location '\(location)' must be a relative path inside the model's "
          + "folder (no absolute path, no '..')")
    }
    let folder = URL(fileURLWithPath: directory).resolvingSymlinksInPath().standardizedFileURL.path
    let target = URL(fileURLWithPath: folder).appendingPathComponent(location).resolvingSymlinksInPath()
      .standardizedFileURL.path
    guard target.hasPrefix(folder.hasSuffix("/") ? folder : folder + "/") else {
      throw .invalid("\(what): external data location '\(location)' leads outside the model's folder (to \(target))")
    }
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory), !isDirectory.boolValue else {
      throw .invalid("\(what): external data file '\(location)' does not exist beside the model")
    }
    let fileSize = (try? FileManager.default.attributesOfItem(atPath: target)[.size] as? Int) ?? 0
    guard let offset = Int(fields["offset"] ?? "0"), offset >= 0 else {
      throw .invalid("\(what): external data offset '\(fields["offset"] ?? "")' is not a non-negative integer")
    }
    let length: Int
    if let text = fields["length"] {
      guard let l = Int(text), l >= 0 else { throw .invalid("\(what): external data length '\(text)' is not valid") }
      length = l
    } else {
      length = bytes
    }
    guard length == bytes else {
      throw .invalid("\(what): its shape needs \(bytes) bytes but the external data length is \(length)")
    }
    guard offset <= fileSize, length <= fileSize - offset else {
      throw .invalid(
        "\(what): external data [\(offset), \(offset + length)) lies outside '\(location)' "
          + "(\(fileSize) bytes)")
    }
    guard let handle = FileHandle(forReadingAtPath: target) else {
      throw .invalid("\(what): external data file '\(location)' cannot be read")
    }
    defer { try? handle.close() }
    do {
      try handle.seek(toOffset: UInt64(offset))
      let data = try handle.read(upToCount: length) ?? Data()
      guard data.count == length else { throw ImportFailure.invalid("short read") }
      return [UInt8](data)
    } catch {
      throw .invalid("\(what): external data file '\(location)' cannot be read")
    }
  }
}
