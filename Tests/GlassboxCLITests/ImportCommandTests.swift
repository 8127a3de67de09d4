import ArgumentParser
import Foundation
import Glassbox
@testable import GlassboxCLI
import GlassboxFormat
import GlassboxIR
import Testing

/// `glassbox import`: an ONNX model written as a spec with its weights beside it (compiling
/// the two gives the model back) or as a `.model`; `check --print` of an ONNX model lists the
/// names it renamed above a spec that checks.
struct ImportCommandTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
  static let model = root.appendingPathComponent("Tests/GlassboxONNXTests/Fixtures/cases/tiny_resnet.onnx").path
  static let input = root.appendingPathComponent("Tests/GlassboxONNXTests/Fixtures/cases/tiny_resnet.input0.npy").path

  @Test func aSpecWithItsWeightsCompilesToTheSameModel() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glassbox-import-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let spec = dir.appendingPathComponent("resnet.graph").path
    try Import.parse([Self.model, "-o", spec]).run()
    let text = try String(contentsOfFile: spec, encoding: .utf8)
    #expect(text.hasPrefix("# imported from \(Self.model) (ONNX opset 17, written by pytorch"))
    #expect(text.contains("#   /layer2/relu_1/Relu_output_0 → layer2.relu_1.Relu_output_0\n"))
    #expect(text.contains("# weights: resnet.safetensors"))
    let weights = dir.appendingPathComponent("resnet.safetensors").path
    let compiled = try Model(contentsOf: spec, weights: Model.WeightOptions(file: weights))
    let imported = try Model(contentsOf: Self.model)
    #expect(compiled.graph == imported.graph)
    let x = try NPY.read(Self.input)
    let a = try compiled.session().run(["image": x])["output"]
    let b = try imported.session().run(["image": x])["output"]
    #expect(a != nil && a == b)

    let file = dir.appendingPathComponent("resnet.model").path
    try Import.parse([Self.model, "-o", file, "--bind", "B=2"]).run()
    let loaded = try Model(contentsOf: file)
    #expect(loaded.inputs.map(\.description) == ["image f32[2, 3, 16, 16]"])
    #expect(try loaded.session().run(["image": x])["output"] == b)
  }

  @Test func theOutputMustBeASpecOrAModel() {
    #expect(throws: (any Error).self) { try Import.parse([Self.model, "-o", "x.onnx"]) }
  }
}
