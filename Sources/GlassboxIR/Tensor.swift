/// A tensor's data on the host: a static shape and row-major elements of one type.
///
/// This is the interchange value between file formats (`.npy`, safetensors, `.model`),
/// media decoding and the runtime; kernels work on their own arena, not on this type.
public struct Tensor: Sendable, Equatable {
  /// Elements in row-major order (the last axis varies fastest).
  public enum Storage: Sendable, Equatable {
    case f32([Float])
    case f64([Double])
    case i64([Int64])
    case bool([Bool])
  }

  public var shape: [Int]
  public var storage: Storage

  /// A tensor; `storage` must hold exactly `shape`'s product of elements.
  public init(shape: [Int], storage: Storage) {
    self.shape = shape
    self.storage = storage
  }

  public init(shape: [Int], f32 values: [Float]) { self.init(shape: shape, storage: .f32(values)) }
  public init(shape: [Int], f64 values: [Double]) { self.init(shape: shape, storage: .f64(values)) }

  /// Zeros of the given type and shape.
  public init(zeros dtype: DType, shape: [Int]) {
    let n = shape.reduce(1, *)
    switch dtype {
    case .f32: storage = .f32(Array(repeating: 0, count: n))
    case .f64: storage = .f64(Array(repeating: 0, count: n))
    case .i64: storage = .i64(Array(repeating: 0, count: n))
    case .bool: storage = .bool(Array(repeating: false, count: n))
    }
    self.shape = shape
  }

  public var dtype: DType {
    switch storage {
    case .f32: .f32
    case .f64: .f64
    case .i64: .i64
    case .bool: .bool
    }
  }

  /// Number of elements stored.
  public var count: Int {
    switch storage {
    case .f32(let v): v.count
    case .f64(let v): v.count
    case .i64(let v): v.count
    case .bool(let v): v.count
    }
  }

  /// The static type of this tensor.
  public var type: TensorType { TensorType(dtype, shape.map { Dim($0) }) }

  /// The elements converted to Double (for the reference interpreter and comparisons).
  public var doubles: [Double] {
    switch storage {
    case .f32(let v): v.map(Double.init)
    case .f64(let v): v
    case .i64(let v): v.map(Double.init)
    case .bool(let v): v.map { $0 ? 1 : 0 }
    }
  }

  /// The elements converted to Float.
  public var floats: [Float] {
    switch storage {
    case .f32(let v): v
    case .f64(let v): v.map(Float.init)
    case .i64(let v): v.map(Float.init)
    case .bool(let v): v.map { $0 ? 1 : 0 }
    }
  }
}
