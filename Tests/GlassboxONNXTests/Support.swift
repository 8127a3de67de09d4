import Foundation
import GlassboxFormat
import GlassboxIR

/// Paths of the repository and of this target's fixtures.
enum Repo {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

  static func fixture(_ relative: String) -> String { fixtures.appendingPathComponent(relative).path }
}

/// A model of `Fixtures/cases` with its inputs and ONNX Runtime's outputs
/// (tools/reference/onnx_fixtures.py).
struct Case {
  var name: String
  var path: String
  var inputs: [Tensor]
  var outputs: [Tensor]

  /// The cases' names, sorted.
  static let names: [String] = {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: Repo.fixture("cases"))) ?? []
    return files.filter { $0.hasSuffix(".onnx") }.map { String($0.dropLast(5)) }.sorted()
  }()

  init(_ name: String) throws {
    self.name = name
    path = Repo.fixture("cases/\(name).onnx")
    func numbered(_ kind: String) throws -> [Tensor] {
      var out: [Tensor] = []
      while FileManager.default.fileExists(atPath: Repo.fixture("cases/\(name).\(kind)\(out.count).npy")) {
        out.append(try NPY.read(Repo.fixture("cases/\(name).\(kind)\(out.count).npy")))
      }
      return out
    }
    inputs = try numbered("input")
    outputs = try numbered("output")
  }
}

/// Whether `actual` matches `expected` within `tolerance` of the largest magnitude of
/// `expected` (the conformance script's measure), shapes equal.
func close(_ actual: Tensor?, _ expected: Tensor?, tolerance: Double = 1e-4) -> Bool {
  guard let a = actual, let e = expected, a.shape == e.shape else { return false }
  return largestDifference(a, e) <= tolerance
}

/// max |a − e| / max |e| (the denominator at least 1e-6).
func largestDifference(_ a: Tensor, _ e: Tensor) -> Double {
  let scale = max(e.doubles.map(abs).max() ?? 0, 1e-6)
  return zip(a.doubles, e.doubles).map { abs($0 - $1) }.max().map { $0 / scale } ?? 0
}

/// Whether the ONNX oracle (a venv with onnx and onnxruntime) must be there: `make test` sets
/// `GLASSBOX_REQUIRE_ONNX=1` after installing it, so a test that needs it fails instead of
/// skipping when it is missing.
let onnxOracleRequired = ProcessInfo.processInfo.environment["GLASSBOX_REQUIRE_ONNX"] == "1"
