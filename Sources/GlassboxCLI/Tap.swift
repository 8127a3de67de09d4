import ArgumentParser
import Foundation
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

  @Argument(help: "The tap to compute (see `glassbox info` or `check`).")
  var tap: String

  @Argument(help: "Inputs: raw media files (through the input's recipe) or .npy tensors.")
  var inputs: [String] = []

  @Option(name: .customLong("class"), help: ArgumentHelp("The class to explain, or auto for the predicted one.", valueName: "N|auto"))
  var classChoice: String = "auto"

  @Option(help: ArgumentHelp("Normalisation scope of maps: frame or clip (default: the tap's).", valueName: "frame|clip"))
  var scope: String?

  @Option(help: ArgumentHelp("Weights by PyTorch parameter name (a spec only).", valueName: "W.safetensors"))
  var weights: String?

  @Option(name: .customLong("rename"), help: ArgumentHelp("Prefix rule for --weights names, e.g. features.=cnn.", valueName: "OLD=NEW"))
  var renames: [NamedPath] = []

  @Option(help: "Seed of PyTorch-style initialisation when a spec has no --weights.")
  var seed: UInt64 = 0

  @Option(help: ArgumentHelp("A data set folder (HMDB-51 layout for video, a folder per language for audio).", valueName: "DIR"))
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

  func run() throws {
    guard threads >= 1 else { throw CommandError("--threads must be at least 1") }
    if let scope, scope != "frame", scope != "clip" { throw CommandError("--scope must be frame or clip, found '\(scope)'") }
    let fixedClass: Int?
    if classChoice == "auto" {
      fixedClass = nil
    } else if let k = Int(classChoice), k >= 0 {
      fixedClass = k
    } else {
      throw CommandError("--class must be a class index ≥ 0 or auto, found '\(classChoice)'")
    }
    let loaded = try loadGraph(options, checkingWeights: true)
    guard let graph = loaded.result.graph else {
      printDiagnostics(loaded.result.diagnostics, source: loaded.source)
      throw ExitCode(1)
    }
    if loaded.model != nil, weights != nil { throw CommandError("--weights applies to a spec; a .model carries its weights") }
    guard let tapDecl = graph.taps.first(where: { $0.name == tap }) else {
      let names = graph.taps.map { "\($0.name) (\($0.kind.rawValue))" }
      throw CommandError("\(options.spec): no tap '\(tap)'; taps: \(names.isEmpty ? "none" : names.joined(separator: ", "))")
    }
    guard graph.inputs.count == 1, let inputID = graph.inputs.first else {
      throw CommandError("\(options.spec): tap takes models with one input; \(graph.name) has \(graph.inputs.count)")
    }
    let input = graph[inputID]
    let recipe = graph.recipes.first { $0.input == input.name }

    // What to explain: files named on the command line, or a data set split.
    var examples: [(path: String, label: Int?, id: String)] = []
    var classNames: [String] = loaded.model?.labels ?? []
    if let data {
      guard inputs.isEmpty else { throw CommandError("give input files or --data, not both") }
      guard let recipe else { throw CommandError("--data needs an input recipe; \(input.name) has none") }
      let set = try loadDataSet(root: data, kind: recipe.kind, split: split, seed: loaded.splitSeed)
      if classNames.isEmpty { classNames = set.classes }
      for e in ExampleSource.balanced(set.examples, limit: limit ?? Int.max).map({ set.examples[$0] }) {
        let stem = ((e.path as NSString).lastPathComponent as NSString).deletingPathExtension
        examples.append((e.path, e.label, set.classes[e.label] + "/" + stem))
      }
      guard !examples.isEmpty else { throw CommandError("\(data): no \(split) examples") }
    } else {
      guard !inputs.isEmpty else { throw CommandError("give at least one input file, or --data DIR") }
      for path in inputs {
        guard FileManager.default.isReadableFile(atPath: path) else { throw CommandError("\(path): no such file or not readable") }
        if !path.hasSuffix(".npy"), recipe == nil {
          throw CommandError("\(path): input '\(input.name)' has no recipe for media files; give a .npy")
        }
        let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        examples.append((path, nil, examples.count == 0 && inputs.count == 1 ? "" : stem))
      }
    }
    let extractor = try recipe.map { try FeatureExtractor($0) }
    let tensorOf: (String) throws -> Tensor = { path in
      var t = path.hasSuffix(".npy") ? try NPY.read(path) : try (extractor ?? FeatureExtractor(recipe!)).extract(path)
      if t.shape.count == input.type.rank - 1 { t = Tensor(shape: [1] + t.shape, storage: t.storage) }
      return t
    }

    // Compile once for the first example's shape; check class and tap before any run.
    let first = try tensorOf(examples[0].path)
    let bindings = try graph.inferBindings(inputShapes: [input.name: first.shape])
    let bound = try graph.bound(bindings)
    let parameters = try parameterValues(bound, model: loaded.model, weights: weights, renames: renames, seed: seed)
    let classes = bound.outputs.first.flatMap { bound[$0.value].type.shape.last?.staticValue } ?? 0
    if let k = fixedClass, classes > 0, k >= classes {
      throw CommandError("--class \(k) is out of range: \(graph.name) has \(classes) classes (0…\(classes - 1))")
    }
    let needsClass = [.gradient, .saliency, .gradcam, .gradcampp, .cam].contains(tapDecl.kind)
    // Lowering checks the tap (kind, class, gradients) before anything runs.
    _ = try LowerTaps.apply(to: Module(graph: bound, weights: parameters),
                            options: .init(taps: [tap], classIndex: needsClass ? (fixedClass ?? 0) : nil, scope: scope))
    var programs: [Int: (Executable, LowerTaps.Lowered)] = [:]
    func program(forClass k: Int?) throws -> (Executable, LowerTaps.Lowered) {
      if let p = programs[k ?? -2] { return p }
      let lowered = try LowerTaps.apply(to: Module(graph: bound, weights: parameters),
                                        options: .init(taps: [tap], classIndex: k, scope: scope))
      var module = lowered.module
      Pipeline.run(Pipeline.inference, on: &module)
      let p = (try Executable(graph: module.graph, parameters: module.weights, threads: threads), lowered.taps[0])
      programs[k ?? -2] = p
      return p
    }
    // One program: the class is fixed, or the predicted one chosen in the graph (class_seed).
    _ = try program(forClass: fixedClass)

    try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
    let hash = loaded.model.map { String(format: "%08x", CRC32.checksum(Array((try? Data(contentsOf: URL(fileURLWithPath: $0.path))) ?? Data()))) }
    var failures = 0
    let progress = data == nil ? nil : ProgressReporter(label: "tap", total: examples.count)
    for (n, example) in examples.enumerated() {
      defer { progress?.update(done: n + 1, note: example.id) }
      do {
        let x = n == 0 ? first : try tensorOf(example.path)
        guard x.shape == first.shape else {
          throw CommandError("\(example.path): shape \(x.shape) differs from the first input's \(first.shape)")
        }
        let (exe, lowered) = try program(forClass: fixedClass)
        let results = try exe.run(inputs: [input.name: x])
        let dir = example.id.isEmpty ? output : (output as NSString).appendingPathComponent(example.id)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try write(results: results, lowered: lowered, input: x, inputName: input.name, recipe: recipe, mediaPath: example.path,
                  label: example.label, classNames: classNames, modelHash: hash, logitsName: bound.outputs[0].name, into: dir)
        if data == nil { print("wrote \(dir)/ (\(lowered.outputs.count) tensors)") }
      } catch {
        guard data != nil else { throw error }
        failures += 1
        progress?.log("\(example.path): \(error)")
      }
    }
    if data != nil {
      progress?.finish()
      print("explained \(examples.count - failures) of \(examples.count) examples into \(output)/")
      // A partial failure is a failure: the status says so, the message counts them.
      if failures > 0 {
        throw CommandError("\(failures) of \(examples.count) examples failed (each named above); "
          + "the others are in \(output)/")
      }
    }
  }

  static func argmax(_ v: [Float]) -> Int { v.indices.max { v[$0] < v[$1] } ?? 0 }

  /// Tensors, summary and pictures of one example.
  func write(results: [String: Tensor], lowered: LowerTaps.Lowered, input: Tensor, inputName: String, recipe: InputRecipe?,
             mediaPath: String, label: Int?, classNames: [String], modelHash: String?, logitsName: String, into dir: String) throws {
    func path(_ file: String) -> String { (dir as NSString).appendingPathComponent(file) }
    for (role, name) in lowered.outputs.sorted(by: { $0.key < $1.key }) {
      guard let t = results[name] else { continue }
      let file = role == "raw" ? "\(lowered.name).npy" : "\(lowered.name).\(role).npy"
      try NPY.write(t, to: path(file))
    }
    let logits = results[logitsName]?.floats ?? []
    let probabilities = Self.softmax(logits)
    let predicted = Self.argmax(logits)
    var summary: [(String, JSON)] = [
      ("tap", .string(lowered.name)), ("kind", .string(lowered.kind.rawValue)),
      ("predicted", .int(predicted)),
    ]
    if predicted < classNames.count { summary.append(("predicted_label", .string(classNames[predicted]))) }
    if let label { summary.append(("label", .int(label))) }
    summary.append(("class", lowered.classIndex.map { .int($0 < 0 ? predicted : $0) } ?? .null))
    summary.append(("scope", lowered.scope.map { .string($0) } ?? .null))
    summary.append(("probabilities", .array(probabilities.map { .number(Double($0)) })))
    summary.append(("outputs", .object(lowered.outputs.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
    summary.append(("input", .string(mediaPath)))
    summary.append(("model_crc32", modelHash.map { .string($0) } ?? .null))
    if lowered.perStep { summary.append(("relevance_definition", .string("m_t / (sum_t m_t + 1e-7), m_t = mean of frame t's raw map"))) }
    try writeText(JSON.object(summary).text + "\n", to: path("summary.json"))
    guard !noPictures else { return }
    try drawPictures(results: results, lowered: lowered, input: input, recipe: recipe, mediaPath: mediaPath, into: dir)
  }

  func drawPictures(results: [String: Tensor], lowered: LowerTaps.Lowered, input: Tensor, recipe: InputRecipe?,
                    mediaPath: String, into dir: String) throws {
    func path(_ file: String) -> String { (dir as NSString).appendingPathComponent(file) }
    let name = lowered.name
    guard let recipe else { return }
    switch recipe.kind {
    case .video, .image:
      let s = input.shape
      let (h, w) = (s[s.count - 2], s[s.count - 1])
      let frames = s.count == 5 ? s[1] : 1
      let heat: [Float]
      if let maps = results[lowered.outputs["upsampled"] ?? ""] {
        heat = maps.floats
      } else if let raw = results[lowered.outputs["raw"] ?? ""], raw.shape == s {
        heat = Self.pixelMagnitudes(raw.floats, frames: frames, height: h, width: w)
      } else {
        return
      }
      let values = input.floats
      var overlays: [RGBImage] = []
      for t in 0..<frames {  // the first example of the batch
        let frame = ExplanationPictures.denormalized(values[(t * 3 * h * w)..<((t + 1) * 3 * h * w)], width: w, height: h,
                                                     mean: VideoRecipe.imagenetMean, std: VideoRecipe.imagenetStd)
        overlays.append(Heatmap.overlay(Array(heat[(t * h * w)..<((t + 1) * h * w)]), width: w, height: h, on: frame))
      }
      try ImageWriter.writePNG(ExplanationPictures.strip(overlays), to: path("\(name).png"))
      if frames > 1 {
        for ext in ["mp4", "gif"] {
          let writer = try VideoWriter(path: path("\(name).\(ext)"), width: w, height: h, framesPerSecond: 4)
          for o in overlays { try writer.append(o) }
          try writer.finish()
        }
      }
      if let relevance = results[lowered.outputs["relevance"] ?? ""] {
        let r = Array(relevance.floats.prefix(frames))
        try writeText(ExplanationPictures.relevanceSVG(r, title: "\(name): relevance per frame"), to: path("\(name).relevance.svg"))
      }
    case .audio:
      guard let raw = results[lowered.outputs["raw"] ?? ""] else { return }
      let s = input.shape
      let (frames, features) = (s[s.count - 2], s[s.count - 1])
      let mfcc = Array(input.floats.prefix(frames * features))
      var panels = [ExplanationPictures.timeFeatureImage(mfcc, frames: frames, features: features)]
      let r = raw.shape
      if let speech = speechIntervals(mediaPath: mediaPath, recipe: recipe, frames: frames) {
        panels.append(ExplanationPictures.intervalBand(width: frames, height: 8, intervals: speech))
      }
      var picture: RGBImage
      if r.count == 2, r[1] == frames {  // 1-D attention: a weight per frame, as a curve beneath
        panels.append(ExplanationPictures.curve(Array(raw.floats.prefix(frames)), height: 64))
        picture = ExplanationPictures.column(panels)
      } else if r.count == 3, r[1] == frames {  // 2-D: frames × features, as a heat map beside
        let map = ExplanationPictures.timeFeatureImage(Array(raw.floats.prefix(frames * r[2])), frames: frames, features: r[2],
                                                       colorMap: .jet)
        picture = ExplanationPictures.strip([ExplanationPictures.column(panels), map], gap: 8)
      } else {
        picture = ExplanationPictures.column(panels)
      }
      try ImageWriter.writePNG(picture, to: path("\(name).png"))
    }
  }

  /// A map in the input's own layout (saliency, a gradient of the input: `[B, (T,) 3, H, W]`)
  /// as one heat value per pixel of the first example: the magnitude summed over the colour
  /// channels, min-max normalised per frame. `[T·H·W]`.
  static func pixelMagnitudes(_ map: [Float], frames: Int, height h: Int, width w: Int) -> [Float] {
    var out = [Float](repeating: 0, count: frames * h * w)
    for t in 0..<frames {
      for c in 0..<3 { for p in 0..<(h * w) { out[t * h * w + p] += abs(map[(t * 3 + c) * h * w + p]) } }
      let frame = ExplanationPictures.normalized(Array(out[(t * h * w)..<((t + 1) * h * w)]))
      out.replaceSubrange((t * h * w)..<((t + 1) * h * w), with: frame)
    }
    return out
  }

  static func softmax(_ v: [Float]) -> [Float] {
    guard let m = v.max() else { return [] }
    let e = v.map { Foundation.exp(Double($0 - m)) }
    let s = e.reduce(0, +)
    return e.map { Float($0 / s) }
  }
}

/// Speech intervals of the sidecar `<clip>.json` (seconds, from tools/gen_speech.py) as
/// column ranges of the kept MFCC window: the clip has `1 + ⌊duration·rate/hop⌋` frames
/// (librosa's centred framing) and the recipe keeps the last `frames` of them.
func speechIntervals(mediaPath: String, recipe: InputRecipe, frames: Int) -> [Range<Int>]? {
  let sidecar = (mediaPath as NSString).deletingPathExtension + ".json"
  guard let data = FileManager.default.contents(atPath: sidecar),
        let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
        let speech = object["speech"] as? [[Double]], let duration = object["duration"] as? Double,
        let audio = try? AudioRecipe(recipe) else { return nil }
  let perSecond = Double(audio.sampleRateHz) / Double(audio.hop)
  let total = 1 + Int(duration * perSecond)
  let offset = total - frames  // negative when the clip was padded at its start
  return speech.compactMap { pair in
    guard pair.count == 2 else { return nil }
    let lo = Int((pair[0] * perSecond).rounded(.down)) - offset, hi = Int((pair[1] * perSecond).rounded(.up)) - offset
    return hi > lo ? max(lo, 0)..<max(hi, 0) : nil
  }
}

/// A problem with what a command was asked to do, found before or while doing it; printed
/// without the usage text.
struct CommandError: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

/// Writes text through a temporary file renamed into place.
func writeText(_ text: String, to path: String) throws {
  let temporary = path + ".tmp"
  guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8)) else {
    throw FileError(description: "\(path): cannot be written")
  }
  _ = try? FileManager.default.removeItem(atPath: path)
  try FileManager.default.moveItem(atPath: temporary, toPath: path)
}

