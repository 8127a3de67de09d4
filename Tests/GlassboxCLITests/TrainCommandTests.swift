import Foundation
import Glassbox
@testable import GlassboxCLI
import GlassboxFormat
import GlassboxIR
import Testing

/// `glassbox train` end to end: the generated backward pass, the loop and the files.
struct TrainCommandTests {
  static func path(_ relative: String) -> String { FeaturesCommandTests.path(relative) }

  static func glassbox(_ arguments: [String]) throws { try FeaturesCommandTests.glassbox(arguments) }

  /// `root/{train,val,test}/<class>/<i>.npy` of shape `shape`: class k adds +1 to a band of
  /// features (k·band ..< (k+1)·band) on every frame, over uniform noise in [−0.5, 0.5).
  static func writeData(_ root: String, classes: Int, shape: [Int], band: Int, perClass: [String: Int]) throws {
    var state: UInt64 = 12345
    func next() -> Float {
      state = state &* 6364136223846793005 &+ 1442695040888963407
      return Float(state >> 40) * 0x1p-24 - 0.5
    }
    let features = shape.last ?? 1, count = shape.reduce(1, *)
    for (split, n) in perClass.sorted(by: { $0.key < $1.key }) {
      for k in 0..<classes {
        let dir = "\(root)/\(split)/class\(k)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for i in 0..<n {
          var v = (0..<count).map { _ in next() }
          for j in 0..<count where (j % features) / band == k { v[j] += 1 }
          try NPY.write(Tensor(shape: shape, f32: v), to: "\(dir)/\(i).npy")
        }
      }
    }
  }

  static let tinySpec = """
    graph tiny_lstm(x: f32[B, T, 6]) -> (logits: f32[B, C]) {
      lstm = lstm(x, hidden: 5, bidirectional: true)
      last = select(lstm, axis: 1, index: -1)
      drop = dropout(last, p: 0.25)
      classifier = linear(drop, out: C)
      logits = classifier
    }
    """

  @Test func sameSeedIsBitIdenticalAndResumeContinuesExactly() throws {
    try FeaturesCommandTests.withTemporaryDirectory { url in
      let dir = url.path
      try Self.writeData(
        dir + "/data", classes: 3, shape: [4, 6], band: 2, perClass: ["train": 5, "val": 2, "test": 2])
      let spec = dir + "/tiny.graph"
      try Self.tinySpec.write(toFile: spec, atomically: true, encoding: .utf8)
      let common = [
        "train", spec, "--data", dir + "/data", "--batch", "4", "--lr", "0.05", "--optimizer", "adam",
        "--weight-decay", "0.01", "--schedule", "step", "--step-size", "1", "--gamma", "0.5", "--clip", "1", "--seed",
        "3", "--threads", "2",
      ]
      try Self.glassbox(common + ["--epochs", "2", "-o", dir + "/a.model"])
      try Self.glassbox(common + ["--epochs", "2", "-o", dir + "/b.model"])
      let a = try Data(contentsOf: URL(fileURLWithPath: dir + "/a.model"))
      #expect(a == (try Data(contentsOf: URL(fileURLWithPath: dir + "/b.model"))))
      // One epoch, then --resume to two.
      try Self.glassbox(common + ["--epochs", "1", "-o", dir + "/c.model"])
      #expect(a != (try Data(contentsOf: URL(fileURLWithPath: dir + "/c.model"))))
      try Self.glassbox(common + ["--epochs", "2", "-o", dir + "/c.model", "--resume"])
      #expect(a == (try Data(contentsOf: URL(fileURLWithPath: dir + "/c.model"))))

      let model = try ModelFile.load(dir + "/a.model")
      #expect(model.labels == ["class0", "class1", "class2"])
      #expect(model.provenance.training?.epochs == 2)
      #expect(model.provenance.training?.metrics.contains { $0.name == "test_accuracy" } == true)
      #expect(FileManager.default.fileExists(atPath: dir + "/a.model.curves.svg"))
      #expect(FileManager.default.fileExists(atPath: dir + "/a.model.state.safetensors"))
      #expect(try String(contentsOfFile: dir + "/a.model.history.json", encoding: .utf8).contains("\"val_accuracy\""))
      // A trained .model trains on: its weights are the start.
      try Self.glassbox([
        "train", dir + "/a.model", "--data", dir + "/data", "--batch", "4", "--epochs", "1",
        "-o", dir + "/d.model",
      ])

      // An existing OUT is kept unless --resume or --force.
      let refused = #expect(throws: (any Error).self) {
        try Self.glassbox(common + ["--epochs", "1", "-o", dir + "/b.model"])
      }
      #expect(
        "\(refused.map { "\($0)" } ?? "")".contains("b.model exists: --resume continues its run, --force replaces it"))
      #expect(a == (try Data(contentsOf: URL(fileURLWithPath: dir + "/b.model"))))
      try Self.glassbox(common + ["--epochs", "1", "-o", dir + "/b.model", "--force"])
      #expect(a != (try Data(contentsOf: URL(fileURLWithPath: dir + "/b.model"))))
    }
  }

  /// `info --json`'s provenance of a model file.
  static func provenance(_ path: String) throws -> [String: Any] {
    let text = Info.json(try ModelFile.load(path)).text
    let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    return try #require(object["provenance"] as? [String: Any])
  }

  /// A finished run resumed has nothing to do and leaves OUT as it was, byte for byte, record
  /// included; a run that stopped before its test split was recorded gets it recorded; every
  /// model `train` writes names the producer's version and, from a spec, the spec's hash.
  @Test func resumingAFinishedRunLeavesTheModelUntouched() throws {
    try FeaturesCommandTests.withTemporaryDirectory { url in
      let dir = url.path
      try Self.writeData(dir + "/data", classes: 3, shape: [4, 6], band: 2, perClass: ["train": 4, "test": 2])
      let spec = dir + "/tiny.graph"
      try Self.tinySpec.write(toFile: spec, atomically: true, encoding: .utf8)
      let common = [
        "train", spec, "--data", dir + "/data", "--batch", "4", "--epochs", "2", "--seed", "1",
        "-o", dir + "/a.model",
      ]
      try Self.glassbox(common)
      let url = URL(fileURLWithPath: dir + "/a.model")
      let finished = try Data(contentsOf: url)
      let record = try #require(try Self.provenance(dir + "/a.model")["training"] as? [String: Any])
      #expect(record["epochs"] as? Int == 2)
      #expect((record["metrics"] as? [String: Any])?["test_accuracy"] != nil)
      try Self.glassbox(common + ["--resume"])
      #expect(try Data(contentsOf: url) == finished, "a resumed finished run rewrote the model")
      #expect(try Self.provenance(dir + "/a.model")["training"] != nil)

      // Producer and spec hash, from a spec and from a model.
      let specHash = SHA256.hex([UInt8](try Data(contentsOf: URL(fileURLWithPath: spec))))
      let fromSpec = try ModelFile.load(dir + "/a.model").provenance
      #expect(fromSpec.producer == "glassbox" && fromSpec.producerVersion == Provenance.currentProducerVersion)
      #expect(!fromSpec.producerVersion.isEmpty && fromSpec.specSHA256 == specHash)
      try Self.glassbox([
        "train", dir + "/a.model", "--data", dir + "/data", "--batch", "4", "--epochs", "1",
        "-o", dir + "/b.model",
      ])
      let fromModel = try ModelFile.load(dir + "/b.model").provenance
      #expect(fromModel.producerVersion == Provenance.currentProducerVersion && fromModel.specSHA256 == specHash)

      // Trained without a test split, then resumed with one: only the test split's numbers are added.
      try FileManager.default.moveItem(atPath: dir + "/data/test", toPath: dir + "/held-out")
      let short = [
        "train", spec, "--data", dir + "/data", "--batch", "4", "--epochs", "2", "--seed", "1",
        "-o", dir + "/c.model",
      ]
      try Self.glassbox(short)
      #expect(
        try ModelFile.load(dir + "/c.model").provenance.training?.metrics.contains { $0.name == "test_loss" } == false)
      try FileManager.default.moveItem(atPath: dir + "/held-out", toPath: dir + "/data/test")
      try Self.glassbox(short + ["--resume"])
      #expect(
        try Data(contentsOf: URL(fileURLWithPath: dir + "/c.model")) == finished,
        "resumed to record the test split, c.model differs from an uninterrupted run")
    }
  }

  @Test func nanLossStopsAndKeepsTheLastCheckpoint() throws {
    try FeaturesCommandTests.withTemporaryDirectory { url in
      let dir = url.path
      try Self.writeData(dir + "/data", classes: 3, shape: [4, 6], band: 2, perClass: ["train": 4])
      let spec = dir + "/tiny.graph"
      try Self.tinySpec.write(toFile: spec, atomically: true, encoding: .utf8)
      let common = [
        "train", spec, "--data", dir + "/data", "--batch", "4", "--optimizer", "sgd", "-o", dir + "/m.model",
      ]
      try Self.glassbox(common + ["--epochs", "1", "--lr", "0.01"])
      let before = try Data(contentsOf: URL(fileURLWithPath: dir + "/m.model"))
      // A learning rate of 1e38 overflows the logits within a few steps.
      let error = #expect(throws: (any Error).self) {
        try Self.glassbox(common + ["--epochs", "3", "--lr", "1e38", "--force"])
      }
      let text = error.map { "\($0)" } ?? ""
      #expect(text.contains("(learning rate 1e+38); stopped."), "\(text)")
      if text.contains("Nothing was written") {
        #expect(before == (try Data(contentsOf: URL(fileURLWithPath: dir + "/m.model"))))
      } else {
        #expect(text.contains("The last good checkpoint (epoch"), "\(text)")
        #expect(try ModelFile.load(dir + "/m.model").provenance.training?.epochs ?? 0 >= 1)
      }
    }
  }

  @Test func badDataIsNamed() throws {
    try FeaturesCommandTests.withTemporaryDirectory { url in
      let dir = url.path
      try Self.writeData(dir + "/data", classes: 2, shape: [4, 5], band: 2, perClass: ["train": 2])
      let spec = dir + "/tiny.graph"
      try Self.tinySpec.write(toFile: spec, atomically: true, encoding: .utf8)
      let error = #expect(throws: (any Error).self) {
        try Self.glassbox(["train", spec, "--data", dir + "/data", "--batch", "2", "-o", dir + "/m.model"])
      }
      #expect("\(error.map { "\($0)" } ?? "")".contains("/data"), "\(String(describing: error))")
      #expect(!FileManager.default.fileExists(atPath: dir + "/m.model"))
      let classes = #expect(throws: (any Error).self) {
        try Self.glassbox([
          "train", spec, "--bind", "C=4", "--data", dir + "/data", "--batch", "2", "-o", dir + "/m.model",
        ])
      }
      #expect("\(classes.map { "\($0)" } ?? "")".contains("has 2 classes (class0, class1) but tiny_lstm has 4 outputs"))
    }
  }

  /// The BiLSTM of the study (C = 3, T = 768 frames of 128 MFCCs) learns a separable data set:
  /// validation accuracy far above chance (1/3) after a few epochs.
  @Test func bilstmLearnsASeparableDataSet() throws {
    try FeaturesCommandTests.withTemporaryDirectory { url in
      let dir = url.path
      try Self.writeData(dir + "/data", classes: 3, shape: [768, 128], band: 8, perClass: ["train": 8, "val": 4])
      try Self.glassbox([
        "train", Self.path("graphs/bilstm.graph"), "--bind", "C=3", "--data", dir + "/data",
        "--batch", "8", "--epochs", "4", "--optimizer", "adam", "--lr", "0.01", "--seed", "1",
        "-o", dir + "/bilstm.model",
      ])
      let model = try ModelFile.load(dir + "/bilstm.model")
      let accuracy = model.provenance.training?.metrics.first { $0.name == "val_accuracy" }?.value ?? 0
      #expect(accuracy >= 0.9, "validation accuracy \(accuracy)")
    }
  }

  /// `evaluate MODEL --data` (no tap): the classifier's accuracy and cross-entropy over the test
  /// split agree with what training measured there through its own backend, and the confusion
  /// matrix counts every example once.
  @Test func evaluateWithoutATapMeasuresTheClassifier() throws {
    try FeaturesCommandTests.withTemporaryDirectory { url in
      let dir = url.path
      let spec = dir + "/tiny.graph"
      try Self.tinySpec.write(toFile: spec, atomically: true, encoding: .utf8)
      try Self.writeData(dir + "/data", classes: 3, shape: [4, 6], band: 2, perClass: ["train": 6, "test": 5])
      try Self.glassbox([
        "train", spec, "--bind", "C=3", "--data", dir + "/data", "--batch", "4", "--epochs", "3",
        "--optimizer", "adam", "--lr", "0.02", "-o", dir + "/tiny.model",
      ])
      let model = try ModelFile.load(dir + "/tiny.model")
      let metrics = model.provenance.training?.metrics ?? []
      let trainedAccuracy = try #require(metrics.first { $0.name == "test_accuracy" }?.value)
      let trainedLoss = try #require(metrics.first { $0.name == "test_loss" }?.value)

      let command = try Evaluate.parse([
        dir + "/tiny.model", "--data", dir + "/data", "--split", "test", "--batch", "4",
        "--predictions", dir + "/predictions.json",
      ])
      let c = try command.classify()
      #expect(c.examples.count == 15)
      #expect(c.classes == ["class0", "class1", "class2"])
      #expect(abs(c.accuracy - trainedAccuracy) < 1e-9, "evaluate \(c.accuracy), training \(trainedAccuracy)")
      #expect(
        abs(c.crossEntropy - trainedLoss) < 1e-4 * max(1, trainedLoss),
        "evaluate \(c.crossEntropy), training \(trainedLoss)")
      let m = c.confusion
      #expect(m.map { $0.reduce(0, +) } == [5, 5, 5])
      #expect(abs(Double((0..<3).map { m[$0][$0] }.reduce(0, +)) / 15 - c.accuracy) < 1e-12)

      // The predictions file reads back as the same classification.
      try command.run()
      let back = try Classification.read(predictions: dir + "/predictions.json")
      #expect(back.examples.map(\.predicted) == c.examples.map(\.predicted))
      #expect(back.examples.map(\.file) == c.examples.map(\.file))
    }
  }
}
