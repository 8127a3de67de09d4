import Foundation
import GlassboxCLI
import GlassboxFormat
import GlassboxIR
import Testing

/// `glassbox export … -o X.onnx`: the README's example runs as written — its commands through
/// the command's parser, then its Python under a venv's interpreter with onnxruntime (`.venv`
/// or `/work/venv`; without one the test is skipped and says so).
struct ExportCommandTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

  static let python: String? = {
    for venv in [root.appendingPathComponent(".venv").path, "/work/venv"] {
      let python = venv + "/bin/python"
      guard FileManager.default.isExecutableFile(atPath: python) else { continue }
      let p = Process()
      p.executableURL = URL(fileURLWithPath: python)
      p.arguments = ["-c", "import onnxruntime"]
      p.standardError = FileHandle.nullDevice
      guard (try? p.run()) != nil else { continue }
      p.waitUntilExit()
      if p.terminationStatus == 0 { return python }
    }
    return nil
  }()

  /// The `sh` and `python` blocks of the README's "Explanations as ONNX" section.
  static func blocks() throws -> (sh: String, python: String) {
    let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
    let parts = readme.components(separatedBy: "### Explanations as ONNX (`glassbox export`)\n")
    try #require(parts.count == 2, "README has no 'Explanations as ONNX' section")
    let section = parts[1].components(separatedBy: "\n## ")[0]
    func block(_ language: String) throws -> String {
      let pieces = section.components(separatedBy: "```\(language)\n")
      try #require(pieces.count == 2, "one \(language) block expected")
      return pieces[1].components(separatedBy: "```")[0]
    }
    return (try block("sh"), try block("python"))
  }

  @Test(
    .enabled(
      if: python != nil || ProcessInfo.processInfo.environment["GLASSBOX_REQUIRE_ONNX"] == "1",
      "needs a venv with onnxruntime (.venv or /work/venv)"))
  func theREADMEExampleRuns() throws {
    let (sh, script) = try Self.blocks()
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glassbox-export-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    // Paths in the repository are read from it; the rest are written in the folder.
    for line in sh.split(separator: "\n") {
      let words = line.components(separatedBy: "#")[0].split(separator: " ").map(String.init)
      try #require(words.first == "glassbox", "\(line)")
      let arguments = words.dropFirst().map { w in
        guard w.contains("."), !w.hasPrefix("-") else { return w }
        let inRepository = Self.root.appendingPathComponent(w).path
        return FileManager.default.fileExists(atPath: inRepository) ? inRepository : dir.appendingPathComponent(w).path
      }
      var command = try GlassboxCommand.parseAsRoot(Array(arguments))
      try command.run()
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try #require(Self.python))
    p.arguments = ["-c", script]
    p.currentDirectoryURL = dir
    let out = Pipe(), errors = Pipe()
    p.standardOutput = out
    p.standardError = errors
    try p.run()
    let printed = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    #expect(p.terminationStatus == 0, "\(message)")
    let lines = printed.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
    #expect(
      lines.first?.hasPrefix("class ") == true && lines.first?.hasSuffix("Grad-CAM (16, 16)") == true,
      "\(printed)")
    // A 16×16 map, its largest value drawn as the densest character.
    #expect(lines.count == 17 && lines.dropFirst().allSatisfy { $0.count == 16 }, "\(printed)")
    #expect(lines.dropFirst().contains { $0.contains("@") }, "\(printed)")
  }

  /// `glassbox import` of an export writes back the model it came from: a `.model` with the
  /// same graph (taps, recipe) and weights, and a spec with every parameter in its safetensors.
  @Test
  func importingAnExportWritesBackTheModel() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glassbox-export-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
    func glassbox(_ arguments: [String]) throws {
      var command = try GlassboxCommand.parseAsRoot(arguments)
      try command.run()
    }
    try glassbox([
      "compile", Self.root.appendingPathComponent("examples/tiny_cnn.graph").path, "-o", path("tiny.model"),
    ])
    try glassbox(["export", path("tiny.model"), "-o", path("tiny.onnx")])
    try glassbox(["import", path("tiny.onnx"), "-o", path("back.model")])
    try glassbox(["import", path("tiny.onnx"), "-o", path("back.graph")])
    let original = try ModelFile.load(path("tiny.model")), back = try ModelFile.load(path("back.model"))
    #expect(back.graph == original.graph)
    #expect(back.graph.taps.map(\.name) == ["gradcam", "cam", "act"])
    #expect(back.namedWeights().map(\.tensor) == original.namedWeights().map(\.tensor))
    let weights = try SafeTensors.read(path("back.safetensors"))
    #expect(Set(weights.tensors.map(\.name)) == Set(original.graph.parameters.map(\.name)))
    #expect(try String(contentsOfFile: path("back.graph"), encoding: .utf8).contains("tap gradcam = gradcam("))
  }
}