/// A data set split by the recipe's kind: HMDB-51 layout for video, a folder per language for
/// audio (split with `seed`, the model's training seed: `GraphInput.splitSeed`).
func loadDataSet(root: String, kind: RecipeKind, split: String, seed: UInt64) throws -> DataSet {
  switch kind {
  case .video, .image:
    guard let subset = HMDB51.Subset(rawValue: split) else {
      throw CommandError("--split for a video data set: \(HMDB51.Subset.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return try HMDB51.load(root: root, split: 1, subset: subset)
  case .audio:
    guard let subset = SpokenLanguage.Subset(rawValue: split) else {
      throw CommandError("--split for an audio data set: \(SpokenLanguage.Subset.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return try SpokenLanguage.load(root: root, subset: subset, seed: seed)
  }
}

/// Weights for a bound graph: the model's, `weights` (safetensors) by name, or seeded
/// initialisation.
func parameterValues(_ graph: Graph, model: ModelFile?, weights: String?, renames: [NamedPath], seed: UInt64) throws -> [String: Tensor] {
  if let model {
    return Dictionary(uniqueKeysWithValues: graph.parameters.indices.map { (graph.parameters[$0].name, model.weight(ofParameter: $0)) })
  }
  let values: [Tensor]
  if let weights {
    let file = try SafeTensors.read(weights)
    let match = WeightImport(graph: graph, file: file, renames: renames.map { WeightImport.Rename(old: $0.name, new: $0.path) })
    guard let w = match.weights else {
      throw CommandError("\(weights): does not fit \(graph.name):\n  " + match.problems.joined(separator: "\n  "))
    }
    values = w
  } else {
    values = try Initialization.weights(for: graph, seed: seed)
  }
  return Dictionary(uniqueKeysWithValues: zip(graph.parameters.map(\.name), values))
}
