import GlassboxIR

/// A small, strict JSON reader and writer (safetensors headers, reports, summaries): integers
/// stay exact (`UInt64` offsets past 2^53 do not round), object keys keep their order so
/// output reads as documented, duplicate keys and nesting deeper than 64 are refused, and
/// nothing on bad input traps.
public enum JSONValue: Equatable, Sendable {
  case null
  case bool(Bool)
  /// An integer that fits `Int64` or `UInt64`, kept exactly.
  case integer(negative: Bool, magnitude: UInt64)
  /// Any other number.
  case number(Double)
  case string(String)
  case array([JSONValue])
  case object([(String, JSONValue)])

  /// An integer.
  public static func int(_ v: Int) -> JSONValue { .integer(negative: v < 0, magnitude: v.magnitude.toUInt64) }

  public static func == (a: JSONValue, b: JSONValue) -> Bool {
    switch (a, b) {
    case (.null, .null): true
    case (.bool(let x), .bool(let y)): x == y
    case (.integer(let n1, let m1), .integer(let n2, let m2)): n1 == n2 && m1 == m2
    case (.number(let x), .number(let y)): x == y
    case (.string(let x), .string(let y)): x == y
    case (.array(let x), .array(let y)): x == y
    case (.object(let x), .object(let y)): x.elementsEqual(y) { $0.0 == $1.0 && $0.1 == $1.1 }
    default: false
    }
  }

  /// Why text is not JSON, and the byte offset where that shows.
  public struct ParseError: Error, CustomStringConvertible {
    public var message: String
    public var offset: Int
    public var description: String { "\(message) (byte \(offset))" }
  }

  /// Parses JSON text that holds one value. Numbers read back as written: `text` prints a
  /// `Double` in its shortest form that parses to the same bits, and parsing rounds correctly.
  public init(parsing bytes: [UInt8]) throws(ParseError) {
    let result = bytes.withUnsafeBytes { b in Result { () throws(ParseError) in try JSONValue.parse(b) } }
    self = try result.get()
  }

  /// The value of `key` in an object (nil for a missing key or another kind of value).
  public subscript(key: String) -> JSONValue? {
    guard case .object(let pairs) = self else { return nil }
    return pairs.first { $0.0 == key }?.1
  }

  /// An integer that fits `Int`.
  public var intValue: Int? {
    guard case .integer(let negative, let m) = self, m <= UInt64(Int.max) else { return nil }
    return negative ? -Int(m) : Int(m)
  }

  /// Any number (an integer too) as a `Double`.
  public var doubleValue: Double? {
    switch self {
    case .number(let d): d
    case .integer(let negative, let m): negative ? -Double(m) : Double(m)
    default: nil
    }
  }

