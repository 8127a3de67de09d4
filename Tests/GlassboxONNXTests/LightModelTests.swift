import Foundation
import Glassbox
import GlassboxIR
@testable import GlassboxONNX
import Testing

/// The nine `light` models the onnx package ships (onnx/backend/test/data/light: alexnet,
/// densenet121, inception v1 and v2, resnet50, shufflenet, squeezenet, vgg19, zfnet512), found
/// through a venv that has onnx (`ONNX_TEST_DATA`, `.venv` or `/work/venv`); without one these
/// tests are skipped and say so. Each imports; those in `run` run on the backend test's input
/// (arange(n)/n) against its recorded output (tools/onnx_conformance.py runs all nine, also
/// with redrawn weights against ONNX Runtime).
struct LightModelTests {
  static let folder: String? = {
    var candidates: [String] = []
    if let given = ProcessInfo.processInfo.environment["ONNX_TEST_DATA"] { candidates.append(given + "/light") }
    for venv in [Repo.root.appendingPathComponent(".venv").path, "/work/venv"] {
      let lib = venv + "/lib"
      for python in (try? FileManager.default.contentsOfDirectory(atPath: lib)) ?? [] where python.hasPrefix("python") {
        candidates.append("\(lib)/\(python)/site-packages/onnx/backend/test/data/light")
      }
    }
    return candidates.first { FileManager.default.fileExists(atPath: $0 + "/light_resnet50.onnx") }
  }()

  /// Run as well as imported (alexnet's, vgg19's and zfnet512's 61 M to 143 M parameters only
  /// import here, to keep the suite quick; inception_v1 runs its LRNs).
  static let run: Set<String> = ["densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet"]
  static let names = [
    "bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
    "squeezenet", "vgg19", "zfnet512",
  ]

  @Test(
    .enabled(
      if: folder != nil || onnxOracleRequired,
      "needs the onnx package's test data: a venv with onnx (ONNX_TEST_DATA=…/data)"),
    arguments: names)
  func importsAndMatchesItsRecordedOutput(_ name: String) throws {
    let folder = try #require(Self.folder)
    let path = "\(folder)/light_\(name).onnx"
    let model = try Model(contentsOf: path)
    guard Self.run.contains(name) else { return }
    let input = try #require(model.inputs.first)
    let shape = input.shape.map { if case .fixed(let n) = $0 { n } else { 1 } }
    let n = shape.reduce(1, *)
    let x = Tensor(shape: shape, f32: (0..<n).map { Float(Double($0) / Double(n)) })
    let out = try model.session().run([input.name: x])
    let recorded = try Onnx_TensorProto(
      serializedBytes: [UInt8](
        Data(
          contentsOf: URL(
            fileURLWithPath:
              "\(folder)/light_\(name)_output_0.pb"))))
    let expected = try ONNXFile.constant(recorded, what: "output", context: .init(file: path, directory: nil))
    let actual = try #require(out[model.outputs[0].name])
    #expect(actual.shape == expected.shape)
    let reference = Tensor(shape: expected.shape, f32: try expected.floatValues())
    #expect(close(actual, reference), "\(name): differs by \(largestDifference(actual, reference))")
  }
}
