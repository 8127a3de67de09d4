import ArgumentParser
import Foundation
import Glassbox
import GlassboxFormat
import GlassboxIR
import GlassboxONNX

/// The spec a command works on and the symbol bindings for it.
struct SpecOptions: ParsableArguments {
  @Argument(help: "A spec file (graphs/NAME.graph), a compiled .model file or an ONNX model (.onnx).")
  var spec: String

  @Option(
    name: .customLong("bind"),
    help: ArgumentHelp("Size a symbol, e.g. --bind B=1 (repeatable).", valueName: "NAME=VALUE"))
  var bindings: [Binding] = []

  /// The bindings as a dictionary; a symbol bound twice keeps the last value.
  var bindingMap: [String: Int] {
    Dictionary(bindings.map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last })
  }
}

/// `NAME=VALUE` from the command line.
struct Binding: ExpressibleByArgument {
  var name: String
  var value: Int

  init?(argument: String) {
    let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
    guard parts.count == 2, !parts[0].isEmpty, let v = Int(parts[1]) else { return nil }
    name = parts[0]
    value = v
  }
}

/// Reads a spec file's bytes and decodes them, naming the file in every error.
func loadSource(_ path: String) throws -> SourceText {
  do {
    return try Model.readSpec(path)
  } catch  where error.kind == .spec {
    throw DiagnosticList(error.diagnostics)
  }
}

/// Result of compiling a spec: the graph, or the diagnostics with the source to quote.
struct CompiledSpec {
  var source: SourceText?
  var result: Spec.Result
}

func compileSpec(_ options: SpecOptions) throws -> CompiledSpec {
  let source: SourceText
  do {
    source = try loadSource(options.spec)
  } catch let list as DiagnosticList {
    return CompiledSpec(source: nil, result: Spec.Result(graph: nil, diagnostics: list.diagnostics))
  }
  return CompiledSpec(source: source, result: Spec.compile(source, bindings: options.bindingMap))
}

/// Prints diagnostics to standard error, each with its source line and caret.
func printDiagnostics(_ diagnostics: [Diagnostic], source: SourceText?) {
  var text = diagnostics.map { $0.rendered(source: source) }.joined(separator: "\n")
  let errors = diagnostics.filter { $0.severity == .error }.count
  if errors > 1 { text += "\n\(errors) errors" }
  FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// A graph to work on, from a spec or from a `.model` file.
struct GraphInput {
  /// The spec text, to quote under diagnostics (nil for a model).
  var source: SourceText?
  /// The graph, or the spec's diagnostics.
  var result: Spec.Result
  /// The loaded model (weights, labels, provenance) when the input was a `.model` file.
  var model: ModelFile?
  /// The imported model (weights, ONNX names) when the input was an ONNX file.
  var onnx: ONNXImport? = nil

  /// The input's own weights by parameter name (a `.model`'s or an ONNX model's); nil for a spec.
  var weights: [String: Tensor]? {
    if let model {
      return Dictionary(model.namedWeights().map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
    }
    guard let onnx else { return nil }
    return Dictionary(zip(onnx.graph.parameters.map(\.name), onnx.weights), uniquingKeysWith: { a, _ in a })
  }

  /// The seed a spoken-language data set was split with when this model was trained (`train
  /// --seed N` splits with N), so that its test split is the one it never saw; 0 for a spec.
  var splitSeed: UInt64 { model?.provenance.training?.seed ?? 0 }
}

/// The one step from a command's input file to a graph: a spec is compiled with the
/// bindings; an ONNX model is imported (its symbols bound by the bindings); a `.model` is loaded and checked (`checkingWeights` also verifies the weights'
/// checksums, for commands that use them). Errors name the file; diagnostics come back in
/// `result` for the caller to print.
func loadGraph(_ options: SpecOptions, checkingWeights: Bool = false, bindingModels: Bool = false) throws -> GraphInput
{
  if ONNXImporter.isONNXFile(options.spec) {
    let imported = try Model.importONNX(options.spec, bindings: options.bindingMap)
    return GraphInput(
      source: nil, result: Spec.Result(graph: imported.graph, diagnostics: []), model: nil,
      onnx: imported)
  }
  guard Model.isModelFile(options.spec) else {
    let compiled = try compileSpec(options)
    return GraphInput(source: compiled.source, result: compiled.result, model: nil)
  }
  guard options.bindings.isEmpty || bindingModels else {
    throw GlassboxError(
      .file,
      "\(options.spec): --bind applies to spec files; a .model is compiled already (its symbols \(loadedSymbols(options.spec)) are bound when it runs)"
    )
  }
  let model = try ModelFile.load(options.spec, checkingWeights: checkingWeights)
  guard !options.bindings.isEmpty else {
    return GraphInput(source: nil, result: Spec.Result(graph: model.graph, diagnostics: []), model: model)
  }
  // Commands that run a model at a chosen size (bench) bind its remaining symbols.
  let unknown = options.bindingMap.keys.filter { !model.graph.symbols.contains($0) }.sorted()
  guard unknown.isEmpty else {
    throw GlassboxError(
      .file,
      "\(options.spec): --bind names \(unknown.joined(separator: ", ")), not a symbol of the model (its symbols: \(loadedSymbols(options.spec)))"
    )
  }
  do {
    let graph = try model.graph.bound(options.bindingMap)
    return GraphInput(source: nil, result: Spec.Result(graph: graph, diagnostics: []), model: model)
  } catch {
    return GraphInput(source: nil, result: Spec.Result(graph: nil, diagnostics: error.diagnostics), model: model)
  }
}

private func loadedSymbols(_ path: String) -> String {
  let symbols = (try? ModelFile.load(path, checkingWeights: false))?.graph.symbols ?? []
  return symbols.isEmpty ? "(none)" : symbols.joined(separator: ", ")
}

/// The command's model through the library: a `.model` file (its symbols bound by `--bind`, if
/// given) or a spec with `weights`. A spec that does not check throws every diagnostic,
/// rendered with its source line.
func loadModel(_ options: SpecOptions, weights: Model.WeightOptions = Model.WeightOptions()) throws -> Model {
  try Model(contentsOf: options.spec, bindings: options.bindingMap, weights: weights)
}

/// `--weights`, `--rename` and `--seed` of a command as the library's weight options.
func weightOptions(file: String?, renames: [NamedPath], seed: UInt64) -> Model.WeightOptions {
  Model.WeightOptions(file: file, renames: renames.map { ($0.name, $0.path) }, seed: seed)
}

extension GlassboxError {
  /// The error with each line about an input (`input 'NAME' …`) prefixed by the file that
  /// input was read from, so that a message on a tensor names the file a user gave.
  func namingFiles(_ files: [(input: String, path: String)]) -> GlassboxError {
    let lines = message.split(separator: "\n", omittingEmptySubsequences: false).map { line in
      let path = files.first { line.hasPrefix("input '\($0.input)'") }?.path
      return (path.map { "\($0): " } ?? "") + line
    }
    return GlassboxError(kind, file: file, lines.joined(separator: "\n"))
  }
}
