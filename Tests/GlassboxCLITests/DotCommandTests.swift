import Foundation
import GlassboxCLI
import Testing

/// `glassbox dot`: the extension picks the format, and a failure never harms an existing file.
struct DotCommandTests {
  static let bilstm = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("graphs/bilstm.graph").path

  /// A fresh empty directory, removed after `body`.
  static func withTemporaryDirectory(_ body: (URL) throws -> Void) throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glassbox-dot-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    try body(dir)
  }

  static func glassbox(_ arguments: [String]) throws {
    var command = try GlassboxCommand.parseAsRoot(arguments)
    try command.run()
  }

  @Test func unknownExtensionIsRejectedNamingTheAcceptedOnes() throws {
    try Self.withTemporaryDirectory { dir in
      let output = dir.appendingPathComponent("net.gif").path
      #expect {
        try Self.glassbox(["dot", Self.bilstm, "-o", output])
      } throws: { error in
        let message = GlassboxCommand.message(for: error)
        return message.contains("'.gif'") && message.contains(".svg, .png, .pdf or .dot")
      }
      #expect(!FileManager.default.fileExists(atPath: output))
    }
  }

  @Test func failedRunLeavesAnExistingOutputAlone() throws {
    try Self.withTemporaryDirectory { dir in
      let spec = dir.appendingPathComponent("broken.graph")
      try Data("graph g(x: f32[2]) -> (y: f32[2]) {\n  y = no_such_op(x)\n}\n".utf8).write(to: spec)
      let output = dir.appendingPathComponent("net.svg")
      try Data("keep".utf8).write(to: output)
      #expect(throws: (any Error).self) { try Self.glassbox(["dot", spec.path, "-o", output.path]) }
      #expect(try Data(contentsOf: output) == Data("keep".utf8))
      #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["broken.graph", "net.svg"])
    }
  }

  @Test func writesEachFormatReplacingAnExistingFile() throws {
    try Self.withTemporaryDirectory { dir in
      for (ext, magic) in [("svg", "<?xml"), ("png", "\u{89}PNG"), ("pdf", "%PDF"), ("dot", "digraph")] {
        let output = dir.appendingPathComponent("net.\(ext)")
        try Data("old".utf8).write(to: output)
        try Self.glassbox(["dot", Self.bilstm, "--bind", "C=5", "-o", output.path, "--collapse"])
        let head = try Data(contentsOf: output).prefix(magic.unicodeScalars.count)
        #expect(Array(head) == magic.unicodeScalars.map { UInt8($0.value) }, "\(ext)")
      }
      #expect(
        try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
          == ["net.dot", "net.pdf", "net.png", "net.svg"])
    }
  }

  @Test func unwritableOutputIsAnError() throws {
    try Self.withTemporaryDirectory { dir in
      let output = dir.appendingPathComponent("missing/net.dot").path
      #expect {
        try Self.glassbox(["dot", Self.bilstm, "-o", output])
      } throws: { error in
        GlassboxCommand.message(for: error).contains("\(output): cannot write")
      }
    }
  }
}
