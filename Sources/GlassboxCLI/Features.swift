import ArgumentParser
import Foundation
import Glassbox
import GlassboxFormat
import GlassboxIR
import GlassboxMedia

/// `glassbox features SPEC|MODEL INPUT -o X.npy`: the tensor a graph input's recipe makes from a
/// raw media file — exactly what the model sees — so preprocessing can be inspected and compared
/// (e.g. with librosa or torchvision). With a data-set folder and `--cache`, extracts every clip
/// into the feature cache instead, with a progress bar.
struct Features: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write the tensor a model input's recipe makes from a raw audio, video or image file (.npy).",
    discussion: """
      The recipe comes from the spec's or model's input recipes (`recipe mfcc = audio(...)`).
      The .npy holds the input as the graph receives it for one file: a batch axis of 1, then
      the recipe's example shape — f32[1, frames, n_mfcc] for audio, f32[1, frames, 3, size, size]
      for video, f32[1, 3, size, size] for an image.

      With a folder as INPUT and --cache DIR, every clip of the data set (HMDB-51 layout for a
      video recipe, ROOT/<language>/<clip> for audio) is extracted into the cache, keyed by
      the file's SHA-256 and the recipe, so training reads features instead of decoding.
      """)

  @OptionGroup var options: SpecOptions

  @Argument(help: "A media file, or a data-set folder (with --cache).")
  var input: String

  @Option(name: .shortAndLong, help: ArgumentHelp("The .npy file to write.", valueName: "FILE"))
  var output: String?

  @Option(
    name: .customLong("input"),
    help: ArgumentHelp("The graph input whose recipe to use, when there are several.", valueName: "NAME"))
  var inputName: String?

  @Option(help: ArgumentHelp("Feature cache folder; with a data-set folder as INPUT, fills it.", valueName: "DIR"))
  var cache: String?

  @Option(help: "Decoding threads for a data set.")
  var workers: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

  @OptionGroup var sharding: ShardOption

  func validate() throws {
    if let output, !output.hasSuffix(".npy") {
      throw ValidationError("cannot write '\(output)': the output must be a .npy file")
    }
    guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
  }

  func run() throws {
    let loaded = try loadGraph(options)
    guard let graph = loaded.result.graph else {
      printDiagnostics(loaded.result.diagnostics, source: loaded.source)
      throw ExitCode(1)
    }
    let recipe = try Features.recipe(of: graph, named: inputName, file: options.spec)
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory), isDirectory.boolValue {
      guard let cache else {
        throw ValidationError("'\(input)' is a folder: give --cache DIR to extract its clips, or name one media file")
      }
      try fillCache(recipe: recipe, root: input, cacheDirectory: cache, shard: try sharding.resolve())
      return
    }
    if sharding.shard != nil { throw ValidationError("--shard applies to a data-set folder (with --cache)") }
    guard let output else { throw ValidationError("give -o FILE.npy for the features of '\(input)'") }
    let tensor = try Features.tensor(for: input, recipe: recipe, cacheDirectory: cache)
    try NPY.write(tensor, to: output)
    print("wrote \(output): f32\(tensor.shape) for input '\(recipe.input)' (\(recipe.kind.rawValue) recipe)")
  }

  /// The recipe of the graph input `name`, or of its only recipe.
  static func recipe(of graph: Graph, named name: String?, file: String) throws -> InputRecipe {
    if let name {
      guard let r = graph.recipes.first(where: { $0.input == name }) else {
        let known = graph.recipes.map(\.input)
        throw ValidationError(
          "\(file): input '\(name)' has no recipe; inputs with recipes: \(known.isEmpty ? "none" : known.joined(separator: ", "))"
        )
      }
      return r
    }
    switch graph.recipes.count {
    case 0:
      throw ValidationError(
        "\(file): no input has a recipe (add `recipe NAME = audio(...)`, `video(...)` or `image(...)` to the spec)")
    case 1: return graph.recipes[0]
    default:
      throw ValidationError(
        "\(file): several inputs have recipes (\(graph.recipes.map(\.input).joined(separator: ", "))); choose one with --input NAME"
      )
    }
  }

  /// The input tensor for one file: the recipe's example with a batch axis of 1.
  static func tensor(for file: String, recipe: InputRecipe, cacheDirectory: String?) throws -> Tensor {
    let extractor = try FeatureExtractor(recipe)
    var tensor: Tensor
    if let cacheDirectory {
      tensor = try FeatureCache(directory: cacheDirectory).features(file, extractor: extractor).tensor
    } else {
      tensor = try extractor.extract(file)
    }
    tensor.shape = [1] + tensor.shape
    return tensor
  }

  /// Extracts every clip of a data set (or of one shard of its clips) into the cache, drawing a
  /// progress bar on standard error. Shards can share one cache folder: each entry is a file
  /// of its own, written atomically.
  func fillCache(recipe: InputRecipe, root: String, cacheDirectory: String, shard: (Shard, String)?) throws {
    let cache = try FeatureCache(directory: cacheDirectory)
    var set: DataSet
    switch recipe.kind {
    case .audio:
      let scan = try SpokenLanguage.scan(root: root)
      let files = zip(scan.clips.indices, scan.clips).flatMap { label, clips in
        clips.map { LabeledFile(path: (root as NSString).appendingPathComponent($0), label: label) }
      }
      set = DataSet(root: root, classes: scan.classes, examples: files, skipped: scan.skipped)
    case .video, .image:
      // Every clip any split names, once.
      var seen = Set<String>()
      set = DataSet(root: root, classes: [], examples: [])
      for subset in HMDB51.Subset.allCases {
        let part = try HMDB51.load(root: root, split: 1, subset: subset)
        set.classes = part.classes
        set.skipped += part.skipped
        for e in part.examples where seen.insert(e.path).inserted { set.examples.append(e) }
      }
    }
    let total = set.examples.count
    if let (shard, source) = shard {
      set.examples = SplitListing(set).positions(for: shard).map { set.examples[$0] }
      print("features: shard \(shard) (\(source)): \(set.examples.count) of \(total) clips")
    }
    for s in set.skipped { FileHandle.standardError.write(Data("glassbox features: \(s)\n".utf8)) }
    let bar = ProgressReporter(label: shard.map { "features \($0.0)" } ?? "features", total: set.examples.count)
    let start = Date()
    let stream = try FeatureStream(
      dataSet: set, recipe: recipe, cache: cache, workers: workers,
      progress: { bar.update(done: $0.done, note: "\($0.cacheHits) cached, \($0.failures) failed") },
      log: { bar.log("features: skipped \($0)") })
    var count = 0
    while stream.next() != nil { count += 1 }
    bar.finish()
    let seconds = Date().timeIntervalSince(start)
    print(
      "features: \(count) of \(set.examples.count) clips in \(cacheDirectory) (\(stream.cacheHits) already cached, \(stream.skipped.count) skipped) in \(String(format: "%.1f", seconds)) s"
    )
  }
}