  public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
  public var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }
  public var arrayValue: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
  public var objectValue: [(String, JSONValue)]? { if case .object(let o) = self { o } else { nil } }

  static let maxDepth = 64

  /// Parses one JSON value filling all of `bytes` (whitespace around it allowed).
  static func parse(_ bytes: UnsafeRawBufferPointer) throws(ParseError) -> JSONValue {
    var p = Parser(bytes: bytes)
    let v = try p.value(depth: 0)
    p.skipSpace()
    guard p.i == bytes.count else { throw ParseError(message: "unexpected text after the JSON value", offset: p.i) }
    return v
  }

  private struct Parser {
    let bytes: UnsafeRawBufferPointer
    var i = 0

    func fail(_ message: String) -> ParseError { ParseError(message: message, offset: i) }

    mutating func skipSpace() {
      while i < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[i]) { i += 1 }
    }

    mutating func literal(_ word: String, _ v: JSONValue) throws(ParseError) -> JSONValue {
      let w = Array(word.utf8)
      guard bytes.count - i >= w.count, Array(bytes[i..<(i + w.count)]) == w else { throw fail("invalid literal") }
      i += w.count
      return v
    }

    mutating func value(depth: Int) throws(ParseError) -> JSONValue {
      guard depth < JSONValue.maxDepth else { throw fail("JSON nested deeper than \(JSONValue.maxDepth)") }
      skipSpace()
      guard i < bytes.count else { throw fail("unexpected end of JSON") }
      switch bytes[i] {
      case UInt8(ascii: "{"):
        i += 1
        var pairs: [(String, JSONValue)] = []
        var keys = Set<String>()
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(pairs) }
        while true {
          skipSpace()
          guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
          let keyOffset = i
          let key = try string()
          guard keys.insert(key).inserted else {
            throw ParseError(message: "key \"\(key.prefix(100))\" appears twice", offset: keyOffset)
          }
          skipSpace()
          guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
          i += 1
          pairs.append((key, try value(depth: depth + 1)))
          skipSpace()
          guard i < bytes.count else { throw fail("unexpected end of JSON") }
          if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
          if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(pairs) }
          throw fail("expected ',' or '}'")
        }
      case UInt8(ascii: "["):
        i += 1
        var items: [JSONValue] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
          items.append(try value(depth: depth + 1))
          skipSpace()
          guard i < bytes.count else { throw fail("unexpected end of JSON") }
          if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
          if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
          throw fail("expected ',' or ']'")
        }
      case UInt8(ascii: "\""): return .string(try string())
      case UInt8(ascii: "t"): return try literal("true", .bool(true))
      case UInt8(ascii: "f"): return try literal("false", .bool(false))
      case UInt8(ascii: "n"): return try literal("null", .null)
      default: return try number()
      }
    }

    mutating func number() throws(ParseError) -> JSONValue {
      let start = i
      var negative = false
      if i < bytes.count, bytes[i] == UInt8(ascii: "-") { negative = true; i += 1 }
      let digitsStart = i
      while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }
      guard i > digitsStart else { i = start; throw fail("expected a value") }
      var isInteger = true
      if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
        isInteger = false
        i += 1
        while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }
      }
      if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
        isInteger = false
        i += 1
        if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
        while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }
      }
      let text = String(decoding: bytes[start..<i], as: UTF8.self)
      if isInteger, let m = UInt64(text[text.index(text.startIndex, offsetBy: negative ? 1 : 0)...]) {
        return .integer(negative: negative, magnitude: m)
      }
      guard let d = Double(text) else { throw ParseError(message: "bad number '\(text.prefix(40))'", offset: start) }
      return .number(d)
    }

    mutating func string() throws(ParseError) -> String {
      i += 1  // the opening quote
      var out: [UInt8] = []
      while true {
        guard i < bytes.count else { throw fail("unterminated string") }
        let c = bytes[i]
        if c == UInt8(ascii: "\"") { i += 1; break }
        if c < 0x20 { throw fail("control character in a string") }
        if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
        i += 1
        guard i < bytes.count else { throw fail("unterminated string") }
        let e = bytes[i]
        i += 1
        switch e {
        case UInt8(ascii: "\""): out.append(0x22)
        case UInt8(ascii: "\\"): out.append(0x5C)
        case UInt8(ascii: "/"): out.append(0x2F)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
          var scalar = try hex4()
          if (0xD800..<0xDC00).contains(scalar) {
            guard bytes.count - i >= 6, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
              throw fail("unpaired surrogate in a string")
            }
            i += 2
            let low = try hex4()
            guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate in a string") }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
          }
          guard let u = Unicode.Scalar(scalar) else { throw fail("unpaired surrogate in a string") }
          out += Array(String(Character(u)).utf8)
        default:
          throw fail("bad escape in a string")
        }
      }
      guard let s = String(validating: out, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
      return s
    }

    mutating func hex4() throws(ParseError) -> UInt32 {
      guard bytes.count - i >= 4 else { throw fail("bad \\u escape") }
      var v: UInt32 = 0
      for _ in 0..<4 {
        let c = bytes[i]
        let d: UInt32
        switch c {
        case 0x30...0x39: d = UInt32(c - 0x30)
        case 0x41...0x46: d = UInt32(c - 0x41 + 10)
        case 0x61...0x66: d = UInt32(c - 0x61 + 10)
        default: throw fail("bad \\u escape")
        }
        v = v << 4 | d
        i += 1
      }
      return v
    }
  }

  /// Compact JSON text (no spaces), keys in the order given; a non-finite number, which JSON
  /// cannot hold, is `null`.
  public var text: String {
    switch self {
    case .null: "null"
    case .bool(let b): b ? "true" : "false"
    case .integer(let negative, let m): (negative && m != 0 ? "-" : "") + String(m)
    case .number(let d): d.isFinite ? "\(d)" : "null"
    case .string(let s): JSONValue.quote(s)
    case .array(let items): "[" + items.map(\.text).joined(separator: ",") + "]"
    case .object(let pairs): "{" + pairs.map { JSONValue.quote($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
    }
  }

  public static func quote(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
      switch u {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case _ where u.value < 0x20:
        let hex = String(u.value, radix: 16)
        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
      default: out.unicodeScalars.append(u)
      }
    }
    return out + "\""
  }

  /// A non-negative integer that fits `Int`, or nil.
  var nonNegativeInt: Int? {
    if case .integer(false, let m) = self { return Checked.int(m) }
    if case .integer(true, 0) = self { return 0 }
    return nil
  }
}

extension UInt {
  fileprivate var toUInt64: UInt64 { UInt64(self) }
}

extension JSONValue.ParseError: KindedError {
  public var errorKind: ErrorKind { .input }
}
