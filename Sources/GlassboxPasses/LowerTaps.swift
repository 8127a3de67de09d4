import GlassboxIR

/// Turns taps into ordinary graph outputs built of existing ops, so that every optimisation
/// after it treats a tapped value as what it is: an output, pinned, never fused away.
///
/// ```
/// tap attention = attention(weights)        →   output attention = weights
/// tap cam = cam(layer4, fc.weight)          →   w = matmul(one_hot(class), fc.weight)     [N, K]
///                                               cam = sum(mul(layer4, reshape(w)), axes: [1])
///                                               + cam.normalized, cam.upsampled
/// tap gradcam = gradcam(cnn.layer4)         →   g = ∂⟨logits, class_seed⟩/∂cnn.layer4      (Differentiate)
///   (per step: [B*T, K, h, w])                  α = mean(g, axes: [2, 3]); raw = relu(Σ_k α_k f_k)
///                                               + .normalized, .upsampled, .relevance [B, T]
/// ```
///
/// Runs on a bound graph (every size static) before the inference pipeline. Outputs made for a
/// tap named `NAME`:
///
/// | output | shape | what |
/// |---|---|---|
/// | `NAME` | the tap's type | the raw map (or the value itself for activation-like kinds) |
/// | `NAME.normalized` | same | min-max normalised, over each frame (`scope: frame`) or each clip (`clip`): `(x − min) / (max − min + 1e-7)` |
/// | `NAME.upsampled` | `[…, H, W]` | the normalised map resized to the input's `H×W`, bilinear, `align_corners=False` |
/// | `NAME.relevance` | `[B, T]` | per-step maps only: each frame's share of the clip's map mass, `m_t / (Σ_t m_t + 1e-7)` with `m_t` the mean of the raw map of frame `t` |
///
/// Only the backward slice each selected tap needs is built (`Differentiate` differentiates
/// only the nodes between the tapped value and the class score: for Grad-CAM on `layer4`, the
/// pooling, the LSTM and the classifier — no convolution); taps not selected are dropped, so
/// their values are swept by dead-code elimination. The class seed is `class_seed(logits,
/// class)`, so the predicted class (-1) is chosen inside the program.
public enum LowerTaps {
  /// Builds reverse-mode gradients (`Differentiate.apply` unless a caller substitutes one):
  /// the gradient of Σ_i Σ(seeds[i].of ⊙ seeds[i].seed) with respect to each of `wrt`.
  public typealias Differentiator = (_ graph: Graph, _ seeds: [(of: ValueID, seed: ValueID)], _ wrt: [ValueID]) throws
    -> (graph: Graph, gradients: [ValueID])

  /// What to lower and how.
  public struct Options {
    /// Taps to lower, by name; nil lowers every tap.
    public var taps: [String]?
    /// A class for every class-seeded tap, overriding the taps' own `class` option.
    public var classIndex: Int?
    /// When set, the classes to explain become a graph input of this name, `i64 [N]` (one class
    /// per row of the class scores, -1 for the row's predicted class), and `classIndex` and
    /// the taps' `class` options are unused: one program explains any classes.
    public var targetInput: String?
    /// Normalisation scope (`frame` or `clip`) for every map, overriding the taps' `scope`.
    public var scope: String?
    /// The output holding the class scores `[N, C]`; nil means the graph's first output.
    public var logits: String?
    /// How gradient-based taps get their gradients (`Differentiate.apply`); nil makes them
    /// an error.
    public var differentiate: Differentiator?
    /// The graph bound again at a multiple of its batch (`LowerTaps.rebatcher`), for taps that
    /// run copies of their input (`TapKind.runsCopies`); nil makes them an error.
    public var rebatch: Rebatcher?

    public init(
      taps: [String]? = nil, classIndex: Int? = nil, targetInput: String? = nil, scope: String? = nil,
      logits: String? = nil,
      differentiate: Differentiator? = { try Differentiate.apply(to: $0, seeds: $1, wrt: $2) },
      rebatch: Rebatcher? = nil
    ) {
      self.taps = taps
      self.classIndex = classIndex
      self.targetInput = targetInput
      self.scope = scope
      self.logits = logits
      self.differentiate = differentiate
      self.rebatch = rebatch
    }
  }

