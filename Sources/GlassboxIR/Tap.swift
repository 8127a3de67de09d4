/// What a tap explains. A tap is a named, typed output compiled into the graph: it survives
/// every optimisation and is stored in the model file.
public enum TapKind: String, CaseIterable, Sendable, Hashable {
  /// The value itself.
  case activation
  /// Gradient of a class score with respect to the value (same type as the value).
  case gradient
  /// Grad-CAM: channel weights from the pooled gradient of a class score, weighted sum of the
  /// feature map, ReLU. Target `[N, C, h, w]` → `[N, h, w]`; inside a per-step scope,
  /// `[B*T, C, h, w]` → `[B, T, h, w]` (frame by frame through the LSTM).
  case gradcam
  /// Grad-CAM++ (second-order channel weights); same shapes as `gradcam`.
  case gradcampp
  /// Class activation map Σ_k w_k·f_k of a global-average-pooled classifier: operands are the
  /// feature map `[N, K, h, w]` and the classifier weight `[C, K]`; result `[N, h, w]`.
  case cam
  /// Attention weights (the value itself, marked as attention for plotting and evaluation).
  case attention
  /// Gradient × input over a graph input (the MFCC image), same type as the input.
  case saliency
  /// LSTM outputs, kept for embeddings (t-SNE of their time average).
  case hidden
  /// LayerCAM (Jiang et al. 2021): `relu(Σ_k relu(g_k) ⊙ f_k)`, each position weighted by its
  /// own positive gradient; same shapes as `gradcam`.
  case layercam
  /// XGrad-CAM (Fu et al. 2020): channel weights `Σ_ij g·f / (Σ_ij f + 1e-7)`, weighted sum of
  /// the feature map, ReLU; same shapes as `gradcam`.
  case xgradcam
  /// HiRes-CAM (Draelos and Carin 2020): `relu(Σ_k g_k ⊙ f_k)`, the gradient multiplied in
  /// element by element; same shapes as `gradcam`.
  case hirescam
  /// Integrated Gradients (Sundararajan et al. 2017) over a graph input: the path integral of
  /// the class score's gradient from a constant baseline to the input, times the input minus
  /// the baseline (Captum's `IntegratedGradients`). The `steps` points of the path run as copies
  /// of the input stacked along the batch axis, one forward and backward pass. The input's type.
  case ig
  /// SmoothGrad (Smilkov et al. 2017): the class score's gradient averaged over `samples` noisy
  /// copies of a graph input (Gaussian noise fixed by `seed`), batched as `ig`. The input's type.
  case smoothgrad
  /// VarGrad (Adebayo et al. 2018): the variance of the gradient over the same noisy copies as
  /// `smoothgrad`. The input's type.
  case vargrad
  /// Occlusion (Zeiler and Fergus 2014; Captum's `Occlusion`): the drop in the class score when
  /// a window of a graph input (every channel, one frame of a clip) is set to a baseline, spread
  /// over the window's elements and averaged where windows overlap; every occluded copy runs
  /// batched as `ig`. The input's type.
  case occlusion
  /// Score-CAM (Wang et al. 2020; pytorch-grad-cam's `ScoreCAM`): channel weights are the
  /// softmax over channels of the class score of the image input masked by each channel's map
  /// (upsampled, min-max normalised); the masked forward passes run batched. Same shapes as
  /// `gradcam`, on an image model.
  case scorecam
  /// Eigen-CAM (Muhammad and Yeasin 2020; pytorch-grad-cam's `EigenCAM`): the feature map's
  /// positions, centred per channel, projected on their first principal component (power
  /// iteration in the program), signed to correlate positively with the mean activation, ReLU.
  /// Explains no class; same shapes as `gradcam`.
  case eigencam

  /// How many value operands the tap takes.
  public var operandCount: Int {
    switch self {
    case .activation, .gradient, .gradcam, .gradcampp, .attention, .saliency, .hidden, .layercam, .xgradcam,
      .hirescam, .ig, .smoothgrad, .vargrad, .occlusion, .scorecam, .eigencam:
      1
    case .cam: 2
    }
  }

