import Foundation
@testable import GlassboxFormat
import GlassboxIR
import Testing

/// Every kind of bad `.model` file is a one-line error naming the file and the problem.
struct BadModelTests {
  /// A small valid model (bilstm, 3 classes) and its parts.
  static let good: [UInt8] = {
    (try? ModelFile.encode(try ModelFileTests.contents("bilstm", ["C": 3]))) ?? []
  }()

  static func parts(_ bytes: [UInt8]) throws -> (Glassbox_Model, [UInt8]) {
    let (m, w) = bytes.withUnsafeBytes { b in (Int(b.loadLE(UInt64.self, at: 16)), Int(b.loadLE(UInt64.self, at: 24))) }
    return (try protobufMessage(Glassbox_Model.self, from: Array(bytes[64..<(64 + m)])), Array(bytes[w...]))
  }

  /// The good model with its message changed by `edit`, re-wrapped with a correct checksum.
  static func edited(_ edit: (inout Glassbox_Model) -> Void) throws -> [UInt8] {
    var (model, section) = try parts(good)
    edit(&model)
    return ModelEncoder.assemble(message: try protobufBytes(of: model), weightSection: section)
  }

  static func error(_ bytes: [UInt8]) -> String { ModelFileTests.errorText(bytes) }

  @Test func goodModelLoads() {
    #expect(Self.error(Self.good) == "no error")
  }

