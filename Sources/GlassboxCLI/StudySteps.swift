import ArgumentParser
import Foundation
import Glassbox
import GlassboxAnalysis
import GlassboxFormat
import GlassboxIR
import GlassboxMedia
import GlassboxTraining

/// How the study trains one model: the `glassbox train` settings and the symbols bound for
/// CPU time. Binding frames, frame size or nothing else keeps the model what the seed study
/// describes (the same layers and widths); the `--quick` run binds smaller frames.
struct StudyTraining: Equatable {
  var epochs: Int
  var batch: Int
  var learningRate: Double
  var optimizer = "adam"
  var clip: Double? = 1
  /// `--bind` values (`T=8`, `H=64`, …), in order.
  var bindings: [String] = []

  /// The bindings as a dictionary.
  var bindingMap: [String: Int] {
    Dictionary(
      bindings.compactMap { b -> (String, Int)? in
        let parts = b.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, let v = Int(parts[1]) else { return nil }
        return (parts[0], v)
      }, uniquingKeysWith: { _, last in last })
  }

  /// The library's training options for these settings (what `glassbox train` makes of
  /// `arguments`).
  func options(seed: UInt64, threads: Int, cache: String?) -> TrainingOptions {
    let kind = OptimizerSettings.Kind(rawValue: optimizer) ?? .sgd
    return TrainingOptions(
      epochs: epochs, batch: batch, learningRate: learningRate,
      optimizer: OptimizerSettings(kind: kind, momentum: kind == .sgd ? 0.9 : 0, weightDecay: 0),
      schedule: .cosine(tMax: epochs, minimum: 0), clipNorm: clip, seed: seed, threads: threads,
      cache: cache)
  }

  /// The `glassbox train` options, after the spec and before `--data`.
  var arguments: [String] {
    var a = bindings.flatMap { ["--bind", $0] }
    a += [
      "--epochs", String(epochs), "--batch", String(batch), "--lr", String(learningRate), "--optimizer", optimizer,
      "--schedule", "cosine",
    ]
    if let clip { a += ["--clip", String(clip)] }
    return a
  }
}

extension StudyPlan {
  /// The training of `model` in this run. The speech models train in seconds per epoch; the
  /// video models bind fewer frames than the recipe's 16 at 112×112 (VGG-19, about eleven
  /// times the work of ResNet-18 per pixel, smaller ones too), so both fit the run's time.
  /// ResNet-LSTM's full run keeps the recipe's 112×112, where its last feature map, the
  /// explained map, is 4×4 (3×3 at 96×96) and localises better; its quick run trains 16 epochs
  /// (about a minute), as at 8 its explanations missed the object on some seeds.
  func training(_ model: Model) -> StudyTraining {
    switch (model.name, quick) {
    case ("resnet18_lstm", true):
      StudyTraining(epochs: 16, batch: 4, learningRate: 0.001, bindings: ["T=8", "H=64", "W=64"])
    case ("resnet18_lstm", false):
      StudyTraining(epochs: 16, batch: 4, learningRate: 0.001, bindings: ["T=8", "H=112", "W=112"])
    // Plain VGG-19 (no batch norm) from scratch, its convolutions drawn with fan_in Kaiming
    // (graphs/vgg19_lstm.graph), sits on the uniform-prediction plateau for its first epochs,
    // then learns with SGD and momentum (Adam did not leave the plateau); 8 frames a clip,
    // as fewer overfit the quick run's few training clips.
    case ("vgg19_lstm", true):
      StudyTraining(epochs: 10, batch: 4, learningRate: 0.01, optimizer: "sgd", bindings: ["T=8", "H=32", "W=32"])
    case ("vgg19_lstm", false):
      StudyTraining(epochs: 20, batch: 4, learningRate: 0.01, optimizer: "sgd", bindings: ["T=8", "H=32", "W=32"])
    case (_, true): StudyTraining(epochs: 20, batch: 16, learningRate: 0.005)
    default: StudyTraining(epochs: 30, batch: 16, learningRate: 0.003)
    }
  }

