import Foundation
import GlassboxIR
import Testing

/// Each study spec declares exactly the tensors of the PyTorch module's `state_dict` — same
/// names, types, shapes, roles and order — and the same trainable parameter count. The
/// fixtures are written by `tools/reference/state_dicts.py` from the modules in
/// `tools/reference/models.py`.
struct StateDictTests {
  struct Reference {
    var classes: Int
    var parameterCount: Int
    var lines: [String]
  }

  static func reference(_ name: String) throws -> Reference {
    let url = Repo.fixtures.appendingPathComponent("state_dicts/\(name).txt")
    let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init)
    let classes = Int(lines[0].split(separator: " ")[5].dropLast()) ?? -1  // "# NAME with C = 5: …"
    let count = Int(lines[1].split(separator: " ").last ?? "") ?? -1  // "# parameters: N"
    return Reference(classes: classes, parameterCount: count, lines: Array(lines.dropFirst(2)))
  }

  @Test(arguments: Repo.specNames)
  func parametersMatchPyTorch(_ name: String) throws {
    let reference = try Self.reference(name)
    let graph = try Spec.checkedGraph(try Repo.spec(name), bindings: ["C": reference.classes])
    let ours = graph.parameters.map {
      "\($0.name) \($0.type) \($0.role == .trainable ? "param" : "buffer")"
    }
    #expect(ours == reference.lines)
    #expect(graph.parameterCount.staticValue == reference.parameterCount)
  }

  /// The counts the foundation issue states, from `sum(p.numel() for p in model.parameters())`.
  @Test func fixtureCountsAreTheStudyCounts() throws {
    let expected = [
      "bilstm": 41_797, "bilstm_attention1d": 41_862, "bilstm_attention2d": 45_957,
      "resnet18": 11_689_512, "resnet18_lstm": 11_978_099, "vgg19_lstm": 20_825_971,
    ]
    for (name, count) in expected {
      #expect(try Self.reference(name).parameterCount == count, "\(name)")
    }
  }
}
