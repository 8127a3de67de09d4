import Foundation
@testable import GlassboxCLI
import Glassbox
import GlassboxFormat
import GlassboxIR
import Testing

/// `glassbox tap`: the files it writes and the errors it gives before doing any work.
struct TapCommandTests {
  static func npy(_ shape: [Int], in dir: URL, name: String) throws -> String {
    let count = shape.reduce(1, *)
    let path = dir.appendingPathComponent(name).path
    try NPY.write(Tensor(shape: shape, f32: (0..<count).map { Float(($0 * 7919) % 101) / 50 - 1 }), to: path)
    return path
  }

  @Test func attentionTapWritesTensorsSummaryAndPicture() throws {
    try ModelCommandTests.withTemporaryDirectory { dir in
      let input = try Self.npy([1, 768, 128], in: dir, name: "mfcc.npy")
      let out = dir.appendingPathComponent("out").path
      try ModelCommandTests.glassbox([
        "tap", ModelCommandTests.spec("bilstm_attention1d"), "attention", input,
        "--bind", "C=3", "-o", out,
      ])
      let attention = try NPY.read(out + "/attention.npy")
      #expect(attention.shape == [1, 768])
      #expect(abs(attention.doubles.reduce(0, +) - 1) < 1e-4)  // softmax over the frames
      let summary = try #require(
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json")))
          as? [String: Any])
      #expect(summary["tap"] as? String == "attention")
      #expect((summary["probabilities"] as? [Double])?.count == 3)
      let png = try Data(contentsOf: URL(fileURLWithPath: out + "/attention.png"))
      #expect(png.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]))
    }
  }

  @Test func camTapOnAClipWritesMapsAndPictures() throws {
    try ModelCommandTests.withTemporaryDirectory { dir in
      let input = try Self.npy([1, 3, 32, 32], in: dir, name: "image.npy")
      let out = dir.appendingPathComponent("out").path
      try ModelCommandTests.glassbox([
        "tap", ModelCommandTests.spec("resnet18"), "cam", input, "--class", "2",
        "--bind", "C=4", "--bind", "H=32", "--bind", "W=32", "-o", out,
      ])
      #expect(try NPY.read(out + "/cam.npy").shape == [1, 1, 1])
      #expect(try NPY.read(out + "/cam.upsampled.npy").shape == [1, 32, 32])
      let summary = try String(contentsOfFile: out + "/summary.json", encoding: .utf8)
      #expect(summary.contains("\"class\":2"))
      #expect(FileManager.default.fileExists(atPath: out + "/cam.png"))
    }
  }

  /// A `.npy` input of a model whose recipe says it is an image gets the same pictures as a raw
  /// image: a map in the input's own layout (saliency: gradient × input, `[B, 3, H, W]`) is drawn
  /// over the de-normalised frame, as Grad-CAM's upsampled maps are.
  @Test func saliencyOfATensorInputIsDrawnOverItsImage() throws {
    try ModelCommandTests.withTemporaryDirectory { dir in
      let spec = dir.appendingPathComponent("tiny.graph").path
      try """
      graph tiny_cnn(image: f32[B, 3, 8, 8]) -> (logits: f32[B, 3]) {
        recipe image = image(size: 8)
        conv = conv2d(image, out: 4, kernel: 3, padding: 1)
        fc = linear(flatten(global_avg_pool2d(relu(conv))), out: 3)
        logits = fc
        tap saliency = saliency(image)
      }
      """.write(toFile: spec, atomically: true, encoding: .utf8)
      let input = try Self.npy([1, 3, 8, 8], in: dir, name: "image.npy")
      let out = dir.appendingPathComponent("out").path
      try ModelCommandTests.glassbox(["tap", spec, "saliency", input, "--class", "1", "-o", out])
      #expect(try NPY.read(out + "/saliency.npy").shape == [1, 3, 8, 8])
      let png = [UInt8](try Data(contentsOf: URL(fileURLWithPath: out + "/saliency.png")))
      #expect(png.prefix(4) == [0x89, 0x50, 0x4E, 0x47])
      // IHDR: width and height, big-endian, at bytes 16 and 20: the frame's 8 × 8 pixels.
      #expect(png.count > 24 && png[16..<24] == [0, 0, 0, 8, 0, 0, 0, 8])
    }
  }

  @Test func badRequestsFailBeforeWork() throws {
    try ModelCommandTests.withTemporaryDirectory { dir in
      let input = try Self.npy([1, 768, 128], in: dir, name: "mfcc.npy")
      let spec = ModelCommandTests.spec("bilstm_attention1d")
      let out = dir.appendingPathComponent("out").path
      #expect(
        ModelCommandTests.message(["tap", spec, "nope", input, "--bind", "C=3", "-o", out])
          == "\(spec): no tap 'nope'; taps: attention (attention), hidden (hidden), saliency (saliency)")
      #expect(
        ModelCommandTests.message(["tap", spec, "saliency", input, "--bind", "C=3", "--class", "3", "-o", out])
          == "--class 3 is out of range: bilstm_attention1d has 3 classes (0…2)")
      #expect(
        ModelCommandTests.message([
          "tap", spec, "attention", dir.appendingPathComponent("missing.wav").path,
          "--bind", "C=3", "-o", out,
        ]).hasSuffix("missing.wav: no such file or not readable"))
      let garbage = dir.appendingPathComponent("bad.wav")
      try Data("not audio".utf8).write(to: garbage)
      #expect(
        ModelCommandTests.message(["tap", spec, "attention", garbage.path, "--bind", "C=3", "-o", out])
          .contains("bad.wav"))
      #expect(!FileManager.default.fileExists(atPath: out))
    }
  }

  /// Every `.npy` under `root` by relative path.
  static func tensors(under root: String) throws -> [String: Tensor] {
    var out: [String: Tensor] = [:]
    for case let file as String in FileManager.default.enumerator(atPath: root)?.allObjects ?? []
    where file.hasSuffix(".npy") {
      out[file] = try NPY.read((root as NSString).appendingPathComponent(file))
    }
    return out
  }

  static func close(_ a: Tensor?, _ b: Tensor?, tolerance: Double = 1e-6) -> Bool {
    guard let a, let b, a.shape == b.shape else { return false }
    let scale = max(b.doubles.map(abs).max() ?? 0, 1e-6)
    return zip(a.doubles, b.doubles).allSatisfy { abs($0 - $1) <= tolerance * scale }
  }

  /// Several taps in one call (one added, a CAM whose values hold a comma, one that explains no
  /// class): each tap's folder holds what the tap alone writes, within 1e-6, with its own
  /// summary; one tap keeps today's layout, and several inputs give DIR/TAP/STEM/.
  @Test func severalTapsInOneCallWriteWhatEachWritesAlone() throws {
    try ModelCommandTests.withTemporaryDirectory { dir in
      let spec = ModelCommandTests.root.appendingPathComponent("examples/tiny_cnn.graph").path
      let input = try Self.npy([2, 3, 32, 32], in: dir, name: "x.npy")
      let out = dir.appendingPathComponent("out").path
      let list = "gradcam,cam:features,fc.weight:name=cam2,act,layercam:features"
      try ModelCommandTests.glassbox(["tap", spec, list, input, "--class", "2", "--no-pictures", "-o", out])
      let together = try Self.tensors(under: out)
      #expect(
        together.keys.sorted() == [
          "act/act.npy", "cam2/cam2.normalized.npy", "cam2/cam2.npy", "cam2/cam2.upsampled.npy",
          "gradcam/gradcam.normalized.npy", "gradcam/gradcam.npy", "gradcam/gradcam.upsampled.npy",
          "layercam/layercam.normalized.npy", "layercam/layercam.npy", "layercam/layercam.upsampled.npy",
        ])
      for (tap, text) in [
        ("gradcam", "gradcam"), ("cam2", "cam:features,fc.weight:name=cam2"), ("act", "act"),
        ("layercam", "layercam:features"),
      ] {
        let alone = dir.appendingPathComponent("alone-\(tap)").path
        let flags = tap == "act" ? [] : ["--class", "2"]
        try ModelCommandTests.glassbox(["tap", spec, text, input, "--no-pictures", "-o", alone] + flags)
        let expected = try Self.tensors(under: alone)
        #expect(!expected.isEmpty)
        for (file, t) in expected { #expect(Self.close(together["\(tap)/\(file)"], t), "\(tap)/\(file)") }
        let summary = try #require(
          try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(out)/\(tap)/summary.json")))
            as? [String: Any])
        #expect(summary["tap"] as? String == tap)
        #expect(summary["class"] as? [Int] == (tap == "act" ? nil : [2, 2]))
      }
      // Two input files: a folder per tap, then per file.
      let second = try Self.npy([2, 3, 32, 32], in: dir, name: "y.npy")
      let files = dir.appendingPathComponent("files").path
      try ModelCommandTests.glassbox(["tap", spec, "gradcam,act", input, second, "--no-pictures", "-o", files])
      #expect(
        try Self.tensors(under: files).keys.sorted() == [
          "act/x/act.npy", "act/y/act.npy", "gradcam/x/gradcam.normalized.npy", "gradcam/x/gradcam.npy",
          "gradcam/x/gradcam.upsampled.npy", "gradcam/y/gradcam.normalized.npy", "gradcam/y/gradcam.npy",
          "gradcam/y/gradcam.upsampled.npy",
        ])
    }
  }

  /// A bad tap anywhere in the list, a tap twice, or --class for taps that explain no class:
  /// refused before anything is computed or written, naming the tap.
  @Test func aBadTapInTheListFailsBeforeWork() throws {
    try ModelCommandTests.withTemporaryDirectory { dir in
      let spec = ModelCommandTests.root.appendingPathComponent("examples/tiny_cnn.graph").path
      let input = try Self.npy([1, 3, 32, 32], in: dir, name: "x.npy")
      let out = dir.appendingPathComponent("out").path
      func message(_ taps: String, _ flags: [String] = []) -> String {
        ModelCommandTests.message(["tap", spec, taps, input, "-o", out] + flags)
      }
      #expect(
        message("gradcam,nope,cam") == "\(spec): no tap 'nope'; taps: gradcam (gradcam), cam (cam), act (activation)")
      #expect(
        message("gradcam,saliency")
          == "\(spec): no tap 'saliency'; taps: gradcam (gradcam), cam (cam), act (activation)")
      #expect(message("cam,gradcam,cam") == "tap cam is asked for twice")
      #expect(message("gradcam,,cam") == "an empty tap in the list 'gradcam,,cam'")
      #expect(message("gradcam,layercam:nothing").contains("the graph has no value named 'nothing'"))
      #expect(message("act", ["--class", "1"]) == "--class: tap act is a activation tap; it explains no class")
      #expect(message("act,act2", ["--class", "1"]).contains("no tap 'act2'"))
      #expect(!FileManager.default.fileExists(atPath: out))
    }
  }

  /// A model with two inputs (an image through a CNN, a vector through a linear layer): NAME=FILE
  /// for each input, Grad-CAM on the CNN branch and saliency/gradient on each input in one run,
  /// each equal to the library's explanation; a missing input, a wrong shape or a grouping
  /// mistake is refused naming the input and its file.
  @Test func aModelWithTwoInputsTakesAFilePerInput() throws {
    try ModelCommandTests.withTemporaryDirectory { dir in
      let spec = ModelCommandTests.root.appendingPathComponent("examples/two_inputs.graph").path
      let image = try Self.npy([2, 3, 16, 16], in: dir, name: "image.npy")
      let vector = try Self.npy([2, 5], in: dir, name: "vector.npy")
      let out = dir.appendingPathComponent("out").path
      let taps = ["gradcam", "image_saliency", "vector_saliency", "vector_gradient"]
      try ModelCommandTests.glassbox(
        ["tap", spec, taps.joined(separator: ","), "vector=\(vector)", "image=\(image)", "-o", out, "--class", "1"])
      let model = try Model(contentsOf: spec)
      let feeds = ["image": try NPY.read(image), "vector": try NPY.read(vector)]
      let session = try model.session()
      for tap in taps {
        let expected = try session.explain(tap, feeds, target: .fixed(1))
        for (name, t) in expected.mapTensors {
          #expect(Self.close(try NPY.read("\(out)/\(tap)/\(name).npy"), t), "\(tap)/\(name)")
        }
      }
      let summary = try String(contentsOfFile: "\(out)/gradcam/summary.json", encoding: .utf8)
      #expect(summary.contains("\"inputs\":{\"image\":\"\(image)\",\"vector\":\"\(vector)\"}"))
      #expect(FileManager.default.fileExists(atPath: "\(out)/gradcam/gradcam.png"))

      let short = try Self.npy([2, 4], in: dir, name: "short.npy")
      let bad = dir.appendingPathComponent("bad").path
      func message(_ inputs: [String]) -> String {
        ModelCommandTests.message(["tap", spec, "gradcam"] + inputs + ["-o", bad])
      }
      let usage =
        "two_inputs has 2 inputs (image, vector): give NAME=FILE for each, e.g. image=image.npy vector=vector.npy"
      #expect(message(["image=\(image)"]) == "the last example has no file for input 'vector'; \(usage)")
      #expect(message([image, vector]) == "\(image): \(usage)")
      #expect(message(["image=\(image)", "image=\(image)"]).hasPrefix("image=\(image): input 'image' is given twice"))
      #expect(message(["picture=\(image)"]) == "picture=\(image): \(usage) ('picture' is not one of them)")
      #expect(
        message(["image=\(image)", "vector=\(short)"])
          == "\(short): input 'vector' has size 4 on axis 1 but the graph expects 5")
      #expect(
        message(["image=\(image)", "vector=\(dir.path)/missing.npy"])
          == "\(dir.path)/missing.npy: no such file or not readable")
      #expect(!FileManager.default.fileExists(atPath: bad))
    }
  }

  /// `--data` with several taps: each DIR/TAP/ holds the files of the tap alone over the split;
  /// sharded and merged, the same files.
  @Test func severalTapsOverADataSet() throws {
    try ModelCommandTests.withTemporaryDirectory { dir in
      _ = try ExitStatusTests.makeSpeech(in: dir)
      let spec = ModelCommandTests.spec("bilstm_attention1d")
      let data = dir.appendingPathComponent("lid").path
      let tap = ["tap", spec, "--bind", "C=2", "--data", data, "--split", "train", "--no-pictures"]
      try ModelCommandTests.glassbox(tap + ["attention,saliency", "-o", "\(dir.path)/both"])
      var count = 0
      for name in ["attention", "saliency"] {
        try ModelCommandTests.glassbox(tap + [name, "-o", "\(dir.path)/\(name)"])
        let alone = try Self.tensors(under: "\(dir.path)/\(name)")
        let together = try Self.tensors(under: "\(dir.path)/both/\(name)")
        #expect(alone.keys.sorted() == together.keys.sorted() && alone.count > 2, "\(name)")
        for (file, t) in alone { #expect(Self.close(together[file], t), "\(name)/\(file)") }
        count += alone.count
      }
      #expect(count > 4)
      for i in 0..<2 {
        try ModelCommandTests.glassbox(tap + ["attention,saliency", "--shard", "\(i)/2", "-o", "\(dir.path)/s"])
      }
      try ModelCommandTests.glassbox([
        "merge", "\(dir.path)/s.shard-0-of-2", "\(dir.path)/s.shard-1-of-2", "-o", "\(dir.path)/merged",
      ])
      for name in ["attention", "saliency"] {
        let whole = try Self.tensors(under: "\(dir.path)/both/\(name)")
        let merged = try Self.tensors(under: "\(dir.path)/merged/\(name)")
        #expect(whole.keys.sorted() == merged.keys.sorted() && whole.count > 2, "\(name)")
        for (file, t) in whole { #expect(Self.close(merged[file], t), "merged \(name)/\(file)") }
      }
    }
  }
}
