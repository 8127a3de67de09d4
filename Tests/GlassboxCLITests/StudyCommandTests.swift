import Foundation
import Glassbox
import GlassboxIR
import GlassboxAnalysis
@testable import GlassboxCLI
import Testing

/// The study's stage runner: records, continuation, failures, refusing foreign folders.
struct StudyCommandTests {
  final class Counter: @unchecked Sendable { var runs: [String] = [] }

  static func stages(_ counter: Counter, failing: Bool) -> [StudyStage] {
    [
      StudyStage(name: "one", command: "echo one") { _ in
        counter.runs.append("one"); return .done("first")
      },
      StudyStage(name: "two") { _ in
        counter.runs.append("two")
        if failing { throw AnalysisError("disk full") }
        return .done(nil)
      },
      StudyStage(name: "maybe") { _ in
        counter.runs.append("maybe"); return .skipped("not in this build")
      },
      StudyStage(name: "report", always: true) { record in
        counter.runs.append("report")
        record.record(StudyRecord.ModelResult(name: "bilstm", dataset: "speech", accuracy: 0.5))
        return .done(nil)
      },
    ]
  }

  @Test func interruptedRunContinues() throws {
    try FeaturesCommandTests.withTemporaryDirectory { dir in
      let out = dir.appendingPathComponent("study").path
      let counter = Counter()
      var runner = StudyRunner(folder: try StudyFolder.prepare(out, force: false, quick: true), redo: [])
      #expect(throws: (any Error).self) { try runner.run(stages: Self.stages(counter, failing: true)) }
      var record = try StudyRecord.read(out + "/study.json")
      #expect(record.stages.map(\.state) == ["done", "failed", "skipped", "done"])
      #expect(record.stage("two")?.note == "disk full")
      #expect(record.stage("one")?.command == "echo one")
      #expect(record.models.map(\.name) == ["bilstm"])

      // Again: 'one' is reused; the failed and skipped stages and the report run again.
      counter.runs = []
      runner = StudyRunner(folder: try StudyFolder.prepare(out, force: false, quick: true), redo: [])
      try runner.run(stages: Self.stages(counter, failing: false))
      #expect(counter.runs == ["two", "maybe", "report"])
      record = try StudyRecord.read(out + "/study.json")
      #expect(record.stages.map(\.state) == ["done", "done", "skipped", "done"])

      // --redo reruns a done stage.
      counter.runs = []
      runner = StudyRunner(folder: try StudyFolder.prepare(out, force: false, quick: true), redo: ["one"])
      try runner.run(stages: Self.stages(counter, failing: false))
      #expect(counter.runs == ["one", "maybe", "report"])
    }
  }

