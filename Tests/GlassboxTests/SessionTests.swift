import Foundation
import Glassbox
import GlassboxIR
import GlassboxPasses
import GlassboxReference
import GlassboxRuntime
import Testing

/// The library's sessions against the Float64 reference interpreter: runs, explanations with
/// per-example targets, batches, and the errors of what a caller can get wrong.
struct SessionTests {
  /// A small CNN classifier with a Grad-CAM, a CAM and an activation tap.
  static let spec = """
    graph tiny(image: f32[B, 3, 12, 12]) -> (logits: f32[B, C]) where C = 4 {
      conv1 = conv2d(image, out: 6, kernel: 3, padding: 1)
      relu1 = relu(conv1)
      conv2 = conv2d(relu1, out: 8, kernel: 3, stride: 2, padding: 1)
      features = relu(conv2)
      pooled = global_avg_pool2d(features)
      fc = linear(flatten(pooled), out: C)
      logits = fc

      tap gradcam = gradcam(features)
      tap cam = cam(features, fc.weight)
      tap act = activation(features)
    }
    """

  static func model() throws -> Model { try Model(specText: spec, fileName: "tiny.graph", weights: .init(seed: 3)) }

  /// Deterministic images `[n, 3, 12, 12]`, different per example.
  static func images(_ n: Int, salt: Int = 0) -> Tensor {
    Tensor(shape: [n, 3, 12, 12], f32: (0..<(n * 432)).map { i in Float(sin(Double(i * 7 + salt * 131) * 0.37)) })
  }

  /// The reference interpreter on `graph` (bound, taps lowered or not) with the model's weights.
  static func reference(_ graph: Graph, _ model: Model, _ inputs: [String: Tensor]) throws -> [String: Tensor] {
    let values = try model.parameterTensors()
    var parameters: [String: Tensor] = [:]
    for (p, t) in zip(graph.parameters, values) { parameters[p.name] = t }
    var interpreter = ReferenceInterpreter(graph: graph)
    let all = try interpreter.run(inputs: inputs, parameters: parameters)
    // Outputs by their output names (the interpreter names values).
    return Dictionary(
      uniqueKeysWithValues: graph.outputs.map { ($0.name, all[graph[$0.value].name] ?? Tensor(shape: [0], f32: [])) })
  }

  static func close(_ a: Tensor?, _ b: Tensor?, tolerance: Double = 1e-4) -> Bool {
    guard let a, let b, a.shape == b.shape else { return false }
    let scale = max(b.doubles.map(abs).max() ?? 0, 1e-6)
    return zip(a.doubles, b.doubles).allSatisfy { abs($0 - $1) <= tolerance * scale }
  }

