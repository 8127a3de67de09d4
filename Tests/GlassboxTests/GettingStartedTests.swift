// swift-format-ignore-file
// (The code blocks below are the article's, verbatim.)
import Foundation
import Testing

// The getting-started article's code (Sources/Glassbox/Glassbox.docc/GettingStarted.md), block
// for block and verbatim: `everyArticleBlockIsInThisFile` fails when the two differ, and
// `theArticlesCodeRuns` runs it on examples/tiny_cnn.graph.

import Glassbox

/// Classifies a batch of images and explains each prediction with Grad-CAM.
func explainPredictions(modelAt path: String, images: Tensor) throws -> Explanation {
  let model = try Model(contentsOf: path)                      // a .model file, memory-mapped
  let session = try model.session(SessionOptions(threads: 2))
  let outputs = try session.run(["image": images])             // "logits": [N, classes]
  print(outputs["logits"]?.shape ?? [])
  return try session.explain("gradcam", ["image": images], target: .predicted)
}

/// Compiles a spec into a `.model` file with class names; the weights are drawn from `seed`
/// as PyTorch initialises them (`WeightOptions(file:)` imports a safetensors state_dict).
func compileModel(spec: String, labels: [String], seed: UInt64, to path: String) throws {
  let model = try Model(contentsOf: spec, weights: Model.WeightOptions(seed: seed))
  try model.with(labels: labels).write(to: path)
}

/// What a model takes, gives and can explain, one line each.
func signature(ofModelAt path: String) throws -> [String] {
  let model = try Model(contentsOf: path)
  let inputs = model.inputs.map { "input \($0)" }                       // input image f32[B, 3, 32, 32]
  let outputs = model.outputs.map { "output \($0)" }                    // output logits f32[B, 4]
  let taps = model.taps.map { "tap \($0.name) (\($0.kind.rawValue))" }  // tap gradcam (gradcam)
  return inputs + outputs + taps + ["labels " + model.labels.joined(separator: ", ")]
}

/// The label each image of a batch `[N, 3, H, W]` is classified as.
func classify(_ images: Tensor, with session: Session) throws -> [String] {
  guard let logits = try session.run(["image": images])["logits"] else { return [] }
  let (rows, classes) = (logits.shape[0], logits.shape[1])
  let scores = logits.floats
  return (0..<rows).map { row in
    let best = (0..<classes).max { scores[row * classes + $0] < scores[row * classes + $1] } ?? 0
    return session.model.labels[best]
  }
}

/// Grad-CAM of every image of a batch at once, each for its own class (nil: the predicted
/// one), resized to the images: `[N, H, W]`, each map scaled to 0…1.
func heatmaps(of images: Tensor, classes: [Int?], with session: Session) throws -> Tensor? {
  let target = Target.each(classes.map { $0 ?? -1 })
  let explanation = try session.explain("gradcam", ["image": images], target: target)
  print("explained classes", explanation.classes ?? [])   // the predicted ones filled in
  return explanation.upsampled                             // the raw maps: explanation.map
}

/// Runs a model on an image, or says in one line what is wrong with either.
func tryRunning(modelAt path: String, image: Tensor) -> String {
  do {
    let outputs = try Model(contentsOf: path).session().run(["image": image])
    return "ran: " + outputs.keys.sorted().joined(separator: ", ")
  } catch {  // a GlassboxError: the library's functions throw nothing else (typed throws)
    switch error.kind {
    case .file, .model: return "cannot load: \(error)"   // names the file
    case .input: return "bad input: \(error.message)"    // names the input and both shapes
    default: return "\(error.kind): \(error)"
    }
  }
}

