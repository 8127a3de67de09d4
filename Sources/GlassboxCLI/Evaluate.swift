import ArgumentParser
import Foundation
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

  @Option(help: ArgumentHelp("A data set folder (HMDB-51 layout for video, a folder per language for audio).", valueName: "DIR"))
  var data: String

  @Option(help: ArgumentHelp("The split to evaluate on.", valueName: "train|validation|test"))
  var split: String = "test"

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

  @Option(help: "Seed of PyTorch-style initialisation (a spec without --weights), of permutations and re-initialisation.")
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

  func run() throws {
    if tap == nil {
      let c = try classify()
      if let predictions { try writeText(c.predictionsJSON.text + "\n", to: predictions) }
      print(json ? c.summaryJSON.text : c.table)
      return
    }
    let report = try measure()
    print(json ? JSON.object(report).text : Self.table(report))
  }

  /// The classifier's predictions over the split.
  func classify() throws -> Classification {
    guard batch >= 1, threads >= 1 else { throw CommandError("--batch and --threads must be at least 1") }
    let loaded = try loadGraph(options, checkingWeights: true)
    guard let graph = loaded.result.graph else {
      printDiagnostics(loaded.result.diagnostics, source: loaded.source)
      throw ExitCode(1)
    }
    guard let logits = graph.outputs.first?.name else { throw CommandError("\(options.spec): the graph has no outputs") }
    var result = Classification(classes: [], split: split)
    let source = try BatchedInference.run(graph: graph, model: loaded.model, seed: seed, data: data, split: split, batch: batch,
                                          limit: limit ?? Int.max, cache: cache, threads: threads, keepTaps: false,
                                          progressLabel: "evaluate") { out, examples in
      guard let t = out[logits] else { throw CommandError("the compiled program did not produce '\(logits)'") }
      let classes = t.count / batch, values = t.floats
      for (b, e) in examples.enumerated() {
        result.add(file: e.file, label: e.label, logits: Array(values[(b * classes)..<((b + 1) * classes)]))
      }
    }
    result.classes = loaded.model?.labels.isEmpty == false ? (loaded.model?.labels ?? []) : source.classes
    for note in source.skipped { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
    guard !result.examples.isEmpty else { throw CommandError("\(data): no \(split) examples") }
    if let width = result.examples.first?.probabilities.count, width != result.classes.count {
      throw CommandError("\(data): has \(result.classes.count) classes but \(graph.name) has \(width) outputs")
    }
    return result
  }

  /// Every measure that applies to the tap and data, as the report's key–value pairs.
  func measure() throws -> [(String, JSON)] {
    guard let tap else { throw CommandError("give the tap to evaluate") }
    guard steps >= 1, permutations >= 0, threads >= 1 else { throw CommandError("--steps and --threads must be at least 1") }
    let loaded = try loadGraph(options, checkingWeights: true)
    guard let graph = loaded.result.graph else {
      printDiagnostics(loaded.result.diagnostics, source: loaded.source)
      throw ExitCode(1)
    }
    guard let tapDecl = graph.taps.first(where: { $0.name == tap }) else {
      throw CommandError("\(options.spec): no tap '\(tap)'; taps: \(graph.taps.map(\.name).joined(separator: ", "))")
    }
    guard graph.inputs.count == 1, let inputID = graph.inputs.first,
          let recipe = graph.recipes.first(where: { $0.input == graph[inputID].name }) else {
      throw CommandError("\(options.spec): evaluate needs a model with one input that has a recipe")
    }
    let inputName = graph[inputID].name
    let set = try loadDataSet(root: data, kind: recipe.kind, split: split, seed: loaded.splitSeed)
    // A limited set takes each class in turn (the split lists clips class by class: a prefix
    // would explain the first few classes only).
    let examples = ExampleSource.balanced(set.examples, limit: limit ?? Int.max).map { set.examples[$0] }
    guard !examples.isEmpty else { throw CommandError("\(data): no \(split) examples") }
    let extractor = try FeatureExtractor(recipe)
    func tensor(_ path: String) throws -> Tensor {
      let t = try extractor.extract(path)
      return Tensor(shape: [1] + t.shape, storage: t.storage)
    }

    let first = try tensor(examples[0].path)
    let bound = try graph.bound(try graph.inferBindings(inputShapes: [inputName: first.shape]))
    let parameters = try parameterValues(bound, model: loaded.model, weights: weights, renames: [], seed: seed)
    var runner = try TapRunner(graph: bound, parameters: parameters, tap: tap, threads: threads)
    let isAttention = tapDecl.kind == .attention

    // Attention faithfulness: the weights become an input the experiment feeds.
    var override: Executable?
    if isAttention {
      var module = Module(graph: OverrideValue.apply(to: bound, value: tapDecl.operands[0], inputName: "attention.override"),
                          weights: parameters)
      module.graph.taps = []
      Pipeline.run(Pipeline.inference, on: &module)
      override = try Executable(graph: module.graph, parameters: module.weights, threads: threads)
    }

    var rng = SplitMix64(seed: seed)
    var deletion: [[Double]] = [], insertion: [[Double]] = []
    var correct = 0, uniformCorrect = 0, tvd: [Double] = [], flips = 0, permutationCount = 0
    var pointingFrames: [Double] = [], energyFrames: [Double] = [], pointingClips: [Double] = [], energyClips: [Double] = []
    var pointingFramesCorrect: [Double] = [], energyFramesCorrect: [Double] = []
    var pointingPeak: [Double] = [], pointingPeakCorrect: [Double] = []
    var speechMass: [Double] = [], speechChance: [Double] = []
    var originalMaps: [[Double]] = [], explained: [Int] = []
    var unitName = "units"
    var inputs: [Tensor] = []
    let progress = ProgressReporter(label: "evaluate", total: examples.count)
    for (n, example) in examples.enumerated() {
      defer { progress.update(done: n + 1, note: (example.path as NSString).lastPathComponent) }
      let x = n == 0 ? first : try tensor(example.path)
      guard x.shape == first.shape else { throw CommandError("\(example.path): shape \(x.shape) differs from \(first.shape)") }
      inputs.append(x)
      let (results, lowered, k) = try runner.explain(x)
      let probabilities = Metrics.softmax(runner.logits(of: results).map(Double.init))
      let predicted = probabilities.indices.max { probabilities[$0] < probabilities[$1] } ?? 0
      if predicted == example.label { correct += 1 }
      let raw = results[lowered.outputs["raw"] ?? ""]
      originalMaps.append(raw?.doubles ?? [])
      explained.append(k)

      // Importance of each perturbation unit and how to remove a unit from the input.
      guard let units = Self.units(lowered: lowered, results: results, inputShape: x.shape) else { continue }
      unitName = units.name
      let order = Metrics.order(byDescending: units.scores)
      let schedule = Metrics.schedule(units: order.count, steps: steps)
      var del: [Double] = [], ins: [Double] = []
      for count in schedule {
        let removed = Set(order.prefix(count)), kept = Set(order.prefix(count))
        del.append(try runner.probability(of: k, input: units.apply(x, removed.contains)))
        ins.append(try runner.probability(of: k, input: units.apply(x) { !kept.contains($0) }))
      }
      deletion.append(del)
      insertion.append(ins)

      if isAttention, let override, let weights = raw {
        let time = weights.shape[1]
        let uniform = Tensor(shape: weights.shape, f32: [Float](repeating: 1 / Float(time), count: weights.count))
        let u = try override.run(inputs: [inputName: x, "attention.override": uniform])
        let uLogits = u[bound.outputs[0].name]?.doubles ?? []
        if (uLogits.indices.max { uLogits[$0] < uLogits[$1] }) == example.label { uniformCorrect += 1 }
        for _ in 0..<permutations {
          var perm = Array(0..<time)
          perm.shuffle(using: &rng)
          let per = weights.count / time, w = weights.floats
          var shuffled = w
          for t in 0..<time { for j in 0..<per { shuffled[t * per + j] = w[perm[t] * per + j] } }
          let out = try override.run(inputs: [inputName: x, "attention.override": Tensor(shape: weights.shape, f32: shuffled)])
          let q = Metrics.softmax(out[bound.outputs[0].name]?.doubles ?? [])
          tvd.append(Metrics.totalVariation(probabilities, q))
          if (q.indices.max { q[$0] < q[$1] }) != predicted { flips += 1 }
          permutationCount += 1
        }
      }

      // Localisation on the boxes of the generated action clips.
      if lowered.perStep, let up = results[lowered.outputs["upsampled"] ?? ""], let boxes = Self.boxes(example.path, recipe: recipe) {
        let s = up.shape, (t, h, w) = (s[1], s[2], s[3])
        var hits: [Double] = [], energies: [Double] = []
        let values = up.floats
        for f in 0..<min(t, boxes.count) {
          let map = Array(values[(f * h * w)..<((f + 1) * h * w)])
          let box = boxes[f].scaled(from: Self.sidecarSize(example.path).0, Self.sidecarSize(example.path).1, to: w, h)
          hits.append(Metrics.pointingHit(map, width: w, height: h, box: box) ? 1 : 0)
          energies.append(Metrics.energyInBox(map, width: w, height: h, box: box))
        }
        pointingFrames += hits; energyFrames += energies
        pointingClips.append(Metrics.mean(hits)); energyClips.append(Metrics.mean(energies))
        // The clip as one trial, as an image is in Zhang et al.'s game: the maximum of its
        // space-time map (the frame whose raw map peaks highest, then that frame's peak).
        let peak = raw.flatMap { Metrics.peakFrame($0.floats, frames: $0.shape[1]) }.flatMap { $0 < hits.count ? $0 : nil }
        if let peak { pointingPeak.append(hits[peak]) }
        if predicted == example.label {  // the pointing game is usually scored on correct predictions
          pointingFramesCorrect += hits
          energyFramesCorrect += energies
          if let peak { pointingPeakCorrect.append(hits[peak]) }
        }
      }
      // Attention mass inside the speech intervals of the generated clips.
      if recipe.kind == .audio, isAttention, let weights = raw,
         let speech = speechIntervals(mediaPath: example.path, recipe: recipe, frames: x.shape[1]) {
        let time = weights.shape[1], per = weights.count / time, w = weights.doubles
        let perFrame = (0..<time).map { t in (0..<per).reduce(0.0) { $0 + w[t * per + $1] } }
        let r = Metrics.massInIntervals(perFrame, speech)
        speechMass.append(r.mass); speechChance.append(r.chance)
      }
    }
    progress.finish()

    // Sanity check: re-initialise blocks top-down, cumulatively; rank correlation of the maps.
    var sanity: [(block: String, spearman: Double)] = []
    if !noSanity && !originalMaps.isEmpty {
      let fresh = try Initialization.weights(for: bound, seed: seed &+ 1)
      var changed = parameters
      for block in Self.blocksTopDown(bound) {
        for (i, p) in bound.parameters.enumerated() where Self.block(of: p.name, in: bound) == block && p.role == .trainable {
          changed[p.name] = fresh[i]
        }
        var r = try TapRunner(graph: bound, parameters: changed, tap: tap, threads: threads)
        var rhos: [Double] = []
        for ((x, original), k) in zip(zip(inputs, originalMaps), explained) {
          let (results, lowered, _) = try r.explain(x, classIndex: k)
          if let map = results[lowered.outputs["raw"] ?? ""], let rho = Metrics.spearman(original, map.doubles) { rhos.append(rho) }
        }
        sanity.append((block, Metrics.mean(rhos)))
      }
    }

    // Report.
    var report: [(String, JSON)] = [("tap", .string(tap)), ("kind", .string(tapDecl.kind.rawValue)),
                                    ("examples", .int(examples.count)), ("accuracy", .number(Double(correct) / Double(examples.count)))]
    if !deletion.isEmpty {
      let meanCurve = { (curves: [[Double]]) in (0..<curves[0].count).map { i in Metrics.mean(curves.map { $0[i] }) } }
      let d = meanCurve(deletion), ins = meanCurve(insertion)
      report.append(("units", .string(unitName)))
      report.append(("deletion", .object([("auc", .number(Metrics.mean(deletion.map(Metrics.area)))), ("curve", .array(d.map { .number($0) }))])))
      report.append(("insertion", .object([("auc", .number(Metrics.mean(insertion.map(Metrics.area)))), ("curve", .array(ins.map { .number($0) }))])))
    }
    if isAttention {
      report.append(("attention_faithfulness", .object([
        ("uniform_accuracy", .number(Double(uniformCorrect) / Double(examples.count))),
        ("permutation_tvd_mean", .number(Metrics.mean(tvd))), ("permutation_tvd_median", .number(Metrics.median(tvd))),
        ("permutation_flip_rate", .number(permutationCount > 0 ? Double(flips) / Double(permutationCount) : 0)),
      ])))
    }
    if !sanity.isEmpty {
      report.append(("sanity", .array(sanity.map { .object([("reinitialised_through", .string($0.block)), ("spearman", .number($0.spearman))]) })))
    }
    if !pointingFrames.isEmpty {
      report.append(("localisation", .object([
        ("pointing_per_frame", .number(Metrics.mean(pointingFrames))), ("energy_per_frame", .number(Metrics.mean(energyFrames))),
        ("pointing_per_clip", .number(Metrics.mean(pointingClips))), ("energy_per_clip", .number(Metrics.mean(energyClips))),
        ("pointing_per_frame_correct", pointingFramesCorrect.isEmpty ? .null : .number(Metrics.mean(pointingFramesCorrect))),
        ("energy_per_frame_correct", energyFramesCorrect.isEmpty ? .null : .number(Metrics.mean(energyFramesCorrect))),
        ("pointing_clip_peak", pointingPeak.isEmpty ? .null : .number(Metrics.mean(pointingPeak))),
        ("pointing_clip_peak_correct", pointingPeakCorrect.isEmpty ? .null : .number(Metrics.mean(pointingPeakCorrect))),
      ])))
    }
    if !speechMass.isEmpty {
      report.append(("speech", .object([("attention_mass_in_speech", .number(Metrics.mean(speechMass))),
                                        ("speech_frame_share", .number(Metrics.mean(speechChance)))])))
    }
    return report
  }

  /// Two columns, one line per number; curves are left to the JSON.
  static func table(_ report: [(String, JSON)]) -> String {
    var lines: [String] = []
    func add(_ key: String, _ value: JSON) {
      switch value {
      case .object(let pairs): for (k, v) in pairs where k != "curve" { add(key + "." + k, v) }
      case .array(let items):
        for (i, item) in items.enumerated() {
          if case .object(let pairs) = item, pairs.count == 2 { lines.append(Self.row("\(key)[\(i)] \(pairs[0].1.plain)", pairs[1].1.plain)) } else { add("\(key)[\(i)]", item) }
        }
      default: lines.append(Self.row(key, value.plain))
      }
    }
    for (k, v) in report { add(k, v) }
    return lines.joined(separator: "\n")
  }

  static func row(_ key: String, _ value: String) -> String {
    key.count >= 44 ? key + " " + value : key + String(repeating: " ", count: 44 - key.count) + value
  }

  /// What a deletion/insertion curve removes: frames of a clip, pixels of an image, time
  /// frames of an MFCC image; their importance from the tap's outputs.
  struct Units {
    var name: String
    var scores: [Double]
    /// The input with the units for which `remove` is true set to 0 (the recipe's mean).
    var apply: (Tensor, (Int) -> Bool) -> Tensor
  }

  static func units(lowered: LowerTaps.Lowered, results: [String: Tensor], inputShape s: [Int]) -> Units? {
    func zeroing(_ unitOf: @escaping (Int) -> Int) -> (Tensor, (Int) -> Bool) -> Tensor {
      { x, remove in
        var v = x.floats
        for i in v.indices where remove(unitOf(i)) { v[i] = 0 }
        return Tensor(shape: x.shape, f32: v)
      }
    }
    if lowered.perStep, let r = results[lowered.outputs["relevance"] ?? ""], s.count == 5 {
      let frame = s[2] * s[3] * s[4]
      return Units(name: "frames", scores: Array(r.doubles.prefix(s[1])), apply: zeroing { $0 / frame })
    }
    if !lowered.perStep, let up = results[lowered.outputs["upsampled"] ?? ""], s.count == 4 {
      let plane = s[2] * s[3]
      return Units(name: "pixels", scores: Array(up.doubles.prefix(plane)), apply: zeroing { $0 % plane })
    }
    if s.count == 3, let raw = results[lowered.outputs["raw"] ?? ""], raw.shape.count >= 2, raw.shape[1] == s[1],
       [.attention, .saliency].contains(lowered.kind) {
      let time = s[1], per = raw.count / (raw.shape[0] * time), v = raw.doubles, width = s[2]
      let scores = (0..<time).map { t in (0..<per).reduce(0.0) { $0 + abs(v[t * per + $1]) } }
      return Units(name: "time frames", scores: scores, apply: zeroing { ($0 / width) % time })
    }
    return nil
  }

  /// Boxes of the sampled frames from the clip's sidecar (tools/gen_actions.py), in the
  /// video's pixels.
  static func boxes(_ path: String, recipe: InputRecipe) -> [Metrics.Box]? {
    guard let object = sidecar(path), let all = object["boxes"] as? [[Double]], let frames = object["frames"] as? Int,
          let video = try? VideoRecipe(recipe),
          let indices = try? VideoDecoder.frameIndices(frameCount: frames, count: video.frames, sampling: video.sampling) else { return nil }
    return indices.compactMap { i in
      guard i < all.count, all[i].count == 4 else { return nil }
      return Metrics.Box(x0: all[i][0], y0: all[i][1], x1: all[i][2], y1: all[i][3])
    }
  }

  static func sidecarSize(_ path: String) -> (Int, Int) {
    let o = sidecar(path)
    return ((o?["width"] as? Int) ?? 1, (o?["height"] as? Int) ?? 1)
  }

  static func sidecar(_ path: String) -> [String: Any]? {
    let file = (path as NSString).deletingPathExtension + ".json"
    guard let data = FileManager.default.contents(atPath: file) else { return nil }
    return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
  }

  /// The block a parameter belongs to: its first name component, or the first two inside a
  /// per-step scope (`cnn.layer4`).
  static func block(of name: String, in graph: Graph) -> String {
    let parts = name.split(separator: ".").map(String.init)
    if parts.count > 2, graph.scopes.contains(where: { $0.path == parts[0] && $0.steps != nil }) { return parts[0] + "." + parts[1] }
    return parts.first ?? name
  }

  /// Blocks with trainable parameters, from the output end to the input end.
  static func blocksTopDown(_ graph: Graph) -> [String] {
    var seen: [String] = []
    for p in graph.parameters where p.role == .trainable {
      let b = block(of: p.name, in: graph)
      if !seen.contains(b) { seen.append(b) }
    }
    return seen.reversed()
  }
}

