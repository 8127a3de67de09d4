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

  /// A composite expands into existing ops named after its value; the expansion prints and
  /// parses back, nested (a composite's operand named after its user) and as an alias (`clip`
  /// without bounds is its operand). `Composite.build` makes the same nodes in a graph.
  @Test func compositesExpandPrintAndParseBack() throws {
    let graph = try Spec.checkedGraph(
      SourceText(
        fileName: "t.graph",
        text: """
          graph acts(x: f32[B, 8]) -> (y: f32[B, 8], z: f32[B, 8]) {
            y = leaky_relu(relu6(x), alpha: 0.2)
            z = clip(x)
          }
          """))
    let printed = Printer.print(graph)
    #expect(
      printed == """
        graph acts(x: f32[B, 8]) -> (y: f32[B, 8], z: f32[B, 8]) {
          y.relu6.zero = constant(value: 0.0) : f32[]
          y.relu6.lower = maximum(y.relu6.zero, x) : f32[B, 8]
          y.relu6.six = constant(value: 6.0) : f32[]
          y.relu6 = minimum(y.relu6.six, y.relu6.lower) : f32[B, 8]
          y.alpha = constant(value: 0.2) : f32[]
          y.scaled = mul(y.relu6, y.alpha) : f32[B, 8]
          y = maximum(y.scaled, y.relu6) : f32[B, 8]
          z = x
        }

        """)
    let reparsed = try Spec.checkedGraph(SourceText(fileName: "printed.graph", text: printed))
    #expect(reparsed == graph)
    #expect(Verifier.verify(reparsed).isEmpty)

    var built = Graph(name: "acts")
    let x = built.addInput(name: "x", type: TensorType(.f32, [Dim(symbol: "B"), 8]))
    let r = try Composite.relu6.build(x, NoAttributes(), named: "y.relu6", into: &built)
    let y = try Composite.leakyRelu.build(r, LeakyReluAttributes(alpha: 0.2), named: "y", into: &built)
    #expect(try Composite.clip.build(x, ClipAttributes(min: -.infinity, max: .infinity), named: "z", into: &built) == x)
    built.outputs = [("y", y), ("z", x)]
    #expect(built == graph)
    #expect(throws: ShapeError("hard_sigmoid: alpha and beta must be finite, found nan and 0.5")) {
      try Composite.hardSigmoid.build(x, HardSigmoidAttributes(alpha: .nan, beta: 0.5), named: "h", into: &built)
    }
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