  /// What became of one tap: its kind and the outputs it now has, by role.
  public struct Lowered: Sendable, Equatable {
    public var name: String
    public var kind: TapKind
    /// The class the tap explains (nil when it uses none; -1 for the predicted class, or for
    /// the classes of the target input when there is one).
    public var classIndex: Int?
    /// The graph input holding each row's class (`Options.targetInput`), when the tap uses one.
    public var targetInput: String?
    /// `frame` or `clip` for maps; nil otherwise.
    public var scope: String?
    /// Whether the map is per step of a sequence (`[B, T, h, w]`).
    public var perStep: Bool
    /// Output names: `raw` always; `normalized`, `upsampled`, `relevance` where they apply.
    public var outputs: [String: String]
  }

  /// A tap that cannot be lowered: names the tap and the rule.
  public struct Error: Swift.Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
  }

  /// Lowers the selected taps of `module` (a bound graph) into outputs.
  public static func apply(to module: Module, options: Options = Options()) throws -> (module: Module, taps: [Lowered])
  {
    var b = Builder(graph: module.graph, weights: module.weights)
    let g = module.graph
    for v in g.values where !v.type.shape.allSatisfy(\.isStatic) {
      throw Error("tap: value '\(v.name)' has shape \(v.type.shapeDescription); bind every symbol before lowering taps")
    }
    let selected: [Tap]
    if let names = options.taps {
      selected = try names.map { name in
        guard let t = g.taps.first(where: { $0.name == name }) else {
          let known = g.taps.map(\.name)
          throw Error(
            "\(g.name) has no tap '\(name)' (taps: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
        }
        return t
      }
    } else {
      selected = g.taps
    }
    if let s = options.scope, s != "frame", s != "clip" {
      throw Error("tap: scope must be frame or clip, found '\(s)'")
    }

    // The class scores every class-seeded tap differentiates or selects from.
    let needsClass = selected.contains { $0.kind.needsClass }
    var logits: ValueID?
    var logitsName = ""
    var classes = 0
    if needsClass {
      let output = options.logits.flatMap { name in g.outputs.first { $0.name == name } } ?? g.outputs.first
      guard let output else { throw Error("tap: \(g.name) has no output to take class scores from") }
      let t = g[output.value].type
      guard t.rank == 2, let c = t.shape[1].staticValue else {
        throw Error("tap: class scores '\(output.name)' must be [N, C], found \(t.shapeDescription)")
      }
      logits = output.value
      logitsName = output.name
      classes = c
    }
    // Classes as an input: one per row of the class scores.
    var classInput: ValueID?
    if needsClass, let name = options.targetInput, let logits {
      guard b.graph.value(named: name) == nil else {
        throw Error("tap: the target input '\(name)' would shadow a value of \(g.name) of that name")
      }
      classInput = b.graph.addInput(name: name, type: TensorType(.i64, [b.graph[logits].type.shape[0]]))
    }
    func classOf(_ tap: Tap) throws -> Int {
      if classInput != nil { return -1 }
      let k = options.classIndex ?? tap.classIndex
      guard k >= -1, k < classes else {
        throw Error("tap \(tap.name): class \(k) is out of range; the model has \(classes) classes (0…\(classes - 1))")
      }
      return k
    }

    // Gradients first: one backward slice per tap, seeded by its class.
    var wrt: [ValueID] = []
    var seeds: [(of: ValueID, seed: ValueID)] = []
    var gradientIndex: [String: Int] = [:]
    for tap in selected where tap.kind.needsGradient && !tap.kind.runsCopies {
      guard let logits else { continue }
      guard options.differentiate != nil else {
        throw Error("tap \(tap.name): \(tap.kind.rawValue) needs gradients, and this build has no differentiation")
      }
      let seed = try b.classSeed(
        logits: logits, classIndex: classOf(tap), target: classInput, name: "tap.\(tap.name).seed")
      seeds.append((logits, seed))
      gradientIndex[tap.name] = wrt.count
      wrt.append(tap.operands[0])
    }
    var gradients: [ValueID] = []
    if !wrt.isEmpty, let differentiate = options.differentiate {
      // Seeds of several taps on one class score add up; each tap differentiates its own
      // seed, so taps with different classes get one backward pass each.
      var byTap: [ValueID] = []
      for (i, target) in wrt.enumerated() {
        let (graph, grads) = try differentiate(b.graph, [seeds[i]], [target])
        b.graph = graph
        byTap.append(grads[0])
      }
      gradients = byTap
    }

    // `NAME.normalized` (min-max over each frame or clip), `NAME.upsampled` (at the input's
    // resolution) and, per step, `NAME.relevance` of a map `[N, h, w]` or `[B, T, h, w]`.
    func addMapOutputs(_ map: ValueID, of tap: Tap, to out: inout Lowered, upsampled: Bool) {
      let name = tap.name
      let scope = options.scope ?? (tap.scope ?? .clip).rawValue
      out.scope = scope
      let rank = b.graph[map].type.rank
      let normalized = b.minMax(
        map, axes: scope == "frame" || !out.perStep ? [rank - 2, rank - 1] : Array(1..<rank),
        name: "tap.\(name).normalized")
      b.output(name + ".normalized", normalized)
      out.outputs["normalized"] = name + ".normalized"
      if upsampled, let size = inputSize(g) {
        b.output(name + ".upsampled", b.upsample(normalized, to: size, name: "tap.\(name).upsampled"))
        out.outputs["upsampled"] = name + ".upsampled"
      }
      if out.perStep {
        let m = b.node(
          .mean, [map], ReduceAttributes(axes: [2, 3], keepdims: false),
          name: "tap.\(name).frame_mass")  // [B, T]
        let total = b.node(.sum, [m], ReduceAttributes(axes: [1], keepdims: true), name: "tap.\(name).clip_mass")
        let denominator = b.node(
          .add, [total, b.constant(1e-7, name: "tap.\(name).mass_eps")], name: "tap.\(name).mass")
        b.output(name + ".relevance", b.node(.div, [m, denominator], name: "tap.\(name).relevance"))
        out.outputs["relevance"] = name + ".relevance"
      }
    }

    var lowered: [Lowered] = []
    for tap in selected {
      let name = tap.name
      let target = tap.operands[0]
      var out = Lowered(name: name, kind: tap.kind, classIndex: nil, scope: nil, perStep: false, outputs: [:])
      if classInput != nil, tap.kind.needsClass { out.targetInput = options.targetInput }
      switch tap.kind {
      case .activation, .attention, .hidden:
        b.output(name, target)
        out.outputs["raw"] = name
      case .gradient:
        out.classIndex = try classOf(tap)
        b.output(name, gradients[gradientIndex[name] ?? 0])
        out.outputs["raw"] = name
      case .saliency:
        out.classIndex = try classOf(tap)
        let g = gradients[gradientIndex[name] ?? 0]
        b.output(name, b.node(.mul, [g, target], name: "tap.\(name).saliency"))
        out.outputs["raw"] = name
      case .cam, .gradcam, .gradcampp, .layercam, .xgradcam, .hirescam, .scorecam, .eigencam:
        let k = tap.kind.needsClass ? try classOf(tap) : -1
        if tap.kind.needsClass { out.classIndex = k }
        let f = b.graph[target].type.shape.map { $0.staticValue ?? 0 }
        let (n, channels) = (f[0], f[1])
        // Channel weights [N, K, 1, 1], or for LayerCAM and HiRes-CAM weights of every
        // position [N, K, h, w].
        var weights: ValueID?
        switch tap.kind {
        case .eigencam:
          weights = nil
        case .cam:
          guard let logits else { throw Error("tap \(name): no class scores") }
          let w = b.graph[tap.operands[1]].type.shape.map { $0.staticValue ?? 0 }
          guard w[0] == classes else {
            throw Error("tap \(name): classifier weight has \(w[0]) rows but the model scores \(classes) classes")
          }
          let seed = try b.classSeed(logits: logits, classIndex: k, target: classInput, name: "tap.\(name).seed")
          let perExample = b.node(.matmul, [seed, tap.operands[1]], name: "tap.\(name).class_weights")  // [B, K]
          let rows = b.graph[perExample].type.shape[0].staticValue ?? 0
          weights = b.node(
            .reshape, [b.repeatRows(perExample, to: n, name: "tap.\(name).class_weights", rows: rows, width: channels)],
            ReshapeAttributes(shape: [n, channels, 1, 1].map { Dim($0) }), name: "tap.\(name).weights")
        case .gradcam:
          let g = gradients[gradientIndex[name] ?? 0]
          weights = b.node(.mean, [g], ReduceAttributes(axes: [2, 3], keepdims: true), name: "tap.\(name).weights")
        case .layercam:
          // pytorch-grad-cam's LayerCAM: relu(g) ⊙ f, summed over channels.
          weights = b.node(.relu, [gradients[gradientIndex[name] ?? 0]], name: "tap.\(name).weights")
        case .hirescam:
          // pytorch-grad-cam's HiResCAM: g ⊙ f, summed over channels.
          weights = gradients[gradientIndex[name] ?? 0]
        case .xgradcam:
          // pytorch-grad-cam's XGradCAM: Σ_ij g·f / (Σ_ij f + 1e-7).
          let g = gradients[gradientIndex[name] ?? 0]
          let fsum = b.node(.sum, [target], ReduceAttributes(axes: [2, 3], keepdims: true), name: "tap.\(name).fsum")
          let denominator = b.node(
            .add, [fsum, b.constant(1e-7, name: "tap.\(name).eps")], name: "tap.\(name).denominator")
          let gf = b.node(
            .sum, [b.node(.mul, [g, target], name: "tap.\(name).gf")], ReduceAttributes(axes: [2, 3], keepdims: true),
            name: "tap.\(name).gfsum")
          weights = b.node(.div, [gf, denominator], name: "tap.\(name).weights")
        case .scorecam:
          guard let logits else { throw Error("tap \(name): no class scores") }
          let seed = try b.classSeed(logits: logits, classIndex: k, target: classInput, name: "tap.\(name).seed")
          weights = try scoreCAMWeights(tap, seed: seed, logitsName: logitsName, builder: &b, options: options)
        case .activation, .attention, .hidden, .gradient, .saliency, .ig, .smoothgrad, .vargrad, .occlusion:
          preconditionFailure("tap \(name): \(tap.kind.rawValue) is not a class map")
        case .gradcampp:
          // Grad-CAM++ (Chattopadhay et al. 2018), as pytorch-grad-cam computes it:
          // a = g² / (2g² + Σ_ij f · g³ + 1e-6), weights = Σ_ij relu(g) · a.
          let g = gradients[gradientIndex[name] ?? 0]
          let g2 = b.node(.mul, [g, g], name: "tap.\(name).g2")
          let g3 = b.node(.mul, [g2, g], name: "tap.\(name).g3")
          let fsum = b.node(.sum, [target], ReduceAttributes(axes: [2, 3], keepdims: true), name: "tap.\(name).fsum")
          let two = b.constant(2, name: "tap.\(name).two"), eps = b.constant(1e-6, name: "tap.\(name).eps")
          let denominator = b.node(
            .add,
            [
              b.node(
                .add,
                [
                  b.node(.mul, [g2, two], name: "tap.\(name).2g2"),
                  b.node(.mul, [fsum, g3], name: "tap.\(name).sg3"),
                ], name: "tap.\(name).d0"), eps,
            ],
            name: "tap.\(name).denominator")
          let a = b.node(.div, [g2, denominator], name: "tap.\(name).alpha")
          let positive = b.node(.relu, [g], name: "tap.\(name).positive")
          weights = b.node(
            .sum, [b.node(.mul, [positive, a], name: "tap.\(name).weighted")],
            ReduceAttributes(axes: [2, 3], keepdims: true), name: "tap.\(name).weights")
        }
        var map: ValueID  // [N, h, w]
        if let weights {
          map = b.node(
            .sum, [b.node(.mul, [target, weights], name: "tap.\(name).terms")],
            ReduceAttributes(axes: [1], keepdims: false),
            name: "tap.\(name).sum")
        } else {
          map = b.eigenProjection(
            target, iterations: EigenCAMTapOptions(verified: tap.options).iterations,
            name: "tap.\(name).projection")
        }
        if tap.kind != .cam { map = b.node(.relu, [map], name: "tap.\(name).relu") }
        // Per step of a sequence: [B*T, h, w] → [B, T, h, w].
        let (h, w) = (f[2], f[3])
        if let steps = b.graph.stepScope(ofValueNamed: b.graph[target].name)?.steps,
          let bs = steps.batch.staticValue, let ts = steps.time.staticValue, bs * ts == n
        {
          let frames = ReshapeAttributes(shape: [bs, ts, h, w].map { Dim($0) })
          map = b.node(.reshape, [map], frames, name: "tap.\(name).frames")
          out.perStep = true
        }
        b.output(name, map)
        out.outputs["raw"] = name
        addMapOutputs(map, of: tap, to: &out, upsampled: true)
      case .ig, .smoothgrad, .vargrad, .occlusion:
        let k = try classOf(tap)
        out.classIndex = k
        guard let logits else { throw Error("tap \(name): no class scores") }
        let seed = try b.classSeed(logits: logits, classIndex: k, target: classInput, name: "tap.\(name).seed")
        let attribution = try attributeInput(
          tap, seed: seed, logits: logits, logitsName: logitsName, builder: &b,
          options: options)
        b.output(name, attribution)
        out.outputs["raw"] = name
        // An image or a clip also gets a map: Σ_c |a| over the colour channels, [N, H, W] or
        // [B, T, H, W] (per frame).
        let rank = b.graph[attribution].type.rank
        if rank == 4 || rank == 5 {
          let magnitude = b.node(
            .add,
            [
              b.node(.relu, [attribution], name: "tap.\(name).positive"),
              b.node(
                .relu,
                [
                  b.node(
                    .mul, [attribution, b.constant(-1, name: "tap.\(name).minus_one")],
                    name: "tap.\(name).negated")
                ], name: "tap.\(name).negative"),
            ],
            name: "tap.\(name).magnitude")
          let map = b.node(
            .sum, [magnitude], ReduceAttributes(axes: [rank - 3], keepdims: false), name: "tap.\(name).map")
          out.perStep = rank == 5
          addMapOutputs(map, of: tap, to: &out, upsampled: false)
        }
      }
      lowered.append(out)
    }
    b.graph.taps = []
    let problems = Verifier.verify(b.graph)
    guard problems.isEmpty else {
      throw Error("tap: lowering made an invalid graph: " + problems.map(\.message).joined(separator: "; "))
    }
    return (Module(graph: b.graph, weights: b.weights), lowered)
  }

  /// The spatial size `(H, W)` of the graph's image input: the last two axes of the first
  /// input of rank 4 (`[N, 3, H, W]`) or 5 (`[B, T, 3, H, W]`).
  static func inputSize(_ g: Graph) -> (height: Int, width: Int)? {
    for id in g.inputs where g[id].type.rank >= 4 {
      let s = g[id].type.shape
      if let h = s[s.count - 2].staticValue, let w = s[s.count - 1].staticValue { return (h, w) }
    }
    return nil
  }

  /// Weights of a 1-D bilinear resize from `n` to `newN` samples with PyTorch's
  /// `align_corners=False`: source `(i + 0.5)·n/newN − 0.5`, clamped below at 0 (or with
  /// `alignCorners`, `i·(n − 1)/(newN − 1)`); row-major `[newN, n]`.
  public static func interpolationMatrix(from n: Int, to newN: Int, alignCorners: Bool = false) -> [Float] {
    var m = [Float](repeating: 0, count: newN * n)
    for i in 0..<newN {
      // align_corners=True (UpsamplingBilinear2d): source i·(n − 1)/(newN − 1).
      let s =
        alignCorners
        ? (newN > 1 ? Double(i) * Double(n - 1) / Double(newN - 1) : 0)
        : max((Double(i) + 0.5) * Double(n) / Double(newN) - 0.5, 0)
      let lo = min(Int(s), n - 1)
      let hi = min(lo + 1, n - 1)
      let frac = Float(s - Double(lo))
      m[i * n + lo] += 1 - frac
      m[i * n + hi] += frac
    }
    return m
  }

  /// Appends nodes to a graph under fresh names.
  struct Builder {
    var graph: Graph
    var weights: [String: Tensor]

    func fresh(_ base: String) -> String {
      var names = FreshNames(graph)
      return names.make(base)
    }

    /// `op(operands)` with typed attributes (of the op's `attributeSet`).
    mutating func node<A: AttributeSet>(_ op: Op, _ operands: [ValueID], _ attributes: A, name: String) -> ValueID {
      precondition(ObjectIdentifier(op.attributeSet) == ObjectIdentifier(A.self), "\(op.name) reads \(op.attributeSet)")
      let attrs = attributes.encoded
      let types: [TensorType]
      do {
        types = try op.inferTypes(operands.map { graph[$0].type }, attrs)
      } catch {
        preconditionFailure("LowerTaps built an ill-typed \(op.name) '\(name)': \(error.message)")
      }
      return graph.addNode(op, operands: operands, attributes: attrs, results: [(fresh(name), types[0])])[0]
    }

    /// `op(operands)` for an op without attributes.
    mutating func node(_ op: Op, _ operands: [ValueID], name: String) -> ValueID {
      node(op, operands, NoAttributes(), name: name)
    }

    mutating func constant(_ value: Double, shape: [Int] = [], name: String) -> ValueID {
      node(.constant, [], ConstantAttributes(value: value, shape: shape.map { Dim($0) }, dtype: .f32), name: name)
    }

    mutating func output(_ name: String, _ value: ValueID) {
      graph.outputs.removeAll { $0.name == name }
      graph.outputs.append((name, value))
    }

    /// A one-hot `[N, C]` seed for class `k` (or, for -1, each row's predicted class), or for
    /// each row's class in `target`.
    mutating func classSeed(logits: ValueID, classIndex k: Int, target: ValueID?, name: String) throws -> ValueID {
      node(.classSeed, [logits] + (target.map { [$0] } ?? []), ClassSeedAttributes(classIndex: k), name: name)
    }

    /// `[rows, width]` → `[n, width]` repeating each row `n / rows` times (a clip's weights for
    /// each of its frames); unchanged when `n == rows`.
    mutating func repeatRows(_ x: ValueID, to n: Int, name: String, rows: Int, width: Int) -> ValueID {
      guard n != rows, rows > 0 else { return x }
      let r = node(.reshape, [x], ReshapeAttributes(shape: [rows, 1, width].map { Dim($0) }), name: name + ".rows")
      let ones = constant(1, shape: [rows, n / rows, width], name: name + ".ones")
      return node(
        .reshape, [node(.mul, [r, ones], name: name + ".repeated")],
        ReshapeAttributes(shape: [n, width].map { Dim($0) }),
        name: name + ".per_frame")
    }

    /// `(x − min) / (max − min + epsilon)` with min and max over `axes`.
    mutating func minMax(_ x: ValueID, axes: [Int], epsilon: Double = 1e-7, name: String) -> ValueID {
      let keep = ReduceAttributes(axes: axes, keepdims: true)
      let hi = node(.max, [x], keep, name: name + ".max")
      let minusOne = constant(-1, name: name + ".minus_one")
      let lo = node(
        .mul,
        [node(.max, [node(.mul, [x, minusOne], name: name + ".negated")], keep, name: name + ".negmax"), minusOne],
        name: name + ".min")
      let range = node(
        .add, [node(.sub, [hi, lo], name: name + ".span"), constant(epsilon, name: name + ".eps")],
        name: name + ".range")
      return node(.div, [node(.sub, [x, lo], name: name + ".shifted"), range], name: name)
    }

    /// Bilinear resize of the last two axes `[…, h, w]` → `[…, H, W]` as two products with
    /// interpolation matrices (buffers `NAME.rows: [h, H]` and `NAME.columns: [w, W]`).
    mutating func upsample(
      _ x: ValueID, to size: (height: Int, width: Int), name: String, alignCorners: Bool = false
    )
      -> ValueID
    {
      let s = graph[x].type.shape.map { $0.staticValue ?? 0 }
      let (h, w) = (s[s.count - 2], s[s.count - 1])
      let lead = s.dropLast(2).reduce(1, *)
      func matrix(_ n: Int, _ newN: Int, _ suffix: String) -> ValueID {
        // Stored transposed, [n, newN], so that `map · M` resizes the last axis.
        let m = LowerTaps.interpolationMatrix(from: n, to: newN, alignCorners: alignCorners)
        var t = [Float](repeating: 0, count: m.count)
        for i in 0..<newN { for j in 0..<n { t[j * newN + i] = m[i * n + j] } }
        let pname = fresh(name + suffix)
        let id = graph.addParameter(
          name: pname, type: TensorType(.f32, [Dim(n), Dim(newN)]), role: .buffer, initializer: .zeros)
        weights[pname] = Tensor(shape: [n, newN], f32: t)
        return id
      }
      let columns = matrix(w, size.width, ".columns"), rows = matrix(h, size.height, ".rows")
      func reshape(_ v: ValueID, _ shape: [Int], _ suffix: String) -> ValueID {
        node(.reshape, [v], ReshapeAttributes(shape: shape.map { Dim($0) }), name: name + suffix)
      }
      func transpose(_ v: ValueID, _ suffix: String) -> ValueID {
        node(.transpose, [v], TransposeAttributes(perm: [0, 2, 1]), name: name + suffix)
      }
      var y = reshape(x, [lead * h, w], ".flat")
      y = node(.matmul, [y, columns], name: name + ".wide")  // [lead·h, W]
      y = reshape(y, [lead, h, size.width], ".wide3")
      y = transpose(y, ".turned")  // [lead, W, h]
      y = reshape(y, [lead * size.width, h], ".turned2")
      y = node(.matmul, [y, rows], name: name + ".tall")  // [lead·W, H]
      y = reshape(y, [lead, size.width, size.height], ".tall3")
      y = transpose(y, ".back")  // [lead, H, W]
      return reshape(y, Array(s.dropLast(2)) + [size.height, size.width], "")
    }
  }
}