  /// Whether the tap explains a class score (seeded by `class_seed`): it needs the model's
  /// class scores and a class, the predicted one by default.
  public var needsClass: Bool {
    switch self {
    case .gradient, .saliency, .gradcam, .gradcampp, .cam, .layercam, .xgradcam, .hirescam, .ig, .smoothgrad, .vargrad,
      .occlusion, .scorecam:
      true
    case .activation, .attention, .hidden, .eigencam: false
    }
  }

  /// Whether the tap differentiates a class score: a backward slice, seeded by `class_seed`,
  /// is compiled for it (`cam` needs a class but no gradient; taps that run copies of the input
  /// differentiate their copies, `runsCopies`).
  public var needsGradient: Bool {
    switch self {
    case .gradient, .saliency, .gradcam, .gradcampp, .layercam, .xgradcam, .hirescam, .ig, .smoothgrad, .vargrad: true
    case .activation, .attention, .hidden, .cam, .occlusion, .scorecam, .eigencam: false
    }
  }

  /// Whether the tap runs the model again on copies of its input (interpolated, noisy, occluded
  /// or masked) stacked along the batch axis, in the same program: its gradients, if any, are
  /// taken through those copies, not through the model's own forward pass.
  public var runsCopies: Bool {
    switch self {
    case .ig, .smoothgrad, .vargrad, .occlusion, .scorecam: true
    case .activation, .attention, .hidden, .gradient, .saliency, .gradcam, .gradcampp, .cam, .layercam, .xgradcam,
      .hirescam, .eigencam:
      false
    }
  }

  /// Whether the tap's map is computed from a feature map `[N, C, h, w]` (the CAM family).
  public var mapsFeatures: Bool {
    switch self {
    case .gradcam, .gradcampp, .cam, .layercam, .xgradcam, .hirescam, .scorecam, .eigencam: true
    case .activation, .attention, .hidden, .gradient, .saliency, .ig, .smoothgrad, .vargrad, .occlusion: false
    }
  }

  /// The method's name as its paper and the peer libraries write it, for messages.
  public var methodName: String {
    switch self {
    case .activation: "an activation"
    case .gradient: "the gradient"
    case .gradcam: "Grad-CAM"
    case .gradcampp: "Grad-CAM++"
    case .cam: "CAM"
    case .attention: "attention"
    case .saliency: "saliency"
    case .hidden: "hidden states"
    case .layercam: "LayerCAM"
    case .xgradcam: "XGrad-CAM"
    case .hirescam: "HiRes-CAM"
    case .ig: "Integrated Gradients"
    case .smoothgrad: "SmoothGrad"
    case .vargrad: "VarGrad"
    case .occlusion: "Occlusion"
    case .scorecam: "Score-CAM"
    case .eigencam: "Eigen-CAM"
    }
  }

  /// Whether the tap is a value of the forward pass as it is (no gradients, no derived map):
  /// a plain forward program computes it.
  public var isValue: Bool {
    switch self {
    case .activation, .attention, .hidden: true
    case .gradient, .saliency, .gradcam, .gradcampp, .cam, .layercam, .xgradcam, .hirescam, .ig, .smoothgrad, .vargrad,
      .occlusion, .scorecam, .eigencam:
      false
    }
  }

  /// The struct this kind's options are read through.
  public var optionSet: any AttributeSet.Type {
    switch self {
    case .activation, .attention, .hidden: NoAttributes.self
    case .gradient, .saliency, .cam: ClassTapOptions.self
    case .gradcam, .gradcampp, .layercam, .xgradcam, .hirescam: GradCAMTapOptions.self
    case .ig: IntegratedGradientsTapOptions.self
    case .smoothgrad, .vargrad: NoiseTapOptions.self
    case .occlusion: OcclusionTapOptions.self
    case .scorecam: ScoreCAMTapOptions.self
    case .eigencam: EigenCAMTapOptions.self
    }
  }

  /// Options this kind accepts, with defaults; `class` absent means the predicted class.
  public var options: [Op.AttrSpec] { optionSet.schema }
}

/// The options of a tap that explains one class score (`gradient`, `saliency`, `cam`).
public struct ClassTapOptions: AttributeSet {
  /// -1: the predicted class.
  public var classIndex = -1

