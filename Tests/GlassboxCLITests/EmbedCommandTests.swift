import Foundation
import Glassbox
import GlassboxAnalysis
@testable import GlassboxCLI
import GlassboxFormat
import GlassboxIR
import GlassboxMedia
import GlassboxReference
import Testing

/// `glassbox embed` on a tensor folder: a small LSTM spec, three classes of sequences.
struct EmbedCommandTests {
  /// A limited set (embed, evaluate's and tap's `--limit`) takes each class in turn from a
  /// split listed class by class, in the split's order, not the first classes' clips.
  @Test func limitedSetsTakeEveryClass() {
    let files = [5, 5, 2].enumerated().flatMap { c, n in (0..<n).map { LabeledFile(path: "c\(c)_\($0)", label: c) } }
    #expect(Datasets.balanced(files, limit: 4) == [0, 1, 5, 10])
    #expect(Datasets.balanced(files, limit: 8).map { files[$0].label } == [0, 0, 0, 1, 1, 1, 2, 2])
    #expect(Datasets.balanced(files, limit: 99) == Array(files.indices))
  }

  static let spec = """
    graph tiny(x: f32[B, 6, 4]) -> (logits: f32[B, C]) where C = 3 {
      lstm = lstm(x, hidden: 8, bidirectional: true)
      last = select(lstm, axis: 1, index: -1)
      logits = linear(last, out: C)
      tap hidden = hidden(lstm)
    }

    """

  /// DIR/tiny.graph and DIR/data/{train,test}/<class>/*.npy: 12 + 4 examples per class, each a
  /// class offset plus deterministic noise.
  static func makeFolder(_ dir: URL) throws {
    try spec.write(to: dir.appendingPathComponent("tiny.graph"), atomically: true, encoding: .utf8)
    var state: UInt64 = 1
    func noise() -> Float {
      state = state &* 6364136223846793005 &+ 1442695040888963407
      return Float(Int64(bitPattern: state >> 11) % 2000) / 1000 - 1
    }
    for (split, count) in [("train", 12), ("test", 4)] {
      for (c, name) in ["circle", "square", "triangle"].enumerated() {
        let folder = dir.appendingPathComponent("data/\(split)/\(name)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for i in 0..<count {
          let values = (0..<24).map { k in Float(c) * (k % 4 == c ? 2 : -1) + 0.3 * noise() }
          try NPY.write(Tensor(shape: [6, 4], f32: values), to: folder.appendingPathComponent("\(i).npy").path)
        }
      }
    }
  }

  @Test func embedsATensorFolder() throws {
    try FeaturesCommandTests.withTemporaryDirectory { dir in
      try Self.makeFolder(dir)
      let plot = dir.appendingPathComponent("out/map.svg").path
      try FeaturesCommandTests.glassbox([
        "embed", dir.appendingPathComponent("tiny.graph").path,
        "--data", dir.appendingPathComponent("data").path, "-o", plot, "--batch", "5",
      ])
      let map = try JSONDecoder().decode(
        EmbeddingMap.self, from: Data(contentsOf: URL(fileURLWithPath: dir.appendingPathComponent("out/map.json").path))
      )
      #expect(map.points.count == 36)
      #expect(map.classes == ["circle", "square", "triangle"])
      #expect(map.featureDimensions == 16)
      #expect(map.points.map(\.label) == (0..<36).map { $0 / 12 })
      let t = try #require(map.trustworthiness)
      #expect(t > 0 && t <= 1)
      let svg = try String(contentsOfFile: plot, encoding: .utf8)
      #expect(svg.hasPrefix("<svg") && svg.contains("triangle (12)"))
      #expect(svg.components(separatedBy: "<circle").count - 1 == 36 + 3)
      let csv = try String(contentsOfFile: dir.appendingPathComponent("out/map.csv").path, encoding: .utf8)
      #expect(csv.split(separator: "\n").count == 37)
    }
  }

  /// The features are the LSTM outputs averaged over time: checked example by example against
  /// the Float64 reference interpreter (batch 5 over 36 examples, so the last batch is padded).
  @Test func featuresAreTimeAveragedLSTMOutputs() throws {
    try FeaturesCommandTests.withTemporaryDirectory { dir in
      try Self.makeFolder(dir)
      let graph = try Spec.checkedGraph(try loadSource(dir.appendingPathComponent("tiny.graph").path), bindings: [:])
      let model = try Model(contentsOf: dir.appendingPathComponent("tiny.graph").path)
      let features = try model.tapFeatures(
        "hidden", root: dir.appendingPathComponent("data").path, split: "train", batch: 5,
        limit: 100, threads: 1)
      #expect(features.rows.count == 36 && features.rows.allSatisfy { $0.count == 16 })
      let one = try graph.bound(["B": 1])
      let weights = Dictionary(
        uniqueKeysWithValues: zip(one.parameters.map(\.name), try Initialization.weights(for: one, seed: 0)))
      for i in [0, 17, 35] {
        var x = try NPY.read(features.files[i])
        x.shape = [1] + x.shape
        var reference = ReferenceInterpreter(graph: one)
        let lstm = try #require(try reference.run(inputs: ["x": x], parameters: weights)["lstm"]).doubles  // [1, 6, 16]
        for h in 0..<16 {
          let mean = (0..<6).reduce(0.0) { $0 + lstm[$1 * 16 + h] } / 6
          #expect(
            abs(features.rows[i][h] - mean) < 1e-5, "example \(i) feature \(h): \(features.rows[i][h]) vs \(mean)")
        }
      }
    }
  }

  @Test func embedErrorsNameTheProblem() throws {
    try FeaturesCommandTests.withTemporaryDirectory { dir in
      try Self.makeFolder(dir)
      let graph = dir.appendingPathComponent("tiny.graph").path
      let data = dir.appendingPathComponent("data").path
      #expect {
        try FeaturesCommandTests.glassbox(["embed", graph, "--data", data, "--tap", "attention", "-o", "x.svg"])
      } throws: { GlassboxCommand.message(for: $0) == "tiny has no tap 'attention'; taps it can embed: hidden" }
      #expect {
        try FeaturesCommandTests.glassbox(["embed", graph, "--data", data, "--split", "val", "-o", "x.svg"])
      } throws: { GlassboxCommand.message(for: $0).contains("no tensor folder") }
      #expect {
        try FeaturesCommandTests.glassbox(["embed", graph, "--data", data, "-o", "x.png"])
      } throws: { GlassboxCommand.message(for: $0) == "-o x.png: the plot is an .svg file" }
    }
  }
}
