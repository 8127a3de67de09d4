import GlassboxIR

/// A tensor whose value the importer knows: an initializer, a `Constant` node, or what shape
/// arithmetic folds to. Integer elements are dimensions, so the `Shape` of a value with a
/// symbolic batch (`[B, 3, 224, 224]`) folds through `Gather`, `Concat` and `Reshape` like any
/// other constant, and a reshape target `[B, -1]` comes out of it.
///
/// Elements are row-major. `dtype` is `f32` (every floating-point ONNX type, converted),
/// `i64` (every integer type) or `bool` (stored as the integers 0 and 1).
struct Constant: Sendable {
  enum Elements: Sendable {
    case floats([Float])
    /// Every element equal (`ConstantOfShape`): not spelt out until something needs them.
    case splat(Float)
    case ints([Dim])
  }

  var dtype: DType
  var shape: [Int]
  var elements: Elements

  init(dtype: DType, shape: [Int], elements: Elements) {
    self.dtype = dtype
    self.shape = shape
    self.elements = elements
  }

  init(floats: [Float], shape: [Int]) { self.init(dtype: .f32, shape: shape, elements: .floats(floats)) }
  init(dims: [Dim], shape: [Int], dtype: DType = .i64) { self.init(dtype: dtype, shape: shape, elements: .ints(dims)) }
  init(ints: [Int], shape: [Int]) { self.init(dims: ints.map { Dim($0) }, shape: shape) }

  /// The most elements a constant the importer computes may have (a weight read from the file
  /// may have more: its bytes are checked against the file instead): 2^27 floats, 512 MiB
  /// (VGG-19's largest weight has 102,760,448); integer constants, shapes and indices, far fewer.
  static let maxElements = 1 << 27
  static let maxIntegerElements = 1 << 22
  /// The highest rank of a tensor the importer builds.
  static let maxRank = 64

  /// Elements (the product of the shape; every constant's shape is checked when it is made).
  var count: Int { shape.reduce(1, &*) }

  /// The element count of `shape`, or an error when it is not a shape the importer computes
  /// with: a negative size, a rank over `maxRank`, more than `maxElements` elements.
  static func checkedCount(
    _ shape: [Int], _ what: String = "a constant", dtype: DType = .f32
  ) throws(ImportFailure)
    -> Int
  {
    guard shape.count <= maxRank else { throw .invalid("\(what) has rank \(shape.count); the limit is \(maxRank)") }
    let limit = dtype == .f32 ? maxElements : maxIntegerElements
    var n = 1
    for d in shape {
      guard d >= 0 else { throw .invalid("\(what) has a negative size in its shape \(shape)") }
      let (p, overflow) = n.multipliedReportingOverflow(by: d)
      guard !overflow, p <= limit else {
        throw .unsupported("\(what) of shape \(shape) has more than \(limit) elements")
      }
      n = p
    }
    return n
  }

  /// The elements as floats (symbolic integers are an error).
  func floatValues() throws(ImportFailure) -> [Float] {
    switch elements {
    case .floats(let v): return v
    case .splat(let v): return [Float](repeating: v, count: count)
    case .ints(let d):
      return try d.map { x throws(ImportFailure) in
        guard let v = x.staticValue else { throw .unsupported("the value depends on the symbolic size \(x)") }
        return Float(v)
      }
    }
  }

  /// The elements as dimensions (floats are truncated toward zero, as a cast does).
  var dims: [Dim] {
    switch elements {
    case .ints(let d): return d
    case .floats(let v): return v.map { Dim(Int(exactly: $0.rounded(.towardZero)) ?? 0) }
    case .splat(let v): return [Dim](repeating: Dim(Int(exactly: v.rounded(.towardZero)) ?? 0), count: count)
    }
  }

  /// The elements as integers, or an error naming the first symbolic one.
  func intValues() throws(ImportFailure) -> [Int] {
    try dims.map { d throws(ImportFailure) in
      guard let v = d.staticValue else { throw .unsupported("the value depends on the symbolic size \(d); bind it") }
      return v
    }
  }