  /// Every option given.
  public init(classIndex: Int) { self.classIndex = classIndex }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) { v.defaulted("class", &classIndex) }
}

/// Over what a Grad-CAM map is min-max normalised.
public enum GradCAMScope: String, AttributeChoice {
  /// Each frame on its own.
  case frame
  /// The whole clip (every frame of an example) at once.
  case clip
}

/// The options of `gradcam`, `gradcampp`, `layercam`, `xgradcam` and `hirescam`.
public struct GradCAMTapOptions: AttributeSet {
  /// -1: the predicted class.
  public var classIndex = -1
  /// `scope`: over what the map is normalised.
  public var scope = GradCAMScope.clip

  /// Every option given.
  public init(classIndex: Int, scope: GradCAMScope) {
    self.classIndex = classIndex
    self.scope = scope
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.defaulted("class", &classIndex)
    v.defaulted("scope", &scope)
  }
}

/// The options of `eigencam`.
public struct EigenCAMTapOptions: AttributeSet {
  /// `scope`: over what the map is normalised.
  public var scope = GradCAMScope.clip
  /// `iterations`: squarings of the scatter matrix towards the first principal component
  /// (power iteration of order 2^iterations).
  public var iterations = 24

  /// Every option given.
  public init(scope: GradCAMScope, iterations: Int) {
    self.scope = scope
    self.iterations = iterations
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.defaulted("scope", &scope)
    v.defaulted("iterations", &iterations)
  }
}

/// How Integrated Gradients places its points on the path and weighs them (Captum's
/// `method`): Gauss–Legendre nodes, or equal steps at the left, right or middle of each
/// interval, or the trapezoid rule.
public enum IntegrationRule: String, AttributeChoice {
  case gausslegendre
  case riemann_left
  case riemann_right
  case riemann_middle
  case riemann_trapezoid
}

/// The options of `ig`.
public struct IntegratedGradientsTapOptions: AttributeSet {
  /// -1: the predicted class.
  public var classIndex = -1
  /// `steps`: points on the path from the baseline to the input.
  public var steps = 32
  /// `baseline`: the value of every element of the baseline input.
  public var baseline = 0.0
  /// `method`: the quadrature rule.
  public var method = IntegrationRule.gausslegendre
  /// `batch`: path points per forward and backward pass (0: all of them in one).
  public var batch = 0
  /// `scope`: over what an image map is normalised.
  public var scope = GradCAMScope.clip

  /// Every option given.
  public init(
    classIndex: Int, steps: Int, baseline: Double, method: IntegrationRule, batch: Int,
    scope: GradCAMScope
  ) {
    self.classIndex = classIndex
    self.steps = steps
    self.baseline = baseline
    self.method = method
    self.batch = batch
    self.scope = scope
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.defaulted("class", &classIndex)
    v.defaulted("steps", &steps)
    v.defaulted("baseline", &baseline)
    v.defaulted("method", &method)
    v.defaulted("batch", &batch)
    v.defaulted("scope", &scope)
  }
}

/// The options of `smoothgrad` and `vargrad`.
public struct NoiseTapOptions: AttributeSet {
  /// -1: the predicted class.
  public var classIndex = -1
  /// `samples`: noisy copies of the input.
  public var samples = 16
  /// `stdev`: the noise's standard deviation, in the input's units (Captum's `stdevs`).
  public var stdev = 0.15
  /// `seed`: the noise is a fixed function of it (the same for every example of a batch).
  public var seed = 0
  /// `batch`: noisy copies per forward and backward pass (0: all of them in one).
  public var batch = 0
  /// `scope`: over what an image map is normalised.
  public var scope = GradCAMScope.clip

  /// Every option given.
  public init(classIndex: Int, samples: Int, stdev: Double, seed: Int, batch: Int, scope: GradCAMScope) {
    self.classIndex = classIndex
    self.samples = samples
    self.stdev = stdev
    self.seed = seed
    self.batch = batch
    self.scope = scope
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.defaulted("class", &classIndex)
    v.defaulted("samples", &samples)
    v.defaulted("stdev", &stdev)
    v.defaulted("seed", &seed)
    v.defaulted("batch", &batch)
    v.defaulted("scope", &scope)
  }
}

