import Foundation
import GlassboxFormat
import GlassboxIR

/// How to train: the loop's settings. Together with the data and the initial weights they fix
/// every bit of the result (for one machine and thread count).
public struct TrainingSettings: Sendable, Equatable {
  public var epochs: Int
  public var batchSize: Int
  public var learningRate: Double
  public var optimizer: OptimizerSettings
  public var schedule: LearningRateSchedule
  /// Maximum global gradient norm (nil: no clipping).
  public var clipNorm: Double?
  public var seed: UInt64

  public init(
    epochs: Int, batchSize: Int, learningRate: Double, optimizer: OptimizerSettings,
    schedule: LearningRateSchedule = .constant, clipNorm: Double? = nil, seed: UInt64 = 0
  ) {
    self.epochs = epochs
    self.batchSize = batchSize
    self.learningRate = learningRate
    self.optimizer = optimizer
    self.schedule = schedule
    self.clipNorm = clipNorm
    self.seed = seed
  }

  /// Everything but the epoch count, as text: a resumed run must match it.
  public var fingerprint: String {
    "batch=\(batchSize) lr=\(learningRate) optimizer=\(optimizer.kind.rawValue) momentum=\(optimizer.momentum) "
      + "weight_decay=\(optimizer.weightDecay) betas=\(optimizer.beta1),\(optimizer.beta2) eps=\(optimizer.epsilon) "
      + "schedule=\(schedule) clip=\(clipNorm.map { "\($0)" } ?? "none") seed=\(seed)"
  }
}

/// One epoch's numbers.
public struct EpochRecord: Sendable, Equatable {
  public var epoch: Int
  public var learningRate: Double
  public var trainLoss: Double
  public var trainAccuracy: Double
  public var validationLoss: Double?
  public var validationAccuracy: Double?
  public var seconds: Double
  /// Seconds of the epoch's training steps spent waiting for examples (decoding media).
  public var dataWaitSeconds: Double = 0
  /// Steps of the epoch and their seconds (forward, backward, update; in a data-parallel run
  /// the all-reduce too); of them, seconds in MPI, and seconds waiting for sums after the
  /// backward pass. Not written to the history.
  public var steps = 0
  public var stepSeconds = 0.0
  public var allReduceSeconds = 0.0
  public var allReduceWaitSeconds = 0.0
}

/// What the trainer tells its caller as it goes.
public enum TrainingEvent {
  /// After each step: running means over the epoch so far.
  case step(
    epoch: Int, epochs: Int, step: Int, steps: Int, loss: Double, accuracy: Double,
    examplesPerSecond: Double, etaSeconds: Double)
  /// After each epoch (checkpoint written).
  case epoch(EpochRecord)
  /// The test split at the end.
  case test(loss: Double, accuracy: Double)
  /// Anything else worth a line.
  case note(String)
}

/// The training loop: seeded shuffles, mini-batches, dropout masks, optimizer updates,
/// running statistics, validation per epoch, checkpoints written atomically, resume.
///
/// Files, beside `output` (a `.model`):
/// - `output` — the model with the weights after the last finished epoch and the labels;
/// - `output.state.safetensors` — optimizer moments (`optimizer/<param>/<slot>`) and, in the
///   metadata, the epochs done, the step count, the settings and the history;
/// - `output.history.json` and `output.curves.svg` — the curves.
///
/// Randomness is a pure function of the seed, the epoch and the step (`Sampling`), so the
/// state that resuming needs is only the epoch count: a resumed run is bit-identical.
public final class Trainer {
  public let settings: TrainingSettings
  public let backend: any TrainingBackend
  public let data: TrainingData
  /// The model as stored in checkpoints (graph, labels, provenance); weights are replaced.
  public private(set) var model: ModelContents
  /// Every parameter and buffer by name.
  public private(set) var weights: [String: Tensor]
  public private(set) var optimizer: Optimizer
  public private(set) var history: [EpochRecord] = []
  /// Epochs finished.
  public private(set) var epochsDone = 0
  /// The processes of a data-parallel run (nil: this process alone). Each takes its slice of
  /// every global batch of `settings.batchSize` (the backend is compiled for the slice);
  /// rank 0 evaluates and writes the files.
  public let parallel: DataParallel?
  private let trainable: [String]