  /// The one element of a single-element tensor, as a float.
  func scalarFloat() throws(ImportFailure) -> Float {
    guard count == 1 else { throw .invalid("expected one element, found shape \(shape)") }
    return try floatValues()[0]
  }

  /// The one element of a single-element tensor, as an integer.
  func scalarInt() throws(ImportFailure) -> Int {
    guard count == 1 else { throw .invalid("expected one element, found shape \(shape)") }
    return try intValues()[0]
  }

  /// The value every element has, when they are all equal (and static).
  var uniformFloat: Float? {
    switch elements {
    case .splat(let v): return v
    case .floats(let v):
      guard let first = v.first, v.allSatisfy({ $0 == first }) else { return nil }
      return first
    case .ints(let d):
      guard let first = d.first, let v = first.staticValue, d.allSatisfy({ $0 == first }) else { return nil }
      return Float(v)
    }
  }

  /// The same elements under another shape of the same count.
  func reshaped(_ newShape: [Int]) -> Constant {
    Constant(dtype: dtype, shape: newShape, elements: elements)
  }

  /// A tensor of `newShape` whose element `i` is element `source(i)` of this one.
  func gathered(shape newShape: [Int], _ source: (Int) -> Int) -> Constant {
    let n = newShape.reduce(1, &*)
    switch elements {
    case .splat: return Constant(dtype: dtype, shape: newShape, elements: elements)
    case .floats(let v):
      return Constant(dtype: dtype, shape: newShape, elements: .floats((0..<n).map { v[source($0)] }))
    case .ints(let v): return Constant(dtype: dtype, shape: newShape, elements: .ints((0..<n).map { v[source($0)] }))
    }
  }

  /// The values converted to `target` (`Cast`).
  func cast(to target: DType) throws(ImportFailure) -> Constant {
    switch target {
    case .f32, .f64:
      if case .ints = elements { return Constant(floats: try floatValues(), shape: shape) }
      return Constant(dtype: .f32, shape: shape, elements: elements)
    case .i64:
      return Constant(dims: dims, shape: shape)
    case .bool:
      let truth: [Dim] = try (dtype == .f32 ? floatValues().map { $0 != 0 } : intValues().map { $0 != 0 })
        .map { Dim($0 ? 1 : 0) }
      return Constant(dims: truth, shape: shape, dtype: .bool)
    }
  }
}

/// Row-major strides of a shape.
func strides(_ shape: [Int]) -> [Int] {
  var s = [Int](repeating: 1, count: shape.count)
  var acc = 1
  for i in shape.indices.reversed() {
    s[i] = acc
    acc *= shape[i]
  }
  return s
}

/// NumPy broadcasting of static shapes, or nil when they do not broadcast.
func broadcastShapes(_ a: [Int], _ b: [Int]) -> [Int]? {
  let n = max(a.count, b.count)
  var out: [Int] = []
  for i in 0..<n {
    let x = i < n - a.count ? 1 : a[i - (n - a.count)]
    let y = i < n - b.count ? 1 : b[i - (n - b.count)]
    if x == y || y == 1 { out.append(x) } else if x == 1 { out.append(y) } else { return nil }
  }
  return out
}

/// For each element of `out`, the flat index of the element of `shape` broadcast to it.
func broadcastIndex(from shape: [Int], to out: [Int]) -> (Int) -> Int {
  let outStrides = strides(out)
  let inStrides = strides(shape)
  let offset = out.count - shape.count
  return { flat in
    var rest = flat, index = 0
    for axis in 0..<out.count {
      let coordinate = rest / outStrides[axis]
      rest %= outStrides[axis]
      if axis >= offset, shape[axis - offset] != 1 { index += coordinate * inStrides[axis - offset] }
    }
    return index
  }
}

