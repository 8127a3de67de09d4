/// A compile-time attribute of a node: sizes, axes, flags, rates.
public indirect enum AttrValue: Hashable, Sendable, CustomStringConvertible {
  case int(Int)
  case float(Double)
  case bool(Bool)
  case string(String)
  /// A symbolic dimension (`C`, `B*T`); a static one is always stored as `.int`.
  case dim(Dim)
  case list([AttrValue])

  /// Normalises a dimension: static sizes become `.int`.
  public static func dimension(_ d: Dim) -> AttrValue {
    if let v = d.staticValue { return .int(v) }
    return .dim(d)
  }

  public var description: String {
    switch self {
    case .int(let v): String(v)
    case .float(let v): Self.formatFloat(v)
    case .bool(let v): v ? "true" : "false"
    case .string(let s): s
    case .dim(let d): d.description
    case .list(let items): "[\(items.map(\.description).joined(separator: ", "))]"
    }
  }

  /// Shortest text that parses back to the same Double, always with a `.` or exponent so it
  /// reads back as a float.
  public static func formatFloat(_ v: Double) -> String {
    var s = "\(v)"
    if !s.contains(".") && !s.contains("e") && !s.contains("n") && !s.contains("i") { s += ".0" }
    return s
  }

  /// A short name of the kind, for messages.
  public var kindName: String {
    switch self {
    case .int: "an integer"
    case .float: "a number"
    case .bool: "a boolean"
    case .string: "a name"
    case .dim: "a dimension"
    case .list: "a list"
    }
  }
}

/// The attributes of a node (or the options of a tap or recipe) as stored: values by name,
/// listed in sorted order. Code reads them through the op's typed struct
/// (`Op.attributeSet`, `SoftmaxAttributes(of: node).axis`), never by name.
public struct Attributes: Hashable, Sendable {
  public private(set) var values: [String: AttrValue]

  public init(_ values: [String: AttrValue] = [:]) { self.values = values }

  public subscript(name: String) -> AttrValue? {
    get { values[name] }
    set { values[name] = newValue }
  }

  /// Names in sorted order.
  public var names: [String] { values.keys.sorted() }
}
