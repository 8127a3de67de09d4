import Foundation
@testable import GlassboxFormat
import GlassboxIR
import Testing

/// The format is open: tools/read_model.py (Python protobuf) and tools/c_reader (protobuf-c)
/// read a model Glassbox wrote and print the same report, and the tensors Glassbox stored.
/// Each is skipped, saying why, where its tools are not installed (tools/setup installs them).
struct ReaderTests {
  /// The first executable of `names` found on PATH or as given.
  static func executable(_ names: [String]) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for name in names {
      if name.hasPrefix("/") { if FileManager.default.isExecutableFile(atPath: name) { return name } else { continue } }
      for dir in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
        return "\(dir)/\(name)"
      }
    }
    return nil
  }

  /// Runs a program; its standard output, or nil with the reason when it fails.
  static func run(_ program: String, _ arguments: [String]) -> (output: String, ok: Bool) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: program)
    p.arguments = arguments
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    do { try p.run() } catch { return ("\(error)", false) }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    return p.terminationStatus == 0 ? (text, true) : (text + String(decoding: errData, as: UTF8.self), false)
  }

  /// A Python that has the protobuf package (Debian's python3-protobuf lives under /usr/bin).
  static let python: String? = {
    for candidate in ["python3", "/usr/bin/python3"] {
      if let exe = executable([candidate]), run(exe, ["-c", "import google.protobuf"]).ok { return exe }
    }
    return nil
  }()

  static let protoc = executable(["protoc"])
  static let protocC = executable(["protoc-c"])
  static let cc = executable(["cc", "gcc", "clang"])
  static var haveCReader: Bool {
    protocC != nil && cc != nil && FileManager.default.fileExists(atPath: "/usr/include/protobuf-c/protobuf-c.h")
  }

  /// What both readers should print for a model, from Glassbox's own view of it.
  static func expectedReport(_ m: ModelFile, fileBytes: Int) -> String {
    let g = m.graph
    var out = "graph \(g.name) (format version 1, \(fileBytes) bytes)\n"
    for i in g.inputs { out += "  input   \(g[i].name): \(g[i].type)\n" }
    for o in g.outputs { out += "  output  \(o.name): \(g[o.value].type)\n" }
    for t in g.taps {
      out +=
        "  tap     \(t.name) = \(t.kind.rawValue)(\(t.operands.map { g[$0].name }.joined(separator: ", "))): \(t.type)\n"
    }
    if !m.labels.isEmpty { out += "  labels  \(m.labels.joined(separator: ", "))\n" }
    return out
  }

  static func model(in dir: ScratchDirectory) throws -> (String, ModelFile) {
    var c = try ModelFileTests.contents("resnet18_lstm", ["C": 3])
    c.labels = ["run", "jump", "wave"]
    let path = dir.path("video.model")
    try ModelFile.write(c, to: path)
    return (path, try ModelFile.load(path))
  }

  static func check(_ report: String, _ m: ModelFile, path: String) throws {
    let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
    #expect(report.hasPrefix(expectedReport(m, fileBytes: size)))
    let tensorLines = report.split(separator: "\n").dropFirst(
      expectedReport(m, fileBytes: size).split(separator: "\n").count)
    #expect(tensorLines.count == m.graph.parameters.count + 1)
    for (line, p) in zip(tensorLines, m.graph.parameters) {
      #expect(line.hasPrefix("\(p.name) \(p.type) \(p.role == .trainable ? "param" : "buffer") offset "))
    }
    #expect(tensorLines.last == "\(m.graph.parameters.count) tensors, \(m.weightByteCount) bytes")
  }

  @Test(
    .enabled(
      if: python != nil && protoc != nil,
      "tools/read_model.py needs protoc and python3-protobuf (tools/setup installs them)"))
  func pythonReaderReadsAModel() throws {
    let dir = try ScratchDirectory()
    defer { dir.cleanUp() }
    let (path, m) = try Self.model(in: dir)
    let result = Self.run(
      try #require(Self.python), [Repo.root.appendingPathComponent("tools/read_model.py").path, path, "--values", "2"])
    #expect(result.ok, "\(result.output)")
    try Self.check(result.output, m, path: path)
    // The values it prints are the stored ones.
    let first = m.weight(ofParameter: 0).floats.prefix(2).map { String(format: "%.6g", $0) }.joined(separator: ", ")
    #expect(
      result.output.contains("\(m.graph.parameters[0].name) \(m.graph.parameters[0].type) param offset 0 crc32 ")
        && result.output.contains("[\(first), …]"))
  }

  @Test(
    .enabled(
      if: haveCReader, "the C reader needs protoc-c, libprotobuf-c-dev and a C compiler (tools/setup installs them)"))
  func cReaderReadsAModelAsPythonDoes() throws {
    let dir = try ScratchDirectory()
    defer { dir.cleanUp() }
    let (path, m) = try Self.model(in: dir)
    let proto = Repo.root.appendingPathComponent("Formats").path
    var r = Self.run(try #require(Self.protocC), ["--c_out=\(dir.url.path)", "-I\(proto)", "\(proto)/glassbox.proto"])
    #expect(r.ok, "\(r.output)")
    let reader = dir.path("read_model")
    r = Self.run(
      try #require(Self.cc),
      [
        "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-I\(dir.url.path)",
        Repo.root.appendingPathComponent("tools/c_reader/read_model.c").path,
        dir.path("glassbox.pb-c.c"), "-lprotobuf-c", "-o", reader,
      ])
    #expect(r.ok, "\(r.output)")
    let c = Self.run(reader, [path, "--values", "2"])
    #expect(c.ok, "\(c.output)")
    try Self.check(c.output, m, path: path)
    if let python = Self.python, Self.protoc != nil {
      let py = Self.run(python, [Repo.root.appendingPathComponent("tools/read_model.py").path, path, "--values", "2"])
      #expect(py.output == c.output, "the Python and C readers disagree")
    }
    // A corrupt tensor is caught by the C reader's own checksum.
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    bytes[bytes.count - 1] ^= 1
    try Data(bytes).write(to: URL(fileURLWithPath: dir.path("bad.model")))
    let bad = Self.run(reader, [dir.path("bad.model")])
    #expect(!bad.ok && bad.output.contains("fails its checksum"))
  }

  /// The readers' usage lines name `make` targets the Makefile has.
  @Test func usageNamesMakeTargetsThatExist() throws {
    let makefile = try String(contentsOf: Repo.root.appendingPathComponent("Makefile"), encoding: .utf8)
    let targets = Set(
      makefile.split(separator: "\n").compactMap { line -> String? in
        guard let colon = line.firstIndex(of: ":"), !line.hasPrefix("\t"), !line.hasPrefix(".") else { return nil }
        let name = line[..<colon]
        return name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" } ? String(name) : nil
      })
    var named = 0
    for file in ["tools/c_reader/read_model.c", "tools/read_model.py"] {
      let text = try String(contentsOf: Repo.root.appendingPathComponent(file), encoding: .utf8)
      for match in text.matches(of: /\bmake ([a-z][a-z0-9_-]*)/) {
        named += 1
        #expect(targets.contains(String(match.1)), "\(file) names `make \(match.1)`; the Makefile has no such target")
      }
    }
    #expect(named >= 1, "the C reader's usage names its make target")
  }
}