/// The options of `scorecam`.
public struct ScoreCAMTapOptions: AttributeSet {
  /// -1: the predicted class.
  public var classIndex = -1
  /// `scope`: over what the map is normalised.
  public var scope = GradCAMScope.clip
  /// `batch`: masked copies per forward pass (0: every channel's copy in one pass). Passes run
  /// one after another in the program, so memory grows with `batch`, not with the channels.
  public var batch = 64

  /// Every option given.
  public init(classIndex: Int, scope: GradCAMScope, batch: Int) {
    self.classIndex = classIndex
    self.scope = scope
    self.batch = batch
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.defaulted("class", &classIndex)
    v.defaulted("scope", &scope)
    v.defaulted("batch", &batch)
  }
}

/// The options of `occlusion`.
public struct OcclusionTapOptions: AttributeSet {
  /// -1: the predicted class.
  public var classIndex = -1
  /// `window`: the occluded patch over the input's last two axes, `[h, w]` (every channel, one
  /// frame of a clip).
  public var window = Pair(8)
  /// `stride`: the patch's step; nil steps by the window (patches tile the input).
  public var stride: Pair? = nil
  /// `baseline`: the value occluded elements take.
  public var baseline = 0.0
  /// `batch`: occluded copies per forward pass (0: all of them in one).
  public var batch = 64
  /// `scope`: over what an image map is normalised.
  public var scope = GradCAMScope.clip

  /// Every option given.
  public init(classIndex: Int, window: Pair, stride: Pair?, baseline: Double, batch: Int, scope: GradCAMScope) {
    self.classIndex = classIndex
    self.window = window
    self.stride = stride
    self.baseline = baseline
    self.batch = batch
    self.scope = scope
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.defaulted("class", &classIndex)
    v.defaulted("window", &window)
    v.defaulted("stride", &stride)
    v.defaulted("baseline", &baseline)
    v.defaulted("batch", &batch)
    v.defaulted("scope", &scope)
  }
}

/// A named explanation output: a kind, the values it looks at, its options and its type.
public struct Tap: Sendable {
  public var name: String
  public var kind: TapKind
  public var operands: [ValueID]
  public var options: Attributes
  public var type: TensorType
  public var location: SourceLocation?

  /// A tap as stored; `type` must be what `kind.inferType` gives (the verifier checks).
  public init(
    name: String, kind: TapKind, operands: [ValueID], options: Attributes, type: TensorType,
    location: SourceLocation? = nil
  ) {
    self.name = name
    self.kind = kind
    self.operands = operands
    self.options = options
    self.type = type
    self.location = location
  }
}

extension TapKind {
  /// The class a tap of this kind with these (verified) options is seeded at: -1 for the
  /// predicted class, and for kinds that explain no class.
  public func classIndex(_ options: Attributes) -> Int {
    switch self {
    case .gradient, .saliency, .cam: ClassTapOptions(verified: options).classIndex
    case .gradcam, .gradcampp, .layercam, .xgradcam, .hirescam: GradCAMTapOptions(verified: options).classIndex
    case .ig: IntegratedGradientsTapOptions(verified: options).classIndex
    case .smoothgrad, .vargrad: NoiseTapOptions(verified: options).classIndex
    case .occlusion: OcclusionTapOptions(verified: options).classIndex
    case .scorecam: ScoreCAMTapOptions(verified: options).classIndex
    case .activation, .attention, .hidden, .eigencam: -1
    }
  }

  /// A map's normalisation scope (nil for kinds without one).
  public func scope(_ options: Attributes) -> GradCAMScope? {
    switch self {
    case .gradcam, .gradcampp, .layercam, .xgradcam, .hirescam: GradCAMTapOptions(verified: options).scope
    case .ig: IntegratedGradientsTapOptions(verified: options).scope
    case .smoothgrad, .vargrad: NoiseTapOptions(verified: options).scope
    case .occlusion: OcclusionTapOptions(verified: options).scope
    case .scorecam: ScoreCAMTapOptions(verified: options).scope
    case .eigencam: EigenCAMTapOptions(verified: options).scope
    case .activation, .attention, .hidden, .gradient, .saliency, .cam: nil
    }
  }
}

