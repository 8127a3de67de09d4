import Foundation
@testable import GlassboxCLI
import GlassboxFormat
import Testing

/// Sharded corpus jobs and `glassbox merge`, run as a user runs them (the built binary): the
/// merged shards write and print exactly what the unsharded job does, byte for byte, and merge
/// refuses shards that do not make one whole job before writing anything.
struct ShardCommandTests {
  /// Runs the binary in `directory` with extra environment variables.
  static func run(
    _ arguments: [String], in directory: URL, environment: [String: String] = [:]
  ) throws
    -> ExitStatusTests.Outcome
  {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: ExitStatusTests.binary)
    process.arguments = arguments
    process.currentDirectoryURL = directory
    var env = ProcessInfo.processInfo.environment
    for key in env.keys where key.hasPrefix("SLURM_ARRAY_") || key.hasPrefix("OMPI_COMM_WORLD_") { env[key] = nil }
    process.environment = env.merging(environment) { _, new in new }
    let id = UUID().uuidString
    let out = directory.appendingPathComponent("stdout-\(id)"), err = directory.appendingPathComponent("stderr-\(id)")
    try #require(FileManager.default.createFile(atPath: out.path, contents: nil))
    try #require(FileManager.default.createFile(atPath: err.path, contents: nil))
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    process.standardInput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    defer {
      try? FileManager.default.removeItem(at: out)
      try? FileManager.default.removeItem(at: err)
    }
    return .init(
      status: process.terminationStatus, output: try String(contentsOf: out, encoding: .utf8),
      errors: try String(contentsOf: err, encoding: .utf8))
  }

  /// Runs and requires status 0.
  @discardableResult
  static func succeed(
    _ arguments: [String], in directory: URL, environment: [String: String] = [:]
  ) throws
    -> ExitStatusTests.Outcome
  {
    let r = try run(arguments, in: directory, environment: environment)
    try #require(r.status == 0, "glassbox \(arguments.joined(separator: " ")): status \(r.status)\n\(r.errors)")
    return r
  }

  static func bytes(_ dir: URL, _ path: String) throws -> Data {
    try Data(contentsOf: dir.appendingPathComponent(path))
  }

  /// Every file under `root`, by relative path.
  static func tree(_ root: URL) throws -> [String: Data] {
    var files: [String: Data] = [:]
    let base = root.standardizedFileURL.path
    for case let url as URL in FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) ?? .init() {
      var isDirectory: ObjCBool = false
      guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue else {
        continue
      }
      files[String(url.standardizedFileURL.path.dropFirst(base.count + 1))] = try Data(contentsOf: url)
    }
    return files
  }

  static let tinySpec = """
    graph tiny_lstm(x: f32[B, T, 6]) -> (logits: f32[B, C]) {
      lstm = lstm(x, hidden: 5, bidirectional: true)
      last = select(lstm, axis: 1, index: -1)
      classifier = linear(last, out: C)
      logits = classifier
      tap hidden = hidden(lstm)
    }
    """

  /// The classifier over 21 examples in batches of 4 (the last one short), cut in three
  /// shards by blocks of batches, one shard from a Slurm job array's variables (task ids from
  /// 5): merged, the same stdout, report and predictions, byte for byte; embed likewise (the
  /// plot and points; its JSON differs only in the seconds t-SNE took).
  @Test func shardedEvaluateAndEmbedMergeToTheUnshardedOutput() throws {
    try ModelCommandTests.withTemporaryDirectory { dir in
      try TrainCommandTests.writeData(
        dir.path + "/data", classes: 3, shape: [4, 6], band: 2,
        perClass: ["test": 7, "train": 5])
      try Self.tinySpec.write(to: dir.appendingPathComponent("tiny.graph"), atomically: true, encoding: .utf8)
      let evaluate = ["evaluate", "tiny.graph", "--bind", "C=3", "--seed", "4", "--data", "data", "--batch", "4"]
      let whole = try Self.succeed(evaluate + ["-o", "whole.json", "--predictions", "whole.predictions.json"], in: dir)
      #expect(whole.output.contains("examples (test)                             21"), "\(whole.output)")
      let part = evaluate + ["-o", "part.json", "--predictions", "part.predictions.json"]
      try Self.succeed(part + ["--shard", "2/3"], in: dir)
      try Self.succeed(
        part, in: dir,
        environment: [
          "SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "5",
          "SLURM_ARRAY_TASK_MAX": "7", "SLURM_ARRAY_TASK_COUNT": "3",
        ])
      try Self.succeed(part + ["--shard", "1/3"], in: dir)
      #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("part.json").path))
      let merged = try Self.succeed(["merge", "part.shard-0-of-3", "part.shard-1-of-3", "part.shard-2-of-3"], in: dir)
      #expect(merged.output == whole.output)
      #expect(try Self.bytes(dir, "part.json") == Self.bytes(dir, "whole.json"))
      #expect(try Self.bytes(dir, "part.predictions.json") == Self.bytes(dir, "whole.predictions.json"))

      let embed = [
        "embed", "tiny.graph", "--bind", "C=3", "--data", "data", "--split", "test", "--batch", "5",
        "--perplexity", "3",
      ]
      try Self.succeed(embed + ["-o", "whole.svg"], in: dir)
      for i in 0..<2 { try Self.succeed(embed + ["-o", "part.svg", "--shard", "\(i)/2"], in: dir) }
      try Self.succeed(["merge", "part.shard-1-of-2", "part.shard-0-of-2"], in: dir)
      #expect(try Self.bytes(dir, "part.svg") == Self.bytes(dir, "whole.svg"))
      #expect(try Self.bytes(dir, "part.csv") == Self.bytes(dir, "whole.csv"))
      func withoutTimes(_ name: String) throws -> String {
        try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8).split(separator: "\n")
          .filter { !$0.contains("\"seconds\"") }.joined(separator: "\n")
      }
      #expect(try withoutTimes("part.json") == withoutTimes("whole.json"))
    }
  }

  /// Explanation measures (with attention permutations drawn in the split's order) and
  /// explanation folders over a spoken-language split: merged shards give the unsharded
  /// report's bytes and the unsharded folders' files.
  @Test func shardedExplanationsMergeToTheUnshardedOutput() throws {
    try ModelCommandTests.withTemporaryDirectory { dir in
      _ = try ExitStatusTests.makeSpeech(in: dir)
      let spec = ModelCommandTests.spec("bilstm_attention1d")
      let measure = [
        "evaluate", spec, "attention", "--bind", "C=2", "--data", "lid", "--split", "train",
        "--steps", "3", "--permutations", "3", "--json",
      ]
      let whole = try Self.succeed(measure + ["-o", "whole.json"], in: dir)
      for i in 0..<3 { try Self.succeed(measure + ["-o", "part.json", "--shard", "\(i)/3"], in: dir) }
      let merged = try Self.succeed(["merge"] + (0..<3).map { "part.shard-\($0)-of-3" }, in: dir)
      #expect(merged.output == whole.output)
      #expect(whole.output.contains("\"permutation_tvd_mean\""))
      #expect(try Self.bytes(dir, "part.json") == Self.bytes(dir, "whole.json"))

      let tap = ["tap", spec, "attention", "--bind", "C=2", "--data", "lid", "--split", "train"]
      let explained = try Self.succeed(tap + ["-o", "whole"], in: dir)
      for i in 0..<2 {
        try Self.succeed(
          tap + ["-o", "part"], in: dir,
          environment: ["OMPI_COMM_WORLD_RANK": "\(i)", "OMPI_COMM_WORLD_SIZE": "2"])
      }
      let put = try Self.succeed(["merge", "part.shard-0-of-2", "part.shard-1-of-2"], in: dir)
      #expect(put.output.replacingOccurrences(of: "part/", with: "whole/") == explained.output)
      let wholeTree = try Self.tree(dir.appendingPathComponent("whole"))
      #expect(wholeTree.keys.contains { $0.hasSuffix("/attention.png") } && wholeTree.count > 8)
      #expect(try Self.tree(dir.appendingPathComponent("part")) == wholeTree)
    }
  }

  /// examples/slurm: the job array's script run as two tasks of `--array=3-4` (Slurm's
  /// variables set as Slurm sets them), then the merge job; its outputs are those of the same
  /// script run once without an array.
  @Test func slurmScriptsExplainAndMergeACorpus() throws {
    try ModelCommandTests.withTemporaryDirectory { dir in
      let lid = dir.appendingPathComponent("lid")
      for language in ["Hindi", "Tamil"] {
        let folder = lid.appendingPathComponent(language)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for i in 0..<10 {
          let clip = ["speech16k", "burst16k", "chirp22k"][i % 3]
          let source = ModelCommandTests.root
            .appendingPathComponent("Tests/GlassboxMediaTests/Fixtures/mfcc/\(clip).wav")
          try FileManager.default.copyItem(at: source, to: lid.appendingPathComponent("\(language)/\(clip)_\(i).wav"))
        }
      }
      try Self.succeed(
        ["compile", ModelCommandTests.spec("bilstm_attention1d"), "--bind", "C=2", "-o", "lid.model"],
        in: dir)
      let scripts = ModelCommandTests.root.appendingPathComponent("examples/slurm").path
      let path =
        (ExitStatusTests.binary as NSString).deletingLastPathComponent + ":"
        + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
      func bash(_ script: String, _ environment: [String: String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [scripts + "/" + script]
        process.currentDirectoryURL = dir
        var env = ProcessInfo.processInfo.environment
        for key in env.keys where key.hasPrefix("SLURM_") || key.hasPrefix("OMPI_") { env[key] = nil }
        process.environment = env.merging(
          [
            "PATH": path, "MODEL": "lid.model", "DATA": "lid", "TAP": "attention",
            "SLURM_CPUS_PER_TASK": "1",
          ].merging(environment) { _, b in b }
        ) { _, b in b }
        let log = dir.appendingPathComponent("\(script)-\(UUID().uuidString).log")
        try #require(FileManager.default.createFile(atPath: log.path, contents: nil))
        process.standardOutput = try FileHandle(forWritingTo: log)
        process.standardError = process.standardOutput
        try process.run()
        process.waitUntilExit()
        let text = try String(contentsOf: log, encoding: .utf8)
        try #require(process.terminationStatus == 0, "\(script) \(environment): \(text)")
      }
      for task in [3, 4] {
        try bash(
          "explain.sbatch",
          [
            "OUT": "out", "SLURM_ARRAY_TASK_ID": "\(task)", "SLURM_ARRAY_TASK_MIN": "3",
            "SLURM_ARRAY_TASK_MAX": "4", "SLURM_ARRAY_TASK_COUNT": "2",
          ])
      }
      try bash("merge.sbatch", ["OUT": "out", "SHARDS": "2"])
      try bash("explain.sbatch", ["OUT": "whole"])
      for file in ["evaluation.json", "predictions.json", "attention.json"] {
        #expect(try Self.bytes(dir, "out/" + file) == Self.bytes(dir, "whole/" + file), "\(file)")
      }
      let explained = try Self.tree(dir.appendingPathComponent("whole/explained"))
      #expect(!explained.isEmpty)
      #expect(try Self.tree(dir.appendingPathComponent("out/explained")) == explained)
    }
  }

  /// Two shards of `features` filling one cache leave the entries one unsharded run makes.
  @Test func shardsOfFeaturesFillOneCache() throws {
    try ModelCommandTests.withTemporaryDirectory { dir in
      let lid = try ExitStatusTests.makeSpeech(in: dir)
      // Entries are keyed by the file's bytes: a few bytes after the audio make each copy its own.
      let clips = try FileManager.default.subpathsOfDirectory(atPath: lid.path).filter { $0.hasSuffix(".wav") }.sorted()
      for (i, clip) in clips.enumerated() {
        let handle = try FileHandle(forWritingTo: lid.appendingPathComponent(clip))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(repeating: 0, count: 2 * (i + 1)))
        try handle.close()
      }
      let features = ["features", ModelCommandTests.spec("bilstm"), "lid", "--workers", "1", "--cache"]
      let first = try Self.succeed(features + ["shared", "--shard", "0/2"], in: dir)
      #expect(first.output.contains("features: shard 0/2 (--shard 0/2): 6 of 12 clips"), "\(first.output)")
      try Self.succeed(
        features + ["shared"], in: dir,
        environment: [
          "SLURM_ARRAY_TASK_ID": "1",
          "SLURM_ARRAY_TASK_COUNT": "2",
        ])
      try Self.succeed(features + ["whole"], in: dir)
      let whole = try Self.tree(dir.appendingPathComponent("whole"))
      #expect(whole.count == 12)
      #expect(try Self.tree(dir.appendingPathComponent("shared")) == whole)
    }
  }

  /// Shards that are not one whole job are refused with the reason, and nothing is written.
  @Test func mergeRefusesShardsThatDoNotMakeOneJob() throws {
    try ModelCommandTests.withTemporaryDirectory { dir in
      try TrainCommandTests.writeData(dir.path + "/data", classes: 2, shape: [4, 6], band: 3, perClass: ["test": 3])
      try Self.tinySpec.write(to: dir.appendingPathComponent("tiny.graph"), atomically: true, encoding: .utf8)
      let evaluate = ["evaluate", "tiny.graph", "--bind", "C=2", "--data", "data", "--batch", "2", "-o", "r.json"]
      for i in 0..<3 { try Self.succeed(evaluate + ["--shard", "\(i)/3"], in: dir) }
      try Self.succeed(evaluate + ["--shard", "1/3", "--seed", "9", "-o", "seed9.json"], in: dir)
      try Self.succeed(evaluate + ["--shard", "1/3", "--batch", "1", "-o", "batch1.json"], in: dir)
      try Self.succeed(evaluate + ["--shard", "1/2", "-o", "two.json"], in: dir)
      try FileManager.default.copyItem(
        at: dir.appendingPathComponent("r.shard-2-of-3"),
        to: dir.appendingPathComponent("unfinished"))
      try FileManager.default.removeItem(at: dir.appendingPathComponent("unfinished/shard.json"))
      let cases: [([String], String)] = [
        (["r.shard-0-of-3", "r.shard-2-of-3"], "missing shard 1/3 of 3 (given: 0/3, 2/3)"),
        (
          ["r.shard-0-of-3", "r.shard-1-of-3", "r.shard-1-of-3", "r.shard-2-of-3"],
          "shard 1/3 is given twice: r.shard-1-of-3 and r.shard-1-of-3"
        ),
        (
          ["r.shard-0-of-3", "seed9.shard-1-of-3", "r.shard-2-of-3"],
          "the shards come from different runs: they disagree on model: shard 0/3 (r.shard-0-of-3) has"
        ),
        (
          ["r.shard-0-of-3", "batch1.shard-1-of-3", "r.shard-2-of-3"],
          "they disagree on options.batch: shard 0/3 (r.shard-0-of-3) has 2, shard 1/3 (batch1.shard-1-of-3) has 1"
        ),
        (["r.shard-0-of-3", "two.shard-1-of-2"], "the shards come from jobs of different sizes"),
        (["r.shard-0-of-3", "r.shard-1-of-3", "unfinished"], "unfinished: not a finished shard: it has no shard.json"),
        (["nowhere"], "nowhere: no such shard folder"),
      ]
      for (folders, message) in cases {
        let r = try Self.run(["merge"] + folders, in: dir)
        #expect(r.status == 1, "merge \(folders): status \(r.status)")
        #expect(r.errors.contains(message), "merge \(folders): \(r.errors)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("r.json").path))
      }
      let bad = try Self.run(evaluate + ["--shard", "3/3"], in: dir)
      #expect(bad.status == 1 && bad.errors.contains("shard 3/3 is out of range"), "\(bad.errors)")
      let disagree = try Self.run(
        evaluate + ["--shard", "0/3"], in: dir,
        environment: ["SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3"])
      #expect(
        disagree.status == 1 && disagree.errors.contains("--shard 0/3 disagrees with the environment"),
        "\(disagree.errors)")
      let noOutput = try Self.run(Array(evaluate.dropLast(2)) + ["--shard", "0/3"], in: dir)
      #expect(noOutput.status == 1 && noOutput.errors.contains("give -o"), "\(noOutput.errors)")
    }
  }
}