/// Folding of elementwise arithmetic on constants.
enum ConstantArithmetic {
  /// `a op b` with broadcasting: floats through `float`, integers (dimensions) through `int`,
  /// the result of `dtype` (nil: the operands' type).
  static func binary(
    _ a: Constant, _ b: Constant, result dtype: DType? = nil,
    float: (Float, Float) -> Float,
    int: (Dim, Dim) throws(ImportFailure) -> Dim
  ) throws(ImportFailure) -> Constant {
    guard let shape = broadcastShapes(a.shape, b.shape) else {
      throw .invalid("shapes \(a.shape) and \(b.shape) do not broadcast")
    }
    let outType = dtype ?? (a.dtype == .f32 || b.dtype == .f32 ? .f32 : a.dtype)
    let n = try Constant.checkedCount(shape, dtype: a.dtype == .f32 || b.dtype == .f32 ? .f32 : .i64)
    if a.dtype == .f32 || b.dtype == .f32 {
      if case .splat(let x) = a.elements, case .splat(let y) = b.elements {
        return try Constant(dtype: .f32, shape: shape, elements: .splat(float(x, y))).cast(to: outType)
      }
      let x = try a.floatValues(), y = try b.floatValues()
      let ia = broadcastIndex(from: a.shape, to: shape), ib = broadcastIndex(from: b.shape, to: shape)
      let values = (0..<n).map { float(x[ia($0)], y[ib($0)]) }
      return try Constant(floats: values, shape: shape).cast(to: outType)
    }
    let x = a.dims, y = b.dims
    let ia = broadcastIndex(from: a.shape, to: shape), ib = broadcastIndex(from: b.shape, to: shape)
    var values: [Dim] = []
    values.reserveCapacity(n)
    for i in 0..<n { values.append(try int(x[ia(i)], y[ib(i)])) }
    return Constant(dims: values, shape: shape, dtype: outType)
  }

  /// Integer arithmetic on static operands; symbolic ones through `symbolic` (nil: refused).
  static func staticInts(
    _ f: @escaping @Sendable (Int, Int) -> Int?, _ name: String,
    symbolic: (@Sendable (Dim, Dim) -> Dim?)? = nil
  )
    -> @Sendable (Dim, Dim) throws(ImportFailure) -> Dim
  {
    { (a: Dim, b: Dim) throws(ImportFailure) -> Dim in
      if let x = a.staticValue, let y = b.staticValue {
        guard let r = f(x, y) else { throw .invalid("\(name) of \(x) and \(y) is undefined or overflows") }
        return Dim(r)
      }
      if let symbolic, let r = symbolic(a, b) { return r }
      throw .unsupported("\(name) of the symbolic sizes \(a) and \(b) is not a single product of symbols; bind them")
    }
  }

  static let add = staticInts(
    { $0.addingReportingOverflow($1).overflow ? nil : $0 + $1 }, "the sum",
    symbolic: { a, b in
      let (c, overflow) = a.coefficient.addingReportingOverflow(b.coefficient)
      return a.symbols == b.symbols && !overflow ? Dim(coefficient: c, symbols: a.symbols) : nil
    })
  static let sub = staticInts(
    { $0.subtractingReportingOverflow($1).overflow ? nil : $0 - $1 }, "the difference",
    symbolic: { a, b in
      let (c, overflow) = a.coefficient.subtractingReportingOverflow(b.coefficient)
      return a.symbols == b.symbols && !overflow ? Dim(coefficient: c, symbols: a.symbols) : nil
    })
  static let mul = staticInts(
    { $0.multipliedReportingOverflow(by: $1).overflow ? nil : $0 * $1 }, "the product",
    symbolic: { a, b in a.multiplied(by: b) })
  /// Integer division truncates toward zero (ONNX's `Div` on integers); symbolic only exactly.
  static let div = staticInts(
    { $1 == 0 || ($0 == Int.min && $1 == -1) ? nil : $0 / $1 }, "the quotient",
    symbolic: { a, b in a.divided(by: b) })
}