  /// Examples the explanation metrics are measured on (per model); the sanity check
  /// recompiles the model once per block, so it is kept small in `--quick`.
  var explainedExamples: Int { quick ? 16 : 32 }

  /// The tap a model is explained with in the figures and the metrics, the `--tap` that adds
  /// it to the trained model when its spec lacks it, and its kind (which names the pictures'
  /// folder of an action model: `layercam` or `gradcam`). The action models are explained at
  /// the deepest convolutional map of at least 4×4: a 2×2 map (ResNet-18's `layer4` at 64×64,
  /// VGG-19's last convolution at 32×32) gives one value per quadrant of the frame, too coarse
  /// to point at an object. The method is the one that pointed at the moving object best on
  /// this data, three seeds each (docs/study/RESULTS.md): LayerCAM at the network's last map
  /// (ResNet-LSTM's full run: 80–87% of the correctly classified clips' space-time peaks, where
  /// Grad-CAM's one weight per channel pointed at 52–63%), Grad-CAM at a shallower one (the
  /// quick run's `layer3`: 74–92%, LayerCAM 57–65%).
  func explanation(_ model: Model) -> (tap: String, adding: String?, kind: String) {
    guard model.dataset == "actions" else {
      let tap = model.name == "bilstm" ? "saliency" : "attention"
      return (tap, nil, tap)
    }
    let height =
      training(model).bindings.compactMap { b -> Int? in
        b.hasPrefix("H=") ? Int(b.dropFirst(2)) : nil
      }.first ?? 112
    // (value, the map's size as a fraction of the frame's), deepest first.
    let layers: [(value: String, stride: Int)] =
      model.name == "vgg19_lstm"
      ? [("cnn.35", 16), ("cnn.26", 8), ("cnn.17", 4)]
      : [("cnn.layer4", 32), ("cnn.layer3", 16), ("cnn.layer2", 8)]
    let chosen = layers.firstIndex { (height + $0.stride - 1) / $0.stride >= 4 } ?? layers.count - 1
    let value = layers[chosen].value, kind = chosen == 0 ? "layercam" : "gradcam"
    let tap = "\(kind)_\(value.replacingOccurrences(of: ".", with: "_"))"
    return (tap, "\(kind):\(value):name=\(tap)", kind)
  }

  /// The action models' explanation kinds as captions name them.
  static let camTitles = ["layercam": "LayerCAM", "gradcam": "Grad-CAM"]

  /// The explanation methods compared on each model (`glassbox evaluate M --methods …`): the
  /// model's own tap first, then the other methods that apply — the other CAM kinds at the
  /// same layer, relevance at the input (gradients, Integrated Gradients with 16 path points,
  /// SmoothGrad with 8 samples, so that the quick run stays within its minutes).
  func methods(_ model: Model, explainedLayer: String?) -> [String] {
    let (tap, _, kind) = explanation(model)
    let input = model.dataset == "actions" ? "frames" : "mfcc"
    let relevance = ["ig:\(input):steps=16", "smoothgrad:\(input):samples=8"]
    if model.dataset == "actions" {
      let layerMethods =
        explainedLayer.map { layer in
          ["gradcam", "gradcampp", "layercam", "xgradcam", "hirescam"].filter { $0 != kind }
            .map { "\($0):\(layer)" }
        } ?? []
      return [tap] + layerMethods + ["saliency:frames"] + relevance
    }
    return (model.name == "bilstm" ? [tap] : [tap, "saliency"]) + ["gradient:mfcc"] + relevance
  }
}

/// The study's model steps through the `train` and `evaluate` commands and the `tap` command,
/// in process, with the command lines a person would type recorded beside each result.
struct CommandModelSteps: StudyModelSteps {
  func command(_ step: StudyModelStep, model: StudyPlan.Model, context: StudyContext) -> String? {
    "glassbox " + arguments(step, model: model, context: context).joined(separator: " ")
  }

