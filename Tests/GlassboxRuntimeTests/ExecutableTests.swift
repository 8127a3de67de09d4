import GlassboxIR
import GlassboxPasses
import GlassboxReference
@testable import GlassboxRuntime
import Testing

/// The compiled f32 program against PyTorch's float64 outputs for every op fixture and every
/// study model: max |difference| within 1e-4 of the largest expected magnitude — on the AVX2
/// kernels and, where the CPU has AVX-512F, on the AVX-512 ones too, with the same bits.
struct ExecutableTests {
  @Test(arguments: ForwardFixture.names)
  func matchesPyTorch(_ name: String) throws {
    let fixture = try ForwardFixture(name)
    var runs: [KernelPath: [String: Tensor]] = [:]
    for path in KernelPath.available {
      let outputs = try path.run {
        try Executable(graph: fixture.graph, parameters: fixture.parameters).run(inputs: fixture.inputs)
      }
      runs[path] = outputs
      for (output, expected) in fixture.expected {
        let actual = try #require(outputs[output], "\(name): no output \(output)")
        let scale = expected.doubles.reduce(1e-3) { max($0, abs($1)) }
        let diff = try #require(
          maxAbsDifference(actual, expected), "\(name).\(output): shape \(actual.shape) vs \(expected.shape)")
        #expect(diff <= 1e-4 * scale, "\(name).\(output) (\(path)): max difference \(diff) (scale \(scale))")
      }
    }
    if let avx2 = runs[.avx2], let avx512 = runs[.avx512] {
      let problems = sameBits(avx2, avx512)
      #expect(problems.isEmpty, "\(name): the AVX2 and AVX-512 kernels disagree: \(problems.prefix(5))")
    }
  }

  /// Forcing a path in-process takes effect (the environment switch is read once).
  @Test(.enabled(if: AVX512.supported, KernelPath.noAVX512))
  func kernelPathsCanBeChosen() {
    #expect(KernelPath.avx2.run { AVX512.enabled } == false)
    #expect(KernelPath.avx512.run { AVX512.enabled } == true)
    #expect(AVX512.enabled == AVX512.requested)
  }

  /// Intermediates share memory: the arena is smaller than all buffers laid end to end.
  @Test func memoryIsShared() throws {
    let fixture = try ForwardFixture("resnet18")
    let program = try Executable(graph: fixture.graph, parameters: fixture.parameters)
    #expect(program.arenaCount < program.unsharedCount)
  }

  /// `run(inputs:into:)` writes each output into the array the previous run left, but never
  /// into one the caller kept (whether it reuses storage is a matter of speed, measured by
  /// `bench --train`: Swift may free an array before its last textual use, so a new one can
  /// land at the old address and a test cannot tell the two apart).
  @Test func runIntoReusesOutputArrays() throws {
    let graph = try Spec.checkedGraph(
      SourceText(
        fileName: "reuse.graph",
        text: """
          graph g(x: f32[3, 50]) -> (y: f32[3, 50], s: f32[3]) {
            y = tanh(x)
            s = sum(x, axes: [1])
          }
          """))
    let program = try Executable(graph: graph, parameters: [:])
    let a = DeterministicTensors.tensor("a", shape: [3, 50]), b = DeterministicTensors.tensor("b", shape: [3, 50])
    let ya = try #require(program.run(inputs: ["x": a])["y"]).floats
    let yb = try #require(program.run(inputs: ["x": b])["y"]).floats
    #expect(ya != yb)
    var outputs: [String: [Float]] = [:]
    try program.run(inputs: ["x": a], into: &outputs)
    #expect(outputs["y"] == ya)
    let kept = try #require(outputs["y"])
    try program.run(inputs: ["x": b], into: &outputs)
    #expect(kept == ya, "the caller's array was written over")
    #expect(outputs["y"] == yb)
    try program.run(inputs: ["x": a], into: &outputs)
    #expect(outputs["y"] == ya)
    #expect(outputs["s"]?.count == 3)
  }

  /// An elementwise result takes the storage of an operand of its shape that nothing reads
  /// after it (`BufferAssignment.inPlace`) — not one read later, not one it broadcasts, not for an
  /// output — and the values are the reference interpreter's.
  @Test func elementwiseResultsOverwriteDeadOperands() throws {
    let spec = """
      graph g(x: f32[4, 37], b: f32[1, 37]) -> (y: f32[4, 37]) {
        h = linear(x, out: 37)
        t = tanh(h)
        u = mul(t, b)
        v = add(u, h)
        w = mul(b, b)
        y = sub(v, w)
      }
      """
    let graph = try Spec.checkedGraph(SourceText(fileName: "inplace.graph", text: spec))
    let parameters = DeterministicTensors.parameters(of: graph)
    let program = try Executable(graph: graph, parameters: parameters, threads: 1)
    func offset(_ name: String) throws -> Int { program.offsets[try #require(graph.value(named: name)).index] }
    #expect(try offset("t") != offset("h"))  // h is read again by v
    #expect(try offset("u") == offset("t"))  // t dies at u
    #expect(try offset("v") == offset("u"))  // u (and h) die at v
    #expect(try offset("w") != offset("b"))  // an input is never overwritten
    #expect(try offset("y") != offset("v"))  // an output keeps its own buffer
    var inputs: [String: Tensor] = [:]
    for id in graph.inputs {
      inputs[graph[id].name] = DeterministicTensors.tensor(
        "input:" + graph[id].name, shape: graph[id].type.shape.map { $0.staticValue ?? 1 })
    }
    var reference = ReferenceInterpreter(graph: graph)
    let expected = try #require(try reference.run(inputs: inputs, parameters: parameters)["y"])
    let actual = try #require(try program.run(inputs: inputs)["y"])
    #expect(try #require(maxAbsDifference(actual, expected)) <= 1e-5)
  }

  /// A linear layer maps its input through an elementwise function inside its own kernel where
  /// nothing else reads the function's result (`Lowering.functionOfInput`): a one-feature score
  /// and a four-feature one (dot products), a 37-feature layer (GEMMs), each over rows that split
  /// over two cores in several chunks, and a function of a layer's result that it would
  /// otherwise overwrite in place; not where the function's result is also an output, nor for a
  /// two-row layer (its dot-product path). Against the reference interpreter on one and two
  /// cores.
  @Test func linearLayersMapTheirInputInTheirKernel() throws {
    let spec = """
      graph g(x: f32[3, 700, 40], w: f32[2, 30]) -> (s: f32[3, 700, 1], q: f32[3, 700, 4], y: f32[3, 700, 37],
                                                     t: f32[3, 700, 40], u: f32[3, 700, 3], z: f32[2, 5],
                                                     p: f32[3, 700, 2]) {
        s = linear(tanh(x), out: 1)
        p = linear(tanh(linear(x, out: 24)), out: 2)
        q = linear(sigmoid(x), out: 4)
        y = relu(linear(abs(x), out: 37))
        t = exp(x)
        u = linear(t, out: 3)
        z = linear(tanh(w), out: 5)
      }
      """
    let graph = try Spec.checkedGraph(SourceText(fileName: "mapped.graph", text: spec))
    var module = Module(graph: graph, weights: DeterministicTensors.parameters(of: graph))
    Pipeline.run(Pipeline.inference(blockedLayouts: false), on: &module)
    let g = module.graph
    let inputs = DeterministicTensors.inputs(of: graph)
    var reference = ReferenceInterpreter(graph: graph)
    let expected = try reference.run(inputs: inputs, parameters: module.weights)
    for threads in [1, 2] {
      let program = try Executable(graph: g, parameters: module.weights, threads: threads)
      let mapped = g.values.indices.filter {
        if case .mappedInput = program.buffers.storage[$0] { return true }
        return false
      }
      #expect(
        Set(mapped.map { g.values[$0].name }) == ["s.tanh", "q.sigmoid", "y.linear.abs", "p.tanh"], "\(program.program)"
      )
      #expect(program.program.count { $0.contains("of its input)") } == 4, "\(program.program)")
      let actual = try program.run(inputs: inputs)
      for name in ["s", "q", "y", "t", "u", "z", "p"] {
        let a = try #require(actual[name]), e = try #require(expected[name])
        #expect(try #require(maxAbsDifference(a, e)) <= 1e-5, "\(name) at \(threads) threads")
      }
    }
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

  /// The vector max-pooling path (eight outputs of a stride-2 row at a time) lets NaN win
  /// its windows, as PyTorch does, and leaves every other window its maximum.
  @Test func maxPoolingPropagatesNaN() throws {
    let graph = try Spec.checkedGraph(
      SourceText(
        fileName: "pool.graph",
        text: """
          graph g(x: f32[1, 2, 5, 40]) -> (y: f32[1, 2, 3, 20]) {
            y = max_pool2d(x, kernel: 3, stride: 2, padding: 1)
          }
          """))
    var values = DeterministicTensors.values("pool", count: 2 * 5 * 40)
    values[1 * 40 + 20] = .nan  // plane 0, row 1, column 20: windows (0, 10) and (1, 10)
    let y = try Executable(graph: graph, parameters: [:]).run(inputs: ["x": Tensor(shape: [1, 2, 5, 40], f32: values)])
    let out = try #require(y["y"]).floats
    for plane in 0..<2 {
      for oy in 0..<3 {
        for ox in 0..<20 {
          let got = out[(plane * 3 + oy) * 20 + ox]
          var window: [Float] = []
          for iy in Swift.max(2 * oy - 1, 0)...Swift.min(2 * oy + 1, 4) {
            for ix in Swift.max(2 * ox - 1, 0)...Swift.min(2 * ox + 1, 39) {
              window.append(values[(plane * 5 + iy) * 40 + ix])
            }
          }
          if window.contains(where: { $0.isNaN }) {
            #expect(got.isNaN, "plane \(plane) (\(oy), \(ox))")
          } else {
            #expect(got == window.max(), "plane \(plane) (\(oy), \(ox))")
          }
        }
      }
    }
    #expect(out[10].isNaN && out[30].isNaN)
  }

  /// A product split over two cores (by columns when wide, by rows when tall, transposed
  /// operands or not) equals the naive product.
  @Test(arguments: [(37, 300, false, false), (300, 37, false, true), (300, 37, true, false), (45, 290, true, true)])
  func splitSgemmMatchesNaiveProduct(_ m: Int, _ n: Int, _ transA: Bool, _ transB: Bool) {
    let k = 101
    #expect(m * n * k >= BLAS.parallelWork)
    let a = DeterministicTensors.values("a", count: m * k), b = DeterministicTensors.values("b", count: k * n)
    var c = [Float](repeating: 0, count: m * n)
    a.withUnsafeBufferPointer { pa in
      b.withUnsafeBufferPointer { pb in
        c.withUnsafeMutableBufferPointer { pc in
          BLAS.sgemm(
            threads: 2, transA: transA, transB: transB, m: m, n: n, k: k, a: pa.baseAddress!, lda: transA ? m : k,
            b: pb.baseAddress!, ldb: transB ? k : n, c: pc.baseAddress!, ldc: n)
        }
      }
    }
    for i in 0..<m {
      for j in 0..<n {
        let expected = (0..<k).reduce(Float(0)) {
          $0 + a[transA ? $1 * m + i : i * k + $1] * b[transB ? j * k + $1 : $1 * n + j]
        }
        #expect(abs(c[i * n + j] - expected) < 1e-4, "(\(i), \(j))")
      }
    }
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
