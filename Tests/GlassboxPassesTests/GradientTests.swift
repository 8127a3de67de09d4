import Foundation
import GlassboxIR
import GlassboxPasses
import GlassboxReference
import Testing

/// Gradient rules against central finite differences on the Float64 reference interpreter.
/// Each case is a small graph that uses some values twice on purpose; the loss is
/// `Σ_outputs Σ(output ⊙ seed)` with deterministic seeds, differentiated with respect to every
/// floating-point input and trainable parameter.
struct GradientTests {
  /// Spec text of each case; every op with a gradient rule must appear in one (`coverage`).
  static let cases: [String: String] = [
    "linear": """
    graph g(x: f32[2, 3, 4]) -> (y: f32[2, 3, 5], z: f32[2, 3, 5]) {
      param w: f32[5, 4] init zeros
      param b: f32[5] init zeros
      param w2: f32[5, 4] init zeros
      r = linear(x, w2)
      y = linear(x, w, b)
      z = linear(x, w, b, r, activation: relu)
    }
    """,
    "matmul": """
    graph g(a: f32[2, 3], b: f32[3, 2], p: f32[2, 3, 4], q: f32[2, 4, 3]) -> (y: f32[2, 3], z: f32[2, 3, 4]) {
      y = matmul(matmul(a, b), a)
      z = batch_matmul(batch_matmul(p, q), p)
    }
    """,
    "arithmetic": """
    graph g(a: f32[2, 3], b: f32[3], c: f32[2, 1]) -> (y: f32[2, 3]) {
      k = constant(value: 1.5, shape: [3])
      y = div(mul(sub(add(a, b), c), a), add(mul(b, b), k))
    }
    """,
    "fused_elementwise": """
    graph g(a: f32[2, 3], b: f32[2, 3], k: f32[]) -> (y: f32[2, 3]) {
      y = fused_elementwise(a, b, k, program: [0, 0, 1, 2, 3, 2, 2, 4, 0, 5, 5, 0, 6, 3, 0, 3, 7, 6, 1, 8, 4])
    }
    """,
    // The newer codes: r3 = |a|, r4 = √r3, r5 = log r4, r6 = exp r5, r7 = erf b, r8 = r6^r7,
    // r9 = maximum(r8, k), r10 = minimum(k, r6), y = r9 + r10 (k < 0 < r6, r8: the gradient
    // reaches k through the minimum, a and b through the maximum).
    "fused_elementwise_math": """
    graph g(a: f32[2, 3], b: f32[2, 3], k: f32[]) -> (y: f32[2, 3]) {
      y = fused_elementwise(a, b, k, program: [13, 0, 0, 12, 3, 0, 11, 4, 0, 10, 5, 0, 14, 1, 0, 9, 6, 7, 7, 8, 2,
                                               8, 2, 6, 0, 9, 10])
    }
    """,
    // The layout conversions: a blocked tensor's gradient is its plain gradient, blocked.
    "layouts": """
    graph g(x: f32[1, 32, 2, 3], b: f32[1, 1, 2, 1, 16]) -> (y: f32[1, 32, 2, 3], z: f32[1, 1, 2, 1, 16]) {
      y = from_blocked(mul(to_blocked(x), to_blocked(x)))
      z = to_blocked(mul(from_blocked(b), from_blocked(b)))
    }
    """,
    "activations": """
    graph g(x: f32[2, 5]) -> (y: f32[2, 5]) {
      y = mul(relu(x), add(sigmoid(x), tanh(x)))
    }
    """,
    // log and sqrt of positive values; pow with a broadcast exponent that carries a gradient
    // and with a constant one (2 takes the kernels' x·x path).
    "unary_math": """
    graph g(x: f32[2, 5], p: f32[2, 5]) -> (y: f32[2, 5], z: f32[2, 5]) {
      y = mul(exp(x), add(erf(x), abs(x)))
      q = add(mul(p, p), constant(value: 0.5))
      z = mul(log(q), sqrt(q))
    }
    """,
    "binary_math": """
    graph g(a: f32[2, 3], b: f32[3], c: f32[2, 1]) -> (y: f32[2, 3], s: f32[2, 3], m: f32[2, 3]) {
      base = add(mul(a, a), constant(value: 0.5))
      y = pow(base, add(b, constant(value: 1.5)))
      s = pow(a, constant(value: 2.0))
      m = add(maximum(a, b), minimum(mul(a, c), b))
    }
    """,
    // Every composite (Composite), away from its kinks (tiesAtKinksFollowPyTorch has those).
    "composites": """
    graph g(x: f32[2, 7]) -> (a: f32[2, 7], b: f32[2, 7], c: f32[2, 7], d: f32[1, 2, 1]) {
      big = mul(x, constant(value: 8.0))
      a = add(leaky_relu(x, alpha: 0.2), mul(relu6(big), add(hard_swish(big), leaky_relu(x, alpha: 1.5))))
      b = mul(gelu(x), add(gelu(x, approximate: tanh), silu(x)))
      s = reciprocal(add(x, constant(value: 3.0)))
      c = add(clip(x, min: -0.3, max: 0.4), mul(add(hard_sigmoid(big, alpha: 0.2, beta: 0.5), hard_sigmoid(big)), s))
      d = global_max_pool2d(reshape(mul(x, neg(clip(x, max: 0.5))), shape: [1, 2, 7]))
    }
    """,
    "softmax": """
    graph g(x: f32[3, 4]) -> (y: f32[3, 4]) {
      y = mul(softmax(x, axis: 1), log_softmax(x, axis: 0))
    }
    """,
    "reductions": """
    graph g(x: f32[2, 3, 4]) -> (s: f32[2, 4], m: f32[1, 3, 1], t: f32[2, 3], u: f32[]) {
      s = sum(x, axes: [1])
      m = mean(x, axes: [0, 2], keepdims: true)
      t = max(x, axes: [2])
      u = add(sum(x), max(x))
    }
    """,
    "shapes": """
    graph g(x: f32[2, 3, 4]) -> (r: f32[4, 6], f: f32[2, 12], t: f32[4, 2, 3]) {
      r = reshape(x, shape: [4, -1])
      f = flatten(x)
      t = mul(transpose(x, perm: [2, 0, 1]), transpose(x, perm: [2, 0, 1]))
    }
    """,
    "pieces": """
    graph g(x: f32[2, 6, 3]) -> (s: f32[2, 5, 3], t: f32[2, 3], u: f32[2, 2, 3]) {
      a, b = split(x, axis: 1, sizes: [2, 4])
      c = concat(b, a, x, axis: 1)
      s = slice(c, axis: 1, start: 1, end: 10, step: 2)
      t = add(select(c, axis: 1, index: -1), select(x, axis: 1, index: 2))
      u = mul(a, dropout(a, p: 0.25))
    }
    """,
    // Each mode; reflect's padded result read twice.
    "pad": """
    graph g(x: f32[2, 3, 4]) -> (c: f32[2, 4, 7], r: f32[2, 7, 6], e: f32[4, 3, 9]) {
      c = pad(x, pads: [0, 1, 2, 0, 0, 1], value: 0.5)
      m = pad(x, pads: [0, 2, 1, 0, 2, 1], mode: reflect)
      r = mul(m, m)
      e = pad(x, pads: [1, 0, 3, 1, 0, 2], mode: edge)
    }
    """,
    "lstm": """
    graph g(x: f32[2, 3, 4]) -> (y: f32[2, 3, 6], z: f32[2, 2]) {
      y = lstm(x, hidden: 3, bidirectional: true)
      z = lstm(x, hidden: 2, last: true)
    }
    """,
    "unrolled_lstm": """
    graph g(x: f32[2, 4, 3]) -> (y: f32[2, 4, 4]) {
      y = lstm(x, hidden: 2, bidirectional: true)
    }
    """,
    "cross_entropy": """
    graph g(x: f32[3, 4], target: i64[3]) -> (loss: f32[], seed: f32[3, 4]) {
      seed = mul(x, class_seed(x))
      loss = add(cross_entropy(x, target), cross_entropy(mul(x, x), target))
    }
    """,
    "batch_norm": """
    graph g(x: f32[2, 3, 2, 2]) -> (y: f32[2, 3, 2, 2], p: f32[2, 3, 1, 1]) {
      y = batch_norm(x)
      p = global_avg_pool2d(mul(x, y))
    }
    """,
    "conv2d": """
    graph g(x: f32[2, 4, 5, 6]) -> (y: f32[2, 6, 3, 3], z: f32[2, 4, 5, 6]) {
      param w: f32[6, 2, 3, 3] init zeros
      param b: f32[6] init zeros
      param v: f32[4, 4, 3, 3] init zeros
      param c: f32[4] init zeros
      y = conv2d(x, w, b, stride: 2, padding: 1, groups: 2)
      z = conv2d(x, v, c, x, padding: [1, 2], dilation: [1, 2], activation: relu)
    }
    """,
    "pooling": """
    graph g(x: f32[2, 3, 5, 6]) -> (m: f32[2, 3, 3, 3], a: f32[2, 3, 3, 4], b: f32[2, 3, 2, 2]) {
      m = max_pool2d(x, kernel: 3, stride: 2, padding: 1)
      a = avg_pool2d(x, kernel: [3, 2], stride: 2, padding: 1, ceil_mode: true, count_include_pad: false)
      b = avg_pool2d(mul(x, x), kernel: 3, stride: 2)
    }
    """,
    "batch_norm_train": """
    graph g(x: f32[3, 2, 2, 3]) -> (y: f32[3, 2, 2, 3]) {
      param w: f32[2] init ones
      param b: f32[2] init zeros
      n, mean, variance = batch_norm_train(x, w, b)
      y = mul(n, x)
    }
    """,
    // Over the last axis with a bias, and over the last two without one (bias optional).
    "layer_norm": """
    graph g(x: f32[2, 3, 4]) -> (y: f32[2, 3, 4], z: f32[2, 3, 4]) {
      param w: f32[4] init uniform(1)
      param b: f32[4] init uniform(0.5)
      param w2: f32[3, 4] init uniform(1)
      y = mul(layer_norm(x, w, b), x)
      z = layer_norm(x, w2, axis: -2, eps: 0.001)
    }
    """,
    // An odd window (ONNX's and PyTorch's) read twice, and an even one over a rank-3 input with
    // a β that takes powf.
    "lrn": """
    graph g(x: f32[2, 5, 2, 3], v: f32[2, 6, 4]) -> (y: f32[2, 5, 2, 3], z: f32[2, 6, 4]) {
      n = lrn(x, size: 3, alpha: 0.5, beta: 0.75, bias: 1.5)
      y = mul(n, add(n, x))
      z = lrn(v, size: 4, alpha: 2, beta: 0.6, bias: 0.5)
    }
    """,
    // With the ReLU folded in (`FuseBatchNormReLU`): the backward recomputes its mask from x.
    "batch_norm_train_relu": """
    graph g(x: f32[3, 2, 2, 3]) -> (y: f32[3, 2, 2, 3]) {
      param w: f32[2] init uniform(1)
      param b: f32[2] init uniform(0.5)
      r, mean, variance = batch_norm_train(x, w, b, activation: relu)
      y = mul(r, add(x, r))
    }
    """,
  ]

