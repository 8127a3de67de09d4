/// Tokens of the spec language.
struct Token: Sendable {
  enum Kind: Equatable, Sendable {
    /// A dotted name: `x`, `layer1.0.conv1`, `f32`.
    case name
    /// `@path`: the name a call gives its value, its parameters and its scope.
    case atPath
    case int, float
    case lparen, rparen, lbracket, rbracket, lbrace, rbrace
    case comma, colon, equals, star, minus, arrow
    case newline
    case eof
  }

  var kind: Kind
  /// The token's text (for `atPath`, without the `@`).
  var text: String
  var location: SourceLocation

  /// How the token reads in "found …" messages.
  var quoted: String {
    switch kind {
    case .newline: "end of line"
    case .eof: "end of file"
    case .atPath: "'@\(text)'"
    default: "'\(text)'"
    }
  }
}

/// Splits spec text into tokens. Linear in the input (a 10 MB line lexes in one pass);
/// newlines inside `(…)` and `[…]` are dropped so calls and lists may span lines.
struct Lexer {
  let source: SourceText
  private(set) var diagnostics: [Diagnostic] = []

  init(source: SourceText) { self.source = source }

  /// Bytes that start no token: control characters, `$%&'!?;<>\\^`|~"` and non-ASCII.
  static func isStray(_ c: UInt8) -> Bool {
    switch c {
    case 9, 10, 13, 32: false  // whitespace
    case 35, 40, 41, 42, 44, 45, 58, 61, 64, 91, 93, 123, 125: false  // # ( ) * , - : = @ [ ] { }
    case 48...57, 65...90, 95, 97...122: false  // digits, letters, _
    default: true
    }
  }

  mutating func tokenize() -> [Token] {
    let b = source.bytes
    var tokens: [Token] = []
    var i = 0
    var line = 1
    var lineStart = 0
    var column = 1  // Unicode-scalar column of b[i]
    var depth = 0

    func loc(_ col: Int) -> SourceLocation {
      SourceLocation(file: source.fileName, line: line, column: col, lineStartOffset: lineStart)
    }
    func isNameStart(_ c: UInt8) -> Bool {
      (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95
    }
    func isNameChar(_ c: UInt8) -> Bool { isNameStart(c) || (c >= 48 && c <= 57) }
    func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
    /// Consumes `seg('.'seg)*` from `j`, segments of name characters; returns the end.
    func scanPath(from start: Int) -> Int {
      var j = start
      while j < b.count, isNameChar(b[j]) { j += 1 }
      while j + 1 < b.count, b[j] == 46, isNameChar(b[j + 1]) {
        j += 1
        while j < b.count, isNameChar(b[j]) { j += 1 }
      }
      return j
    }
    func text(_ r: Range<Int>) -> String { String(decoding: b[r], as: UTF8.self) }

    while i < b.count {
      let c = b[i]
      let startColumn = column
      switch c {
      case 32, 9, 13:  // space, tab, carriage return
        i += 1; column += 1
      case 10:
        if depth == 0, let last = tokens.last, last.kind != .newline {
          tokens.append(Token(kind: .newline, text: "\n", location: loc(startColumn)))
        }
        i += 1; line += 1; lineStart = i; column = 1
      case 35:  // '#' comment to end of line
        while i < b.count, b[i] != 10 {
          if b[i] & 0xC0 != 0x80 { column += 1 }
          i += 1
        }
      case _ where isNameStart(c):
        let end = scanPath(from: i)
        tokens.append(Token(kind: .name, text: text(i..<end), location: loc(startColumn)))
        column += end - i; i = end
      case 64:  // '@'
        let end = scanPath(from: i + 1)
        if end == i + 1 {
          diagnostics.append(Diagnostic("expected a name after '@'", at: loc(startColumn)))
          i += 1; column += 1
        } else {
          tokens.append(Token(kind: .atPath, text: text((i + 1)..<end), location: loc(startColumn)))
          column += end - i; i = end
        }
      case _ where isDigit(c):
        var j = i
        var isFloat = false
        while j < b.count, isDigit(b[j]) { j += 1 }
        if j + 1 < b.count, b[j] == 46, isDigit(b[j + 1]) {
          isFloat = true
          j += 1
          while j < b.count, isDigit(b[j]) { j += 1 }
        }
        if j < b.count, b[j] == 101 || b[j] == 69 {  // exponent
          var k = j + 1
          if k < b.count, b[k] == 43 || b[k] == 45 { k += 1 }
          if k < b.count, isDigit(b[k]) {
            isFloat = true
            j = k
            while j < b.count, isDigit(b[j]) { j += 1 }
          }
        }
        tokens.append(Token(kind: isFloat ? .float : .int, text: text(i..<j), location: loc(startColumn)))
        column += j - i; i = j
      default:
        let kind: Token.Kind?
        var width = 1
        switch c {
        case 40: kind = .lparen; depth += 1
        case 41: kind = .rparen; depth = max(depth - 1, 0)
        case 91: kind = .lbracket; depth += 1
        case 93: kind = .rbracket; depth = max(depth - 1, 0)
        case 123: kind = .lbrace
        case 125: kind = .rbrace
        case 44: kind = .comma
        case 58: kind = .colon
        case 61: kind = .equals
        case 42: kind = .star
        case 45:
          if i + 1 < b.count, b[i + 1] == 62 { kind = .arrow; width = 2 } else { kind = .minus }
        case 47 where i + 1 < b.count && b[i + 1] == 47:  // '//'
          diagnostics.append(Diagnostic("comments start with '#', not '//'", at: loc(startColumn)))
          while i < b.count, b[i] != 10 {
            if b[i] & 0xC0 != 0x80 { column += 1 }
            i += 1
          }
          continue
        case 0xE2 where i + 2 < b.count && b[i + 1] == 0x86 && b[i + 2] == 0x92:  // '→'
          diagnostics.append(Diagnostic("unexpected character '→'; write '->'", at: loc(startColumn)))
          kind = .arrow
          width = 3
        default: kind = nil
        }
        if let kind {
          tokens.append(Token(kind: kind, text: text(i..<(i + width)), location: loc(startColumn)))
          i += width; column += kind == .arrow && width == 3 ? 1 : width
        } else {
          // One diagnostic per run of unexpected characters, naming the first.
          var j = i + 1
          while j < b.count, b[j] & 0xC0 == 0x80 { j += 1 }
          let shown = text(i..<j)
          diagnostics.append(Diagnostic("unexpected character '\(shown)'", at: loc(startColumn)))
          column += 1
          i = j
          while i < b.count, Lexer.isStray(b[i]) {
            if b[i] & 0xC0 != 0x80 { column += 1 }
            i += 1
          }
        }
      }
    }
    if let last = tokens.last, last.kind != .newline {
      tokens.append(Token(kind: .newline, text: "\n", location: loc(column)))
    }
    tokens.append(Token(kind: .eof, text: "", location: loc(column)))
    return tokens
  }
}
