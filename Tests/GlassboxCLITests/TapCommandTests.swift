import Foundation
@testable import GlassboxCLI
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
}