extension JSON {
  /// The value as table text.
  var plain: String {
    switch self {
    case .number(let v): String(format: "%.4f", v)
    case .string(let s): s
    default: text
    }
  }
}

/// One tap compiled for a bound graph: the predicted class from a plain forward when the tap
/// needs a class, then the tap's program for that class (compiled once per class).
struct TapRunner {
  let graph: Graph
  let parameters: [String: Tensor]
  let tap: String
  let threads: Int
  let plain: Executable
  var programs: [Int: (Executable, LowerTaps.Lowered)] = [:]
  let needsClass: Bool

  init(graph: Graph, parameters: [String: Tensor], tap: String, threads: Int) throws {
    self.graph = graph
    self.parameters = parameters
    self.tap = tap
    self.threads = threads
    let kind = graph.taps.first { $0.name == tap }?.kind
    needsClass = kind.map { [.gradient, .saliency, .gradcam, .gradcampp, .cam].contains($0) } ?? false
    var g = graph
    g.taps = []
    var module = Module(graph: g, weights: parameters)
    Pipeline.run(Pipeline.inference, on: &module)
    plain = try Executable(graph: module.graph, parameters: module.weights, threads: threads)
  }

  /// The first output's row for the first example.
  func logits(of results: [String: Tensor]) -> [Float] { results[graph.outputs[0].name]?.floats ?? [] }

