import Foundation
import GlassboxIR
import GlassboxMedia
import GlassboxPasses
import GlassboxReference
import GlassboxRuntime
import Testing

/// Taps lowered into outputs, compiled through the inference pipeline and run, against
/// PyTorch (tools/reference/gradcam_fixtures.py) and the Float64 reference interpreter.
struct LowerTapsTests {
  /// Lowers `taps`, runs the inference pipeline and the compiled program.
  static func run(
    _ graph: Graph, taps: [String], classIndex: Int? = nil, scope: String? = nil
  )
    throws -> (outputs: [String: Tensor], lowered: [LowerTaps.Lowered], graph: Graph)
  {
    let weights = DeterministicTensors.parameters(of: graph)
    let lowered = try LowerTaps.apply(
      to: Module(graph: graph, weights: weights),
      options: .init(taps: taps, classIndex: classIndex, scope: scope))
    var module = lowered.module
    Pipeline.run(Pipeline.inference(blockedLayouts: true), on: &module)
    #expect(Verifier.verify(module.graph).isEmpty)
    let program = try Executable(graph: module.graph, parameters: module.weights)
    return (try program.run(inputs: TapFixture.inputs(graph)), lowered.taps, module.graph)
  }

  static func expectClose(
    _ actual: Tensor?, _ expected: TapFixture.Expected?, _ what: String,
    tolerance: Double = 1e-4
  ) {
    guard let actual, let expected else {
      Issue.record("\(what): missing (actual \(actual != nil), expected \(expected != nil))")
      return
    }
    guard let diff = expected.maxDifference(actual) else {
      Issue.record("\(what): shape \(actual.shape), expected \(expected.shape)")
      return
    }
    #expect(diff <= tolerance * expected.scale, "\(what): max difference \(diff) (scale \(expected.scale))")
  }

  @Test(arguments: ["bilstm_attention1d_taps", "bilstm_attention2d_taps"])
  func attentionWeightsMatchPyTorch(_ name: String) throws {
    let fixture = try TapFixture(name)
    let (outputs, lowered, _) = try Self.run(try fixture.graph(), taps: ["attention"])
    #expect(lowered.map(\.outputs) == [["raw": "attention"]])
    Self.expectClose(outputs["attention"], fixture.outputs["attention"], "\(name) attention")
    Self.expectClose(outputs["logits"], fixture.outputs["logits"], "\(name) logits")
    // Saliency (gradient × input) of the predicted class, back through attention and BiLSTM.
    let (saliency, _, _) = try Self.run(try fixture.graph(), taps: ["saliency"])
    Self.expectClose(saliency["saliency"], fixture.outputs["saliency"], "\(name) saliency")
  }

  @Test func camMatchesPyTorch() throws {
    let fixture = try TapFixture("resnet18_taps")
    let (outputs, lowered, _) = try Self.run(try fixture.graph(), taps: ["cam"], classIndex: fixture.classIndex)
    #expect(lowered.first?.outputs == ["raw": "cam", "normalized": "cam.normalized", "upsampled": "cam.upsampled"])
    Self.expectClose(outputs["cam"], fixture.outputs["cam"], "cam")
    Self.expectClose(outputs["cam.normalized"], fixture.outputs["cam.normalized"], "cam.normalized")
    // The upsampled map is the normalised one resized to the 64×64 input (Heatmap.resize
    // follows the same convention, checked against PyTorch below).
    let normalized = try #require(outputs["cam.normalized"]), upsampled = try #require(outputs["cam.upsampled"])
    #expect(upsampled.shape == [2, 64, 64])
    for n in 0..<2 {
      let expected = Heatmap.resize(Array(normalized.floats[(n * 4)..<(n * 4 + 4)]), width: 2, height: 2, to: 64, 64)
      let actual = Array(upsampled.floats[(n * 4096)..<((n + 1) * 4096)])
      #expect(zip(expected, actual).allSatisfy { abs($0 - $1) < 1e-5 })
    }
  }

