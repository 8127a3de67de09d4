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

/// The attributes of a node, by name, kept in a canonical (sorted) order.
///
/// After elaboration every attribute an op declares is present and of the declared kind,
/// so the typed accessors below return the stored value; their fallbacks only keep a
/// malformed hand-built node from trapping.
public struct Attributes: Hashable, Sendable {
  public private(set) var values: [String: AttrValue]

  public init(_ values: [String: AttrValue] = [:]) { self.values = values }

  public subscript(name: String) -> AttrValue? {
    get { values[name] }
    set { values[name] = newValue }
  }

  /// Names in sorted order.
  public var names: [String] { values.keys.sorted() }

  public func int(_ name: String, default fallback: Int = 0) -> Int {
    if case .int(let v)? = values[name] { return v }
    return fallback
  }

  public func float(_ name: String, default fallback: Double = 0) -> Double {
    switch values[name] {
    case .float(let v)?: return v
    case .int(let v)?: return Double(v)
    default: return fallback
    }
  }

  public func bool(_ name: String, default fallback: Bool = false) -> Bool {
    if case .bool(let v)? = values[name] { return v }
    return fallback
  }

  public func string(_ name: String, default fallback: String = "") -> String {
    if case .string(let v)? = values[name] { return v }
    return fallback
  }

  public func dim(_ name: String) -> Dim? {
    switch values[name] {
    case .int(let v)?: return Dim(v)
    case .dim(let d)?: return d
    default: return nil
    }
  }

  public func ints(_ name: String) -> [Int] {
    switch values[name] {
    case .list(let items)?: return items.compactMap { if case .int(let v) = $0 { v } else { nil } }
    case .int(let v)?: return [v]
    default: return []
    }
  }

  /// A list of numbers (integers read as numbers).
  public func floats(_ name: String) -> [Double] {
    guard case .list(let items)? = values[name] else { return [] }
    return items.compactMap {
      switch $0 {
      case .float(let v): v
      case .int(let v): Double(v)
      default: nil
      }
    }
  }

  /// A list of dimensions; `-1` entries (an inferred axis of `reshape`) come back as `Dim(-1)`.
  public func dims(_ name: String) -> [Dim] {
    guard case .list(let items)? = values[name] else { return [] }
    return items.compactMap {
      switch $0 {
      case .int(let v): Dim(v)
      case .dim(let d): d
      default: nil
      }
    }
  }
}
