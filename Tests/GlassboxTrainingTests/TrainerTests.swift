import Foundation
import GlassboxFormat
import GlassboxIR
import GlassboxMedia
import Testing
@testable import GlassboxTraining

/// A hand-written softmax regression (logits = x Wᵀ + b, mean cross-entropy) as the training
/// backend: the loop's tests then need no compiled program.
final class SoftmaxRegression: TrainingBackend {
  let batchSize: Int
  let features: Int, classes: Int
  var dropoutMasks: [DropoutMask] { [] }
  var batchNormUpdates: [BatchNormUpdate] { [] }
  /// Multiplies the logits: a huge value makes the loss overflow (the NaN test).
  var logitScale: Float = 1

  init(batchSize: Int, features: Int, classes: Int) {
    self.batchSize = batchSize
    self.features = features
    self.classes = classes
  }

  func logits(_ x: [Float], _ weights: [String: Tensor]) -> [Float] {
    let w = weights["fc.weight"]?.floats ?? [], b = weights["fc.bias"]?.floats ?? []
    var out = [Float](repeating: 0, count: batchSize * classes)
    for r in 0..<batchSize {
      for c in 0..<classes {
        var s = b[c]
        for f in 0..<features { s += x[r * features + f] * w[c * features + f] }
        out[r * classes + c] = s * logitScale
      }
    }
    return out
  }

  func step(_ batch: Batch, masks: [String: Tensor], weights: [String: Tensor]) throws -> StepResult {
    let x = batch.inputs.floats
    let z = logits(x, weights)
    guard case .i64(let y) = batch.labels.storage else { throw TrainingError("labels") }
    var loss = 0.0
    var gw = [Float](repeating: 0, count: classes * features), gb = [Float](repeating: 0, count: classes)
    let n = Float(batchSize)
    for r in 0..<batchSize {
      let row = z[(r * classes)..<(r * classes + classes)]
      let m = row.max() ?? 0
      let e = row.map { exp($0 - m) }
      let total = e.reduce(0, +)
      loss += Double(log(total) + m - row[r * classes + Int(y[r])])
      for c in 0..<classes {
        let d = (e[c] / total - (Int64(c) == y[r] ? 1 : 0)) / n * logitScale
        gb[c] += d
        for f in 0..<features { gw[c * features + f] += d * x[r * features + f] }
      }
    }
    return StepResult(loss: loss / Double(batchSize), logits: z, gradients: ["fc.weight": gw, "fc.bias": gb])
  }

  var evaluationWeights: [String: Tensor] = [:]
  func beginEvaluation(weights: [String: Tensor]) throws { evaluationWeights = weights }
  func predict(_ batch: Batch) throws -> [Float] { logits(batch.inputs.floats, evaluationWeights) }
}

enum TinyData {
  static let spec = """
    graph tiny(x: f32[B, 4]) -> (logits: f32[B, C]) {
      fc = linear(x, out: C)
      logits = fc
    }
    """

  static func model(classes: Int = 3) throws -> ModelContents {
    let graph = try #require(
      Spec.compile(SourceText(fileName: "tiny.graph", text: spec), bindings: ["C": classes]).graph)
    return ModelContents(graph: graph, weights: try Initialization.weights(for: graph, seed: 1))
  }

  static func temporaryDirectory() throws -> String {
    let dir = NSTemporaryDirectory() + "glassbox-training-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
  }

  /// `root/{train,val,test}/<class>/<i>.npy`: class k is a cluster around 2·e_k in 4-D.
  static func write(
    root: String, classes: [String] = ["alpha", "beta", "gamma"],
    perClass: [String: Int] = ["train": 12, "val": 4, "test": 4]
  ) throws {
    var g = SplitMix64(seed: 99)
    for (split, n) in perClass {
      for (k, name) in classes.enumerated() {
        let dir = "\(root)/\(split)/\(name)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for i in 0..<n {
          var v = (0..<4).map { _ in g.nextUnitFloat() - 0.5 }
          v[k % 4] += 2
          try NPY.write(Tensor(shape: [4], f32: v), to: "\(dir)/\(i).npy")
        }
      }
    }
  }

  static func trainer(_ root: String, settings: TrainingSettings, scale: Float = 1) throws -> Trainer {
    let data = try TrainingData.open(root, exampleShape: [4], recipe: nil, cacheDirectory: nil, seed: settings.seed)
    let backend = SoftmaxRegression(batchSize: settings.batchSize, features: 4, classes: data.classes.count)
    backend.logitScale = scale
    return try Trainer(model: try model(classes: data.classes.count), backend: backend, data: data, settings: settings)
  }
}

