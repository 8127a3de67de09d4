import Foundation
import GlassboxIR

/// Taps that run the model again on copies of an input (Integrated Gradients, SmoothGrad,
/// VarGrad): the copies are stacked along the batch axis and the forward subgraph from the
/// input to the class scores is grafted once more at that batch size, in the same program.
///
/// ```
/// x: [N, …]                                 X = stack_s(copy_s(x))            [S·N, …]  (copy s of every example,
///                                           logits' = forward(X)              [S·N, C]   sample-major)
///                                           g = ∂⟨logits', tile(seed)⟩/∂X     (Differentiate)
///                                           ig = (x − baseline) ⊙ Σ_s w_s g_s;  smoothgrad = mean_s g_s;
///                                           vargrad = mean_s g_s² − (mean_s g_s)²
/// ```
///
/// The grafted forward comes from the graph bound again with its batch `S` times larger
/// (`Rebatcher`), so reshapes that carry the batch (`[B*T, …]` on a CNN-LSTM) are sized as the
/// spec writes them. Parameters are shared by name; other inputs are tiled. The class of every
/// copy is the class of its example: the one given, the target input's, or the prediction on
/// the unperturbed input.
extension LowerTaps {
  /// The graph being lowered, bound again with its batch `factor` times larger.
  public typealias Rebatcher = (_ factor: Int) throws -> Graph

  /// A `Rebatcher` for `unbound` bound with `bindings`: the batch is the symbol on the first
  /// axis of the graph's first input, and its binding is multiplied.
  public static func rebatcher(unbound: Graph, bindings: [String: Int]) -> Rebatcher {
    { factor in
      guard let first = unbound.inputs.first, let axis = unbound[first].type.shape.first else {
        throw Error("tap: \(unbound.name) has no input with a batch axis to stack copies along")
      }
      guard axis.coefficient == 1, axis.symbols.count == 1, let size = bindings[axis.symbols[0]] else {
        throw Error(
          "tap: the batch axis of input '\(unbound[first].name)' is \(axis), not a symbol; copies of the "
            + "input are stacked along it, so it must be one (e.g. B)")
      }
      var scaled = bindings
      scaled[axis.symbols[0]] = size * factor
      do {
        return try unbound.bound(scaled)
      } catch {
        throw Error("tap: \(unbound.name) does not bind at \(factor)× its batch: \(error)")
      }
    }
  }

  /// Gauss–Legendre nodes and weights on [-1, 1], ascending (numpy's `leggauss`), by Newton's
  /// method on the Legendre recurrence.
  public static func gaussLegendre(_ n: Int) -> (nodes: [Double], weights: [Double]) {
    var nodes = [Double](repeating: 0, count: n), weights = [Double](repeating: 0, count: n)
    for i in 0..<(n + 1) / 2 {
      var x = cos(Double.pi * (Double(i) + 0.75) / (Double(n) + 0.5))
      var slope = 1.0
      for _ in 0..<100 {
        var (previous, p) = (1.0, x)  // P_{k-1}(x), P_k(x) from k = 1
        if n > 1 {
          for k in 2...n { (previous, p) = (p, ((2 * Double(k) - 1) * x * p - (Double(k) - 1) * previous) / Double(k)) }
        }
        slope = Double(n) * (x * p - previous) / (x * x - 1)
        let step = p / slope
        x -= step
        if abs(step) <= 1e-15 { break }
      }
      nodes[i] = -x
      nodes[n - 1 - i] = x
      weights[i] = 2 / ((1 - x * x) * slope * slope)
      weights[n - 1 - i] = weights[i]
    }
    return (nodes, weights)
  }

