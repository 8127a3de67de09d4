import ArgumentParser
import Foundation
@testable import GlassboxCLI
import GlassboxFormat
import GlassboxIR
import GlassboxMedia
import Testing

/// The built `glassbox` run as a user runs it, standard error a pipe (not a terminal): every
/// subcommand's failing invocation exits with 1 for bad input or 64 for a usage mistake and
/// names the problem on standard error; long commands write progress lines a log can keep.
struct ExitStatusTests {
  /// The debug `glassbox` built beside the test runner (`swift build --build-tests` builds it).
  static let binary = (Bundle.main.executableURL ?? URL(fileURLWithPath: "/")).deletingLastPathComponent()
    .appendingPathComponent("glassbox").path

  struct Outcome {
    var status: Int32
    var output: String
    var errors: String
  }

  /// Runs the binary in `directory`; standard output and error go to files (either can outgrow
  /// a pipe's buffer).
  static func run(_ arguments: [String], in directory: URL) throws -> Outcome {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments
    process.currentDirectoryURL = directory
    let id = UUID().uuidString
    let out = directory.appendingPathComponent("stdout-\(id)"), err = directory.appendingPathComponent("stderr-\(id)")
    try #require(FileManager.default.createFile(atPath: out.path, contents: nil))
    try #require(FileManager.default.createFile(atPath: err.path, contents: nil))
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    process.standardInput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    return Outcome(
      status: process.terminationStatus, output: try String(contentsOf: out, encoding: .utf8),
      errors: try String(contentsOf: err, encoding: .utf8))
  }

  /// One failing invocation: the status it must exit with and what standard error must name.
  struct Case: CustomTestStringConvertible, Sendable {
    var command: String
    var arguments: [String]
    var status: Int32
    var names: String
    var testDescription: String { "\(command) → \(status)" }
  }

  static let bilstm = ModelCommandTests.spec("bilstm")

  /// Files the cases refer to, by the names they use (relative to the working directory).
  static func makeInputs(in dir: URL) throws {
    try "graph g(x: f32[4]) -> (y: f32[4]) {\n  y = rleu(x)\n}\n".write(
      to: dir.appendingPathComponent("bad.graph"),
      atomically: true, encoding: .utf8)
    try Data("this is text, not a model; long enough to hold a header of sixty-four bytes.".utf8)
      .write(to: dir.appendingPathComponent("text.model"))
    try Data("GBXMODEL".utf8 + [1, 0, 0, 0]).write(to: dir.appendingPathComponent("short.model"))
    try Data("RIFF, but not really a wave file".utf8).write(to: dir.appendingPathComponent("garbage.wav"))
    try NPY.write(Tensor(shape: [1, 3], f32: [1, 2, 3]), to: dir.appendingPathComponent("wrong.npy").path)
    try NPY.write(
      Tensor(shape: [1, 768, 128], f32: [Float](repeating: 0.5, count: 768 * 128)),
      to: dir.appendingPathComponent("mfcc.npy").path)
    try Data("a file".utf8).write(to: dir.appendingPathComponent("plain.txt"))
    try Data("this is text, not an ONNX model".utf8).write(to: dir.appendingPathComponent("text.onnx"))
  }

