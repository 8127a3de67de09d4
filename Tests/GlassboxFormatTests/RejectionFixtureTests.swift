import Foundation
@testable import GlassboxFormat
import GlassboxIR
import Testing

/// One hostile `.model` per rejection message of the loader (Fixtures/rejections/NAME.model),
/// each with the exact one-line error it must get (NAME.expected). The files are made from a
/// small valid model by the edits below; `GLASSBOX_RECORD=1` writes them again (and fails the
/// run, so that a re-recording is always looked at).
struct RejectionFixtureTests {
  static let directory = Repo.fixtures.appendingPathComponent("rejections")

  /// A convolution, a batch norm, a linear layer, a tap and labels; 9 small tensors.
  static let spec = """
    graph small(x: f32[B, 2, 4, 4]) -> (logits: f32[B, 3]) {
      conv = conv2d(x, out: 2, kernel: 3, padding: 1)
      bn = batch_norm(conv)
      fc = linear(flatten(global_avg_pool2d(relu(bn))), out: 3)
      logits = fc
      tap gradcam = gradcam(bn)
    }
    """

  static func good() throws -> [UInt8] {
    let graph = try Spec.checkedGraph(SourceText(fileName: "small.graph", text: spec))
    let contents = ModelContents(
      graph: graph, weights: try Initialization.weights(for: graph, seed: 1), labels: ["a", "b", "c"])
    return try ModelFile.encode(contents)
  }

  static func edited(_ bytes: [UInt8], _ edit: (inout Glassbox_Model) -> Void) throws -> [UInt8] {
    let (m, w) = bytes.withUnsafeBytes { b in (Int(b.loadLE(UInt64.self, at: 16)), Int(b.loadLE(UInt64.self, at: 24))) }
    var model = try protobufMessage(Glassbox_Model.self, from: Array(bytes[64..<(64 + m)]))
    edit(&model)
    return ModelEncoder.assemble(message: try protobufBytes(of: model), weightSection: Array(bytes[w...]))
  }

