import Foundation
import GlassboxIR
import Testing

/// Every diagnostic's exact text, MLIR `invalid.mlir` style: each `Fixtures/invalid/NAME.graph`
/// is compiled and its rendered diagnostics must equal `NAME.expected` byte for byte.
/// A first line `# bind: C=5 B=2` passes bindings. `GLASSBOX_RECORD=1` rewrites the expected
/// files (and fails the run, so a re-recording is always looked at).
struct DiagnosticGoldenTests {
  static let directory = Repo.fixtures.appendingPathComponent("invalid")

  static var cases: [String] {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
    return files.filter { $0.hasSuffix(".graph") }.map { String($0.dropLast(6)) }.sorted()
  }

  @Test func casesExist() {
    #expect(Self.cases.count >= 60)
  }

  @Test(arguments: cases)
  func diagnosticText(_ name: String) throws {
    let specURL = Self.directory.appendingPathComponent(name + ".graph")
    let bytes = [UInt8](try Data(contentsOf: specURL))
    let fileName = "invalid/\(name).graph"
    var bindings: [String: Int] = [:]
    if let firstLine = String(decoding: bytes.prefix(200), as: UTF8.self).split(separator: "\n").first,
      firstLine.hasPrefix("# bind:")
    {
      for pair in firstLine.dropFirst(7).split(separator: " ") {
        let kv = pair.split(separator: "=")
        if kv.count == 2, let v = Int(kv[1]) { bindings[String(kv[0])] = v }
      }
    }
    let rendered: String
    do {
      let source = try SourceText(fileName: fileName, bytes: bytes)
      let result = Spec.compile(source, bindings: bindings)
      #expect(result.graph == nil, "an invalid spec must not produce a graph")
      rendered = result.diagnostics.map { $0.rendered(source: source) }.joined(separator: "\n") + "\n"
    } catch {
      rendered = error.description + "\n"
    }
    let expectedURL = Self.directory.appendingPathComponent(name + ".expected")
    if recording {
      try rendered.write(to: expectedURL, atomically: true, encoding: .utf8)
      Issue.record("re-recorded \(expectedURL.lastPathComponent)")
      return
    }
    let expected = try String(contentsOf: expectedURL, encoding: .utf8)
    #expect(rendered == expected)
  }
}
