import GlassboxIR

/// libFuzzer entry point for the spec compiler (lexer, parser, elaborator, shape rules,
/// verifier, printer): any bytes must give a graph or diagnostics, never a crash. A graph that
/// compiles must verify and print to text that compiles to the same graph.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSpecParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  guard let source = try? SourceText(fileName: "fuzz.graph", bytes: bytes) else { return 0 }
  for bindings in [[:], ["B": 2, "C": 3, "T": 2]] {
    let result = Spec.compile(source, bindings: bindings)
    for d in result.diagnostics { _ = d.rendered(source: source) }
    guard let graph = result.graph else { continue }
    precondition(Verifier.verify(graph).isEmpty, "a compiled graph fails verification")
    let printed = Printer.print(graph)
    let again = Spec.compile(SourceText(fileName: "printed.graph", text: printed))
    precondition(again.graph == graph, "printing and re-parsing changes the graph:\n\(printed)")
  }
  return 0
}
