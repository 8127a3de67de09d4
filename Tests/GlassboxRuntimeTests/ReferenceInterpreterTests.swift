import GlassboxIR
import GlassboxReference
import Testing

/// The Float64 reference interpreter against PyTorch's float64 results, op by op and for
/// every study model (reduced sizes), to ~1e-9: the oracle must itself be exact.
struct ReferenceInterpreterTests {
  /// The parameterised tests over Fixtures/forward run one case per file: a missing or emptied
  /// folder would pass with none.
  @Test func forwardFixturesExist() {
    let names = ForwardFixture.names
    #expect(names.count >= 18, "Fixtures/forward holds \(names.count) fixtures")
    for study in ["bilstm", "bilstm_attention1d", "bilstm_attention2d", "resnet18", "resnet18_lstm", "vgg19_lstm"] {
      #expect(names.contains(study), "no forward fixture for \(study)")
    }
  }

  @Test(arguments: ForwardFixture.names)
  func matchesPyTorch(_ name: String) throws {
    let fixture = try ForwardFixture(name)
    var interpreter = ReferenceInterpreter(graph: fixture.graph)
    let values = try interpreter.run(inputs: fixture.inputs, parameters: fixture.parameters)
    #expect(!fixture.expected.isEmpty)
    for (output, expected) in fixture.expected {
      let id = try #require(fixture.graph.outputs.first { $0.name == output }?.value, "\(name): no output \(output)")
      let actual = try #require(values[fixture.graph[id].name])
      let scale = expected.doubles.reduce(1.0) { max($0, abs($1)) }
      let diff = try #require(
        maxAbsDifference(actual, expected), "\(name).\(output): shape \(actual.shape) vs \(expected.shape)")
      #expect(diff <= 1e-9 * scale, "\(name).\(output): max difference \(diff)")
    }
  }

  @Test func deterministicTensorsMatchTheScript() {
    // detrand.values("x", 4) and detrand.values("conv1.weight", 3, 4) as printed by Python.
    #expect(DeterministicTensors.seed("x") == 12_638_214_688_346_347_271)
    #expect(
      DeterministicTensors.values("x", count: 4) == [-0.54581, -0.9246676, -0.6858517, -0.5930768].map { Float($0) })
  }
}