  /// The softmax probability of class `k` for the first example of `input`.
  func probability(of k: Int, input: Tensor) throws -> Double {
    let p = Metrics.softmax(logits(of: try plain.run(inputs: [graph[graph.inputs[0]].name: input])).map(Double.init))
    return k < p.count ? p[k] : 0
  }

  /// The tap's outputs for `x`, what was lowered, and the class explained (the predicted one
  /// unless `classIndex` is given).
  mutating func explain(_ x: Tensor, classIndex: Int? = nil) throws -> ([String: Tensor], LowerTaps.Lowered, Int) {
    let inputName = graph[graph.inputs[0]].name
    let logits = self.logits(of: try plain.run(inputs: [inputName: x]))
    let k = classIndex ?? (logits.indices.max { logits[$0] < logits[$1] } ?? 0)
    let key = needsClass ? k : -2
    if programs[key] == nil {
      let lowered = try LowerTaps.apply(to: Module(graph: graph, weights: parameters),
                                        options: .init(taps: [tap], classIndex: needsClass ? k : nil))
      var module = lowered.module
      Pipeline.run(Pipeline.inference, on: &module)
      programs[key] = (try Executable(graph: module.graph, parameters: module.weights, threads: threads), lowered.taps[0])
    }
    guard let (program, lowered) = programs[key] else { throw CommandError("tap \(tap): could not compile") }
    return (try program.run(inputs: [inputName: x]), lowered, k)
  }
}

