import Foundation
import Glassbox
import GlassboxFormat
import GlassboxIR
@testable import GlassboxONNX
import Testing

/// `Model.onnx` / `exportONNX`: small models with every tap kind, exported and run by ONNX
/// Runtime (through a venv's Python with onnx and onnxruntime: `.venv` or `/work/venv`;
/// without one those tests are skipped and say so) against the library's own explanations;
/// the round trip through `Model(contentsOf:)`, symbolic batch, and the errors.
struct ExportTests {
  /// A CNN with batch norm, max pooling and a residual add: every kind of CNN tap.
  static let cnn = """
    graph cnn(image: f32[B, 3, 12, 12]) -> (logits: f32[B, C]) where C = 5 {
      conv1 = conv2d(image, out: 6, kernel: 3, padding: 1, bias: false)
      bn1 = batch_norm(conv1)
      pool = max_pool2d(relu(bn1), kernel: 3, stride: 2, padding: 1)
      conv2 = conv2d(pool, out: 6, kernel: 3, padding: 1)
      joined = relu(add(conv2, pool))
      conv3 = conv2d(joined, out: 8, kernel: 3, stride: 2, padding: 1)
      features = relu(conv3)
      fc = linear(flatten(global_avg_pool2d(features)), out: C)
      logits = fc

      tap gradcam = gradcam(features)
      tap gradcampp = gradcampp(features)
      tap cam = cam(features, fc.weight)
      tap saliency = saliency(image)
      tap gradient = gradient(joined)
      tap act = activation(pool)
    }
    """

  /// Grad-CAM per frame through an LSTM (a map per step, relevance per frame).
  static let cnnLSTM = """
    graph clip(frames: f32[B, T, 3, 8, 8]) -> (logits: f32[B, 4]) {
      trunk = each_step(small, frames)
      lstm = lstm(trunk, hidden: 6)
      logits = linear(select(lstm, axis: 1, index: -1), out: 4)
      tap gradcam = gradcam(trunk.feat)
      tap hidden = hidden(lstm)
    }
    block small(image) {
      feat = relu(conv2d(image, out: 5, kernel: 3, stride: 2, padding: 1))
      return flatten(global_avg_pool2d(feat))
    }
    """

  /// The study's BiLSTM with 2-D attention, small.
  static let attention = """
    graph lid(mfcc: f32[B, 10, 8]) -> (logits: f32[B, 3]) {
      lstm = lstm(mfcc, hidden: 4, bidirectional: true)
      weights = softmax(linear(tanh(lstm), out: 8), axis: 1)
      context = sum(mul(weights, lstm), axes: [1])
      logits = linear(context, out: 3)
      tap attention = attention(weights)
      tap hidden = hidden(lstm)
      tap saliency = saliency(mfcc)
    }
    """

  static func model(_ text: String, seed: UInt64 = 3) throws -> Model {
    try Model(specText: text, fileName: "t.graph", weights: Model.WeightOptions(seed: seed))
  }

  /// A Python with onnx and onnxruntime, if one is found.
  static let python: String? = {
    for venv in [Repo.root.appendingPathComponent(".venv").path, "/work/venv"] {
      let python = venv + "/bin/python"
      guard FileManager.default.isExecutableFile(atPath: python) else { continue }
      let p = Process()
      p.executableURL = URL(fileURLWithPath: python)
      p.arguments = ["-c", "import onnx, onnxruntime"]
      p.standardError = FileHandle.nullDevice
      guard (try? p.run()) != nil else { continue }
      p.waitUntilExit()
      if p.terminationStatus == 0 { return python }
    }
    return nil
  }()

