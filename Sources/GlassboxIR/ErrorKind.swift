/// What kind of mistake an error reports, the same across every module: the library's
/// `GlassboxError`, the C API's status codes and the CLI's exit status branch on it.
public enum ErrorKind: String, Sendable, Hashable, CaseIterable {
  /// A file is missing, unreadable, too large or cannot be written.
  case file
  /// A spec does not parse or check; the error holds every located diagnostic.
  case spec
  /// A `.model`, ONNX or weights file is corrupt, truncated or does not fit its graph.
  case model
  /// A tensor or argument does not fit: wrong name, dtype, rank or shape, unknown tap.
  case input
  /// A media file cannot be decoded through the input's recipe.
  case media
  /// What was asked cannot be done with this model (a tap kind that needs classes on a model
  /// without class scores, an ONNX operator without a Glassbox form).
  case unsupported
  /// A failure inside the runtime (OpenBLAS or Open MPI missing, a program that cannot be built).
  case runtime
}

/// An error that states its kind and the file it concerns. Each module throws its own error
/// types (a module cannot import the library above it), and every one that can reach a caller
/// conforms, so the library turns any of them into one `GlassboxError` (kind + file + message)
/// without a list of types to keep in step.
public protocol KindedError: Error, CustomStringConvertible {
  /// What kind of mistake this is.
  var errorKind: ErrorKind { get }
  /// The file the error concerns, when there is one (its description already names it).
  var errorFile: String? { get }
}

extension KindedError {
  public var errorFile: String? { nil }
}

extension Diagnostic: KindedError {
  public var errorKind: ErrorKind { .spec }
}

extension DiagnosticList: KindedError {
  public var errorKind: ErrorKind { .spec }
}
