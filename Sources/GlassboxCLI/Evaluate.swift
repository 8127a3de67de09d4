import ArgumentParser
import Foundation
import Glassbox
import GlassboxExplain
import GlassboxFormat
import GlassboxIR
import GlassboxMedia
import GlassboxPasses
import GlassboxRuntime

/// `glassbox evaluate MODEL TAP --data DIR`: measures an explanation instead of trusting it —
/// deletion and insertion curves, attention faithfulness, the model-randomisation sanity check,
/// localisation on boxes and attention mass in speech. Without TAP it measures the classifier:
/// accuracy, mean cross-entropy and the confusion matrix of the split (and `--predictions`
/// writes every example's prediction).
struct Evaluate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Measure a classifier (accuracy, cross-entropy, confusion) or a tap's explanations on a data set.")

  @OptionGroup var options: SpecOptions

  @Argument(help: "The tap to evaluate; without one, the classifier's accuracy, cross-entropy and confusion matrix.")
  var tap: String?

  @Option(
    help: ArgumentHelp(
      "A data set folder (HMDB-51 layout for video, a folder per language for audio).", valueName: "DIR"))
  var data: String

  @Option(help: ArgumentHelp("The split to evaluate on.", valueName: "train|validation|test"))
  var split: String = "test"

  @Option(
    help: ArgumentHelp(
      "Compare explanation methods on the same examples, one line each: taps by name, "
        + "KIND:VALUE to add, or a kind alone (at the layer the model's Grad-CAM explains).",
      valueName: "M1,M2,…"))
  var methods: String?

  @Option(help: "At most this many examples, taken from each class in turn.")
  var limit: Int?

  @Option(help: "Points of the deletion and insertion curves (besides the start).")
  var steps = 16

  @Option(help: "Random permutations of the attention weights per example.")
  var permutations = 10

  @Flag(help: "Skip the sanity check (one recompilation per re-initialised block).")
  var noSanity = false

  @Option(help: ArgumentHelp("Weights by PyTorch parameter name (a spec only).", valueName: "W.safetensors"))
  var weights: String?

  @Option(
    help: "Seed of PyTorch-style initialisation (a spec without --weights), of permutations and re-initialisation.")
  var seed: UInt64 = 0

  @Option(help: "Cores to use.")
  var threads = 2

  @Flag(help: "Print JSON instead of a table.")
  var json = false

  @Option(help: "Examples per forward when measuring the classifier.")
  var batch = 8

  @Option(help: ArgumentHelp("Feature cache for raw media (classifier measures).", valueName: "DIR"))
  var cache: String?

  @Option(help: ArgumentHelp("Write each example's prediction as JSON (classifier measures).", valueName: "FILE.json"))
  var predictions: String?

  @Option(
    name: .shortAndLong,
    help: ArgumentHelp(
      "Also write the report as JSON; a shard writes its part beside it.",
      valueName: "FILE.json"))
  var output: String?

  @OptionGroup var sharding: ShardOption

  func run() throws {
    if let (shard, source) = try sharding.resolve() {
      try runShard(shard, source: source)
      return
    }
    if let methods {
      guard tap == nil else { throw ValidationError("give either a tap or --methods, not both") }
      guard sharding.shard == nil else { throw ValidationError("--methods does not take --shard") }
      let results = try compare(methods.split(separator: ",").map(String.init))
      let report = ExplanationEvaluation.comparisonJSON(results)
      if let output { try writeText(report.text + "\n", to: output) }
      print(json ? report.text : ExplanationEvaluation.comparisonTable(results))
      return
    }
    if tap == nil {
      let c = try classify()
      if let predictions { try writeText(c.predictionsJSON.text + "\n", to: predictions) }
      if let output { try writeText(c.summaryJSON.text + "\n", to: output) }
      print(json ? c.summaryJSON.text : c.table)
      return
    }
    let report = try measure()
    if let output { try writeText(JSONValue.object(report).text + "\n", to: output) }
    print(json ? JSONValue.object(report).text : ExplanationEvaluation.table(report))
  }

  /// One shard of the split: its examples' results into the shard's folder beside `-o`, for
  /// `glassbox merge` to turn into the unsharded report.
  func runShard(_ shard: Shard, source: String) throws {
    guard let output else {
      throw GlassboxError(
        .input,
        "a shard of evaluate (\(source)) writes its part into a folder beside -o FILE.json, and "
          + "glassbox merge writes FILE.json from the shards: give -o")
    }
    guard batch >= 1, threads >= 1, steps >= 1, permutations >= 0 else {
      throw GlassboxError(.input, "--batch, --steps and --threads must be at least 1")
    }
    let folder = shard.folder(for: output, isFile: true)
    let model = try model()
    let outputs: [(String, JSONValue)] = [
      ("report", .string(output)), ("json", .bool(json)),
      ("predictions", predictions.map { .string($0) } ?? .null),
    ]
    var record: ShardRecord
    if let tap {
      let evaluation = ExplanationEvaluation(
        steps: steps, permutations: permutations, sanity: !noSanity, seed: seed,
        limit: limit ?? Int.max, threads: threads)
      try ShardRecord.prepare(folder: folder)
      let part = try evaluation.measureExamples(model, tap: tap, data: data, split: split, shard: shard) {
        ProgressReporter(label: "evaluate \(shard)", total: $0)
      }
      let options: [(String, JSONValue)] = [
        ("tap", .string(tap)), ("steps", .int(steps)), ("permutations", .int(permutations)),
        ("sanity", .bool(!noSanity)),
        ("seed", .string("\(seed)")), ("limit", limit.map { .int($0) } ?? .null), ("threads", .int(threads)),
      ]
      record = ShardRecord(
        command: "evaluate-tap", shard: shard,
        run: try ShardMerge.run(model: model, listing: part.listing, split: split, options: options),
        total: part.listing.files.count, block: 1, outputs: outputs,
        results: ShardMerge.results(of: part), folder: folder)
    } else {
      let examples = try DatasetSplit(
        root: data, split: split, model: model, cache: cache, limit: limit ?? Int.max,
        shard: shard, block: batch)
      try ShardRecord.prepare(folder: folder)
      let session = try model.session(SessionOptions(threads: threads, taps: []))
      let c = try session.classify(
        examples, splitName: split, batch: batch,
        progress: ProgressReporter(label: "evaluate \(shard)", total: examples.count),
        allowingNone: true)
      let options: [(String, JSONValue)] = [
        ("batch", .int(batch)), ("limit", limit.map { .int($0) } ?? .null),
        ("threads", .int(threads)),
      ]
      record = ShardRecord(
        command: "evaluate", shard: shard,
        run: try ShardMerge.run(
          model: model, listing: examples.listing, split: split,
          options: options),
        total: examples.listing.files.count, block: batch, outputs: outputs,
        results: ShardMerge.results(
          of: c, unreadable: examples.unreadable,
          notes: examples.listing.skipped),
        folder: folder)
    }
    try record.finish()
    print(
      "evaluate: shard \(shard) (\(source)): \(record.positions.count) of \(record.total) examples into "
        + "\(folder)/; "
        + "glassbox merge of the \(shard.count) shard folders writes \(output)")
  }

  /// The model, with `--weights` or `--seed` for a spec.
  func model() throws -> Model {
    try loadModel(options, weights: weightOptions(file: weights, renames: [], seed: seed))
  }

  /// The classifier's predictions over the split.
  func classify() throws -> Classification {
    guard batch >= 1, threads >= 1 else { throw GlassboxError(.input, "--batch and --threads must be at least 1") }
    let model = try model()
    let examples = try DatasetSplit(root: data, split: split, model: model, cache: cache, limit: limit ?? Int.max)
    let session = try model.session(SessionOptions(threads: threads, taps: []))
    let result = try session.classify(
      examples, splitName: split, batch: batch,
      progress: ProgressReporter(label: "evaluate", total: examples.count))
    for note in examples.skipped { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
    return result
  }

  /// Each method's measures and cost on the same examples.
  func compare(_ methods: [String]) throws -> [ExplanationEvaluation.MethodResult] {
    guard steps >= 1, permutations >= 0, threads >= 1 else {
      throw GlassboxError(.input, "--steps and --threads must be at least 1")
    }
    let evaluation = ExplanationEvaluation(
      steps: steps, permutations: permutations, sanity: !noSanity, seed: seed,
      limit: limit ?? Int.max, threads: threads)
    return try evaluation.compare(try model(), methods: methods, data: data, split: split) {
      ProgressReporter(label: "evaluate \($0)", total: $1)
    }
  }

  /// Every measure that applies to the tap and data, as the report's key–value pairs.
  func measure() throws -> [(String, JSONValue)] {
    guard let tap else { throw GlassboxError(.input, "give the tap to evaluate") }
    guard steps >= 1, permutations >= 0, threads >= 1 else {
      throw GlassboxError(.input, "--steps and --threads must be at least 1")
    }
    let evaluation = ExplanationEvaluation(
      steps: steps, permutations: permutations, sanity: !noSanity, seed: seed,
      limit: limit ?? Int.max, threads: threads)
    let (model, name) = try model().withTap(tap)
    return try evaluation.measure(model, tap: name, data: data, split: split) {
      ProgressReporter(label: "evaluate", total: $0)
    }
  }
}
