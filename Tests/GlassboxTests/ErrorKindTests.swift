import GlassboxAnalysis
import GlassboxFormat
import GlassboxIR
import GlassboxMedia
import GlassboxONNX
import GlassboxTraining
import Testing

@testable import Glassbox

/// Every module's error becomes a `GlassboxError` of the kind it states, with its file, so a
/// caller (and the C API's status) can tell a bad file from a bad input from a missing library.
struct ErrorKindTests {
  private func kind(_ error: any Error) -> (ErrorKind, String?) {
    let e = GlassboxError.wrapping(error)
    return (e.kind, e.file)
  }

  @Test func everyModuleErrorKeepsItsKindAndFile() throws {
    #expect(kind(ModelFileError(path: "a.model", "truncated")) == (.model, "a.model"))
    #expect(kind(TensorFileError(path: "w.safetensors", "bad header")) == (.file, "w.safetensors"))
    #expect(kind(MediaError(.corrupt, file: "clip.mp4", "no frames")) == (.media, "clip.mp4"))
    #expect(kind(TrainingError(file: "data", "no such data folder")) == (.input, "data"))
    #expect(kind(TrainingError("libmpi.so.40: cannot open", kind: .runtime)) == (.runtime, nil))
    #expect(
      kind(ONNXError(file: "m.onnx", problems: [.init(.unsupportedOperator, node: "n", opType: "X", "no form")]))
        == (.unsupported, "m.onnx"))
    #expect(kind(ONNXError(file: "m.onnx", problems: [.init(.invalid, "a cycle through n")])) == (.model, "m.onnx"))
  }

  @Test func anErrorThrownByALowerModuleIsNotARuntimeFailure() throws {
    let thrown = #expect(throws: AnalysisError.self) { try Points(count: 1, dimensions: 1, values: [.nan]) }
    #expect(kind(try #require(thrown)) == (.input, nil))
  }
}