@Suite struct TrainerTests {
  static let settings = TrainingSettings(
    epochs: 2, batchSize: 5, learningRate: 0.1,
    optimizer: OptimizerSettings(kind: .sgd, momentum: 0.9, weightDecay: 1e-3),
    schedule: .cosine(tMax: 2, minimum: 0), clipNorm: 5, seed: 7)

  @Test func sameSeedGivesIdenticalFilesAndResumeContinuesExactly() throws {
    let dir = try TinyData.temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try TinyData.write(root: dir + "/data")
    var accuracies: [Double] = []
    for out in ["a.model", "b.model"] {
      try TinyData.trainer(dir + "/data", settings: Self.settings).run(output: "\(dir)/\(out)") { event in
        if case .epoch(let r) = event { accuracies.append(r.validationAccuracy ?? 0) }
      }
    }
    let a = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/a.model"))
    #expect(a == (try Data(contentsOf: URL(fileURLWithPath: "\(dir)/b.model"))))
    #expect(accuracies.last ?? 0 > 0.9, "validation accuracy \(accuracies)")

    // One epoch, then resume to two: the same bytes as two straight epochs.
    var one = Self.settings
    one.epochs = 1
    try TinyData.trainer(dir + "/data", settings: one).run(output: "\(dir)/c.model") { _ in }
    let resumed = try TinyData.trainer(dir + "/data", settings: Self.settings)
    try resumed.resume(from: "\(dir)/c.model")
    #expect(resumed.epochsDone == 1)
    try resumed.run(output: "\(dir)/c.model") { _ in }
    #expect(a == (try Data(contentsOf: URL(fileURLWithPath: "\(dir)/c.model"))))
    let loaded = try ModelFile.load("\(dir)/c.model")
    #expect(loaded.labels == ["alpha", "beta", "gamma"])
    #expect(loaded.provenance.training?.epochs == 2)
    #expect(FileManager.default.fileExists(atPath: "\(dir)/c.model.curves.svg"))
    let history = try String(contentsOfFile: "\(dir)/c.model.history.json", encoding: .utf8)
    #expect(history.contains("\"epoch\":2"))
  }

  @Test func resumeRefusesOtherSettings() throws {
    let dir = try TinyData.temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try TinyData.write(root: dir + "/data")
    try TinyData.trainer(dir + "/data", settings: Self.settings).run(output: "\(dir)/m.model") { _ in }
    var other = Self.settings
    other.learningRate = 0.5
    other.epochs = 3
    let error = #expect(throws: TrainingError.self) {
      try TinyData.trainer(dir + "/data", settings: other).resume(from: "\(dir)/m.model")
    }
    #expect(error?.description.contains("cannot resume with different settings") == true)
  }

  @Test func nonFiniteLossStopsAndKeepsTheLastCheckpoint() throws {
    let dir = try TinyData.temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try TinyData.write(root: dir + "/data")
    var one = Self.settings
    one.epochs = 1
    try TinyData.trainer(dir + "/data", settings: one).run(output: "\(dir)/m.model") { _ in }
    let before = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/m.model"))
    let exploding = try TinyData.trainer(dir + "/data", settings: Self.settings, scale: .infinity)
    try exploding.resume(from: "\(dir)/m.model")
    let error = #expect(throws: TrainingError.self) { try exploding.run(output: "\(dir)/m.model") { _ in } }
    #expect(error?.description.contains("at epoch 2, step 1") == true, "\(String(describing: error))")
    #expect(error?.description.contains("last good checkpoint (epoch 1) is kept") == true)
    #expect(before == (try Data(contentsOf: URL(fileURLWithPath: "\(dir)/m.model"))))
  }
}

@Suite struct DataErrorTests {
  func open(_ root: String, shape: [Int]? = [4]) throws -> TrainingData {
    try TrainingData.open(root, exampleShape: shape, recipe: nil, cacheDirectory: nil, seed: 0)
  }

  @Test func classesAreSortedFoldersAndLabelsTheirIndices() throws {
    let dir = try TinyData.temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try TinyData.write(root: dir, classes: ["zebra", "ant"], perClass: ["train": 2])
    let data = try open(dir)
    #expect(data.classes == ["ant", "zebra"])
    #expect(data.validation == nil && data.test == nil)
    #expect(try data.train.example(0).label == 0 && data.train.example(3).label == 1)
    let batch = try data.train.batch([3, 0], size: 4)
    #expect(batch.inputs.shape == [4, 4] && batch.labels.storage == .i64([1, 0, 0, 0]) && batch.count == 2)
  }