  static func storing(_ bytes: [UInt8], _ value: UInt64, at offset: Int) -> [UInt8] {
    var b = bytes
    b.withUnsafeMutableBytes { $0.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt64.self) }
    return b
  }

  static func setting(_ bytes: [UInt8], _ offset: Int, _ value: UInt8) -> [UInt8] {
    var b = bytes
    b[offset] = value
    return b
  }

  /// The first value of each origin: the input, the first parameter's value, the first node's.
  static func firstValue(_ g: Glassbox_Graph, _ isOfKind: (Glassbox_Value.OneOf_Origin?) -> Bool) -> Int {
    g.values.firstIndex { isOfKind($0.origin) } ?? 0
  }

  /// Every case: its name and its bytes, from the good model's.
  static func cases() throws -> [(String, [UInt8])] {
    let good = try good()
    let (m, w) = good.withUnsafeBytes { b in (Int(b.loadLE(UInt64.self, at: 16)), Int(b.loadLE(UInt64.self, at: 24))) }
    let model = try protobufMessage(Glassbox_Model.self, from: Array(good[64..<(64 + m)]))
    let p0 = model.graph.parameters[0].data, p1 = model.graph.parameters[1].data
    let paramValue = firstValue(model.graph) { if case .parameter? = $0 { true } else { false } }
    let nodeValue = firstValue(model.graph) { if case .node? = $0 { true } else { false } }
    var list: [(String, [UInt8])] = [
      ("short_file", Array(good.prefix(10))),
      ("format_version_newer", setting(good, 8, 9)),
      ("format_version_zero", setting(good, 8, 0)),
      ("reserved_header_bytes", setting(good, 50, 1)),
      ("weights_offset_wrong", storing(good, UInt64(w + 64), at: 24)),
      ("weights_length_wrong", storing(good, UInt64(good.count - w + 64), at: 32)),
      ("message_checksum", setting(good, 64 + m / 2, good[64 + m / 2] ^ 0x10)),
      ("message_not_protobuf", ModelEncoder.assemble(message: Array(repeating: 0xFF, count: 40), weightSection: [])),
      ("message_without_graph", try edited(good) { $0.clearGraph() }),
      ("parameter_byte_count", try edited(good) { $0.graph.parameters[0].data.length += 4 }),
      ("parameter_past_the_section", try edited(good) { $0.graph.parameters[0].data.offset = 1 << 20 }),
      (
        "parameters_overlap",
        try edited(good) { $0.graph.parameters[1].data.offset = $0.graph.parameters[0].data.offset }
      ),
      ("padding_between_tensors", setting(good, w + Int(p0.offset + p0.length), 7)),
      (
        "padding_after_last_tensor",
        ModelEncoder.assemble(
          message: Array(good[64..<(64 + m)]),
          weightSection: Array(good[w...]) + [0, 0, 0, 7])
      ),
      ("tensor_checksum", setting(good, w + Int(p1.offset), good[w + Int(p1.offset)] ^ 0x01)),
      ("labels_count", try edited(good) { $0.labels = ["a", "b"] }),
      ("value_claims_another_input", try edited(good) { $0.graph.values[0].origin = .input(1) }),
      ("value_claims_a_later_parameter", try edited(good) { $0.graph.values[paramValue].origin = .parameter(5) }),
      ("parameter_names_another_value", try edited(good) { $0.graph.parameters[0].name = "other" }),
      ("parameter_type_differs", try edited(good) { $0.graph.parameters[0].type.shape[0].coefficient += 1 }),
      ("parameter_without_role", try edited(good) { $0.graph.parameters[0].role = .roleUnspecified }),
      (
        "value_out_of_node_order",
        try edited(good) { m in
          var r = Glassbox_NodeResult()
          r.node = 3
          m.graph.values[nodeValue].origin = .node(r)
        }
      ),
      (
        "node_results_past_the_values",
        try edited(good) { m in
          let last = m.graph.nodes.count - 1
          m.graph.nodes[last].results += [UInt32(m.graph.values.count)]
        }
      ),
      ("node_results_disagree", try edited(good) { $0.graph.nodes[0].results[0] = 0 }),
      ("value_without_origin", try edited(good) { $0.graph.values[nodeValue].origin = nil }),
      ("inputs_listed_twice", try edited(good) { $0.graph.inputs.append(0) }),
      ("parameter_listed_without_value", try edited(good) { $0.graph.parameters.append($0.graph.parameters[0]) }),
      ("node_listed_without_value", try edited(good) { $0.graph.nodes.append($0.graph.nodes[0]) }),
      (
        "recipe_of_unknown_kind",
        try edited(good) { m in
          var r = Glassbox_Recipe()
          r.input = "x"
          r.kind = "smell"
          m.graph.recipes.append(r)
        }
      ),
      ("tap_of_unknown_kind", try edited(good) { $0.graph.taps[0].kind = "lime" }),
      (
        "dimension_with_nine_symbols",
        try edited(good) { $0.graph.values[0].type.shape[0].symbols = (0..<9).map { "S\($0)" } }
      ),
      ("dimension_symbols_unsorted", try edited(good) { $0.graph.values[0].type.shape[0].symbols = ["B", "A"] }),
      ("value_without_element_type", try edited(good) { $0.graph.values[0].type.dtype = .unspecified }),
      (
        "value_of_rank_17",
        try edited(good) { m in
          m.graph.values[0].type.shape = Array(repeating: m.graph.values[0].type.shape[1], count: 17)
        }
      ),
      ("parameter_without_initializer", try edited(good) { $0.graph.parameters[0].initializer.kind = .unspecified }),
      ("attribute_integer_out_of_range", try edited(good) { $0.graph.nodes[0].attributes[0].value.int = 1 << 40 }),
      (
        "attribute_number_not_finite",
        try edited(good) { m in
          guard let n = m.graph.nodes.firstIndex(where: { $0.op == "batch_norm" }),
            let a = m.graph.nodes[n].attributes.firstIndex(where: { $0.name == "eps" })
          else { return }
          m.graph.nodes[n].attributes[a].value.float = .nan
        }
      ),
      ("attribute_without_value", try edited(good) { $0.graph.nodes[0].attributes[0].value = Glassbox_AttrValue() }),
      (
        "attribute_unknown",
        try edited(good) { m in
          var a = Glassbox_Attribute()
          a.name = "colour"
          a.value.string = "red"
          m.graph.nodes[0].attributes.append(a)
        }
      ),
      ("attribute_twice", try edited(good) { $0.graph.nodes[0].attributes.append($0.graph.nodes[0].attributes[0]) }),
    ]
    // Only where the message does not end on a 64-byte boundary is there padding after it.
    if (64 + m) % 64 != 0 { list.append(("message_padding", setting(good, 64 + m, 1))) }
    return list
  }

  static var names: [String] {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
    return files.filter { $0.hasSuffix(".model") }.map { String($0.dropLast(6)) }.sorted()
  }

  @Test func everyCaseHasItsFixture() throws {
    let made = try Self.cases()
    if recording {
      try FileManager.default.createDirectory(at: Self.directory, withIntermediateDirectories: true)
      for (name, bytes) in made {
        try Data(bytes).write(to: Self.directory.appendingPathComponent(name + ".model"))
        try (ModelFileTests.errorText(bytes) + "\n").write(
          to: Self.directory.appendingPathComponent(name + ".expected"),
          atomically: true, encoding: .utf8)
      }
      Issue.record("re-recorded \(made.count) fixtures in Fixtures/rejections")
      return
    }
    #expect(Self.names == made.map(\.0).sorted())
    #expect(Self.names.count >= 40)
  }

  /// Each fixture gets its own message: no two cases test the same rejection.
  @Test func messagesAreDistinct() throws {
    let texts = try Self.names.map {
      try String(contentsOf: Self.directory.appendingPathComponent($0 + ".expected"), encoding: .utf8)
    }
    let kinds = texts.map { $0.replacingOccurrences(of: "[0-9]+", with: "N", options: .regularExpression) }
    #expect(Set(kinds).count == kinds.count, "\(kinds.sorted())")
  }

  @Test(arguments: names)
  func fixtureGetsItsMessage(_ name: String) throws {
    let bytes = [UInt8](try Data(contentsOf: Self.directory.appendingPathComponent(name + ".model")))
    let expected = try String(contentsOf: Self.directory.appendingPathComponent(name + ".expected"), encoding: .utf8)
    let e = ModelFileTests.errorText(bytes)
    #expect(e.hasPrefix("m.model: ") && !e.contains("\n"), "\(e)")
    #expect(e == expected.trimmingCharacters(in: .newlines))
  }
}

/// Whether golden files are being re-recorded (`GLASSBOX_RECORD=1`); such a run still fails.
let recording = ProcessInfo.processInfo.environment["GLASSBOX_RECORD"] == "1"
