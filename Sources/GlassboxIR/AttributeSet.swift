/// Typed attributes: each op (and each tap and recipe kind) reads its attributes through one
/// Swift struct whose `visit` names every attribute once — its spec-language name, its Swift
/// type (which gives the kind) and whether it is required; a field's initial value is its
/// default. From that one declaration come the schema the elaborator, the verifier, the
/// printer and the `.model` decoder check against (`schema`), the decoding of a node's stored
/// attributes (`init(decoding:)`) and their encoding (`encoded`). So code reads
/// `SoftmaxAttributes(of: node).axis`, where a misspelt field does not compile, and builds
/// attributes with an initialiser that takes every required one.
///
/// ```swift
/// public struct ConcatAttributes: AttributeSet {
///   public var axis = 0
///   public init(axis: Int) { self.axis = axis }
///   public init(defaults: AttributeDefaults) {}
///   public mutating func visit<V: AttributeVisitor>(_ v: inout V) { v.required("axis", &axis) }
/// }
/// ```
///
/// Storage stays by name (`Attributes`): the spec language, the printer and the `.model`
/// format keep attributes as name–value pairs, in the canonical forms `encoded` writes.
public protocol AttributeSet: Hashable, Sendable {
  /// Every attribute at its default; a required one holds a placeholder until it is read.
  init(defaults: AttributeDefaults)
  /// Visits every attribute once, in the order messages and the printer list them.
  mutating func visit<V: AttributeVisitor>(_ v: inout V)
}

/// The argument of `AttributeSet.init(defaults:)`. Only GlassboxIR makes one, so elsewhere
/// an attribute set is built with an initialiser that names every required attribute.
public struct AttributeDefaults: Sendable {
  init() {}
}

/// Walks the fields of an attribute set (to list its schema, read it or write it).
public protocol AttributeVisitor {
  /// An attribute that must be given.
  mutating func required<Value: AttributeRepresentable>(_ name: String, _ value: inout Value)
  /// An attribute whose default is the value the field holds in `init(defaults:)`.
  mutating func defaulted<Value: AttributeRepresentable>(_ name: String, _ value: inout Value)
}

/// An attribute that is missing or of the wrong kind.
public struct AttributeError: Error, Hashable, Sendable {
  /// The attribute's name.
  public var name: String
  /// What is wrong, naming the attribute: `attribute 'axis' is missing`.
  public var message: String
}

extension AttributeSet {
  /// The attributes in the order `visit` lists them, with their kinds and defaults (nil for
  /// required ones).
  public static var schema: [Op.AttrSpec] {
    var collector = SchemaCollector()
    var defaults = Self(defaults: AttributeDefaults())
    defaults.visit(&collector)
    return collector.specs
  }

  /// Reads stored attributes: a missing attribute with a default takes it; a missing
  /// required one, or a value of the wrong kind, is an error. Names the set does not know are
  /// the verifier's (and the elaborator's) to report.
  public init(decoding attributes: Attributes) throws(AttributeError) {
    var reader = AttributeReader(attributes: attributes)
    var value = Self(defaults: AttributeDefaults())
    value.visit(&reader)
    if let error = reader.error { throw error }
    self = value
  }

  /// Reads attributes that the verifier (or the elaborator, or a typed constructor) has
  /// already checked. Anything else is a broken invariant and traps.
  public init(verified attributes: Attributes) {
    do {
      try self.init(decoding: attributes)
    } catch {
      preconditionFailure("unverified attributes reached \(Self.self): \(error.message)")
    }
  }

  /// The attributes of `node`, whose op must read this set (`Op.attributeSet`) and which the
  /// verifier has passed; either failing is a broken invariant and traps.
  public init(of node: Node) {
    precondition(
      ObjectIdentifier(node.op.attributeSet) == ObjectIdentifier(Self.self),
      "\(node.op.name) reads \(node.op.attributeSet), not \(Self.self)")
    self.init(verified: node.attributes)
  }