  @Test func badFoldersAndFilesAreNamed() throws {
    let dir = try TinyData.temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let fm = FileManager.default
    // No classes.
    try fm.createDirectory(atPath: dir + "/none/train", withIntermediateDirectories: true)
    #expect(
      throws: TrainingError(
        file: dir + "/none/train",
        "no classes: expected one folder per class holding .npy files (\(dir)/none/train/<class>/<example>.npy)")
    ) {
      try open(dir + "/none")
    }
    // An empty class.
    try TinyData.write(root: dir + "/empty", classes: ["a"], perClass: ["train": 1])
    try fm.createDirectory(atPath: dir + "/empty/train/b", withIntermediateDirectories: true)
    #expect(throws: TrainingError(file: dir + "/empty/train/b", "empty class: no .npy files in this class folder")) {
      try open(dir + "/empty")
    }
    // Wrong shape.
    try TinyData.write(root: dir + "/shape", classes: ["a"], perClass: ["train": 1])
    try NPY.write(Tensor(shape: [5], f32: [1, 2, 3, 4, 5]), to: dir + "/shape/train/a/9.npy")
    #expect(
      throws: TrainingError(
        file: dir + "/shape/train/a/9.npy", "has shape [5] but the model's input needs [4] per example")
    ) {
      try open(dir + "/shape")
    }
    // Wrong dtype.
    try TinyData.write(root: dir + "/dtype", classes: ["a"], perClass: ["train": 1])
    try NPY.write(Tensor(shape: [4], storage: .i64([1, 2, 3, 4])), to: dir + "/dtype/train/a/9.npy")
    #expect(
      throws: TrainingError(file: dir + "/dtype/train/a/9.npy", "holds i64 elements; examples must be f32 (or f64)")
    ) {
      try open(dir + "/dtype")
    }
    // An unreadable (not .npy) file.
    try TinyData.write(root: dir + "/junk", classes: ["a"], perClass: ["train": 1])
    try Data("hello".utf8).write(to: URL(fileURLWithPath: dir + "/junk/train/a/9.npy"))
    let junk = #expect(throws: TrainingError.self) { try open(dir + "/junk") }
    #expect(
      junk?.description.hasPrefix(dir + "/junk/train/a/9.npy: not an .npy file") == true, "\(String(describing: junk))")
    // Validation classes must be the training classes.
    try TinyData.write(root: dir + "/val", classes: ["a", "b"], perClass: ["train": 1])
    try TinyData.write(root: dir + "/val", classes: ["a", "c"], perClass: ["val": 1])
    #expect(
      throws: TrainingError(
        file: dir + "/val/val", "classes differ from the training split's; missing: b; not in training: c")
    ) {
      try open(dir + "/val")
    }
  }

  @Test func classCountMustMatchTheModel() throws {
    let dir = try TinyData.temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try TinyData.write(root: dir, classes: ["a", "b"], perClass: ["train": 2])
    let data = try open(dir)
    #expect(throws: TrainingError(file: dir + "/train", "has 2 classes (a, b) but the model has 3 outputs")) {
      _ = try Trainer(
        model: try TinyData.model(classes: 3), backend: SoftmaxRegression(batchSize: 2, features: 4, classes: 3),
        data: data, settings: TrainerTests.settings)
    }
  }
}

