import ArgumentParser
import Foundation
import Glassbox
import GlassboxFormat
import GlassboxIR
import GlassboxMedia
import GlassboxTraining

/// `glassbox train SPEC|MODEL --data DIR -o OUT.model`: train with the generated backward pass.
struct Train: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Train a spec or model on a data folder; write the trained .model, its curves and a resumable checkpoint.",
    discussion: """
      DIR is DIR/{train,val,test}/<class>/<example>.npy (classes sorted by name; val and test \
      optional), or raw media through the model input's recipe: an HMDB-51 folder with split \
      files, or a spoken-language folder DIR/<language>/<clip>.wav.
      After each epoch OUT (the model with the classes as labels), OUT.state.safetensors (the \
      optimizer's state, for --resume), OUT.history.json and OUT.curves.svg are replaced \
      atomically. The same seed, data and thread count give bit-identical weights.
      """)

  @OptionGroup var options: SpecOptions

  @Option(help: ArgumentHelp("The data folder.", valueName: "DIR"))
  var data: String

  @Option(name: .shortAndLong, help: ArgumentHelp("The trained model.", valueName: "OUT.model"))
  var output: String

  @Option(help: "Epochs to train (in all, when resuming).")
  var epochs = 10

  @Option(help: "Examples per step.")
  var batch = 32

  @Option(help: "Learning rate.")
  var lr = 0.01

  @Option(help: "sgd, adam or adamw.")
  var optimizer = "sgd"

  @Option(help: "SGD momentum.")
  var momentum = 0.9

  @Option(help: "Weight decay (L2 for sgd and adam, decoupled for adamw).")
  var weightDecay = 0.0

  @Option(help: "Learning-rate schedule: none, step (×gamma every --step-size epochs) or cosine (to 0 over the epochs).")
  var schedule = "none"

  @Option(help: "Epochs between decays of the step schedule.")
  var stepSize = 10

  @Option(help: "Factor of the step schedule.")
  var gamma = 0.1

  @Option(help: "Clip gradients to this global L2 norm.")
  var clip: Double?

  @Option(help: "Seed of the initial weights (a spec), the shuffles and the dropout masks.")
  var seed: UInt64 = 0

  @Option(help: "Cores to use.")
  var threads = 2

  @Option(help: ArgumentHelp("Feature cache for raw media data sets.", valueName: "DIR"))
  var cache: String?

  @Flag(help: "Continue the run whose checkpoint is OUT.")
  var resume = false

  @Flag(help: "Replace an existing OUT with a new run.")
  var force = false

  func validate() throws {
    guard epochs >= 1, batch >= 1, threads >= 1 else { throw ValidationError("--epochs, --batch and --threads must be at least 1") }
    guard lr.isFinite, lr > 0 else { throw ValidationError("--lr must be a positive number") }
    guard OptimizerSettings.Kind(rawValue: optimizer) != nil else { throw ValidationError("--optimizer must be sgd, adam or adamw") }
    guard ["none", "step", "cosine"].contains(schedule) else { throw ValidationError("--schedule must be none, step or cosine") }
    guard momentum >= 0, weightDecay >= 0, stepSize >= 1, gamma > 0 else {
      throw ValidationError("--momentum and --weight-decay must be ≥ 0, --step-size ≥ 1, --gamma > 0")
    }
    if let clip, !(clip > 0) { throw ValidationError("--clip must be positive") }
    guard !(resume && force) else { throw ValidationError("--resume continues OUT and --force replaces it: choose one") }
  }

  var trainingOptions: TrainingOptions {
    let kind = OptimizerSettings.Kind(rawValue: optimizer) ?? .sgd
    return TrainingOptions(
      epochs: epochs, batch: batch, learningRate: lr,
      optimizer: OptimizerSettings(kind: kind, momentum: kind == .sgd ? momentum : 0, weightDecay: weightDecay),
      schedule: schedule == "step" ? .step(every: stepSize, gamma: gamma) : schedule == "cosine" ? .cosine(tMax: epochs, minimum: 0) : .constant,
      clipNorm: clip, seed: seed, threads: threads, cache: cache)
  }

  func run() throws {
    let exists = FileManager.default.fileExists(atPath: output)
    let sameAsInput = (output as NSString).standardizingPath == (options.spec as NSString).standardizingPath
    if resume, !exists { throw FileError(description: "--resume: \(output) does not exist; there is no run to continue") }
    if exists, !resume, !force, !sameAsInput {
      throw FileError(description: "\(output) exists: --resume continues its run, --force replaces it")
    }
    // A .model keeps its symbols (--bind sizes them for this run only); a spec is compiled
    // with them, its weights drawn from the seed.
    let isModel = Model.isModelFile(options.spec)
    let model = isModel ? try Model(contentsOf: options.spec)
      : try Model(contentsOf: options.spec, bindings: options.bindingMap, weights: Model.WeightOptions(seed: seed))
    let run = try TrainingRun(model: model, bindings: isModel ? options.bindingMap : [:], data: data, options: trainingOptions)
    for note in run.notes { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
    if resume { try run.resume(from: output) }
    let progress = ProgressPrinter(terminal: isatty(STDERR_FILENO) == 1)
    print("training \(model.name) on \(run.data.train.count) examples of \(run.classes.count) classes"
      + " (validation \(run.data.validation?.count ?? 0), test \(run.data.test?.count ?? 0)); "
      + "batch \(batch), \(optimizer) lr \(lr), seed \(seed), \(threads) threads"
      + (run.epochsDone > 0 ? "; resuming after epoch \(run.epochsDone)" : ""))
    fflush(nil)
    let wrote: Bool
    do {
      wrote = try run.run(output: output) { event in progress.show(event, output: output) }
    } catch {
      progress.finishLine()
      throw error
    }
    guard wrote else { return }
    print("wrote \(output), \(TrainingRun.curvesPath(output)), \(TrainingRun.historyPath(output)) and \(TrainingRun.statePath(output))")
  }
}

