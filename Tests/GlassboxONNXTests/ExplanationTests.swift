import Foundation
import Glassbox
import GlassboxFormat
import GlassboxIR
import GlassboxPasses
import GlassboxReference
import Testing

/// Taps on imported models: Grad-CAM at the map `auto` picks against PyTorch's, taps by ONNX
/// value name, and explanations through grouped and dilated convolutions against the
/// reference interpreter.
struct ExplanationTests {
  /// tiny_resnet's Grad-CAM at its last residual block, as PyTorch computes it in float64
  /// (tools/reference/onnx_fixtures.py), within 1e-3.
  @Test func gradCAMMatchesPyTorchs() throws {
    let c = try Case("tiny_resnet")
    let (model, tap) = try Model(contentsOf: c.path).withTap("gradcam:auto")
    #expect(tap == "gradcam")
    let target = try #require(model.graph.taps.last).operands[0]
    #expect(model.graph[target].name == "layer2.relu_1.Relu_output_0")
    let explanation = try model.session().explain(tap, ["image": c.inputs[0]])
    let expected = try NPYFixture.read("cases/tiny_resnet.gradcam.npy")
    #expect(explanation.map.shape == [2, 4, 4])
    #expect(
      close(explanation.map, expected, tolerance: 1e-3),
      "differs by \(largestDifference(explanation.map, expected))")
  }

  /// A tap may name its value as the ONNX file does.
  @Test func tapsTakeONNXNames() throws {
    let c = try Case("tiny_resnet")
    let base = try Model(contentsOf: c.path)
    let (byONNX, name) = try base.withTap("gradcam:/layer2/relu_1/Relu_output_0:name=by_onnx_name")
    #expect(name == "by_onnx_name")
    let (bySpec, _) = try base.withTap("gradcam:layer2.relu_1.Relu_output_0")
    #expect(byONNX.graph.taps[0].operands == bySpec.graph.taps[0].operands)
    let (cam, camName) = try base.withTap("cam:auto")
    #expect(cam.graph.taps[0].operands.map { cam.graph[$0].name } == ["layer2.relu_1.Relu_output_0", "fc.weight"])
    #expect(camName == "cam")
    #expect(throws: GlassboxError.self) { try base.withTap("gradcam:/no/such/value") }
  }

  /// Saliency of tiny_mobile's input goes back through a depthwise (groups = channels) and a
  /// dilated convolution, squeeze-and-excitation and the composed ReLU6, Hardswish and
  /// LeakyReLU: the runtime's backward kernels against the reference interpreter.
  @Test func explanationsThroughGroupedAndDilatedConvolutions() throws {
    let c = try Case("tiny_mobile")
    let base = try Model(contentsOf: c.path)
    for text in ["saliency:image", "gradcam:auto"] {
      let (model, tap) = try base.withTap(text)
      let explanation = try model.session().explain(tap, ["image": c.inputs[0]], target: .fixed(1))
      let bound = try model.graph.bound(["B": 2])
      let lowered = try LowerTaps.apply(to: Module(graph: bound), options: .init(taps: [tap], classIndex: 1))
      var parameters: [String: Tensor] = [:]
      for (p, t) in zip(bound.parameters, try model.parameterTensors()) { parameters[p.name] = t }
      var interpreter = ReferenceInterpreter(graph: lowered.module.graph)
      let all = try interpreter.run(inputs: ["image": c.inputs[0]], parameters: parameters)
      let graph = lowered.module.graph
      let output = try #require(graph.outputs.first { $0.name == tap })
      let expected = all[graph[output.value].name]
      #expect(close(explanation.map, expected, tolerance: 1e-4), "\(text)")
    }
  }
}

/// `.npy` fixtures of this target.
enum NPYFixture {
  static func read(_ relative: String) throws -> Tensor { try NPY.read(Repo.fixture(relative)) }
}
