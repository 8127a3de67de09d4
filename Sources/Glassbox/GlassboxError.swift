import GlassboxFormat
import GlassboxIR
import GlassboxMedia
import GlassboxONNX
import GlassboxPasses
import GlassboxRuntime

/// Every error the library throws: what kind of mistake it is, the file it concerns (when one
/// does) and a message that states the rule and what was found.
///
/// A spec that does not compile carries its located diagnostics (`file:line:column`) and the
/// source to quote under them; `description` renders them all.
public struct GlassboxError: Error, Sendable, CustomStringConvertible {
  /// What went wrong, broadly: callers (and the C API's status codes) branch on this.
  public typealias Kind = ErrorKind

  public var kind: Kind
  /// The file the error concerns, when there is one; already part of `message`'s rendering.
  public var file: String?
  /// The rule and both sides of the mismatch, without the file prefix.
  public var message: String
  /// A spec's located diagnostics (kind `spec`).
  public var diagnostics: [Diagnostic]
  /// The spec text, to quote under each diagnostic.
  public var source: SourceText?

  public init(
    _ kind: Kind, file: String? = nil, _ message: String, diagnostics: [Diagnostic] = [],
    source: SourceText? = nil
  ) {
    self.kind = kind
    self.file = file
    self.message = message
    self.diagnostics = diagnostics
    self.source = source
  }

  /// `file: message`, or every diagnostic with its source line and caret.
  public var description: String {
    guard diagnostics.isEmpty else {
      let errors = diagnostics.filter { $0.severity == .error }.count
      return diagnostics.map { $0.rendered(source: source) }.joined(separator: "\n")
        + (errors > 1 ? "\n\(errors) errors" : "")
    }
    guard let file, !message.hasPrefix(file + ":") else { return message }
    return "\(file): \(message)"
  }

  /// The library's error for any error a lower module throws, keeping its kind and file.
  static func wrapping(_ error: any Error, file: String? = nil) -> GlassboxError {
    switch error {
    case let e as GlassboxError: return e
    case let e as DiagnosticList: return GlassboxError(.spec, file: file, e.description, diagnostics: e.diagnostics)
    case let e as Diagnostic: return GlassboxError(.spec, file: file, e.description, diagnostics: [e])
    case let e as any KindedError: return GlassboxError(e.errorKind, file: e.errorFile ?? file, e.description)
    default: return GlassboxError(.runtime, file: file, String(describing: error))
    }
  }
}

/// Runs `body`, turning whatever it throws into a `GlassboxError` about `file`.
func withGlassboxErrors<T>(file: String? = nil, _ body: () throws -> T) throws(GlassboxError) -> T {
  do {
    return try body()
  } catch {
    throw GlassboxError.wrapping(error, file: file)
  }
}
