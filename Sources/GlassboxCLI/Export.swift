import ArgumentParser
import Glassbox
import GlassboxFormat
import GlassboxIR

/// `glassbox export X.model -o W.safetensors`: the weights under their PyTorch names;
/// `glassbox export X.model -o X.onnx [--taps all|NAME,…] [--opset N]`: the inference graph
/// with its taps as outputs, for any ONNX runtime (`Model.exportONNX`).
struct Export: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write a model as ONNX with its taps as outputs (-o X.onnx), or its weights as a safetensors "
      + "state_dict with PyTorch names (-o X.safetensors).")

  @Argument(help: "A .model file (or, for ONNX, a spec or ONNX model).")
  var model: String

  @Option(name: .shortAndLong, help: ArgumentHelp("The file to write: .onnx or .safetensors.", valueName: "FILE"))
  var output: String

  @Option(
    help: ArgumentHelp(
      "ONNX: the taps to write as outputs: all (the default), none, or names.",
      valueName: "all|none|NAME,…"))
  var taps: String = "all"

  @Option(help: ArgumentHelp("ONNX: opset of the default domain (13 to 21).", valueName: "N"))
  var opset: Int = 17

  @Option(
    name: .customLong("bind"),
    help: ArgumentHelp(
      "ONNX: size a symbol other than the batch B, e.g. --bind T=16.",
      valueName: "NAME=VALUE"))
  var bindings: [Binding] = []

  @Option(help: "ONNX from a spec: seed of PyTorch-style initialisation.")
  var seed: UInt64 = 0

  func run() throws {
    guard output.lowercased().hasSuffix(".onnx") else {
      guard bindings.isEmpty, taps == "all", opset == 17 else {
        throw GlassboxError(.input, "--taps, --opset and --bind apply to an ONNX export (-o FILE.onnx)")
      }
      let file = try ModelFile.load(model)
      let tensors = file.namedWeights()
      try SafeTensors.write(SafeTensorsFile(tensors: tensors, metadata: ["format": "pt"]), to: output)
      print("wrote \(output): \(tensors.count) tensors, \(grouped(file.weightByteCount)) bytes")
      return
    }
    let loaded = try Model(contentsOf: model, weights: Model.WeightOptions(seed: seed))
    let selected: [String]? =
      switch taps {
      case "all": nil
      case "none": []
      default: taps.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
      }
    let bindingMap = Dictionary(bindings.map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last })
    let summary = try loaded.exportONNX(
      to: output,
      ONNXExportOptions(taps: selected, opset: opset, bindings: bindingMap))
    print("wrote \(output): opset \(opset), \(summary.nodeCount) nodes, \(grouped(summary.bytes.count)) bytes")
    print("  inputs: \(summary.inputs.joined(separator: ", "))")
    print("  outputs: \(summary.outputs.joined(separator: ", "))")
  }
}
