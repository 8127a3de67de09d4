import Foundation
import GlassboxIR
import GlassboxReference

/// The forward fixtures written by `tools/reference/forward_fixtures.py`: a spec (a file here,
/// or a study spec in graphs/ with bindings) and the outputs PyTorch computed in float64 on
/// deterministic inputs and weights.
struct ForwardFixture {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
  static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Fixtures/forward")

  static var names: [String] {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
    return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
  }

  var name: String
  var graph: Graph
  var expected: [String: Tensor]

  init(_ name: String) throws {
    self.name = name
    let json = try JSONSerialization.jsonObject(
      with: Data(contentsOf: Self.directory.appendingPathComponent(name + ".json")))
    guard let object = json as? [String: Any], let outputs = object["outputs"] as? [String: [String: Any]] else {
      throw FixtureError(description: "\(name).json: unexpected layout")
    }
    let source: SourceText
    var bindings: [String: Int] = [:]
    if let spec = object["spec"] as? String {
      let url = Self.root.appendingPathComponent("graphs/\(spec).graph")
      source = SourceText(fileName: "graphs/\(spec).graph", text: try String(contentsOf: url, encoding: .utf8))
      bindings = (object["bindings"] as? [String: Int]) ?? [:]
    } else {
      let url = Self.directory.appendingPathComponent(name + ".graph")
      source = SourceText(fileName: "\(name).graph", text: try String(contentsOf: url, encoding: .utf8))
    }
    graph = try Spec.checkedGraph(source, bindings: bindings)
    expected = try outputs.mapValues { o in
      guard let shape = o["shape"] as? [Int], let data = o["data"] as? [Double] else {
        throw FixtureError(description: "\(name).json: an output lacks shape or data")
      }
      return Tensor(shape: shape, f64: data)
    }
  }

  /// The deterministic inputs, as the reference script makes them.
  var inputs: [String: Tensor] {
    var out: [String: Tensor] = [:]
    for id in graph.inputs {
      let v = graph[id]
      let shape = v.type.shape.map { $0.staticValue ?? 1 }
      let t = DeterministicTensors.tensor("input:" + v.name, shape: shape)
      if v.type.dtype == .i64 {
        out[v.name] = Tensor(shape: shape, storage: .i64(t.floats.map { Int64((Double($0) + 1) * 2) }))
      } else {
        out[v.name] = t
      }
    }
    return out
  }

  var parameters: [String: Tensor] { DeterministicTensors.parameters(of: graph) }
}

struct FixtureError: Error, CustomStringConvertible {
  var description: String
}

/// Largest |a − b| over the elements, and whether shapes agree.
func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Double? {
  guard a.shape == b.shape else { return nil }
  return zip(a.doubles, b.doubles).reduce(0.0) { max($0, abs($1.0 - $1.1)) }
}