  /// Runs `file` in ONNX Runtime on `feeds` after `onnx.checker.check_model(full_check=True)`;
  /// every output by name.
  static func runtime(_ file: String, _ feeds: [String: Tensor]) throws -> [String: Tensor] {
    let python = try #require(python)
    let folder = NSTemporaryDirectory() + "gbx-export-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    var arguments = [
      "-c",
      """
      import sys, numpy as np, onnx, onnxruntime as ort
      path, folder = sys.argv[1], sys.argv[2]
      onnx.checker.check_model(onnx.load(path), full_check=True)
      options = ort.SessionOptions()
      options.log_severity_level = 3
      s = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
      feeds = {name: np.load(f"{folder}/in.{name}.npy") for name in sys.argv[3:]}
      for o, v in zip(s.get_outputs(), s.run(None, feeds)):
          np.save(f"{folder}/out.{o.name}.npy", v)
      """, file, folder,
    ]
    for (name, t) in feeds {
      try NPY.write(t, to: "\(folder)/in.\(name).npy")
      arguments.append(name)
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: python)
    p.arguments = arguments
    let errors = Pipe()
    p.standardError = errors
    try p.run()
    let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    #expect(p.terminationStatus == 0, "ONNX Runtime or the checker failed: \(message)")
    var out: [String: Tensor] = [:]
    for f in try FileManager.default.contentsOfDirectory(atPath: folder) where f.hasPrefix("out.") {
      out[String(f.dropFirst(4).dropLast(4))] = try NPY.read("\(folder)/\(f)")
    }
    return out
  }

  static func deterministic(_ shape: [Int], salt: Double = 0) -> Tensor {
    let n = shape.reduce(1, *)
    return Tensor(shape: shape, f32: (0..<n).map { Float(sin(Double($0) * 0.37 + salt)) })
  }

  /// Exports `model` (every tap) and checks ONNX Runtime's outputs against `Session.explain`
  /// for each tap, with the first example's class predicted in the graph and the second's given.
  func agrees(_ model: Model, input: String, shape: [Int], bindings: [String: Int] = [:], opset: Int = 17) throws {
    let file = NSTemporaryDirectory() + "gbx-export-\(UUID().uuidString).onnx"
    defer { try? FileManager.default.removeItem(atPath: file) }
    try model.exportONNX(to: file, ONNXExportOptions(opset: opset, bindings: bindings))
    let x = Self.deterministic(shape)
    let target = Tensor(shape: [shape[0]], storage: .i64([-1] + [Int64](repeating: 2, count: shape[0] - 1)))
    let needsTarget = model.taps.contains { $0.needsClass }
    let results = try Self.runtime(file, needsTarget ? [input: x, "target": target] : [input: x])
    let session = try model.session(SessionOptions(bindings: bindings))
    var compared = 0
    for tap in model.taps {
      let classes = [-1] + [Int](repeating: 2, count: shape[0] - 1)
      let e = try session.explain(tap.name, [input: x], target: tap.needsClass ? .each(classes) : .predicted)
      if let logits = e.outputs["logits"] {
        #expect(
          close(results["logits"], logits, tolerance: 1e-4),
          "logits differ by \(results["logits"].map { largestDifference($0, logits) } ?? .infinity)")
      }
      for (role, map) in e.maps {
        let name = role == "raw" ? tap.name : "\(tap.name).\(role)"
        let exported = try #require(results[name], "\(name) is not an output of the export")
        #expect(close(exported, map, tolerance: 1e-3), "\(name) differs by \(largestDifference(exported, map))")
        compared += 1
      }
    }
    #expect(compared >= model.taps.count)
  }

  @Test(
    .enabled(if: python != nil || onnxOracleRequired, "needs a venv with onnx and onnxruntime (.venv or /work/venv)"))
  func cnnTapsRunInONNXRuntime() throws {
    try agrees(Self.model(Self.cnn), input: "image", shape: [2, 3, 12, 12])
  }

  /// Taps that run copies of the input (Integrated Gradients, SmoothGrad and VarGrad with their
  /// seeded noise, Occlusion, Score-CAM) stack them along a fixed batch: exported with `B`
  /// bound, ONNX Runtime gives what the library does; with `B` open the export is refused.
  @Test(
    .enabled(if: python != nil || onnxOracleRequired, "needs a venv with onnx and onnxruntime (.venv or /work/venv)"))
  func tapsThatRunCopiesRunInONNXRuntime() throws {
    let copies = [
      "tap ig = ig(image, steps: 4)", "tap smooth = smoothgrad(image, samples: 3, stdev: 0.2)",
      "tap spread = vargrad(image, samples: 3, batch: 2)", "tap occluded = occlusion(image, window: 6, stride: 6)",
      "tap score = scorecam(features)",
    ]
    let text = Self.cnn.replacingOccurrences(
      of: "tap act = activation(pool)", with: (["tap act = activation(pool)"] + copies).joined(separator: "\n  "))
    let model = try Self.model(text)
    #expect(model.taps.filter { $0.kind.runsCopies }.count == 5)
    try agrees(model, input: "image", shape: [2, 3, 12, 12], bindings: ["B": 2])
    let refusal = #expect(throws: GlassboxError.self) { try model.onnx(ONNXExportOptions(taps: ["gradcam", "ig"])) }
    #expect(refusal?.description.contains("bind B (taps ig stack copies") == true, "\(String(describing: refusal))")
    // Without the copying taps the batch stays open.
    _ = try model.onnx(ONNXExportOptions(taps: ["gradcam"]))
  }

  /// Reductions take their axes as inputs from opset 18; max pooling's backward needs
  /// ScatterElements' `add` (16).
  @Test(
    .enabled(if: python != nil || onnxOracleRequired, "needs a venv with onnx and onnxruntime (.venv or /work/venv)"),
    arguments: [16, 18, 21])
  func otherOpsetsRunInONNXRuntime(_ opset: Int) throws {
    try agrees(Self.model(Self.cnn), input: "image", shape: [2, 3, 12, 12], opset: opset)
  }

  @Test
  func maxPoolingsBackwardNeedsOpset16() throws {
    let model = try Self.model(Self.cnn)
    #expect { try model.onnx(ONNXExportOptions(taps: ["saliency"], opset: 15)) } throws: { error in
      let message = (error as? GlassboxError)?.message ?? ""
      return message.contains("tap 'saliency'") && message.contains("max_pool2d_backward")
        && message.contains("opset 16")
    }
    // Grad-CAM at the last map needs no pooling backward.
    #expect(try model.onnx(ONNXExportOptions(taps: ["gradcam", "cam", "act"], opset: 13)).nodeCount > 0)
  }

  @Test(
    .enabled(if: python != nil || onnxOracleRequired, "needs a venv with onnx and onnxruntime (.venv or /work/venv)"))
  func perFrameGradCAMThroughAnLSTMRunsInONNXRuntime() throws {
    try agrees(Self.model(Self.cnnLSTM), input: "frames", shape: [2, 3, 3, 8, 8], bindings: ["T": 3])
  }

  @Test(
    .enabled(if: python != nil || onnxOracleRequired, "needs a venv with onnx and onnxruntime (.venv or /work/venv)"))
  func attentionAndSaliencyThroughABiLSTMRunInONNXRuntime() throws {
    try agrees(Self.model(Self.attention), input: "mfcc", shape: [3, 10, 8])
  }

  /// Only B stays symbolic: the input, the target and every output carry `B`, at batch 1
  /// and 3 alike (ONNX Runtime runs both sizes of the one file).
  @Test(
    .enabled(if: python != nil || onnxOracleRequired, "needs a venv with onnx and onnxruntime (.venv or /work/venv)"))
  func theBatchStaysSymbolic() throws {
    let model = try Self.model(Self.cnn)
    let summary = try model.onnx(ONNXExportOptions(taps: ["gradcam"]))
    let proto = try Onnx_ModelProto(serializedBytes: summary.bytes)
    for v in proto.graph.input + proto.graph.output {
      #expect(v.type.tensorType.shape.dim.first?.dimParam == "B", "\(v.name)")
    }
    #expect(proto.graph.input.map(\.name) == ["image", "target"])
    #expect(proto.graph.output.map(\.name) == ["logits", "gradcam", "gradcam.normalized", "gradcam.upsampled"])
    let file = NSTemporaryDirectory() + "gbx-export-\(UUID().uuidString).onnx"
    defer { try? FileManager.default.removeItem(atPath: file) }
    try Data(summary.bytes).write(to: URL(fileURLWithPath: file))
    for n in [1, 3] {
      let out = try Self.runtime(
        file,
        [
          "image": Self.deterministic([n, 3, 12, 12]),
          "target": Tensor(shape: [n], storage: .i64([Int64](repeating: -1, count: n))),
        ])
      #expect(out["gradcam.upsampled"]?.shape == [n, 12, 12])
      #expect(out["logits"]?.shape == [n, 5])
    }
  }

  /// Without a backward pass through the LSTM, the clip length stays symbolic as well: one
  /// file runs clips of 3 and 5 frames, batches of 1 and 2.
  @Test(
    .enabled(if: python != nil || onnxOracleRequired, "needs a venv with onnx and onnxruntime (.venv or /work/venv)"))
  func framesStaySymbolicWithoutABackwardThroughTheLSTM() throws {
    let model = try Self.model(Self.cnnLSTM)
    let summary = try model.onnx(ONNXExportOptions(taps: ["hidden"]))
    let proto = try Onnx_ModelProto(serializedBytes: summary.bytes)
    #expect(proto.graph.input.first?.type.tensorType.shape.dim.prefix(2).map(\.dimParam) == ["B", "T"])
    #expect(proto.graph.output.map(\.name) == ["logits", "hidden"])
    let file = NSTemporaryDirectory() + "gbx-export-\(UUID().uuidString).onnx"
    defer { try? FileManager.default.removeItem(atPath: file) }
    try Data(summary.bytes).write(to: URL(fileURLWithPath: file))
    let session = try model.session()
    for (n, t) in [(1, 3), (2, 5)] {
      let x = Self.deterministic([n, t, 3, 8, 8], salt: Double(t))
      let out = try Self.runtime(file, ["frames": x])
      let own = try session.run(["frames": x])
      for name in ["logits", "hidden"] {
        let expected = try #require(own[name])
        #expect(
          close(out[name], expected, tolerance: 1e-4),
          "\(name) at [\(n), \(t)]: \(out[name].map { largestDifference($0, expected) } ?? .infinity)")
      }
    }
    // Grad-CAM through the LSTM needs the steps bound.
    #expect { try model.onnx(ONNXExportOptions(taps: ["gradcam"])) } throws: { error in
      ((error as? GlassboxError)?.message ?? "").contains("bind T")
    }
  }

  /// An export imported back is the model's own graph (taps, scopes, recipes), weights,
  /// labels and provenance, not the lowered graph its nodes spell out.
  @Test
  func importingAnExportGivesBackTheSameGraphAndTaps() throws {
    for (text, bindings) in [(Self.cnn, [String: Int]()), (Self.cnnLSTM, ["T": 3]), (Self.attention, [:])] {
      var model = try Self.model(text)
      if model.graph.labelCount == 5 { model = try model.with(labels: ["a", "b", "c", "d", "e"]) }
      let file = NSTemporaryDirectory() + "gbx-export-\(UUID().uuidString).onnx"
      defer { try? FileManager.default.removeItem(atPath: file) }
      try model.exportONNX(to: file, ONNXExportOptions(bindings: bindings))
      let back = try Model(contentsOf: file)
      let expected = bindings.isEmpty ? model.graph : try model.graph.bound(bindings)
      #expect(back.graph == expected, "\(model.name)")
      #expect(
        back.taps.map { [$0.name, $0.kind.rawValue] + $0.values }
          == model.taps.map { [$0.name, $0.kind.rawValue] + $0.values })
      #expect(back.labels == model.labels)
      #expect(back.provenance == model.provenance)
      #expect(try back.parameterTensors() == model.parameterTensors(for: expected), "\(model.name)")
    }
  }

  /// A gradient through a layer norm (its backward composed of reductions) and a softmax.
  @Test(
    .enabled(if: python != nil || onnxOracleRequired, "needs a venv with onnx and onnxruntime (.venv or /work/venv)"))
  func aGradientThroughALayerNormRunsInONNXRuntime() throws {
    let text = """
      graph g(x: f32[B, 6, 4]) -> (logits: f32[B, 3]) {
        normed = layer_norm(linear(x, out: 4))
        logits = linear(sum(mul(softmax(normed, axis: 1), normed), axes: [1]), out: 3)
        tap through = gradient(x)
        tap before = activation(normed)
      }
      """
    try agrees(Self.model(text), input: "x", shape: [2, 6, 4])
  }

  /// The elementwise math ops, padding in every mode and a local response normalisation run
  /// as ONNX Runtime's Exp, Log, Sqrt, Abs, Erf, Pow, Max, Min, Pad and LRN, with the gradient
  /// to the input through all of them but LRN, whose gradient has no ONNX form.
  @Test(
    .enabled(if: python != nil || onnxOracleRequired, "needs a venv with onnx and onnxruntime (.venv or /work/venv)"))
  func mathPaddingAndLRNRunInONNXRuntime() throws {
    let text = """
      graph g(x: f32[B, 4, 5, 5]) -> (logits: f32[B, 3]) {
        s = sigmoid(x)
        a = add(log(add(abs(x), s)), sqrt(add(mul(x, x), s)))
        b = maximum(erf(a), minimum(exp(x), pow(add(abs(a), s), s)))
        r = pad(b, pads: [0, 0, 1, 2, 0, 0, 2, 1], mode: reflect)
        c = pad(r, pads: [0, 0, 1, 0, 0, 0, 0, 1], value: 0.25)
        e = pad(c, pads: [0, 0, 0, 1, 0, 0, 1, 0], mode: edge)
        logits = linear(flatten(e), out: 3)
        tap through = gradient(x)
        tap padded = activation(e)
      }
      """
    try agrees(Self.model(text), input: "x", shape: [2, 4, 5, 5])
    let lrn = """
      graph l(x: f32[B, 6, 4, 4]) -> (logits: f32[B, 3]) {
        n = lrn(x, size: 3, alpha: 0.5, beta: 0.75, bias: 1.5)
        logits = linear(flatten(n), out: 3)
        tap normed = activation(n)
      }
      """
    try agrees(Self.model(lrn), input: "x", shape: [2, 6, 4, 4])
    var withGradient = try Self.model(lrn)
    withGradient = try withGradient.adding(tap: "gradient:x")
    let file = NSTemporaryDirectory() + "gbx-export-\(UUID().uuidString).onnx"
    defer { try? FileManager.default.removeItem(atPath: file) }
    let error = #expect(throws: (any Error).self) { try withGradient.exportONNX(to: file, ONNXExportOptions()) }
    #expect("\(error.map { String(describing: $0) } ?? "")".contains("lrn_backward"))
    #expect(!FileManager.default.fileExists(atPath: file))
  }

  /// A gradient through a strided slice needs slice_backward with a step, which has no ONNX
  /// form: the error names the op and the tap, and nothing is written.
  @Test
  func aTapWhoseBackwardHasNoONNXFormIsRefusedByName() throws {
    let text = """
      graph g(x: f32[B, 6, 4]) -> (logits: f32[B, 3]) {
        every_other = slice(x, axis: 1, start: 0, end: 6, step: 2)
        logits = linear(sum(every_other, axes: [1]), out: 3)
        tap through = gradient(x)
        tap before = activation(every_other)
      }
      """
    let model = try Self.model(text)
    let file = NSTemporaryDirectory() + "gbx-export-\(UUID().uuidString).onnx"
    #expect {
      try model.exportONNX(to: file)
    } throws: { error in
      let message = (error as? GlassboxError)?.message ?? ""
      return message.contains("tap 'through'") && message.contains("slice_backward")
        && message.contains("no ONNX form") && (error as? GlassboxError)?.kind == .unsupported
    }
    #expect(!FileManager.default.fileExists(atPath: file))
    // Without that tap the same model exports.
    #expect(try model.onnx(ONNXExportOptions(taps: ["before"])).nodeCount > 0)
  }

  /// An existing file is replaced whole (a temporary file renamed over it), and no temporary
  /// file is left beside it.
  @Test
  func anExistingFileIsReplacedAtomically() throws {
    let folder = NSTemporaryDirectory() + "gbx-export-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let file = folder + "/m.onnx"
    try Data(repeating: 7, count: 100_000).write(to: URL(fileURLWithPath: file))
    let summary = try Self.model(Self.cnn).exportONNX(to: file)
    #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == Data(summary.bytes))
    #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["m.onnx"])
  }

  @Test
  func badOptionsAreRefused() throws {
    let model = try Self.model(Self.cnnLSTM)
    #expect { try model.onnx() } throws: { error in
      ((error as? GlassboxError)?.message ?? "").contains("bind T")
    }
    #expect { try Self.model(Self.cnn.replacingOccurrences(of: " where C = 5", with: "")).onnx() } throws: { error in
      ((error as? GlassboxError)?.message ?? "").contains("bind C")
    }
    #expect { try model.onnx(ONNXExportOptions(opset: 12, bindings: ["T": 3])) } throws: { error in
      ((error as? GlassboxError)?.message ?? "").contains("opset 12 is not supported")
    }
    #expect { try model.onnx(ONNXExportOptions(taps: ["nope"], bindings: ["T": 3])) } throws: { error in
      ((error as? GlassboxError)?.message ?? "").contains("no tap 'nope'")
    }
  }
}