  @Test func foreignFoldersAreRefused() throws {
    try FeaturesCommandTests.withTemporaryDirectory { dir in
      try "x".write(to: dir.appendingPathComponent("notes.txt"), atomically: true, encoding: .utf8)
      #expect {
        _ = try StudyFolder.prepare(dir.path, force: false, quick: true)
      } throws: {
        GlassboxCommand.message(for: $0).contains(
          "exists and is not a study folder (no study.json); choose another or give --force")
      }
      #expect(try StudyFolder.prepare(dir.path, force: true, quick: true).record.stages.isEmpty)

      let study = dir.appendingPathComponent("s").path
      var runner = StudyRunner(folder: try StudyFolder.prepare(study, force: false, quick: false), redo: [])
      try runner.run(stages: [])
      #expect {
        _ = try StudyFolder.prepare(study, force: false, quick: true)
      } throws: { GlassboxCommand.message(for: $0).contains("holds a full study; run it the same way to continue") }
    }
  }

  @Test func missingPackagesAreNamed() throws {
    #expect {
      try SystemPackages.require(["no-such-package"], for: "generating the speech data")
    } throws: {
      GlassboxCommand.message(for: $0)
        == "generating the speech data needs the Debian package no-such-package; install with tools/setup (or apt-get install no-such-package)"
    }
  }

  @Test func unknownModelsAreRefused() throws {
    #expect {
      try FeaturesCommandTests.glassbox(["study", "--quick", "-o", "/tmp/x", "--only", "lenet"])
    } throws: {
      GlassboxCommand.message(for: $0).hasPrefix("unknown study model 'lenet'; the study models are bilstm, ")
    }
  }

  /// Every command line the study records parses as the command it names, for every model of
  /// both runs (so a renamed flag fails here, not an hour into a study).
  @Test func recordedCommandsParse() throws {
    for quick in [true, false] {
      let context = StudyContext(
        directory: "/tmp/s", dataRoot: "/tmp/s/data", tools: Self.tools, plan: StudyPlan(quick: quick, seed: 0),
        threads: 2, givenModels: [:])
      for model in StudyPlan.models {
        let steps = CommandModelSteps()
        let train = Array(steps.arguments(.train, model: model, context: context).dropFirst())
        let t = try Train.parse(train)
        #expect(t.epochs == context.plan.training(model).epochs)
        #expect(t.options.spec.hasSuffix("graphs/\(model.name).graph"))
        let e = try Evaluate.parse(Array(steps.arguments(.evaluate, model: model, context: context).dropFirst()))
        #expect(e.tap == nil)
        let x = try Evaluate.parse(Array(steps.arguments(.explain, model: model, context: context).dropFirst()))
        #expect(x.tap == context.plan.explanation(model).tap)
        if model.dataset == "actions" { #expect(train.contains("C=8")) }
      }
    }
  }

  /// The action models are explained at the deepest layer whose class-activation map is at least 4×4
  /// at the run's frame size (the shapes come from the specs' own shape rules).
  @Test func actionModelsAreExplainedAtTheDeepestMapOfAtLeastFourByFour() throws {
    for quick in [true, false] {
      let plan = StudyPlan(quick: quick, seed: 0)
      for model in StudyPlan.models where model.dataset == "actions" {
        let bindings = plan.training(model).bindingMap.merging(["C": 8, "B": 1]) { a, _ in a }
        var graph = try Spec.checkedGraph(
          try loadSource(FeaturesCommandTests.path("graphs/\(model.name).graph")),
          bindings: bindings)
        let (tap, adding, kind) = plan.explanation(model)
        if let adding { try Model.addTap(adding, to: &graph) }
        let side = { (name: String) in graph.taps.first { $0.name == name }?.type.shape.last?.staticValue ?? 0 }
        #expect(side(tap) >= 4, "\(model.name) quick=\(quick): \(tap) is \(side(tap))×\(side(tap))")
        // The spec's own Grad-CAM tap is at the deepest map: the explained map is that one, or
        // that one is too small.
        #expect(
          side(tap) == side("gradcam") || side("gradcam") < 4,
          "\(model.name) quick=\(quick): the deepest map (\(side("gradcam"))×\(side("gradcam"))) would do")
        // LayerCAM at the last map, Grad-CAM at a shallower one.
        #expect(
          tap.hasPrefix(side(tap) == side("gradcam") ? "layercam_" : "gradcam_"), "\(model.name) quick=\(quick): \(tap)"
        )
        #expect(tap.hasPrefix(kind + "_") && StudyPlan.camTitles[kind] != nil)
      }
    }
  }

  static var tools: String { FeaturesCommandTests.path("tools") }

  /// An interrupted training continues from its checkpoint; a finished one asked for again
  /// (`--redo train.M`) starts over; a model without a checkpoint is replaced.
  @Test func trainingContinuesOrStartsOver() throws {
    try FeaturesCommandTests.withTemporaryDirectory { dir in
      let model = try #require(StudyPlan.model(named: "bilstm"))
      let file = dir.appendingPathComponent("bilstm.model").path
      var record = StudyRecord(quick: true, machine: "m", started: "s")
      #expect(CommandModelSteps.continuation(of: model, file: file, record: record) == nil)
      try Data("model".utf8).write(to: URL(fileURLWithPath: file))
      #expect(CommandModelSteps.continuation(of: model, file: file, record: record) == "--force")
      try Data("state".utf8).write(to: URL(fileURLWithPath: file + ".state.safetensors"))
      #expect(CommandModelSteps.continuation(of: model, file: file, record: record) == "--resume")
      record.record(StudyRecord.Stage(name: "train.bilstm", state: "failed", seconds: 1))
      #expect(CommandModelSteps.continuation(of: model, file: file, record: record) == "--resume")
      record.record(StudyRecord.Stage(name: "train.bilstm", state: "done", seconds: 1))
      #expect(CommandModelSteps.continuation(of: model, file: file, record: record) == "--force")
    }
  }
}
