import ArgumentParser
import Foundation
import Glassbox
import GlassboxFormat
import GlassboxIR
import GlassboxONNX

/// `glassbox import MODEL.onnx -o NAME.graph | NAME.model`: an ONNX model as a spec (with its
/// weights as safetensors beside it) or as a `.model`.
struct Import: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "import",
    abstract: "Import an ONNX model: write it as a spec (NAME.graph, weights in NAME.safetensors) or a .model.",
    discussion: """
      Initializers become parameters under their ONNX names (made spec names: the .graph lists \
      each name that reads differently); a dynamic batch dimension becomes the symbol B. Every \
      operator Glassbox cannot import is listed, with its nodes. An .onnx file is accepted \
      wherever a spec or .model is, so importing first is only needed to keep the result.
      """)

  @Argument(help: "The ONNX model (.onnx).")
  var model: String

  @Option(
    name: .shortAndLong,
    help: ArgumentHelp(
      "NAME.graph (and NAME.safetensors beside it) or NAME.model.",
      valueName: "FILE"))
  var output: String

  @Option(
    name: .customLong("bind"),
    help: ArgumentHelp(
      "Size a symbol, e.g. --bind B=1 (repeatable).",
      valueName: "NAME=VALUE"))
  var bindings: [Binding] = []

  @Option(help: ArgumentHelp("Class names, one per line, in logit order (a .model only).", valueName: "FILE"))
  var labels: String?

  func validate() throws {
    guard output.hasSuffix(".graph") || output.hasSuffix(".model") else {
      throw ValidationError("-o \(output): write NAME.graph or NAME.model")
    }
    if labels != nil, !output.hasSuffix(".model") { throw ValidationError("--labels applies to a .model output") }
  }

  func run() throws {
    let bindingMap = Dictionary(bindings.map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last })
    var loaded = try Model(contentsOf: model, bindings: bindingMap)
    for note in loaded.weightNotes { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
    let graph = loaded.graph
    if output.hasSuffix(".model") {
      if let labels { loaded = try loaded.with(labels: try Model.readLabels(labels, for: graph)) }
      try loaded.write(to: output)
      print("wrote \(output): \(graph.name), \(graph.nodes.count) nodes, \(grouped(graph.parameterCount)) parameters")
      return
    }
    let weightsPath = String(output.dropLast(".graph".count)) + ".safetensors"
    let printed: Graph
    let tensors: [NamedTensor]
    var header = ""
    if loaded.onnxNames.isEmpty {
      // A Glassbox export (`glassbox export … -o X.onnx`) gives back its own graph, not ONNX names.
      printed = graph
      tensors = zip(graph.parameters, try loaded.parameterTensors()).map { NamedTensor($0.name, $1) }
    } else {
      let imported = try Model.importONNX(model, bindings: bindingMap)
      printed = imported.graph
      tensors = zip(imported.graph.parameters, imported.weights).map { NamedTensor($0.name, $1) }
      header = Check.nameMapping(imported, file: model)
    }
    try SafeTensors.write(SafeTensorsFile(tensors: tensors, metadata: ["format": "pt"]), to: weightsPath)
    header += "# weights: \((weightsPath as NSString).lastPathComponent) (glassbox compile THIS.graph --weights …)\n"
    try writeText(header + Printer.print(printed), to: output)
    print(
      "wrote \(output) (\(graph.nodes.count) nodes) and \(weightsPath) (\(tensors.count) tensors, "
        + "\(grouped(graph.parameterCount)) parameters)")
  }
}
