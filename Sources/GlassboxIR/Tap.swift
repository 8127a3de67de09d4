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

  /// How many value operands the tap takes.
  public var operandCount: Int {
    switch self {
    case .activation, .gradient, .gradcam, .gradcampp, .attention, .saliency, .hidden: 1
    case .cam: 2
    }
  }

  /// Whether the tap explains a class score (seeded by `class_seed`): it needs the model's
  /// class scores and a class, the predicted one by default.
  public var needsClass: Bool {
    switch self {
    case .gradient, .saliency, .gradcam, .gradcampp, .cam: true
    case .activation, .attention, .hidden: false
    }
  }

  /// Whether the tap differentiates a class score: a backward slice, seeded by `class_seed`,
  /// is compiled for it (`cam` needs a class but no gradient).
  public var needsGradient: Bool {
    switch self {
    case .gradient, .saliency, .gradcam, .gradcampp: true
    case .activation, .attention, .hidden, .cam: false
    }
  }

  /// Whether the tap is a value of the forward pass as it is (no gradients, no derived map):
  /// a plain forward program computes it.
  public var isValue: Bool {
    switch self {
    case .activation, .attention, .hidden: true
    case .gradient, .saliency, .gradcam, .gradcampp, .cam: false
    }
  }

  /// The struct this kind's options are read through.
  public var optionSet: any AttributeSet.Type {
    switch self {
    case .activation, .attention, .hidden: NoAttributes.self
    case .gradient, .saliency, .cam: ClassTapOptions.self
    case .gradcam, .gradcampp: GradCAMTapOptions.self
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

/// The options of `gradcam` and `gradcampp`.
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
    case .gradcam, .gradcampp: GradCAMTapOptions(verified: options).classIndex
    case .activation, .attention, .hidden: -1
    }
  }

  /// A Grad-CAM tap's normalisation scope (nil for other kinds).
  public func scope(_ options: Attributes) -> GradCAMScope? {
    switch self {
    case .gradcam, .gradcampp: GradCAMTapOptions(verified: options).scope
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
  /// The tap's result type, or why its operands do not fit.
  public func inferType(_ operands: [ValueID], options: Attributes, in graph: Graph) throws(ShapeError) -> TensorType {
    let target = graph[operands[0]]
    let t = target.type
    do { try optionSet.check(options) } catch { throw ShapeError("tap \(rawValue): \(error.message)") }
    let k = classIndex(options)
    if k < -1 {
      throw ShapeError("tap \(rawValue): class must be an index ≥ 0 (leave it out for the predicted class), found \(k)")
    }
    switch self {
    case .activation, .attention, .hidden:
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
    case .gradcam, .gradcampp, .cam:
      guard t.rank == 4, t.dtype.isFloatingPoint else {
        throw ShapeError("tap \(rawValue): \(target.name) must be a feature map [N, C, h, w], found \(t)")
      }
      if self == .cam {
        let w = graph[operands[1]].type
        guard w.rank == 2, w.shape[1] == t.shape[1] else {
          throw ShapeError(
            "tap cam: classifier weight must be [classes, \(t.shape[1])] for \(t.shape[1]) channels, found \(w.shapeDescription)"
          )
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
}
