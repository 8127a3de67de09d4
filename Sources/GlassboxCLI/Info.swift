import ArgumentParser
import Foundation
import GlassboxFormat
import GlassboxIR

/// `glassbox info X.model`: what a model file holds, without running it.
struct Info: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Print a .model's signature, parameters, taps, labels, input recipes and provenance.")

  @Argument(help: "A .model file.")
  var model: String

  @Flag(help: "Print one JSON object instead of text.")
  var json = false

  @Flag(help: "Also verify the weights' checksums (the graph, sizes and offsets are always checked).")
  var checkWeights = false

  func run() throws {
    let file = try ModelFile.load(model, checkingWeights: checkWeights)
    print(json ? Info.json(file).text : Info.summary(file), terminator: json ? "\n" : "")
  }

  static func provenanceLines(_ p: Provenance) -> [String] {
    var lines = ["producer: \(p.producer) \(p.producerVersion)"]
    if !p.specSHA256.isEmpty { lines.append("spec sha256: \(p.specSHA256)") }
    if !p.bindings.isEmpty {
      lines.append(
        "bindings: " + p.bindings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
    }
    switch p.weights {
    case .unknown: break
    case .initialized(let seed): lines.append("weights: initialised with seed \(seed)")
    case .imported(let sha): lines.append("weights: imported from safetensors sha256 \(sha)")
    }
    if let t = p.training {
      lines.append(
        "training: \(t.optimizer), learning rate \(t.learningRate), \(t.epochs) epochs, batch \(t.batchSize), seed \(t.seed), \(t.examples) examples"
      )
      for m in t.metrics { lines.append("  \(m.name): \(m.value)") }
    }
    return lines
  }

  static func summary(_ file: ModelFile) -> String {
    let g = file.graph
    var out = "model \(file.path): format version \(ModelFile.formatVersion), \(grouped(file.byteCount)) bytes\n"
    out += Check.summary(g, shapes: false)
    out += "  weights: \(grouped(file.weightByteCount)) bytes in \(g.parameters.count) tensors\n"
    if !file.labels.isEmpty {
      let shown = file.labels.prefix(20).joined(separator: ", ")
      out += "  labels: \(file.labels.count) (\(shown)\(file.labels.count > 20 ? ", …" : ""))\n"
    }
    for line in provenanceLines(file.provenance) { out += "  \(line)\n" }
    return out
  }

  static func json(_ file: ModelFile) -> JSONValue {
    guard case .object(var pairs) = Check.json(file.graph) else { return .null }
    let p = file.provenance
    let weightBytes = file.weightByteCount
    pairs.insert(("formatVersion", .int(ModelFile.formatVersion)), at: 0)
    pairs.insert(("fileBytes", .int(file.byteCount)), at: 1)
    pairs.append(("weightBytes", .int(weightBytes)))
    pairs.append(("labels", .array(file.labels.map(JSONValue.string))))
    var weights: JSONValue = .null
    switch p.weights {
    case .unknown: break
    case .initialized(let seed): weights = .object([("initSeed", .string(String(seed)))])
    case .imported(let sha): weights = .object([("importedSHA256", .string(sha))])
    }
    var prov: [(String, JSONValue)] = [
      ("producer", .string(p.producer)), ("producerVersion", .string(p.producerVersion)),
      ("specSHA256", .string(p.specSHA256)),
      ("bindings", .object(p.bindings.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
      ("weights", weights),
    ]
    if let t = p.training {
      prov.append(
        (
          "training",
          .object([
            ("optimizer", .string(t.optimizer)), ("learningRate", .string("\(t.learningRate)")),
            ("epochs", .int(t.epochs)),
            ("batchSize", .int(t.batchSize)), ("seed", .string(String(t.seed))), ("examples", .int(t.examples)),
            ("metrics", .object(t.metrics.map { ($0.name, .string("\($0.value)")) })),
          ])
        ))
    }
    pairs.append(("provenance", .object(prov)))
    return .object(pairs)
  }
}
