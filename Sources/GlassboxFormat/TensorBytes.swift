import GlassboxIR

/// Why raw bytes do not make a tensor of the claimed type; the caller names the file.
public struct TensorBytesError: Error, Sendable, Equatable {
  public var message: String
  /// Offset within the bytes given, when one element is at fault (a bool that is not 0 or 1).
  public var offsetInBytes: Int?
}

extension Tensor {
  /// A tensor from row-major little-endian bytes (bools one byte each, 0 or 1).
  ///
  /// `bytes.count` must be exactly the element count times `dtype.byteSize`; the bytes need
  /// no alignment (they may sit anywhere in a mapped file).
  public init(dtype: DType, shape: [Int], littleEndianBytes bytes: UnsafeRawBufferPointer) throws(TensorBytesError) {
    guard let count = Checked.product(shape), let size = Checked.multiply(count, dtype.byteSize) else {
      throw TensorBytesError(message: "shape \(shape) has too many elements")
    }
    guard size == bytes.count else {
      throw TensorBytesError(message: "shape \(shape) of \(dtype.rawValue) needs \(size) bytes, found \(bytes.count)")
    }
    switch dtype {
    case .f32: self.init(shape: shape, storage: .f32(Self.copy(bytes, count: count)))
    case .f64: self.init(shape: shape, storage: .f64(Self.copy(bytes, count: count)))
    case .i64: self.init(shape: shape, storage: .i64(Self.copy(bytes, count: count)))
    case .bool:
      if let bad = bytes.firstIndex(where: { $0 > 1 }) {
        throw TensorBytesError(
          message: "bool element \(bad) is 0x\(String(bytes[bad], radix: 16)), not 0 or 1",
          offsetInBytes: bad)
      }
      self.init(shape: shape, storage: .bool(bytes.map { $0 == 1 }))
    }
  }

  /// Copies `count` elements out of possibly unaligned bytes.
  private static func copy<T>(_ bytes: UnsafeRawBufferPointer, count: Int) -> [T] {
    [T](unsafeUninitializedCapacity: count) { buffer, initialized in
      if count > 0 {
        UnsafeMutableRawBufferPointer(buffer).copyMemory(
          from: UnsafeRawBufferPointer(rebasing: bytes[..<(count * MemoryLayout<T>.stride)]))
      }
      initialized = count
    }
  }

  /// Size of the elements in bytes.
  public var byteCount: Int { count * dtype.byteSize }

  /// Calls `body` with the elements as row-major little-endian bytes (bools as 0 or 1).
  public func withLittleEndianBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    switch storage {
    case .f32(let v): return try v.withUnsafeBytes(body)
    case .f64(let v): return try v.withUnsafeBytes(body)
    case .i64(let v): return try v.withUnsafeBytes(body)
    case .bool(let v): return try v.withUnsafeBytes(body)
    }
  }

  /// Whether the element count matches the shape (a hand-built tensor may disagree).
  var isConsistent: Bool { Checked.product(shape) == count }
}