  /// Captum's points on the path from the baseline (0) to the input (1) and their weights, by
  /// `approximation_parameters(method)`.
  public static func integrationPoints(_ rule: IntegrationRule, steps n: Int) -> (alphas: [Double], weights: [Double]) {
    func linspace(_ a: Double, _ b: Double) -> [Double] {
      n == 1 ? [a] : (0..<n).map { a + (b - a) * Double($0) / Double(n - 1) }
    }
    switch rule {
    case .gausslegendre:
      let (x, w) = gaussLegendre(n)
      return (x.map { 0.5 * (1 + $0) }, w.map { 0.5 * $0 })
    case .riemann_left: return (linspace(0, 1 - 1 / Double(n)), Array(repeating: 1 / Double(n), count: n))
    case .riemann_right: return (linspace(1 / Double(n), 1), Array(repeating: 1 / Double(n), count: n))
    case .riemann_middle:
      return (linspace(1 / (2 * Double(n)), 1 - 1 / (2 * Double(n))), Array(repeating: 1 / Double(n), count: n))
    case .riemann_trapezoid:
      var w = Array(repeating: 1 / Double(n), count: n)
      w[0] /= 2
      w[n - 1] /= 2
      return (linspace(0, 1), w)
    }
  }

  /// SmoothGrad's noise, `[samples, count]`: `stdev` times standard normal draws (Box–Muller on
  /// SplitMix64 seeded with `seed` and the stream name `smoothgrad`), sample by sample.
  public static func noise(seed: Int, samples: Int, count: Int, stdev: Double) -> [Float] {
    var rng = SplitMix64(seed: UInt64(seed), name: "smoothgrad")
    func unit() -> Double { Double(rng.next() >> 11) * 0x1p-53 }  // [0, 1), the top 53 bits
    return (0..<(samples * count)).map { _ in
      let u1 = 1 - unit(), u2 = unit()
      return Float(stdev * (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
  }

  /// Integrated Gradients, SmoothGrad or VarGrad of `tap` (over a graph input): the attribution
  /// with the input's type. `seed` is the class seed `[N, C]` of the unperturbed examples.
  static func attributeInput(
    _ tap: Tap, seed: ValueID, logits: ValueID, logitsName: String, builder b: inout Builder,
    options: Options
  ) throws -> ValueID {
    guard let rebatch = options.rebatch else {
      throw Error(
        "tap \(tap.name): \(tap.kind.methodName) runs copies of the input, and this caller cannot "
          + "rebind the graph at a larger batch")
    }
    if tap.kind == .occlusion {
      return try occlusion(tap, seed: seed, logits: logits, logitsName: logitsName, rebatch: rebatch, builder: &b)
    }
    guard let differentiate = options.differentiate else {
      throw Error("tap \(tap.name): \(tap.kind.rawValue) needs gradients, and this build has no differentiation")
    }
    let name = tap.name, x = tap.operands[0]
    let shape = b.graph[x].type.shape.map { $0.staticValue ?? 0 }
    let n = shape[0], width = shape.dropFirst().reduce(1, *)
    let inputName = b.graph[x].name

    // Copy s of every example: `offset_s + scale_s ⊙ x`, one row of `offsets` and `scales` per copy.
    let copies: Int, chunk: Int
    var offsets: [Float], scales: [Float]  // [copies, width] and [copies] (scales per copy)
    var pathWeights: [Double] = []
    var baseline = 0.0
    switch tap.kind {
    case .ig:
      let o = IntegratedGradientsTapOptions(verified: tap.options)
      let (alphas, weights) = integrationPoints(o.method, steps: o.steps)
      (copies, chunk, baseline, pathWeights) = (o.steps, o.batch, o.baseline, weights)
      // baseline + α (x − baseline) = (1 − α) baseline + α x
      offsets = alphas.flatMap { a in [Float](repeating: Float((1 - a) * o.baseline), count: width) }
      scales = alphas.map { Float($0) }
    case .smoothgrad, .vargrad:
      let o = NoiseTapOptions(verified: tap.options)
      (copies, chunk) = (o.samples, o.batch)
      offsets = noise(seed: o.seed, samples: o.samples, count: width, stdev: o.stdev)
      scales = [Float](repeating: 1, count: o.samples)
    case .activation, .attention, .hidden, .gradient, .saliency, .gradcam, .gradcampp, .cam, .layercam, .xgradcam,
      .hirescam, .occlusion, .scorecam, .eigencam:
      preconditionFailure("tap \(name): \(tap.kind.rawValue) is not a gradient over copies")
    }
    let row = b.node(.reshape, [x], ReshapeAttributes(shape: [1, n, width].map { Dim($0) }), name: "tap.\(name).row")

    // Per pass of `k` copies: Σ_s w_s g_s (and Σ_s g_s² for VarGrad), each [N, width].
    var total: ValueID?, squares: ValueID?
    try b.passes(copies: copies, batch: chunk, rebatch: rebatch, name: name) { b, first, k, copyGraph, pass in
      let offset = b.buffer(
        Array(offsets[(first * width)..<((first + k) * width)]), shape: [k, 1, width],
        name: pass + ".offsets")
      let scale = b.buffer(Array(scales[first..<(first + k)]), shape: [k, 1, 1], name: pass + ".scales")
      let stacked = b.node(.add, [b.node(.mul, [row, scale], name: pass + ".scaled"), offset], name: pass + ".copies")
      let input = b.node(
        .reshape, [stacked], ReshapeAttributes(shape: ([k * n] + shape.dropFirst()).map { Dim($0) }),
        name: pass + ".input")
      let logits = try b.graft(copyGraph, input: inputName, stacked: input, output: logitsName, copies: k, name: pass)
      let seeds = b.tile(seed, times: k, name: pass + ".seed")
      let (graph, grads) = try differentiate(b.graph, [(logits, seeds)], [input])
      b.graph = graph
      let g = b.node(
        .reshape, [grads[0]], ReshapeAttributes(shape: [k, n, width].map { Dim($0) }), name: pass + ".grads")
      let weighted: ValueID
      if tap.kind == .ig {
        let w = b.buffer(pathWeights[first..<(first + k)].map { Float($0) }, shape: [k, 1, 1], name: pass + ".weights")
        weighted = b.node(.mul, [g, w], name: pass + ".weighted")
      } else {
        weighted = g
      }
      let sum = b.node(.sum, [weighted], ReduceAttributes(axes: [0], keepdims: false), name: pass + ".sum")
      total = total.map { b.node(.add, [$0, sum], name: pass + ".total") } ?? sum
      if tap.kind == .vargrad {
        let sq = b.node(
          .sum, [b.node(.mul, [g, g], name: pass + ".g2")], ReduceAttributes(axes: [0], keepdims: false),
          name: pass + ".sum2")
        squares = squares.map { b.node(.add, [$0, sq], name: pass + ".total2") } ?? sq
      }
    }
    guard var result = total else { throw Error("tap \(name): no copies to run") }
    switch tap.kind {
    case .ig:
      let flat = b.node(.reshape, [x], ReshapeAttributes(shape: [n, width].map { Dim($0) }), name: "tap.\(name).flat")
      let difference = b.node(
        .sub, [flat, b.constant(baseline, name: "tap.\(name).baseline")], name: "tap.\(name).difference")
      result = b.node(.mul, [result, difference], name: "tap.\(name).attribution")
    case .smoothgrad, .vargrad:
      let inverse = b.constant(1 / Double(copies), name: "tap.\(name).inverse")
      result = b.node(.mul, [result, inverse], name: "tap.\(name).mean")
      if tap.kind == .vargrad, let squares {
        // Captum's VarGrad: E[g²] − E[g]².
        let meanSquare = b.node(.mul, [squares, inverse], name: "tap.\(name).mean_square")
        result = b.node(
          .sub, [meanSquare, b.node(.mul, [result, result], name: "tap.\(name).square_mean")],
          name: "tap.\(name).variance")
      }
    case .activation, .attention, .hidden, .gradient, .saliency, .gradcam, .gradcampp, .cam, .layercam, .xgradcam,
      .hirescam, .occlusion, .scorecam, .eigencam:
      break
    }
    return b.node(.reshape, [result], ReshapeAttributes(shape: shape.map { Dim($0) }), name: "tap.\(name).attribution")
  }
}

extension LowerTaps {
  /// Occlusion as Captum computes it: for each window position p (every channel; each frame of
  /// a clip on its own), the copy `x ⊙ (1 − M_p) + baseline · M_p`; the attribution of an
  /// element is the mean over the windows covering it of the class score's drop,
  /// `Σ_p (y(x) − y(copy_p)) M_p / Σ_p M_p` (0 where no window covers it).
  static func occlusion(
    _ tap: Tap, seed: ValueID, logits: ValueID, logitsName: String, rebatch: Rebatcher,
    builder b: inout Builder
  ) throws -> ValueID {
    let o = OcclusionTapOptions(verified: tap.options)
    let name = tap.name, x = tap.operands[0]
    let shape = b.graph[x].type.shape.map { $0.staticValue ?? 0 }
    let rank = shape.count, n = shape[0]
    let (height, width) = (shape[rank - 2], shape[rank - 1])
    let step = o.stride ?? o.window
    let rows = (height - o.window.h) / step.h + 1, columns = (width - o.window.w) / step.w + 1
    let frames = rank == 5 ? shape[1] : 1
    // The masks' axes: an example's, with the colour channels (axis rank − 3 of 4 or more) as 1.
    var maskAxes = Array(shape.dropFirst())
    if rank >= 4 { maskAxes[rank - 4] = 1 }
    let maskWidth = maskAxes.reduce(1, *), plane = height * width
    let positions = frames * rows * columns
    var masks = [Float](repeating: 0, count: positions * maskWidth)
    var count = [Float](repeating: 0, count: maskWidth)
    for t in 0..<frames {
      for i in 0..<rows {
        for j in 0..<columns {
          let p = (t * rows + i) * columns + j
          for y in (i * step.h)..<(i * step.h + o.window.h) {
            for x in (j * step.w)..<(j * step.w + o.window.w) {
              masks[p * maskWidth + t * plane + y * width + x] = 1
              count[t * plane + y * width + x] += 1
            }
          }
        }
      }
    }
    let inverseCount = count.map { $0 > 0 ? 1 / $0 : 0 }
    let score = b.node(
      .sum, [b.node(.mul, [logits, seed], name: "tap.\(name).seeded")], ReduceAttributes(axes: [1], keepdims: false),
      name: "tap.\(name).score")
    let original = b.node(
      .reshape, [score], ReshapeAttributes(shape: [1, n].map { Dim($0) }), name: "tap.\(name).original")
    let row = b.node(.reshape, [x], ReshapeAttributes(shape: ([1] + shape).map { Dim($0) }), name: "tap.\(name).row")
    var total: ValueID?
    try b.passes(copies: positions, batch: o.batch, rebatch: rebatch, name: name) { b, first, k, copyGraph, pass in
      let mask = b.buffer(
        Array(masks[(first * maskWidth)..<((first + k) * maskWidth)]), shape: [k, 1] + maskAxes,
        name: pass + ".masks")
      let keep = b.node(.sub, [b.constant(1, name: pass + ".one"), mask], name: pass + ".keep")
      var copies = b.node(.mul, [row, keep], name: pass + ".kept")
      if o.baseline != 0 {
        copies = b.node(
          .add,
          [copies, b.node(.mul, [mask, b.constant(o.baseline, name: pass + ".baseline")], name: pass + ".filled")],
          name: pass + ".occluded")
      }
      let input = b.node(
        .reshape, [copies], ReshapeAttributes(shape: ([k * n] + shape.dropFirst()).map { Dim($0) }),
        name: pass + ".input")
      let scores = try b.classScores(
        of: copyGraph, input: b.graph[x].name, stacked: input, logits: logitsName, seed: seed, copies: k,
        examples: n, name: pass)
      let drop = b.node(.sub, [original, scores], name: pass + ".drop")  // [k, N]
      let flatMasks = b.node(
        .reshape, [mask], ReshapeAttributes(shape: [k, maskWidth].map { Dim($0) }), name: pass + ".flat_masks")
      let spread = b.node(
        .matmul,
        [
          b.node(.transpose, [drop], TransposeAttributes(perm: [1, 0]), name: pass + ".drop_t"),
          flatMasks,
        ], name: pass + ".spread")  // [N, maskWidth]
      total = total.map { b.node(.add, [$0, spread], name: pass + ".total") } ?? spread
    }
    guard let total else { throw Error("tap \(name): no window fits") }
    let averaged = b.node(
      .mul, [total, b.buffer(inverseCount, shape: [1, maskWidth], name: "tap.\(name).inverse_count")],
      name: "tap.\(name).averaged")
    var attribution = b.node(
      .reshape, [averaged], ReshapeAttributes(shape: ([n] + maskAxes).map { Dim($0) }),
      name: "tap.\(name).attribution")
    if rank >= 4 {
      var ones = [Int](repeating: 1, count: rank)
      ones[rank - 3] = shape[rank - 3]
      attribution = b.node(
        .mul, [attribution, b.constant(1, shape: ones, name: "tap.\(name).channels")],
        name: "tap.\(name).every_channel")
    }
    return attribution
  }

  /// Score-CAM's channel weights `[N, K, 1, 1]`, as pytorch-grad-cam computes them: each
  /// channel of the feature map upsampled to the image (bilinear, `align_corners=True`) and
  /// min-max normalised (`+ 1e-8`) masks the image; the class scores of the masked images
  /// (grafted forwards of `batch` copies each) are softmaxed over the channels.
  static func scoreCAMWeights(
    _ tap: Tap, seed: ValueID, logitsName: String, builder b: inout Builder,
    options: Options
  ) throws -> ValueID {
    guard let rebatch = options.rebatch else {
      throw Error(
        "tap \(tap.name): \(tap.kind.methodName) runs copies of the input, and this caller cannot "
          + "rebind the graph at a larger batch")
    }
    let name = tap.name
    let f = b.graph[tap.operands[0]].type.shape.map { $0.staticValue ?? 0 }
    let (n, channels) = (f[0], f[1])
    guard let image = b.graph.imageInput, b.graph[image].type.rank == 4 else {
      throw Error("tap \(name): Score-CAM needs an image input [N, C, H, W] to mask")
    }
    let s = b.graph[image].type.shape.map { $0.staticValue ?? 0 }
    let up = b.upsample(tap.operands[0], to: (s[2], s[3]), name: "tap.\(name).masks_upsampled", alignCorners: true)
    let masks = b.minMax(up, axes: [2, 3], epsilon: 1e-8, name: "tap.\(name).masks")  // [N, K, H, W]
    let byChannel = b.node(
      .transpose, [masks], TransposeAttributes(perm: [1, 0, 2, 3]), name: "tap.\(name).by_channel")
    let row = b.node(.reshape, [image], ReshapeAttributes(shape: [1] + s.map { Dim($0) }), name: "tap.\(name).row")
    let o = ScoreCAMTapOptions(verified: tap.options)
    var scores: [ValueID] = []
    try b.passes(copies: channels, batch: o.batch, rebatch: rebatch, name: name) { b, first, k, copyGraph, pass in
      let part = b.node(
        .slice, [byChannel], SliceAttributes(axis: 0, start: first, end: first + k, step: 1), name: pass + ".masks")
      let shaped = b.node(
        .reshape, [part], ReshapeAttributes(shape: [k, n, 1, s[2], s[3]].map { Dim($0) }), name: pass + ".shaped")
      let copies = b.node(
        .reshape, [b.node(.mul, [row, shaped], name: pass + ".masked")],
        ReshapeAttributes(shape: [k * n, s[1], s[2], s[3]].map { Dim($0) }), name: pass + ".input")
      scores.append(
        try b.classScores(
          of: copyGraph, input: b.graph[image].name, stacked: copies, logits: logitsName, seed: seed, copies: k,
          examples: n, name: pass))
    }
    let all =
      scores.count == 1 ? scores[0] : b.node(.concat, scores, ConcatAttributes(axis: 0), name: "tap.\(name).scores")
    // [N, K]
    let perExample = b.node(.transpose, [all], TransposeAttributes(perm: [1, 0]), name: "tap.\(name).scores_t")
    let weights = b.node(.softmax, [perExample], SoftmaxAttributes(axis: 1), name: "tap.\(name).softmax")
    return b.node(
      .reshape, [weights], ReshapeAttributes(shape: [n, channels, 1, 1].map { Dim($0) }), name: "tap.\(name).weights")
  }
}

extension LowerTaps.Builder {
  /// A buffer holding `values` (row-major, `shape`), stored with the module's weights.
  mutating func buffer(_ values: [Float], shape: [Int], name: String) -> ValueID {
    let pname = fresh(name)
    let id = graph.addParameter(
      name: pname, type: TensorType(.f32, shape.map { Dim($0) }), role: .buffer, initializer: .zeros)
    weights[pname] = Tensor(shape: shape, f32: values)
    return id
  }

  /// `[N, …]` → `[k·N, …]`: `k` copies of `x` one after another.
  mutating func tile(_ x: ValueID, times k: Int, name: String) -> ValueID {
    let shape = graph[x].type.shape.map { $0.staticValue ?? 0 }
    let count = shape.reduce(1, *)
    let row = node(.reshape, [x], ReshapeAttributes(shape: [1, count].map { Dim($0) }), name: name + ".row")
    let repeated = node(.mul, [row, constant(1, shape: [k, 1], name: name + ".ones")], name: name + ".repeated")
    return node(
      .reshape, [repeated], ReshapeAttributes(shape: ([k * shape[0]] + shape.dropFirst()).map { Dim($0) }),
      name: name)
  }

  /// Builds the passes that run `copies` copies of an input, `batch` a pass (0: all in one):
  /// `body(builder, first, k, graph, pass)` builds the pass of copies `first..<first + k` with
  /// `graph`, the model bound at k times the batch (rebound once per pass size), and `pass`,
  /// the prefix of its value names.
  mutating func passes(
    copies: Int, batch: Int, rebatch: LowerTaps.Rebatcher, name: String,
    _ body: (inout Self, _ first: Int, _ k: Int, _ graph: Graph, _ pass: String) throws -> Void
  ) throws {
    let perPass = batch == 0 ? copies : min(batch, copies)
    var graphs: [Int: Graph] = [:]
    var first = 0
    while first < copies {
      let k = min(perPass, copies - first)
      let graph: Graph
      if let g = graphs[k] { graph = g } else { graph = try rebatch(k); graphs[k] = graph }
      try body(&self, first, k, graph, "tap.\(name).pass\(first)")
      first += k
    }
  }

  /// The class score (`Σ logits ⊙ seed` over the classes) of each of `copies` stacked copies of
  /// `examples` examples, `[copies, examples]`: `copy`'s forward grafted onto `stacked`.
  mutating func classScores(
    of copy: Graph, input: String, stacked: ValueID, logits: String, seed: ValueID, copies k: Int,
    examples n: Int, name pass: String
  ) throws -> ValueID {
    let copyLogits = try graft(copy, input: input, stacked: stacked, output: logits, copies: k, name: pass)
    let seeded = node(.mul, [copyLogits, tile(seed, times: k, name: pass + ".seed")], name: pass + ".seeded")
    return node(
      .reshape, [node(.sum, [seeded], ReduceAttributes(axes: [1], keepdims: false), name: pass + ".score")],
      ReshapeAttributes(shape: [k, n].map { Dim($0) }), name: pass + ".scores")
  }

  /// Adds the nodes of `copy` (the graph bound at `copies` times the batch) that its output
  /// `output` depends on, reading `stacked` for its input `input`, this graph's parameters by
  /// name and its other inputs tiled; returns the grafted output.
  mutating func graft(
    _ copy: Graph, input: String, stacked: ValueID, output: String, copies: Int,
    name: String
  ) throws -> ValueID {
    guard let out = copy.outputs.first(where: { $0.name == output })?.value else {
      throw LowerTaps.Error("tap: the rebound graph has no output '\(output)'")
    }
    var needed = Set([out.index])
    for node in copy.nodes.reversed() where node.results.contains(where: { needed.contains($0.index) }) {
      for o in node.operands { needed.insert(o.index) }
    }
    var map: [Int: ValueID] = [:]
    for id in copy.inputs where needed.contains(id.index) {
      let v = copy[id]
      if v.name == input {
        map[id.index] = stacked
      } else {
        guard let own = graph.value(named: v.name) else { throw LowerTaps.Error("tap: no input '\(v.name)' to tile") }
        map[id.index] = tile(own, times: copies, name: "\(name).\(v.name)")
      }
    }
    for p in copy.parameters where needed.contains(p.value.index) {
      guard let own = graph.parameters.first(where: { $0.name == p.name }), own.type == p.type else {
        throw LowerTaps.Error("tap: parameter '\(p.name)' differs in the rebound graph")
      }
      map[p.value.index] = own.value
    }
    for node in copy.nodes where node.results.contains(where: { needed.contains($0.index) }) {
      let operands = try node.operands.map { o -> ValueID in
        guard let m = map[o.index] else { throw LowerTaps.Error("tap: '\(copy[o].name)' is not grafted") }
        return m
      }
      let results = node.results.map { (fresh("\(name).\(copy[$0].name)"), copy[$0].type) }
      let ids = graph.addNode(node.op, operands: operands, attributes: node.attributes, results: results)
      for (r, id) in zip(node.results, ids) { map[r.index] = id }
    }
    guard let grafted = map[out.index] else { throw LowerTaps.Error("tap: output '\(output)' is not grafted") }
    return grafted
  }
}

extension LowerTaps.Builder {
  /// Eigen-CAM's map `[N, h, w]` of a feature map `[N, K, h, w]` (pytorch-grad-cam's
  /// `get_2d_projection`): the positions' activation vectors `X` (`[hw, K]`), centred per
  /// channel, projected on their first principal component `v₁`. The smaller of the two
  /// scatter matrices `XᵀX` (`[K, K]`) and `XXᵀ` (`[hw, hw]`) is squared `iterations` times
  /// (each product rescaled by its largest magnitude), which leaves it the projector on its top
  /// eigenvector, `M^(2^iterations)`; applied to a fixed start it gives `v₁` (or `u₁`, and
  /// `v₁ ∝ Xᵀu₁`). `v₁` is made unit with a square root by Newton's method
  /// (`y ← (y + s/y)/2` from `(1 + s)/2`, `s ∈ [1, K]` once its largest magnitude is 1). The
  /// SVD's sign is arbitrary (pytorch-grad-cam keeps LAPACK's); the projection is signed here to
  /// correlate positively with the mean activation over channels.
  mutating func eigenProjection(_ a: ValueID, iterations: Int, name: String) -> ValueID {
    let f = graph[a].type.shape.map { $0.staticValue ?? 0 }
    let (n, k, h, w) = (f[0], f[1], f[2], f[3])
    func reshape(_ v: ValueID, _ shape: [Int], _ suffix: String) -> ValueID {
      node(.reshape, [v], ReshapeAttributes(shape: shape.map { Dim($0) }), name: name + suffix)
    }
    func magnitude(_ v: ValueID, _ suffix: String) -> ValueID {
      node(
        .add,
        [
          node(.relu, [v], name: name + suffix + ".positive"),
          node(
            .relu,
            [node(.mul, [v, constant(-1, name: name + suffix + ".minus_one")], name: name + suffix + ".negated")],
            name: name + suffix + ".negative"),
        ], name: name + suffix)
    }
    /// `v / (max |v| over axes + 1e-30)`.
    func rescaled(_ v: ValueID, axes: [Int], _ suffix: String) -> ValueID {
      let largest = node(
        .max, [magnitude(v, suffix + ".magnitude")], ReduceAttributes(axes: axes, keepdims: true),
        name: name + suffix + ".largest")
      let guarded = node(
        .add, [largest, constant(1e-30, name: name + suffix + ".tiny")], name: name + suffix + ".scale")
      return node(.div, [v, guarded], name: name + suffix)
    }
    let flat = reshape(a, [n, k, h * w], ".flat")
    let centred = node(
      .sub, [flat, node(.mean, [flat], ReduceAttributes(axes: [2], keepdims: true), name: name + ".channel_mean")],
      name: name + ".centred")  // Xᵀ: [N, K, hw]
    // X: [N, hw, K]
    let positions = node(.transpose, [centred], TransposeAttributes(perm: [0, 2, 1]), name: name + ".positions")
    let byPositions = h * w < k
    let side = byPositions ? h * w : k
    var m =
      byPositions
      ? node(.batchMatmul, [positions, centred], name: name + ".scatter")  // XXᵀ: [N, hw, hw]
      : node(.batchMatmul, [centred, positions], name: name + ".scatter")  // XᵀX: [N, K, K]
    m = rescaled(m, axes: [1, 2], ".scatter_scaled")
    for step in 0..<iterations {
      m = rescaled(node(.batchMatmul, [m, m], name: name + ".square\(step)"), axes: [1, 2], ".power\(step)")
    }
    let start = (0..<(n * side)).map { i in Float(1 + 0.5 * sin(Double(i % side) + 1)) }
    var v = node(.batchMatmul, [m, buffer(start, shape: [n, side, 1], name: name + ".start")], name: name + ".top")
    if byPositions { v = node(.batchMatmul, [centred, v], name: name + ".component_of_channels") }  // Xᵀu ∝ v₁
    v = rescaled(v, axes: [1], ".vector")  // [N, K, 1], largest magnitude 1
    // |v| = √s with s = Σ v² ∈ [1, K] (v's largest magnitude is 1).
    let s = node(
      .sum, [node(.mul, [v, v], name: name + ".squares")], ReduceAttributes(axes: [1], keepdims: true),
      name: name + ".norm_squared")
    let half = constant(0.5, name: name + ".half")
    var root = node(
      .mul, [node(.add, [s, constant(1, name: name + ".one")], name: name + ".root_start_sum"), half],
      name: name + ".root_start")
    for step in 0..<16 {
      root = node(
        .mul,
        [
          node(
            .add, [root, node(.div, [s, root], name: name + ".newton\(step).quotient")],
            name: name + ".newton\(step).sum"), half,
        ], name: name + ".newton\(step)")
    }
    let unit = node(.div, [v, root], name: name + ".component")  // [N, K, 1]
    let projection = reshape(
      node(.batchMatmul, [positions, unit], name: name + ".projection"), [n, h, w], ".projected")
    let meanActivation = node(.mean, [a], ReduceAttributes(axes: [1], keepdims: false), name: name + ".mean_activation")
    let agreement = node(
      .sum, [node(.mul, [projection, meanActivation], name: name + ".agreement_terms")],
      ReduceAttributes(axes: [1, 2], keepdims: true), name: name + ".agreement")  // [N, 1, 1]
    let sign = node(
      .div,
      [
        agreement,
        node(
          .add, [magnitude(agreement, ".agreement_magnitude"), constant(1e-30, name: name + ".eps")],
          name: name + ".agreement_scale"),
      ], name: name + ".sign")
    return node(.mul, [projection, sign], name: name)
  }
}