  /// Whether this process writes the files (rank 0, or the only process).
  public var isWriter: Bool { (parallel?.rank ?? 0) == 0 }

  public init(
    model: ModelContents, backend: any TrainingBackend, data: TrainingData, settings: TrainingSettings,
    parallel: DataParallel? = nil
  ) throws {
    guard settings.epochs >= 0, settings.batchSize >= 1, settings.learningRate >= 0, settings.learningRate.isFinite
    else {
      throw TrainingError("training: epochs must be ≥ 0, the batch size ≥ 1 and the learning rate a finite number ≥ 0")
    }
    if let parallel, backend.batchSize * parallel.size != settings.batchSize {
      throw TrainingError(
        "training: the backend's batch of \(backend.batchSize) times \(parallel.size) processes is "
          + "not the global batch of \(settings.batchSize)")
    }
    if let classes = model.graph.labelCount, classes != data.classes.count {
      throw TrainingError(
        file: data.train.root,
        "has \(data.classes.count) classes (\(data.classes.joined(separator: ", "))) but the model has \(classes) outputs"
      )
    }
    self.model = model
    self.backend = backend
    self.data = data
    self.settings = settings
    self.parallel = parallel
    optimizer = Optimizer(settings.optimizer)
    var weights: [String: Tensor] = [:]
    for (p, w) in zip(model.graph.parameters, model.weights) { weights[p.name] = w }
    self.weights = weights
    trainable = model.graph.parameters.filter { $0.role == .trainable }.map(\.name)
    self.model.labels = data.classes
    self.model.provenance.stamp(specText: nil)
    if let parallel, parallel.settings.syncBatchNorm { try backend.synchronizeBatchNorm(parallel.batchNormSum()) }
  }

  /// Paths of the files beside `output`.
  public static func statePath(_ output: String) -> String { output + ".state.safetensors" }
  public static func historyPath(_ output: String) -> String { output + ".history.json" }
  public static func curvesPath(_ output: String) -> String { output + ".curves.svg" }

  /// Restores weights, optimizer state and history from a checkpoint written by `run`.
  public func resume(from output: String) throws {
    let loaded: ModelFile
    do {
      loaded = try ModelFile.load(output, checkingWeights: true)
    } catch {
      throw TrainingError("cannot resume: \(error)")
    }
    guard loaded.graph.parameters.map(\.name) == model.graph.parameters.map(\.name) else {
      throw TrainingError(file: output, "cannot resume: its parameters differ from the model being trained")
    }
    let statePath = Self.statePath(output)
    let state: SafeTensorsFile
    do {
      state = try SafeTensors.read(statePath)
    } catch {
      throw TrainingError("cannot resume: \(error)")
    }
    guard let done = state.metadata["epochs_done"].flatMap(Int.init),
      let steps = state.metadata["step_count"].flatMap(Int.init)
    else { throw TrainingError(file: statePath, "cannot resume: metadata lacks epochs_done or step_count") }
    guard state.metadata["settings"] == settings.fingerprint else {
      throw TrainingError(
        file: statePath,
        "cannot resume with different settings: the checkpoint has '\(state.metadata["settings"] ?? "")', this run '\(settings.fingerprint)'"
      )
    }
    if let epochs = loaded.provenance.training?.epochs, epochs != done {
      throw TrainingError(
        file: output,
        "cannot resume: the model holds epoch \(epochs) but \(statePath) epoch \(done) (a run stopped while writing them); resume from a copy of both or start again with --force"
      )
    }
    for (i, p) in loaded.graph.parameters.enumerated() { weights[p.name] = loaded.weight(ofParameter: i) }
    var buffers: [(name: String, values: [Float])] = []
    for t in state.tensors where t.name.hasPrefix("optimizer/") {
      buffers.append((String(t.name.dropFirst("optimizer/".count)), t.tensor.floats))
    }
    optimizer.restore(stepCount: steps, buffers: buffers)
    history = Self.decodeHistory(state.metadata["history"] ?? "")
    epochsDone = done
    // The record of the epochs done (and of the test split, when the run got that far).
    model.provenance.training = loaded.provenance.training
  }