  /// `LowerTaps`' interpolation matrices against `F.interpolate(bilinear, align_corners=False)`,
  /// up and down.
  @Test func interpolationMatchesPyTorch() throws {
    let fixture = try TapFixture("upsample")
    let x = DeterministicTensors.tensor("input:map", shape: [2, 3, 4]).doubles
    for (key, expected) in fixture.outputs {
      let (oh, ow) = (expected.shape[1], expected.shape[2])
      let rows = LowerTaps.interpolationMatrix(from: 3, to: oh),
        columns = LowerTaps.interpolationMatrix(from: 4, to: ow)
      var y = [Double](repeating: 0, count: 2 * oh * ow)
      for n in 0..<2 {
        for i in 0..<oh {
          for j in 0..<ow {
            var s = 0.0
            for a in 0..<3 {
              for b in 0..<4 { s += Double(rows[i * 3 + a]) * x[n * 12 + a * 4 + b] * Double(columns[j * 4 + b]) }
            }
            y[n * oh * ow + i * ow + j] = s
          }
        }
      }
      Self.expectClose(Tensor(shape: [2, oh, ow], f64: y), expected, "interpolate \(key)", tolerance: 1e-6)
      if oh >= 3 && ow >= 4 {  // Heatmap.resize: the same convention (upsampling)
        let resized = (0..<2).flatMap { n in
          Heatmap.resize(x[(n * 12)..<(n * 12 + 12)].map { Float($0) }, width: 4, height: 3, to: ow, oh)
        }
        Self.expectClose(Tensor(shape: [2, oh, ow], f32: resized), expected, "Heatmap.resize \(key)", tolerance: 1e-6)
      }
    }
  }

  /// A tap on a convolution that `fuse-epilogues` would otherwise fold a ReLU into: the tapped
  /// value keeps its numbers (against the reference interpreter on the original graph).
  @Test func tapSurvivesEpilogueFusion() throws {
    let text = """
      graph g(x: f32[2, 3, 8, 8]) -> (y: f32[2, 4, 8, 8]) {
        c = conv2d(x, out: 4, kernel: 3, padding: 1)
        y = relu(c)
        tap pre = activation(c)
      }
      """
    let graph = try Spec.checkedGraph(SourceText(fileName: "t.graph", text: text))
    let weights = DeterministicTensors.parameters(of: graph)
    var interpreter = ReferenceInterpreter(graph: graph)
    let reference = try interpreter.run(inputs: TapFixture.inputs(graph), parameters: weights)

    // Without the tap the ReLU is fused into the convolution.
    var untapped = Module(graph: graph, weights: weights)
    untapped.graph.taps = []
    Pipeline.run(Pipeline.inference(blockedLayouts: true), on: &untapped)
    #expect(untapped.graph.nodes.map(\.op) == [.conv2d])

    let (outputs, _, lowered) = try Self.run(graph, taps: ["pre"])
    #expect(lowered.nodes.map(\.op) == [.conv2d, .relu])
    for (name, value) in [("pre", "c"), ("y", "y")] {
      let expected = try #require(reference[value]), actual = try #require(outputs[name])
      let diff = zip(expected.doubles, actual.doubles).reduce(0.0) { max($0, abs($1.0 - $1.1)) }
      #expect(actual.shape == expected.shape && diff < 1e-5, "\(name): max difference \(diff)")
    }
  }

