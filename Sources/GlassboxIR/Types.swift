/// Element types of tensors.
public enum DType: String, Sendable, CaseIterable, Hashable, Codable {
  case f32, f64, i64, bool

  /// Bytes per element.
  public var byteSize: Int {
    switch self {
    case .f32: 4
    case .f64: 8
    case .i64: 8
    case .bool: 1
    }
  }

  /// Whether arithmetic and gradients are defined for this type.
  public var isFloatingPoint: Bool {
    switch self {
    case .f32, .f64: true
    case .i64, .bool: false
    }
  }
}

/// One tensor dimension: a static size, or a product of named symbols times a coefficient
/// (`B`, `B*T`, `2*B`), bound to a size when a graph is compiled for actual input shapes.
///
/// A dimension is a monomial so that merging the batch and time axes (`[B, T, …] → [B*T, …]`)
/// stays exact while `B` and `T` are still symbolic. Sums of symbols are not representable:
/// rules that would need them (a convolution over a symbolic height) ask for a binding instead.
public struct Dim: Hashable, Sendable, Comparable, CustomStringConvertible {
  /// The constant factor; for a static dimension, the size itself.
  public var coefficient: Int
  /// Symbol names, sorted, with repetition for powers (`B*B` is `["B", "B"]`).
  public var symbols: [String]

  public init(_ size: Int) {
    coefficient = size
    symbols = []
  }

  public init(symbol: String) {
    coefficient = 1
    symbols = [symbol]
  }

  public init(coefficient: Int, symbols: [String]) {
    self.coefficient = coefficient
    self.symbols = coefficient == 0 ? [] : symbols.sorted()
  }

  /// The size, when the dimension has no symbols.
  public var staticValue: Int? { symbols.isEmpty ? coefficient : nil }
  public var isStatic: Bool { symbols.isEmpty }

  /// The product of two dimensions, or nil when the coefficient overflows.
  public func multiplied(by other: Dim) -> Dim? {
    let (c, overflow) = coefficient.multipliedReportingOverflow(by: other.coefficient)
    if overflow { return nil }
    return Dim(coefficient: c, symbols: symbols + other.symbols)
  }

  /// `self / other` when it divides exactly (symbols cancel, coefficient divides), else nil.
  public func divided(by other: Dim) -> Dim? {
    guard other.coefficient != 0, coefficient % other.coefficient == 0 else { return nil }
    var remaining = symbols
    for s in other.symbols {
      guard let i = remaining.firstIndex(of: s) else { return nil }
      remaining.remove(at: i)
    }
    return Dim(coefficient: coefficient / other.coefficient, symbols: remaining)
  }

  /// Replaces bound symbols by their sizes.
  public func substituting(_ bindings: [String: Int]) -> Dim {
    var c = coefficient
    var rest: [String] = []
    for s in symbols {
      if let v = bindings[s] { c = c &* v } else { rest.append(s) }
    }
    return Dim(coefficient: c, symbols: rest)
  }

  /// `64`, `B`, `B*T`, `2*B`.
  public var description: String {
    if symbols.isEmpty { return String(coefficient) }
    let product = symbols.joined(separator: "*")
    return coefficient == 1 ? product : "\(coefficient)*\(product)"
  }

  public static func < (a: Dim, b: Dim) -> Bool { a.description < b.description }
}

extension Dim: ExpressibleByIntegerLiteral {
  public init(integerLiteral value: Int) { self.init(value) }
}

/// The type of a tensor value: element type and shape (outermost axis first, row-major).
public struct TensorType: Hashable, Sendable, CustomStringConvertible {
  public var dtype: DType
  public var shape: [Dim]

  public init(_ dtype: DType, _ shape: [Dim]) {
    self.dtype = dtype
    self.shape = shape
  }

  public var rank: Int { shape.count }

  /// Element count as a monomial, or nil when it overflows.
  public var elementCount: Dim? {
    var n = Dim(1)
    for d in shape {
      guard let m = n.multiplied(by: d) else { return nil }
      n = m
    }
    return n
  }

  public func substituting(_ bindings: [String: Int]) -> TensorType {
    TensorType(dtype, shape.map { $0.substituting(bindings) })
  }

  /// `f32[B, 768, 128]`; a scalar is `f32[]`.
  public var description: String {
    "\(dtype.rawValue)[\(shape.map(\.description).joined(separator: ", "))]"
  }

  /// The shape alone: `[B, 768, 128]`.
  public var shapeDescription: String { "[\(shape.map(\.description).joined(separator: ", "))]" }
}

/// A sum of monomials in the symbols, used for counts that depend on unbound symbols
/// (`41472 + 65*C` parameters for `bilstm` before the class count is bound).
public struct DimPolynomial: Hashable, Sendable, CustomStringConvertible {
  /// Coefficient per sorted symbol list; the empty list is the constant term.
  public private(set) var terms: [[String]: Int] = [:]

  public init() {}

  public mutating func add(_ d: Dim) {
    terms[d.symbols, default: 0] += d.coefficient
    if terms[d.symbols] == 0 { terms[d.symbols] = nil }
  }

  /// The value when no symbols remain.
  public var staticValue: Int? {
    if terms.isEmpty { return 0 }
    if terms.count == 1, let c = terms[[]] { return c }
    return nil
  }

  /// Constant first, then monomials in lexical order: `41472 + 65*C`.
  public var description: String {
    if terms.isEmpty { return "0" }
    let keys = terms.keys.sorted { a, b in
      a.count != b.count ? a.count < b.count : a.joined(separator: "*") < b.joined(separator: "*")
    }
    return keys.map { Dim(coefficient: terms[$0] ?? 0, symbols: $0).description }
      .joined(separator: " + ")
  }
}

/// `46,827,520`: the digits in groups of three, for counts of parameters and bytes.
public func grouped(_ v: Int) -> String {
  let digits = Array(String(v.magnitude))
  var out = v < 0 ? "-" : ""
  for (i, c) in digits.enumerated() {
    if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
    out.append(c)
  }
  return out
}

/// `11,689,512`, or the polynomial (`41472 + 65*C`) while symbols are unbound.
public func grouped(_ p: DimPolynomial) -> String {
  guard let v = p.staticValue else { return p.description }
  return grouped(v)
}