/// Runs the article's functions and holds them to what they promise, checks that the article
/// and this file agree, and that the README's Swift is the article's.
struct GettingStartedTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
  static let article = root.appendingPathComponent("Sources/Glassbox/Glassbox.docc/GettingStarted.md")
  static let labels = ["cat", "dog", "bird", "fish"]

  /// Three deterministic images `[3, 3, 32, 32]`, each different.
  static func images(width: Int = 32) -> Tensor {
    let n = 3 * 3 * 32 * width
    let values = (0..<n).map { i in Float(sin(Double(i) * 0.37 + Double(i / (n / 3)))) }
    return Tensor(shape: [3, 3, 32, width], f32: values)
  }

  /// The ```swift blocks of a Markdown file, each without its fences.
  static func swiftBlocks(_ url: URL) throws -> [String] {
    let text = try String(contentsOf: url, encoding: .utf8)
    return text.components(separatedBy: "```swift\n").dropFirst().compactMap { $0.components(separatedBy: "```").first }
  }

  @Test func theArticlesCodeRuns() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glassbox-article-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("tiny.model").path
    try compileModel(spec: Self.root.appendingPathComponent("examples/tiny_cnn.graph").path, labels: Self.labels,
                     seed: 0, to: path)

    #expect(try signature(ofModelAt: path) == [
      "input image f32[B, 3, 32, 32]", "output logits f32[B, 4]", "tap gradcam (gradcam)", "tap cam (cam)",
      "tap act (activation)", "labels cat, dog, bird, fish",
    ])

    // Predictions: the explanation's classes are the argmax of the logits, and classify names them.
    let x = Self.images()
    let explanation = try explainPredictions(modelAt: path, images: x)
    let session = try Model(contentsOf: path).session()
    let logits = try #require(try session.run(["image": x])["logits"])
    let argmax = (0..<3).map { r in (0..<4).max { logits.floats[r * 4 + $0] < logits.floats[r * 4 + $1] } ?? 0 }
    #expect(explanation.classes == argmax)
    #expect(explanation.map.shape == [3, 16, 16])
    #expect(explanation.outputs["logits"] == logits)
    #expect(try classify(x, with: session) == argmax.map { Self.labels[$0] })

    // A class per example: each row is that class's map, as a batch explained for one class gives it.
    let maps = try #require(try heatmaps(of: x, classes: [0, nil, 3], with: session))
    #expect(maps.shape == [3, 32, 32])
    #expect(maps.floats.allSatisfy { $0 >= 0 && $0 <= 1 })
    let rowSize = 32 * 32
    for (row, target) in [(0, Target.fixed(0)), (1, .predicted), (2, .fixed(3))] {
      let alone = try #require(try session.explain("gradcam", ["image": x], target: target).upsampled)
      #expect(Array(maps.floats[(row * rowSize)..<((row + 1) * rowSize)])
              == Array(alone.floats[(row * rowSize)..<((row + 1) * rowSize)]), "row \(row)")
    }

    // Errors: what each kind says.
    #expect(tryRunning(modelAt: path, image: x) == "ran: act, logits")
    let missing = dir.appendingPathComponent("missing.model").path
    #expect(tryRunning(modelAt: missing, image: x) == "cannot load: \(missing): cannot open: No such file or directory")
    let narrow = tryRunning(modelAt: path, image: Self.images(width: 31))
    #expect(narrow.hasPrefix("bad input: ") && narrow.contains("31") && narrow.contains("image"), "\(narrow)")
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    bytes[bytes.count - 3] ^= 0x20
    let corrupt = dir.appendingPathComponent("corrupt.model").path
    try Data(bytes).write(to: URL(fileURLWithPath: corrupt))
    let damaged = tryRunning(modelAt: corrupt, image: x)
    #expect(damaged.hasPrefix("cannot load: \(corrupt): tensor ") && damaged.contains("fails its checksum"),
            "\(damaged)")
  }

  /// Each ```swift block of the article appears in this file exactly as written there.
  @Test func everyArticleBlockIsInThisFile() throws {
    let blocks = try Self.swiftBlocks(Self.article)
    #expect(blocks.count == 6)
    let source = try String(contentsOf: URL(fileURLWithPath: #filePath), encoding: .utf8)
    for block in blocks {
      let found = source.contains(block)
      #expect(found, "not in GettingStartedTests.swift:\n\(block)")
    }
  }

  /// The README's Swift (its "Three ways in" section) is a block of the article.
  @Test func theReadmesSwiftIsTheArticles() throws {
    let readme = try Self.swiftBlocks(Self.root.appendingPathComponent("README.md"))
    let article = try Self.swiftBlocks(Self.article)
    #expect(!readme.isEmpty)
    for block in readme {
      let found = article.contains(block)
      #expect(found, "README block not in the article:\n\(block)")
    }
  }
}
