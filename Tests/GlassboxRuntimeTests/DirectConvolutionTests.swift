import GlassboxIR
import GlassboxReference
@testable import GlassboxRuntime
import Testing

/// Direct convolutions (`DirectConv2d`) against the Float64 reference interpreter, on both
/// kernel paths (AVX-512 where the CPU has it, AVX2), which must agree bit for bit, on one core
/// and two. The shapes take every edge of the flat-output form: output channels not a multiple
/// of the block of 8 (nor of 4, the AVX2 kernel's half block), input channels from 1, strides 2
/// and 3 (phase planes) and unequal ones, padding 0 to 3, dilation, kernels of 2×2 to 7×7 and
/// unequal sides, rows narrower than one vector, maps whose flat outputs end mid-vector, the
/// bias or none, the residual + ReLU epilogue, and 1×1 convolutions (in place, one phase).
struct DirectConvolutionTests {
  static let specs: [String] = [
    // Stride 2, odd sizes: 21 and 13 output channels, 17 input channels, 15×13 maps, a 5×5
    // kernel of dilation 2, unequal padding, the residual + ReLU epilogue.
    """
    graph g(x: f32[2, 17, 15, 13], r: f32[2, 21, 8, 7]) -> (y: f32[2, 21, 8, 7], z: f32[2, 13, 11, 13], u: f32[2, 5, 7, 6]) {
      param w: f32[21, 17, 3, 3] init uniform(0.1)
      param b: f32[21] init uniform(0.1)
      param v: f32[13, 17, 5, 5] init uniform(0.1)
      param k: f32[5, 17, 2, 3] init uniform(0.1)
      y = conv2d(x, w, b, r, stride: [2, 2], padding: [1, 1], activation: relu)
      z = conv2d(x, v, padding: [2, 4], dilation: [2, 2])
      u = conv2d(x, k, stride: [2, 2], padding: [0, 0])
    }
    """,
    // A ResNet stem on a small image (7×7, stride 2, padding 3, three channels), strides 3 and
    // 2, a 1-channel input, a kernel of one row.
    """
    graph g(x: f32[1, 3, 37, 29], s: f32[1, 1, 9, 40]) -> (y: f32[1, 12, 19, 15], z: f32[1, 9, 13, 15], u: f32[1, 7, 5, 20], v: f32[1, 3, 9, 38]) {
      param w: f32[12, 3, 7, 7] init uniform(0.1)
      param b: f32[12] init uniform(0.1)
      param k: f32[9, 3, 3, 3] init uniform(0.1)
      param q: f32[7, 1, 3, 3] init uniform(0.1)
      param c: f32[7] init uniform(0.1)
      param t: f32[3, 1, 1, 3] init uniform(0.1)
      y = conv2d(x, w, b, stride: [2, 2], padding: [3, 3], activation: relu)
      z = conv2d(x, k, stride: [3, 2], padding: [1, 1])
      u = conv2d(s, q, c, stride: [2, 2], padding: [1, 1])
      v = conv2d(s, t)
    }
    """,
    // Few tiles for Winograd (ResNet's layer4 on one 224×224 image: 7×7 maps of 512 channels;
    // here 64 channels, 16 tiles): direct, stride 1, bias and residual + ReLU; one image on two
    // cores splits the output channels (the weights outweigh the input: 9 blocks of 16, 136
    // channels); 4×4 maps of four images split the images.
    """
    graph g(x: f32[1, 64, 7, 7], r: f32[1, 136, 7, 7], s: f32[4, 64, 4, 4]) -> (y: f32[1, 136, 7, 7], z: f32[4, 40, 4, 4]) {
      param w: f32[136, 64, 3, 3] init uniform(0.1)
      param b: f32[136] init uniform(0.1)
      param k: f32[40, 64, 3, 3] init uniform(0.1)
      y = conv2d(x, w, b, r, padding: [1, 1], activation: relu)
      z = conv2d(s, k, padding: [1, 1])
    }
    """,
    // One image large enough to split its outputs over two cores by runs of flat outputs (the
    // input outweighs the weights), the runs ending inside a row.
    """
    graph g(x: f32[1, 8, 61, 59], r: f32[1, 20, 31, 30]) -> (y: f32[1, 20, 31, 30]) {
      param w: f32[20, 8, 3, 3] init uniform(0.1)
      param b: f32[20] init uniform(0.1)
      y = conv2d(x, w, b, r, stride: [2, 2], padding: [1, 1], activation: relu)
    }
    """,
    // Maps at least 16 wide (runs of flat outputs) of odd sizes: stride 2, a 5×5 kernel of
    // dilation 2 and unequal padding, a 2×3 kernel, strides 3 and 2 with dilation 1 and 2.
    """
    graph g(x: f32[2, 5, 20, 50], r: f32[2, 21, 10, 25]) -> (y: f32[2, 21, 10, 25], z: f32[2, 13, 16, 50], u: f32[2, 5, 10, 24], t: f32[2, 11, 7, 24]) {
      param w: f32[21, 5, 3, 3] init uniform(0.1)
      param b: f32[21] init uniform(0.1)
      param v: f32[13, 5, 5, 5] init uniform(0.1)
      param k: f32[5, 5, 2, 3] init uniform(0.1)
      param m: f32[11, 5, 3, 3] init uniform(0.1)
      y = conv2d(x, w, b, r, stride: [2, 2], padding: [1, 1], activation: relu)
      z = conv2d(x, v, padding: [2, 4], dilation: [2, 2])
      u = conv2d(x, k, stride: [2, 2], padding: [0, 0])
      t = conv2d(x, m, stride: [3, 2], padding: [1, 1], dilation: [1, 2])
    }
    """,
    // Small maps of one image split over two cores by outputs (the input outweighs the weights,
    // or too few blocks of 16 channels to share): 14×14 (dilated, so not Winograd's) and, at
    // stride 2, 7×7 (49 outputs, six steps of 8 and one).
    """
    graph g(x: f32[1, 64, 14, 14]) -> (y: f32[1, 16, 14, 14], z: f32[1, 48, 7, 7]) {
      param w: f32[16, 64, 3, 3] init uniform(0.1)
      param b: f32[16] init uniform(0.1)
      param k: f32[48, 64, 3, 3] init uniform(0.1)
      y = conv2d(x, w, b, padding: [2, 2], dilation: [2, 2], activation: relu)
      z = conv2d(x, k, stride: [2, 2], padding: [1, 1])
    }
    """,
    // 1×1 convolutions: flat at stride 1 reading the input in place (481 flat outputs, the last
    // vector masked at the map's end; the residual + ReLU epilogue), stride 2 packing only phase
    // (0, 0), a padded one packing every phase (and dropping columns); narrow maps of 144
    // outputs flat too (12×12) in place with a residual, and at stride 2 from 24×24; a 7×7 map
    // by channels (steps of 7) in place, and at stride 2 from 14×14; a 14×14 map of 700 channels
    // flat.
    """
    graph g(x: f32[2, 19, 13, 37], r: f32[2, 21, 13, 37], s: f32[1, 40, 12, 12], t: f32[1, 33, 12, 12], q: f32[1, 40, 24, 24], m7: f32[1, 40, 7, 7], r7: f32[1, 50, 7, 7], l: f32[1, 700, 14, 14], m14: f32[1, 40, 14, 14]) -> (y: f32[2, 21, 13, 37], z: f32[2, 11, 7, 19], p: f32[2, 6, 8, 19], u: f32[1, 33, 12, 12], v: f32[1, 24, 12, 12], y7: f32[1, 50, 7, 7], yl: f32[1, 20, 14, 14], v7: f32[1, 50, 7, 7]) {
      param w: f32[21, 19, 1, 1] init uniform(0.1)
      param b: f32[21] init uniform(0.1)
      param k: f32[11, 19, 1, 1] init uniform(0.1)
      param e: f32[6, 19, 1, 1] init uniform(0.1)
      param m: f32[33, 40, 1, 1] init uniform(0.1)
      param c: f32[33] init uniform(0.1)
      param n: f32[24, 40, 1, 1] init uniform(0.1)
      y = conv2d(x, w, b, r, activation: relu)
      z = conv2d(x, k, stride: [2, 2])
      p = conv2d(x, e, stride: [2, 2], padding: [1, 0])
      u = conv2d(s, m, c, t, activation: relu)
      v = conv2d(q, n, stride: [2, 2])
      param k7: f32[50, 40, 1, 1] init uniform(0.1)
      param b7: f32[50] init uniform(0.1)
      param kl: f32[20, 700, 1, 1] init uniform(0.1)
      y7 = conv2d(m7, k7, b7, r7, activation: relu)
      yl = conv2d(l, kl)
      v7 = conv2d(m14, k7, b7, stride: [2, 2])
    }
    """,
  ]

