import ArgumentParser
import Foundation
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

  @Option(name: .shortAndLong, help: ArgumentHelp("The .model file to write (optional with --print-after, --print-after-all or --stats).", valueName: "FILE"))
  var output: String?

  @Option(help: ArgumentHelp("Print the IR, in the spec language, after this pass of the inference pipeline (repeatable).", valueName: "PASS"))
  var printAfter: [String] = []

  @Flag(help: "Print the IR after every pass of the inference pipeline.")
  var printAfterAll = false

  @Flag(help: "Print node counts after each pass, and the arena against the sum of all buffers (needs every symbol bound).")
  var stats = false

  @Flag(help: "With the printing options: unroll LSTMs into per-step cells first (the form training differentiates).")
  var unrollLSTM = false

  @Option(help: ArgumentHelp("Weights to import: a safetensors file of PyTorch state_dict names.", valueName: "FILE"))
  var weights: String?

  @Option(help: ArgumentHelp("Rename a name prefix of the imported weights, e.g. --rename features.=cnn. (repeatable; the first matching rule applies).",
                             valueName: "OLD=NEW"))
  var rename: [String] = []

  @Flag(help: "Accept weights files holding tensors the graph does not use (listed, then ignored).")
  var allowUnexpected = false

  @Flag(help: "Accept weights files lacking some parameters (listed, then initialised from --seed): a pretrained backbone under a new head.")
  var allowMissing = false

  @Option(help: ArgumentHelp("Class names, one per line, in logit order.", valueName: "FILE"))
  var labels: String?

  @Option(name: .customLong("tap"),
          help: ArgumentHelp("Add a tap, e.g. gradcam:layer3, cam:layer4,fc.weight, gradcam:cnn.layer4:scope=frame:name=frames (repeatable).",
                             valueName: "KIND:VALUE[:opt=val…]"))
  var taps: [String] = []

  @Option(help: "Seed of the initial weights when no --weights are given.")
  var seed: UInt64 = 0

  /// Passes `--print-after` may name.
  static var passNames: [String] { ([UnrollLSTM()] + Pipeline.inference).map(\.name) }

  func validate() throws {
    if output == nil && printAfter.isEmpty && !printAfterAll && !stats {
      throw ValidationError("give -o FILE.model, or --print-after PASS, --print-after-all or --stats")
    }
    for p in printAfter where !Compile.passNames.contains(p) {
      throw ValidationError("--print-after \(p): no such pass; the pipeline runs \(Compile.passNames.joined(separator: ", "))")
    }
    for r in rename where !r.contains("=") {
      throw ValidationError("--rename '\(r)': expected OLD=NEW (a name prefix and its replacement)")
    }
  }

  func run() throws {
    // A spec, or a .model to re-compile (new taps, labels or weights; the rest carried over).
    let input = try loadGraph(options)
    guard var graph = input.result.graph else {
      printDiagnostics(input.result.diagnostics, source: input.source)
      throw ExitCode(1)
    }
    for t in taps { try Compile.addTap(t, to: &graph) }

    var provenance = input.model?.provenance ?? Provenance()
    provenance.stamp(specText: input.source?.bytes)
    if input.source != nil { provenance.bindings = options.bindingMap }

    let tensors: [Tensor]
    if let weights {
      let file = try SafeTensors.read(weights)
      let rules = rename.map { r in
        let parts = r.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        return WeightImport.Rename(old: parts[0], new: parts.count > 1 ? parts[1] : "")
      }
      let matched = WeightImport(graph: graph, file: file, renames: rules)
      let partial = allowMissing && matched.misshaped.isEmpty && !matched.found.isEmpty
      let fatal = !(matched.isComplete || partial) || (!matched.unexpected.isEmpty && !allowUnexpected)
      if !matched.problems.isEmpty {
        var lines = matched.problems.map { "  \($0)" }
        if !fatal {
          lines.insert((matched.unexpected.isEmpty ? "" : "ignoring tensors the graph does not use")
            + (!matched.unexpected.isEmpty && !matched.missing.isEmpty ? "; " : "")
            + (matched.missing.isEmpty ? "" : "initialising the missing parameters from --seed \(seed)") + ":", at: 0)
        }
        FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8))
      }
      if fatal {
        // Mis-shaped tensors have no flag: the hints only where the flags would make it fit.
        let hints = !matched.misshaped.isEmpty ? [] : (matched.missing.isEmpty ? [] : ["--allow-missing to initialise the missing ones"])
          + (matched.unexpected.isEmpty ? [] : ["--allow-unexpected to ignore the unexpected ones"])
        throw FileError(description: "\(weights): does not fit \(graph.name): \(matched.missing.count) missing, \(matched.misshaped.count) mis-shaped, \(matched.unexpected.count) unexpected tensors"
          + (hints.isEmpty ? "" : " (pass " + hints.joined(separator: ", or ") + ")"))
      }
      if let w = matched.weights {
        tensors = w
      } else {
        let initial = try Initialization.weights(for: graph, seed: seed)
        tensors = zip(graph.parameters, initial).map { matched.found[$0.name] ?? $1 }
      }
      let bytes = [UInt8](FileManager.default.contents(atPath: weights) ?? Data())
      provenance.weights = .imported(sha256: SHA256.hex(bytes))
      provenance.training = nil
    } else if let model = input.model {
      tensors = model.graph.parameters.indices.map { model.weight(ofParameter: $0) }
    } else {
      do {
        tensors = try Initialization.weights(for: graph, seed: seed)
      } catch {
        throw FileError(description: "\(options.spec): \(error.description)")
      }
      provenance.weights = .initialized(seed: seed)
    }

    var names = input.model?.labels ?? []
    if let labels { names = try Compile.readLabels(labels, graph: graph) }

    if !printAfter.isEmpty || printAfterAll || stats {
      print(try Compile.pipelineReport(graph: graph, weights: tensors, printAfter: printAfter, printAll: printAfterAll,
                                       stats: stats, unrollLSTM: unrollLSTM), terminator: "")
    }
    guard let output else { return }
    let contents = ModelContents(graph: graph, weights: tensors, labels: names, provenance: provenance)
    try ModelFile.write(contents, to: output)
    let bytes = tensors.reduce(0) { $0 + $1.byteCount }
    print("wrote \(output): \(graph.name), \(Check.grouped(graph.parameterCount)) parameters, \(grouped(bytes)) bytes of weights, \(graph.taps.count) taps")
  }

  /// Runs the inference pipeline (what `run` and `bench` execute) on a copy of the graph and
  /// returns the IR after the passes named in `printAfter` (all with `printAll`) and, with
  /// `stats`, node counts per pass and the planned arena against the sum of all buffers. The
  /// `.model` itself always holds the graph as written.
  static func pipelineReport(graph: Graph, weights: [Tensor], printAfter: [String], printAll: Bool, stats: Bool,
                             unrollLSTM: Bool) throws -> String {
    var named: [String: Tensor] = [:]
    for (p, t) in zip(graph.parameters, weights) { named[p.name] = t }
    var module = Module(graph: graph, weights: named)
    var rows: [(pass: String, nodes: Int, changed: Bool)] = [("(as written)", graph.nodes.count, false)]
    let passes: [any Pass] = (unrollLSTM ? [UnrollLSTM()] : []) + Pipeline.inference
    for p in printAfter where !passes.contains(where: { $0.name == p }) {
      throw ValidationError("--print-after \(p): that pass runs only with --unroll-lstm")
    }
    var out = ""
    Pipeline.run(passes, on: &module) { name, changed, m in
      rows.append((name, m.graph.nodes.count, changed))
      if printAll || printAfter.contains(name) {
        out += "// after \(name)\(changed ? "" : " (unchanged)")\n" + Printer.print(m.graph) + "\n"
      }
    }
    guard stats else { return out }
    out += "pass                              nodes  changed\n"
    for r in rows {
      out += r.pass.padding(toLength: 32, withPad: " ", startingAt: 0) + String(format: "%7d  %@", r.nodes, r.changed ? "yes" : "") + "\n"
    }
    let unbound = module.graph.symbols
    guard unbound.isEmpty else {
      return out + "arena: bind \(unbound.joined(separator: ", ")) (--bind) to plan it\n"
    }
    var forward = module.graph
    forward.taps = forward.taps.filter { [.activation, .attention, .hidden].contains($0.kind) }
    let program = try Executable(graph: forward, parameters: module.weights, threads: 1)
    let mib = { (floats: Int) in String(format: "%.2f MiB", Double(floats * 4) / 1_048_576) }
    let ratio = String(format: "%.1f", Double(program.unsharedCount) / Double(max(program.arenaCount, 1)))
    return out + "arena: \(mib(program.arenaCount)) (weights included) for \(program.program.count) kernels; all buffers unshared: \(mib(program.unsharedCount)) (\(ratio)× the arena)\n"
  }

  /// Adds a tap given as `KIND:VALUE[,VALUE][:option=value…]` by the rules of a spec's
  /// `tap NAME = KIND(VALUE, option: value)`; the name defaults to the kind (or kind_value
  /// when a tap already has that name), and `name=` sets it.
  static func addTap(_ text: String, to graph: inout Graph) throws {
    func fail(_ m: String) -> OptionError { OptionError(description: "--tap \(text): \(m)") }
    let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
    guard parts.count >= 2, !parts[1].isEmpty else { throw fail("expected KIND:VALUE[:option=value…]") }
    guard let kind = TapKind(rawValue: parts[0]) else {
      throw fail("unknown tap kind '\(parts[0])'; expected \(TapKind.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    let valueNames = parts[1].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    guard valueNames.count == kind.operandCount else {
      throw fail("tap \(kind.rawValue) takes \(kind.operandCount) value\(kind.operandCount == 1 ? "" : "s") (separated by ','), found \(valueNames.count)")
    }
    var operands: [ValueID] = []
    for n in valueNames {
      guard let id = graph.value(named: n) else { throw fail("the graph has no value named '\(n)'") }
      operands.append(id)
    }
    var name: String?
    var options = Attributes()
    for option in parts.dropFirst(2) {
      let kv = option.split(separator: "=", maxSplits: 1).map(String.init)
      guard kv.count == 2 else { throw fail("option '\(option)' is not name=value") }
      if kv[0] == "name" {
        name = kv[1]
        continue
      }
      guard let spec = kind.options.first(where: { $0.name == kv[0] }) else {
        let known = (kind.options.map(\.name) + ["name"]).joined(separator: ", ")
        throw fail("tap \(kind.rawValue) has no option '\(kv[0])'; expected \(known)")
      }
      guard options[spec.name] == nil else { throw fail("option '\(spec.name)' is given twice") }
      switch spec.kind {
      case .int:
        guard let v = Int(kv[1]) else { throw fail("option \(spec.name) must be an integer, found '\(kv[1])'") }
        options[spec.name] = .int(v)
      case .choice(let names):
        guard names.contains(kv[1]) else {
          throw fail("option \(spec.name) must be one of \(names.joined(separator: ", ")), found '\(kv[1])'")
        }
        options[spec.name] = .string(kv[1])
      case .float, .bool, .dim, .pair, .ints, .floats, .dims:
        throw fail("option \(spec.name) cannot be given on the command line")
      }
    }
    for spec in kind.options where options[spec.name] == nil { options[spec.name] = spec.defaultValue }
    let tapName: String
    if let name {
      tapName = name
    } else if !graph.taps.contains(where: { $0.name == kind.rawValue }) {
      tapName = kind.rawValue
    } else {
      tapName = kind.rawValue + "_" + valueNames[0].replacingOccurrences(of: ".", with: "_")
    }
    guard !tapName.isEmpty, !graph.taps.contains(where: { $0.name == tapName }) else {
      throw fail("a tap named '\(tapName)' exists already; give another with :name=NAME")
    }
    let type: TensorType
    do {
      type = try kind.inferType(operands, options: options, in: graph)
    } catch {
      throw fail(error.message)
    }
    graph.taps.append(Tap(name: tapName, kind: kind, operands: operands, options: options, type: type))
  }

  /// Labels, one per line (a final newline and `\r` line ends allowed); their count must be
  /// the class count of the graph's first output when that is static.
  static func readLabels(_ path: String, graph: Graph) throws -> [String] {
    guard let data = FileManager.default.contents(atPath: path) else { throw FileError(description: "\(path): cannot be read") }
    guard let text = String(data: data, encoding: .utf8) else { throw FileError(description: "\(path): labels are not UTF-8 text") }
    // "\r\n" is one Character in Swift, and a newline like "\n".
    var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
    while lines.last == "" { lines.removeLast() }
    if let empty = lines.firstIndex(of: "") { throw FileError(description: "\(path): line \(empty + 1) is empty; give one label per line") }
    if let n = graph.labelCount, n != lines.count {
      throw FileError(description: "\(path): \(lines.count) labels but output '\(graph.outputs[0].name)' has \(n) classes")
    }
    return lines
  }
}

/// `46,827,520`.
func grouped(_ v: Int) -> String {
  var p = DimPolynomial()
  p.add(Dim(v))
  return Check.grouped(p)
}

/// A command-line option that does not fit its spec or model (exit status 1, no usage text).
struct OptionError: Error, CustomStringConvertible {
  var description: String
}