  /// Cases differentiated after `UnrollLSTM` (the `lstm_cell` rule and select-joining).
  static let unrolled: Set<String> = ["unrolled_lstm"]

  static func graph(_ name: String) throws -> Graph {
    let source = SourceText(fileName: "\(name).graph", text: try #require(cases[name]))
    var g = try Spec.checkedGraph(source)
    if unrolled.contains(name) {
      var m = Module(graph: g)
      #expect(UnrollLSTM().run(&m))
      g = m.graph
    }
    return g
  }

  /// Deterministic Float64 inputs and parameters (i64 inputs are class indices).
  static func values(_ g: Graph) -> (inputs: [String: Tensor], parameters: [String: Tensor]) {
    var inputs: [String: Tensor] = [:]
    for id in g.inputs {
      let v = g[id]
      let shape = v.type.shape.map { $0.staticValue ?? 1 }
      let u = DeterministicTensors.values("input:" + v.name, count: shape.reduce(1, *))
      if v.type.dtype == .i64 {
        let classes = g.values.first { $0.type.rank == 2 }?.type.shape[1].staticValue ?? 2
        inputs[v.name] = Tensor(shape: shape, storage: .i64(u.map { Int64((Double($0) + 1) / 2 * Double(classes)) }))
      } else {
        inputs[v.name] = Tensor(shape: shape, f64: u.map(Double.init))
      }
    }
    var parameters: [String: Tensor] = [:]
    for (name, t) in DeterministicTensors.parameters(of: g) {
      parameters[name] = t.dtype == .f32 ? Tensor(shape: t.shape, f64: t.doubles) : t
    }
    return (inputs, parameters)
  }

  /// The graph with one seed input per output and the gradients of `Σ output ⊙ seed` with
  /// respect to every float input and trainable parameter, as outputs `grad:NAME`.
  static func differentiated(_ g0: Graph) throws -> (graph: Graph, wrt: [String]) {
    var g = g0
    var seeds: [(of: ValueID, seed: ValueID)] = []
    for o in g0.outputs where g0[o.value].type.dtype.isFloatingPoint {
      seeds.append((o.value, g.addInput(name: "seed_" + o.name, type: g0[o.value].type)))
    }
    var wrt: [ValueID] = g0.inputs.filter { g0[$0].type.dtype.isFloatingPoint }
    wrt += g0.parameters.filter { $0.role == .trainable }.map(\.value)
    let (dg, grads) = try Differentiate.apply(to: g, seeds: seeds, wrt: wrt)
    g = dg
    for (w, d) in zip(wrt, grads) { g.outputs.append(("d_" + g0[w].name.replacingOccurrences(of: ".", with: "_"), d)) }
    return (g, wrt.map { g0[$0].name })
  }

  static func loss(_ g: Graph, _ inputs: [String: Tensor], _ parameters: [String: Tensor]) throws -> Double {
    var interpreter = ReferenceInterpreter(graph: g)
    let values = try interpreter.run(inputs: inputs, parameters: parameters)
    var total = 0.0
    for o in g.outputs where g[o.value].type.dtype.isFloatingPoint {
      let y = try #require(values[g[o.value].name]).doubles
      let s = DeterministicTensors.values("seed_" + o.name, count: y.count).map(Double.init)
      total += zip(y, s).reduce(0) { $0 + $1.0 * $1.1 }
    }
    return total
  }

  @Test(arguments: cases.keys.sorted())
  func finiteDifferences(_ name: String) throws {
    let g0 = try Self.graph(name)
    let (g, wrt) = try Self.differentiated(g0)
    #expect(Verifier.verify(g).isEmpty, "\(Verifier.verify(g))")
    // Inputs print first, so the parsed copy numbers values differently: compare the text.
    let printed = Printer.print(g)
    #expect(
      Printer.print(try Spec.checkedGraph(SourceText(fileName: "p.graph", text: printed))) == printed,
      "the differentiated graph prints and parses back")
    var (inputs, parameters) = Self.values(g0)
    for o in g0.outputs where g0[o.value].type.dtype.isFloatingPoint {
      let n = g0[o.value].type.shape.reduce(1) { $0 * ($1.staticValue ?? 1) }
      inputs["seed_" + o.name] = Tensor(
        shape: g0[o.value].type.shape.map { $0.staticValue ?? 1 },
        f64: DeterministicTensors.values("seed_" + o.name, count: n).map(Double.init))
    }
    var interpreter = ReferenceInterpreter(graph: g)
    let values = try interpreter.run(inputs: inputs, parameters: parameters)
    let h = 1e-6
    for w in wrt {
      let output = try #require(g.outputs.first { $0.name == "d_" + w.replacingOccurrences(of: ".", with: "_") })
      let analytic = try #require(values[g[output.value].name]).doubles
      let isInput = inputs[w] != nil
      let base = try #require(isInput ? inputs[w] : parameters[w])
      var baseValues = base.doubles
      for i in baseValues.indices {
        let saved = baseValues[i]
        var losses: [Double] = []
        for delta in [h, -h] {
          baseValues[i] = saved + delta
          let t = Tensor(shape: base.shape, f64: baseValues)
          var fin = inputs, fpar = parameters
          if isInput { fin[w] = t } else { fpar[w] = t }
          losses.append(try Self.loss(g0, fin, fpar))
        }
        baseValues[i] = saved
        let numeric = (losses[0] - losses[1]) / (2 * h)
        let error = abs(numeric - analytic[i])
        #expect(
          error <= 1e-6 * max(1, abs(numeric)), "\(name): d/d\(w)[\(i)] analytic \(analytic[i]) numeric \(numeric)")
      }
      if isInput { inputs[w] = base } else { parameters[w] = base }
    }
  }

  /// Every op that has a gradient rule (or is differentiated through its unrolled form) is
  /// exercised by a finite-difference case.
  @Test func coverage() throws {
    var seen = Set<Op>()
    for name in Self.cases.keys {
      let g = try Self.graph(name)
      for node in g.nodes { seen.insert(node.op) }
    }
    let differentiable = Op.allCases.filter { $0.gradientKind == .rule || $0.gradientKind == .unrollFirst }
    let missing = differentiable.filter { !seen.contains($0) }
    #expect(missing.isEmpty, "ops with a gradient rule but no finite-difference check: \(missing.map(\.name))")
  }

  /// `maximum` and `minimum` give a tie's gradient to their first operand (composites choose
  /// their gradient at a kink by the order of the operands): where `a` and `b` are equal, all
  /// of it to `a` in `maximum(a, b)` and to `b` in `minimum(b, a)`.
  @Test func tiesGoToTheFirstOperand() throws {
    let g = try Spec.checkedGraph(
      SourceText(
        fileName: "t.graph",
        text: """
          graph g(a: f32[4], b: f32[4]) -> (y: f32[4], z: f32[4]) {
            y = maximum(a, b)
            z = minimum(b, a)
          }
          """))
    let (dg, _) = try Self.differentiated(g)
    var interpreter = ReferenceInterpreter(graph: dg)
    let values = try interpreter.run(inputs: [
      "a": Tensor(shape: [4], f64: [1, 2, 3, 4]), "b": Tensor(shape: [4], f64: [1, 0, 5, 4]),
      "seed_y": Tensor(shape: [4], f64: [1, 1, 1, 1]), "seed_z": Tensor(shape: [4], f64: [10, 10, 10, 10]),
    ])
    func gradient(_ name: String) throws -> [Double] {
      let output = try #require(dg.outputs.first { $0.name == name })
      return try #require(values[dg[output.value].name]).doubles
    }
    #expect(try gradient("d_a") == [1, 1, 10, 1])
    #expect(try gradient("d_b") == [10, 10, 1, 10])
  }

  /// The composites' gradients at their kinks, against PyTorch 2's autograd in float64 at the
  /// same points (`F.leaky_relu`, `torch.clamp`, `F.relu6`, `F.hardsigmoid`, `F.hardswish`,
  /// `abs`): each composite's operand order takes PyTorch's side. `global_max_pool2d` shares
  /// a tied maximum's gradient where `F.adaptive_max_pool2d` gives it all to the first.
  @Test func kinksFollowPyTorch() throws {
    let g = try Spec.checkedGraph(
      SourceText(
        fileName: "k.graph",
        text: """
          graph g(l: f32[3], c: f32[4], r: f32[4], h: f32[3], s: f32[3], a: f32[1], m: f32[1, 1, 2, 2]) -> (
              l1: f32[3], l2: f32[3], c1: f32[4], r1: f32[4], h1: f32[3], s1: f32[3], a1: f32[1], m1: f32[1, 1, 1, 1]) {
            l1 = leaky_relu(l, alpha: 0.1)
            l2 = leaky_relu(l, alpha: 1.5)
            c1 = clip(c, min: -0.5, max: 0.25)
            r1 = relu6(r)
            h1 = hard_sigmoid(h)
            s1 = hard_swish(s)
            a1 = abs(a)
            m1 = global_max_pool2d(m)
          }
          """))
    var dg = g
    var seeds: [(of: ValueID, seed: ValueID)] = []
    for o in g.outputs { seeds.append((o.value, dg.addInput(name: "seed_" + o.name, type: g[o.value].type))) }
    let (differentiated, grads) = try Differentiate.apply(to: dg, seeds: seeds, wrt: g.inputs)
    dg = differentiated
    for (input, grad) in zip(g.inputs, grads) { dg.outputs.append(("d_" + g[input].name, grad)) }
    var inputs: [String: Tensor] = [
      "l": Tensor(shape: [3], f64: [0, -1, 1]), "c": Tensor(shape: [4], f64: [-0.5, 0.25, 0, 1]),
      "r": Tensor(shape: [4], f64: [0, 6, 3, 7]), "h": Tensor(shape: [3], f64: [-3, 3, 0]),
      "s": Tensor(shape: [3], f64: [-3, 3, 0]), "a": Tensor(shape: [1], f64: [0]),
      "m": Tensor(shape: [1, 1, 2, 2], f64: [1, 1, 0, 1]),
    ]
    for o in g.outputs {
      let shape = g[o.value].type.shape.map { $0.staticValue ?? 1 }
      inputs["seed_" + o.name] = Tensor(shape: shape, f64: [Double](repeating: 1, count: shape.reduce(1, *)))
    }
    var interpreter = ReferenceInterpreter(graph: dg)
    let values = try interpreter.run(inputs: inputs)
    func gradient(_ input: String) throws -> [Double] {
      let output = try #require(dg.outputs.first { $0.name == "d_" + input })
      return try #require(values[dg[output.value].name]).doubles
    }
    // l gets both leaky ReLUs' gradients: PyTorch gives [0.1, 0.1, 1] and [1.5, 1.5, 1].
    let expected: [String: [Double]] = [
      "l": [1.6, 1.6, 2], "c": [1, 1, 1, 0], "r": [0, 0, 1, 0], "h": [0, 0, 1.0 / 6], "s": [0, 1, 0.5], "a": [0],
      "m": [1.0 / 3, 1.0 / 3, 0, 1.0 / 3],
    ]
    for (input, want) in expected.sorted(by: { $0.key < $1.key }) {
      let got = try gradient(input)
      #expect(got.count == want.count && zip(got, want).allSatisfy { abs($0 - $1) < 1e-12 }, "d\(input): \(got)")
    }
  }

  /// An op without a gradient rule on the path is a diagnostic at its spec location.
  @Test func missingRule() throws {
    let text = """
      graph g(x: f32[3], d: f32[3]) -> (y: f32[3]) {
        r = relu_backward(d, x)
        y = tanh(r)
      }
      """
    let g = try Spec.checkedGraph(SourceText(fileName: "m.graph", text: text))
    let seed = try #require(g.value(named: "d"))
    let y = try #require(g.value(named: "y"))
    let x = try #require(g.value(named: "x"))
    #expect {
      _ = try Differentiate.apply(to: g, seeds: [(y, seed)], wrt: [x])
    } throws: { error in
      "\(error)"
        == "m.graph:2:7: error: differentiate: relu_backward has no gradient rule, but the gradient must pass through 'r'"
    }
    // Not on the path: no error.
    _ = try Differentiate.apply(to: g, seeds: [(y, seed)], wrt: [try #require(g.value(named: "r"))])
  }

  /// Backpropagation through time keeps the hoisted input projection: the input-weight
  /// gradient of each direction is one `linear_backward_weight` over all steps.
  @Test func lstmInputWeightIsOneGEMM() throws {
    let g = try Spec.checkedGraph(
      SourceText(
        fileName: "l.graph",
        text: """
          graph g(x: f32[B, 6, 4]) -> (logits: f32[B, 3]) {
            lstm = lstm(x, hidden: 5, bidirectional: true)
            logits = linear(select(lstm, axis: 1, index: -1), out: 3)
          }
          """), bindings: ["B": 2])
    let program = try TrainingProgram.make(from: g, logits: "logits")
    let t = program.graph
    let x = try #require(t.inputs.first)
    let ihGEMMs = t.nodes.filter { $0.op == .linearBackwardWeight && $0.operands[1] == x }
    #expect(ihGEMMs.count == 1, "one weight_ih GEMM for the forward direction, over all 6 steps")
    #expect(ihGEMMs.first.map { t[$0.operands[0]].type.shape } == [2, 6, 20])
    // The reverse direction, read only at the last step, projects (and differentiates) that step alone.
    let lastStep = t.nodes.filter {
      $0.op == .linearBackwardWeight && t[$0.operands[1]].name.hasSuffix(".input5_reverse")
    }
    #expect(lastStep.count == 1)
    // The recurrent weight of the forward direction: the six steps' products as one GEMM.
    let hhGEMMs = t.nodes.filter { $0.op == .linearBackwardWeight && t[$0.operands[1]].type.shape == [2, 6, 5] }
    #expect(hhGEMMs.count == 1)
    // In all: W_ih ×2, W_hh ×2 (the reverse direction's single step alone), the classifier.
    #expect(t.nodes.filter { $0.op == .linearBackwardWeight }.count == 5)
    // The forward direction runs 6 steps; the reverse, read only at the last step, one.
    #expect(t.nodes.filter { $0.op == .lstmCellBackward }.count == 7)
    #expect(t.nodes.filter { $0.op == .lstmCell }.count == 7)
    #expect(program.gradients.map(\.parameter) == g.parameters.filter { $0.role == .trainable }.map(\.name))
  }
}