  /// The command line of `step` (without `glassbox`).
  func arguments(_ step: StudyModelStep, model: StudyPlan.Model, context c: StudyContext) -> [String] {
    let file = c.modelFile(model.name)
    switch step {
    case .train:
      // The action specs default to HMDB-51's 51 classes; the generated set has its own count.
      let classes = model.dataset == "actions" ? ["--bind", "C=\(c.actionClasses)"] : []
      return ["train", (c.graphs as NSString).appendingPathComponent(model.name + ".graph")] + classes
        + c.plan.training(model).arguments
        + [
          "--data", c.data(for: model), "--cache", c.cache, "--seed", String(c.plan.seed), "--threads",
          String(c.threads),
          "-o", file,
        ]
    case .evaluate:
      return [
        "evaluate", file, "--data", c.data(for: model), "--split", "test", "--cache", c.cache,
        "--threads", String(c.threads), "--predictions", c.predictionsFile(model.name),
      ]
    case .explain:
      return [
        "evaluate", file, c.plan.explanation(model).tap, "--data", c.data(for: model), "--split", "test",
        "--limit", String(c.plan.explainedExamples), "--seed", String(c.plan.seed), "--threads", String(c.threads),
        "--json",
      ]
    }
  }

  func run(
    _ step: StudyModelStep, model: StudyPlan.Model, context c: StudyContext, record: inout StudyRecord
  ) throws -> StageOutcome {
    switch step {
    case .train: return try train(model, c, &record)
    case .evaluate: return try evaluate(model, c, &record)
    case .explain: return try explain(model, c, &record)
    }
  }

  func result(_ model: StudyPlan.Model, _ record: StudyRecord) -> StudyRecord.ModelResult {
    record.models.first { $0.name == model.name } ?? StudyRecord.ModelResult(name: model.name, dataset: model.dataset)
  }

