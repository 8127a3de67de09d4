import ArgumentParser
import GlassboxFormat
import GlassboxIR

/// `glassbox export X.model -o W.safetensors`: the weights under their PyTorch names.
struct Export: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write a .model's weights (parameters and buffers) as a safetensors state_dict with PyTorch names.")

  @Argument(help: "A .model file.")
  var model: String

  @Option(name: .shortAndLong, help: ArgumentHelp("The safetensors file to write.", valueName: "FILE"))
  var output: String

  func run() throws {
    let file = try ModelFile.load(model)
    let tensors = file.namedWeights()
    try SafeTensors.write(SafeTensorsFile(tensors: tensors, metadata: ["format": "pt"]), to: output)
    print("wrote \(output): \(tensors.count) tensors, \(grouped(file.weightByteCount)) bytes")
  }
}
