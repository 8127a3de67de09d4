/// A position in a spec file: 1-based line and column (columns count Unicode scalars).
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
  public var file: String
  public var line: Int
  public var column: Int
  /// Byte offset of the start of the line, so the line can be quoted under the message.
  public var lineStartOffset: Int

  public init(file: String, line: Int, column: Int, lineStartOffset: Int = 0) {
    self.file = file
    self.line = line
    self.column = column
    self.lineStartOffset = lineStartOffset
  }

  public var description: String { "\(file):\(line):\(column)" }
}

/// One problem found in user input, with where it is and what the rule says.
///
/// Diagnostics are data: the message states the rule and both sides of a mismatch; rendering
/// adds the `file:line:column: error:` prefix, the source line and a caret.
public struct Diagnostic: Hashable, Sendable, Error, CustomStringConvertible {
  public enum Severity: String, Sendable { case error, warning, note }

  public var severity: Severity
  public var message: String
  public var location: SourceLocation?

  /// Messages longer than this (a 10 MB name quoted back) are cut, with an ellipsis.
  public static let maxMessageLength = 500

  public init(_ message: String, at location: SourceLocation?, severity: Severity = .error) {
    self.message =
      message.utf8.count > Diagnostic.maxMessageLength
      ? String(message.prefix(Diagnostic.maxMessageLength)) + "…" : message
    self.location = location
    self.severity = severity
  }

  /// `file:line:column: error: message` (or `error: message` without a location).
  public var description: String {
    if let location { return "\(location): \(severity.rawValue): \(message)" }
    return "\(severity.rawValue): \(message)"
  }

  /// The one-line form followed by the source line and a caret under the column.
  public func rendered(source: SourceText?) -> String {
    guard let location, let source, let line = source.line(startingAt: location.lineStartOffset)
    else { return description }
    // Long lines are shown as a window of about 200 characters around the column.
    let chars = Array(line)
    let column = min(max(location.column - 1, 0), chars.count)
    let start = chars.count > 200 ? max(0, min(column - 100, chars.count - 200)) : 0
    let end = min(chars.count, start + 200)
    let lead = start > 0 ? "…" : ""
    let shown = lead + String(chars[start..<end]) + (end < chars.count ? "…" : "")
    // Keep tabs so the caret lines up under tab-indented source.
    let pad = (start > 0 ? " " : "") + String(chars[start..<column].map { $0 == "\t" ? "\t" : " " })
    return "\(description)\n    \(shown)\n    \(pad)^"
  }
}

/// Every diagnostic of one run, thrown when any of them is an error.
public struct DiagnosticList: Error, Sendable, CustomStringConvertible {
  public var diagnostics: [Diagnostic]
  public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }
  public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// The text of a spec file, decoded, with its name for diagnostics.
public struct SourceText: Sendable {
  public let fileName: String
  /// UTF-8 bytes of the text.
  public let bytes: [UInt8]

  public init(fileName: String, text: String) {
    self.fileName = fileName
    self.bytes = Array(text.utf8)
  }

  /// Decodes raw file bytes; a file that is not UTF-8 is a diagnostic naming the byte offset.
  public init(fileName: String, bytes: [UInt8]) throws(Diagnostic) {
    var offset = 0
    var line = 1
    var lineStart = 0
    var iterator = bytes.makeIterator()
    var decoder = UTF8()
    decoding: while true {
      switch decoder.decode(&iterator) {
      case .scalarValue(let scalar):
        let width = UTF8.width(scalar)
        if scalar == "\n" {
          line += 1
          lineStart = offset + 1
        }
        offset += width
      case .emptyInput:
        break decoding
      case .error:
        throw Diagnostic(
          "file is not valid UTF-8 (bad byte 0x\(String(bytes[offset], radix: 16, uppercase: true)) at byte offset \(offset))",
          at: SourceLocation(
            file: fileName, line: line, column: offset - lineStart + 1,
            lineStartOffset: lineStart))
      }
    }
    self.fileName = fileName
    self.bytes = bytes
  }

  /// The line that starts at `offset`, without its newline.
  public func line(startingAt offset: Int) -> String? {
    guard offset >= 0, offset <= bytes.count else { return nil }
    var end = offset
    while end < bytes.count, bytes[end] != UInt8(ascii: "\n") { end += 1 }
    var slice = bytes[offset..<end]
    if slice.last == UInt8(ascii: "\r") { slice = slice.dropLast() }
    return String(decoding: slice, as: UTF8.self)
  }
}
