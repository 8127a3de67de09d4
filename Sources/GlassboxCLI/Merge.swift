import ArgumentParser
import Foundation
import Glassbox
import GlassboxAnalysis
import GlassboxFormat

/// `--shard I/N|all` of the corpus commands (tap --data, evaluate, embed, features).
struct ShardOption: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "Work on shard I of N of the split (I from 0), or all of it. Default: the Slurm job array's task "
        + "(SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT) or mpirun's rank.",
      valueName: "I/N|all"))
  var shard: String?

  /// The shard and where it came from (`--shard`, or the environment's variables); nil for
  /// the whole split.
  func resolve() throws -> (Shard, String)? {
    try Shard.resolve(option: shard).map { ($0.shard, $0.source) }
  }
}

/// `glassbox merge DIR…`: the shards of a corpus job put back together into exactly what the
/// unsharded job writes and prints.
struct Merge: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Combine the shards of a tap --data, evaluate or embed job into what the unsharded job writes.",
    discussion: """
      Each DIR is a shard's folder (NAME.shard-I-of-N, written by a command run with --shard I/N or \
      in a Slurm job array). The shards must come from one run — the same model, data, split and \
      options — and be all there, each once; anything else is an error naming what differs, \
      before anything is written. The results are those of the unsharded run: the same \
      per-example numbers in the same order, the aggregates computed from them in that order.
      """)

  @Argument(help: ArgumentHelp("The shard folders.", valueName: "DIR"))
  var shards: [String] = []

  @Option(
    name: .shortAndLong,
    help: ArgumentHelp(
      "Where to write (default: the output the shards' command named).",
      valueName: "PATH"))
  var output: String?

  @Flag(help: "Replace an existing explanation folder.")
  var force = false

  func validate() throws {
    guard !shards.isEmpty else { throw ValidationError("give the shard folders to merge") }
  }

  func run() throws {
    let set = try ShardSet(folders: shards)
    let first = set.first
    func recorded(_ key: String) throws -> String {
      if let output { return output }
      guard let path = first.output(key)?.stringValue else { throw first.problem("no '\(key)' output recorded") }
      return path
    }
    let json = first.output("json")?.boolValue ?? false
    switch first.command {
    case "evaluate":
      let (c, notes) = try ShardMerge.classification(set)
      if let predictions = first.output("predictions")?.stringValue {
        try writeText(c.predictionsJSON.text + "\n", to: predictions)
      }
      try writeText(c.summaryJSON.text + "\n", to: try recorded("report"))
      for note in notes { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
      print(json ? c.summaryJSON.text : c.table)
    case "evaluate-tap":
      let sanity = first.run.first { $0.0 == "options" }?.1["sanity"]?.boolValue ?? true
      let report = try ShardMerge.explanationReport(set, sanity: sanity)
      try writeText(JSONValue.object(report).text + "\n", to: try recorded("report"))
      print(json ? JSONValue.object(report).text : ExplanationEvaluation.table(report))
    case "tap":
      let folder = try recorded("folder")
      let (written, failures) = try ShardMerge.explanationFolders(set, into: folder, replacing: force)
      for f in failures { FileHandle.standardError.write(Data("\(f)\n".utf8)) }
      print("explained \(written) of \(first.total) examples into \(folder)/")
      if !failures.isEmpty {
        throw GlassboxError(
          .input,
          "\(failures.count) of \(first.total) examples failed (each named above); "
            + "the others are in \(folder)/")
      }
    case "embed":
      let features = try ShardMerge.tapFeatures(set)
      guard let perplexity = first.output("perplexity")?.doubleValue,
        let method = first.output("method")?.stringValue.flatMap(TSNE.Method.init(rawValue:)),
        let source = first.output("source")?.stringValue, let title = first.output("title")?.stringValue,
        let tap = first.output("tap")?.stringValue
      else {
        throw first.problem("the embed outputs lack perplexity, method, source, title or tap")
      }
      let plot = try recorded("plot")
      guard plot.hasSuffix(".svg") else { throw GlassboxError(.input, "-o \(plot): the plot is an .svg file") }
      try Embed.plot(
        features, tap: tap, perplexity: perplexity, method: method, source: source, title: title,
        output: plot, json: json, start: Date())
    default:
      throw first.problem("a shard of '\(first.command)', which merge does not know")
    }
  }
}
