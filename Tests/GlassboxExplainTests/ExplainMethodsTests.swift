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
  static func graphs(
    _ fixture: TapFixture, kind: String, on value: String, options: String = ""
  )
    throws -> (bound: Graph, unbound: Graph, bindings: [String: Int])
  {
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

  static func expectAgreement(
    _ actual: Tensor?, _ expected: TapFixture.Expected?, _ what: String,
    tolerance: Double = 1e-4
  ) {
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
    Self.expectAgreement(
      Self.renormalized(outputs["t.upsampled"]), fixture.outputs[kind + ".upsampled"], "\(kind) upsampled")
  }

  /// The same methods frame by frame through the LSTM of the CNN-LSTM: raw per-frame maps
  /// `[B, T, h, w]` and, normalised per frame, upsampled ones.
  @Test(arguments: ["layercam", "xgradcam", "hirescam"])
  func gradientCAMsThroughTheLSTMMatchPytorchGradCAM(_ kind: String) throws {
    let fixture = try TapFixture("explain_methods_clip")
    let (graph, _, _) = try Self.graphs(fixture, kind: kind, on: "cnn.features")
    let (outputs, lowered, _) = try LowerTapsTests.run(
      graph, taps: ["t"], classIndex: fixture.classIndex, scope: "frame")
    #expect(lowered.first?.perStep == true)
    #expect(outputs["t.relevance"]?.shape == [1, 3])
    Self.expectAgreement(outputs["t"], fixture.outputs[kind], "\(kind) raw")
    Self.expectAgreement(
      Self.renormalized(outputs["t.upsampled"]), fixture.outputs[kind + ".upsampled.frame"],
      "\(kind) upsampled")
  }

  /// The three maps differ from one another and from Grad-CAM on this model (a convolution
  /// follows the mapped layer), so each comparison above can tell the methods apart.
  @Test func theGradientCAMsDifferHere() throws {
    let fixture = try TapFixture("explain_methods_image")
    var maps: [String: [Double]] = [:]
    for kind in ["gradcam", "layercam", "xgradcam", "hirescam"] {
      let (graph, _, _) = try Self.graphs(fixture, kind: kind, on: "features")
      maps[kind] = try #require(try LowerTapsTests.run(graph, taps: ["t"], classIndex: fixture.classIndex).outputs["t"])
        .doubles
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

  /// Lowers the tap `t = KIND(VALUE, OPTIONS)` of the fixture's spec (copies grafted from the
  /// spec rebound at a multiple of its batch), runs the inference pipeline and the program.
  static func run(
    _ fixture: TapFixture, kind: String, on value: String, options: String = "", scope: String? = nil
  )
    throws -> (outputs: [String: Tensor], lowered: LowerTaps.Lowered?, graph: Graph)
  {
    let (bound, unbound, bindings) = try graphs(fixture, kind: kind, on: value, options: options)
    let weights = DeterministicTensors.parameters(of: bound)
    let lowering = LowerTaps.Options(
      taps: ["t"], classIndex: fixture.classIndex, scope: scope,
      rebatch: LowerTaps.rebatcher(unbound: unbound, bindings: bindings))
    let lowered = try LowerTaps.apply(to: Module(graph: bound, weights: weights), options: lowering)
    #expect(Verifier.verify(lowered.module.graph).isEmpty)
    var module = lowered.module
    Pipeline.run(Pipeline.inference(blockedLayouts: true), on: &module)
    #expect(Verifier.verify(module.graph).isEmpty)
    let program = try Executable(graph: module.graph, parameters: module.weights)
    return (try program.run(inputs: TapFixture.inputs(bound)), lowered.taps.first, module.graph)
  }

  /// Integrated Gradients against Captum's `IntegratedGradients` (baseline 0.25): 32
  /// Gauss–Legendre points and 7 trapezoid ones, every point in one batched pass, and the
  /// same numbers when the points run 5 at a time.
  @Test(arguments: [
    ("ig.32.gausslegendre", "baseline: 0.25, steps: 32"),
    ("ig.7.riemann_trapezoid", "baseline: 0.25, steps: 7, method: riemann_trapezoid"),
  ])
  func integratedGradientsMatchCaptum(_ expected: String, _ options: String) throws {
    let fixture = try TapFixture("explain_methods_image")
    let (outputs, lowered, graph) = try Self.run(fixture, kind: "ig", on: "image", options: options)
    #expect(lowered?.outputs == ["raw": "t", "normalized": "t.normalized"])
    Self.expectAgreement(outputs["t"], fixture.outputs[expected], expected)
    #expect(outputs["t.normalized"]?.shape == [2, 16, 16])
    // One grafted forward at S·N beside the model's own: twice the model's convolutions.
    #expect(
      graph.nodes.filter { $0.op == .conv2d }.count == 6,
      "\(graph.nodes.filter { $0.op == .conv2d }.count) convolutions")
    let (chunked, _, chunkedGraph) = try Self.run(fixture, kind: "ig", on: "image", options: options + ", batch: 5")
    Self.expectAgreement(chunked["t"], fixture.outputs[expected], expected + " 5 at a time")
    let passes = (expected.hasPrefix("ig.32") ? 7 : 2) + 1
    #expect(chunkedGraph.nodes.filter { $0.op == .conv2d }.count == 3 * passes)
  }

  /// Integrated Gradients on the CNN-LSTM's clip: the copies carry the batch through the
  /// spec's `[B*T, …]` reshapes; the map is per frame, with a relevance per frame.
  @Test func integratedGradientsOnAClipMatchCaptum() throws {
    let fixture = try TapFixture("explain_methods_clip")
    let (outputs, lowered, _) = try Self.run(fixture, kind: "ig", on: "frames", options: "steps: 16")
    #expect(lowered?.perStep == true)
    Self.expectAgreement(outputs["t"], fixture.outputs["ig"], "ig on a clip")
    #expect(outputs["t.normalized"]?.shape == [1, 3, 16, 16])
    #expect(outputs["t.relevance"]?.shape == [1, 3])
  }

  /// SmoothGrad and VarGrad against Captum's `NoiseTunnel(Saliency)` fed the same noise
  /// samples (`LowerTaps.noise`, reimplemented in the fixture script), 8 samples batched.
  @Test(arguments: ["smoothgrad", "vargrad"])
  func noiseTunnelsMatchCaptumWithTheSameNoise(_ kind: String) throws {
    let fixture = try TapFixture("explain_methods_image")
    let options = try require((fixture.object["options"] as? [String: String])?[kind])
    let (outputs, _, _) = try Self.run(fixture, kind: kind, on: "image", options: options)
    Self.expectAgreement(outputs["t"], fixture.outputs[kind], kind)
    let (chunked, _, _) = try Self.run(fixture, kind: kind, on: "image", options: options + ", batch: 3")
    Self.expectAgreement(chunked["t"], fixture.outputs[kind], kind + " 3 at a time")
    // Another seed draws other noise: the comparison depends on the samples.
    let (reseeded, _, _) = try Self.run(
      fixture, kind: kind, on: "image",
      options: options.replacingOccurrences(of: "seed: 7", with: "seed: 8"))
    #expect((Self.relativeError(reseeded["t"], fixture.outputs[kind]) ?? 0) > 1e-2)
  }

  /// Occlusion against Captum's `Occlusion` (4×4 windows over every channel, stride 2): one
  /// batched pass of the 49 occluded copies, and passes of 10.
  @Test func occlusionMatchesCaptum() throws {
    let fixture = try TapFixture("explain_methods_image")
    let (outputs, lowered, graph) = try Self.run(
      fixture, kind: "occlusion", on: "image", options: "window: 4, stride: 2")
    #expect(lowered?.outputs == ["raw": "t", "normalized": "t.normalized"])
    Self.expectAgreement(outputs["t"], fixture.outputs["occlusion"], "occlusion")
    #expect(graph.nodes.filter { $0.op == .conv2d }.count == 6)
    let (chunked, _, _) = try Self.run(
      fixture, kind: "occlusion", on: "image", options: "window: 4, stride: 2, batch: 10")
    Self.expectAgreement(chunked["t"], fixture.outputs["occlusion"], "occlusion 10 at a time")
  }

  /// Occlusion of each frame of a clip on its own, against Captum's `Occlusion` with a window
  /// one frame deep over every channel (`(1, 3, 4, 4)`, tiling the frames).
  @Test func occlusionOfAClipMatchesCaptum() throws {
    let fixture = try TapFixture("explain_methods_clip")
    let (outputs, lowered, _) = try Self.run(fixture, kind: "occlusion", on: "frames", options: "window: 4")
    #expect(lowered?.perStep == true)
    // The drops (up to 2.4e-5) are differences of Float scores near 0.08, whose resolution there
    // (7e-9) is 3e-4 of the largest drop: the limit is Float's, a wrong window would be off by 1.
    Self.expectAgreement(outputs["t"], fixture.outputs["occlusion"], "occlusion of a clip", tolerance: 2e-3)
    #expect(outputs["t.relevance"]?.shape == [1, 3])
  }

  /// Score-CAM against pytorch-grad-cam's `ScoreCAM` (its masked forwards 4 at a time, as
  /// `batch: 4` runs them here): raw map and its output.
  @Test func scoreCAMMatchesPytorchGradCAM() throws {
    let fixture = try TapFixture("explain_methods_image")
    let (outputs, lowered, _) = try Self.run(fixture, kind: "scorecam", on: "features", options: "batch: 4")
    #expect(lowered?.outputs == ["raw": "t", "normalized": "t.normalized", "upsampled": "t.upsampled"])
    Self.expectAgreement(outputs["t"], fixture.outputs["scorecam"], "scorecam raw")
    Self.expectAgreement(
      Self.renormalized(outputs["t.upsampled"]), fixture.outputs["scorecam.upsampled"], "scorecam upsampled")
    let (one, _, _) = try Self.run(fixture, kind: "scorecam", on: "features", options: "batch: 0")
    Self.expectAgreement(one["t"], fixture.outputs["scorecam"], "scorecam in one pass")
  }

  /// Eigen-CAM against pytorch-grad-cam's `EigenCAM`: its SVD keeps LAPACK's arbitrary sign,
  /// so the comparison is with its projection signed as Glassbox signs it (positive correlation
  /// with the mean activation), ReLU'd; where LAPACK's sign agrees (example 1 here), with the
  /// library's own map.
  @Test func eigenCAMMatchesPytorchGradCAMUpToItsSign() throws {
    let fixture = try TapFixture("explain_methods_image")
    let (outputs, lowered, _) = try Self.run(fixture, kind: "eigencam", on: "features", options: "iterations: 40")
    #expect(lowered?.classIndex == nil)
    Self.expectAgreement(outputs["t"], fixture.outputs["eigencam.signed"], "eigencam (sign as Glassbox's)")
    let agrees = try #require(fixture.outputs["eigencam.library_sign_agrees"]).data
    let library = try #require(fixture.outputs["eigencam"])
    let map = try #require(outputs["t"])
    for (i, agreed) in agrees.enumerated() where agreed == 1 {
      let expected = TapFixture.Expected(shape: [64], stride: 1, data: Array(library.data[(i * 64)..<((i + 1) * 64)]))
      Self.expectAgreement(
        Tensor(shape: [64], f64: Array(map.doubles[(i * 64)..<((i + 1) * 64)])), expected,
        "eigencam example \(i), the library's own map")
    }
    #expect(agrees.contains(1))
    // The default 24 squarings (power iteration of order 2^24) are enough on this map.
    let (defaults, _, _) = try Self.run(fixture, kind: "eigencam", on: "features")
    Self.expectAgreement(defaults["t"], fixture.outputs["eigencam.signed"], "eigencam, 24 squarings")
  }

  /// Eigen-CAM frame by frame on the CNN-LSTM: one map per frame, and its relevance.
  @Test func eigenCAMPerFrame() throws {
    let fixture = try TapFixture("explain_methods_clip")
    let (outputs, lowered, _) = try Self.run(fixture, kind: "eigencam", on: "cnn.features")
    #expect(lowered?.perStep == true)
    #expect(outputs["t"]?.shape == [1, 3, 8, 8] && outputs["t.relevance"]?.shape == [1, 3])
  }

  /// Bilinear weights with `align_corners=True` (Score-CAM's `UpsamplingBilinear2d`): the
  /// corners land on the corners, and 3 → 5 puts the middle samples halfway.
  @Test func alignedCornersInterpolation() {
    let m = LowerTaps.interpolationMatrix(from: 3, to: 5, alignCorners: true)
    #expect(m == [1, 0, 0, 0.5, 0.5, 0, 0, 1, 0, 0, 0.5, 0.5, 0, 0, 1])
  }

  /// The quadrature rules against numpy's `leggauss` and Captum's Riemann sums.
  @Test func integrationPointsAreCaptums() {
    let (x, w) = LowerTaps.gaussLegendre(3)
    let r = (3.0 / 5).squareRoot()
    #expect(zip(x, [-r, 0, r]).allSatisfy { abs($0 - $1) < 1e-14 })
    #expect(zip(w, [5.0 / 9, 8.0 / 9, 5.0 / 9]).allSatisfy { abs($0 - $1) < 1e-14 })
    for n in [1, 2, 7, 32, 50] {
      let (nodes, weights) = LowerTaps.gaussLegendre(n)
      #expect(abs(weights.reduce(0, +) - 2) < 1e-12, "n = \(n)")
      // Exact for x^(2n-2) (even, so not trivially zero): ∫ x^(2n−2) = 2 / (2n − 1).
      let moment = zip(nodes, weights).reduce(0.0) { $0 + $1.1 * pow($1.0, Double(2 * n - 2)) }
      #expect(abs(moment - 2 / Double(2 * n - 1)) < 1e-12, "n = \(n)")
    }
    let trapezoid = LowerTaps.integrationPoints(.riemann_trapezoid, steps: 5)
    #expect(trapezoid.alphas == [0, 0.25, 0.5, 0.75, 1] && trapezoid.weights == [0.1, 0.2, 0.2, 0.2, 0.1])
    #expect(LowerTaps.integrationPoints(.riemann_left, steps: 4).alphas == [0, 0.25, 0.5, 0.75])
  }

  /// A method that does not apply is refused when the tap is declared, naming the method, the
  /// value and why; a caller that cannot rebind the graph gets an error, not a crash.
  @Test func methodsThatDoNotApplyAreRefused() throws {
    let fixture = try TapFixture("explain_methods_image")
    func message(_ kind: String, _ value: String, _ options: String = "") -> String {
      do {
        _ = try Self.graphs(fixture, kind: kind, on: value, options: options)
        return "accepted"
      } catch {
        return "\(error)"
      }
    }
    #expect(
      message("ig", "features").contains(
        "tap ig: Integrated Gradients cannot explain 'features': it attributes the class score to a graph input, and "
          + "'features' is computed"))
    #expect(message("smoothgrad", "image", "samples: 0").contains("tap smoothgrad: samples must be in 1…4096, found 0"))
    #expect(message("vargrad", "image", "stdev: -1.0").contains("stdev must be a finite number ≥ 0, found -1.0"))
    #expect(message("ig", "image", "steps: 0").contains("tap ig: steps must be in 1…4096, found 0"))
    #expect(
      message("occlusion", "image", "window: 17").contains(
        "tap occlusion: Occlusion cannot explain 'image': the window 17×17 is larger than its last two axes 16×16"))
    let clip = try TapFixture("explain_methods_clip")
    #expect(throws: DiagnosticList.self) { try Self.graphs(clip, kind: "scorecam", on: "cnn.features") }
    do {
      _ = try Self.graphs(clip, kind: "scorecam", on: "cnn.features")
    } catch {
      #expect(
        "\(error)".contains(
          "tap scorecam: Score-CAM cannot explain layer 'cnn.features': it masks an image input "
            + "[N, C, H, W] with the layer's channels, one image per map, and tiny_cnn_lstm has none"))
    }
    let (bound, _, _) = try Self.graphs(fixture, kind: "ig", on: "image")
    #expect(
      throws: LowerTaps.Error(
        "tap t: Integrated Gradients runs copies of the input, and this caller cannot "
          + "rebind the graph at a larger batch")
    ) {
      try LowerTaps.apply(
        to: Module(graph: bound, weights: DeterministicTensors.parameters(of: bound)),
        options: .init(taps: ["t"]))
    }
  }
}
