import Foundation
import Glassbox
@testable import GlassboxCLI
import GlassboxFormat
import Testing

/// `glassbox evaluate` on a small spoken-language set made of the MFCC fixtures' clips.
struct EvaluateCommandTests {
  @Test func attentionEvaluationReportsEverySection() throws {
    try ModelCommandTests.withTemporaryDirectory { dir in
      let clips = ["speech16k", "burst16k", "chirp22k"]
      for language in ["Hindi", "Tamil"] {
        let folder = dir.appendingPathComponent("lid/\(language)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (i, clip) in clips.enumerated() {
          let source = ModelCommandTests.root.appendingPathComponent(
            "Tests/GlassboxMediaTests/Fixtures/mfcc/\(clip).wav")
          try FileManager.default.copyItem(at: source, to: folder.appendingPathComponent("\(clip)_\(i).wav"))
          try Data(#"{"duration": 1.0, "speech": [[0.2, 0.6]]}"#.utf8).write(
            to: folder.appendingPathComponent("\(clip)_\(i).json"))
        }
      }
      let command = try Evaluate.parse([
        ModelCommandTests.spec("bilstm_attention1d"), "attention", "--bind", "C=2",
        "--data", dir.appendingPathComponent("lid").path, "--split", "train",
        "--steps", "4", "--permutations", "2", "--json",
      ])
      let report = try command.measure()
      let json = try #require(
        try JSONSerialization.jsonObject(with: Data(JSONValue.object(report).text.utf8)) as? [String: Any])
      #expect(ExplanationEvaluation.table(report).contains("deletion.auc"))
      let deletion = try #require(json["deletion"] as? [String: Any])
      #expect((deletion["curve"] as? [Double])?.count == 5)
      #expect(json["units"] as? String == "time frames")
      let faithfulness = try #require(json["attention_faithfulness"] as? [String: Any])
      #expect((0...1).contains(try #require(faithfulness["uniform_accuracy"] as? Double)))
      // Attention weights are computed before the classifier: re-initialising it leaves them
      // exactly as they were; re-initialising the attention layer changes them.
      let sanity = try #require(json["sanity"] as? [[String: Any]])
      #expect(sanity.map { $0["reinitialised_through"] as? String } == ["classifier", "attention", "lstm"])
      #expect(abs((sanity[0]["spearman"] as? Double ?? 0) - 1) < 1e-9)
      #expect((sanity[1]["spearman"] as? Double ?? 1) < 0.99)
      let speech = try #require(json["speech"] as? [String: Any])
      #expect((0...1).contains(try #require(speech["attention_mass_in_speech"] as? Double)))
    }
  }

  /// `--methods` measures each method on the same examples as measuring its tap alone does,
  /// with its cost, and refuses a method that does not fit before measuring any.
  @Test func methodsAreComparedOnTheSameExamples() throws {
    try ModelCommandTests.withTemporaryDirectory { dir in
      for language in ["Hindi", "Tamil"] {
        let folder = dir.appendingPathComponent("lid/\(language)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (i, clip) in ["speech16k", "chirp22k"].enumerated() {
          let source = ModelCommandTests.root.appendingPathComponent(
            "Tests/GlassboxMediaTests/Fixtures/mfcc/\(clip).wav")
          try FileManager.default.copyItem(at: source, to: folder.appendingPathComponent("\(clip)_\(i).wav"))
          try Data(#"{"duration": 1.0, "speech": [[0.2, 0.6]]}"#.utf8)
            .write(to: folder.appendingPathComponent("\(clip)_\(i).json"))
        }
      }
      let common = [
        ModelCommandTests.spec("bilstm_attention1d"), "--bind", "C=2", "--data",
        dir.appendingPathComponent("lid").path, "--split", "train", "--steps", "4", "--permutations", "2",
        "--no-sanity",
      ]
      let results = try Evaluate.parse(common + ["--methods", "attention,saliency,gradient:mfcc"])
        .compare(["attention", "saliency", "gradient:mfcc"])
      #expect(results.map(\.method) == ["attention", "saliency", "gradient:mfcc"])
      for r in results {
        let alone = try Evaluate.parse(common + [r.method]).measure()
        #expect(JSONValue.object(r.report).text == JSONValue.object(alone).text, "\(r.method)")
        #expect(r.secondsPerExample > 0)
      }
      // Saliency weighs the input's frames: its relevance inside the speech is measured too.
      let saliency = try #require(
        try JSONSerialization.jsonObject(
          with: Data(JSONValue.object(results[1].report).text.utf8)) as? [String: Any])
      let speech = try #require(saliency["speech"] as? [String: Any])
      #expect((0...1).contains(try #require(speech["relevance_mass_in_speech"] as? Double)))
      let table = ExplanationEvaluation.comparisonTable(results)
      #expect(table.split(separator: "\n").count == 4)
      #expect(table.contains("mass in speech") && table.contains("deletion AUC") && table.contains("s/example"))

      // A method the model cannot run is refused by name before any is measured.
      let bad = #expect(throws: GlassboxError.self) {
        try Evaluate.parse(common + ["--methods", "attention,cam:auto"]).compare(["attention", "cam:auto"])
      }
      #expect(bad?.description.contains("cam:auto") == true)
    }
  }

  /// A model trained with `--seed 7` is measured on the split that seed drew (the clips it
  /// never saw), not on seed 0's.
  @Test func spokenLanguageSplitFollowsTheTrainingSeed() throws {
    try ModelCommandTests.withTemporaryDirectory { dir in
      let lid = dir.appendingPathComponent("lid")
      for language in ["Hindi", "Tamil"] {
        let folder = lid.appendingPathComponent(language)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for i in 0..<10 {  // 8 / 1 / 1 per language
          let source = ModelCommandTests.root.appendingPathComponent(
            "Tests/GlassboxMediaTests/Fixtures/mfcc/speech16k.wav")
          try FileManager.default.copyItem(at: source, to: folder.appendingPathComponent("clip_\(i).wav"))
        }
      }
      let path = dir.appendingPathComponent("lid.model").path
      try ModelCommandTests.glassbox(["compile", ModelCommandTests.spec("bilstm"), "--bind", "C=2", "-o", path])
      var contents = try ModelFile.load(path).contents
      var training = Training()
      training.seed = 7
      contents.provenance.training = training
      try ModelFile.write(contents, to: path)

      let result = try Evaluate.parse([path, "--data", lid.path, "--split", "test"]).classify()
      #expect(!result.examples.isEmpty)
      #expect(FileManager.default.fileExists(atPath: lid.appendingPathComponent("split_seed7.txt").path))
      #expect(!FileManager.default.fileExists(atPath: lid.appendingPathComponent("split_seed0.txt").path))
    }
  }
}
