import ArgumentParser
import Foundation
import Glassbox
@testable import GlassboxCLI
import GlassboxIR
import Testing

/// `glassbox check`: its report, its JSON, and exit status 1 with diagnostics.
struct CheckCommandTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

  static func graph(_ name: String, _ bindings: [String: Int] = [:]) throws -> Graph {
    let path = root.appendingPathComponent("graphs/\(name).graph").path
    return try Spec.checkedGraph(try loadSource(path), bindings: bindings)
  }

  @Test func summaryGroupsTheCount() throws {
    let text = Check.summary(try Self.graph("resnet18"), shapes: false)
    #expect(text.contains("  input   image: f32[B, 3, 224, 224]\n"))
    #expect(text.contains("  output  logits: f32[B, 1000]\n"))
    #expect(text.contains("parameters: 11,689,512 in 62 tensors; buffers: 9,620 in 60 tensors"))
    #expect(text.contains("  tap     gradcam = gradcam(layer4): f32[B, 7, 7]\n"))
  }

  @Test func unboundClassCountStaysSymbolic() throws {
    let text = Check.summary(try Self.graph("bilstm"), shapes: false)
    #expect(text.contains("parameters: 41472 + 65*C in 10 tensors"))
  }

  @Test func shapesListEveryNode() throws {
    let g = try Self.graph("bilstm_attention1d", ["C": 5])
    let text = Check.summary(g, shapes: true)
    #expect(text.contains("weights"))
    #expect(text.contains("f32[B, 768]"))
    let nodeLines = (text.components(separatedBy: "\n\n").last ?? "").split(separator: "\n")
    #expect(nodeLines.count == g.nodes.count)
  }

  @Test func jsonHasTheDocumentedFields() throws {
    let text = Check.json(try Self.graph("bilstm_attention2d", ["C": 5])).text
    let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    #expect(object["parameterCount"] as? Int == 45_957)
    let inputs = try #require(object["inputs"] as? [[String: Any]])
    #expect(inputs.first?["name"] as? String == "mfcc")
    #expect(inputs.first?["dtype"] as? String == "f32")
    #expect((inputs.first?["shape"] as? [Any])?.first as? String == "B")
    #expect((inputs.first?["shape"] as? [Any])?.last as? Int == 128)
    let taps = try #require(object["taps"] as? [[String: Any]])
    #expect(taps.first?["name"] as? String == "attention")
    #expect(taps.first?["shape"] as? [Any] != nil)
  }

  @Test func diagnosticsJSON() {
    let d = Diagnostic("undefined value 'h'", at: SourceLocation(file: "a \"b\".graph", line: 3, column: 7))
    #expect(Check.json(d).text == #"{"file":"a \"b\".graph","line":3,"column":7,"message":"undefined value 'h'"}"#)
  }

  @Test func badSpecExitsWithStatusOne() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glassbox-check-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let spec = dir.appendingPathComponent("bad.graph")
    try "graph g(x: f32[4]) -> (y: f32[4]) {\n  y = rleu(x)\n}\n".write(to: spec, atomically: true, encoding: .utf8)
    let command = try Check.parse([spec.path, "--json"])
    #expect(throws: ExitCode(1)) { try command.run() }
    let missing = try Check.parse([dir.appendingPathComponent("none.graph").path])
    #expect { try missing.run() } throws: {
      ($0 as? GlassboxError)?.kind == .file && "\($0)".hasSuffix("none.graph: no such file")
    }
  }

  @Test func bindingsParse() {
    #expect(Binding(argument: "C=5")?.value == 5)
    #expect(Binding(argument: "C=x") == nil)
    #expect(Binding(argument: "=5") == nil)
  }
}
