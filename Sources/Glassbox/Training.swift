import Foundation
import GlassboxFormat
import GlassboxIR
import GlassboxPasses
import GlassboxTraining

@_exported import enum GlassboxTraining.TrainingEvent
@_exported import struct GlassboxTraining.EpochRecord
@_exported import struct GlassboxTraining.OptimizerSettings
@_exported import enum GlassboxTraining.LearningRateSchedule

/// How a model is trained (PyTorch's semantics for the optimizer, schedule and clipping).
public struct TrainingOptions: Sendable {
  public var epochs: Int
  /// Examples per step.
  public var batch: Int
  public var learningRate: Double
  public var optimizer: OptimizerSettings
  public var schedule: LearningRateSchedule
  /// Clip gradients to this global L2 norm.
  public var clipNorm: Double?
  /// Seed of the initial weights (a spec), the shuffles and the dropout masks; also splits a
  /// spoken-language data set.
  public var seed: UInt64
  public var threads: Int
  /// Feature cache for raw media data sets.
  public var cache: String?

  public init(
    epochs: Int = 10, batch: Int = 32, learningRate: Double = 0.01,
    optimizer: OptimizerSettings = OptimizerSettings(kind: .sgd, momentum: 0.9, weightDecay: 0),
    schedule: LearningRateSchedule = .constant, clipNorm: Double? = nil, seed: UInt64 = 0, threads: Int = 2,
    cache: String? = nil
  ) {
    self.epochs = epochs
    self.batch = batch
    self.learningRate = learningRate
    self.optimizer = optimizer
    self.schedule = schedule
    self.clipNorm = clipNorm
    self.seed = seed
    self.threads = threads
    self.cache = cache
  }

  var settings: TrainingSettings {
    TrainingSettings(
      epochs: epochs, batchSize: batch, learningRate: learningRate, optimizer: optimizer, schedule: schedule,
      clipNorm: clipNorm, seed: seed)
  }
}

/// A training run, set up and ready: the model to store (its class axis sized by the data),
/// the data, the compiled training step. `run` trains, writing after each epoch the model,
/// its checkpoint (`OUT.state.safetensors`), history and curves, each replaced atomically.
public final class TrainingRun {
  /// The trainer (weights, optimizer state, history).
  public let trainer: Trainer
  /// What opening the data noticed (skipped clips, a missing split), one line each.
  public let notes: [String]
  /// The data's classes, which become the model's labels.
  public var classes: [String] { trainer.data.classes }
  public var data: TrainingData { trainer.data }

  /// What the processes of a data-parallel run must agree on, by name: the model, the data,
  /// the settings and the number of processes (`DataParallel.start` compares them).
  public private(set) var agreement: [(name: String, value: String)] = []
  /// The names `agreement` has, in order.
  public static let agreementNames = ["model", "data", "training settings", "gradient order", "number of processes"]

