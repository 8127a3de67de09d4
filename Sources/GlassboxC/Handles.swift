import CGlassboxAPI
import Foundation
import Glassbox

/// Objects behind the C API's handles. A handle is a number, never an address: numbers are
/// not reused, so a handle freed twice (or used after it was freed) is found in no table and
/// reported, where a freed address could name a new object.
final class Handles: @unchecked Sendable {
  static let shared = Handles()
  private let lock = NSLock()
  private var next: UInt = 0x10_0000
  private var objects: [UInt: AnyObject] = [:]

  /// A new handle for `object`.
  func add(_ object: AnyObject) -> OpaquePointer {
    lock.lock()
    defer { lock.unlock() }
    next += 16
    objects[next] = object
    // The bit pattern is never 0, so the pointer is never nil.
    return OpaquePointer(bitPattern: next)!
  }

  /// The object of a live handle of type `T`; `what` names the parameter in errors.
  func get<T: AnyObject>(_ handle: OpaquePointer?, _ type: T.Type, _ what: String) throws(CAPIError) -> T {
    guard let handle else { throw CAPIError(GBX_ERROR_NULL, "\(what) is NULL") }
    lock.lock()
    defer { lock.unlock() }
    guard let object = objects[UInt(bitPattern: handle)] else {
      throw CAPIError(GBX_ERROR_HANDLE, "\(what) is not a live handle (freed already, or never made by this library)")
    }
    guard let typed = object as? T else {
      throw CAPIError(
        GBX_ERROR_HANDLE, "\(what) is a handle of another kind (\(Self.kindName(object)), not \(Self.kindName(T.self)))"
      )
    }
    return typed
  }

  /// Removes a live handle of type `T` (its object goes when nothing else holds it).
  func remove<T: AnyObject>(_ handle: OpaquePointer?, _ type: T.Type, _ what: String) throws(CAPIError) {
    _ = try get(handle, type, what)
    lock.lock()
    defer { lock.unlock() }
    objects[UInt(bitPattern: handle)] = nil
  }

  static func kindName(_ object: AnyObject) -> String { kindName(type(of: object)) }
  static func kindName(_ type: AnyObject.Type) -> String {
    switch type {
    case is ModelBox.Type: "a model"
    case is SessionBox.Type: "a session"
    case is ResultBox.Type: "a result"
    default: "unknown"
    }
  }
}

/// A failure to report through a status and `gbx_last_error`.
struct CAPIError: Error {
  var status: gbx_status
  var message: String
  init(_ status: gbx_status, _ message: String) {
    self.status = status
    self.message = message
  }

  init(_ error: GlassboxError) {
    let status: gbx_status =
      switch error.kind {
      case .file: GBX_ERROR_FILE
      case .spec: GBX_ERROR_SPEC
      case .model: GBX_ERROR_MODEL
      case .input: GBX_ERROR_INPUT
      case .media: GBX_ERROR_MEDIA
      case .unsupported: GBX_ERROR_UNSUPPORTED
      case .runtime: GBX_ERROR_RUNTIME
      }
    self.init(status, error.description)
  }
}

/// C strings made once and freed with their owner.
final class CStrings {
  private var pointers: [UnsafeMutablePointer<CChar>] = []

  func make(_ s: String) -> UnsafePointer<CChar> {
    let p = strdup(s) ?? strdup("")!
    pointers.append(p)
    return UnsafePointer(p)
  }

  deinit { for p in pointers { free(p) } }
}

/// A model and the strings its signature hands out.
final class ModelBox {
  let model: Model
  let name: UnsafePointer<CChar>
  let inputs: [gbx_tensor_info]
  let outputs: [gbx_tensor_info]
  let taps: [gbx_tap_info]
  let labels: [UnsafePointer<CChar>]
  private let strings: CStrings

  init(_ model: Model) {
    let strings = CStrings()
    self.strings = strings
    self.model = model
    name = strings.make(model.name)
    func info(_ t: TensorInfo) -> gbx_tensor_info {
      var i = gbx_tensor_info()
      i.name = strings.make(t.name)
      i.dtype = cDType(t.dtype)
      i.rank = Int32(min(t.shape.count, Int(GBX_MAX_RANK)))
      withUnsafeMutableBytes(of: &i.shape) { raw in
        let sizes = raw.bindMemory(to: Int64.self)
        for (axis, d) in t.shape.prefix(Int(GBX_MAX_RANK)).enumerated() {
          if case .fixed(let n) = d { sizes[axis] = Int64(n) } else { sizes[axis] = -1 }
        }
      }
      i.shape_text = strings.make("[" + t.shape.map(\.description).joined(separator: ", ") + "]")
      return i
    }
    inputs = model.inputs.map(info)
    outputs = model.outputs.map(info)
    taps = model.taps.map { t in
      gbx_tap_info(name: strings.make(t.name), kind: strings.make(t.kind.rawValue), needs_class: t.needsClass ? 1 : 0)
    }
    labels = model.labels.map { strings.make($0) }
  }
}

/// A session (and the model it keeps alive).
final class SessionBox {
  let session: Session
  init(_ session: Session) { self.session = session }
}

/// Tensors copied out of a run, each in memory of its own, with their names.
final class ResultBox {
  private(set) var outputs: [gbx_output] = []
  private var buffers: [UnsafeMutableRawPointer] = []
  private let strings = CStrings()

  /// Adds a copy of `values` (f32) or, with `integers`, an int64 tensor.
  func add(name: String, shape: [Int], floats values: UnsafeBufferPointer<Float>) {
    let bytes = values.count * MemoryLayout<Float>.stride
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
    if let base = values.baseAddress { buffer.copyMemory(from: base, byteCount: bytes) }
    append(name: name, dtype: GBX_F32, shape: shape, buffer: buffer, bytes: bytes)
  }

  func add(name: String, integers values: [Int64]) {
    let bytes = values.count * MemoryLayout<Int64>.stride
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
    values.withUnsafeBytes { if let base = $0.baseAddress { buffer.copyMemory(from: base, byteCount: bytes) } }
    append(name: name, dtype: GBX_I64, shape: [values.count], buffer: buffer, bytes: bytes)
  }

  private func append(name: String, dtype: gbx_dtype, shape: [Int], buffer: UnsafeMutableRawPointer, bytes: Int) {
    buffers.append(buffer)
    var o = gbx_output()
    o.name = strings.make(name)
    o.dtype = dtype
    o.rank = Int32(min(shape.count, Int(GBX_MAX_RANK)))
    withUnsafeMutableBytes(of: &o.shape) { raw in
      let sizes = raw.bindMemory(to: Int64.self)
      for (axis, n) in shape.prefix(Int(GBX_MAX_RANK)).enumerated() { sizes[axis] = Int64(n) }
    }
    o.data = UnsafeRawPointer(buffer)
    o.byte_count = bytes
    outputs.append(o)
  }

  deinit { for b in buffers { b.deallocate() } }
}

func cDType(_ d: DType) -> gbx_dtype {
  switch d {
  case .f32: GBX_F32
  case .f64: GBX_F64
  case .i64: GBX_I64
  case .bool: GBX_BOOL
  }
}

func swiftDType(_ d: gbx_dtype) -> DType? {
  switch d {
  case GBX_F32: .f32
  case GBX_F64: .f64
  case GBX_I64: .i64
  case GBX_BOOL: .bool
  default: nil
  }
}