extension Tap {
  /// The class the tap is seeded at (`TapKind.classIndex`).
  public var classIndex: Int { kind.classIndex(options) }
  /// A Grad-CAM tap's normalisation scope (nil for other kinds).
  public var scope: GradCAMScope? { kind.scope(options) }
}

extension Tap: Equatable {
  public static func == (a: Tap, b: Tap) -> Bool {
    a.name == b.name && a.kind == b.kind && a.operands == b.operands && a.options == b.options
      && a.type == b.type
  }
}

extension TapKind {
  /// The tap's result type, or why the method does not apply to its operands: one message
  /// naming the method, the value and the reason, found when the tap is declared, added or
  /// loaded, before anything runs.
  public func inferType(_ operands: [ValueID], options: Attributes, in graph: Graph) throws(ShapeError) -> TensorType {
    let target = graph[operands[0]]
    let t = target.type
    do { try optionSet.check(options) } catch { throw ShapeError("tap \(rawValue): \(error.message)") }
    let k = classIndex(options)
    if k < -1 {
      throw ShapeError("tap \(rawValue): class must be an index ≥ 0 (leave it out for the predicted class), found \(k)")
    }
    if let problem = optionProblem(options) { throw ShapeError("tap \(rawValue): \(problem)") }
    switch self {
    case .activation, .attention, .hidden:
      return t
    case .ig, .smoothgrad, .vargrad, .occlusion:
      let cannot = "tap \(rawValue): \(methodName) cannot explain '\(target.name)'"
      guard case .input = target.origin else {
        throw ShapeError("\(cannot): it attributes the class score to a graph input, and '\(target.name)' is computed")
      }
      guard t.dtype.isFloatingPoint else {
        let why = self == .occlusion ? "the occluded copies" : self == .ig ? "the path from the baseline" : "the noise"
        throw ShapeError("\(cannot): the input is \(t.dtype.rawValue), and \(why) needs floating-point values")
      }
      let least = self == .occlusion ? 3 : 2
      guard t.rank >= least else {
        let axes = self == .occlusion ? "two axes to slide a window over" : "an example's axes"
        throw ShapeError("\(cannot): it needs a batch axis and \(axes), found \(t)")
      }
      if self == .occlusion {
        let o = OcclusionTapOptions(verified: options)
        let (h, w) = (t.shape[t.rank - 2].staticValue, t.shape[t.rank - 1].staticValue)
        if let h, let w, o.window.h > h || o.window.w > w {
          throw ShapeError(
            "\(cannot): the window \(o.window.h)×\(o.window.w) is larger than its last two axes \(h)×\(w)")
        }
      }
      return t
    case .gradient, .saliency:
      guard t.dtype.isFloatingPoint else {
        throw ShapeError(
          "tap \(rawValue): \(target.name) is \(t.dtype.rawValue); gradients need a floating-point value")
      }
      if self == .saliency, case .input = target.origin {
      } else if self == .saliency {
        throw ShapeError("tap saliency: \(target.name) is not a graph input")
      }
      return t
    case .gradcam, .gradcampp, .cam, .layercam, .xgradcam, .hirescam, .scorecam, .eigencam:
      let cannot = "tap \(rawValue): \(methodName) cannot explain layer '\(target.name)'"
      guard t.rank == 4 else {
        throw ShapeError("\(cannot): it has no spatial axes to map (\(t)); it needs a feature map [N, C, h, w]")
      }
      guard t.dtype.isFloatingPoint else {
        throw ShapeError("\(cannot): it is \(t.dtype.rawValue), not a floating-point feature map")
      }
      if self == .cam {
        let w = graph[operands[1]].type
        guard w.rank == 2, w.shape[1] == t.shape[1] else {
          throw ShapeError(
            "tap cam: classifier weight must be [classes, \(t.shape[1])] for \(t.shape[1]) channels, "
              + "found \(w.shapeDescription)")
        }
        guard graph.isGlobalAveragePooled(operands[0]) else {
          throw ShapeError(
            "\(cannot): the model does not global-average-pool it, so Σ_k w_k·f_k is not its class score")
        }
      }
      if self == .scorecam {
        guard let image = graph.imageInput, graph[image].type.rank == 4, graph[image].type.shape[0] == t.shape[0] else {
          throw ShapeError(
            "\(cannot): it masks an image input [N, C, H, W] with the layer's channels, one image per "
              + "map, and \(graph.name) has none (a clip's frames are not masked one by one)")
        }
      }
      if let steps = graph.stepScope(ofValueNamed: target.name)?.steps,
        let merged = steps.batch.multiplied(by: steps.time), merged == t.shape[0]
      {
        return TensorType(t.dtype, [steps.batch, steps.time, t.shape[2], t.shape[3]])
      }
      return TensorType(t.dtype, [t.shape[0], t.shape[2], t.shape[3]])
    }
  }

