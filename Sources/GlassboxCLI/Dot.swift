import ArgumentParser
import Foundation
import Glassbox
import GlassboxIR
import GlassboxViz

/// `glassbox dot SPEC -o FILE`: a picture of the graph, rendered by libgraphviz.
struct Dot: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Draw the graph with graphviz: .svg, .png, .pdf, or the DOT text (.dot).")

  @OptionGroup var options: SpecOptions

  @Option(
    name: .shortAndLong,
    help: ArgumentHelp(
      "Output file; its extension picks the format: .svg, .png, .pdf or .dot.",
      valueName: "FILE"))
  var output: String

  @Flag(help: "Draw each outermost block instance (layer1, cnn, …) as one node.")
  var collapse = false

  /// The format named by the output's extension; nil for `.dot` (the DOT text itself).
  static func format(of path: String) throws -> PictureFormat? {
    let ext = URL(fileURLWithPath: path).pathExtension.lowercased()
    if ext == "dot" { return nil }
    guard let format = PictureFormat(rawValue: ext) else {
      throw ValidationError(
        "cannot write '\(path)': unknown extension '\(ext.isEmpty ? "(none)" : "." + ext)'; use .svg, .png, .pdf or .dot"
      )
    }
    return format
  }

  func validate() throws { _ = try Dot.format(of: output) }

  func run() throws {
    let format = try Dot.format(of: output)
    let compiled = try loadGraph(options)
    guard let graph = compiled.result.graph else {
      printDiagnostics(compiled.result.diagnostics, source: compiled.source)
      throw ExitCode(1)
    }
    let picture = GraphPicture(graph, collapse: collapse)
    let bytes = try format.map { try Graphviz.render(picture.text, as: $0) } ?? Array(picture.text.utf8)
    try replaceFile(at: output, with: bytes)
    print("wrote \(output): \(picture.nodeCount) nodes (\(format?.rawValue ?? "dot"))")
  }
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`, so a failure
/// leaves no half-written file and an existing file is only replaced by a complete one.
func replaceFile(at path: String, with bytes: [UInt8]) throws {
  let url = URL(fileURLWithPath: path)
  let temporary = url.deletingLastPathComponent()
    .appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
  do {
    try Data(bytes).write(to: temporary, options: .withoutOverwriting)
  } catch {
    throw GlassboxError(.file, "\(path): cannot write: \(error.localizedDescription)")
  }
  guard rename(temporary.path, url.path) == 0 else {
    let reason = String(cString: strerror(errno))
    try? FileManager.default.removeItem(at: temporary)
    throw GlassboxError(.file, "\(path): cannot write: \(reason)")
  }
}
