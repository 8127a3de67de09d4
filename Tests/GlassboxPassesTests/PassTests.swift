import Foundation
import GlassboxIR
import GlassboxPasses
import GlassboxReference
import Testing

/// Each pass: the printed IR after it (golden), the verifier, and the same numbers as before
/// on the Float64 reference interpreter.
struct PassTests {
  static func module(_ text: String, bindings: [String: Int] = [:]) throws -> Module {
    let graph = try Spec.checkedGraph(SourceText(fileName: "t.graph", text: text), bindings: bindings)
    return Module(graph: graph, weights: DeterministicTensors.parameters(of: graph))
  }

  static func inputs(_ g: Graph) -> [String: Tensor] { DeterministicTensors.inputs(of: g) }

  /// Outputs of the reference interpreter by output name.
  static func outputs(_ m: Module) throws -> [String: Tensor] {
    var interpreter = ReferenceInterpreter(graph: m.graph)
    let values = try interpreter.run(inputs: inputs(m.graph), parameters: m.weights)
    return Dictionary(
      uniqueKeysWithValues: try m.graph.outputs.map { o in
        (o.name, try #require(values[m.graph[o.value].name]))
      })
  }

  /// Runs `pass`, checks it changed the graph, kept it valid and kept its numbers.
  static func check(_ pass: any Pass, _ text: String, expected: String, tolerance: Double = 1e-12) throws {
    var m = try module(text)
    let before = try outputs(m)
    #expect(pass.run(&m))
    #expect(Verifier.verify(m.graph).isEmpty, "\(Verifier.verify(m.graph))")
    #expect(Printer.print(m.graph) == expected)
    let after = try outputs(m)
    for (name, b) in before {
      let a = try #require(after[name])
      let scale = b.doubles.reduce(1.0) { max($0, abs($1)) }
      let diff = zip(a.doubles, b.doubles).reduce(0.0) { max($0, abs($1.0 - $1.1)) }
      #expect(a.shape == b.shape && diff <= tolerance * scale, "\(pass.name) \(name): \(diff)")
    }
    #expect(!pass.run(&m), "\(pass.name) should reach a fixed point in one run")
  }

  @Test func deadCode() throws {
    try Self.check(
      EliminateDeadCode(),
      """
      graph g(x: f32[4]) -> (y: f32[4]) {
        t = tanh(x)
        u = sigmoid(t)
        y = relu(x)
      }
      """,
      expected: """
        graph g(x: f32[4]) -> (y: f32[4]) {
          y = relu(x) : f32[4]
        }

        """)
  }

  @Test func commonSubexpressions() throws {
    try Self.check(
      EliminateCommonSubexpressions(),
      """
      graph g(x: f32[4]) -> (y: f32[4]) {
        a = tanh(x)
        b = tanh(x)
        y = add(a, b)
      }
      """,
      expected: """
        graph g(x: f32[4]) -> (y: f32[4]) {
          a = tanh(x) : f32[4]
          y = add(a, a) : f32[4]
        }

        """)
  }

  @Test func algebra() throws {
    try Self.check(
      SimplifyAlgebra(),
      """
      graph g(x: f32[2, 6]) -> (y: f32[2, 6], z: f32[2, 6]) {
        one = constant(value: 1.0)
        r = relu(relu(mul(x, one)))
        s = reshape(reshape(r, shape: [3, 4]), shape: [2, 6])
        y = transpose(transpose(s, perm: [1, 0]), perm: [1, 0])
        z = add(x, constant(value: 0.0, shape: [6]))
      }
      """,
      expected: """
        graph g(x: f32[2, 6]) -> (y: f32[2, 6], z: f32[2, 6]) {
          one = constant(value: 1.0) : f32[]
          r.relu = relu(x) : f32[2, 6]
          s.reshape = reshape(r.relu, shape: [3, 4]) : f32[3, 4]
          y.transpose = transpose(r.relu, perm: [1, 0]) : f32[6, 2]
          z.constant = constant(value: 0.0, shape: [6]) : f32[6]
          y = r.relu
          z = x
        }

        """)
  }

  /// A broadcast by adding zeros (a sum's gradient) is dropped where the op reading it
  /// widens x to the same shape anyway; where it would not (u), it stays.
  @Test func broadcastsFoldIntoTheirReaders() throws {
    try Self.check(
      SimplifyAlgebra(),
      """
      graph g(x: f32[2, 1, 3], w: f32[2, 4, 1], v: f32[2, 4, 3]) -> (y: f32[2, 4, 3], z: f32[2, 4, 3], u: f32[2, 4, 3]) {
        b = add(x, constant(value: 0.0, shape: [2, 4, 3]))
        y = mul(b, w)
        z = sub(v, b)
        u = mul(b, constant(value: 2.0, shape: [2, 1, 1]))
      }
      """,
      expected: """
        graph g(x: f32[2, 1, 3], w: f32[2, 4, 1], v: f32[2, 4, 3]) -> (y: f32[2, 4, 3], z: f32[2, 4, 3], u: f32[2, 4, 3]) {
          b.constant = constant(value: 0.0, shape: [2, 4, 3]) : f32[2, 4, 3]
          b = add(x, b.constant) : f32[2, 4, 3]
          y = mul(x, w) : f32[2, 4, 3]
          z = sub(v, x) : f32[2, 4, 3]
          u.constant = constant(value: 2.0, shape: [2, 1, 1]) : f32[2, 1, 1]
          u = mul(b, u.constant) : f32[2, 4, 3]
        }

        """)
  }

  /// `a` is made just before its reader; `z` stays (p and q, which it reads last, would live
  /// on with it past `k` at twice its size), as does `v` (only its reader's other operand lies
  /// between them).
  @Test func elementwiseNodesSinkToTheirReaders() throws {
    try Self.check(
      SinkElementwise(),
      """
      graph g(x: f32[4, 6], w: f32[1, 6]) -> (y: f32[4, 6]) {
        a = mul(x, w)
        p = tanh(x)
        q = sigmoid(x)
        z = add(p, q)
        k = sum(x, axes: [1], keepdims: true)
        v = add(z, x)
        m = add(v, a)
        y = add(m, k)
      }
      """,
      expected: """
        graph g(x: f32[4, 6], w: f32[1, 6]) -> (y: f32[4, 6]) {
          p = tanh(x) : f32[4, 6]
          q = sigmoid(x) : f32[4, 6]
          z = add(p, q) : f32[4, 6]
          k = sum(x, axes: [1], keepdims: true) : f32[4, 1]
          v = add(z, x) : f32[4, 6]
          a = mul(x, w) : f32[4, 6]
          m = add(v, a) : f32[4, 6]
          y = add(m, k) : f32[4, 6]
        }

        """)
  }

  @Test func constants() throws {
    try Self.check(
      FoldConstants(),
      """
      graph g(x: f32[4]) -> (y: f32[4]) {
        c = mul(add(constant(value: 1.0, shape: [4]), constant(value: 2.0)), constant(value: 0.5))
        y = add(x, c)
      }
      """,
      expected: """
        graph g(x: f32[4]) -> (y: f32[4]) {
          c.add.constant = constant(value: 1.0, shape: [4]) : f32[4]
          c.add.constant_2 = constant(value: 2.0) : f32[]
          c.add = constant(value: 3.0, shape: [4]) : f32[4]
          c.constant = constant(value: 0.5) : f32[]
          c = constant(value: 1.5, shape: [4]) : f32[4]
          y = add(x, c) : f32[4]
        }

        """)
  }

  @Test func batchNorm() throws {
    try Self.check(
      FoldBatchNorm(),
      """
      graph g(x: f32[2, 3, 5, 5]) -> (y: f32[2, 4, 5, 5]) {
        c = conv2d(x, out: 4, kernel: 3, padding: 1)
        y = batch_norm(c)
      }
      """,
      expected: """
        graph g(x: f32[2, 3, 5, 5]) -> (y: f32[2, 4, 5, 5]) {
          param c.weight: f32[4, 3, 3, 3] init uniform(0.19245008972987526)
          param c.bias: f32[4] init uniform(0.19245008972987526)
          param y.weight: f32[4] init ones
          param y.bias: f32[4] init zeros
          buffer y.running_mean: f32[4] init zeros
          buffer y.running_var: f32[4] init ones
          buffer y.num_batches_tracked: i64[] init zeros
          param y.folded_weight: f32[4, 3, 3, 3] init zeros
          param y.folded_bias: f32[4] init zeros
          y = conv2d(x, y.folded_weight, y.folded_bias, padding: 1) : f32[2, 4, 5, 5]
        }

        """, tolerance: 1e-6)
  }

  @Test func lstmLastStep() throws {
    try Self.check(
      NarrowLSTMToLastStep(),
      """
      graph g(x: f32[2, 5, 3]) -> (y: f32[2, 8]) {
        h = lstm(x, hidden: 4, bidirectional: true)
        y = select(h, axis: 1, index: -1)
      }
      """,
      expected: """
        graph g(x: f32[2, 5, 3]) -> (y: f32[2, 8]) {
          param h.weight_ih_l0: f32[16, 3] init uniform(0.5)
          param h.weight_hh_l0: f32[16, 4] init uniform(0.5)
          param h.bias_ih_l0: f32[16] init uniform(0.5)
          param h.bias_hh_l0: f32[16] init uniform(0.5)
          param h.weight_ih_l0_reverse: f32[16, 3] init uniform(0.5)
          param h.weight_hh_l0_reverse: f32[16, 4] init uniform(0.5)
          param h.bias_ih_l0_reverse: f32[16] init uniform(0.5)
          param h.bias_hh_l0_reverse: f32[16] init uniform(0.5)
          y = lstm(x, h.weight_ih_l0, h.weight_hh_l0, h.bias_ih_l0, h.bias_hh_l0, h.weight_ih_l0_reverse, h.weight_hh_l0_reverse, h.bias_ih_l0_reverse, h.bias_hh_l0_reverse, hidden: 4, bidirectional: true, last: true) : f32[2, 8]
        }

        """)
  }

  /// A ReLU that alone reads a training batch norm's result joins it; one after a batch norm
  /// whose result is read twice stays.
  @Test func batchNormReLU() throws {
    try Self.check(
      FuseBatchNormReLU(),
      """
      graph g(x: f32[2, 3, 4, 4]) -> (y: f32[2, 3, 4, 4], z: f32[2, 3, 4, 4]) {
        param w: f32[3] init uniform(1)
        param b: f32[3] init uniform(0.5)
        n, m, v = batch_norm_train(x, w, b)
        y = relu(n)
        k, km, kv = batch_norm_train(y, w, b)
        z = add(relu(k), k)
      }
      """,
      expected: """
        graph g(x: f32[2, 3, 4, 4]) -> (y: f32[2, 3, 4, 4], z: f32[2, 3, 4, 4]) {
          param w: f32[3] init uniform(1.0)
          param b: f32[3] init uniform(0.5)
          n, m, v = batch_norm_train(x, w, b, activation: relu) : f32[2, 3, 4, 4], f32[3], f32[3]
          k, km, kv = batch_norm_train(n, w, b) : f32[2, 3, 4, 4], f32[3], f32[3]
          z.relu = relu(k) : f32[2, 3, 4, 4]
          z = add(z.relu, k) : f32[2, 3, 4, 4]
          y = n
        }

        """)
  }

  @Test func epilogues() throws {
    try Self.check(
      FuseEpilogues(),
      """
      graph g(x: f32[2, 3, 4, 4]) -> (y: f32[2, 3, 4, 4], z: f32[2, 5]) {
        c = conv2d(x, out: 3, kernel: 3, padding: 1)
        y = relu(add(c, x))
        z = relu(linear(flatten(y), out: 5))
      }
      """,
      expected: """
        graph g(x: f32[2, 3, 4, 4]) -> (y: f32[2, 3, 4, 4], z: f32[2, 5]) {
          param c.weight: f32[3, 3, 3, 3] init uniform(0.19245008972987526)
          param c.bias: f32[3] init uniform(0.19245008972987526)
          y = conv2d(x, c.weight, c.bias, x, padding: 1, activation: relu) : f32[2, 3, 4, 4]
          z.linear.flatten = flatten(y) : f32[2, 48]
          param z.linear.weight: f32[5, 48] init uniform(0.14433756729740646)
          param z.linear.bias: f32[5] init uniform(0.14433756729740646)
          z = linear(z.linear.flatten, z.linear.weight, z.linear.bias, activation: relu) : f32[2, 5]
        }

        """)
  }

  /// Convolutions of 16·k output channels become blocked (the RGB stem reading its input plain),
  /// max pooling and elementwise ops on blocked operands stay blocked, a plain residual is
  /// blocked, a convolution of 8 channels reads a plain form made once, which the output shares,
  /// and outputs read plain.
  @Test func layouts() throws {
    try Self.check(
      ChooseLayouts(blockConvolutions: true),
      """
      graph g(x: f32[2, 3, 19, 17], r: f32[2, 16, 5, 5]) -> (y: f32[2, 16, 5, 5], z: f32[2, 8, 5, 5], u: f32[2, 16, 5, 5]) {
        s = relu(conv2d(x, out: 16, kernel: 7, stride: 2, padding: 3))
        a = conv2d(s, out: 16, kernel: 3, padding: 1)
        p = max_pool2d(mul(a, a), kernel: 3, stride: 2, padding: 1)
        y = conv2d(p, out: 16, kernel: 3, padding: 1, bias: false)
        z = conv2d(y, out: 8, kernel: 1)
        param c: f32[16] init uniform(0.1)
        u = sigmoid(conv2d(y, y.weight, c, r, padding: 1))
      }
      """,
      expected: """
        graph g(x: f32[2, 3, 19, 17], r: f32[2, 16, 5, 5]) -> (y: f32[2, 16, 5, 5], z: f32[2, 8, 5, 5], u: f32[2, 16, 5, 5]) {
          param s.conv2d.weight: f32[16, 3, 7, 7] init uniform(0.08247860988423225)
          param s.conv2d.bias: f32[16] init uniform(0.08247860988423225)
          s.conv2d.blocked = conv2d(x, s.conv2d.weight, s.conv2d.bias, stride: 2, padding: 3, layout: blocked) : f32[2, 1, 10, 9, 16]
          s.blocked = relu(s.conv2d.blocked) : f32[2, 1, 10, 9, 16]
          param a.weight: f32[16, 16, 3, 3] init uniform(0.08333333333333333)
          param a.bias: f32[16] init uniform(0.08333333333333333)
          a.blocked = conv2d(s.blocked, a.weight, a.bias, padding: 1, layout: blocked) : f32[2, 1, 10, 9, 16]
          p.mul.blocked = mul(a.blocked, a.blocked) : f32[2, 1, 10, 9, 16]
          p.blocked = max_pool2d(p.mul.blocked, kernel: 3, stride: 2, padding: 1) : f32[2, 1, 5, 5, 16]
          param y.weight: f32[16, 16, 3, 3] init uniform(0.08333333333333333)
          y.blocked = conv2d(p.blocked, y.weight, padding: 1, layout: blocked) : f32[2, 1, 5, 5, 16]
          param z.weight: f32[8, 16, 1, 1] init uniform(0.25)
          param z.bias: f32[8] init uniform(0.25)
          y = from_blocked(y.blocked) : f32[2, 16, 5, 5]
          z = conv2d(y, z.weight, z.bias) : f32[2, 8, 5, 5]
          param c: f32[16] init uniform(0.1)
          r.blocked = to_blocked(r) : f32[2, 1, 5, 5, 16]
          u.conv2d.blocked = conv2d(y.blocked, y.weight, c, r.blocked, padding: 1, layout: blocked) : f32[2, 1, 5, 5, 16]
          u.blocked = sigmoid(u.conv2d.blocked) : f32[2, 1, 5, 5, 16]
          u = from_blocked(u.blocked) : f32[2, 16, 5, 5]
        }

        """)
  }

  /// A tree of elementwise ops (the sigmoid backward shape, plus a scalar constant and a
  /// value used twice) becomes one node; a value with a second use, a broadcast operand and
  /// a tapped value stay out.
  @Test func elementwiseChains() throws {
    try Self.check(
      FuseElementwise(),
      """
      graph g(g: f32[2, 3], x: f32[2, 3], b: f32[3]) -> (y: f32[2, 3], z: f32[2, 3], w: f32[2, 3]) {
        s = sigmoid(x)
        y = mul(g, mul(s, sub(constant(value: 1.0), s)))
        t = tanh(x)
        z = add(relu(t), t)
        w = relu(add(mul(x, x), b))
        tap kept = activation(t)
      }
      """,
      expected: """
        graph g(g: f32[2, 3], x: f32[2, 3], b: f32[3]) -> (y: f32[2, 3], z: f32[2, 3], w: f32[2, 3]) {
          s = sigmoid(x) : f32[2, 3]
          y.mul.sub.constant = constant(value: 1.0) : f32[]
          y = fused_elementwise(g, s, y.mul.sub.constant, program: [1, 2, 1, 2, 1, 3, 2, 0, 4]) : f32[2, 3]
          t = tanh(x) : f32[2, 3]
          z = fused_elementwise(t, program: [4, 0, 0, 0, 1, 0]) : f32[2, 3]
          w.add.mul = mul(x, x) : f32[2, 3]
          w.add = add(w.add.mul, b) : f32[2, 3]
          w = relu(w.add) : f32[2, 3]
          tap kept = activation(t) : f32[2, 3]
        }

        """)
  }

  @Test func unrollTinyLSTM() throws {
    try Self.check(
      UnrollLSTM(),
      """
      graph g(x: f32[1, 2, 3]) -> (y: f32[1, 2, 2]) {
        y = lstm(x, hidden: 2)
      }
      """,
      expected: """
        graph g(x: f32[1, 2, 3]) -> (y: f32[1, 2, 2]) {
          param y.weight_ih_l0: f32[8, 3] init uniform(0.7071067811865475)
          param y.weight_hh_l0: f32[8, 2] init uniform(0.7071067811865475)
          param y.bias_ih_l0: f32[8] init uniform(0.7071067811865475)
          param y.bias_hh_l0: f32[8] init uniform(0.7071067811865475)
          y.zeros = constant(value: 0.0, shape: [1, 2]) : f32[1, 2]
          y.bias = add(y.bias_ih_l0, y.bias_hh_l0) : f32[8]
          y.proj = linear(x, y.weight_ih_l0, y.bias) : f32[1, 2, 8]
          y.x0 = select(y.proj, axis: 1, index: 0) : f32[1, 8]
          y.h0, y.c0 = lstm_cell(y.x0, y.zeros, y.zeros, y.weight_hh_l0) : f32[1, 2], f32[1, 2]
          y.x1 = select(y.proj, axis: 1, index: 1) : f32[1, 8]
          y.h1, y.c1 = lstm_cell(y.x1, y.h0, y.c0, y.weight_hh_l0) : f32[1, 2], f32[1, 2]
          y.y0 = reshape(y.h0, shape: [1, 1, 2]) : f32[1, 1, 2]
          y.y1 = reshape(y.h1, shape: [1, 1, 2]) : f32[1, 1, 2]
          y = concat(y.y0, y.y1, axis: 1) : f32[1, 2, 2]
        }

        """, tolerance: 1e-12)
  }

  /// Unrolled LSTMs compute what whole ones do, in every variant.
  @Test(arguments: [
    "hidden: 4", "hidden: 4, bidirectional: true", "hidden: 4, last: true",
    "hidden: 4, bidirectional: true, last: true",
  ])
  func unrollKeepsNumbers(_ options: String) throws {
    let last = options.contains("last")
    let out =
      last ? (options.contains("bi") ? "[3, 8]" : "[3, 4]") : (options.contains("bi") ? "[3, 5, 8]" : "[3, 5, 4]")
    var m = try Self.module("graph g(x: f32[3, 5, 2]) -> (y: f32\(out)) {\n  y = lstm(x, \(options))\n}\n")
    let before = try Self.outputs(m)
    #expect(UnrollLSTM().run(&m))
    #expect(Verifier.verify(m.graph).isEmpty)
    #expect(!m.graph.nodes.contains { $0.op == .lstm })
    let after = try Self.outputs(m)
    let b = try #require(before["y"]), a = try #require(after["y"])
    #expect(a.shape == b.shape)
    #expect(zip(a.doubles, b.doubles).allSatisfy { abs($0 - $1) < 1e-12 })
  }

  /// The whole inference pipeline on study models keeps their outputs (f32 folded weights:
  /// 1e-5) and their validity.
  @Test(arguments: [("bilstm_attention1d", ["B": 1, "C": 5]), ("resnet18", ["B": 1, "C": 10, "H": 32, "W": 32])])
  func pipelineOnStudyModels(_ name: String, _ bindings: [String: Int]) throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    let text = try String(contentsOf: root.appendingPathComponent("graphs/\(name).graph"), encoding: .utf8)
    var m = try Self.module(text, bindings: bindings)
    let before = try Self.outputs(m)
    let nodesBefore = m.graph.nodes.count
    Pipeline.run(Pipeline.inference(blockedLayouts: true), on: &m) { pass, _, module in
      #expect(Verifier.verify(module.graph).isEmpty, "after \(pass)")
    }
    // 20 batch norms folded; 8 residual adds and 17 ReLUs fused into convolution epilogues; the
    // layers blocked from the stem to layer4 (one conversion, for the pooling).
    if name == "resnet18" {
      #expect(m.graph.nodes.count == nodesBefore - 20 - 8 - 17 + 1, "\(nodesBefore) → \(m.graph.nodes.count)")
    }
    let after = try Self.outputs(m)
    for (output, b) in before {
      let a = try #require(after[output])
      let diff = zip(a.doubles, b.doubles).reduce(0.0) { max($0, abs($1.0 - $1.1)) }
      #expect(diff <= 1e-5 * b.doubles.reduce(1.0) { max($0, abs($1)) }, "\(name): \(diff)")
    }
  }
}