  static let cases: [Case] = [
    Case(command: "check", arguments: ["check", "bad.graph"], status: 1, names: "bad.graph:2:7: error: "),
    Case(
      command: "dot", arguments: ["dot", "missing.graph", "-o", "g.svg"], status: 1,
      names: "missing.graph: no such file"),
    Case(command: "compile", arguments: ["compile", bilstm, "--bind", "C=2"], status: 64, names: "give -o FILE.model"),
    Case(command: "info", arguments: ["info", "text.model"], status: 1, names: "text.model: not a Glassbox model"),
    Case(
      command: "import", arguments: ["import", "text.onnx", "-o", "m.model"], status: 1,
      names: "text.onnx: is not an ONNX model"),
    Case(
      command: "export", arguments: ["export", "short.model", "-o", "w.safetensors"], status: 1,
      names: "short.model: file is 12 bytes, shorter than the 64-byte .model header"),
    Case(
      command: "features", arguments: ["features", bilstm, "garbage.wav", "-o", "f.npy"], status: 1,
      names: "garbage.wav"),
    Case(
      command: "run", arguments: ["run", bilstm, "--bind", "C=2", "--input", "mfcc=wrong.npy"], status: 1,
      names: "wrong.npy"),
    Case(
      command: "train", arguments: ["train", bilstm, "--data", "no-data", "-o", "t.model"], status: 1, names: "no-data"),
    Case(
      command: "tap", arguments: ["tap", bilstm, "nope", "mfcc.npy", "--bind", "C=2", "-o", "out"], status: 1,
      names: "no tap 'nope'"),
    Case(
      command: "evaluate", arguments: ["evaluate", bilstm, "--bind", "C=2", "--data", "no-data"], status: 1,
      names: "no-data: no such folder"),
    Case(command: "merge", arguments: ["merge", "out"], status: 1, names: "out: no such shard folder"),
    Case(command: "bench", arguments: ["bench", "missing.graph"], status: 1, names: "missing.graph: no such file"),
    Case(
      command: "embed", arguments: ["embed", bilstm, "--bind", "C=2", "--data", "no-data", "-o", "e.svg"], status: 1,
      names: "no-data: no such folder"),
    Case(
      command: "report", arguments: ["report", "no-study", "-o", "r.html"], status: 1,
      names: "no-study: no such study folder"),
    Case(
      command: "study", arguments: ["study", "-o", "plain.txt"], status: 64,
      names: "-o plain.txt: exists and is not a folder"),
    Case(command: "version", arguments: ["version", "--verbose"], status: 64, names: "Unknown option '--verbose'"),
  ]

  /// Every subcommand has its case.
  @Test func everySubcommandHasACase() {
    let subcommands = Set(GlassboxCommand.configuration.subcommands.map { $0._commandName })
    #expect(subcommands.count >= 15)
    #expect(Set(Self.cases.map(\.command)) == subcommands)
  }