  @Test(arguments: specs.indices)
  func directEqualsReferenceOnBothPaths(_ index: Int) throws {
    let graph = try Spec.checkedGraph(SourceText(fileName: "direct\(index).graph", text: Self.specs[index]))
    let parameters = DeterministicTensors.parameters(of: graph)
    let inputs = DeterministicTensors.inputs(of: graph)
    var reference = ReferenceInterpreter(graph: graph)
    let expected = try reference.run(inputs: inputs, parameters: parameters)
    var first: [String: Tensor]?
    for path in KernelPath.available {
      for threads in [1, 2] {
        let actual = try path.run {
          let program = try Executable(graph: graph, parameters: parameters, threads: threads)
          let convolutions = graph.nodes.filter { $0.op == .conv2d }.count
          #expect(program.program.filter { $0.hasSuffix("(direct)") }.count == convolutions)
          return try program.run(inputs: inputs)
        }
        for output in graph.outputs {
          let e = try #require(expected[graph[output.value].name]), a = try #require(actual[output.name])
          let scale = e.doubles.reduce(1e-3) { max($0, abs($1)) }
          let diff = try #require(maxAbsDifference(a, e))
          #expect(diff <= 1e-5 * scale, "case \(index) \(output.name), \(path), \(threads) threads: \(diff)")
        }
        if let first {
          let differences = sameBits(first, actual)
          #expect(differences.isEmpty, "case \(index), \(path), \(threads) threads: \(differences)")
        } else {
          first = actual
        }
      }
    }
  }
}
