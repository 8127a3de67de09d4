import Foundation
@testable import GlassboxCLI
import GlassboxFormat
import GlassboxIR
import GlassboxMedia
import Testing

/// `glassbox features`: the .npy holds exactly the tensor the graph input receives for one file.
struct FeaturesCommandTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
  static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

  static func withTemporaryDirectory(_ body: (URL) throws -> Void) throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glassbox-features-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    try body(dir)
  }

  static func glassbox(_ arguments: [String]) throws {
    var command = try GlassboxCommand.parseAsRoot(arguments)
    try command.run()
  }

  @Test func audioFeaturesOfTheBiLSTMSpec() throws {
    try Self.withTemporaryDirectory { dir in
      let wav = Self.path("Tests/GlassboxMediaTests/Fixtures/mfcc/speech16k.wav")
      let output = dir.appendingPathComponent("x.npy").path
      try Self.glassbox(["features", Self.path("graphs/bilstm.graph"), wav, "-o", output])
      let tensor = try NPY.read(output)
      #expect(tensor.shape == [1, 768, 128])
      let expected = try AudioFeatures.mfcc(wav, recipe: AudioRecipe())
      #expect(tensor.floats == expected.floats)
      // With a cache: the same numbers, and the entry is reused.
      let cache = dir.appendingPathComponent("cache").path
      try Self.glassbox(["features", Self.path("graphs/bilstm.graph"), wav, "-o", output, "--cache", cache])
      #expect(try NPY.read(output) == tensor)
    }
  }

  /// `run` on a raw clip gives the model one example (batch 1), with the same outputs as the
  /// tensor `features` writes for that clip.
  @Test func runTakesARawClipThroughTheRecipe() throws {
    try Self.withTemporaryDirectory { dir in
      let wav = Self.path("Tests/GlassboxMediaTests/Fixtures/mfcc/speech16k.wav")
      let spec = Self.path("graphs/bilstm.graph")
      let x = dir.appendingPathComponent("x.npy").path
      try Self.glassbox(["features", spec, wav, "-o", x])
      try Self.glassbox([
        "run", spec, "--bind", "C=3", "--input", "mfcc=\(wav)", "-o", dir.appendingPathComponent("raw").path,
      ])
      try Self.glassbox([
        "run", spec, "--bind", "C=3", "--input", "mfcc=\(x)", "-o", dir.appendingPathComponent("npy").path,
      ])
      let raw = try NPY.read(dir.appendingPathComponent("raw/logits.npy").path)
      #expect(raw.shape == [1, 3])
      #expect(raw == (try NPY.read(dir.appendingPathComponent("npy/logits.npy").path)))
    }
  }

  @Test func recipeChoiceAndErrors() throws {
    let graph = try Spec.checkedGraph(try loadSource(Self.path("graphs/resnet18_lstm.graph")), bindings: [:])
    #expect(try Features.recipe(of: graph, named: nil, file: "net.graph").kind == .video)
    #expect {
      _ = try Features.recipe(of: graph, named: "mfcc", file: "net.graph")
    } throws: { error in
      GlassboxCommand.message(for: error) == "net.graph: input 'mfcc' has no recipe; inputs with recipes: frames"
    }
    try Self.withTemporaryDirectory { dir in
      #expect {
        try Self.glassbox([
          "features", Self.path("graphs/bilstm.graph"), Self.path("graphs/bilstm.graph"),
          "-o", dir.appendingPathComponent("x.npy").path,
        ])
      } throws: { error in
        GlassboxCommand.message(for: error).contains("bilstm.graph: not an audio file libsndfile can read")
      }
      #expect {
        try Self.glassbox(["features", Self.path("graphs/bilstm.graph"), "clip.wav", "-o", "x.txt"])
      } throws: { error in
        GlassboxCommand.message(for: error) == "cannot write 'x.txt': the output must be a .npy file"
      }
    }
  }
}