  /// Sets up training of `model` on the data folder `data`: `DIR/{train,val,test}/<class>/*.npy`,
  /// an HMDB-51 folder or a folder per language (through the input's recipe). `bindings` size
  /// symbols for this run only (a `.model` keeps `B` and `T` symbolic); a class axis still
  /// symbolic is sized by the data. The model's own weights are the starting point.
  ///
  /// With `parallel`, this process is one of a data-parallel run: the program is compiled for
  /// its slice of each global batch of `options.batch` (which the processes must divide), and
  /// nothing is exchanged yet: the caller hands `agreement` (or the error) to
  /// `DataParallel.start` on every process.
  public init(
    model: Model, bindings: [String: Int] = [:], data dataPath: String, options: TrainingOptions,
    parallel: DataParallel? = nil
  ) throws(GlassboxError) {
    guard options.epochs >= 1, options.batch >= 1, options.threads >= 1 else {
      throw GlassboxError(.input, "epochs, batch and threads must be at least 1")
    }
    let processes = parallel?.size ?? 1
    guard options.batch % processes == 0 else {
      throw GlassboxError(
        .input,
        "batch \(options.batch) does not split evenly over \(processes) processes: give a "
          + "multiple of \(processes)")
    }
    let localBatch = options.batch / processes
    var graph = model.graph
    var provenance = model.provenance
    provenance.stamp(specText: model.source?.bytes)
    guard graph.inputs.count == 1, let inputID = graph.inputs.first else {
      throw GlassboxError(
        .unsupported, file: model.path, "training takes models with one input; \(graph.name) has \(graph.inputs.count)")
    }
    guard let logits = graph.outputs.first else {
      throw GlassboxError(.input, file: model.path, "the graph has no outputs")
    }
    let inputType = graph[inputID].type
    var runBindings = bindings

    // The data; the example shape is checked against the input's where it is known already.
    let perExample = inputType.shape.dropFirst().map { $0.substituting(runBindings).staticValue }
    let expected = perExample.allSatisfy { $0 != nil } ? perExample.map { $0 ?? 0 } : nil
    let trainingData = try withGlassboxErrors(file: dataPath) {
      try TrainingData.open(
        dataPath, exampleShape: expected, recipe: graph.recipes.first { $0.input == graph[inputID].name },
        cacheDirectory: options.cache, seed: options.seed)
    }
    notes = trainingData.notes

    // A class axis still symbolic is sized by the data (C = the number of classes).
    if let classAxis = graph[logits.value].type.shape.last, classAxis.staticValue == nil,
      classAxis.coefficient == 1, classAxis.symbols.count == 1
    {
      do {
        graph = try graph.bound([classAxis.symbols[0]: trainingData.classes.count])
      } catch {
        throw GlassboxError(
          .input, file: model.path,
          "cannot size \(classAxis.symbols[0]) to \(trainingData.classes.count) classes: \(error)")
      }
      provenance.bindings[classAxis.symbols[0]] = trainingData.classes.count
    }
    if let classes = graph.labelCount, classes != trainingData.classes.count {
      throw GlassboxError(
        .input, file: dataPath,
        "has \(trainingData.classes.count) classes (\(trainingData.classes.joined(separator: ", "))) but \(graph.name) has \(classes) outputs"
      )
    }
    if let first = inputType.shape.first, let fixed = first.substituting(runBindings).staticValue, fixed != localBatch {
      throw GlassboxError(.input, "batch \(localBatch): \(graph.name)'s input has a fixed batch of \(fixed)")
    }
    do {
      let shapes = [graph[inputID].name: [localBatch] + trainingData.train.exampleShape]
      let inferred = try graph.inferBindings(inputShapes: shapes)
      runBindings.merge(inferred) { given, _ in given }
    } catch {
      throw GlassboxError(
        .input, file: dataPath,
        "examples of shape \(trainingData.train.exampleShape) do not fit \(graph.name)'s input \(inputType): \(error)")
    }

    let weights = try model.parameterValues(for: graph)
    let contents = ModelContents(
      graph: graph, weights: graph.parameters.map { weights[$0.name] ?? Tensor(zeros: $0.type.dtype, shape: []) },
      labels: trainingData.classes, provenance: provenance)
    // Differentiation unrolls LSTMs over the time axis, so the step is made from the graph
    // with every symbol bound (the stored model keeps B and T symbolic).
    let bound: Graph
    do {
      bound = try graph.bound(runBindings)
    } catch {
      let text = runBindings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
      throw GlassboxError(.input, file: model.path, "cannot bind \(text): \(error)")
    }
    trainer = try withGlassboxErrors(file: model.path) {
      let step = try TrainingStepGraph.make(from: bound, logits: logits.name)
      let backend = try ProgramBackend(
        step: step, model: graph, bindings: runBindings, batchSize: localBatch,
        weights: weights, threads: options.threads)
      return try Trainer(
        model: contents, backend: backend, data: trainingData, settings: options.settings,
        parallel: parallel)
    }
    if let parallel {
      let listings =
        [trainingData.train.listingText]
        + [trainingData.validation, trainingData.test].map { $0?.listingText ?? "" }
      let settings =
        "\(options.settings.fingerprint) epochs=\(options.epochs) threads=\(options.threads) "
        + "\(parallel.settings)"
      agreement = [
        ("model", try model.fingerprint()),
        ("data", SHA256.hex(Array(listings.joined(separator: "\n--\n").utf8))),
        ("training settings", settings), ("gradient order", trainer.bucketOrder.joined(separator: ",")),
        ("number of processes", "\(parallel.size)"),
      ]
    }
  }

  /// Continues the run whose model and checkpoint are at `output` (same settings, bit for bit).
  public func resume(from output: String) throws(GlassboxError) {
    try withGlassboxErrors(file: output) { try trainer.resume(from: output) }
  }

  /// Epochs done so far (after `resume`, those of the checkpoint).
  public var epochsDone: Int { trainer.epochsDone }

  /// Trains to the settings' epoch count, writing `output` after each epoch; `events` sees each
  /// step, epoch, the test split's result and notes. Returns whether it wrote anything (a
  /// finished run resumed has nothing to do).
  @discardableResult
  public func run(output: String, events: (TrainingEvent) -> Void = { _ in }) throws(GlassboxError) -> Bool {
    try withGlassboxErrors(file: output) { try trainer.run(output: output, report: events) }
  }

  /// Where a run writes its checkpoint, history and curves beside `output`.
  public static func statePath(_ output: String) -> String { Trainer.statePath(output) }
  public static func historyPath(_ output: String) -> String { Trainer.historyPath(output) }
  public static func curvesPath(_ output: String) -> String { Trainer.curvesPath(output) }
}
