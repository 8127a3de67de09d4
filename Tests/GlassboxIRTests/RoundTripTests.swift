import GlassboxIR
import Testing

/// The printer's output parses back to the same graph, for every study spec and several
/// bindings, and every graph the elaborator builds passes the verifier.
struct RoundTripTests {
  static let bindingSets: [[String: Int]] = [[:], ["C": 5], ["B": 2, "C": 7]]

  static var cases: [(String, [String: Int])] {
    Repo.specNames.flatMap { name in bindingSets.map { (name, $0) } }
  }

  @Test func everyStudySpecIsPresent() {
    #expect(
      Repo.specNames == [
        "bilstm", "bilstm_attention1d", "bilstm_attention2d", "resnet18", "resnet18_lstm", "vgg19_lstm",
      ])
  }

  @Test(arguments: cases)
  func printThenParse(_ name: String, _ bindings: [String: Int]) throws {
    let graph = try Spec.checkedGraph(try Repo.spec(name), bindings: bindings)
    #expect(Verifier.verify(graph).isEmpty)
    let printed = Printer.print(graph)
    let reparsed = try Spec.checkedGraph(SourceText(fileName: "printed.graph", text: printed))
    #expect(reparsed == graph)
    #expect(Printer.print(reparsed) == printed)
    #expect(Verifier.verify(reparsed).isEmpty)
  }

  @Test func bindingsSubstituteEverywhere() throws {
    let graph = try Spec.checkedGraph(try Repo.spec("resnet18_lstm"), bindings: ["B": 2, "T": 16, "C": 8])
    #expect(graph.values.allSatisfy { $0.type.shape.allSatisfy(\.isStatic) })
    #expect(graph.outputs.first.map { graph[$0.value].type } == TensorType(.f32, [2, 8]))
    let gradcam = try #require(graph.taps.first { $0.name == "gradcam" })
    #expect(gradcam.type == TensorType(.f32, [2, 16, 4, 4]))
  }

  @Test func symbolicDimensionsSurviveUnbound() throws {
    let graph = try Spec.checkedGraph(try Repo.spec("resnet18_lstm"))
    let merged = try #require(graph.value(named: "cnn.layer4"))
    #expect(graph[merged].type.shape == [Dim(coefficient: 1, symbols: ["B", "T"]), 512, 4, 4])
    #expect(graph.symbols == ["B", "T"])
  }

  /// The layer form of `layer_norm` creates `weight` (ones) and `bias` (zeros) of the
  /// normalised axes' shape (`bias: false` leaves it out); the explicit form prints and parses
  /// back, attributes at their defaults left out.
  @Test func layerNormPrintsAndParsesBack() throws {
    let graph = try Spec.checkedGraph(
      SourceText(
        fileName: "t.graph",
        text: """
          graph norms(x: f32[B, 5, 8]) -> (y: f32[B, 5, 8]) {
            a = layer_norm(x)
            y = layer_norm(a, axis: -2, eps: 0.001, bias: false)
          }
          """))
    let printed = Printer.print(graph)
    #expect(
      printed == """
        graph norms(x: f32[B, 5, 8]) -> (y: f32[B, 5, 8]) {
          param a.weight: f32[8] init ones
          param a.bias: f32[8] init zeros
          a = layer_norm(x, a.weight, a.bias) : f32[B, 5, 8]
          param y.weight: f32[5, 8] init ones
          y = layer_norm(a, y.weight, axis: -2, eps: 0.001) : f32[B, 5, 8]
        }

        """)
    let reparsed = try Spec.checkedGraph(SourceText(fileName: "printed.graph", text: printed))
    #expect(reparsed == graph)
    #expect(Verifier.verify(reparsed).isEmpty)
  }

  @Test func printedFormIsReadable() throws {
    let graph = try Spec.checkedGraph(
      SourceText(
        fileName: "t.graph",
        text: """
          graph tiny(x: f32[B, 8]) -> (y: f32[B, 4]) {
            hidden = relu(linear(x, out: 16))
            y = linear(hidden, out: 4, bias: false) @head
            tap act = activation(hidden)
          }
          """))
    #expect(
      Printer.print(graph) == """
        graph tiny(x: f32[B, 8]) -> (y: f32[B, 4]) {
          param hidden.linear.weight: f32[16, 8] init uniform(0.35355339059327373)
          param hidden.linear.bias: f32[16] init uniform(0.35355339059327373)
          hidden.linear = linear(x, hidden.linear.weight, hidden.linear.bias) : f32[B, 16]
          hidden = relu(hidden.linear) : f32[B, 16]
          param head.weight: f32[4, 16] init uniform(0.25)
          head = linear(hidden, head.weight) : f32[B, 4]
          y = head
          tap act = activation(hidden) : f32[B, 16]
        }

        """)
  }
}
