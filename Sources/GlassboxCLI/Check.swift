import ArgumentParser
import Foundation
import GlassboxFormat
import GlassboxIR
import GlassboxONNX

/// `glassbox check SPEC`: parse and shape-check a spec, reporting every error at once.
struct Check: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Parse and shape-check a spec; print its signature, parameter count and taps.")

  @OptionGroup var options: SpecOptions

  @Flag(help: "Also print every node with its output shape.")
  var shapes = false

  @Flag(help: "Print the checked graph in the spec language (the IR dump).")
  var print = false

  @Flag(help: "Print one JSON object instead of text.")
  var json = false

  func run() throws {
    let compiled = try loadGraph(options)
    guard let graph = compiled.result.graph else {
      if json {
        Swift.print(JSONValue.object([("diagnostics", .array(compiled.result.diagnostics.map(Check.json)))]).text)
      } else {
        printDiagnostics(compiled.result.diagnostics, source: compiled.source)
      }
      throw ExitCode(1)
    }
    if json {
      Swift.print(Check.json(graph).text)
    } else if print {
      if let onnx = compiled.onnx { Swift.print(Check.nameMapping(onnx, file: options.spec), terminator: "") }
      Swift.print(Printer.print(graph), terminator: "")
    } else {
      Swift.print(Check.summary(graph, shapes: shapes), terminator: "")
    }
  }

  /// Comment lines above an imported graph: where it came from, and each ONNX name that reads
  /// differently in the spec (`# /layer1/layer1.0/conv1/Conv_output_0 → layer1.layer1.0.conv1.Conv_output_0`).
  static func nameMapping(_ onnx: ONNXImport, file: String) -> String {
    var out = "# imported from \(file) (ONNX opset \(onnx.opset)"
    out += (onnx.producer.isEmpty ? "" : ", written by \(onnx.producer)") + ")\n"
    let renamed = onnx.renamed
    if !renamed.isEmpty {
      out += "# ONNX names that read differently here (ONNX → spec):\n"
      for r in renamed { out += "#   \(r.onnx) → \(r.spec)\n" }
    }
    return out
  }

  static func json(_ d: Diagnostic) -> JSONValue {
    .object([
      ("file", d.location.map { .string($0.file) } ?? .null),
      ("line", d.location.map { .int($0.line) } ?? .null),
      ("column", d.location.map { .int($0.column) } ?? .null),
      ("message", .string(d.message)),
    ])
  }

  static func json(_ t: TensorType) -> [(String, JSONValue)] {
    [
      ("dtype", .string(t.dtype.rawValue)),
      ("shape", .array(t.shape.map { $0.staticValue.map(JSONValue.int) ?? .string($0.description) })),
    ]
  }

  static func count(_ p: DimPolynomial) -> JSONValue {
    p.staticValue.map(JSONValue.int) ?? .string(p.description)
  }

  static func json(_ g: Graph) -> JSONValue {
    .object([
      ("name", .string(g.name)),
      ("inputs", .array(g.inputs.map { .object([("name", .string(g[$0].name))] + json(g[$0].type)) })),
      ("outputs", .array(g.outputs.map { .object([("name", .string($0.name))] + json(g[$0.value].type)) })),
      ("parameterCount", count(g.parameterCount)),
      ("bufferCount", count(g.bufferCount)),
      ("nodeCount", .int(g.nodes.count)),
      (
        "recipes",
        .array(
          g.recipes.map { r in
            .object([("input", .string(r.input)), ("kind", .string(r.kind.rawValue))])
          })
      ),
      (
        "taps",
        .array(
          g.taps.map { t in
            .object(
              [
                ("name", .string(t.name)), ("kind", .string(t.kind.rawValue)),
                ("target", .string(g[t.operands[0]].name)),
              ] + json(t.type))
          })
      ),
    ])
  }

  /// The human-readable report.
  static func summary(_ g: Graph, shapes: Bool) -> String {
    var out = "graph \(g.name)\n"
    for id in g.inputs { out += "  input   \(g[id].name): \(g[id].type)\n" }
    for o in g.outputs { out += "  output  \(o.name): \(g[o.value].type)\n" }
    let trainable = g.parameters.filter { $0.role == .trainable }.count
    out += "  parameters: \(grouped(g.parameterCount)) in \(trainable) tensors"
    let buffers = g.parameters.count - trainable
    if buffers > 0 { out += "; buffers: \(grouped(g.bufferCount)) in \(buffers) tensors" }
    out += "\n  nodes: \(g.nodes.count)\n"
    for r in g.recipes {
      let options = r.kind.options.compactMap { spec in r.options[spec.name].map { "\(spec.name): \($0)" } }
      out += "  recipe  \(r.input) = \(r.kind.rawValue)(\(options.joined(separator: ", ")))\n"
    }
    for t in g.taps {
      let targets = t.operands.map { g[$0].name }.joined(separator: ", ")
      out += "  tap     \(t.name) = \(t.kind.rawValue)(\(targets)): \(t.type)\n"
    }
    if shapes {
      out += "\n"
      let width = min(g.nodes.flatMap { $0.results.map { g[$0].name.count } }.max() ?? 0, 40)
      for node in g.nodes {
        for r in node.results {
          let name = g[r].name
          out +=
            "  \(name.padding(toLength: max(width, name.count), withPad: " ", startingAt: 0))  \(node.op.name.padding(toLength: 18, withPad: " ", startingAt: 0)) \(g[r].type)\n"
        }
      }
    }
    return out
  }
}