/// A classifier's predictions over a split: accuracy, mean cross-entropy and the confusion
/// matrix `confusion[true][predicted]`.
struct Classification {
  struct Example {
    var file: String
    var label: Int
    var predicted: Int
    var probabilities: [Double]
  }

  var classes: [String]
  var split: String
  var examples: [Example] = []

  mutating func add(file: String, label: Int, logits: [Float]) {
    let p = Metrics.softmax(logits.map(Double.init))
    examples.append(Example(file: file, label: label, predicted: p.indices.max { p[$0] < p[$1] } ?? 0, probabilities: p))
  }

  var accuracy: Double { Double(examples.filter { $0.predicted == $0.label }.count) / Double(max(examples.count, 1)) }

  /// Mean of −log p(label), with p floored at 1e-12 so one certain mistake stays finite.
  var crossEntropy: Double {
    examples.reduce(0.0) { $0 - Foundation.log(max($1.label < $1.probabilities.count ? $1.probabilities[$1.label] : 0, 1e-12)) }
      / Double(max(examples.count, 1))
  }

  var confusion: [[Int]] {
    let n = max(classes.count, (examples.map { max($0.label, $0.predicted) }.max() ?? -1) + 1)
    var m = [[Int]](repeating: [Int](repeating: 0, count: n), count: n)
    for e in examples { m[e.label][e.predicted] += 1 }
    return m
  }

