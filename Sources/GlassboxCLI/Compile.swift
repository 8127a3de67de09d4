import ArgumentParser
import Foundation
import Glassbox
import GlassboxFormat
import GlassboxIR
import GlassboxPasses
import GlassboxReference
import GlassboxRuntime

/// `glassbox compile SPEC -o X.model`: a checked graph, weights (imported or initialised),
/// extra taps and labels, in one `.model` file.
struct Compile: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Compile a spec into a self-contained .model file (graph, weights, taps, labels, recipe).",
    discussion: """
      Without --weights, parameters are initialised as PyTorch initialises its modules, \
      reproducibly from --seed. With --weights, a safetensors state_dict is matched to the \
      parameters by name; every missing, unexpected and mis-shaped tensor is reported. \
      Given a .model instead of a spec, it is re-compiled: its weights, labels and provenance \
      are kept unless --weights or --labels replace them, and --tap adds taps.
      """)

  @OptionGroup var options: SpecOptions

  @Option(
    name: .shortAndLong,
    help: ArgumentHelp(
      "The .model file to write (optional with --print-after, --print-after-all, --stats "
        + "or --print-lowered).", valueName: "FILE"))
  var output: String?

  @Option(
    help: ArgumentHelp(
      "Print the IR, in the spec language, after this pass of the inference pipeline (repeatable).", valueName: "PASS"))
  var printAfter: [String] = []

  @Flag(help: "Print the IR after every pass of the inference pipeline.")
  var printAfterAll = false

  @Flag(
    help: "Print node counts after each pass, and the arena against the sum of all buffers (needs every symbol bound).")
  var stats = false

  @Flag(
    help: ArgumentHelp(
      "Print the lowered program: each kernel with the offsets and sizes of what it reads "
        + "and writes, and the lanes that run side by side (needs every symbol bound)."))
  var printLowered = false

  @Flag(help: "With the printing options: unroll LSTMs into per-step cells first (the form training differentiates).")
  var unrollLSTM = false

  @Option(help: ArgumentHelp("Weights to import: a safetensors file of PyTorch state_dict names.", valueName: "FILE"))
  var weights: String?

  @Option(
    help: ArgumentHelp(
      "Rename a name prefix of the imported weights, e.g. --rename features.=cnn. (repeatable; the first matching rule applies).",
      valueName: "OLD=NEW"))
  var rename: [String] = []

  @Flag(help: "Accept weights files holding tensors the graph does not use (listed, then ignored).")
  var allowUnexpected = false

  @Flag(
    help:
      "Accept weights files lacking some parameters (listed, then initialised from --seed): a pretrained backbone under a new head."
  )
  var allowMissing = false

  @Option(help: ArgumentHelp("Class names, one per line, in logit order.", valueName: "FILE"))
  var labels: String?

  @Option(
    name: .customLong("tap"),
    help: ArgumentHelp(
      "Add a tap, e.g. gradcam:layer3, cam:layer4,fc.weight, gradcam:cnn.layer4:scope=frame:name=frames (repeatable).",
      valueName: "KIND:VALUE[:opt=val…]"))
  var taps: [String] = []

  @Option(help: "Seed of the initial weights when no --weights are given.")
  var seed: UInt64 = 0

  /// Passes `--print-after` may name.
  static var passNames: [String] { Model.inferencePassNames }

  func validate() throws {
    if output == nil && printAfter.isEmpty && !printAfterAll && !stats && !printLowered {
      throw ValidationError(
        "give -o FILE.model, or --print-after PASS, --print-after-all, --stats "
          + "or --print-lowered")
    }
    for p in printAfter where !Compile.passNames.contains(p) {
      throw ValidationError(
        "--print-after \(p): no such pass; the pipeline runs \(Compile.passNames.joined(separator: ", "))")
    }
    for r in rename where !r.contains("=") {
      throw ValidationError("--rename '\(r)': expected OLD=NEW (a name prefix and its replacement)")
    }
  }

  func run() throws {
    // A spec, or a .model to re-compile (new taps, labels or weights; the rest carried over).
    var options = Model.WeightOptions(
      file: weights,
      renames: rename.map { r in
        let parts = r.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        return (parts[0], parts.count > 1 ? parts[1] : "")
      }, seed: seed, allowMissing: allowMissing, allowUnexpected: allowUnexpected)
    options.allowanceNames = ("--allow-missing", "--allow-unexpected")
    var model: Model
    var notes: [String] = []
    if weights != nil, Model.isModelFile(self.options.spec) {
      (model, notes) = try loadModel(self.options).replacingWeights(options)
    } else {
      model = try loadModel(self.options, weights: options)
      notes = model.weightNotes
    }
    if !notes.isEmpty { FileHandle.standardError.write(Data((notes.joined(separator: "\n") + "\n").utf8)) }
    for t in taps { model = try model.adding(tap: t) }
    if let labels { model = try model.with(labels: try Model.readLabels(labels, for: model.graph)) }

    if !printAfter.isEmpty || printAfterAll || stats || printLowered {
      print(
        try model.inferencePipelineReport(
          printAfter: printAfter, printAll: printAfterAll, stats: stats,
          unrollLSTM: unrollLSTM, lowered: printLowered), terminator: "")
    }
    guard let output else { return }
    try model.write(to: output)
    let bytes = try model.parameterTensors().reduce(0) { $0 + $1.byteCount }
    print(
      "wrote \(output): \(model.name), \(grouped(model.graph.parameterCount)) parameters, \(grouped(bytes)) bytes of weights, \(model.graph.taps.count) taps"
    )
  }
}