  /// Trains from `epochsDone` to `settings.epochs`, writing a checkpoint to `output` after each
  /// epoch; then evaluates the test split. A non-finite loss stops the run with an error; the
  /// last checkpoint stays as it was. A resumed run that has nothing left to do leaves `output`
  /// as it is, byte for byte (unless it stopped before recording the test split: that is done).
  /// Returns whether it wrote `output`.
  @discardableResult
  public func run(output: String, report: (TrainingEvent) -> Void) throws -> Bool {
    // B examples per global batch; this process takes `local` of them.
    let B = settings.batchSize, local = backend.batchSize
    let train = data.train
    guard train.count > 0 else { throw TrainingError(file: train.root, "no training examples") }
    if let parallel {
      TerminationNotice.install(rank: parallel.rank, size: parallel.size, output: output, epochsDone: epochsDone)
    }
    for note in data.notes { report(.note(note)) }
    let testRecorded = model.provenance.training?.metrics.contains { $0.name == "test_loss" } == true
    if epochsDone >= settings.epochs, epochsDone > 0, testRecorded || (data.test?.count ?? 0) == 0 {
      report(.note("\(output): already trained for \(epochsDone) epochs; nothing to do"))
      return false
    }
    while epochsDone < settings.epochs {
      let epoch = epochsDone
      let start = DispatchTime.now().uptimeNanoseconds
      let lr = settings.schedule.rate(epoch: epoch, base: settings.learningRate)
      let order = Sampling.order(count: train.count, seed: settings.seed, epoch: epoch)
      let batches = Sampling.batches(order, batchSize: B, keepPartial: train.count < B)
      train.prefetch(batches.flatMap { parallel?.slice($0, local: local) ?? $0 })
      let waitedBefore = train.waitSeconds, skippedBefore = train.skipped.count
      var lossSum = 0.0, correct = 0, seen = 0
      var stepNanoseconds: UInt64 = 0
      parallel?.communicationSeconds = 0
      parallel?.waitSeconds = 0
      for (s, global) in batches.enumerated() {
        let indices = parallel?.slice(global, local: local) ?? global
        var batch = try train.batch(indices, size: local)
        // Every example of it unreadable (skipped): this process alone skips it; in a
        // data-parallel run every process takes part in every step (and adds nothing).
        if parallel == nil { guard batch.count > 0 else { continue } }
        if batch.count > 0, batch.count < indices.count { batch = batch.repeatingRows(upTo: indices.count) }
        let result: StepResult
        let stepStart = DispatchTime.now().uptimeNanoseconds
        defer { stepNanoseconds += DispatchTime.now().uptimeNanoseconds - stepStart }
        do {
          result = try step(batch, epoch: epoch, step: s, learningRate: lr)
        } catch let error as NonFiniteLoss {
          throw TrainingError(
            "loss is \(error.loss) at epoch \(epoch + 1), step \(s + 1) (learning rate \(lr)); stopped. "
              + (epochsDone > 0
                ? "The last good checkpoint (epoch \(epochsDone)) is kept in \(output)." : "Nothing was written."))
        }
        if let totals = result.totals {
          (lossSum, correct, seen) = (lossSum + totals.lossSum, correct + totals.correct, seen + totals.count)
        } else {
          lossSum += result.loss * Double(batch.count)
          correct += Self.correct(result.logits, labels: batch.labels, count: batch.count)
          seen += batch.count
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let rate = Double(seen) / max(elapsed, 1e-9)
        let remainingSteps = (batches.count - s - 1) + (settings.epochs - epoch - 1) * batches.count
        report(
          .step(
            epoch: epoch + 1, epochs: settings.epochs, step: s + 1, steps: batches.count,
            loss: lossSum / Double(seen), accuracy: Double(correct) / Double(seen),
            examplesPerSecond: rate, etaSeconds: Double(remainingSteps * B) / max(rate, 1e-9)))
      }
      var record = EpochRecord(
        epoch: epoch + 1, learningRate: lr, trainLoss: lossSum / Double(max(seen, 1)),
        trainAccuracy: Double(correct) / Double(max(seen, 1)), validationLoss: nil,
        validationAccuracy: nil, seconds: 0, dataWaitSeconds: train.waitSeconds - waitedBefore)
      record.steps = batches.count
      record.stepSeconds = Double(stepNanoseconds) / 1e9
      record.allReduceSeconds = parallel?.communicationSeconds ?? 0
      record.allReduceWaitSeconds = parallel?.waitSeconds ?? 0
      for note in train.skipped.dropFirst(skippedBefore) { report(.note(note)) }
      guard seen > 0 else {
        throw TrainingError(file: train.root, "no readable training examples (every one was skipped)")
      }
      if let validation = data.validation, validation.count > 0, isWriter {
        let v = try evaluate(validation)
        guard v.loss.isFinite else {
          throw TrainingError(
            "validation loss is \(v.loss) after epoch \(epoch + 1); stopped. "
              + (epochsDone > 0
                ? "The last good checkpoint (epoch \(epochsDone)) is kept in \(output)." : "Nothing was written."))
        }
        record.validationLoss = v.loss
        record.validationAccuracy = v.accuracy
      }
      record.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
      history.append(record)
      epochsDone += 1
      if isWriter { try TerminationNotice.whileWriting(epochsDone: epochsDone) { try writeCheckpoint(output) } }
      report(.epoch(record))
    }
    if let test = data.test, test.count > 0, isWriter {
      let t = try evaluate(test)
      report(.test(loss: t.loss, accuracy: t.accuracy))
      model.provenance.training?.metrics += [("test_loss", t.loss), ("test_accuracy", t.accuracy)]
      try TerminationNotice.whileWriting(epochsDone: epochsDone) { try writeModel(output) }
    }
    return true
  }

  struct NonFiniteLoss: Error { var loss: Double }

  /// One training step on `batch`: dropout masks for (epoch, step), forward and backward,
  /// clipping, the optimizer's update of every trainable parameter and the batch-norm
  /// updates. A non-finite loss throws before anything is updated.
  @discardableResult
  public func step(_ batch: Batch, epoch: Int, step: Int, learningRate: Double) throws -> StepResult {
    var masks: [String: Tensor] = [:]
    for (m, mask) in backend.dropoutMasks.enumerated() {
      let count = mask.shape.reduce(1, *)
      if let parallel, parallel.size > 1, mask.shape.first == backend.batchSize {
        // The global batch's mask, whose rows of this process's slice it takes: as one
        // process running the global batch would draw it.
        let all = Sampling.dropoutMask(
          count: count * parallel.size, p: mask.p, seed: settings.seed, epoch: epoch,
          step: step, index: m)
        let mine = (parallel.rank * count)..<((parallel.rank + 1) * count)
        masks[mask.input] = Tensor(shape: mask.shape, f32: Array(all[mine]))
      } else {
        masks[mask.input] = Tensor(
          shape: mask.shape,
          f32: Sampling.dropoutMask(
            count: count, p: mask.p, seed: settings.seed, epoch: epoch, step: step, index: m))
      }
    }
    if let parallel { return try parallelStep(batch, masks: masks, parallel: parallel, learningRate: learningRate) }
    let result = try backend.step(batch, masks: masks, weights: weights)
    guard result.loss.isFinite else { throw NonFiniteLoss(loss: result.loss) }
    try apply(result, learningRate: learningRate)
    return result
  }

  /// A step of a data-parallel run: this process's slice forward and backward, its gradients
  /// (scaled by 1/N; by 0 when its slice had no readable example) summed over the processes
  /// in buckets started during the backward pass (`DataParallelSettings.overlap`), then the
  /// loss, the correct count and the example count summed, and the update every process makes
  /// alike. Under `syncBatchNorm` the batch norms summed their statistics during the passes,
  /// so every process's batch statistics are the global batch's already. `totals` holds the
  /// global batch's numbers; a global batch without a readable example updates nothing.
  ///
  /// The 1/N: each process's loss is the mean over its slice, so its gradients are N times
  /// its share of the global batch's mean loss. A synchronised batch norm's backward sums dy
  /// and dy·x̂ of those N-times gradients over the processes, which keeps every dx N times its
  /// share too; its weight and bias gradients are its own slice's sums, and the buckets sum
  /// them over the processes with the other gradients, so they are counted once.
  func parallelStep(
    _ batch: Batch, masks: [String: Tensor], parallel: DataParallel, learningRate: Double
  ) throws
    -> StepResult
  {
    let communicator = parallel.communicator
    parallel.prepare(parameters: bucketOrder.map { ($0, weights[$0]?.count ?? 0) })
    guard let buckets = parallel.buckets else { throw TrainingError("data-parallel step without buckets") }
    buckets.begin(scale: batch.count > 0 ? 1 / Float(parallel.size) : 0)
    parallel.stepHasExamples = batch.count > 0
    var mpiNanoseconds: UInt64 = 0
    let overlap = parallel.settings.overlap
    let stepStart = DispatchTime.now().uptimeNanoseconds
    var arrivals: [(UInt64, Int)] = []
    var result = try backend.step(batch, masks: masks, weights: weights) { name, values in
      let start = DispatchTime.now().uptimeNanoseconds
      arrivals.append((start, values.count * 4))
      buckets.add(name, values, communicator: communicator, start: overlap)
      mpiNanoseconds += DispatchTime.now().uptimeNanoseconds - start
    }
    let waitStart = DispatchTime.now().uptimeNanoseconds
    try buckets.finish(into: &result.gradients, communicator: communicator)
    let count = Double(batch.count)
    var numbers = [
      batch.count > 0 ? result.loss * count : 0,
      Double(Self.correct(result.logits, labels: batch.labels, count: batch.count)), count,
    ]
    communicator.sum(&numbers)
    let waitEnd = DispatchTime.now().uptimeNanoseconds
    let waited = waitEnd - waitStart
    func milliseconds(_ t: UInt64) -> Double { Double(t &- stepStart) / 1e6 }
    parallel.lastStep = StepTimeline(
      backwardEnd: milliseconds(waitStart), waitEnd: milliseconds(waitEnd),
      gradientComplete: arrivals.map { (milliseconds($0.0), $0.1) },
      bucketBytes: buckets.sizes.map { $0 * 4 },
      bucketComplete: buckets.completed.map(milliseconds))
    parallel.waitSeconds += Double(waited) / 1e9
    parallel.communicationSeconds += Double(waited + mpiNanoseconds) / 1e9
    result.totals = (numbers[0], Int(numbers[1]), Int(numbers[2]))
    guard numbers[2] > 0 else { return result }
    result.loss = numbers[0] / numbers[2]
    guard result.loss.isFinite else { throw NonFiniteLoss(loss: result.loss) }
    try apply(result, learningRate: learningRate, statisticsCount: parallel.settings.syncBatchNorm ? parallel.size : 1)
    return result
  }

  /// Mean cross-entropy and accuracy of the model (inference mode) on `source`.
  public func evaluate(_ source: any ExampleSource) throws -> (loss: Double, accuracy: Double) {
    let B = backend.batchSize
    var lossSum = 0.0, correct = 0
    try backend.beginEvaluation(weights: weights)
    source.prefetch(Array(0..<source.count))
    var seen = 0
    for indices in Sampling.batches(Array(0..<source.count), batchSize: B, keepPartial: true) {
      let batch = try source.batch(indices, size: B)
      guard batch.count > 0 else { continue }
      seen += batch.count
      let logits = try backend.predict(batch)
      lossSum += Self.crossEntropySum(logits, labels: batch.labels, count: batch.count)
      correct += Self.correct(logits, labels: batch.labels, count: batch.count)
    }
    return (lossSum / Double(max(seen, 1)), Double(correct) / Double(max(seen, 1)))
  }

  /// The trainable parameters in the order their gradients fill the all-reduce buckets: the
  /// order the backend completes them, those it does not name after them in reverse
  /// declaration order. Every process has the same (the same program).
  public var bucketOrder: [String] {
    let known = backend.gradientOrder.filter { trainable.contains($0) }
    return known + trainable.reversed().filter { !known.contains($0) }
  }

  /// Clips, updates every trainable parameter, and applies the batch-norm updates (their
  /// statistics over `statisticsCount` processes' batches).
  func apply(_ result: StepResult, learningRate: Double, statisticsCount: Int = 1) throws {
    var gradients: [[Float]] = []
    for name in trainable {
      guard let g = result.gradients[name] else { continue }
      guard g.count == weights[name]?.count else {
        throw TrainingError(
          "gradient of '\(name)' has \(g.count) elements; the parameter has \(weights[name]?.count ?? 0)")
      }
      gradients.append(g)
    }
    if let clip = settings.clipNorm { clipGradientNorm(&gradients, maxNorm: clip) }
    optimizer.beginStep()
    var i = 0
    for name in trainable where result.gradients[name] != nil {
      var values = takeFloats(name)
      optimizer.update(
        name, parameter: &values, gradient: gradients[i], learningRate: learningRate,
        threads: backend.threads)
      putFloats(name, values)
      i += 1
    }
    for u in backend.batchNormUpdates {
      guard let mean = result.statistics[u.batchMean], let variance = result.statistics[u.batchVariance] else {
        throw TrainingError("training step did not produce '\(u.batchMean)' and '\(u.batchVariance)'")
      }
      var runningMean = takeFloats(u.runningMean), runningVariance = takeFloats(u.runningVariance)
      updateRunningStatistics(
        runningMean: &runningMean, runningVariance: &runningVariance, batchMean: mean,
        batchVariance: variance, count: (u.count ?? 0) * statisticsCount)
      putFloats(u.runningMean, runningMean)
      putFloats(u.runningVariance, runningVariance)
      if var tracked = weights[u.batchesTracked], case .i64(var n) = tracked.storage {
        for j in n.indices { n[j] += 1 }
        tracked.storage = .i64(n)
        weights[u.batchesTracked] = tracked
      }
    }
  }

  /// Moves a parameter's f32 elements out of `weights` (no copy), to be put back.
  private func takeFloats(_ name: String) -> [Float] {
    guard var t = weights[name] else { return [] }
    weights[name] = nil
    let values = t.floats
    t.storage = .f32([])
    return values
  }

  private func putFloats(_ name: String, _ values: [Float]) {
    let shape =
      model.graph.parameters.first { $0.name == name }?.type.shape.map { $0.staticValue ?? 0 } ?? [values.count]
    weights[name] = Tensor(shape: shape, f32: values)
  }

  // MARK: Files

  func writeModel(_ output: String) throws {
    model.weights = model.graph.parameters.map { weights[$0.name] ?? Tensor(zeros: $0.type.dtype, shape: []) }
    do {
      try ModelFile.write(model, to: output)
    } catch {
      throw TrainingError(error.description)
    }
  }

  func writeCheckpoint(_ output: String) throws {
    var training = model.provenance.training ?? Training()
    training.optimizer = settings.optimizer.kind.rawValue
    training.learningRate = settings.learningRate
    training.epochs = epochsDone
    training.batchSize = settings.batchSize
    training.seed = settings.seed
    training.examples = data.train.count
    if let last = history.last {
      training.metrics = [("train_loss", last.trainLoss), ("train_accuracy", last.trainAccuracy)]
      if let l = last.validationLoss, let a = last.validationAccuracy {
        training.metrics += [("val_loss", l), ("val_accuracy", a)]
      }
    }
    model.provenance.training = training
    // State first, then the model: a crash in between leaves a state newer than the model,
    // which `resume` detects by the epoch count both record.
    let snapshot = optimizer.snapshot
    let state = SafeTensorsFile(
      tensors: snapshot.buffers.map {
        NamedTensor("optimizer/" + $0.name, Tensor(shape: [$0.values.count], f32: $0.values))
      },
      metadata: [
        "epochs_done": "\(epochsDone)", "step_count": "\(snapshot.stepCount)", "settings": settings.fingerprint,
        "seed": "\(settings.seed)", "history": Self.encodeHistory(history),
      ])
    do {
      try SafeTensors.write(state, to: Self.statePath(output))
    } catch {
      throw TrainingError(error.description)
    }
    try writeModel(output)
    try writeAtomically(Self.historyPath(output), Self.encodeHistory(history) + "\n")
    try writeAtomically(Self.curvesPath(output), Curves.svg(history))
  }

  func writeAtomically(_ path: String, _ text: String) throws {
    do {
      try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
      throw TrainingError(file: path, "cannot write: \(error.localizedDescription)")
    }
  }

  // MARK: Numbers

  static func correct(_ logits: [Float], labels: Tensor, count: Int) -> Int {
    guard case .i64(let y) = labels.storage, count > 0 else { return 0 }
    let C = logits.count / max(labels.count, 1)
    var n = 0
    for r in 0..<count {
      var best = 0
      for c in 1..<max(C, 1) where logits[r * C + c] > logits[r * C + best] { best = c }
      if Int64(best) == y[r] { n += 1 }
    }
    return n
  }

  static func crossEntropySum(_ logits: [Float], labels: Tensor, count: Int) -> Double {
    guard case .i64(let y) = labels.storage else { return .nan }
    let C = logits.count / max(labels.count, 1)
    var sum = 0.0
    for r in 0..<count {
      let row = logits[(r * C)..<(r * C + C)].map(Double.init)
      let m = row.max() ?? 0
      let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
      sum += lse - row[Int(y[r])]
    }
    return sum
  }

  // MARK: History

  static func encodeHistory(_ history: [EpochRecord]) -> String {
    func number(_ x: Double?) -> String { x.map { $0.isFinite ? "\($0)" : "null" } ?? "null" }
    let rows = history.map {
      "{\"epoch\":\($0.epoch),\"learning_rate\":\(number($0.learningRate)),\"train_loss\":\(number($0.trainLoss)),"
        + "\"train_accuracy\":\(number($0.trainAccuracy)),\"val_loss\":\(number($0.validationLoss)),"
        + "\"val_accuracy\":\(number($0.validationAccuracy)),\"seconds\":\(number($0.seconds)),"
        + "\"data_wait_seconds\":\(number($0.dataWaitSeconds))}"
    }
    return "[" + rows.joined(separator: ",") + "]"
  }

  static func decodeHistory(_ text: String) -> [EpochRecord] {
    guard let rows = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]] else { return [] }
    return rows.map { r in
      EpochRecord(
        epoch: r["epoch"] as? Int ?? 0, learningRate: r["learning_rate"] as? Double ?? 0,
        trainLoss: r["train_loss"] as? Double ?? .nan, trainAccuracy: r["train_accuracy"] as? Double ?? .nan,
        validationLoss: r["val_loss"] as? Double, validationAccuracy: r["val_accuracy"] as? Double,
        seconds: r["seconds"] as? Double ?? 0, dataWaitSeconds: r["data_wait_seconds"] as? Double ?? 0)
    }
  }
}
