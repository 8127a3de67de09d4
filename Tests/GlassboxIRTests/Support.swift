import Foundation
import GlassboxIR

/// Paths of the repository, found from this file's location.
enum Repo {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
  static let graphs = root.appendingPathComponent("graphs")
  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

  /// The study specs, by name (`bilstm`, `resnet18`, …), sorted.
  static var specNames: [String] {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: graphs.path)) ?? []
    return files.filter { $0.hasSuffix(".graph") }.map { String($0.dropLast(6)) }.sorted()
  }

  static func spec(_ name: String) throws -> SourceText {
    let url = graphs.appendingPathComponent(name + ".graph")
    return SourceText(fileName: "graphs/\(name).graph", text: try String(contentsOf: url, encoding: .utf8))
  }
}

/// Compiles inline spec text; the file is called `test.graph` in diagnostics.
func compile(_ text: String, bindings: [String: Int] = [:]) -> Spec.Result {
  Spec.compile(SourceText(fileName: "test.graph", text: text), bindings: bindings)
}

/// The rendered diagnostics of inline spec text, as `glassbox check` prints them.
func diagnostics(_ text: String, bindings: [String: Int] = [:]) -> String {
  let source = SourceText(fileName: "test.graph", text: text)
  return Spec.compile(source, bindings: bindings).diagnostics.map { $0.rendered(source: source) }
    .joined(separator: "\n")
}

/// Whether golden files are being re-recorded (`GLASSBOX_RECORD=1`); such a run still fails.
let recording = ProcessInfo.processInfo.environment["GLASSBOX_RECORD"] == "1"