/// Makes a computed value an input: every use of `value` (nodes, outputs, taps) reads a new
/// graph input of the same type instead, so an experiment can feed its own numbers there
/// (uniform or permuted attention weights). What computed the value is left to dead-code
/// elimination.
///
/// ```
/// weights = softmax(scores)                 weights = softmax(scores)      (now dead)
/// context = sum(mul(lstm, weights))    →    context = sum(mul(lstm, weights.override))
/// ```
public enum OverrideValue {
  /// The graph with `value` read from a new input `inputName` (added after the others, and
  /// defined before every node, as passes that rebuild in value order expect).
  public static func apply(to graph: Graph, value: ValueID, inputName: String) -> Graph {
    var g = Graph(name: graph.name)
    g.scopes = graph.scopes
    g.recipes = graph.recipes
    var map = [Int](repeating: -1, count: graph.values.count)
    for id in graph.inputs { map[id.index] = g.addInput(name: graph[id].name, type: graph[id].type).index }
    let replacement = g.addInput(name: inputName, type: graph[value].type)
    for p in graph.parameters {
      map[p.value.index] = g.addParameter(name: p.name, type: p.type, role: p.role, initializer: p.initializer).index
    }
    func mapped(_ v: ValueID) -> ValueID { v == value ? replacement : ValueID(map[v.index]) }
    for node in graph.nodes {
      let ids = g.addNode(
        node.op, operands: node.operands.map(mapped), attributes: node.attributes,
        results: node.results.map { (graph[$0].name, graph[$0].type) }, location: node.location)
      for (old, new) in zip(node.results, ids) { map[old.index] = new.index }
    }
    g.outputs = graph.outputs.map { ($0.name, mapped($0.value)) }
    g.taps = graph.taps.map { t in
      var t = t
      t.operands = t.operands.map(mapped)
      return t
    }
    return g
  }
}

extension LowerTaps.Error: KindedError {
  public var errorKind: ErrorKind { .input }
}
