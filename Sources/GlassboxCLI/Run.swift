import ArgumentParser
import Foundation
import GlassboxFormat
import GlassboxIR
import GlassboxMedia
import GlassboxPasses
import GlassboxRuntime

/// `glassbox run SPEC|MODEL --input NAME=FILE …`: compile for the inputs' shapes and run.
struct Run: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Run a spec or model on tensors (.npy) or raw media files; print and save the outputs and taps.")

  @OptionGroup var options: SpecOptions

  @Option(name: .customLong("input"),
          help: ArgumentHelp("An input: NAME=FILE.npy, or NAME=MEDIA through the input's recipe (repeatable).", valueName: "NAME=FILE"))
  var inputs: [NamedPath] = []

  @Option(help: ArgumentHelp("Weights by PyTorch parameter name (a spec only).", valueName: "W.safetensors"))
  var weights: String?

  @Option(name: .customLong("rename"), help: ArgumentHelp("Prefix rule for --weights names, e.g. features.=cnn.", valueName: "OLD=NEW"))
  var renames: [NamedPath] = []

  @Option(help: "Seed of PyTorch-style initialisation when a spec has no --weights.")
  var seed: UInt64 = 0

  @Option(help: "Cores to use.")
  var threads = 2

  @Option(name: .shortAndLong, help: ArgumentHelp("Write every output and tap as DIR/NAME.npy.", valueName: "DIR"))
  var output: String?

  func run() throws {
    guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    let loaded = try loadGraph(options, checkingWeights: true)
    guard var graph = loaded.result.graph else {
      printDiagnostics(loaded.result.diagnostics, source: loaded.source)
      throw ExitCode(1)
    }
    if loaded.model != nil, weights != nil {
      throw ValidationError("--weights applies to a spec; a .model carries its weights")
    }

    // Inputs: .npy tensors, or media files through the input's recipe.
    var tensors: [String: Tensor] = [:]
    for item in inputs {
      guard let id = graph.inputs.first(where: { graph[$0].name == item.name }) else {
        let names = graph.inputs.map { graph[$0].name }.joined(separator: ", ")
        throw ValidationError("--input \(item.name)=…: the graph has no input '\(item.name)' (inputs: \(names))")
      }
      if item.path.hasSuffix(".npy") {
        tensors[item.name] = try NPY.read(item.path)
      } else if let recipe = graph.recipes.first(where: { $0.input == item.name }) {
        // A recipe makes one example; the input's leading batch axis is then 1.
        let t = try FeatureExtractor(recipe).extract(item.path)
        tensors[item.name] = t.shape.count == graph[id].type.rank - 1 ? Tensor(shape: [1] + t.shape, storage: t.storage) : t
      } else {
        throw ValidationError("\(item.path): input '\(graph[id].name)' has no recipe for media files; give a .npy")
      }
    }
    for id in graph.inputs where tensors[graph[id].name] == nil {
      throw ValidationError("missing --input \(graph[id].name)=FILE (\(graph[id].type))")
    }
    // Each input's file, for the messages below.
    let files = Dictionary(inputs.map { ($0.name, $0.path) }, uniquingKeysWith: { _, last in last })
    for id in graph.inputs {
      guard let t = tensors[graph[id].name] else { continue }
      let expected = graph[id].type.dtype
      guard t.dtype == expected || (t.dtype.isFloatingPoint && expected.isFloatingPoint) else {
        throw CommandError("\(files[graph[id].name] ?? ""): input '\(graph[id].name)' is \(t.dtype.rawValue) but the graph expects \(expected.rawValue)")
      }
    }

    // Bind the symbols the inputs size, then give the graph its weights.
    let found: [String: Int]
    do {
      found = try graph.inferBindings(inputShapes: tensors.mapValues(\.shape))
    } catch {
      // Each problem names its input; say which file that was.
      throw CommandError(error.diagnostics.map { d in
        let file = files.first { d.message.hasPrefix("input '\($0.key)'") }?.value
        return (file.map { "\($0): " } ?? "") + d.message
      }.joined(separator: "\n"))
    }
    graph = try graph.bound(found)
    let parameters = try parameterValues(graph, model: loaded.model)

    var module = Module(graph: graph, weights: parameters)
    Pipeline.run(Pipeline.inference, on: &module)
    let program = try Executable(graph: module.graph, parameters: module.weights, threads: threads)
    let results = try program.run(inputs: tensors)

    let names = graph.outputs.map(\.name) + graph.taps.map(\.name)
    for name in names {
      guard let t = results[name] else { continue }
      print(Run.summary(name, t, labels: loaded.model?.labels ?? []))
    }
    if let output {
      try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
      for name in names {
        guard let t = results[name] else { continue }
        try NPY.write(t, to: (output as NSString).appendingPathComponent(name + ".npy"))
      }
      print("wrote \(names.filter { results[$0] != nil }.count) tensors to \(output)/")
    }
  }

  /// Weights for a bound graph: the model's, --weights by name, or seeded initialisation.
  func parameterValues(_ graph: Graph, model: ModelFile?) throws -> [String: Tensor] {
    if let model {
      return Dictionary(uniqueKeysWithValues: graph.parameters.indices.map { (graph.parameters[$0].name, model.weight(ofParameter: $0)) })
    }
    let values: [Tensor]
    if let weights {
      let file = try SafeTensors.read(weights)
      let match = WeightImport(graph: graph, file: file, renames: renames.map { WeightImport.Rename(old: $0.name, new: $0.path) })
      guard let w = match.weights else {
        throw ValidationError("\(weights): does not fit \(graph.name):\n  " + match.problems.joined(separator: "\n  "))
      }
      values = w
    } else {
      values = try Initialization.weights(for: graph, seed: seed)
    }
    return Dictionary(uniqueKeysWithValues: zip(graph.parameters.map(\.name), values))
  }

  /// `logits f32[2, 5]  min -0.31 max 0.42 mean 0.01; argmax [3, 1] (labels…)`.
  static func summary(_ name: String, _ t: Tensor, labels: [String]) -> String {
    let v = t.doubles
    let finite = v.filter(\.isFinite)
    var line = "\(name) \(t.dtype.rawValue)\(t.shape)"
    if finite.count < v.count { line += "  \(v.count - finite.count) non-finite" }
    if let lo = finite.min(), let hi = finite.max() {
      line += String(format: "  min %.4g max %.4g mean %.4g", lo, hi, finite.reduce(0, +) / Double(finite.count))
    }
    if t.shape.count == 2, let classes = t.shape.last, classes > 1 {
      let best = (0..<t.shape[0]).map { row in (0..<classes).max { v[row * classes + $0] < v[row * classes + $1] } ?? 0 }
      line += "; argmax \(best)"
      if labels.count == classes { line += " (" + best.map { labels[$0] }.joined(separator: ", ") + ")" }
    }
    return line
  }
}

/// `NAME=PATH` from the command line.
struct NamedPath: ExpressibleByArgument {
  var name: String
  var path: String

  init?(argument: String) {
    guard let eq = argument.firstIndex(of: "="), eq != argument.startIndex else { return nil }
    name = String(argument[..<eq])
    path = String(argument[argument.index(after: eq)...])
    guard !path.isEmpty else { return nil }
  }
}
