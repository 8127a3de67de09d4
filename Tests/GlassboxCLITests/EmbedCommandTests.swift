import Foundation
import GlassboxAnalysis
@testable import GlassboxCLI
import GlassboxFormat
import GlassboxIR
import Testing

/// `glassbox embed` on a tensor folder: a small LSTM spec, three classes of sequences.
struct EmbedCommandTests {
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
      try FeaturesCommandTests.glassbox(["embed", dir.appendingPathComponent("tiny.graph").path,
                                         "--data", dir.appendingPathComponent("data").path, "-o", plot, "--batch", "5"])
      let map = try JSONDecoder().decode(EmbeddingMap.self, from: Data(contentsOf: URL(fileURLWithPath: dir.appendingPathComponent("out/map.json").path)))
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

  @Test func embedErrorsNameTheProblem() throws {
    try FeaturesCommandTests.withTemporaryDirectory { dir in
      try Self.makeFolder(dir)
      let graph = dir.appendingPathComponent("tiny.graph").path
      let data = dir.appendingPathComponent("data").path
      #expect {
        try FeaturesCommandTests.glassbox(["embed", graph, "--data", data, "--tap", "attention", "-o", "x.svg"])
      } throws: { Glassbox.message(for: $0) == "tiny has no tap 'attention'; taps it can embed: hidden" }
      #expect {
        try FeaturesCommandTests.glassbox(["embed", graph, "--data", data, "--split", "val", "-o", "x.svg"])
      } throws: { Glassbox.message(for: $0).contains("no tensor folder") }
      #expect {
        try FeaturesCommandTests.glassbox(["embed", graph, "--data", data, "-o", "x.png"])
      } throws: { Glassbox.message(for: $0) == "-o x.png: the plot is an .svg file" }
    }
  }
}
