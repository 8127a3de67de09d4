import Foundation
import GlassboxIR
import GlassboxReference

/// The tap fixtures written by `tools/reference/gradcam_fixtures.py`: a study spec with
/// bindings and the outputs PyTorch computed in float64 on deterministic inputs and weights.
/// Large outputs keep every `stride`-th element of the flattened tensor.
struct TapFixture {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
  static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

  struct Expected {
    var shape: [Int]
    var stride: Int
    var data: [Double]

    /// Largest |actual − expected| over the kept elements, nil when shapes differ.
    func maxDifference(_ actual: Tensor) -> Double? {
      guard actual.shape == shape else { return nil }
      let a = actual.doubles
      return data.enumerated().reduce(0.0) { max($0, abs(a[$1.offset * stride] - $1.element)) }
    }

    var scale: Double { data.reduce(1e-3) { max($0, abs($1)) } }
  }

  var object: [String: Any]
  var outputs: [String: Expected]

  init(_ name: String) throws {
    let data = try Data(contentsOf: Self.directory.appendingPathComponent(name + ".json"))
    guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
      let outputs = object["outputs"] as? [String: [String: Any]]
    else {
      throw FixtureError(description: "\(name).json: unexpected layout")
    }
    self.object = object
    self.outputs = try outputs.mapValues { o in
      guard let shape = o["shape"] as? [Int], let values = o["data"] as? [Double] else {
        throw FixtureError(description: "\(name).json: an output lacks shape or data")
      }
      return Expected(shape: shape, stride: (o["stride"] as? Int) ?? 1, data: values)
    }
  }

  /// The fixture's spec from graphs/, bound.
  func graph() throws -> Graph {
    let spec = try require(object["spec"] as? String)
    let url = Self.root.appendingPathComponent("graphs/\(spec).graph")
    let source = SourceText(fileName: "graphs/\(spec).graph", text: try String(contentsOf: url, encoding: .utf8))
    return try Spec.checkedGraph(source, bindings: (object["bindings"] as? [String: Int]) ?? [:])
  }

  var classIndex: Int { (object["class"] as? Int) ?? 0 }

  static func inputs(_ g: Graph) -> [String: Tensor] {
    var out: [String: Tensor] = [:]
    for id in g.inputs {
      out[g[id].name] = DeterministicTensors.tensor(
        "input:" + g[id].name, shape: g[id].type.shape.map { $0.staticValue ?? 1 })
    }
    return out
  }
}

struct FixtureError: Error, CustomStringConvertible {
  var description: String
}

/// `#require` outside a test body.
func require<T>(_ value: T?) throws -> T {
  guard let value else { throw FixtureError(description: "missing value") }
  return value
}
