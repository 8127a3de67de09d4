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
    abstract:
      "Train a spec or model on a data folder; write the trained .model, its curves and a resumable checkpoint.",
    discussion: """
      DIR is DIR/{train,val,test}/<class>/<example>.npy (classes sorted by name; val and test \
      optional), or raw media through the model input's recipe: an HMDB-51 folder with split \
      files, or a spoken-language folder DIR/<language>/<clip>.wav.
      After each epoch OUT (the model with the classes as labels), OUT.state.safetensors (the \
      optimizer's state, for --resume), OUT.history.json and OUT.curves.svg are replaced \
      atomically. The same seed, data and thread count give bit-identical weights.

      Under mpirun (or srun --mpi=pmix) each process takes its slice of every batch and the \
      gradients are summed over the processes with MPI_Allreduce (Open MPI, opened when needed); \
      --batch is the global batch. Rank 0 evaluates and writes the files; the same number of \
      processes gives bit-identical weights.
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

  @Option(
    help: "Learning-rate schedule: none, step (×gamma every --step-size epochs) or cosine (to 0 over the epochs).")
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

  @Flag(
    help: ArgumentHelp(
      "Under MPI: batch norms normalise with the global batch's statistics, as PyTorch's "
        + "SyncBatchNorm (default: each process its own slice's; rank 0's running statistics "
        + "saved)."))
  var syncBatchNorm = false

  @Option(help: ArgumentHelp("Under MPI: megabytes of gradients per all-reduce bucket.", valueName: "MB"))
  var bucketMb = 8.0

  @Flag(help: "Under MPI: sum the gradients after the backward pass instead of during it (to measure the overlap).")
  var noOverlap = false

  @Option(
    help: ArgumentHelp(
      "Under MPI: microseconds between a progress thread's MPI calls while sums are in flight "
        + "(0: none).", valueName: "US"))
  var progressUs = 100

  func validate() throws {
    guard epochs >= 1, batch >= 1, threads >= 1 else {
      throw ValidationError("--epochs, --batch and --threads must be at least 1")
    }
    guard lr.isFinite, lr > 0 else { throw ValidationError("--lr must be a positive number") }
    guard OptimizerSettings.Kind(rawValue: optimizer) != nil else {
      throw ValidationError("--optimizer must be sgd, adam or adamw")
    }
    guard ["none", "step", "cosine"].contains(schedule) else {
      throw ValidationError("--schedule must be none, step or cosine")
    }
    guard momentum >= 0, weightDecay >= 0, stepSize >= 1, gamma > 0 else {
      throw ValidationError("--momentum and --weight-decay must be ≥ 0, --step-size ≥ 1, --gamma > 0")
    }
    if let clip, !(clip > 0) { throw ValidationError("--clip must be positive") }
    guard bucketMb > 0, bucketMb.isFinite, progressUs >= 0 else {
      throw ValidationError("--bucket-mb must be positive, --progress-us at least 0")
    }
    guard !(resume && force) else {
      throw ValidationError("--resume continues OUT and --force replaces it: choose one")
    }
  }

  var trainingOptions: TrainingOptions {
    let kind = OptimizerSettings.Kind(rawValue: optimizer) ?? .sgd
    return TrainingOptions(
      epochs: epochs, batch: batch, learningRate: lr,
      optimizer: OptimizerSettings(kind: kind, momentum: kind == .sgd ? momentum : 0, weightDecay: weightDecay),
      schedule: schedule == "step"
        ? .step(every: stepSize, gamma: gamma) : schedule == "cosine" ? .cosine(tMax: epochs, minimum: 0) : .constant,
      clipNorm: clip, seed: seed, threads: threads, cache: cache)
  }

  func run() throws {
    guard let launched = Communicator.launched() else {
      try train(parallel: nil)
      return
    }
    // One process of a data-parallel run.
    let communicator = try Communicator.world()
    guard communicator.size == launched.count else {
      throw GlassboxError(
        .input,
        "\(launched.source) but Open MPI sees \(communicator.size) process"
          + (communicator.size == 1 ? "" : "es")
          + ": the launcher did not connect the processes (under Slurm start them "
          + "with srun --mpi=pmix, or with mpirun)")
    }
    let parallel = DataParallel(
      communicator: communicator,
      settings: DataParallelSettings(
        bucketBytes: Int(bucketMb * 1_048_576), overlap: !noOverlap, syncBatchNorm: syncBatchNorm,
        progressMicroseconds: progressUs))
    do {
      try train(parallel: parallel)
    } catch let refused as RefusedRun {
      // Every process refused alike; rank 0 says why, and all leave the run in order.
      if communicator.rank == 0 { FileHandle.standardError.write(Data("Error: \(refused)\n".utf8)) }
      communicator.finalize()
      throw ExitCode(1)
    } catch {
      // This process alone stopped: say so, and end the others, which would wait for it.
      FileHandle.standardError.write(
        Data(
          ("glassbox train (rank \(communicator.rank) of \(communicator.size)): Error: "
            + GlassboxCommand.message(for: error) + "\n").utf8))
      communicator.abort(code: 1)
    }
    communicator.finalize()
  }

  /// Trains, alone (`parallel` nil) or as one process of a data-parallel run.
  func train(parallel: DataParallel?) throws {
    let run: TrainingRun
    let model: Model
    do {
      let exists = FileManager.default.fileExists(atPath: output)
      let sameAsInput = (output as NSString).standardizingPath == (options.spec as NSString).standardizingPath
      if resume, !exists {
        throw GlassboxError(.file, "--resume: \(output) does not exist; there is no run to continue")
      }
      if exists, !resume, !force, !sameAsInput {
        throw GlassboxError(.file, "\(output) exists: --resume continues its run, --force replaces it")
      }
      // A .model keeps its symbols (--bind sizes them for this run only); a spec is compiled
      // with them, its weights drawn from the seed.
      let isModel = Model.isModelFile(options.spec)
      model =
        isModel
        ? try Model(contentsOf: options.spec)
        : try Model(contentsOf: options.spec, bindings: options.bindingMap, weights: Model.WeightOptions(seed: seed))
      run = try TrainingRun(
        model: model, bindings: isModel ? options.bindingMap : [:], data: data,
        options: trainingOptions, parallel: parallel)
      if resume { try run.resume(from: output) }
      try parallel?.start(.success(run.agreement + [("checkpoint", "\(run.epochsDone)")]), names: Self.agreementNames)
    } catch let error as RefusedRun {
      throw error
    } catch {
      guard let parallel else { throw error }
      try parallel.start(.failure(error), names: Self.agreementNames)
      throw error
    }
    let speaks = (parallel?.rank ?? 0) == 0
    if speaks {
      for note in run.notes { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
    }
    let progress = ProgressPrinter(terminal: isatty(STDERR_FILENO) == 1, parallel: parallel != nil)
    let processes = parallel.map { ", \($0.size) processes × \(batch / $0.size) examples" } ?? ""
    if speaks {
      print(
        "training \(model.name) on \(run.data.train.count) examples of \(run.classes.count) classes"
          + " (validation \(run.data.validation?.count ?? 0), test \(run.data.test?.count ?? 0)); "
          + "batch \(batch)\(processes), \(optimizer) lr \(lr), seed \(seed), \(threads) threads"
          + (run.epochsDone > 0 ? "; resuming after epoch \(run.epochsDone)" : ""))
    }
    fflush(nil)
    let wrote: Bool
    do {
      wrote = try run.run(output: output) { event in if speaks { progress.show(event, output: output) } }
    } catch {
      progress.finishLine()
      throw error
    }
    guard wrote, speaks else { return }
    print(
      "wrote \(output), \(TrainingRun.curvesPath(output)), \(TrainingRun.historyPath(output)) and \(TrainingRun.statePath(output))"
    )
  }

  /// What the processes of a data-parallel run compare at its start.
  static let agreementNames = TrainingRun.agreementNames + ["checkpoint"]
}

/// Progress on standard error through `ProgressReporter` (steps of the epoch: a bar redrawn in
/// place on a terminal, a line every few seconds otherwise); standard output gets the epoch
/// lines either way.
final class ProgressPrinter {
  let terminal: Bool
  /// Whether the epoch lines give the all-reduce's share of the step time.
  let parallel: Bool
  /// The current epoch's steps.
  var steps: ProgressReporter?

  init(terminal: Bool, parallel: Bool = false) {
    self.terminal = terminal
    self.parallel = parallel
  }

  func show(_ event: TrainingEvent, output: String) {
    switch event {
    case .step(let epoch, let epochs, let step, let count, let loss, let accuracy, let rate, let eta):
      let label = "epoch \(epoch)/\(epochs) steps"
      if steps?.label != label { steps = ProgressReporter(label: label, total: count, isTerminal: terminal) }
      steps?.update(
        done: step,
        note: String(
          format: "loss %.4f  acc %.1f%%  %.0f ex/s  ETA %@", loss, accuracy * 100,
          rate, Self.duration(eta)))
    case .epoch(let r):
      finishLine()
      var line = String(format: "epoch %d: train loss %.4f acc %.2f%%", r.epoch, r.trainLoss, r.trainAccuracy * 100)
      if let l = r.validationLoss, let a = r.validationAccuracy {
        line += String(format: ", val loss %.4f acc %.2f%%", l, a * 100)
      }
      line += String(
        format: ", lr %.4g, %.1f s (%.0f%% waiting on data)", r.learningRate, r.seconds,
        100 * r.dataWaitSeconds / max(r.seconds, 1e-9))
      if parallel {
        line += String(
          format: ", step %.1f ms (all-reduce %.1f ms: %.1f ms of it waiting after the backward pass)",
          1000 * r.stepSeconds / Double(max(r.steps, 1)),
          1000 * r.allReduceSeconds / Double(max(r.steps, 1)),
          1000 * r.allReduceWaitSeconds / Double(max(r.steps, 1)))
      }
      line += "; checkpoint \(output)"
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
    return s >= 3600
      ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
  }
}