  /// Whether stored attributes decode (`init(decoding:)`); callable on `op.attributeSet`.
  public static func check(_ attributes: Attributes) throws(AttributeError) {
    _ = try Self(decoding: attributes)
  }

  /// Every attribute, defaults included, in its canonical stored form.
  public var encoded: Attributes {
    var writer = AttributeWriter()
    var copy = self
    copy.visit(&writer)
    return Attributes(writer.values)
  }
}

struct SchemaCollector: AttributeVisitor {
  var specs: [Op.AttrSpec] = []
  mutating func required<Value: AttributeRepresentable>(_ name: String, _ value: inout Value) {
    specs.append(Op.AttrSpec(name, Value.attributeKind))
  }
  mutating func defaulted<Value: AttributeRepresentable>(_ name: String, _ value: inout Value) {
    specs.append(Op.AttrSpec(name, Value.attributeKind, value.attribute))
  }
}

struct AttributeReader: AttributeVisitor {
  let attributes: Attributes
  var error: AttributeError?

  mutating func required<Value: AttributeRepresentable>(_ name: String, _ value: inout Value) {
    guard attributes[name] != nil else {
      if error == nil { error = AttributeError(name: name, message: "attribute '\(name)' is missing") }
      return
    }
    defaulted(name, &value)
  }

  mutating func defaulted<Value: AttributeRepresentable>(_ name: String, _ value: inout Value) {
    guard let stored = attributes[name] else { return }
    if let v = Value(attribute: stored) { value = v; return }
    if error == nil {
      error = AttributeError(
        name: name,
        message: "attribute '\(name)' must be \(Value.attributeKind.summary), "
          + "found \(stored.description.prefix(100))")
    }
  }
}

struct AttributeWriter: AttributeVisitor {
  var values: [String: AttrValue] = [:]
  mutating func required<Value: AttributeRepresentable>(_ name: String, _ value: inout Value) {
    values[name] = value.attribute
  }
  mutating func defaulted<Value: AttributeRepresentable>(_ name: String, _ value: inout Value) {
    values[name] = value.attribute
  }
}

extension Op.AttrKind {
  /// A few words for messages: `an integer`, `two integers [h, w]`.
  public var summary: String {
    switch self {
    case .int: "an integer"
    case .float: "a number"
    case .bool: "a boolean"
    case .dim: "a dimension"
    case .pair: "two integers [h, w]"
    case .ints: "a list of integers"
    case .floats: "a list of numbers"
    case .dims: "a list of dimensions"
    case .choice(let names): "one of \(names.joined(separator: ", "))"
    }
  }
}

// MARK: - The Swift types attributes take

/// A Swift type an attribute can have: its kind in the spec language and its stored form.
public protocol AttributeRepresentable: Hashable, Sendable {
  /// The kind the elaborator checks a written value against.
  static var attributeKind: Op.AttrKind { get }
  /// The value of a stored form; nil when the form is of another kind.
  init?(attribute: AttrValue)
  /// The canonical stored form (what the printer prints and a `.model` file keeps).
  var attribute: AttrValue { get }
}

/// An element of a list attribute (`ints`, `floats`, `dims`).
public protocol AttributeListElement: AttributeRepresentable {
  /// The kind of a list of these.
  static var listKind: Op.AttrKind { get }
}

extension Int: AttributeListElement {
  public static var attributeKind: Op.AttrKind { .int }
  public static var listKind: Op.AttrKind { .ints }
  public init?(attribute: AttrValue) {
    guard case .int(let v) = attribute else { return nil }
    self = v
  }
  public var attribute: AttrValue { .int(self) }
}

extension Double: AttributeListElement {
  public static var attributeKind: Op.AttrKind { .float }
  public static var listKind: Op.AttrKind { .floats }
  /// A number; an integer reads as one.
  public init?(attribute: AttrValue) {
    switch attribute {
    case .float(let v): self = v
    case .int(let v): self = Double(v)
    default: return nil
    }
  }
  public var attribute: AttrValue { .float(self) }
}