/// Progress on standard error through `ProgressReporter` (steps of the epoch: a bar redrawn in
/// place on a terminal, a line every few seconds otherwise); standard output gets the epoch
/// lines either way.
final class ProgressPrinter {
  let terminal: Bool
  /// The current epoch's steps.
  var steps: ProgressReporter?

  init(terminal: Bool) { self.terminal = terminal }

  func show(_ event: TrainingEvent, output: String) {
    switch event {
    case .step(let epoch, let epochs, let step, let count, let loss, let accuracy, let rate, let eta):
      let label = "epoch \(epoch)/\(epochs) steps"
      if steps?.label != label { steps = ProgressReporter(label: label, total: count, isTerminal: terminal) }
      steps?.update(done: step, note: String(format: "loss %.4f  acc %.1f%%  %.0f ex/s  ETA %@", loss, accuracy * 100,
                                             rate, Self.duration(eta)))
    case .epoch(let r):
      finishLine()
      var line = String(format: "epoch %d: train loss %.4f acc %.2f%%", r.epoch, r.trainLoss, r.trainAccuracy * 100)
      if let l = r.validationLoss, let a = r.validationAccuracy { line += String(format: ", val loss %.4f acc %.2f%%", l, a * 100) }
      line += String(format: ", lr %.4g, %.1f s (%.0f%% waiting on data); checkpoint %@", r.learningRate, r.seconds,
                     100 * r.dataWaitSeconds / max(r.seconds, 1e-9), output)
      print(line)
    case .test(let loss, let accuracy):
      finishLine()
      print(String(format: "test: loss %.4f acc %.2f%%", loss, accuracy * 100))
    case .note(let text):
      finishLine()
      FileHandle.standardError.write(Data("note: \(text)\n".utf8))
    }
    fflush(nil)
  }

  func finishLine() {
    steps?.finish()
  }

  static func duration(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "?" }
    let s = Int(seconds.rounded())
    return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
  }
}
