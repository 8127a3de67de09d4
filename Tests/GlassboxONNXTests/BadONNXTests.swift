import Foundation
import Glassbox
@testable import GlassboxONNX
import Testing

/// Malformed and hostile files (Fixtures/bad, from tools/reference/onnx_fixtures.py): each is
/// refused with a message that names the file and the node or tensor, never a crash. The
/// expected messages are golden files: `GLASSBOX_RECORD=1 swift test --filter BadONNXTests`
/// writes NAME.expected (and fails the run).
struct BadONNXTests {
  static let names: [String] = {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: Repo.fixture("bad"))) ?? []
    return files.filter { $0.hasSuffix(".onnx") && $0 != "external_ok.onnx" }.map { String($0.dropLast(5)) }.sorted()
  }()

  /// The error's text with the fixtures folder written as `bad/`.
  static func message(_ path: String) -> String? {
    do {
      _ = try ONNXImporter.importModel(contentsOf: path)
      return nil
    } catch {
      return error.description.replacingOccurrences(of: Repo.fixture("bad") + "/", with: "bad/")
    }
  }

  @Test(arguments: names) func isRefusedWithItsMessage(_ name: String) throws {
    let message = try #require(Self.message(Repo.fixture("bad/\(name).onnx")), "\(name) imported")
    #expect(message.hasPrefix("bad/\(name).onnx: "))
    let golden = Repo.fixture("bad/\(name).expected")
    if ProcessInfo.processInfo.environment["GLASSBOX_RECORD"] == "1" {
      try (message + "\n").write(toFile: golden, atomically: true, encoding: .utf8)
      Issue.record("recorded \(golden)")
      return
    }
    let expected = try String(contentsOfFile: golden, encoding: .utf8)
    #expect(message + "\n" == expected)
  }

  /// External data inside the model's folder is read.
  @Test func externalDataBesideTheModelIsRead() throws {
    let imported = try ONNXImporter.importModel(contentsOf: Repo.fixture("bad/external_ok.onnx"))
    #expect(imported.weights.first?.floats == [Float](repeating: 1, count: 8))
  }

  /// A model given as bytes has no folder for its external data, and says so.
  @Test func bytesWithoutAFolderRefuseExternalData() throws {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Repo.fixture("bad/external_ok.onnx"))))
    #expect(throws: ONNXError.self) { try ONNXImporter.importModel(bytes: bytes, fileName: "given.onnx") }
    do {
      _ = try ONNXImporter.importModel(bytes: bytes, fileName: "given.onnx")
    } catch {
      #expect(
        error.description == "given.onnx: initializer 'w' keeps its data in the external file "
          + "'external_ok.bin', but the model was given as bytes without a folder to find it in")
    }
  }

  /// A symbolic link in the folder that leads out of it is refused like a `..`.
  @Test func aLinkOutOfTheFolderIsRefused() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("glassbox-onnx-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let model = folder.appendingPathComponent("model.onnx").path
    try FileManager.default.copyItem(atPath: Repo.fixture("bad/external_ok.onnx"), toPath: model)
    let outside = FileManager.default.temporaryDirectory.appendingPathComponent("outside-\(UUID().uuidString).bin")
    try Data(count: 32).write(to: outside)
    defer { try? FileManager.default.removeItem(at: outside) }
    try FileManager.default.createSymbolicLink(
      atPath: folder.appendingPathComponent("external_ok.bin").path,
      withDestinationPath: outside.path)
    let message = try #require(Self.message(model))
    #expect(message.contains("external data location 'external_ok.bin' leads outside the model's folder"))
  }

  /// The library sorts the errors: a missing file, a model Glassbox cannot import yet, a
  /// malformed model.
  @Test func theLibrarysErrorKinds() {
    func kind(_ path: String) -> GlassboxError.Kind? {
      do {
        _ = try Model(contentsOf: path)
        return nil
      } catch {
        return error.kind
      }
    }
    #expect(kind(Repo.fixture("bad/no_such_file.onnx")) == .file)
    #expect(kind(Repo.fixture("bad/unsupported_ops.onnx")) == .unsupported)
    #expect(kind(Repo.fixture("bad/truncated.onnx")) == .model)
    #expect(kind(Repo.fixture("bad/cycle.onnx")) == .model)
  }

  /// Every prefix of a good model, and bytes flipped through it, load or throw.
  @Test func truncationsAndCorruptionsThrowOrLoad() throws {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Repo.fixture("cases/tiny_gru.onnx"))))
    for cut in stride(from: 0, to: bytes.count, by: 97) {
      _ = try? ONNXImporter.importModel(bytes: Array(bytes[..<cut]))
    }
    var generator = SystemRandomNumberGenerator()
    for _ in 0..<200 {
      var corrupt = bytes
      for _ in 0..<4 { corrupt[Int.random(in: 0..<corrupt.count, using: &generator)] = UInt8.random(in: 0...255) }
      _ = try? ONNXImporter.importModel(bytes: corrupt)
    }
  }
}