  /// Options out of their range, for kinds that have counts and sizes.
  func optionProblem(_ options: Attributes) -> String? {
    switch self {
    case .activation, .attention, .hidden, .gradient, .saliency, .gradcam, .gradcampp, .cam, .layercam, .xgradcam,
      .hirescam:
      return nil
    case .eigencam:
      let o = EigenCAMTapOptions(verified: options)
      return o.iterations < 1 || o.iterations > 64 ? "iterations must be in 1…64, found \(o.iterations)" : nil
    case .scorecam:
      let o = ScoreCAMTapOptions(verified: options)
      return o.batch < 0 ? "batch must be ≥ 0 (0: every copy in one pass), found \(o.batch)" : nil
    case .occlusion:
      let o = OcclusionTapOptions(verified: options)
      if o.window.h < 1 || o.window.w < 1 { return "window must be at least 1×1, found \(o.window.h)×\(o.window.w)" }
      if let s = o.stride, s.h < 1 || s.w < 1 { return "stride must be at least 1×1, found \(s.h)×\(s.w)" }
      if o.batch < 0 { return "batch must be ≥ 0 (0: every copy in one pass), found \(o.batch)" }
      return o.baseline.isFinite ? nil : "baseline must be a finite number, found \(o.baseline)"
    case .ig:
      let o = IntegratedGradientsTapOptions(verified: options)
      if o.steps < 1 || o.steps > 4096 { return "steps must be in 1…4096, found \(o.steps)" }
      if o.batch < 0 { return "batch must be ≥ 0 (0: every copy in one pass), found \(o.batch)" }
      return o.baseline.isFinite ? nil : "baseline must be a finite number, found \(o.baseline)"
    case .smoothgrad, .vargrad:
      let o = NoiseTapOptions(verified: options)
      if o.samples < 1 || o.samples > 4096 { return "samples must be in 1…4096, found \(o.samples)" }
      if o.batch < 0 { return "batch must be ≥ 0 (0: every copy in one pass), found \(o.batch)" }
      if o.seed < 0 { return "seed must be ≥ 0, found \(o.seed)" }
      return o.stdev.isFinite && o.stdev >= 0 ? nil : "stdev must be a finite number ≥ 0, found \(o.stdev)"
    }
  }
}

extension Graph {
  /// Whether `value` is read by a global average pooling (`global_avg_pool2d`, or `mean` over
  /// axes 2 and 3): what CAM's identity between its map and the class score needs.
  public func isGlobalAveragePooled(_ value: ValueID) -> Bool {
    nodes.contains { node in
      guard node.operands.first == value else { return false }
      if node.op == .globalAvgPool2d { return true }
      guard node.op == .mean else { return false }
      return Set(ReduceAttributes(verified: node.attributes).axes.map { normalizedAxis($0, rank: 4) }) == [2, 3]
    }
  }

  /// The image input a map is resized to and masks apply to: the first input of rank 4
  /// (`[N, C, H, W]`) or 5 (`[B, T, C, H, W]`).
  public var imageInput: ValueID? { inputs.first { self[$0].type.rank == 4 || self[$0].type.rank == 5 } }
}
