import CGraphviz
import Foundation
import GlassboxIR

/// Picture formats graphviz renders for us.
public enum PictureFormat: String, CaseIterable, Sendable {
  /// An SVG document (text, starts `<?xml`).
  case svg
  /// A PNG image at graphviz's default 96 dpi.
  case png
  /// A one-page PDF.
  case pdf

  /// The graphviz device: png and pdf come from the cairo (pango) plugin.
  var device: String {
    switch self {
    case .svg: "svg"
    case .png: "png:cairo"
    case .pdf: "pdf:cairo"
    }
  }
}

/// Graphviz could not read, lay out or render a DOT text; the message carries its complaints.
public struct RenderError: Error, Sendable, CustomStringConvertible {
  /// `graphviz: <what failed>: <graphviz's own messages>`.
  public var description: String
}

/// libgraphviz (gvc + cgraph) behind one process-wide lock: the library keeps global state
/// (error level, error handler, plugin tables) and is not thread-safe.
public enum Graphviz {
  private static let lock = NSLock()
  /// Messages graphviz reported during the current call (guarded by `lock`, capped).
  nonisolated(unsafe) private static var messages = ""

  /// Lays out `dot` with the `dot` engine and renders it; returns the file's bytes
  /// (an SVG document, a PNG image or a PDF).
  public static func render(_ dot: String, as format: PictureFormat) throws(RenderError) -> [UInt8] {
    lock.lock()
    defer { lock.unlock() }
    messages = ""
    // Collect warnings and errors instead of printing them; they are only shown on failure.
    agseterr(AGWARN)
    _ = agseterrf { text in
      if let text, Graphviz.messages.utf8.count < 4096 { Graphviz.messages += String(cString: text) }
      return 0
    }
    func failure(_ what: String) -> RenderError {
      let said = messages.trimmingCharacters(in: .whitespacesAndNewlines)
      return RenderError(description: "graphviz: \(what)" + (said.isEmpty ? "" : ": \(said)"))
    }
    guard let context = gvContext() else { throw failure("cannot create a context") }
    defer { gvFreeContext(context) }
    guard let graph = agmemread(dot) else { throw failure("cannot read the DOT text") }
    defer { agclose(graph) }
    guard gvLayout(context, graph, "dot") == 0 else { throw failure("layout failed") }
    defer { gvFreeLayout(context, graph) }
    var data: UnsafeMutablePointer<CChar>?
    var length: UInt32 = 0
    guard gvRenderData(context, graph, format.device, &data, &length) == 0, let data else {
      throw failure("cannot render \(format.rawValue)")
    }
    defer { gvFreeRenderData(data) }
    return UnsafeRawBufferPointer(start: data, count: Int(length)).map { $0 }
  }
}

extension RenderError: KindedError {
  public var errorKind: ErrorKind { .runtime }
}
