import Foundation
@testable import GlassboxFormat
import GlassboxIR
import Testing

/// `.model` files: round trips of every study graph, the layout's promises, and every kind of
/// bad file a one-line error.
struct ModelFileTests {
  /// A compiled model of a study spec with seeded weights.
  static func contents(_ name: String, _ bindings: [String: Int] = [:]) throws -> ModelContents {
    let (graph, source) = try Repo.spec(name, bindings)
    var provenance = Provenance()
    provenance.producerVersion = "test"
    provenance.specSHA256 = SHA256.hex(source.bytes)
    provenance.bindings = bindings
    provenance.weights = .initialized(seed: 7)
    return ModelContents(graph: graph, weights: try Initialization.weights(for: graph, seed: 7), provenance: provenance)
  }

  static func errorText(_ bytes: [UInt8]) -> String {
    do {
      _ = try ModelFile.decode(bytes, fileName: "m.model")
      return "no error"
    } catch {
      return error.description
    }
  }

  @Test(arguments: ["bilstm", "bilstm_attention1d", "bilstm_attention2d", "resnet18_lstm"])
  func studyModelsRoundTrip(name: String) throws {
    var c = try Self.contents(name, ["C": 5])
    c.labels = ["as", "bn", "hi", "ta", "te"]
    var training = Training()
    training.optimizer = "adam"
    training.learningRate = 1e-3
    training.epochs = 3
    training.metrics = [("test_accuracy", 0.861)]
    c.provenance.training = training
    let bytes = try ModelFile.encode(c)
    let m = try ModelFile.decode(bytes, fileName: "m.model")
    #expect(m.graph == c.graph)
    #expect(Printer.print(m.graph) == Printer.print(c.graph))
    #expect(m.labels == c.labels)
    #expect(m.provenance == c.provenance)
    for i in c.weights.indices { #expect(m.weight(ofParameter: i) == c.weights[i]) }
    #expect(try ModelFile.encode(m.contents) == bytes, "encoding is deterministic")
  }

  @Test func layoutIsAsDocumented() throws {
    let c = try Self.contents("bilstm", ["C": 3])
    let bytes = try ModelFile.encode(c)
    #expect(Array(bytes[0..<8]) == Array("GBXMODEL".utf8))
    let (version, m, w, l) = bytes.withUnsafeBytes { b in
      (
        b.loadLE(UInt32.self, at: 8), Int(b.loadLE(UInt64.self, at: 16)), Int(b.loadLE(UInt64.self, at: 24)),
        Int(b.loadLE(UInt64.self, at: 32))
      )
    }
    #expect(version == 1)
    #expect(w % 64 == 0 && w >= 64 + m && w < 64 + m + 64)
    #expect(w + l == bytes.count)
    let file = try ModelFile.decode(bytes, fileName: "m.model")
    for i in c.graph.parameters.indices {
      file.withWeightBytes(ofParameter: i) { b in
        #expect(Int(bitPattern: b.baseAddress) % 64 == 0)
        #expect(b.count == c.weights[i].byteCount)
      }
    }
  }

  @Test func loadsFromAFileInPlace() throws {
    let dir = try ScratchDirectory()
    defer { dir.cleanUp() }
    let c = try Self.contents("resnet18")
    try ModelFile.write(c, to: dir.path("r.model"))
    #expect(dir.files == ["r.model"])
    let m = try ModelFile.load(dir.path("r.model"))
    #expect(m.graph == c.graph)
    #expect(m.weightByteCount == c.weights.reduce(0) { $0 + $1.byteCount })
    #expect(m.weight(ofParameter: 0) == c.weights[0])
  }

  @Test func initializationIsSeededAndFollowsTheInitializers() throws {
    let (graph, _) = try Repo.spec("bilstm", ["C": 5])
    let a = try Initialization.weights(for: graph, seed: 1)
    #expect(try Initialization.weights(for: graph, seed: 1) == a)
    #expect(try Initialization.weights(for: graph, seed: 2) != a)
    for (p, t) in zip(graph.parameters, a) {
      #expect(t.type == p.type)
      if case .uniform(let b) = p.initializer {
        #expect(t.doubles.allSatisfy { abs($0) <= b })
        #expect(t.doubles.contains { $0 != 0 })
      }
    }
    let (unbound, _) = try Repo.spec("bilstm")
    #expect(throws: Initialization.Failure.self) { try Initialization.weights(for: unbound, seed: 0) }
  }

  /// Convolution inits: PyTorch's default U(±1/√fan_in), torchvision's N(0, √(2/fan_out)) and
  /// `kaiming_normal_`'s default mode N(0, √(2/fan_in)), biases zero for the Kaiming two — the
  /// drawn weights' spread matches (64 → 256 channels: the two Kaiming stds differ by 2×).
  @Test func convolutionInitialisers() throws {
    let text = """
      graph g(x: f32[1, 64, 5, 5]) -> (a: f32[1, 256, 5, 5], b: f32[1, 256, 5, 5], c: f32[1, 256, 5, 5]) {
        a = conv2d(x, out: 256, kernel: 3, padding: 1)
        b = conv2d(x, out: 256, kernel: 3, padding: 1, init: kaiming_normal)
        c = conv2d(x, out: 256, kernel: 3, padding: 1, init: kaiming_normal_fan_in)
      }
      """
    let graph = try Spec.checkedGraph(SourceText(fileName: "init.graph", text: text), bindings: [:])
    let weights = Dictionary(
      uniqueKeysWithValues: zip(graph.parameters.map(\.name), try Initialization.weights(for: graph, seed: 3)))
    func std(_ name: String) throws -> Double {
      let v = try #require(weights[name]).doubles
      return (v.map { $0 * $0 }.reduce(0, +) / Double(v.count)).squareRoot()
    }
    let fanIn = 64.0 * 9, fanOut = 256.0 * 9
    #expect(abs(try std("a.weight") / ((1 / fanIn).squareRoot() / 3.0.squareRoot()) - 1) < 0.02)
    #expect(abs(try std("b.weight") / (2 / fanOut).squareRoot() - 1) < 0.02)
    #expect(abs(try std("c.weight") / (2 / fanIn).squareRoot() - 1) < 0.02)
    #expect(try #require(weights["b.bias"]).doubles.allSatisfy { $0 == 0 })
    #expect(try #require(weights["c.bias"]).doubles.allSatisfy { $0 == 0 })
    #expect(try #require(weights["a.bias"]).doubles.contains { $0 != 0 })
  }

  @Test func knownAnswers() {
    #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    #expect(CRC32.checksum([UInt8](repeating: 0xAB, count: 1000)) == 0xA670_F964)
    #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    #expect(
      SHA256.hex(Array(String(repeating: "a", count: 1000).utf8))
        == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
  }
}
