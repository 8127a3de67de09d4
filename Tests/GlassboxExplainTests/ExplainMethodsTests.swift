import Foundation
import GlassboxIR
import GlassboxPasses
import GlassboxReference
import GlassboxRuntime
import Testing

/// The explanation methods of pytorch-grad-cam and Captum, lowered by `LowerTaps`, against the
/// peers themselves run on the same weights and inputs (tools/reference/explain_methods.py):
/// a tiny CNN (`explain_methods_image`) and a tiny CNN-LSTM explained frame by frame
/// (`explain_methods_clip`).
struct ExplainMethodsTests {
  /// The fixture's spec with one tap `t = KIND(VALUE, OPTIONS)`, bound, and the spec unbound.
  static func graphs(_ fixture: TapFixture, kind: String, on value: String, options: String = "")
    throws -> (bound: Graph, unbound: Graph, bindings: [String: Int]) {
    let source = try require(fixture.object["source"] as? String)
    let tap = "  tap t = \(kind)(\(value)\(options.isEmpty ? "" : ", " + options))\n"
    let end = try require(source.range(of: "\n}\n"))
    let text = source.replacingCharacters(in: end, with: "\n" + tap + "}\n")
    let bindings = (fixture.object["bindings"] as? [String: Int]) ?? [:]
    let file = SourceText(fileName: "\(kind).graph", text: text)
    return (try Spec.checkedGraph(file, bindings: bindings), try Spec.checkedGraph(file), bindings)
  }

  /// max |actual − expected| / max |expected| (nil when shapes differ or nothing is expected).
  static func relativeError(_ actual: Tensor?, _ expected: TapFixture.Expected?) -> Double? {
    guard let actual, let expected, actual.shape == expected.shape else { return nil }
    let scale = expected.data.reduce(0.0) { max($0, abs($1)) }
    guard scale > 0 else { return nil }
    let a = actual.doubles
    return zip(a, expected.data).reduce(0.0) { max($0, abs($1.0 - $1.1)) } / scale
  }

  static func expectAgreement(_ actual: Tensor?, _ expected: TapFixture.Expected?, _ what: String,
                              tolerance: Double = 1e-4) {
    guard let error = relativeError(actual, expected) else {
      Issue.record("\(what): shape \(actual?.shape ?? []) against \(expected?.shape ?? []), or nothing expected")
      return
    }
    #expect(error <= tolerance, "\(what): relative error \(error)")
    if ProcessInfo.processInfo.environment["GLASSBOX_PRINT_AGREEMENT"] != nil {
      print("agreement \(what): \(error)")
    }
  }

  /// Each `[h, w]` map of `x` (`[…, h, w]`) min-max normalised again, as pytorch-grad-cam
  /// scales its resized maps a second time (`aggregate_multi_layers` → `scale_cam_image`).
  static func renormalized(_ x: Tensor?) -> Tensor? {
    guard let x, x.shape.count >= 2 else { return nil }
    let size = x.shape.suffix(2).reduce(1, *)
    var v = x.doubles
    for start in stride(from: 0, to: v.count, by: size) {
      let map = v[start..<(start + size)]
      let lo = map.min() ?? 0, hi = (map.max() ?? 0) - lo
      for i in start..<(start + size) { v[i] = (v[i] - lo) / (1e-7 + hi) }
    }
    return Tensor(shape: x.shape, f64: v)
  }

  /// LayerCAM, XGrad-CAM and HiRes-CAM on the image model: the raw maps within 1e-4 of
  /// pytorch-grad-cam's (after its ReLU), the upsampled ones within 1e-4 of its output
  /// (normalised, resized by OpenCV, normalised again).
  @Test(arguments: ["layercam", "xgradcam", "hirescam"])
  func gradientCAMsMatchPytorchGradCAM(_ kind: String) throws {
    let fixture = try TapFixture("explain_methods_image")
    let (graph, _, _) = try Self.graphs(fixture, kind: kind, on: "features")
    let (outputs, lowered, _) = try LowerTapsTests.run(graph, taps: ["t"], classIndex: fixture.classIndex)
    #expect(lowered.first?.outputs == ["raw": "t", "normalized": "t.normalized", "upsampled": "t.upsampled"])
    Self.expectAgreement(outputs["logits"], fixture.outputs["logits"], "logits")
    Self.expectAgreement(outputs["t"], fixture.outputs[kind], "\(kind) raw")
    Self.expectAgreement(Self.renormalized(outputs["t.upsampled"]), fixture.outputs[kind + ".upsampled"], "\(kind) upsampled")
  }

  /// The same methods frame by frame through the LSTM of the CNN-LSTM: raw per-frame maps
  /// `[B, T, h, w]` and, normalised per frame, upsampled ones.
  @Test(arguments: ["layercam", "xgradcam", "hirescam"])
  func gradientCAMsThroughTheLSTMMatchPytorchGradCAM(_ kind: String) throws {
    let fixture = try TapFixture("explain_methods_clip")
    let (graph, _, _) = try Self.graphs(fixture, kind: kind, on: "cnn.features")
    let (outputs, lowered, _) = try LowerTapsTests.run(graph, taps: ["t"], classIndex: fixture.classIndex, scope: "frame")
    #expect(lowered.first?.perStep == true)
    #expect(outputs["t.relevance"]?.shape == [1, 3])
    Self.expectAgreement(outputs["t"], fixture.outputs[kind], "\(kind) raw")
    Self.expectAgreement(Self.renormalized(outputs["t.upsampled"]), fixture.outputs[kind + ".upsampled.frame"],
                         "\(kind) upsampled")
  }

  /// The three maps differ from one another and from Grad-CAM on this model (a convolution
  /// follows the mapped layer), so each comparison above can tell the methods apart.
  @Test func theGradientCAMsDifferHere() throws {
    let fixture = try TapFixture("explain_methods_image")
    var maps: [String: [Double]] = [:]
    for kind in ["gradcam", "layercam", "xgradcam", "hirescam"] {
      let (graph, _, _) = try Self.graphs(fixture, kind: kind, on: "features")
      maps[kind] = try #require(try LowerTapsTests.run(graph, taps: ["t"], classIndex: fixture.classIndex).outputs["t"]).doubles
    }
    let kinds = maps.keys.sorted()
    for (i, a) in kinds.enumerated() {
      for b in kinds[(i + 1)...] {
        let (x, y) = (maps[a] ?? [], maps[b] ?? [])
        let scale = y.reduce(0.0) { max($0, abs($1)) }
        let difference = zip(x, y).reduce(0.0) { max($0, abs($1.0 - $1.1)) }
        #expect(difference > 0.01 * scale, "\(a) and \(b) differ by \(difference) of \(scale)")
      }
    }
  }
}
