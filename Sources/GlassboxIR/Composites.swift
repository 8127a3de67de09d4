/// Activations and a pooling that PyTorch and ONNX name but that compose from existing ops,
/// exactly or within an f32 rounding (each case says which), so they need no shape rule,
/// kernel or gradient rule of their own. The spec language expands a call such as
/// `y = leaky_relu(x, alpha: 0.1)` into its ops when it elaborates it, and the ONNX importer
/// builds the same ops with `build`; `check --print` shows the expansion, which parses back to
/// the same graph, and `fuse-elementwise` joins it into one kernel at inference.
///
/// Expanding `y = hard_swish(x)`, PyTorch's `x·min(max(x + 3, 0), 6)/6` (the constants are
/// scalars, `f32[]`):
/// ```
/// y.three = constant(value: 3.0)
/// y.shifted = add(x, y.three)
/// y.six = constant(value: 6.0)
/// y.zero = constant(value: 0.0)
/// y.lower = maximum(y.zero, y.shifted)
/// y.gate = minimum(y.six, y.lower)
/// y.product = mul(x, y.gate)
/// y = div(y.product, y.six)
/// ```
///
/// At a kink `maximum` and `minimum` give the gradient to their first operand, and each
/// composite orders its operands to take PyTorch's gradient there: `leaky_relu` α at 0,
/// `clip` 1 at both bounds (`torch.clamp`), `relu6` and `hard_sigmoid` 0 at theirs
/// (`hardtanh`, `hardsigmoid`), `hard_swish` 0 at −3 and 1 at 3 (PyTorch 2's).
public enum Composite: String, CaseIterable, Sendable {
  /// `x` where positive, `α·x` elsewhere (`F.leaky_relu`, ONNX `LeakyRelu`; `alpha`, 0.01 by
  /// default): `maximum(mul(x, α), x)`, or `minimum` for α > 1. Exact.
  case leakyRelu = "leaky_relu"
  /// `x` held within `[min, max]` (`torch.clamp`, ONNX `Clip`; a bound left out is none):
  /// `minimum(maximum(x, min), max)`. Exact; `max` wins where `min > max`, as in `torch.clamp`.
  /// Without bounds the result is `x` itself.
  case clip
  /// `min(max(x, 0), 6)` (`nn.ReLU6`): `minimum(6, maximum(0, x))`. Exact.
  case relu6
  /// `max(0, min(1, α·x + β))` (ONNX `HardSigmoid`): `minimum(1, maximum(0, add(mul(x, α), β)))`.
  /// With the defaults α = 1/6, β = 1/2 exactly, PyTorch's `hardsigmoid` in its own operations,
  /// `div(minimum(6, maximum(0, add(x, 3))), 6)` (the same in exact arithmetic, and its kinks
  /// fall exactly on ±3, where 1/6 has no exact binary form); ONNX's defaults are 0.2 and 0.5.
  case hardSigmoid = "hard_sigmoid"
  /// `x·relu6(x + 3)/6` (`F.hardswish`, ONNX `HardSwish`, which is `x·hard_sigmoid(x)` with
  /// α = 1/6, β = 1/2): `div(mul(x, minimum(6, maximum(0, add(x, 3)))), 6)`, PyTorch's operations.
  case hardSwish = "hard_swish"
  /// `x·σ(x)` (`F.silu`, Swish): `mul(x, sigmoid(x))`, within an f32 rounding of PyTorch's
  /// `x/(1 + e^−x)`.
  case silu
  /// `x·Φ(x)` (`F.gelu`, ONNX `Gelu`), in PyTorch's order of operations: with `approximate:
  /// none` (the default) `(x·0.5)·(1 + erf(x·√½))`, with `approximate: tanh`
  /// `(x·0.5)·(1 + tanh(√(2/π)·(x + 0.044715·x·x·x)))`.
  case gelu
  /// `−x` (ONNX `Neg`): `mul(x, −1)`. Exact.
  case neg
  /// `1/x` (ONNX `Reciprocal`): `div(1, x)`. Exact.
  case reciprocal
  /// The maximum over every axis after the first two, kept as size 1 (`[N, C, H, W]` →
  /// `[N, C, 1, 1]`; `AdaptiveMaxPool2d(1)`, ONNX `GlobalMaxPool`): `max(x, axes: [2, …],
  /// keepdims: true)`. Exact; tied maxima share the gradient, where PyTorch gives it to one.
  case globalMaxPool2d = "global_max_pool2d"

  /// The spec-language name.
  public var name: String { rawValue }

  /// The struct the composite's attributes are read through.
  public var attributeSet: any AttributeSet.Type {
    switch self {
    case .leakyRelu: LeakyReluAttributes.self
    case .clip: ClipAttributes.self
    case .hardSigmoid: HardSigmoidAttributes.self
    case .gelu: GeluAttributes.self
    case .relu6, .hardSwish, .silu, .neg, .reciprocal, .globalMaxPool2d: NoAttributes.self
    }
  }

