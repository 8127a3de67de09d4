import Foundation
import GlassboxIR
import GlassboxPasses
import GlassboxRuntime

extension Model {
  /// Passes `inferencePipelineReport` can print after: the inference pipeline's, and
  /// `unroll-lstm` before them.
  public static var inferencePassNames: [String] {
    ([UnrollLSTM()] + Pipeline.inference(blockedLayouts: true)).map(\.name)
  }

  /// Runs the inference pipeline (what sessions execute) on a copy of the graph and returns
  /// the IR, in the spec language, after the passes named in `printAfter` (all with
  /// `printAll`); with `stats`, node counts per pass and the planned arena against the sum
  /// of all buffers; with `lowered`, the lowered program a session runs by default
  /// (`Executable.loweredDescription`: kernels, buffer offsets and sizes, lanes). The last two
  /// need every symbol bound. `unrollLSTM` first unrolls LSTMs into per-step cells, the form
  /// training differentiates. The model itself is unchanged.
  public func inferencePipelineReport(
    printAfter: [String] = [], printAll: Bool = false, stats: Bool = false,
    unrollLSTM: Bool = false, lowered: Bool = false
  ) throws(GlassboxError) -> String {
    let passes: [any Pass] =
      (unrollLSTM ? [UnrollLSTM()] : []) + Pipeline.inference(blockedLayouts: Executable.blockedLayouts)
    for p in printAfter where !passes.contains(where: { $0.name == p }) {
      let known = Model.inferencePassNames.contains(p)
      throw GlassboxError(
        .input,
        known
          ? "--print-after \(p): that pass runs only with --unroll-lstm"
          : "--print-after \(p): no such pass; the pipeline runs \(Model.inferencePassNames.joined(separator: ", "))")
    }
    var named: [String: Tensor] = [:]
    for (p, t) in zip(graph.parameters, try parameterTensors()) { named[p.name] = t }
    var module = Module(graph: graph, weights: named)
    var rows: [(pass: String, nodes: Int, changed: Bool)] = [("(as written)", graph.nodes.count, false)]
    var out = ""
    Pipeline.run(passes, on: &module) { name, changed, m in
      rows.append((name, m.graph.nodes.count, changed))
      if printAll || printAfter.contains(name) {
        out += "// after \(name)\(changed ? "" : " (unchanged)")\n" + Printer.print(m.graph) + "\n"
      }
    }
    guard stats || lowered else { return out }
    if stats {
      out += "pass                              nodes  changed\n"
      for r in rows {
        out +=
          r.pass.padding(toLength: 32, withPad: " ", startingAt: 0)
          + String(format: "%7d  %@", r.nodes, r.changed ? "yes" : "") + "\n"
      }
    }
    let unbound = module.graph.symbols
    guard unbound.isEmpty else {
      return out + "arena: bind \(unbound.joined(separator: ", ")) (--bind) to \(stats ? "plan" : "lower") it\n"
    }
    if stats {
      var forward = module.graph
      forward.taps = forward.taps.filter(\.kind.isValue)
      let program = try withGlassboxErrors { try Executable(graph: forward, parameters: module.weights, threads: 1) }
      let mib = { (floats: Int) in String(format: "%.2f MiB", Double(floats * 4) / 1_048_576) }
      let ratio = String(format: "%.1f", Double(program.unsharedCount) / Double(max(program.arenaCount, 1)))
      out +=
        "arena: \(mib(program.arenaCount)) (weights included) for \(program.program.count) kernels; "
        + "all buffers unshared: \(mib(program.unsharedCount)) (\(ratio)× the arena)\n"
    }
    if lowered {
      let program = try Model.compileInference(
        graph, parameters: named, taps: .values,
        threads: SessionOptions().threads, unrollLSTM: unrollLSTM)
      out += program.executable.loweredDescription
    }
    return out
  }
}
