import GlassboxIR
import Testing

/// Statements may be written in any order; the elaborator orders them by dependency without
/// recursion, so long chains in any order neither overflow the stack nor take long.
struct ForwardReferenceTests {
  /// A chain `v0 → v1 → … → vN` that reuses values (each step adds the previous two).
  static func chain(_ n: Int, reversed: Bool) -> String {
    var lines = ["  v0 = relu(x)", "  v1 = tanh(v0)"]
    for i in 2..<n { lines.append("  v\(i) = add(v\(i - 1), v\(i - 2))") }
    if reversed { lines.reverse() }
    return "graph chain(x: f32[B, 16]) -> (y: f32[B, 16]) {\n" + lines.joined(separator: "\n")
      + "\n  y = v\(n - 1)\n}\n"
  }

  @Test(arguments: [false, true])
  func tenThousandNodes(reversed: Bool) throws {
    let graph = try Spec.checkedGraph(SourceText(fileName: "chain.graph", text: Self.chain(10_000, reversed: reversed)))
    #expect(graph.nodes.count == 10_000)
    #expect(Verifier.verify(graph).isEmpty)
    // Dependency order, not source order: every operand is defined before its use.
    #expect(graph[graph.nodes[9_999].results[0]].name == "v9999")
  }

  @Test func deepBlockNestingIsRefusedNotOverflowed() {
    var text = "graph g(x: f32[4]) -> (y: f32[4]) {\n  y = b0(x)\n}\n"
    for i in 0..<100 { text += "block b\(i)(x) {\n  return b\(i + 1)(x)\n}\n" }
    text += "block b100(x) {\n  return relu(x)\n}\n"
    let result = compile(text)
    #expect(result.graph == nil)
    #expect(result.diagnostics.contains { $0.message.hasPrefix("blocks are nested more than 64 deep") })
  }

  @Test func tenMegabyteLineIsOneDiagnostic() {
    let long = String(repeating: "a", count: 10 << 20)
    let result = compile("graph g(x: f32[4]) -> (y: f32[4]) {\n  y = relu(\(long))\n}\n")
    #expect(result.diagnostics.count == 1)
    #expect(result.diagnostics.first?.message.hasPrefix("undefined value 'aaaa") == true)
  }
}