  @Test(arguments: cases)
  func failingInvocationExitsWithItsStatus(_ c: Case) throws {
    try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "no \(Self.binary)")
    try ModelCommandTests.withTemporaryDirectory { dir in
      try Self.makeInputs(in: dir)
      let r = try Self.run(c.arguments, in: dir)
      #expect(r.status == c.status, "glassbox \(c.arguments.joined(separator: " ")): status \(r.status)\n\(r.errors)")
      #expect(r.errors.contains(c.names), "glassbox \(c.arguments.joined(separator: " ")): stderr is\n\(r.errors)")
      // A usage mistake shows the usage; bad input does not bury its message under it.
      #expect(r.errors.contains("Usage: glassbox") == (c.status == 64), "\(r.errors)")
    }
  }

  /// Every command prints a spec's diagnostics one way, as `check` does: each located, with its
  /// source line and caret, and no `Error:` before them; `--help` states the statuses.
  @Test func specDiagnosticsPrintAlikeFromEveryCommand() throws {
    try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "no \(Self.binary)")
    try ModelCommandTests.withTemporaryDirectory { dir in
      try Self.makeInputs(in: dir)
      let expected = try Self.run(["check", "bad.graph"], in: dir).errors
      #expect(expected.hasPrefix("bad.graph:2:7: error: unknown op or block 'rleu'\n") && expected.contains("^"))
      for arguments in [
        ["compile", "bad.graph", "-o", "m.model"], ["run", "bad.graph"], ["bench", "bad.graph"],
        ["tap", "bad.graph", "x", "in.npy", "-o", "out"],
      ] {
        let r = try Self.run(arguments, in: dir)
        #expect(r.status == 1, "glassbox \(arguments.joined(separator: " ")): \(r.status)")
        #expect(r.errors == expected, "glassbox \(arguments.joined(separator: " ")):\n\(r.errors)")
      }
      let help = try Self.run(["--help"], in: dir).output
      #expect(
        help.contains("Exit status: 0 when") && help.contains("1 when an input is wrong") && help.contains("64 when"))
    }
  }

  /// A spoken-language folder of the MFCC fixtures' clips, two languages of six.
  static func makeSpeech(in dir: URL) throws -> URL {
    let lid = dir.appendingPathComponent("lid")
    for language in ["Hindi", "Tamil"] {
      let folder = lid.appendingPathComponent(language)
      try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
      for clip in ["speech16k", "burst16k", "chirp22k"] {
        let source = ModelCommandTests.root.appendingPathComponent("Tests/GlassboxMediaTests/Fixtures/mfcc/\(clip).wav")
        for copy in ["a", "b"] {
          try FileManager.default.copyItem(at: source, to: folder.appendingPathComponent("\(clip)_\(copy).wav"))
        }
      }
    }
    return lid
  }

  /// `tap --data` that could not explain every example exits with status 1 and counts the
  /// failures on standard error; `tap`, `evaluate` and `embed` write progress to a log as
  /// plain lines (no carriage returns), ending with the count done.
  @Test func longCommandsReportFailuresAndProgressToALog() throws {
    try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "no \(Self.binary)")
    try ModelCommandTests.withTemporaryDirectory { dir in
      let lid = try Self.makeSpeech(in: dir)
      let bad = lid.appendingPathComponent("Hindi/zz_unreadable.wav")
      try Data("RIFF, but not really a wave file".utf8).write(to: bad)
      // The split (seeded, 80/10/10) that holds the unreadable clip.
      let split = try #require(
        SpokenLanguage.Subset.allCases.first { subset in
          (try? SpokenLanguage.load(root: lid.path, subset: subset))?.examples.contains {
            $0.path.hasSuffix("zz_unreadable.wav")
          } == true
        })
      let count = try SpokenLanguage.load(root: lid.path, subset: split).examples.count
      let spec = ModelCommandTests.spec("bilstm_attention1d")
      let tap = try Self.run(
        [
          "tap", spec, "attention", "--bind", "C=2", "--data", "lid", "--split", split.rawValue,
          "--no-pictures", "-o", "explained",
        ], in: dir)
      #expect(tap.status == 1, "tap --data with an unreadable clip exited with \(tap.status)")
      #expect(tap.errors.contains("zz_unreadable.wav: "), "\(tap.errors)")
      #expect(tap.errors.contains("Error: 1 of \(count) examples failed"), "\(tap.errors)")
      #expect(tap.output.contains("explained \(count - 1) of \(count) examples"), "\(tap.output)")
      #expect(!tap.errors.contains("\r") && tap.errors.contains("tap: \(count)/\(count) (100%)"), "\(tap.errors)")

      try FileManager.default.removeItem(at: bad)
      let evaluate = try Self.run(
        [
          "evaluate", spec, "attention", "--bind", "C=2", "--data", "lid", "--split", "train",
          "--steps", "2", "--permutations", "1", "--no-sanity",
        ], in: dir)
      let trainCount = try SpokenLanguage.load(root: lid.path, subset: .train).examples.count
      #expect(evaluate.status == 0, "\(evaluate.errors)")
      #expect(
        !evaluate.errors.contains("\r") && evaluate.errors.contains("evaluate: \(trainCount)/\(trainCount) (100%)"),
        "\(evaluate.errors)")
      let embed = try Self.run(
        ["embed", spec, "--bind", "C=2", "--data", "lid", "--split", "train", "-o", "map.svg"], in: dir)
      #expect(embed.status == 0, "\(embed.errors)")
      #expect(
        !embed.errors.contains("\r") && embed.errors.contains("embed: \(trainCount)/\(trainCount) (100%)"),
        "\(embed.errors)")
    }
  }
}
