import Foundation
import Glassbox
@testable import GlassboxCLI
import GlassboxFormat
import GlassboxIR
import Testing

/// `glassbox compile`, `info`, `export`, and `check`/`dot` on a `.model`.
struct ModelCommandTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
  static func spec(_ name: String) -> String { root.appendingPathComponent("graphs/\(name).graph").path }

  static func withTemporaryDirectory(_ body: (URL) throws -> Void) throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glassbox-model-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    try body(dir)
  }

  static func glassbox(_ arguments: [String]) throws {
    var command = try GlassboxCommand.parseAsRoot(arguments)
    try command.run()
  }

  static func message(_ arguments: [String]) -> String {
    do {
      try glassbox(arguments)
      return "no error"
    } catch {
      return GlassboxCommand.message(for: error)
    }
  }

  @Test func compileInfoExportAndReimport() throws {
    try Self.withTemporaryDirectory { dir in
      let model = dir.appendingPathComponent("lid.model").path
      let labels = dir.appendingPathComponent("labels.txt")
      try Data("hindi\ntamil\r\nurdu\n".utf8).write(to: labels)
      try Self.glassbox([
        "compile", Self.spec("bilstm_attention1d"), "--bind", "C=3", "--labels", labels.path,
        "--seed", "5", "--tap", "gradient:classifier:class=2", "-o", model,
      ])
      let file = try ModelFile.load(model)
      #expect(file.labels == ["hindi", "tamil", "urdu"])
      #expect(file.provenance.weights == .initialized(seed: 5))
      #expect(file.provenance.bindings == ["C": 3])
      #expect(file.graph.taps.map(\.name) == ["attention", "hidden", "saliency", "gradient"])
      #expect(file.graph.taps.last?.options["class"] == .int(2))

      let summary = Info.summary(file)
      #expect(summary.contains("  output  logits: f32[B, 3]\n"))
      #expect(summary.contains("  labels: 3 (hindi, tamil, urdu)\n"))
      #expect(summary.contains("  weights: initialised with seed 5\n"))
      let json = try #require(try JSONSerialization.jsonObject(with: Data(Info.json(file).text.utf8)) as? [String: Any])
      #expect(json["parameterCount"] as? Int == 41_667 + 65)
      #expect(json["weightBytes"] as? Int == file.weightByteCount)
      #expect((json["provenance"] as? [String: Any])?["producer"] as? String == "glassbox")

      let weights = dir.appendingPathComponent("w.safetensors").path
      try Self.glassbox(["export", model, "-o", weights])
      let exported = try SafeTensors.read(weights)
      #expect(Set(exported.tensors.map(\.name)) == Set(file.graph.parameters.map(\.name)))
      let again = dir.appendingPathComponent("again.model").path
      try Self.glassbox([
        "compile", Self.spec("bilstm_attention1d"), "--bind", "C=3", "--weights", weights, "-o", again,
      ])
      let reloaded = try ModelFile.load(again)
      #expect(reloaded.namedWeights() == file.namedWeights())
      if case .imported(let sha) = reloaded.provenance.weights {
        #expect(sha == SHA256.hex([UInt8](try Data(contentsOf: URL(fileURLWithPath: weights)))))
      } else {
        Issue.record("imported weights are not recorded")
      }
      // Re-compiling a model adds a tap and keeps weights, labels and provenance.
      let more = dir.appendingPathComponent("more.model").path
      try Self.glassbox(["compile", model, "--tap", "hidden:lstm:name=h", "-o", more])
      let recompiled = try ModelFile.load(more)
      #expect(recompiled.graph.taps.map(\.name) == file.graph.taps.map(\.name) + ["h"])
      #expect(recompiled.namedWeights() == file.namedWeights())
      #expect(recompiled.labels == file.labels && recompiled.provenance == file.provenance)
      // check and dot take the model where they take a spec.
      try Self.glassbox(["check", model])
      try Self.glassbox(["dot", model, "-o", dir.appendingPathComponent("net.dot").path])
      #expect(Self.message(["check", model, "--bind", "B=2"]).contains("--bind applies to spec files"))
    }
  }

  /// `run` and `bench` take a `.model` wherever they take a spec: the model's own weights
  /// give the same outputs as the spec initialised with the same seed.
  @Test func runAndBenchAcceptAModel() throws {
    try Self.withTemporaryDirectory { dir in
      let model = dir.appendingPathComponent("lid.model").path
      try Self.glassbox(["compile", Self.spec("bilstm"), "--bind", "C=3", "--seed", "7", "-o", model])
      let input = dir.appendingPathComponent("mfcc.npy").path
      let values = (0..<(2 * 768 * 128)).map { Float(sin(Double($0) * 0.37)) }
      try NPY.write(Tensor(shape: [2, 768, 128], f32: values), to: input)
      let fromModel = dir.appendingPathComponent("model").path, fromSpec = dir.appendingPathComponent("spec").path
      try Self.glassbox(["run", model, "--input", "mfcc=\(input)", "-o", fromModel])
      try Self.glassbox([
        "run", Self.spec("bilstm"), "--bind", "C=3", "--seed", "7", "--input", "mfcc=\(input)", "-o", fromSpec,
      ])
      let a = try NPY.read(fromModel + "/logits.npy"), b = try NPY.read(fromSpec + "/logits.npy")
      #expect(a.shape == [2, 3])
      #expect(a == b)
      #expect(
        Self.message(["run", model, "--weights", input, "--input", "mfcc=\(input)"])
          == "--weights applies to a spec; a .model carries its weights")

      try Self.glassbox(["bench", model, "--bind", "B=1", "--iterations", "2", "--warmup", "0", "--warmup-ms", "0"])
      #expect(
        Self.message(["bench", model, "--bind", "X=1"])
          == "\(model): --bind names X, not a symbol of the model (its symbols: B)")
    }
  }

  /// `run`'s inputs that do not fit the graph: each message names the file and says what the
  /// graph expects, all of an input's problems at once.
  @Test func runNamesTheInputFileThatDoesNotFit() throws {
    try Self.withTemporaryDirectory { dir in
      func write(_ name: String, _ t: Tensor) throws -> String {
        let path = dir.appendingPathComponent(name).path
        try NPY.write(t, to: path)
        return path
      }
      let short = try write("short.npy", Tensor(shape: [1, 700, 128], f32: [Float](repeating: 0, count: 700 * 128)))
      let flat = try write("flat.npy", Tensor(shape: [768, 128], f32: [Float](repeating: 0, count: 768 * 128)))
      let both = try write("both.npy", Tensor(shape: [1, 700, 100], f32: [Float](repeating: 0, count: 700 * 100)))
      let integers = try write(
        "integers.npy", Tensor(shape: [1, 768, 128], storage: .i64([Int64](repeating: 0, count: 768 * 128))))
      let spec = Self.spec("bilstm")
      #expect(
        Self.message(["run", spec, "--bind", "C=3", "--input", "mfcc=\(integers)"])
          == "\(integers): input 'mfcc' is i64 but the graph expects f32")
      #expect(
        Self.message(["run", spec, "--bind", "C=3", "--input", "mfcc=\(short)"])
          == "\(short): input 'mfcc' has size 700 on axis 1 but the graph expects 768")
      #expect(
        Self.message(["run", spec, "--bind", "C=3", "--input", "mfcc=\(flat)"])
          == "\(flat): input 'mfcc' has 2 axes [768, 128] but the graph expects 3: f32[B, 768, 128]")
      #expect(
        Self.message(["run", spec, "--bind", "C=3", "--input", "mfcc=\(both)"])
          == "\(both): input 'mfcc' has size 700 on axis 1 but the graph expects 768\n"
          + "\(both): input 'mfcc' has size 100 on axis 2 but the graph expects 128")
    }
  }

  /// `compile --print-after/--stats`: the IR printed after a pass parses back to the graph
  /// that pass made, and the statistics follow the pipeline.
  @Test func printAfterAndStats() throws {
    let model = try Model(
      contentsOf: Self.spec("resnet18"), bindings: ["B": 1, "C": 10],
      weights: Model.WeightOptions(seed: 1))
    let graph = model.graph
    let text = try model.inferencePipelineReport(printAfter: ["fold-batch-norm"], stats: true)
    let printed = try #require(
      text.components(separatedBy: "// after fold-batch-norm\n").last?
        .components(separatedBy: "\npass ").first)
    let reparsed = try Spec.checkedGraph(SourceText(fileName: "printed", text: printed), bindings: [:])
    #expect(!reparsed.nodes.contains { $0.op == .batchNorm })
    #expect(reparsed.nodes.count == graph.nodes.count - 20)
    let statLines = text.split(separator: "\n").filter {
      $0.hasPrefix("fold-batch-norm") || $0.hasPrefix("fuse-epilogues")
    }
    #expect(statLines.count == 2)
    #expect(statLines[0].contains("\(graph.nodes.count - 20)  yes"))
    #expect(text.contains("arena: "))
    #expect(
      Self.message(["compile", Self.spec("bilstm"), "--print-after", "fold-everything"]).hasPrefix(
        "--print-after fold-everything: no such pass; the pipeline runs unroll-lstm, simplify-algebra"))
    #expect(
      Self.message(["compile", Self.spec("bilstm")])
        == "give -o FILE.model, or --print-after PASS, --print-after-all, --stats or --print-lowered")
  }

  /// `compile --print-lowered`: the program a session runs by default, once every symbol is bound.
  @Test func printLowered() throws {
    let bound = try Model(
      contentsOf: Self.spec("bilstm"), bindings: ["B": 1, "C": 3],
      weights: Model.WeightOptions(seed: 1))
    let text = try bound.inferencePipelineReport(lowered: true)
    #expect(text.hasPrefix("program bilstm: "))
    #expect(text.contains("\nprogram\n  lstm lstm (hidden: 32, bidirectional: true)\n    kernel lstm lstm\n"))
    let unbound = try Model(contentsOf: Self.spec("bilstm"), bindings: ["C": 3], weights: Model.WeightOptions(seed: 1))
    #expect(try unbound.inferencePipelineReport(lowered: true) == "arena: bind B (--bind) to lower it\n")
  }

  @Test func weightProblemsAreReportedAndNothingIsWritten() throws {
    try Self.withTemporaryDirectory { dir in
      let weights = dir.appendingPathComponent("w.safetensors").path
      try SafeTensors.write(
        SafeTensorsFile(tensors: [
          NamedTensor("classifier.weight", Tensor(shape: [4, 64], f32: [Float](repeating: 0, count: 256))),
          NamedTensor("extra", Tensor(shape: [1], f32: [0])),
        ]), to: weights)
      let output = dir.appendingPathComponent("lid.model")
      try Data("keep".utf8).write(to: output)
      let m = Self.message(["compile", Self.spec("bilstm"), "--bind", "C=3", "--weights", weights, "-o", output.path])
      let lines = m.split(separator: "\n").map(String.init)
      #expect(lines.first == "\(weights): does not fit bilstm: 9 missing, 1 mis-shaped, 1 unexpected tensors")
      #expect(lines.count == 12)  // the summary, then each problem
      #expect(lines.contains("  unexpected: extra"))
      #expect(lines.contains { $0.hasPrefix("  mis-shaped: classifier.weight: file has f32[4, 64]") })
      #expect(try Data(contentsOf: output) == Data("keep".utf8))
      #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["lid.model", "w.safetensors"])
    }
  }

  /// A torchvision-style backbone under a new head: `--rename =cnn.` puts every name under the
  /// spec's `cnn.` scope, `--allow-unexpected` drops the old classifier, `--allow-missing`
  /// initialises the new layers from the seed — exactly as a compile without weights would.
  @Test func pretrainedBackboneImportsUnderANewHead() throws {
    try Self.withTemporaryDirectory { dir in
      let spec = dir.appendingPathComponent("net.graph").path
      try """
      graph net(x: f32[B, 2, 6, 6]) -> (y: f32[B, C]) where C = 3 {
        cnn = each_step(trunk, reshape(x, shape: [B, 1, 2, 6, 6]))
        head = linear(select(cnn, axis: 1, index: 0), out: C)
        y = head
      }
      block trunk(image) {
        conv1 = conv2d(image, out: 4, kernel: 3, padding: 1, bias: false)
        return flatten(global_avg_pool2d(relu(conv1)))
      }
      """.write(toFile: spec, atomically: true, encoding: .utf8)
      let backbone = Tensor(shape: [4, 2, 3, 3], f32: (0..<72).map { Float($0) / 72 })
      let weights = dir.appendingPathComponent("resnet.safetensors").path
      try SafeTensors.write(
        SafeTensorsFile(tensors: [
          NamedTensor("conv1.weight", backbone),
          NamedTensor("fc.weight", Tensor(shape: [10, 4], f32: [Float](repeating: 1, count: 40))),
        ]), to: weights)
      let out = dir.appendingPathComponent("net.model").path
      let refusal = Self.message(["compile", spec, "--weights", weights, "--rename", "=cnn.", "-o", out])
      #expect(
        refusal.split(separator: "\n").first
          == "\(weights): does not fit net: 2 missing, 0 mis-shaped, 1 unexpected tensors (pass --allow-missing to initialise the missing ones, or --allow-unexpected to ignore the unexpected ones)"
      )
      #expect(!FileManager.default.fileExists(atPath: out))

      try Self.glassbox([
        "compile", spec, "--weights", weights, "--rename", "=cnn.", "--allow-missing", "--allow-unexpected",
        "--seed", "7", "-o", out,
      ])
      try Self.glassbox(["compile", spec, "--seed", "7", "-o", dir.appendingPathComponent("fresh.model").path])
      let model = try ModelFile.load(out), fresh = try ModelFile.load(dir.appendingPathComponent("fresh.model").path)
      let names = model.graph.parameters.map(\.name)
      #expect(names == ["cnn.conv1.weight", "head.weight", "head.bias"])
      #expect(model.weight(ofParameter: 0) == backbone)
      for i in 1..<names.count { #expect(model.weight(ofParameter: i) == fresh.weight(ofParameter: i)) }
    }
  }

  @Test func renameRulesApplyToPrefixes() throws {
    let (graph, file) = (
      try Spec.checkedGraph(
        SourceText(
          fileName: "t.graph",
          text: """
            graph g(x: f32[B, 4]) -> (y: f32[B, 2]) {
              fc = linear(x, out: 2)
              y = fc
            }
            """)),
      SafeTensorsFile(tensors: [
        NamedTensor("head.weight", Tensor(shape: [2, 4], f32: Array(repeating: 1, count: 8))),
        NamedTensor("head.bias", Tensor(shape: [2], f32: [1, 2])),
      ])
    )
    let matched = WeightImport(graph: graph, file: file, renames: [WeightImport.Rename(old: "head.", new: "fc.")])
    #expect(matched.isComplete && matched.problems.isEmpty)
    #expect(
      WeightImport(graph: graph, file: file).problems == [
        "missing: fc.weight", "missing: fc.bias",
        "unexpected: head.weight", "unexpected: head.bias",
      ])
  }

  @Test func tapOptionErrors() throws {
    try Self.withTemporaryDirectory { dir in
      let out = dir.appendingPathComponent("m.model").path
      let base = ["compile", Self.spec("resnet18"), "-o", out]
      #expect(
        Self.message(base + ["--tap", "lime:layer4"]).hasPrefix(
          "--tap lime:layer4: unknown tap kind 'lime'; expected activation, "))
      #expect(
        Self.message(base + ["--tap", "gradcam:nope"]) == "--tap gradcam:nope: the graph has no value named 'nope'")
      #expect(
        Self.message(base + ["--tap", "gradcam:layer3:name=cam"])
          == "--tap gradcam:layer3:name=cam: a tap named 'cam' exists already; give another with :name=NAME")
      #expect(
        Self.message(base + ["--tap", "gradcam:layer3:scope=sometimes"])
          == "--tap gradcam:layer3:scope=sometimes: option scope must be one of frame, clip, found 'sometimes'")
      #expect(
        Self.message(base + ["--tap", "cam:layer4"])
          == "--tap cam:layer4: tap cam takes 2 values (separated by ','), found 1")
      #expect(
        Self.message(base + ["--tap", "gradcam:fc"]).hasPrefix(
          "--tap gradcam:fc: tap gradcam: Grad-CAM cannot explain layer 'fc': it has no spatial axes"))
      #expect((try? FileManager.default.contentsOfDirectory(atPath: dir.path))?.isEmpty == true)
    }
  }

  @Test func addedTapsFollowTheSpecRules() throws {
    var graph = try Spec.checkedGraph(
      SourceText(fileName: "r.graph", text: try String(contentsOfFile: Self.spec("resnet18"), encoding: .utf8)))
    try Model.addTap("gradcam:layer3:class=7", to: &graph)
    try Model.addTap("gradcampp:layer4:name=pp", to: &graph)
    #expect(graph.taps.map(\.name) == ["gradcam", "cam", "gradcam_layer3", "pp"])
    #expect(graph.taps[2].type == TensorType(.f32, [Dim(symbol: "B"), 14, 14]))
    #expect(Verifier.verify(graph).isEmpty)
  }
}