  @Test func emptyAndShortFiles() {
    #expect(Self.error([]) == "m.model: file is empty (0 bytes); a .model file starts with a 64-byte header")
    #expect(
      Self.error(Array(Self.good.prefix(10))) == "m.model: file is 10 bytes, shorter than the 64-byte .model header")
  }

  @Test func truncatedAnywhere() {
    for cut in [65, 100, Self.good.count / 2, Self.good.count - 1] {
      let e = Self.error(Array(Self.good.prefix(cut)))
      #expect(e.hasPrefix("m.model: header claims"), "\(cut): \(e)")
    }
  }

  @Test func notAModel() throws {
    #expect(
      Self.error(Array("hello, this is not a model file at all; it is text, long enough for a header....".utf8))
        == "m.model: not a Glassbox model: the file does not start with \"GBXMODEL\" (at byte offset 0)")
    // A bare protobuf message (of this or another schema) without the header.
    let (model, _) = try Self.parts(Self.good)
    #expect(Self.error(try protobufBytes(of: model.graph)).contains("does not start with \"GBXMODEL\""))
  }

  @Test func newerVersionNamesTheVersionNeeded() {
    var bytes = Self.good
    bytes[8] = 2
    #expect(
      Self.error(bytes)
        == "m.model: file has format version 2; reading it needs a glassbox that reads format version 2 (this one reads up to version 1) (at byte offset 8)"
    )
  }

  @Test func flippedBitInTheMessage() {
    var bytes = Self.good
    bytes[64 + 20] ^= 0x10
    #expect(Self.error(bytes).hasPrefix("m.model: message checksum mismatch: the header says 0x"))
  }

  @Test func flippedBitInTheWeights() {
    var bytes = Self.good
    bytes[bytes.count - 3] ^= 0x01
    let e = Self.error(bytes)
    #expect(e.hasPrefix("m.model: tensor 'classifier.bias' fails its checksum: stored 0x"), "\(e)")
  }

  @Test func flippedBitsEverywhereNeverCrash() {
    // Every byte of the header and message, and a sample of the weights.
    let stride = max(1, (Self.good.count - 1024) / 2000)
    for i in Array(0..<min(1024, Self.good.count)) + Array(Swift.stride(from: 1024, to: Self.good.count, by: stride)) {
      var bytes = Self.good
      bytes[i] ^= 0x04
      #expect(Self.error(bytes) != "no error", "byte \(i)")
    }
  }

  @Test func lyingLengthFields() {
    for (offset, value) in [
      (16, UInt64.max), (16, 1 << 40), (16, 3), (24, 64), (24, UInt64.max), (32, 1 << 62), (32, 0),
    ] {
      var bytes = Self.good
      bytes.withUnsafeMutableBytes { $0.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt64.self) }
      let e = Self.error(bytes)
      #expect(e.hasPrefix("m.model: header"), "\(offset)=\(value): \(e)")
    }
  }

  @Test func aTensorClaimingATrillionElements() throws {
    let bytes = try Self.edited { m in
      var d = Glassbox_Dim()
      d.coefficient = 1_000_000
      m.graph.values[Int(m.graph.parameters[0].value)].type.shape = [d, d]
      m.graph.parameters[0].type.shape = [d, d]
      m.graph.parameters[0].data.length = 4_000_000_000_000
    }
    #expect(
      Self.error(bytes)
        == "m.model: graph fails verification: verifier: lstm: lstm: weight_ih must be [128, 128] for hidden 32 and 128 input features, found [1000000, 1000000]"
    )
    let lying = try Self.edited { m in m.graph.parameters[0].data.length = 4_000_000_000_000 }
    #expect(
      Self.error(lying).hasPrefix(
        "m.model: parameter 'lstm.weight_ih_l0' of type f32[128, 128] needs 65536 bytes but the file gives 4000000000000"
      ))
    let outside = try Self.edited { m in m.graph.parameters[0].data.offset = 1 << 62 }
    #expect(Self.error(outside).contains("misaligned or past the"))
    let overlapping = try Self.edited { m in m.graph.parameters[1].data.offset = m.graph.parameters[0].data.offset }
    #expect(Self.error(overlapping).contains("overlaps another tensor's bytes"))
  }

  @Test func unknownOpAndTapKind() throws {
    let op = try Self.edited { m in m.graph.nodes[0].op = "conv3d" }
    #expect(Self.error(op).hasPrefix("m.model: node 0 ('lstm') has unknown op 'conv3d'; this glassbox knows conv2d, "))
    let tap = try Self.edited { m in m.graph.taps[0].kind = "lime" }
    #expect(Self.error(tap).hasPrefix("m.model: tap 'hidden' has unknown kind 'lime'"))
  }

  @Test func graphThatFailsShapeChecking() throws {
    let bytes = try Self.edited { m in
      m.graph.values[Int(m.graph.nodes[0].results[0])].type.shape[2].coefficient = 65
    }
    #expect(
      Self.error(bytes)
        == "m.model: graph fails verification: verifier: lstm: stored type f32[B, 768, 65] but lstm gives f32[B, 768, 64] (and 2 more)"
    )
    let attr = try Self.edited { m in
      m.graph.nodes[0].attributes[0].value.string = "yes"
    }
    #expect(Self.error(attr).contains("attribute 'bidirectional' must be a boolean, found yes"))
    let order = try Self.edited { m in m.graph.nodes[0].operands[0] = 50 }
    #expect(Self.error(order) == "m.model: node 0 ('lstm') uses value 50 before it is defined")
  }

  /// A convolution's stride stored as the empty list (which a pooling stride may be) passed the
  /// shape rule, which read it as the kernel, and lowering then indexed the empty list.
  @Test func convolutionWithAnEmptyStride() throws {
    let text = "graph tiny(x: f32[1, 1, 6, 6]) -> (y: f32[1, 2, 4, 4]) {\n  y = conv2d(x, out: 2, kernel: 3)\n}\n"
    let graph = try Spec.checkedGraph(SourceText(fileName: "tiny.graph", text: text))
    let contents = ModelContents(
      graph: graph, weights: try Initialization.weights(for: graph, seed: 1),
      provenance: Provenance())
    var (model, section) = try Self.parts(try ModelFile.encode(contents))
    let stride = try #require(model.graph.nodes[0].attributes.firstIndex { $0.name == "stride" })
    model.graph.nodes[0].attributes[stride].value.list = Glassbox_AttrList()
    let bytes = ModelEncoder.assemble(message: try protobufBytes(of: model), weightSection: section)
    #expect(
      Self.error(bytes) == "m.model: graph fails verification: verifier: y: conv2d attribute 'stride' must be "
        + "two integers [h, w], found []")
  }

  @Test func protobufOfAnotherSchema() throws {
    // A well-formed header and checksum around a message of another schema.
    var other = Glassbox_Provenance()
    other.producer = "someone else"
    other.specSha256 = String(repeating: "ab", count: 32)
    let e1 = Self.error(ModelEncoder.assemble(message: try protobufBytes(of: other), weightSection: []))
    #expect(e1.hasPrefix("m.model: "), "\(e1)")
    let e2 = Self.error(ModelEncoder.assemble(message: Array(repeating: 0xFF, count: 40), weightSection: []))
    #expect(e2.hasPrefix("m.model: message is not a valid Glassbox model message"), "\(e2)")
    let e3 = Self.error(ModelEncoder.assemble(message: [], weightSection: []))
    #expect(e3 == "m.model: message says format version 0 but the header says 1 (at byte offset 64)")
  }

  @Test func labelsMustMatchTheClassCount() throws {
    let bytes = try Self.edited { m in m.labels = ["a", "b"] }
    #expect(Self.error(bytes) == "m.model: 2 labels but output 'logits' has 3 classes")
  }

  @Test func missingFile() {
    #expect(throws: ModelFileError(path: "/nonexistent.model", "cannot open: No such file or directory")) {
      try ModelFile.load("/nonexistent.model")
    }
  }

  /// Every fixture in Fixtures/crashes (fuzzer findings and hand-made hostile files) fails with
  /// a one-line error (a `.model`) or compiles to a graph that verifies and prints back to
  /// itself, or to diagnostics (a `.graph`); none crashes.
  /// The files of Fixtures/crashes, less the expected messages.
  static var crashFixtures: [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: Repo.fixture("crashes"))) ?? [])
      .filter { !$0.hasSuffix(".expected") }.sorted()
  }

  /// `regressionFixture` runs one case per file: a missing folder would pass with none.
  @Test func crashFixturesExist() {
    #expect(Self.crashFixtures.count >= 12, "Fixtures/crashes holds \(Self.crashFixtures.count) fixtures")
  }

  @Test(arguments: crashFixtures)
  func regressionFixture(name: String) throws {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Repo.fixture("crashes/" + name))))
    if name.hasSuffix(".graph") {
      guard let source = try? SourceText(fileName: name, bytes: bytes) else { return }
      if let graph = Spec.compile(source).graph {
        #expect(Verifier.verify(graph).isEmpty)
        #expect(Spec.compile(SourceText(fileName: name, text: Printer.print(graph))).graph == graph)
      }
    } else {
      let e = Self.error(bytes)
      #expect(e.hasPrefix("m.model: ") && !e.contains("\n"), "\(e)")
      // The exact message, where one is recorded (NAME.expected beside NAME.model).
      let expected = Repo.fixture("crashes/" + name.replacingOccurrences(of: ".model", with: ".expected"))
      if let text = try? String(contentsOfFile: expected, encoding: .utf8) {
        #expect(e == text.trimmingCharacters(in: .newlines))
      }
    }
  }
}

/// The committed generated code matches the .proto it came from: the `.model` schema and
/// ONNX's (GlassboxONNX).
struct GeneratedCodeTests {
  @Test(arguments: [
    ("Formats/glassbox.proto", "Sources/GlassboxFormat/Generated/glassbox.pb.swift"),
    ("Formats/onnx.proto", "Sources/GlassboxONNX/Generated/onnx.pb.swift"),
  ])
  func generatedSwiftIsFresh(_ proto: String, _ swift: String) throws {
    let schema = try Data(contentsOf: Repo.root.appendingPathComponent(proto))
    let generated = try String(contentsOf: Repo.root.appendingPathComponent(swift), encoding: .utf8)
    let hash = [UInt8](schema).withUnsafeBytes { SHA256.hex($0) }
    let firstLine = generated.prefix { $0 != "\n" }
    #expect(
      firstLine == "// generated — do not edit. Source: \(proto) (sha256 \(hash))",
      "\(proto) changed since the Swift code was generated: run tools/gen-proto")
  }
}
