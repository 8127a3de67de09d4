import GlassboxIR
import GlassboxONNX

/// libFuzzer entry point for the ONNX importer (protobuf decoding, tensor sizes, the graph's
/// order, every operator's conversion and folding): any bytes must import or throw
/// `ONNXError`, never crash or allocate without bound. An imported graph must verify, print to
/// a spec that compiles to the same graph, and hold one weight of its type per parameter.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzONNXImporter(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  do {
    let imported = try ONNXImporter.importModel(bytes: bytes, fileName: "fuzz.onnx")
    let graph = imported.graph
    precondition(Verifier.verify(graph).isEmpty, "an imported graph fails verification")
    precondition(imported.weights.count == graph.parameters.count, "a parameter lacks its weight")
    for (p, w) in zip(graph.parameters, imported.weights) {
      precondition(w.type == p.type && w.count == w.shape.reduce(1, *), "weight \(p.name) is not \(p.type)")
    }
    let printed = Printer.print(graph)
    let again = Spec.compile(SourceText(fileName: "printed.graph", text: printed))
    precondition(again.graph == graph, "printing and re-parsing changes the graph:\n\(printed)")
  } catch {
    _ = error.description
  }
  return 0
}