  /// Normalisation scopes and relevance on a CAM computed per frame (each_step), checked
  /// against plain loops over the raw map the same program returns.
  @Test(arguments: ["frame", "clip"])
  func perStepNormalisationAndRelevance(_ scope: String) throws {
    let text = """
      graph g(frames: f32[2, 3, 2, 6, 6]) -> (logits: f32[2, 4]) {
        trunk = each_step(small, frames)
        logits = linear(mean(trunk, axes: [1]), out: 4)
        tap map = cam(trunk.feat, logits.weight)
      }
      block small(image) {
        feat = relu(conv2d(image, out: 5, kernel: 3, stride: 2, padding: 1))
        return flatten(global_avg_pool2d(feat))
      }
      """
    let graph = try Spec.checkedGraph(SourceText(fileName: "t.graph", text: text))
    let (outputs, lowered, _) = try Self.run(graph, taps: ["map"], classIndex: 1, scope: scope)
    #expect(lowered.first?.perStep == true)
    let raw = try #require(outputs["map"]), normalized = try #require(outputs["map.normalized"])
    let relevance = try #require(outputs["map.relevance"]), upsampled = try #require(outputs["map.upsampled"])
    #expect(raw.shape == [2, 3, 3, 3] && relevance.shape == [2, 3] && upsampled.shape == [2, 3, 6, 6])
    let v = raw.doubles, nv = normalized.doubles, rv = relevance.doubles
    for b in 0..<2 {
      let clip = Array(v[(b * 27)..<(b * 27 + 27)])
      var means: [Double] = []
      for t in 0..<3 {
        let frame = Array(clip[(t * 9)..<(t * 9 + 9)])
        let pool = scope == "frame" ? frame : clip
        let lo = pool.min() ?? 0, hi = pool.max() ?? 0
        for i in 0..<9 {
          let e = (frame[i] - lo) / (hi - lo + 1e-7)
          #expect(abs(nv[b * 27 + t * 9 + i] - e) < 1e-5)
        }
        means.append(frame.reduce(0, +) / 9)
      }
      let total = means.reduce(0, +)
      for t in 0..<3 { #expect(abs(rv[b * 3 + t] - means[t] / (total + 1e-7)) < 1e-5) }
    }
  }

  /// Attention weights made an input (what `evaluate` feeds uniform or permuted weights to):
  /// fed the model's own weights, the logits are PyTorch's.
  @Test func overriddenAttentionReproducesTheModel() throws {
    let fixture = try TapFixture("bilstm_attention1d_taps")
    let graph = try fixture.graph()
    let (outputs, _, _) = try Self.run(graph, taps: ["attention"])
    let weights = try #require(outputs["attention"])
    let tap = try #require(graph.taps.first { $0.name == "attention" })
    var module = Module(
      graph: OverrideValue.apply(to: graph, value: tap.operands[0], inputName: "attention.override"),
      weights: DeterministicTensors.parameters(of: graph))
    module.graph.taps = []
    #expect(Verifier.verify(module.graph).isEmpty)
    Pipeline.run(Pipeline.inference(blockedLayouts: true), on: &module)
    #expect(!module.graph.nodes.contains { $0.op == .softmax })  // the computed weights are swept
    let program = try Executable(graph: module.graph, parameters: module.weights)
    var inputs = TapFixture.inputs(graph)
    inputs["attention.override"] = weights
    Self.expectClose(try program.run(inputs: inputs)["logits"], fixture.outputs["logits"], "logits with own weights")
  }

  /// Grad-CAM and Grad-CAM++ on resnet18 (`layer4`), for a given class and for the predicted
  /// one (class_seed), against the manual PyTorch Grad-CAM.
  @Test func gradcamOnAnImageModelMatchesPyTorch() throws {
    let fixture = try TapFixture("resnet18_taps")
    let graph = try fixture.graph()
    for (name, k) in [("class", fixture.classIndex), ("predicted", -1)] {
      let (outputs, _, _) = try Self.run(graph, taps: ["gradcam"], classIndex: k)
      Self.expectClose(outputs["gradcam"], fixture.outputs["gradcam.\(name)"], "gradcam \(name)")
      Self.expectClose(
        outputs["gradcam.normalized"], fixture.outputs["gradcam.\(name).normalized"], "gradcam \(name) normalized",
        tolerance: 1e-4)
      var withPlusPlus = graph
      withPlusPlus.taps = [
        Tap(
          name: "pp", kind: .gradcampp, operands: graph.taps[0].operands, options: graph.taps[0].options,
          type: graph.taps[0].type)
      ]
      let (pp, _, _) = try Self.run(withPlusPlus, taps: ["pp"], classIndex: k)
      Self.expectClose(pp["pp"], fixture.outputs["gradcampp.\(name)"], "gradcam++ \(name)")
    }
  }

  /// Grad-CAM frame by frame through the LSTM on resnet18_lstm (all T frames): raw maps,
  /// both normalisation scopes and the per-frame relevance.
  @Test(arguments: ["frame", "clip"])
  func gradcamThroughTheLSTMMatchesPyTorch(_ scope: String) throws {
    let fixture = try TapFixture("resnet18_lstm_taps")
    let graph = try fixture.graph()
    for (name, k) in [("class", fixture.classIndex), ("predicted", -1)] {
      let (outputs, lowered, _) = try Self.run(graph, taps: ["gradcam"], classIndex: k, scope: scope)
      #expect(lowered.first?.perStep == true)
      Self.expectClose(outputs["gradcam"], fixture.outputs["gradcam.\(name)"], "gradcam \(name)")
      Self.expectClose(
        outputs["gradcam.normalized"], fixture.outputs["gradcam.\(name).normalized.\(scope)"],
        "gradcam \(name) normalized per \(scope)", tolerance: 1e-4)
      Self.expectClose(
        outputs["gradcam.relevance"], fixture.outputs["gradcam.\(name).relevance"], "gradcam \(name) relevance",
        tolerance: 1e-4)
      #expect(outputs["gradcam.upsampled"]?.shape == [1, 4, 64, 64])
    }
  }

  /// The Grad-CAM paper's identity on a global-average-pooled classifier: the gradient of the
  /// class score with respect to f_k(i, j) is w_ck/(h·w), so Grad-CAM = ReLU(CAM)/(h·w) — for
  /// every class.
  @Test func camEqualsGradcamUpToAConstantOnAGAPModel() throws {
    let fixture = try TapFixture("resnet18_taps")
    let graph = try fixture.graph()
    for k in 0..<5 {
      let (outputs, _, _) = try Self.run(graph, taps: ["gradcam", "cam"], classIndex: k)
      let cam = try #require(outputs["cam"]).doubles, gradcam = try #require(outputs["gradcam"]).doubles
      let scale = cam.reduce(1e-6) { max($0, abs($1)) }
      for (c, g) in zip(cam, gradcam) { #expect(abs(max(c, 0) / 4 - g) <= 1e-5 * scale, "class \(k): \(c) vs \(g)") }
    }
  }

  /// Saliency back through Winograd convolutions that `choose-layouts` blocks: their input
  /// gradients run plain Winograd kernels that transform their own weights, since a blocked
  /// forward packs its transform for its own GEMMs (`WinogradConv3x3.packBlocked`). Against the
  /// Float64 reference interpreter on the lowered graph, at one and two cores.
  @Test func saliencyThroughBlockedWinogradMatchesTheReference() throws {
    let text = """
      graph g(x: f32[1, 64, 16, 14]) -> (y: f32[1, 5]) {
        a = relu(conv2d(x, out: 64, kernel: 3, padding: 1))
        b = relu(conv2d(a, out: 80, kernel: 3, padding: 1))
        y = linear(flatten(global_avg_pool2d(b)), out: 5)
        tap s = saliency(x)
      }
      """
    let graph = try Spec.checkedGraph(SourceText(fileName: "s.graph", text: text))
    let lowered = try LowerTaps.apply(
      to: Module(graph: graph, weights: DeterministicTensors.parameters(of: graph)),
      options: .init(taps: ["s"], classIndex: 2))
    var interpreter = ReferenceInterpreter(graph: lowered.module.graph)
    let inputs = TapFixture.inputs(graph)
    let reference = try interpreter.run(inputs: inputs, parameters: lowered.module.weights)
    let output = try #require(lowered.module.graph.outputs.first { $0.name == "s" })
    let expected = try #require(reference[lowered.module.graph[output.value].name])
    var module = lowered.module
    Pipeline.run(Pipeline.inference(blockedLayouts: true), on: &module)
    for threads in [1, 2] {
      let program = try Executable(graph: module.graph, parameters: module.weights, threads: threads)
      let labels = program.program
      #expect(labels.filter { $0.hasSuffix("(winograd, blocked)") }.count == 2, "\(labels)")
      #expect(labels.filter { $0.hasSuffix("(winograd)") }.count >= 1, "\(labels)")
      let actual = try #require(try program.run(inputs: inputs)["s"])
      let scale = expected.doubles.reduce(1e-6) { max($0, abs($1)) }
      let diff = zip(expected.doubles, actual.doubles).reduce(0.0) { max($0, abs($1.0 - $1.1)) }
      #expect(actual.shape == expected.shape && diff <= 1e-5 * scale, "\(threads) threads: \(diff) of \(scale)")
    }
  }

  /// Only the backward slice a tap needs: Grad-CAM on layer4 differentiates no convolution.
  @Test func gradcamCompilesOnlyItsBackwardSlice() throws {
    let fixture = try TapFixture("resnet18_taps")
    let (_, _, lowered) = try Self.run(try fixture.graph(), taps: ["gradcam"], classIndex: 0)
    let forward = try Self.run(try fixture.graph(), taps: [], classIndex: 0).graph
    #expect(lowered.nodes.filter { $0.op == .conv2d }.count == forward.nodes.filter { $0.op == .conv2d }.count)
    #expect(lowered.nodes.count - forward.nodes.count < 40)
  }

  @Test func badRequestsAreNamed() throws {
    let fixture = try TapFixture("resnet18_taps")
    let module = Module(graph: try fixture.graph(), weights: [:])
    #expect(throws: LowerTaps.Error("resnet18 has no tap 'nope' (taps: gradcam, cam)")) {
      try LowerTaps.apply(to: module, options: .init(taps: ["nope"]))
    }
    #expect(throws: LowerTaps.Error("tap cam: class 5 is out of range; the model has 5 classes (0…4)")) {
      try LowerTaps.apply(to: module, options: .init(taps: ["cam"], classIndex: 5))
    }
    #expect(throws: LowerTaps.Error("tap gradcam: gradcam needs gradients, and this build has no differentiation")) {
      try LowerTaps.apply(to: module, options: .init(taps: ["gradcam"], classIndex: 0, differentiate: nil))
    }
    let symbolic = try Spec.checkedGraph(
      SourceText(
        fileName: "graphs/resnet18.graph",
        text: try String(contentsOf: TapFixture.root.appendingPathComponent("graphs/resnet18.graph"), encoding: .utf8)))
    #expect(throws: LowerTaps.Error.self) {
      try LowerTaps.apply(to: Module(graph: symbolic), options: .init(taps: ["cam"]))
    }
  }
}
