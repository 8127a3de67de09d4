import GlassboxIR
import GlassboxReference
@testable import GlassboxRuntime
import Testing

/// The compiled f32 program against PyTorch's float64 outputs for every op fixture and every
/// study model: max |difference| within 1e-4 of the largest expected magnitude.
struct ExecutableTests {
  @Test(arguments: ForwardFixture.names)
  func matchesPyTorch(_ name: String) throws {
    let fixture = try ForwardFixture(name)
    let program = try Executable(graph: fixture.graph, parameters: fixture.parameters)
    let outputs = try program.run(inputs: fixture.inputs)
    for (output, expected) in fixture.expected {
      let actual = try #require(outputs[output], "\(name): no output \(output)")
      let scale = expected.doubles.reduce(1e-3) { max($0, abs($1)) }
      let diff = try #require(maxAbsDifference(actual, expected), "\(name).\(output): shape \(actual.shape) vs \(expected.shape)")
      #expect(diff <= 1e-4 * scale, "\(name).\(output): max difference \(diff) (scale \(scale))")
    }
  }

  /// Intermediates share memory: the arena is smaller than all buffers laid end to end.
  @Test func memoryIsShared() throws {
    let fixture = try ForwardFixture("resnet18")
    let program = try Executable(graph: fixture.graph, parameters: fixture.parameters)
    #expect(program.arenaCount < program.unsharedCount)
  }

  @Test func wrongInputsAreNamed() throws {
    let fixture = try ForwardFixture("bilstm")
    let program = try Executable(graph: fixture.graph, parameters: fixture.parameters)
    #expect(throws: Executable.InputError.self) { try program.run(inputs: [:]) }
    #expect(throws: Executable.InputError.self) {
      try program.run(inputs: ["mfcc": Tensor(zeros: .f32, shape: [2, 767, 128])])
    }
    var params = fixture.parameters
    params["lstm.weight_ih_l0"] = Tensor(zeros: .f32, shape: [3])
    #expect(throws: Executable.InputError.self) { try Executable(graph: fixture.graph, parameters: params) }
  }

  @Test func nonFiniteInputsPropagate() throws {
    let fixture = try ForwardFixture("elementwise")
    let program = try Executable(graph: fixture.graph, parameters: fixture.parameters)
    var inputs = fixture.inputs
    inputs["a"] = Tensor(shape: [2, 1, 4], f32: [.nan, .infinity, -.infinity, 1, 2, 3, 4, 5])
    let out = try program.run(inputs: inputs)
    #expect(out["s"]?.floats.first?.isNaN == true)
    #expect(out["r"]?.floats[1] == .infinity)
  }

  @Test func sgemmMatchesNaiveProduct() {
    let m = 7, n = 5, k = 9
    let a = DeterministicTensors.values("a", count: m * k), b = DeterministicTensors.values("b", count: k * n)
    var c = [Float](repeating: 0, count: m * n)
    a.withUnsafeBufferPointer { pa in
      b.withUnsafeBufferPointer { pb in
        c.withUnsafeMutableBufferPointer { pc in
          BLAS.sgemm(m: m, n: n, k: k, a: pa.baseAddress!, b: pb.baseAddress!, c: pc.baseAddress!)
        }
      }
    }
    for i in 0..<m {
      for j in 0..<n {
        let expected = (0..<k).reduce(Float(0)) { $0 + a[i * k + $1] * b[$1 * n + j] }
        #expect(abs(c[i * n + j] - expected) < 1e-5)
      }
    }
    #expect(BLAS.configuration.contains("OpenBLAS"))
  }
}
