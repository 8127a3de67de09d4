import Foundation
@testable import GlassboxFormat
import GlassboxIR

/// Paths of the repository and of this target's fixtures.
enum Repo {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

  static func fixture(_ relative: String) -> String { fixtures.appendingPathComponent(relative).path }

  static func spec(_ name: String, _ bindings: [String: Int] = [:]) throws -> (Graph, SourceText) {
    let url = root.appendingPathComponent("graphs/\(name).graph")
    let source = SourceText(fileName: "graphs/\(name).graph", text: try String(contentsOf: url, encoding: .utf8))
    return (try Spec.checkedGraph(source, bindings: bindings), source)
  }
}

/// A fresh directory under the system's temporary directory, removed by `cleanUp`.
struct ScratchDirectory {
  let url: URL
  init() throws {
    url = FileManager.default.temporaryDirectory.appendingPathComponent("glassbox-format-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  }
  func path(_ name: String) -> String { url.appendingPathComponent(name).path }
  func cleanUp() { try? FileManager.default.removeItem(at: url) }
  /// Names of the files in the directory (temporary files included), sorted.
  var files: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).sorted() }
}

/// The fixture formula of tools/reference/tensor_files.py.
enum FixtureValues {
  static func f32(_ n: Int) -> [Float] { (0..<n).map { Float($0) * 0.5 - 1 } }
  static func f64(_ n: Int) -> [Double] { (0..<n).map { Double($0) * 0.5 - 1 } }
  static func i64(_ n: Int) -> [Int64] { (0..<n).map { Int64($0) * 3 - 7 } }
  static func bool(_ n: Int) -> [Bool] { (0..<n).map { $0 % 3 == 0 } }
}