  var summaryJSON: JSON {
    .object([("split", .string(split)), ("examples", .int(examples.count)), ("accuracy", .number(accuracy)),
             ("cross_entropy", .number(crossEntropy)), ("classes", .array(classes.map { .string($0) })),
             ("confusion", .array(confusion.map { .array($0.map { .int($0) }) }))])
  }

  var predictionsJSON: JSON {
    .object([("classes", .array(classes.map { .string($0) })),
             ("examples", .array(examples.map { e in
               .object([("file", .string(e.file)), ("label", .int(e.label)), ("predicted", .int(e.predicted)),
                        ("probabilities", .array(e.probabilities.map { .number($0) }))])
             }))])
  }

  /// Accuracy and cross-entropy, then the confusion matrix with class names.
  var table: String {
    var lines = [Evaluate.row("examples (\(split))", String(examples.count)),
                 Evaluate.row("accuracy", String(format: "%.4f", accuracy)),
                 Evaluate.row("cross_entropy", String(format: "%.4f", crossEntropy)),
                 "confusion (rows: true class, columns: predicted)"]
    let m = confusion
    let names = (0..<m.count).map { $0 < classes.count ? classes[$0] : String($0) }
    let width = max(6, (names.map(\.count).max() ?? 0) + 1)
    func pad(_ s: String) -> String { s.count >= width ? s : String(repeating: " ", count: width - s.count) + s }
    lines.append(pad("") + names.map { pad(String($0.prefix(width - 1))) }.joined())
    for (i, row) in m.enumerated() { lines.append(pad(String(names[i].prefix(width - 1))) + row.map { pad(String($0)) }.joined()) }
    return lines.joined(separator: "\n")
  }
}