extension Bool: AttributeRepresentable {
  public static var attributeKind: Op.AttrKind { .bool }
  public init?(attribute: AttrValue) {
    guard case .bool(let v) = attribute else { return nil }
    self = v
  }
  public var attribute: AttrValue { .bool(self) }
}

extension Dim: AttributeListElement {
  public static var attributeKind: Op.AttrKind { .dim }
  /// `-1` in a list (an inferred axis of `reshape`) reads as `Dim(-1)`.
  public static var listKind: Op.AttrKind { .dims }
  public init?(attribute: AttrValue) {
    switch attribute {
    case .int(let v): self = Dim(v)
    case .dim(let d): self = d
    default: return nil
    }
  }
  /// Static sizes are stored as integers.
  public var attribute: AttrValue { .dimension(self) }
}

extension Array: AttributeRepresentable where Element: AttributeListElement {
  public static var attributeKind: Op.AttrKind { Element.listKind }
  public init?(attribute: AttrValue) {
    guard case .list(let items) = attribute else { return nil }
    var out: [Element] = []
    out.reserveCapacity(items.count)
    for item in items {
      guard let v = Element(attribute: item) else { return nil }
      out.append(v)
    }
    self = out
  }
  public var attribute: AttrValue { .list(map(\.attribute)) }
}

/// Two integers, along the height and the width of an image (a window's size, stride,
/// padding or dilation). Written as one integer (both equal) or `[h, w]`; stored as `[h, w]`.
public struct Pair: AttributeRepresentable, CustomStringConvertible {
  /// Along the height.
  public var h: Int
  /// Along the width.
  public var w: Int

  /// `[h, w]`.
  public init(_ h: Int, _ w: Int) {
    self.h = h
    self.w = w
  }

  /// Both halves `v`.
  public init(_ v: Int) { self.init(v, v) }

  public static var attributeKind: Op.AttrKind { .pair }
  public init?(attribute: AttrValue) {
    guard case .list(let items) = attribute, items.count == 2, case .int(let h) = items[0],
      case .int(let w) = items[1]
    else { return nil }
    self.init(h, w)
  }
  public var attribute: AttrValue { .list([.int(h), .int(w)]) }

  /// `[h, w]`.
  public var description: String { "[\(h), \(w)]" }
}

/// A pair that may be left out (a pooling stride that defaults to the window): stored as
/// the empty list when absent.
extension Optional: AttributeRepresentable where Wrapped == Pair {
  public static var attributeKind: Op.AttrKind { .pair }
  public init?(attribute: AttrValue) {
    if case .list(let items) = attribute, items.isEmpty {
      self = .none
      return
    }
    guard let p = Pair(attribute: attribute) else { return nil }
    self = .some(p)
  }
  public var attribute: AttrValue { map(\.attribute) ?? .list([]) }
}

/// An attribute that takes one of a fixed set of names: a `String` enum.
public protocol AttributeChoice: AttributeRepresentable, CaseIterable, RawRepresentable where RawValue == String {}

extension AttributeChoice {
  public static var attributeKind: Op.AttrKind { .choice(allCases.map(\.rawValue)) }
  public init?(attribute: AttrValue) {
    guard case .string(let s) = attribute, let v = Self(rawValue: s) else { return nil }
    self = v
  }
  public var attribute: AttrValue { .string(rawValue) }
}

extension DType: AttributeChoice {}

/// An activation fused into the op that makes a value (`fuse-epilogues`, `fuse-batch-norm-relu`).
public enum Activation: String, AttributeChoice {
  case none, relu
}

/// How an image tensor's elements are laid out: `plain` NCHW, or `blocked` in groups of 16
/// channels (NCHW16c, rank 5: `[N, C/16, H, W, 16]`).
public enum Layout: String, AttributeChoice {
  case plain, blocked
}

/// `axis` counted from the end when negative (`-1` is the last axis), made non-negative. The
/// shape rules check the range (`checkedAxis`), so after them the result is an axis of `rank`.
public func normalizedAxis(_ axis: Int, rank: Int) -> Int { axis < 0 ? axis + rank : axis }
