import ArgumentParser
import Foundation
import Glassbox
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

  @Option(
    name: .customLong("input"),
    help: ArgumentHelp(
      "An input: NAME=FILE.npy, or NAME=MEDIA through the input's recipe (repeatable).", valueName: "NAME=FILE"))
  var inputs: [NamedPath] = []

  @Option(help: ArgumentHelp("Weights by PyTorch parameter name (a spec only).", valueName: "W.safetensors"))
  var weights: String?

  @Option(
    name: .customLong("rename"),
    help: ArgumentHelp("Prefix rule for --weights names, e.g. features.=cnn.", valueName: "OLD=NEW"))
  var renames: [NamedPath] = []

  @Option(help: "Seed of PyTorch-style initialisation when a spec has no --weights.")
  var seed: UInt64 = 0

  @Option(help: "Cores to use.")
  var threads = 2

  @Option(name: .shortAndLong, help: ArgumentHelp("Write every output and tap as DIR/NAME.npy.", valueName: "DIR"))
  var output: String?

  func run() throws {
    guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    if weights != nil, Model.isModelFile(options.spec) {
      throw ValidationError("--weights applies to a spec; a .model carries its weights")
    }
    let model = try loadModel(options, weights: weightOptions(file: weights, renames: renames, seed: seed))

    // Inputs: .npy tensors, or media files through the input's recipe.
    var tensors: [String: Tensor] = [:]
    for item in inputs {
      guard model.inputs.contains(where: { $0.name == item.name }) else {
        let names = model.inputs.map(\.name).joined(separator: ", ")
        throw ValidationError("--input \(item.name)=…: the graph has no input '\(item.name)' (inputs: \(names))")
      }
      tensors[item.name] =
        item.path.hasSuffix(".npy")
        ? try NPY.read(item.path)
        : try model.tensor(fromMedia: item.path, input: item.name)
    }
    for input in model.inputs where tensors[input.name] == nil {
      throw ValidationError(
        "missing --input \(input.name)=FILE (\(input.dtype.rawValue)[\(input.shape.map(\.description).joined(separator: ", "))])"
      )
    }
    let session = try model.session(SessionOptions(threads: threads))
    let results: [String: Tensor]
    do {
      results = try session.run(tensors)
    } catch {
      // Each problem names its input; say which file that was.
      throw error.namingFiles(inputs.map { ($0.name, $0.path) })
    }

    let names = model.outputs.map(\.name) + model.taps.map(\.name)
    for name in names {
      guard let t = results[name] else { continue }
      print(Run.summary(name, t, labels: model.labels))
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
      let best = (0..<t.shape[0]).map { row in (0..<classes).max { v[row * classes + $0] < v[row * classes + $1] } ?? 0
      }
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
