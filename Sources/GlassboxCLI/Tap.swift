import ArgumentParser
import Foundation
import Glassbox
import GlassboxAnalysis
import GlassboxFormat
import GlassboxIR
import GlassboxMedia
import GlassboxPasses
import GlassboxRuntime

/// `glassbox tap MODEL|SPEC TAP[,TAP…] INPUT… -o DIR`: compile the model with its taps lowered
/// into outputs, run it once on each input (every tap in the same run), and write the raw,
/// normalised and relevance tensors, a summary and pictures per tap.
struct TapCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tap",
    abstract: "Explain inputs with one or more of a model's taps: tensors (.npy), summary.json and pictures.",
    discussion: """
      Several taps, comma-separated (gradcam,layercam:cnn.layer4,saliency), are computed in one \
      run per input: one forward pass and each tap's backward pass. A comma starts the next tap \
      where the text after it names a tap of the model, a tap kind, or KIND:…; other commas stay \
      in their tap (cam:layer4,fc.weight, occlusion:image:stride=8,8). One tap writes its files \
      into DIR (one input) or DIR/STEM/ (several; DIR/CLASS/CLIP/ for --data); several taps \
      write the same layout for each tap under DIR/TAP/, each with its summary.json.

      A model with several inputs takes NAME=FILE for each of its inputs (.npy, or a media file \
      through that input's recipe); each group that names every input once is one example \
      (image=a.npy vector=a_vec.npy image=b.npy vector=b_vec.npy: two examples).
      """)

  @OptionGroup var options: SpecOptions

  @Argument(
    help: ArgumentHelp(
      "The tap to compute (see `glassbox info` or `check`), or one to add: "
        + "KIND:VALUE[:option=value…] (gradcam:auto, gradcam:layer4; an ONNX model's values "
        + "by their ONNX names too); several comma-separated, computed in one run.",
      valueName: "tap[,tap…]"))
  var tap: String

  @Argument(
    help: ArgumentHelp(
      "Inputs: raw media files (through the input's recipe) or .npy tensors; NAME=FILE for each "
        + "input of a model with several.", valueName: "input"))
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
    let loaded = try loadModel(options, weights: weightOptions(file: weights, renames: renames, seed: seed))
    let (model, taps) = try loaded.withTaps(loaded.tapTexts(self.tap))
    let infos = try taps.map { (name: String) throws(GlassboxError) in try model.tap(named: name) }
    guard let input = model.inputs.first else { throw GlassboxError(.input, "\(options.spec): the model has no input") }
    let recipe = model.recipes.first { $0.input == input.name }

    // What to explain: files named on the command line, or a data set split (or a shard of it).
    var examples: [(files: [(input: String, path: String)], label: Int?, id: String, position: Int)] = []
    var classNames = model.labels
    if sharding.shard != nil, data == nil {
      throw GlassboxError(.input, "--shard applies to --data (a data set split)")
    }
    let shard = data == nil ? nil : try sharding.resolve()
    var listing: SplitListing?
    if let data {
      guard inputs.isEmpty else { throw GlassboxError(.input, "give input files or --data, not both") }
      guard model.inputs.count == 1 else {
        throw GlassboxError(
          .input,
          "--data takes models with one input; \(model.name) has \(model.inputs.count) "
            + "(\(model.inputs.map(\.name).joined(separator: ", "))): give NAME=FILE for each")
      }
      guard let recipe else { throw GlassboxError(.input, "--data needs an input recipe; \(input.name) has none") }
      let set = try Datasets.media(root: data, kind: recipe.kind, split: split, seed: model.splitSeed)
      if classNames.isEmpty { classNames = set.classes }
      let whole = SplitListing(set, limit: limit ?? Int.max)
      listing = whole
      guard !whole.files.isEmpty else { throw GlassboxError(.input, "\(data): no \(split) examples") }
      for p in whole.positions(for: shard?.0) {
        let e = whole.files[p]
        let stem = ((e.path as NSString).lastPathComponent as NSString).deletingPathExtension
        examples.append(([(input.name, e.path)], e.label, set.classes[e.label] + "/" + stem, p))
      }
    } else {
      guard !inputs.isEmpty else { throw GlassboxError(.input, "give at least one input file, or --data DIR") }
      let groups = try Self.exampleFiles(inputs, model: model)
      for files in groups {
        for (name, path) in files {
          guard FileManager.default.isReadableFile(atPath: path) else {
            throw GlassboxError(.input, "\(path): no such file or not readable")
          }
          if !path.hasSuffix(".npy"), !model.recipes.contains(where: { $0.input == name }) {
            throw GlassboxError(.input, "\(path): input '\(name)' has no recipe for media files; give a .npy")
          }
        }
        let stem = ((files[0].path as NSString).lastPathComponent as NSString).deletingPathExtension
        if groups.count > 1, let other = examples.first(where: { $0.id == stem }) {
          throw GlassboxError(
            .input,
            "\(files[0].path) and \(other.files[0].path) would both write \(output)/\(stem)/; "
              + "give the examples' files different names")
        }
        examples.append((files, nil, groups.count == 1 ? "" : stem, examples.count))
      }
    }
    // A shard writes its examples' folders, and its record, into its own folder.
    let folder = shard.map { $0.0.folder(for: output, isFile: false) } ?? output
    var record: ShardRecord?
    if let (shard, _) = shard, let listing {
      let options: [(String, JSONValue)] = [
        ("tap", .string(taps.joined(separator: ","))), ("class", .string(classChoice)),
        ("scope", scope.map { .string($0) } ?? .null),
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
    func feedsOf(_ files: [(input: String, path: String)]) throws -> [String: Tensor] {
      var feeds: [String: Tensor] = [:]
      for (name, path) in files { feeds[name] = try model.tensor(fromFile: path, input: name) }
      return feeds
    }

    // The class and the taps are checked on the first example before anything is written.
    let session = try model.session(SessionOptions(threads: threads, taps: []))
    let target: Target = fixedClass.map { .fixed($0) } ?? .predicted
    if let k = fixedClass, case .fixed(let classes)? = model.outputs.first?.shape.last, k >= classes {
      throw GlassboxError(
        .input, "--class \(k) is out of range: \(model.name) has \(classes) classes (0…\(classes - 1))")
    }
    if fixedClass != nil, !infos.contains(where: \.needsClass) {
      throw GlassboxError(
        .input,
        infos.count == 1
          ? "--class: tap \(taps[0]) is a \(infos[0].kind.rawValue) tap; it explains no class"
          : "--class: none of the taps \(taps.joined(separator: ", ")) explains a class")
    }
    func explain(_ files: [(input: String, path: String)], _ feeds: [String: Tensor]) throws -> [Explanation] {
      do {
        return try session.explain(taps: taps, feeds, target: target, scope: scope)
      } catch {
        throw error.namingFiles(files)
      }
    }
    let first = try feedsOf(examples[0].files)
    var firstExplanations: [Explanation]? = try explain(examples[0].files, first)

    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    var failures = 0
    var written: [(position: Int, folders: [String])] = [], failed: [(position: Int, message: String)] = []
    let label = shard.map { "tap \($0.0)" } ?? "tap"
    let progress = data == nil ? nil : ProgressReporter(label: label, total: examples.count)
    for (n, example) in examples.enumerated() {
      let exampleName =
        example.files.count == 1
        ? example.files[0].path : example.files.map { "\($0.input)=\($0.path)" }.joined(separator: " ")
      defer { progress?.update(done: n + 1, note: example.id) }
      do {
        let feeds = n == 0 ? first : try feedsOf(example.files)
        for (name, path) in example.files {
          guard let x = feeds[name], let shape = first[name]?.shape, x.shape == shape else {
            throw GlassboxError(
              .input,
              "\(path): shape \(feeds[name]?.shape ?? []) differs from the first input's \(first[name]?.shape ?? [])")
          }
        }
        let explanations = try firstExplanations ?? explain(example.files, feeds)
        firstExplanations = nil
        for (tap, explanation) in zip(taps, explanations) {
          let dir = ExplanationFiles.directory(root: folder, tap: tap, of: taps, example: example.id)
          try ExplanationFiles.write(
            explanation, input: feeds[input.name] ?? Tensor(shape: [0], f32: []), model: model,
            mediaPath: example.files[0].path, inputFiles: example.files, label: example.label,
            classNames: classNames, pictures: !noPictures, to: dir)
          if data == nil {
            print("wrote \(dir)/ (\(explanation.maps.count) tensor\(explanation.maps.count == 1 ? "" : "s"))")
          }
        }
        written.append(
          (example.position, taps.map { ExplanationFiles.directory(root: "", tap: $0, of: taps, example: example.id) }))
      } catch {
        guard data != nil else { throw error }
        failures += 1
        failed.append((example.position, "\(exampleName): \(error)"))
        progress?.log("\(exampleName): \(error)")
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

extension TapCommand {
  /// The files of each example from the command line: for a model with one input, one file
  /// each (`FILE`, or `NAME=FILE` naming that input); for several, a `NAME=FILE` per input,
  /// each group that names every input once one example, its files in the model's input order.
  static func exampleFiles(_ items: [String], model: Model) throws -> [[(input: String, path: String)]] {
    let names = model.inputs.map(\.name)
    func named(_ item: String) -> (input: String, path: String)? {
      guard !FileManager.default.fileExists(atPath: item), let eq = item.firstIndex(of: "="),
        names.contains(String(item[..<eq]))
      else { return nil }
      return (String(item[..<eq]), String(item[item.index(after: eq)...]))
    }
    if names.count == 1 { return items.map { [named($0) ?? (names[0], $0)] } }
    let usage =
      "\(model.name) has \(names.count) inputs (\(names.joined(separator: ", "))): give NAME=FILE for each, "
      + "e.g. \(names.map { "\($0)=\($0).npy" }.joined(separator: " "))"
    var groups: [[(input: String, path: String)]] = []
    var group: [String: String] = [:]
    for item in items {
      guard let (name, path) = named(item) else {
        let known = item.contains("=") ? " ('\(item.prefix { $0 != "=" })' is not one of them)" : ""
        throw GlassboxError(.input, "\(item): \(usage)\(known)")
      }
      guard group[name] == nil else {
        let missing = names.filter { group[$0] == nil }.joined(separator: ", ")
        throw GlassboxError(
          .input, "\(item): input '\(name)' is given twice before the example has its \(missing); \(usage)")
      }
      group[name] = path
      if group.count == names.count {
        groups.append(names.map { ($0, group[$0] ?? "") })
        group = [:]
      }
    }
    guard group.isEmpty else {
      let missing = names.filter { group[$0] == nil }
      throw GlassboxError(
        .input,
        "the last example has no file for input\(missing.count == 1 ? "" : "s") "
          + "\(missing.map { "'\($0)'" }.joined(separator: ", ")); \(usage)")
    }
    return groups
  }
}

/// Writes text through a temporary file renamed into place.
func writeText(_ text: String, to path: String) throws {
  try writeAtomically(Data(text.utf8), to: path)
}
