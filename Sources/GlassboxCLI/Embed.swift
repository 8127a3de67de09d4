import ArgumentParser
import Foundation
import Glassbox
import GlassboxAnalysis
import GlassboxFormat
import GlassboxIR
import GlassboxMedia
import GlassboxPasses
import GlassboxRuntime

/// `glassbox embed MODEL --data DIR -o plot.svg`: a t-SNE map of what the model's LSTM makes of
/// a data set, coloured by class.
struct Embed: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Draw a t-SNE map of a tap (the LSTM outputs by default) over a data set, coloured by class.",
    discussion: """
      Runs the model over every example of one split of DIR, reads the tap (`tap hidden =
      hidden(lstm)` in the study specs: [B, T, H]), averages it over time, embeds the vectors
      with t-SNE (perplexity 30, scikit-learn's schedule; exact up to 1000 examples, Barnes–Hut above) and writes an SVG scatter plot
      with a legend, the points as PLOT.json and PLOT.csv beside it, and prints the map's
      trustworthiness T(5) (1 = every neighbour on the map is a neighbour in the features).

      DIR is either a tensor folder, DIR/{train,val,test}/<class>/*.npy (one example per file,
      the input's shape without the batch axis), or a raw-media data set read through the
      input's recipe: ROOT/<language>/<clip>.wav for audio (the seeded 80/10/10 split), the
      HMDB-51 layout for video (split 1; train and test).
      """)

  @OptionGroup var options: SpecOptions

  @Option(help: ArgumentHelp("The data set: a tensor folder or a raw-media data set.", valueName: "DIR"))
  var data: String

  @Option(help: "Which split: train, val or test.")
  var split = "train"

  @Option(help: "The tap to embed (an activation, attention or hidden tap).")
  var tap = "hidden"

  @Option(
    name: .shortAndLong,
    help: ArgumentHelp("The SVG plot to write (PLOT.json and PLOT.csv go beside it).", valueName: "PLOT.svg"))
  var output: String

  @Flag(help: "Print the summary as JSON.")
  var json = false

  @Option(help: "t-SNE perplexity (lowered to (n − 1) / 3 for small sets).")
  var perplexity = 30.0

  @Option(help: "Embed at most this many examples (taken in turn from each class).")
  var limit = 20000

  @Option(help: ArgumentHelp("exact, barnes_hut, or automatic (exact up to 1000 examples).", valueName: "METHOD"))
  var method = "automatic"

  @Option(help: "Examples per forward pass.")
  var batch = 16

  @Option(help: ArgumentHelp("Feature cache folder for raw media.", valueName: "DIR"))
  var cache: String?

  @Option(help: "Seed of PyTorch-style initialisation when MODEL is a spec (untrained weights).")
  var seed: UInt64 = 0

  @Option(help: "Cores to use.")
  var threads = 2

  func validate() throws {
    guard output.hasSuffix(".svg") else { throw ValidationError("-o \(output): the plot is an .svg file") }
    guard batch >= 1, threads >= 1, limit >= 4 else {
      throw ValidationError("--batch and --threads must be at least 1, --limit at least 4")
    }
    guard TSNE.Method(rawValue: method) != nil else {
      throw ValidationError("--method \(method): use exact, barnes_hut or automatic")
    }
    guard ["train", "val", "validation", "test"].contains(split) else {
      throw ValidationError("--split \(split): use train, val or test")
    }
  }

  @OptionGroup var sharding: ShardOption

  func run() throws {
    let model = try loadModel(options, weights: Model.WeightOptions(seed: seed))
    let start = Date()
    let name = ((options.spec as NSString).lastPathComponent as NSString).deletingPathExtension
    let source = "glassbox embed \(options.spec) --data \(data) --split \(split) --tap \(tap)"
    let title = "\(name): \(tap) over \(split) (time-averaged)"
    let shard = try sharding.resolve()
    let folder = shard.map { $0.0.folder(for: output, isFile: true) }
    if let folder { try ShardRecord.prepare(folder: folder) }
    let features = try model.tapFeatures(
      tap, root: data, split: split, batch: batch, limit: limit, cache: cache,
      threads: threads, shard: shard?.0
    ) {
      ProgressReporter(label: shard.map { "embed \($0.0)" } ?? "embed", total: $0)
    }
    guard let (shard, shardSource) = shard, let folder else {
      try Self.plot(
        features, tap: tap, perplexity: perplexity, method: TSNE.Method(rawValue: method) ?? .automatic,
        source: source, title: title, output: output, json: json, start: start)
      return
    }
    // A shard: its feature vectors for `glassbox merge`, which embeds the whole split.
    let examples = features.listing
    let options: [(String, JSONValue)] = [
      ("tap", .string(tap)), ("batch", .int(batch)), ("limit", .int(limit)),
      ("threads", .int(threads)),
    ]
    let outputs: [(String, JSONValue)] = [
      ("plot", .string(output)), ("tap", .string(tap)),
      ("perplexity", .number(perplexity)), ("method", .string(method)),
      ("source", .string(source)), ("title", .string(title)), ("json", .bool(json)),
    ]
    let record = ShardRecord(
      command: "embed", shard: shard,
      run: try ShardMerge.run(model: model, listing: examples, split: split, options: options),
      total: examples.files.count, block: batch, outputs: outputs,
      results: try ShardMerge.results(
        of: features, positions: features.positions,
        unreadable: features.unreadable, notes: examples.skipped,
        folder: folder),
      folder: folder)
    try record.finish()
    print(
      "embed: shard \(shard) (\(shardSource)): \(features.rows.count) of \(record.total) examples into \(folder)/; "
        + "glassbox merge of the \(shard.count) shard folders draws \(output)")
  }

  /// Embeds `features` with t-SNE and writes the plot, `PLOT.json` and `PLOT.csv`; prints the
  /// summary (as JSON when `json`).
  static func plot(
    _ features: TapFeatures, tap: String, perplexity: Double, method: TSNE.Method, source: String,
    title: String, output: String, json: Bool, start: Date
  ) throws {
    var tsne = TSNE()
    tsne.perplexity = perplexity
    tsne.method = method
    let map = try EmbeddingMap.make(
      features: try Points(rows: features.rows), labels: features.labels, files: features.files,
      classes: features.classes, source: source, tsne: tsne)
    let stem = (output as NSString).deletingPathExtension
    try writeAtomically(Data(try map.svg(title: title).utf8), to: output)
    try writeAtomically(try map.json(), to: stem + ".json")
    try writeAtomically(Data(map.csv.utf8), to: stem + ".csv")
    let seconds = Date().timeIntervalSince(start)
    for s in features.skipped { FileHandle.standardError.write(Data("glassbox embed: \(s)\n".utf8)) }
    if json {
      var summary: [String: Any] = [
        "plot": output, "points": map.points.count, "classes": map.classes,
        "perplexity": map.perplexity, "kl_divergence": map.klDivergence,
        "tsne_seconds": map.seconds, "seconds": seconds, "skipped": features.skipped.count,
      ]
      summary["trustworthiness"] = map.trustworthiness ?? NSNull()
      let bytes = try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys])
      print(String(decoding: bytes, as: UTF8.self))
    } else {
      let trust = map.trustworthiness.map { String(format: "%.4f", $0) } ?? "n/a (10 examples or fewer)"
      print(
        "embed: \(map.points.count) examples, \(map.classes.count) classes, \(map.featureDimensions)-D \(tap) features")
      print(
        "trustworthiness T(5) = \(trust)  (KL \(String(format: "%.3f", map.klDivergence)), "
          + "\(map.iterations) iterations, t-SNE \(String(format: "%.1f", map.seconds)) s, "
          + "total \(String(format: "%.1f", seconds)) s)")
      print("wrote \(output), \(stem).json, \(stem).csv")
    }
  }
}