  /// Integrated Gradients and SmoothGrad through `Session.explain`: a batch with a class per
  /// example gives each example's attribution alone (copies stacked at 2·steps and at steps),
  /// and IG's attributions add up to the class score's change from the baseline (completeness).
  @Test func inputAttributionsThroughTheSession() throws {
    let model = try Self.model().adding(tap: "ig:image:steps=64:baseline=0.1").adding(tap: "smoothgrad:image:samples=3")
    let session = try model.session()
    let x = Self.images(2)
    for tap in ["ig", "smoothgrad"] {
      let both = try session.explain(tap, ["image": x], target: .each([1, 3]))
      #expect(both.map.shape == [2, 3, 12, 12])
      #expect(both.normalized?.shape == [2, 12, 12])
      for (i, k) in [1, 3].enumerated() {
        let one = try session.explain(tap, ["image": x.example(i)], target: .fixed(k))
        #expect(Self.close(both.map.example(i), one.map), "\(tap) example \(i)")
      }
    }
    let ig = try session.explain("ig", ["image": x], target: .each([1, 3]))
    let scores = try session.run(["image": x])["logits"]?.doubles ?? []
    let baseline = try session.run(["image": Tensor(shape: [2, 3, 12, 12], f32: Array(repeating: 0.1, count: 864))])
    let base = baseline["logits"]?.doubles ?? []
    for (i, k) in [1, 3].enumerated() {
      let total = ig.map.example(i).doubles.reduce(0, +)
      let change = scores[i * 4 + k] - base[i * 4 + k]
      // The ReLUs kink the path, so 64 Gauss–Legendre points sum to within 1%, not exactly.
      #expect(
        abs(total - change) <= 1e-2 * max(abs(change), 1e-6), "example \(i): Σ attribution \(total), change \(change)")
    }
  }

  @Test func runMatchesTheReferenceInterpreter() throws {
    let model = try Self.model()
    #expect(model.inputs.map(\.description) == ["image f32[B, 3, 12, 12]"])
    #expect(model.outputs.map(\.description) == ["logits f32[B, 4]"])
    #expect(model.taps.map(\.name) == ["gradcam", "cam", "act"])
    let x = Self.images(2)
    let out = try model.session().run(["image": x])
    #expect(Set(out.keys) == ["logits", "act"])
    let bound = try model.graph.bound(["B": 2])
    let expected = try Self.reference(bound, model, ["image": x])
    #expect(Self.close(out["logits"], expected["logits"]))
  }

  /// Each example of a batch explained for its own class, against the reference interpreter
  /// on programs lowered for one fixed class each (no target input there).
  @Test func eachExampleIsExplainedForItsOwnTarget() throws {
    let model = try Self.model()
    let x = Self.images(2)
    let session = try model.session()
    for tap in ["gradcam", "cam"] {
      let e = try session.explain(tap, ["image": x], target: .each([1, 3]))
      #expect(e.classes == [1, 3])
      #expect(e.map.shape == [2, 6, 6])
      let bound = try model.graph.bound(["B": 2])
      for (row, k) in [(0, 1), (1, 3)] {
        let lowered = try LowerTaps.apply(
          to: Module(graph: bound, weights: [:]), options: .init(taps: [tap], classIndex: k))
        let expected = try Self.reference(lowered.module.graph, model, ["image": x])[tap]
        let rowOf = { (t: Tensor) in Tensor(shape: [36], f64: Array(t.doubles[(row * 36)..<((row + 1) * 36)])) }
        #expect(Self.close(rowOf(e.map), expected.map(rowOf)), "\(tap) row \(row)")
      }
    }
  }

  /// Several taps in one run give what each tap gives alone, for the same targets, from one
  /// program; a tap named twice, none, or a target for taps that explain no class are refused.
  @Test func severalTapsExplainInOneRun() throws {
    let model = try Self.model().adding(tap: "layercam:features").adding(tap: "saliency:image")
    let x = Self.images(3)
    let session = try model.session()
    let taps = ["gradcam", "cam", "layercam", "saliency", "act"]
    let together = try session.explain(taps: taps, ["image": x], target: .each([2, -1, 0]))
    #expect(together.map(\.tap) == taps)
    for (tap, e) in zip(taps, together) {
      let alone = try session.explain(tap, ["image": x], target: tap == "act" ? .predicted : .each([2, -1, 0]))
      #expect(e.classes == alone.classes, "\(tap)")
      #expect(e.maps.keys.sorted() == alone.maps.keys.sorted(), "\(tap)")
      for (role, map) in alone.maps { #expect(Self.close(e.maps[role], map, tolerance: 1e-6), "\(tap).\(role)") }
      #expect(Self.close(e.outputs["logits"], alone.outputs["logits"], tolerance: 1e-6))
      #expect(e.outputs.keys.sorted() == ["logits"], "\(tap): \(e.outputs.keys.sorted())")
    }
    #expect(together[0].classes?[0] == 2 && together[2].classes?[2] == 0)
    #expect(together[4].classes == nil)
    for (taps, message) in [
      (["gradcam", "gradcam"], "tap gradcam is asked for twice"),
      ([String](), "give at least one tap to explain"),
    ] {
      let error = #expect(throws: GlassboxError.self) { _ = try session.explain(taps: taps, ["image": x]) }
      #expect(error?.message == message)
    }
  }

  /// A tap list as the command line writes it: a comma starts the next tap only where a tap
  /// starts; a CAM's two values and an option's pair keep theirs.
  @Test func tapListsSplitWhereATapStarts() throws {
    let model = try Self.model()
    let cases: [(String, [String])] = [
      ("gradcam", ["gradcam"]),
      ("gradcam,cam,act", ["gradcam", "cam", "act"]),
      ("gradcam,layercam:features,saliency", ["gradcam", "layercam:features", "saliency"]),
      ("cam:features,fc.weight,gradcam", ["cam:features,fc.weight", "gradcam"]),
      (
        "occlusion:image:window=4:stride=2,2,ig:image:steps=8:baseline=0.25",
        [
          "occlusion:image:window=4:stride=2,2", "ig:image:steps=8:baseline=0.25",
        ]
      ),
      ("gradcam,nope", ["gradcam", "nope"]),
      ("gradcam,,cam", ["gradcam", "", "cam"]),
    ]
    for (list, texts) in cases { #expect(model.tapTexts(list) == texts, "\(list)") }
    let (extended, taps) = try model.withTaps(model.tapTexts("cam:features,fc.weight,gradcam,layercam:features"))
    #expect(taps == ["cam_features", "gradcam", "layercam"])
    #expect(extended.taps.map(\.name) == ["gradcam", "cam", "act", "cam_features", "layercam"])
    for (texts, message) in [
      (["gradcam", "nope"], "tiny.graph: no tap 'nope'; taps: gradcam (gradcam), cam (cam), act (activation)"),
      (["act", "act"], "tap act is asked for twice"),
      ([], "give at least one tap to explain"),
    ] {
      let error = #expect(throws: GlassboxError.self) { _ = try model.withTaps(texts) }
      #expect(error?.description == message)
    }
  }

  /// The two-input model of examples/two_inputs.graph (a CNN over an image, a linear layer over
  /// a vector, concatenated): Grad-CAM on the CNN branch and saliency and the gradient of each
  /// input, in one run with a class per example, against the reference interpreter on programs
  /// lowered for one class each, and the vector's gradient against central finite differences
  /// of the class score in Float64. A missing input or a wrong shape is refused naming it.
  @Test func aModelWithTwoInputsIsExplainedThroughEach() throws {
    let spec = GettingStartedTests.root.appendingPathComponent("examples/two_inputs.graph").path
    let model = try Model(contentsOf: spec, weights: .init(seed: 5))
    #expect(model.inputs.map(\.description) == ["image f32[B, 3, 16, 16]", "vector f32[B, 5]"])
    let image = Tensor(shape: [2, 3, 16, 16], f32: (0..<1536).map { Float(sin(Double($0) * 0.37)) })
    let vector = Tensor(shape: [2, 5], f32: (0..<10).map { Float(cos(Double($0) * 0.9)) })
    let feeds = ["image": image, "vector": vector]
    let taps = ["gradcam", "image_saliency", "vector_saliency", "vector_gradient"]
    let session = try model.session()
    let explained = try session.explain(taps: taps, feeds, target: .each([2, 0]))
    let bound = try model.graph.bound(["B": 2])
    for (tap, e) in zip(taps, explained) {
      #expect(e.classes == [2, 0], "\(tap)")
      let per = e.map.count / 2
      for (row, k) in [(0, 2), (1, 0)] {
        let lowered = try LowerTaps.apply(
          to: Module(graph: bound, weights: [:]), options: .init(taps: [tap], classIndex: k))
        let expected = try Self.reference(lowered.module.graph, model, feeds)[tap]
        let rowOf = { (t: Tensor) in Tensor(shape: [per], f64: Array(t.doubles[(row * per)..<((row + 1) * per)])) }
        #expect(Self.close(rowOf(e.map), expected.map(rowOf)), "\(tap) row \(row)")
      }
    }
    #expect(explained[0].map.shape == [2, 8, 8] && explained[0].upsampled?.shape == [2, 16, 16])
    #expect(explained[1].map.shape == [2, 3, 16, 16] && explained[2].map.shape == [2, 5])

    // d logits[row, k] / d vector[row, j] by central differences on the reference interpreter.
    let gradient = explained[3].map.doubles, saliency = explained[2].map.doubles
    let h = 1e-3
    for (row, k) in [(0, 2), (1, 0)] {
      for j in 0..<5 {
        func score(_ step: Double) throws -> Double {
          var v = vector.doubles
          v[row * 5 + j] += step
          let out = try Self.reference(bound, model, ["image": image, "vector": Tensor(shape: [2, 5], f64: v)])
          return out["logits"]?.doubles[row * 3 + k] ?? .nan
        }
        let numeric = (try score(h) - score(-h)) / (2 * h)
        let i = row * 5 + j
        #expect(abs(gradient[i] - numeric) <= 1e-3 * max(abs(numeric), 1e-2), "d/dvector[\(row), \(j)]")
        #expect(abs(saliency[i] - numeric * vector.doubles[i]) <= 1e-3 * max(abs(numeric), 1e-2))
      }
    }

    for (feeds, message) in [
      (["image": image], "input 'vector' is missing (vector f32[B, 5])"),
      (
        ["image": image, "vector": Tensor(shape: [2, 4], f32: Array(repeating: 0, count: 8))],
        "input 'vector' has size 4 on axis 1 but the graph expects 5"
      ),
    ] {
      let error = #expect(throws: GlassboxError.self) { _ = try session.explain(taps: taps, feeds) }
      #expect(error?.message == message)
    }
  }

  /// A network whose convolutions `choose-layouts` blocks (16 and 32 channels, a residual, max
  /// pooling) explains as the graph as written does: each tap — its backward slice reading the
  /// blocked values converted back — against the reference interpreter on the plain graph.
  @Test func blockedConvolutionsExplainAsWritten() throws {
    let spec = """
      graph blocked(image: f32[B, 3, 20, 20]) -> (logits: f32[B, 5]) {
        stem = relu(conv2d(image, out: 16, kernel: 3, stride: 2, padding: 1))
        a = relu(conv2d(stem, out: 16, kernel: 3, padding: 1))
        b = relu(add(conv2d(a, out: 16, kernel: 3, padding: 1), stem))
        p = max_pool2d(b, kernel: 2, stride: 2)
        features = relu(conv2d(p, out: 32, kernel: 3, padding: 1))
        logits = linear(flatten(global_avg_pool2d(features)), out: 5)

        tap gradcam = gradcam(features)
        tap mid = layercam(b)
        tap saliency = saliency(image)
        tap act = activation(features)
      }
      """
    let model = try Model(specText: spec, fileName: "blocked.graph", weights: .init(seed: 7))
    let x = Tensor(shape: [2, 3, 20, 20], f32: (0..<2400).map { Float(sin(Double($0) * 0.29)) })
    let feeds = ["image": x]
    // Blocked where the runtime prefers it (AVX-512); the explanations agree either way.
    let report = try model.inferencePipelineReport(printAfter: ["choose-layouts"])
    #expect(report.contains("layout: blocked") == Executable.blockedLayouts)
    #expect(report.contains("features = from_blocked") == Executable.blockedLayouts)
    let taps = ["gradcam", "mid", "saliency", "act"]
    let explained = try model.session().explain(taps: taps, feeds, target: .each([3, 1]))
    let bound = try model.graph.bound(["B": 2])
    for (tap, e) in zip(taps, explained) {
      let per = e.map.count / 2
      for (row, k) in [(0, 3), (1, 1)] {
        let lowered = try LowerTaps.apply(
          to: Module(graph: bound, weights: [:]), options: .init(taps: [tap], classIndex: k))
        let expected = try Self.reference(lowered.module.graph, model, feeds)[tap]
        let rowOf = { (t: Tensor) in Tensor(shape: [per], f64: Array(t.doubles[(row * per)..<((row + 1) * per)])) }
        #expect(Self.close(rowOf(e.map), expected.map(rowOf)), "\(tap) row \(row)")
      }
    }
  }

  @Test func predictedTargetsExplainTheArgmax() throws {
    let session = try Self.model().session()
    let x = Self.images(3, salt: 5)
    let predicted = try session.explain("gradcam", ["image": x])
    let logits = try #require(predicted.outputs["logits"]).floats
    let argmax = (0..<3).map { r in (0..<4).max { logits[r * 4 + $0] < logits[r * 4 + $1] } ?? 0 }
    #expect(predicted.classes == argmax)
    let explicit = try session.explain("gradcam", ["image": x], target: .each(argmax))
    #expect(explicit.map == predicted.map)
    let mixed = try session.explain("gradcam", ["image": x], target: .each([-1, argmax[1], -1]))
    #expect(mixed.map == predicted.map)
    #expect(predicted.normalized?.shape == [3, 6, 6])
    #expect(predicted.upsampled?.shape == [3, 12, 12])
  }

  @Test func aBatchExplainsEachExampleAsItsOwn() throws {
    let session = try Self.model().session()
    let x = Self.images(3, salt: 2)
    let batch = try session.explain("gradcam", ["image": x], target: .fixed(2))
    for row in 0..<3 {
      let one = Tensor(shape: [1, 3, 12, 12], f32: Array(x.floats[(row * 432)..<((row + 1) * 432)]))
      let alone = try session.explain("gradcam", ["image": one], target: .fixed(2))
      let rowMap = Tensor(shape: [1, 6, 6], f32: Array(batch.map.floats[(row * 36)..<((row + 1) * 36)]))
      #expect(Self.close(rowMap, alone.map, tolerance: 1e-5))
    }
  }

  @Test func sessionsRunOnSeveralThreads() async throws {
    let model = try Self.model()
    let inputs = (0..<4).map { Self.images(2, salt: $0) }
    let alone = try model.session()
    let expected = try inputs.map { try alone.run(["image": $0])["logits"] }
    let shared = try model.session()
    try await withThrowingTaskGroup(of: Void.self) { group in
      for worker in 0..<4 {
        // Two workers with sessions of their own, two sharing one.
        let session = worker < 2 ? try model.session() : shared
        group.addTask {
          for round in 0..<20 {
            let i = (worker + round) % inputs.count
            let out = try session.run(["image": inputs[i]])
            #expect(out["logits"] == expected[i])
          }
        }
      }
      try await group.waitForAll()
    }
  }

  @Test func aModelRoundTripsThroughItsFileAndBytes() throws {
    let model = try Self.model()
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glassbox-session-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("tiny.model").path
    try model.with(labels: ["a", "b", "c", "d"]).write(to: path)
    let loaded = try Model(contentsOf: path)
    #expect(loaded.labels == ["a", "b", "c", "d"])
    #expect(loaded.provenance.producerVersion == glassboxVersion)
    #expect(loaded.provenance.specSHA256 == model.provenance.specSHA256)
    let fromBytes = try Model(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
    let x = Self.images(2)
    let expected = try model.session().run(["image": x])
    #expect(try loaded.session().run(["image": x]) == expected)
    #expect(try fromBytes.session().run(["image": x]) == expected)
  }

  /// What a caller can get wrong: each a `GlassboxError` of the right kind whose message names
  /// the problem.
  @Test func mistakesAreErrorsThatNameThem() throws {
    let model = try Self.model()
    let session = try model.session()
    let x = Self.images(1)
    func failure(_ body: () throws -> Void) -> GlassboxError? {
      do {
        try body()
        return nil
      } catch let e as GlassboxError {
        return e
      } catch {
        return GlassboxError(.runtime, "not a GlassboxError: \(error)")
      }
    }
    let cases: [(GlassboxError.Kind, String, () throws -> Void)] = [
      (.input, "tiny has no input 'img' (inputs: image)", { _ = try session.run(["img": x]) }),
      (.input, "input 'image' is missing (image f32[B, 3, 12, 12])", { _ = try session.run([:]) }),
      (
        .input, "input 'image' is i64 but the graph expects f32",
        {
          _ = try session.run([
            "image": Tensor(shape: [1, 3, 12, 12], storage: .i64([Int64](repeating: 0, count: 432)))
          ])
        }
      ),
      (
        .input, "input 'image' has 3 axes [3, 12, 12] but the graph expects 4",
        { _ = try session.run(["image": Tensor(shape: [3, 12, 12], f32: [Float](repeating: 0, count: 432))]) }
      ),
      (
        .input, "input 'image' has size 10 on axis 3 but the graph expects 12",
        { _ = try session.run(["image": Tensor(shape: [1, 3, 12, 10], f32: [Float](repeating: 0, count: 360))]) }
      ),
      (.input, "no tap 'lime'", { _ = try session.explain("lime", ["image": x]) }),
      (
        .input, "target class 4 is out of range: tiny has 4 classes (0…3; -1 = predicted)",
        { _ = try session.explain("gradcam", ["image": x], target: .fixed(4)) }
      ),
      (
        .input, "2 targets for 1 examples; give one class per example",
        { _ = try session.explain("gradcam", ["image": x], target: .each([0, 1])) }
      ),
      (
        .input, "tap act is an activation tap; it explains no class, so takes no target",
        { _ = try session.explain("act", ["image": x], target: .fixed(1)) }
      ),
      (
        .input, "scope must be frame or clip, found 'pixel'",
        { _ = try session.explain("gradcam", ["image": x], scope: "pixel") }
      ),
      (.input, "threads must be at least 1, found 0", { _ = try model.session(SessionOptions(threads: 0)) }),
      (
        .input, "bindings name Q, not a symbol of the model (its symbols: B)",
        { _ = try model.session(SessionOptions(bindings: ["Q": 1])) }
      ),
      (.input, "no tap 'nope'", { _ = try model.session(SessionOptions(taps: ["nope"])) }),
      (.model, "model bytes: file is 5 bytes", { _ = try Model(bytes: [1, 2, 3, 4, 5], name: "model bytes") }),
      (.file, "/nonexistent/x.graph: no such file", { _ = try Model(contentsOf: "/nonexistent/x.graph") }),
      (.spec, "bad.graph:1:1: error:", { _ = try Model(specText: "graf g() {}", fileName: "bad.graph") }),
    ]
    for (kind, text, body) in cases {
      let e = failure(body)
      #expect(e?.kind == kind, "\(text)")
      #expect(e?.description.contains(text) == true, "\(e?.description ?? "no error") should contain \(text)")
    }
  }
}