  /// `glassbox train` into DIR/NAME/NAME.model, through the library; continues an interrupted
  /// run from its checkpoint (the checkpoint's epoch count is the one the stage asks for).
  func train(_ model: StudyPlan.Model, _ c: StudyContext, _ record: inout StudyRecord) throws -> StageOutcome {
    if c.givenModels[model.name] != nil { return .skipped("using the model given with --model") }
    let file = c.modelFile(model.name), fm = FileManager.default
    try fm.createDirectory(atPath: c.modelFolder(model.name), withIntermediateDirectories: true)
    let t = c.plan.training(model)
    // The action specs default to HMDB-51's 51 classes; the generated set has its own count.
    var bindings = t.bindingMap
    if model.dataset == "actions" { bindings["C"] = c.actionClasses }
    let spec = (c.graphs as NSString).appendingPathComponent(model.name + ".graph")
    let compiled = try Model(contentsOf: spec, bindings: bindings, weights: .init(seed: c.plan.seed))
    let run = try TrainingRun(
      model: compiled, data: c.data(for: model),
      options: t.options(seed: c.plan.seed, threads: c.threads, cache: c.cache))
    for note in run.notes { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
    switch Self.continuation(of: model, file: file, record: record) {
    case "--resume"?: try run.resume(from: file)
    case "--force"?: try? fm.removeItem(atPath: file)
    default: break
    }
    let progress = ProgressPrinter(terminal: isatty(STDERR_FILENO) == 1)
    try run.run(output: file) { progress.show($0, output: file) }
    progress.finishLine()
    let curves = (c.modelFolder(model.name) as NSString).appendingPathComponent("curves.svg")
    // The trainer's OUT.curves.svg becomes the folder's curves.svg (one copy in the report).
    if let data = fm.contents(atPath: TrainingRun.curvesPath(file)) {
      try writeAtomically(data, to: curves)
      try? fm.removeItem(atPath: TrainingRun.curvesPath(file))
      record.record(
        StudyRecord.Figure(
          path: "\(model.name)/curves.svg",
          caption: "Training curves of \(model.name): loss and accuracy per epoch",
          command: self.command(.train, model: model, context: c)))
    }
    var r = result(model, record)
    r.commands["train"] = self.command(.train, model: model, context: c)
    r.commands["curves"] = r.commands["train"]
    record.record(r)
    return .done(
      "\(t.epochs) epochs, batch \(t.batch), \(t.optimizer) lr \(t.learningRate)"
        + (t.bindings.isEmpty ? "" : ", " + t.bindings.joined(separator: " ")))
  }

  /// How `train` treats an existing OUT: a stage recorded done runs again only by `--redo`,
  /// so it trains anew (`--force`); otherwise OUT is an interrupted run's, continued from its
  /// checkpoint (`--resume`), or replaced when it has none. Nil when there is no OUT.
  static func continuation(of model: StudyPlan.Model, file: String, record: StudyRecord) -> String? {
    let fm = FileManager.default
    guard fm.fileExists(atPath: file) else { return nil }
    let redo = record.stage("train.\(model.name)")?.state == "done"
    return !redo && fm.fileExists(atPath: Trainer.statePath(file)) ? "--resume" : "--force"
  }

  /// `glassbox evaluate MODEL --data … --split test`: accuracy, cross-entropy and the confusion
  /// matrix into the record; every example's prediction into DIR/NAME/predictions.json.
  func evaluate(_ model: StudyPlan.Model, _ c: StudyContext, _ record: inout StudyRecord) throws -> StageOutcome {
    let file = c.modelFile(model.name)
    guard FileManager.default.fileExists(atPath: file) else { return .skipped("no trained model at \(file)") }
    try FileManager.default.createDirectory(atPath: c.modelFolder(model.name), withIntermediateDirectories: true)
    let trained = try Model(contentsOf: file)
    let split = try DatasetSplit(root: c.data(for: model), split: "test", model: trained, cache: c.cache)
    let classification = try trained.session(SessionOptions(threads: c.threads, taps: []))
      .classify(split, splitName: "test", batch: 8, progress: ProgressReporter(label: "evaluate", total: split.count))
    for note in split.skipped { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
    try writeText(classification.predictionsJSON.text + "\n", to: c.predictionsFile(model.name))
    var r = result(model, record)
    r.classes = classification.classes
    r.accuracy = classification.accuracy
    r.loss = classification.crossEntropy
    r.confusion = classification.confusion
    r.testExamples = classification.examples.count
    if let train = try? c.trainExamples(for: model) { r.trainExamples = train }
    r.commands["evaluate"] = self.command(.evaluate, model: model, context: c)
    record.record(r)
    return .done(
      String(
        format: "test accuracy %.1f%%, cross-entropy %.3f over %d clips (chance %.1f%%)",
        100 * classification.accuracy, classification.crossEntropy, classification.examples.count,
        100 / Double(max(classification.classes.count, 1))))
  }

  /// Pictures of a correctly and a wrongly classified test example (`glassbox tap`), and the
  /// explanation metrics of the model's tap (`glassbox evaluate MODEL TAP`) into metrics.json.
  func explain(_ model: StudyPlan.Model, _ c: StudyContext, _ record: inout StudyRecord) throws -> StageOutcome {
    let file = c.modelFile(model.name)
    guard FileManager.default.fileExists(atPath: file) else { return .skipped("no trained model at \(file)") }
    let (tap, adding, kind) = c.plan.explanation(model)
    let title = StudyPlan.camTitles[kind] ?? kind
    let folder = (c.modelFolder(model.name) as NSString).appendingPathComponent(
      model.dataset == "actions" ? kind : "attention")
    // Pictures of another method the study explained with before would sit in the report
    // beside this run's.
    if model.dataset == "actions" {
      for other in StudyPlan.camTitles.keys where other != kind {
        try? FileManager.default.removeItem(
          atPath: (c.modelFolder(model.name) as NSString).appendingPathComponent(other))
      }
    }

    // Which examples: the first correct and the first wrong prediction of the evaluate stage.
    var chosen: [(kind: String, example: Classification.Example)] = []
    let predictions: Classification
    do {
      predictions = try Classification.read(predictions: c.predictionsFile(model.name))
    } catch {
      throw GlassboxError(.input, "\(error.description); run the evaluate stage first (--redo evaluate.\(model.name))")
    }
    var trained = try Model(contentsOf: file)
    var tapCommand: String?
    if let adding, !trained.taps.contains(where: { $0.name == tap }) {
      // The tap joins the model file, so the commands recorded below run as they read.
      trained = try trained.adding(tap: adding)
      try trained.write(to: file)
      trained = try Model(contentsOf: file)
      tapCommand = "glassbox compile \(file) --tap \(adding) -o \(file)"
    }
    let session = try trained.session(SessionOptions(threads: c.threads, taps: []))
    if let e = predictions.examples.first(where: { $0.label == $0.predicted }) { chosen.append(("correct", e)) }
    if let e = predictions.examples.first(where: { $0.label != $0.predicted }) { chosen.append(("wrong", e)) }
    func name(_ i: Int) -> String { i < predictions.classes.count ? predictions.classes[i] : String(i) }
    var taps: [String] = []
    for (kind, e) in chosen {
      let out = (folder as NSString).appendingPathComponent(kind)
      let arguments = [file, tap, e.file, "--threads", String(c.threads), "-o", out]
      try? FileManager.default.removeItem(atPath: out)  // a redone stage leaves no older tap's files
      let x = try trained.tensor(fromMedia: e.file)
      let explanation = try session.explain(tap, [trained.inputs[0].name: x])
      try ExplanationFiles.write(explanation, input: x, model: trained, mediaPath: e.file, to: out)
      let line = "glassbox tap " + arguments.joined(separator: " ")
      taps.append(line)
      let clip = ((e.file as NSString).lastPathComponent as NSString).deletingPathExtension
      let what =
        "\(kind == "correct" ? "correctly" : "wrongly") classified \(clip): true \(name(e.label)), predicted \(name(e.predicted))"
        + String(format: " (p = %.2f)", e.probabilities[e.predicted])
      let relative = "\(model.name)/\((folder as NSString).lastPathComponent)/\(kind)"
      if model.dataset == "actions" {
        record.record(
          StudyRecord.Figure(
            path: "\(relative)/\(tap).png",
            caption: "\(title) through the LSTM, every frame, \(what)", command: line))
        record.record(
          StudyRecord.Figure(
            path: "\(relative)/\(tap).relevance.svg", caption: "Relevance per frame, \(what)", command: line))
        record.record(
          StudyRecord.Figure(
            path: "\(relative)/\(tap).gif", caption: "\(title) over the clip, \(what)",
            command: line))
      } else {
        let caption =
          tap == "attention"
          ? "MFCC image with the attention weights" : "MFCC image with the saliency (gradient × input)"
        record.record(StudyRecord.Figure(path: "\(relative)/\(tap).png", caption: "\(caption), \(what)", command: line))
      }
    }

    // The explanation metrics.
    let evaluation = ExplanationEvaluation(seed: c.plan.seed, limit: c.plan.explainedExamples, threads: c.threads)
    let measures = try evaluation.measure(trained, tap: tap, data: c.data(for: model), split: "test") {
      ProgressReporter(label: "evaluate", total: $0)
    }
    // The methods compared on the same clips (without the sanity check, which recompiles the
    // model per block and method).
    let explainedLayer = trained.graph.taps.first { $0.name == tap }?.operands.first.map { trained.graph[$0].name }
    let methods = c.plan.methods(model, explainedLayer: explainedLayer)
    let comparison = ExplanationEvaluation(
      sanity: false, seed: c.plan.seed, limit: c.plan.explainedExamples,
      threads: c.threads)
    let results = try comparison.compare(trained, methods: methods, data: c.data(for: model), split: "test") {
      ProgressReporter(label: "evaluate \($0)", total: $1)
    }
    let metricsFile = (c.directory as NSString).appendingPathComponent("metrics.json")
    var all =
      (FileManager.default.contents(atPath: metricsFile).flatMap { try? JSONSerialization.jsonObject(with: $0) }
        as? [String: Any]) ?? [:]
    let text = JSONValue.object(measures + [("methods", ExplanationEvaluation.comparisonRows(results))]).text
    all[model.name] = try JSONSerialization.jsonObject(with: Data(text.utf8))
    try writeAtomically(
      try JSONSerialization.data(withJSONObject: all, options: [.prettyPrinted, .sortedKeys]), to: metricsFile)
    var r = result(model, record)
    r.commands[model.dataset == "actions" ? kind : "attention"] =
      taps.first ?? self.command(.explain, model: model, context: c)
    r.commands["metrics"] = self.command(.explain, model: model, context: c)
    r.commands["methods"] =
      "glassbox "
      + ([
        "evaluate", file, "--methods", methods.joined(separator: ","), "--data",
        c.data(for: model), "--split", "test",
        "--limit", String(c.plan.explainedExamples), "--no-sanity",
        "--seed", String(c.plan.seed), "--threads", String(c.threads),
      ])
      .joined(separator: " ")
    if let tapCommand { r.commands["explained_tap"] = tapCommand }
    record.record(r)
    return .done(
      "\(chosen.map(\.kind).joined(separator: " and ")) example\(chosen.count == 1 ? "" : "s") explained; "
        + Self.headline(measures))
  }

  /// The metric a reader looks for first, in words.
  static func headline(_ measures: [(String, JSONValue)]) -> String {
    func number(_ key: String, _ inner: String) -> Double? {
      guard case .object(let pairs)? = measures.first(where: { $0.0 == key })?.1,
        case .number(let v)? = pairs.first(where: { $0.0 == inner })?.1
      else { return nil }
      return v
    }
    if let p = number("localisation", "pointing_per_frame") {
      return String(format: "pointing game %.1f%% of frames", 100 * p)
        + (number("localisation", "pointing_per_frame_correct").map {
          String(format: " (%.1f%% on correctly classified clips)", 100 * $0)
        } ?? "")
        + (number("localisation", "pointing_clip_peak_correct").map {
          String(format: "; at each correctly classified clip's space-time peak %.1f%%", 100 * $0)
        } ?? "")
    }
    if let m = number("speech", "attention_mass_in_speech"), let s = number("speech", "speech_frame_share") {
      return String(format: "attention mass in speech %.1f%% (speech is %.1f%% of frames)", 100 * m, 100 * s)
    }
    if let d = number("deletion", "auc") { return String(format: "deletion AUC %.3f", d) }
    return "metrics in metrics.json"
  }
}

extension StudyContext {
  /// Classes of the action data set: those its split files name (as training will read it),
  /// or gen_actions.py's 8 before it is generated.
  var actionClasses: Int {
    (try? HMDB51.load(root: actionData, split: 1, subset: .train).classes.count) ?? 8
  }

  /// Training examples of `model`'s data set, for the record.
  func trainExamples(for model: StudyPlan.Model) throws -> Int {
    try Datasets.media(
      root: data(for: model), kind: model.dataset == "actions" ? .video : .audio, split: "train",
      seed: plan.seed
    ).examples.count
  }

  /// The features cache shared by training, evaluation and embedding.
  var cache: String { (dataRoot as NSString).appendingPathComponent("features-cache") }
  /// The evaluate stage's per-example predictions.
  func predictionsFile(_ name: String) -> String {
    (modelFolder(name) as NSString).appendingPathComponent("predictions.json")
  }
}
