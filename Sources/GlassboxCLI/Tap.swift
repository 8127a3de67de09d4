import ArgumentParser
import Foundation
import Glassbox
import GlassboxAnalysis
import GlassboxFormat
import GlassboxIR
import GlassboxMedia
import GlassboxPasses
import GlassboxRuntime

/// `glassbox tap MODEL|SPEC TAP INPUT… -o DIR`: compile the model with one tap lowered into
/// outputs, run it on each input, and write the raw, normalised and relevance tensors, a
/// summary and pictures.
struct TapCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tap",
    abstract: "Explain inputs with one of a model's taps: tensors (.npy), summary.json and pictures.")

  @OptionGroup var options: SpecOptions

  @Argument(
    help: ArgumentHelp(
      "The tap to compute (see `glassbox info` or `check`), or one to add: "
        + "KIND:VALUE[:option=value…] (gradcam:auto, gradcam:layer4; an ONNX model's values "
        + "by their ONNX names too)."))
  var tap: String

  @Argument(help: "Inputs: raw media files (through the input's recipe) or .npy tensors.")
  var inputs: [String] = []

  @Option(
    name: .customLong("class"),
    help: ArgumentHelp("The class to explain, or auto for the predicted one.", valueName: "N|auto"))
  var classChoice: String = "auto"

  @Option(
    help: ArgumentHelp("Normalisation scope of maps: frame or clip (default: the tap's).", valueName: "frame|clip"))
  var scope: String?

  @Option(help: ArgumentHelp("Weights by PyTorch parameter name (a spec only).", valueName: "W.safetensors"))
  var weights: String?

  @Option(
    name: .customLong("rename"),
    help: ArgumentHelp("Prefix rule for --weights names, e.g. features.=cnn.", valueName: "OLD=NEW"))
  var renames: [NamedPath] = []

  @Option(help: "Seed of PyTorch-style initialisation when a spec has no --weights.")
  var seed: UInt64 = 0

  @Option(
    help: ArgumentHelp(
      "A data set folder (HMDB-51 layout for video, a folder per language for audio).", valueName: "DIR"))
  var data: String?

  @Option(help: ArgumentHelp("The data set split to explain.", valueName: "train|validation|test"))
  var split: String = "test"

  @Option(help: "At most this many examples of --data, taken from each class in turn.")
  var limit: Int?

  @Option(help: "Cores to use.")
  var threads = 2

  @Flag(help: "Write tensors and summary only, no pictures.")
  var noPictures = false

  @Option(name: .shortAndLong, help: ArgumentHelp("Output folder.", valueName: "DIR"))
  var output: String

  @OptionGroup var sharding: ShardOption

  func run() throws {
    guard threads >= 1 else { throw GlassboxError(.input, "--threads must be at least 1") }
    if let scope, scope != "frame", scope != "clip" {
      throw GlassboxError(.input, "--scope must be frame or clip, found '\(scope)'")
    }
    let fixedClass: Int?
    if classChoice == "auto" {
      fixedClass = nil
    } else if let k = Int(classChoice), k >= 0 {
      fixedClass = k
    } else {
      throw GlassboxError(.input, "--class must be a class index ≥ 0 or auto, found '\(classChoice)'")
    }
    if weights != nil, Model.isModelFile(options.spec) {
      throw GlassboxError(.input, "--weights applies to a spec; a .model carries its weights")
    }
    let (model, tap) = try loadModel(options, weights: weightOptions(file: weights, renames: renames, seed: seed))
      .withTap(self.tap)
    let info = try model.tap(named: tap)
    guard model.inputs.count == 1, let input = model.inputs.first else {
      throw GlassboxError(
        .input, "\(options.spec): tap takes models with one input; \(model.name) has \(model.inputs.count)")
    }
    let recipe = model.recipes.first { $0.input == input.name }

    // What to explain: files named on the command line, or a data set split (or a shard of it).
    var examples: [(path: String, label: Int?, id: String, position: Int)] = []
    var classNames = model.labels
    if sharding.shard != nil, data == nil {
      throw GlassboxError(.input, "--shard applies to --data (a data set split)")
    }
    let shard = data == nil ? nil : try sharding.resolve()
    var listing: SplitListing?
    if let data {
      guard inputs.isEmpty else { throw GlassboxError(.input, "give input files or --data, not both") }
      guard let recipe else { throw GlassboxError(.input, "--data needs an input recipe; \(input.name) has none") }
      let set = try Datasets.media(root: data, kind: recipe.kind, split: split, seed: model.splitSeed)
      if classNames.isEmpty { classNames = set.classes }
      let whole = SplitListing(set, limit: limit ?? Int.max)
      listing = whole
      guard !whole.files.isEmpty else { throw GlassboxError(.input, "\(data): no \(split) examples") }
      for p in whole.positions(for: shard?.0) {
        let e = whole.files[p]
        let stem = ((e.path as NSString).lastPathComponent as NSString).deletingPathExtension
        examples.append((e.path, e.label, set.classes[e.label] + "/" + stem, p))
      }
    } else {
      guard !inputs.isEmpty else { throw GlassboxError(.input, "give at least one input file, or --data DIR") }
      for path in inputs {
        guard FileManager.default.isReadableFile(atPath: path) else {
          throw GlassboxError(.input, "\(path): no such file or not readable")
        }
        if !path.hasSuffix(".npy"), recipe == nil {
          throw GlassboxError(.input, "\(path): input '\(input.name)' has no recipe for media files; give a .npy")
        }
        let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        examples.append((path, nil, examples.count == 0 && inputs.count == 1 ? "" : stem, examples.count))
      }
    }
    // A shard writes its examples' folders, and its record, into its own folder.
    let folder = shard.map { $0.0.folder(for: output, isFile: false) } ?? output
    var record: ShardRecord?
    if let (shard, _) = shard, let listing {
      let options: [(String, JSONValue)] = [
        ("tap", .string(tap)), ("class", .string(classChoice)), ("scope", scope.map { .string($0) } ?? .null),
        ("pictures", .bool(!noPictures)), ("limit", limit.map { .int($0) } ?? .null), ("threads", .int(threads)),
      ]
      record = ShardRecord(
        command: "tap", shard: shard,
        run: try ShardMerge.run(model: model, listing: listing, split: split, options: options),
        total: listing.files.count, block: 1, outputs: [("folder", .string(output))], folder: folder)
      try ShardRecord.prepare(folder: folder)
    }
    if var record, examples.isEmpty {
      record.results = ShardMerge.results(written: [], failures: [])
      try record.finish()
      print("tap: shard \(record.shard) has no examples (\(record.total) in the split); wrote \(folder)/")
      return
    }
    func tensorOf(_ path: String) throws -> Tensor {
      guard path.hasSuffix(".npy") else { return try model.tensor(fromMedia: path) }
      let t = try NPY.read(path)
      return t.shape.count == input.shape.count - 1 ? Tensor(shape: [1] + t.shape, storage: t.storage) : t
    }

    // The class and the tap are checked on the first example before anything is written.
    let session = try model.session(SessionOptions(threads: threads, taps: []))
    let target: Target = fixedClass.map { .fixed($0) } ?? .predicted
    if let k = fixedClass, case .fixed(let classes)? = model.outputs.first?.shape.last, k >= classes {
      throw GlassboxError(
        .input, "--class \(k) is out of range: \(model.name) has \(classes) classes (0…\(classes - 1))")
    }
    if fixedClass != nil, !info.needsClass {
      throw GlassboxError(.input, "--class: tap \(tap) is a \(info.kind.rawValue) tap; it explains no class")
    }
    let first = try tensorOf(examples[0].path)
    var firstExplanation: Explanation? = try session.explain(tap, [input.name: first], target: target, scope: scope)

    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    var failures = 0
    var written: [(position: Int, folder: String)] = [], failed: [(position: Int, message: String)] = []
    let label = shard.map { "tap \($0.0)" } ?? "tap"
    let progress = data == nil ? nil : ProgressReporter(label: label, total: examples.count)
    for (n, example) in examples.enumerated() {
      defer { progress?.update(done: n + 1, note: example.id) }
      do {
        let x = n == 0 ? first : try tensorOf(example.path)
        guard x.shape == first.shape else {
          throw GlassboxError(.input, "\(example.path): shape \(x.shape) differs from the first input's \(first.shape)")
        }
        let explanation = try firstExplanation ?? session.explain(tap, [input.name: x], target: target, scope: scope)
        firstExplanation = nil
        let dir = example.id.isEmpty ? folder : (folder as NSString).appendingPathComponent(example.id)
        try ExplanationFiles.write(
          explanation, input: x, model: model, mediaPath: example.path, label: example.label,
          classNames: classNames, pictures: !noPictures, to: dir)
        written.append((example.position, example.id))
        if data == nil { print("wrote \(dir)/ (\(explanation.maps.count) tensors)") }
      } catch {
        guard data != nil else { throw error }
        failures += 1
        failed.append((example.position, "\(example.path): \(error)"))
        progress?.log("\(example.path): \(error)")
      }
    }
    if var record {
      progress?.finish()
      record.results = ShardMerge.results(written: written, failures: failed)
      try record.finish()
      print(
        "tap: shard \(record.shard) (\(shard?.1 ?? "")): explained \(examples.count - failures) of its "
          + "\(examples.count) examples (\(record.total) in the split) into \(folder)/; glassbox merge of the "
          + "\(record.shard.count) shard folders writes \(output)/")
      if failures > 0 {
        throw GlassboxError(.input, "\(failures) of \(examples.count) examples failed (each named above)")
      }
    } else if data != nil {
      progress?.finish()
      print("explained \(examples.count - failures) of \(examples.count) examples into \(output)/")
      // A partial failure is a failure: the status says so, the message counts them.
      if failures > 0 {
        throw GlassboxError(
          .input,
          "\(failures) of \(examples.count) examples failed (each named above); "
            + "the others are in \(output)/")
      }
    }
  }
}

/// Writes text through a temporary file renamed into place.
func writeText(_ text: String, to path: String) throws {
  try writeAtomically(Data(text.utf8), to: path)
}
