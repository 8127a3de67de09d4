import Foundation
import GlassboxIR
import GlassboxPasses
import GlassboxReference
import Testing

/// Typed attributes: every node the elaborator, the inference pipeline, the training program
/// and the gradient rules make stores its attributes in the canonical form its struct writes,
/// so reading and re-writing them changes nothing (the printer, the golden files and the
/// `.model` bytes see what they saw when attributes were written by name); and the verifier
/// names an attribute that is missing or of the wrong kind.
struct AttributeSetTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  /// The stored attributes as `T` reads and writes them back.
  static func reencoded<T: AttributeSet>(_: T.Type, _ attributes: Attributes) throws -> Attributes {
    try T(decoding: attributes).encoded
  }

  static func expectCanonical(_ graph: Graph, _ context: String) throws {
    for node in graph.nodes {
      let again = try reencoded(node.op.attributeSet, node.attributes)
      #expect(again == node.attributes, "\(context): \(node.op.name) \(graph[node.results[0]].name)")
    }
    for tap in graph.taps {
      #expect(try reencoded(tap.kind.optionSet, tap.options) == tap.options, "\(context): tap \(tap.name)")
    }
    for recipe in graph.recipes {
      #expect(try reencoded(recipe.kind.optionSet, recipe.options) == recipe.options, "\(context): recipe")
    }
  }

  static let sequenceModels = ["bilstm", "bilstm_attention1d", "bilstm_attention2d"]

  @Test(arguments: sequenceModels + ["resnet18", "resnet18_lstm", "vgg19_lstm"])
  func studyGraphsStoreCanonicalAttributes(_ name: String) throws {
    let text = try String(contentsOf: Self.root.appendingPathComponent("graphs/\(name).graph"), encoding: .utf8)
    var bindings = ["B": 2, "C": 5]
    if !Self.sequenceModels.contains(name) { bindings.merge(["H": 32, "W": 32]) { a, _ in a } }
    if name.hasSuffix("_lstm") { bindings["T"] = 2 }
    let graph = try Spec.checkedGraph(SourceText(fileName: "\(name).graph", text: text), bindings: bindings)
    try Self.expectCanonical(graph, "\(name) as written")
    var module = Module(graph: graph)
    Pipeline.run(Pipeline.inference(blockedLayouts: true), on: &module)
    try Self.expectCanonical(module.graph, "\(name) after the inference pipeline")
    let training = try TrainingProgram.make(from: graph, logits: "logits", inputGradients: true)
    try Self.expectCanonical(training.graph, "\(name) as a training program")
  }

  @Test func verifierNamesAMissingOrMistypedAttribute() throws {
    var g = Graph(name: "g")
    let x = g.addInput(name: "x", type: TensorType(.f32, [2, 3]))
    g.addNode(.concat, operands: [x, x], attributes: Attributes(), results: [("missing", TensorType(.f32, [4, 3]))])
    g.addNode(
      .concat, operands: [x, x], attributes: Attributes(["axis": .string("rows")]),
      results: [("mistyped", TensorType(.f32, [4, 3]))])
    g.addNode(
      .softmax, operands: [x], attributes: Attributes(["axis": .int(1), "dim": .int(1)]),
      results: [("misspelt", TensorType(.f32, [2, 3]))])
    let messages = Verifier.verify(g).map(\.message)
    #expect(
      messages == [
        "verifier: missing: concat lacks attribute 'axis'",
        "verifier: mistyped: concat attribute 'axis' must be an integer, found rows",
        "verifier: misspelt: softmax has no attribute 'dim'",
      ])
  }

  @Test func decodingFillsDefaultsAndRefusesOtherKinds() throws {
    let slice = try SliceAttributes(decoding: Attributes(["axis": .int(1)]))
    #expect(slice == SliceAttributes(axis: 1, start: 0, end: Int.max, step: 1))
    #expect(slice.encoded == Attributes(["axis": .int(1), "start": .int(0), "end": .int(Int.max), "step": .int(1)]))
    #expect(throws: AttributeError.self) { try SliceAttributes(decoding: Attributes()) }
    #expect(throws: AttributeError.self) {
      try ConvolutionAttributes(decoding: Attributes(["stride": .list([])]))
    }
    let pool = try MaxPoolAttributes(decoding: Attributes(["kernel": .list([.int(3), .int(3)])]))
    #expect(pool.stride == nil && pool.window.stride == Pair(3))
  }
}