  /// The attributes the composite takes, with their defaults.
  public var attributes: [Op.AttrSpec] { attributeSet.schema }

  /// Adds the composite of `x` to `graph` with typed attributes (of `attributeSet`); see
  /// `build(_:_:named:into:location:)`.
  @discardableResult
  public func build<A: AttributeSet>(
    _ x: ValueID, _ attributes: A, named name: String, into graph: inout Graph,
    location: SourceLocation? = nil
  ) throws(ShapeError) -> ValueID {
    precondition(ObjectIdentifier(attributeSet) == ObjectIdentifier(A.self), "\(name) reads \(attributeSet)")
    return try build(x, attributes.encoded, named: name, into: &graph, location: location)
  }

  /// Adds the composite of `x` to `graph` and returns its result, named `name` (or `name_2`, …
  /// when that is taken); the nodes in between are named `name.TAG`. Attributes the composite
  /// does not know are ignored; missing ones take their defaults. Throws, adding nothing, when
  /// `x` is not floating point or an attribute is of the wrong kind or out of range.
  @discardableResult
  public func build(
    _ x: ValueID, _ attributes: Attributes, named name: String, into graph: inout Graph,
    location: SourceLocation? = nil
  ) throws(ShapeError) -> ValueID {
    let type = graph[x].type
    guard type.dtype.isFloatingPoint else {
      throw ShapeError("\(self.name): x must be floating point, found \(type)")
    }
    var b = GradientBuilder(graph: graph)
    b.prefix = name
    b.location = location
    guard let result = try expand(x, attributes, type, &b) else { return x }
    b.graph.values[result.index].name = b.unique(name)
    graph = b.graph
    return result
  }

  /// The composite's nodes; nil when it is `x` itself (`clip` without bounds).
  private func expand(
    _ x: ValueID, _ a: Attributes, _ type: TensorType,
    _ b: inout GradientBuilder
  ) throws(ShapeError) -> ValueID? {
    func scalar(_ value: Double, _ tag: String, _ b: inout GradientBuilder) throws(ShapeError) -> ValueID {
      try b.add(.constant, [], ConstantAttributes(value: value, shape: [], dtype: type.dtype), tag: tag)[0]
    }
    func node(_ op: Op, _ operands: [ValueID], _ tag: String, _ b: inout GradientBuilder) throws(ShapeError) -> ValueID
    {
      try b.add(op, operands, tag: tag)[0]
    }
    /// `minimum(top, maximum(0, v))`: the bounds first, so they take the gradient at a kink.
    func limited(_ v: ValueID, top: ValueID, _ b: inout GradientBuilder) throws(ShapeError) -> ValueID {
      let lower = try node(.maximum, [scalar(0, "zero", &b), v], "lower", &b)
      return try node(.minimum, [top, lower], "gate", &b)
    }
    switch self {
    case .leakyRelu:
      let alpha = try decode(LeakyReluAttributes.self, a).alpha
      guard alpha.isFinite else { throw ShapeError("leaky_relu: alpha must be finite, found \(alpha)") }
      let scaled = try node(.mul, [x, scalar(alpha, "alpha", &b)], "scaled", &b)
      // α·x is the larger below 0 when α ≤ 1, the smaller when α > 1; first, it takes the
      // gradient at 0 (α, PyTorch's).
      return try node(alpha <= 1 ? .maximum : .minimum, [scaled, x], "result", &b)

    case .clip:
      let bounds = try decode(ClipAttributes.self, a)
      guard !bounds.min.isNaN, !bounds.max.isNaN, bounds.min != .infinity, bounds.max != -.infinity else {
        throw ShapeError(
          "clip: min and max must be numbers (min below +inf, max above -inf), found "
            + "\(AttrValue.formatFloat(bounds.min)) and \(AttrValue.formatFloat(bounds.max))")
      }
      var v = x
      // x first: at a bound the gradient passes, as torch.clamp's does.
      if bounds.min > -.infinity { v = try node(.maximum, [v, scalar(bounds.min, "min", &b)], "lower", &b) }
      if bounds.max < .infinity { v = try node(.minimum, [v, scalar(bounds.max, "max", &b)], "upper", &b) }
      return v == x ? nil : v

    case .relu6:
      let lower = try node(.maximum, [scalar(0, "zero", &b), x], "lower", &b)
      return try node(.minimum, [scalar(6, "six", &b), lower], "result", &b)

    case .hardSigmoid:
      let attributes = try decode(HardSigmoidAttributes.self, a)
      let (alpha, beta) = (attributes.alpha, attributes.beta)
      guard alpha.isFinite, beta.isFinite else {
        throw ShapeError(
          "hard_sigmoid: alpha and beta must be finite, found \(AttrValue.formatFloat(alpha)) "
            + "and \(AttrValue.formatFloat(beta))")
      }
      if attributes == HardSigmoidAttributes(defaults: AttributeDefaults()) {
        let six = try scalar(6, "six", &b)
        let shifted = try node(.add, [x, scalar(3, "three", &b)], "shifted", &b)
        return try node(.div, [limited(shifted, top: six, &b), six], "result", &b)
      }
      let scaled = try node(.mul, [x, scalar(alpha, "alpha", &b)], "scaled", &b)
      let shifted = try node(.add, [scaled, scalar(beta, "beta", &b)], "shifted", &b)
      return try limited(shifted, top: scalar(1, "one", &b), &b)

    case .hardSwish:
      let shifted = try node(.add, [x, scalar(3, "three", &b)], "shifted", &b)
      let six = try scalar(6, "six", &b)
      let product = try node(.mul, [x, limited(shifted, top: six, &b)], "product", &b)
      return try node(.div, [product, six], "result", &b)

    case .silu:
      return try node(.mul, [x, node(.sigmoid, [x], "sigmoid", &b)], "result", &b)

    case .gelu:
      let half = try node(.mul, [x, scalar(0.5, "half", &b)], "half_x", &b)
      let inner: ValueID
      switch try decode(GeluAttributes.self, a).approximate {
      case .none:
        inner = try node(.erf, [node(.mul, [x, scalar(0.5.squareRoot(), "sqrt_half", &b)], "scaled", &b)], "erf", &b)
      case .tanh:
        let cube = try node(.mul, [node(.mul, [x, x], "square", &b), x], "cube", &b)
        let sum = try node(.add, [x, node(.mul, [cube, scalar(0.044715, "kappa", &b)], "cubic", &b)], "sum", &b)
        let scaled = try node(.mul, [sum, scalar((2 / Double.pi).squareRoot(), "beta", &b)], "scaled", &b)
        inner = try node(.tanh, [scaled], "tanh", &b)
      }
      return try node(.mul, [half, node(.add, [scalar(1, "one", &b), inner], "factor", &b)], "result", &b)

    case .neg:
      return try node(.mul, [x, scalar(-1, "minus_one", &b)], "result", &b)

    case .reciprocal:
      return try node(.div, [scalar(1, "one", &b), x], "result", &b)

    case .globalMaxPool2d:
      guard type.rank >= 3 else {
        throw ShapeError("global_max_pool2d: x must have rank at least 3 ([N, C, …]), found \(type.shapeDescription)")
      }
      let reduce = ReduceAttributes(axes: Array(2..<type.rank), keepdims: true)
      return try b.add(.max, [x], reduce, tag: "result")[0]
    }
  }