@Suite struct MediaDataTests {
  /// A spoken-language folder through the bilstm input's recipe: MFCC examples of the
  /// recipe's shape, classes the language folders, features kept in the cache.
  @Test func spokenLanguageFolderYieldsMFCCExamples() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    let wav = root.appendingPathComponent("Tests/GlassboxMediaTests/Fixtures/mfcc/speech16k.wav").path
    let text = try String(contentsOf: root.appendingPathComponent("graphs/bilstm.graph"), encoding: .utf8)
    let graph = try #require(Spec.compile(SourceText(fileName: "bilstm.graph", text: text), bindings: ["C": 2]).graph)
    let dir = try TinyData.temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    for language in ["hindi", "tamil"] {
      try FileManager.default.createDirectory(atPath: "\(dir)/lid/\(language)", withIntermediateDirectories: true)
      for i in 0..<5 { try FileManager.default.copyItem(atPath: wav, toPath: "\(dir)/lid/\(language)/\(i).wav") }
    }
    let data = try TrainingData.open(
      dir + "/lid", exampleShape: [768, 128], recipe: graph.recipes.first,
      cacheDirectory: dir + "/cache", seed: 0)
    #expect(data.classes == ["hindi", "tamil"])
    #expect(data.train.count + (data.validation?.count ?? 0) + (data.test?.count ?? 0) == 10)
    #expect(data.train.exampleShape == [768, 128])
    let batch = try data.train.batch([0, data.train.count - 1], size: 2)
    #expect(batch.inputs.shape == [2, 768, 128] && batch.labels.storage == .i64([0, 1]))
    // No recipe and no npy layout: a clear error naming the folder.
    #expect(
      throws: TrainingError(
        file: dir + "/lid",
        "expected \(dir)/lid/train/<class>/<example>.npy (and optional val/, test/); raw media need a model input with a recipe"
      )
    ) {
      _ = try TrainingData.open(dir + "/lid", exampleShape: nil, recipe: nil, cacheDirectory: nil, seed: 0)
    }
  }

  /// Read-ahead on a background thread gives the same examples as decoding on demand; a file
  /// that cannot be decoded is left out of the batch and named in `skipped`, and the rest of
  /// the data trains.
  @Test func readAheadMatchesOnDemandAndSkipsBadFiles() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    let wav = root.appendingPathComponent("Tests/GlassboxMediaTests/Fixtures/mfcc/speech16k.wav").path
    let chirp = root.appendingPathComponent("Tests/GlassboxMediaTests/Fixtures/mfcc/chirp22k.wav").path
    let text = try String(contentsOf: root.appendingPathComponent("graphs/bilstm.graph"), encoding: .utf8)
    let graph = try #require(Spec.compile(SourceText(fileName: "bilstm.graph", text: text), bindings: ["C": 2]).graph)
    let recipe = try #require(graph.recipes.first)
    let dir = try TinyData.temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    for language in ["hindi", "tamil"] {
      try FileManager.default.createDirectory(atPath: "\(dir)/lid/\(language)", withIntermediateDirectories: true)
      for i in 0..<4 {
        try FileManager.default.copyItem(atPath: i % 2 == 0 ? wav : chirp, toPath: "\(dir)/lid/\(language)/\(i).wav")
      }
      for i in 0..<3 {
        try Data("RIFF but not really a wave file".utf8).write(
          to: URL(fileURLWithPath: "\(dir)/lid/\(language)/bad\(i).wav"))
      }
    }
    let set = try SpokenLanguage.load(root: dir + "/lid", subset: .train, seed: 0)
    let bad = set.examples.filter { $0.path.contains("/bad") }.count
    try #require(bad > 0 && bad < set.examples.count)

    let ahead = try MediaExamples(dataSet: set, recipe: recipe, cache: nil)
    let onDemand = try MediaExamples(dataSet: set, recipe: recipe, cache: nil)
    let order = Array(set.examples.indices.reversed())
    ahead.prefetch(order)
    let a = try ahead.batch(order, size: order.count)
    let b = try onDemand.batch(order, size: order.count)
    let good: Int = set.examples.count - bad
    #expect(a.count == good)
    #expect(a.count == b.count)
    #expect(a.inputs == b.inputs)
    #expect(a.labels == b.labels)
    let skipped: [String] = ahead.skipped
    #expect(skipped.count == bad)
    for line in skipped { #expect(line.contains("/bad") && line.hasSuffix("(skipped)"), "\(line)") }
    // A second pass is served from memory: the bad files stay skipped, nothing is decoded again.
    let waited: Double = onDemand.waitSeconds
    let again = try onDemand.batch(order, size: order.count)
    #expect(again.inputs == b.inputs)
    #expect(onDemand.waitSeconds == waited)
    #expect(onDemand.skipped.count == bad)
    // The rows the skipped files left empty are filled with the batch's own examples in turn.
    let filled = a.repeatingRows(upTo: order.count)
    let per = 768 * 128
    let x: [Float] = filled.inputs.floats
    var y: [Int64] = []
    if case .i64(let l) = filled.labels.storage { y = l }
    #expect(filled.count == a.count)
    for r in a.count..<order.count {
      let from: Int = (r - a.count) % a.count
      let row: [Float] = Array(x[(r * per)..<((r + 1) * per)])
      let source: [Float] = Array(x[(from * per)..<((from + 1) * per)])
      #expect(row == source)
      #expect(y[r] == y[from])
    }
  }
}
