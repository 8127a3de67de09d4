import Foundation
import Glassbox
import GlassboxIR
import GlassboxONNX
import GlassboxReference
import Testing

/// Every fixture model imported and run, against ONNX Runtime's outputs on the same inputs:
/// compiled through the library (the `glassbox` command's path) and on the Float64 reference
/// interpreter, the importer's graph printed as a spec and checked back to the same graph.
struct ImportedModelTests {
  /// Feeds by the model's input names, in ONNX's input order.
  static func feeds(_ model: Model, _ c: Case) -> [String: Tensor] {
    Dictionary(uniqueKeysWithValues: zip(model.inputs.map(\.name), c.inputs))
  }

  @Test(arguments: Case.names) func runsLikeONNXRuntime(_ name: String) throws {
    let c = try Case(name)
    let model = try Model(contentsOf: c.path)
    #expect(model.outputs.count == c.outputs.count)
    let out = try model.session(SessionOptions(threads: 2)).run(Self.feeds(model, c))
    for (info, expected) in zip(model.outputs, c.outputs) {
      let difference = out[info.name].map { largestDifference($0, expected) } ?? .infinity
      #expect(close(out[info.name], expected), "\(name): output \(info.name) differs by \(difference)")
    }
  }

  @Test(arguments: Case.names) func theReferenceInterpreterAgrees(_ name: String) throws {
    let c = try Case(name)
    let model = try Model(contentsOf: c.path)
    var bindings: [String: Int] = [:]
    for (id, t) in zip(model.graph.inputs, c.inputs) {
      for (d, size) in zip(model.graph[id].type.shape, t.shape) where !d.isStatic {
        if let s = d.symbols.first { bindings[s] = size }
      }
    }
    let bound = try model.graph.bound(bindings)
    var parameters: [String: Tensor] = [:]
    for (p, t) in zip(bound.parameters, try model.parameterTensors()) { parameters[p.name] = t }
    var interpreter = ReferenceInterpreter(graph: bound)
    let values = try interpreter.run(inputs: Self.feeds(model, c), parameters: parameters)
    for (output, expected) in zip(bound.outputs, c.outputs) {
      #expect(close(values[bound[output.value].name], expected), "\(name): output \(output.name)")
    }
  }

  @Test(arguments: Case.names) func printsAsASpecThatChecksToTheSameGraph(_ name: String) throws {
    let imported = try ONNXImporter.importModel(contentsOf: Case(name).path)
    let text = Printer.print(imported.graph)
    let parsed = try Spec.checkedGraph(SourceText(fileName: "\(name).graph", text: text))
    #expect(parsed == imported.graph, "\(name): the printed spec checks to another graph")
    #expect(imported.weights.count == imported.graph.parameters.count)
    for (p, w) in zip(imported.graph.parameters, imported.weights) { #expect(w.type == p.type, "\(p.name)") }
  }

  /// A dynamic batch is `B`: one imported model runs at any batch size.
  @Test func aDynamicBatchIsTheSymbolB() throws {
    let c = try Case("tiny_resnet")
    let model = try Model(contentsOf: c.path)
    #expect(model.inputs.map(\.description) == ["image f32[B, 3, 16, 16]"])
    #expect(model.outputs.map(\.description) == ["output f32[B, 5]"])
    let session = try model.session()
    let both = try session.run(["image": c.inputs[0]])["output"]
    let first = Tensor(shape: [1, 3, 16, 16], f32: Array(c.inputs[0].floats[0..<768]))
    let one = try session.run(["image": first])["output"]
    #expect(close(one, Tensor(shape: [1, 5], f32: Array(try #require(both).floats[0..<5])), tolerance: 1e-6))
    let fixed = try Model(contentsOf: c.path, bindings: ["B": 2])
    #expect(fixed.inputs.map(\.description) == ["image f32[2, 3, 16, 16]"])
  }

  /// PyTorch's names survive: initializers keep their state_dict names, torch.onnx's node
  /// outputs read as dotted paths, LSTM weights are named like nn.LSTM's.
  @Test func namesReadLikePyTorchs() throws {
    let lstm = try ONNXImporter.importModel(contentsOf: Case("tiny_bilstm_attention").path)
    let names = lstm.graph.parameters.map(\.name)
    #expect(names.contains("lstm.weight_ih_l0") && names.contains("lstm.bias_hh_l0_reverse"))
    #expect(names.contains("attention.weight") && names.contains("classifier.bias"))
    let stacked = try ONNXImporter.importModel(contentsOf: Case("tiny_lstm_state").path)
    #expect(stacked.graph.parameters.map(\.name).contains("lstm.weight_hh_l1"))
    let resnet = try ONNXImporter.importModel(contentsOf: Case("tiny_resnet").path)
    #expect(resnet.valueNames["/layer2/relu_1/Relu_output_0"] == "layer2.relu_1.Relu_output_0")
    #expect(resnet.renamed.contains { $0.onnx == "/layer2/relu_1/Relu_output_0" })
    #expect(resnet.graph.parameters.map(\.name).contains("fc.weight"))
    // Convolutions with their batch norms folded in keep their modules' state_dict names.
    #expect(resnet.graph.parameters.map(\.name).contains("layer2.downsample.0.weight"))
    #expect(resnet.graph.parameters.map(\.name).contains("layer1.conv2.bias"))
    #expect(ONNXNames.modulePath(ofNode: "/layer4/layer4.0/downsample/downsample.0/Conv") == "layer4.0.downsample.0")
    #expect(ONNXNames.modulePath(ofNode: "/features/features.0/features.0.0/Conv") == "features.0.0")
    #expect(ONNXNames.modulePath(ofNode: "Conv_3") == nil)
  }

  @Test func readableNames() {
    let cases = [
      ("/layer1/layer1.0/conv1/Conv_output_0", "layer1.layer1.0.conv1.Conv_output_0"),
      ("gpu_0/conv1_w_0", "gpu_0.conv1_w_0"), ("onnx::Conv_193", "onnx.Conv_193"), ("123", "v123"),
      ("layer1.0.conv1.weight", "layer1.0.conv1.weight"), ("input.1", "input.1"), ("a-b c", "a_b_c"),
      ("", "v"), ("///", "v"), ("param", "param_"), ("x:0", "x.0"), ("ü", "_"),
    ]
    for (onnx, spec) in cases { #expect(ONNXNames.readable(onnx) == spec, "\(onnx)") }
  }
}