  /// The attributes as `T`, or which one does not fit.
  private func decode<T: AttributeSet>(_: T.Type, _ a: Attributes) throws(ShapeError) -> T {
    do { return try T(decoding: a) } catch { throw ShapeError("\(name): \(error.message)") }
  }
}

/// `leaky_relu`: the slope below zero.
public struct LeakyReluAttributes: AttributeSet {
  /// `alpha`: the slope for negative inputs (`negative_slope` in PyTorch).
  public var alpha = 0.01

  /// Every attribute given.
  public init(alpha: Double) { self.alpha = alpha }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) { v.defaulted("alpha", &alpha) }
}

/// `clip`: the bounds, infinite when absent.
public struct ClipAttributes: AttributeSet {
  /// `min`: the lower bound; -inf for none.
  public var min = -Double.infinity
  /// `max`: the upper bound; +inf for none.
  public var max = Double.infinity

  /// Every attribute given (an infinite bound is no bound).
  public init(min: Double, max: Double) {
    self.min = min
    self.max = max
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.defaulted("min", &min)
    v.defaulted("max", &max)
  }
}

/// `hard_sigmoid`: `max(0, min(1, alpha·x + beta))`.
public struct HardSigmoidAttributes: AttributeSet {
  /// `alpha`: the slope (PyTorch's 1/6 by default, which then takes PyTorch's form; ONNX's
  /// default is 0.2).
  public var alpha = 1.0 / 6
  /// `beta`: the offset.
  public var beta = 0.5

  /// Every attribute given.
  public init(alpha: Double, beta: Double) {
    self.alpha = alpha
    self.beta = beta
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.defaulted("alpha", &alpha)
    v.defaulted("beta", &beta)
  }
}

/// `gelu`: exact (erf) or PyTorch's tanh approximation.
public struct GeluAttributes: AttributeSet {
  /// `approximate` (`F.gelu`'s, and ONNX `Gelu`'s): `none` or `tanh`.
  public enum Approximation: String, AttributeChoice {
    case none, tanh
  }

  /// `approximate`: `none` uses erf.
  public var approximate = Approximation.none

  /// Every attribute given.
  public init(approximate: Approximation) { self.approximate = approximate }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) { v.defaulted("approximate", &approximate) }
}
