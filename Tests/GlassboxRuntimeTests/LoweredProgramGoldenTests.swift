import Foundation
@testable import GlassboxRuntime
import GlassboxIR
import GlassboxPasses
import GlassboxReference
import Testing

/// The lowered program as text (`Executable.loweredDescription`, what `glassbox compile
/// --print-lowered` prints) for small specs in `Fixtures/lowered`: each `NAME.graph` is
/// compiled on two threads and its program must equal `NAME.lowered` byte for byte. Header
/// comments: `# bind: B=2` passes bindings; `# program: training` compiles one training step
/// (`TrainingProgram`) instead of the inference pipeline. `GLASSBOX_RECORD=1` rewrites the
/// expected files (and fails the run, so a re-recording is always looked at).
struct LoweredProgramGoldenTests {
  static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Fixtures/lowered")
  static let recording = ProcessInfo.processInfo.environment["GLASSBOX_RECORD"] == "1"

  static var cases: [String] {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
    return files.filter { $0.hasSuffix(".graph") }.map { String($0.dropLast(6)) }.sorted()
  }

  @Test func casesExist() {
    #expect(Self.cases == ["bilstm_attention", "bilstm_training", "cnn", "mlp"])
  }

  /// The program of a fixture spec, as its header asks.
  static func program(_ name: String) throws -> Executable {
    let text = try String(contentsOf: directory.appendingPathComponent(name + ".graph"), encoding: .utf8)
    var bindings: [String: Int] = [:], training = false
    for line in text.split(separator: "\n") where line.hasPrefix("#") {
      if line.hasPrefix("# bind:") {
        for pair in line.dropFirst(7).split(separator: " ") {
          let kv = pair.split(separator: "=")
          if kv.count == 2, let v = Int(kv[1]) { bindings[String(kv[0])] = v }
        }
      }
      if line == "# program: training" { training = true }
    }
    let graph = try Spec.checkedGraph(SourceText(fileName: name + ".graph", text: text), bindings: bindings)
    if training {
      let step = try TrainingProgram.make(from: graph, logits: "logits")
      return try Executable(graph: step.graph, parameters: DeterministicTensors.parameters(of: step.graph), threads: 2)
    }
    var module = Module(graph: graph, weights: DeterministicTensors.parameters(of: graph))
    module.graph.taps = module.graph.taps.filter(\.kind.isValue)
    Pipeline.run(Pipeline.inference(blockedLayouts: true), on: &module)
    return try Executable(graph: module.graph, parameters: module.weights, threads: 2)
  }

  @Test(arguments: cases)
  func loweredProgramText(_ name: String) throws {
    let text = try Self.program(name).loweredDescription
    let expectedURL = Self.directory.appendingPathComponent(name + ".lowered")
    if Self.recording {
      try text.write(to: expectedURL, atomically: true, encoding: .utf8)
      Issue.record("re-recorded \(expectedURL.lastPathComponent)")
      return
    }
    let expected = try String(contentsOf: expectedURL, encoding: .utf8)
    #expect(text == expected)
  }

  /// What the printer says is what runs: every value with storage is listed at the offset the
  /// program keeps it, and the kernels listed are the program's, in its order (a lane group's
  /// lane by lane).
  @Test(arguments: cases)
  func printedProgramIsTheProgram(_ name: String) throws {
    let program = try Self.program(name)
    let lines = program.loweredDescription.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
    var listedOffsets: [String: Int] = [:]
    for line in lines where line.hasPrefix("@") {
      let fields = line.split(separator: " ", omittingEmptySubsequences: true)
      guard fields.count >= 3, let offset = Int(fields[0].dropFirst()), fields[2].hasSuffix(":") else { continue }
      listedOffsets[String(fields[2].dropLast())] = offset
    }
    for (i, v) in program.graph.values.enumerated() where program.offsets[i] >= 0 {
      #expect(listedOffsets[v.name] == program.offsets[i], "\(v.name)")
    }
    let listed = lines.filter { $0.hasPrefix("kernel ") }.map { String($0.dropFirst(7)) }
    let run = program.kernels.flatMap { k in (k as? LaneGroup)?.lanes.flatMap { $0.map(\.label) } ?? [k.label] }
    #expect(listed == run)
  }
}
