import GlassboxIR

/// ONNX operators as Glassbox ops. An operator with a Glassbox op of its own maps onto it
/// (`Exp`, `Pow`, `Max`, `LRN`, `Pad`); one the spec language has as a composite is built by
/// `Composite.build` (`LeakyRelu`, `Clip`, `HardSwish`, `Gelu`); others are composed from
/// existing ops here (`Elu` is `relu(x) + minimum(0, α·(eˣ − 1))`, `Gemm` a `linear` with its
/// constants folded, a nearest `Resize` by whole factors a broadcast); the rest are listed as
/// unsupported.
extension Importer {
  /// The operator types of the default domain the importer converts or folds.
  static let operators: Set<String> = Set([
    "Identity", "Dropout", "Cast", "CastLike", "Constant", "ConstantOfShape", "Shape", "Size", "Add", "Sub", "Mul",
    "Div", "Sum", "Mean", "Max", "Min", "Relu", "Sigmoid", "Tanh", "LeakyRelu", "PRelu", "Clip", "HardSigmoid",
    "HardSwish", "Neg", "Reciprocal", "Abs", "Softsign", "Pow", "Exp", "Log", "Sqrt", "Erf", "Gelu", "Elu", "Selu",
    "Celu", "Softplus", "LRN", "Softmax", "LogSoftmax", "Conv", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "BatchNormalization", "LayerNormalization", "InstanceNormalization", "Gemm", "MatMul", "Flatten",
    "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "Slice", "Gather", "Expand", "Tile", "Pad",
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceSumSquare", "ReduceL1", "Resize", "Upsample", "LSTM",
    "GRU", "RNN", "ConvTranspose",
  ]).union(foldedOnly)

  /// Operator types that fold when their inputs are known at import (shape arithmetic) and have
  /// no Glassbox form otherwise.
  static let foldedOnly: Set<String> = [
    "Range", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Not", "Where",
    "Mod", "ReduceProd", "Floor", "Ceil", "Round", "Sign",
  ]

  /// Converts one node, folding it when its outputs are known at import.
  mutating func convert(_ n: NodeView) throws(ImportFailure) {
    if let folded = try fold(n) {
      for (k, c) in folded.enumerated() {
        if let o = n.output(k) { env[o] = .constant(c) }
      }
      return
    }
    switch n.opType {
    case "Identity", "Dropout":
      if n.opType == "Dropout", opset >= 12, let t = n.input(2), case .constant(let c)? = env[t],
        (try? c.scalarInt()) ?? 0 != 0
      {
        throw .unsupported("training_mode is true (a random mask); Glassbox imports models for inference")
      }
      try alias(n, try x(n, 0))
    case "Cast", "CastLike":
      let v = try x(n, 0)
      let target: DType
      if n.opType == "Cast" {
        target = try castTarget(n)
      } else {
        guard let name = n.input(1), let entry = env[name] else { throw .invalid("needs a second input") }
        switch entry {
        case .value(let id): target = type(id).dtype
        case .constant(let c): target = c.dtype
        case .fill(_, let d, _): target = d
        }
      }
      guard target == type(v).dtype || (target.isFloatingPoint && type(v).dtype.isFloatingPoint) else {
        throw .unsupported(
          "a cast of a value computed at run time from \(type(v).dtype.rawValue) to "
            + "\(target.rawValue)")
      }
      try alias(n, v)
    case "ConstantOfShape":
      guard let s = n.input(0), case .constant(let shape)? = env[s] else {
        throw .unsupported("a shape computed at run time")
      }
      let filled = try filled(n, shape: [])
      guard filled.dtype == .f32, case .splat(let v) = filled.elements else {
        throw .unsupported("an integer fill of a symbolic shape")
      }
      guard let o = n.output(0) else { return }
      env[o] = .fill(v, .f32, shape.dims)
    case "Add", "Sub", "Mul", "Div":
      try elementwise(n)
    case "Sum", "Mean", "Max", "Min":
      try variadic(n)
    case "Relu", "Sigmoid", "Tanh":
      let op: Op = n.opType == "Relu" ? .relu : (n.opType == "Sigmoid" ? .sigmoid : .tanh)
      set(n, try emit(op, [try x(n, 0)], NoAttributes(), out(n)))
    case "Exp", "Log", "Sqrt", "Erf", "Abs":
      let op: Op = ["Exp": .exp, "Log": .log, "Sqrt": .sqrt, "Erf": .erf][n.opType] ?? .abs
      set(n, try emit(op, [try x(n, 0)], NoAttributes(), out(n)))
    case "Pow":
      try power(n)
    case "LeakyRelu", "Clip", "HardSigmoid", "HardSwish", "Gelu", "Neg", "Reciprocal":
      try composite(n)
    case "PRelu", "Softsign", "Elu", "Selu", "Celu", "Softplus":
      try composedActivation(n)
    case "LRN":
      guard n.has("size") else { throw .invalid("needs the attribute 'size'") }
      let size = try n.int("size", 0)
      let attributes = LRNAttributes(
        size: size, alpha: Double(try n.float("alpha", 1e-4)),
        beta: Double(try n.float("beta", 0.75)), bias: Double(try n.float("bias", 1)))
      set(n, try emit(.lrn, [try x(n, 0)], attributes, out(n)))
    case "Softmax", "LogSoftmax":
      try softmax(n)
    case "Conv":
      try convolution(n)
    case "ConvTranspose":
      try transposedConvolution(n)
    case "MaxPool", "AveragePool":
      try pooling(n)
    case "GlobalAveragePool", "GlobalMaxPool":
      let v = try x(n, 0)
      let rank = type(v).rank
      guard rank >= 3 else { throw .invalid("input must be [N, C, …], found \(type(v).shapeDescription)") }
      if n.opType == "GlobalAveragePool", rank == 4 {
        set(n, try emit(.globalAvgPool2d, [v], NoAttributes(), out(n)))
      } else {
        let op: Op = n.opType == "GlobalAveragePool" ? .mean : .max
        set(n, try emit(op, [v], ReduceAttributes(axes: Array(2..<rank), keepdims: true), out(n)))
      }
    case "BatchNormalization":
      try batchNormalization(n)
    case "LayerNormalization":
      try layerNormalization(n)
    case "InstanceNormalization":
      try instanceNormalization(n)
    case "Gemm":
      try gemm(n)
    case "MatMul":
      try matmul(n)
    case "Flatten", "Reshape", "Squeeze", "Unsqueeze":
      try reshapeNode(n)
    case "Transpose":
      let v = try x(n, 0)
      let rank = type(v).rank
      let perm = try n.ints("perm") ?? Array((0..<rank).reversed())
      guard perm.sorted() == Array(0..<rank) else {
        throw .invalid("perm \(perm) is not a permutation of \(rank) axes")
      }
      if perm == Array(0..<rank) { return try alias(n, v) }
      set(n, try emit(.transpose, [v], TransposeAttributes(perm: perm), out(n)))
    case "Concat":
      try concat(n)
    case "Split":
      try split(n)
    case "Slice":
      try sliceNode(n)
    case "Gather":
      try gatherNode(n)
    case "Expand":
      try expand(n)
    case "Tile":
      try tile(n)
    case "Pad":
      try pad(n)
    case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceSumSquare", "ReduceL1":
      try reduction(n)
    case "Resize", "Upsample":
      try resize(n)
    case "LSTM":
      try lstm(n)
    case "GRU", "RNN":
      try simpleRecurrence(n)
    case "Floor", "Ceil", "Round", "Sign":
      throw .unsupportedOperator
    default:
      if Importer.operators.contains(n.opType) {
        throw .unsupported(
          "only on values known at import (it folds away then); here an input is computed at "
            + "run time")
      }
      throw .unsupportedOperator
    }
  }

  // MARK: Helpers

  /// The spec name of output `k`.
  mutating func out(_ n: NodeView, _ k: Int = 0) -> String {
    names.claim(n.output(k) ?? "\(n.label).\(k)")
  }

  /// A fresh name for a value the node's composition makes: `OUTPUT.suffix`.
  mutating func temporary(_ n: NodeView, _ suffix: String) -> String { names.fresh(out(n) + "." + suffix) }

  /// The graph value of input `i` (a constant becomes one).
  mutating func x(
    _ n: NodeView, _ i: Int, asWeight: Bool = false, initializer: ParameterInit = .zeros
  )
    throws(ImportFailure) -> ValueID
  {
    guard let name = n.input(i) else { throw .invalid("input \(i) is missing") }
    return try value(name, asWeight: asWeight, initializer: initializer, preferredName: weightName(n, i))
  }

  /// A parameter name for a weight torch.onnx made up (`onnx::Conv_52`, a convolution's weight
  /// with its batch norm folded in; `onnx::MatMul_80`, a linear layer's weight transposed):
  /// the node's module path and the weight's role, as in the `state_dict`
  /// (`/layer1/layer1.0/conv1/Conv` → `layer1.0.conv1.weight`). Nil for every other name.
  mutating func weightName(_ n: NodeView, _ i: Int) -> String? {
    guard let name = n.input(i), name.hasPrefix("onnx::"), case .constant? = env[name], materialized[name] == nil,
      let module = ONNXNames.modulePath(ofNode: n.proto.name)
    else { return nil }
    let role: String
    switch (n.opType, i) {
    case ("Conv", 1), ("ConvTranspose", 1), ("Gemm", 1), ("MatMul", 1): role = "weight"
    case ("Conv", 2), ("ConvTranspose", 2), ("Gemm", 2), ("Add", 1): role = "bias"
    default: return nil
    }
    return names.fresh(module + "." + role)
  }

  /// Input `i` when it is known at import; nil when absent; an error when computed at run time.
  func constant(_ n: NodeView, _ i: Int, _ what: String) throws(ImportFailure) -> Constant? {
    guard let name = n.input(i) else { return nil }
    guard case .constant(let c)? = env[name] else {
      throw .unsupported("\(what) (input \(i)) is computed at run time; Glassbox needs it at import")
    }
    return c
  }

  /// Whether input `i` is given.
  func has(_ n: NodeView, _ i: Int) -> Bool { n.input(i) != nil }

  mutating func set(_ n: NodeView, _ v: ValueID, _ k: Int = 0) {
    if let o = n.output(k) { env[o] = .value(v) }
  }

  /// The node passes a value through unchanged.
  mutating func alias(_ n: NodeView, _ v: ValueID) throws(ImportFailure) { set(n, v) }

  /// A one-element `constant` node.
  mutating func scalar(_ v: Float, _ name: String, like: ValueID? = nil) throws(ImportFailure) -> ValueID {
    let dtype = like.map { type($0).dtype } ?? .f32
    return try emit(.constant, [], ConstantAttributes(value: Double(v), shape: [], dtype: dtype), name)
  }

  mutating func binary(_ op: Op, _ a: ValueID, _ b: ValueID, _ name: String) throws(ImportFailure) -> ValueID {
    try emit(op, [a, b], NoAttributes(), name)
  }

  mutating func reshape(_ v: ValueID, _ shape: [Dim], _ name: String) throws(ImportFailure) -> ValueID {
    if type(v).shape == shape { return v }
    return try emit(.reshape, [v], ReshapeAttributes(shape: shape), name)
  }

  /// Static sizes of `dims`, or an error naming the first symbolic one.
  func staticSizes(_ dims: [Dim], _ what: String) throws(ImportFailure) -> [Int] {
    var out: [Int] = []
    for d in dims {
      guard let v = d.staticValue else { throw .unsupported("\(what) has the symbolic size \(d); bind it") }
      out.append(v)
    }
    return out
  }

  // MARK: Elementwise

  mutating func elementwise(_ n: NodeView) throws(ImportFailure) {
    let op: Op = ["Add": .add, "Sub": .sub, "Mul": .mul, "Div": .div][n.opType] ?? .add
    let a = try x(n, 0)
    var b = try x(n, 1)
    if opset < 7, try n.int("broadcast", 0) == 1, n.has("axis") {
      // Before opset 7, B's axes line up with A's from `axis` on.
      let rankA = type(a).rank, shapeB = type(b).shape
      let axis = try checkedAxis(try n.int("axis", 0), rank: rankA)
      let padded = shapeB + [Dim](repeating: 1, count: max(rankA - axis - shapeB.count, 0))
      b = try reshape(b, padded, temporary(n, "aligned"))
    }
    set(n, try binary(op, a, b, out(n)))
  }

  /// `Sum`, `Mean`, `Max`, `Min` of any number of inputs: a chain of pairs.
  mutating func variadic(_ n: NodeView) throws(ImportFailure) {
    var operands: [ValueID] = []
    for i in 0..<n.inputCount where has(n, i) { operands.append(try x(n, i)) }
    guard var acc = operands.first else { throw .invalid("needs inputs") }
    if operands.count == 1 { return try alias(n, acc) }
    let last = operands.count - 1
    for (i, next) in operands.enumerated().dropFirst() {
      let name = i == last && n.opType != "Mean" ? out(n) : temporary(n, "\(i)")
      switch n.opType {
      case "Sum", "Mean": acc = try binary(.add, acc, next, name)
      case "Max": acc = try binary(.maximum, acc, next, name)
      default: acc = try binary(.minimum, acc, next, name)
      }
    }
    if n.opType == "Mean" {
      acc = try binary(.div, acc, try scalar(Float(operands.count), temporary(n, "count"), like: acc), out(n))
    }
    set(n, acc)
  }

  /// The spec language's composites (`Composite.build`), ONNX's attributes with ONNX's defaults;
  /// the result is named after the node's output and the values inside it `OUTPUT.TAG`.
  mutating func composite(_ n: NodeView) throws(ImportFailure) {
    let v = try x(n, 0)
    let kind: Composite, attributes: Attributes
    switch n.opType {
    case "LeakyRelu":
      (kind, attributes) = (.leakyRelu, LeakyReluAttributes(alpha: Double(try n.float("alpha", 0.01))).encoded)
    case "Clip":
      var low = -Double.infinity, high = Double.infinity
      if opset < 11 {
        if n.has("min") { low = Double(try n.float("min", 0)) }
        if n.has("max") { high = Double(try n.float("max", 0)) }
      } else {
        if let c = try constant(n, 1, "min") { low = Double(try c.scalarFloat()) }
        if let c = try constant(n, 2, "max") { high = Double(try c.scalarFloat()) }
      }
      (kind, attributes) = (.clip, ClipAttributes(min: low, max: high).encoded)
    case "HardSigmoid":
      let a = HardSigmoidAttributes(alpha: Double(try n.float("alpha", 0.2)), beta: Double(try n.float("beta", 0.5)))
      (kind, attributes) = (.hardSigmoid, a.encoded)
    case "HardSwish":
      (kind, attributes) = (.hardSwish, NoAttributes().encoded)
    case "Gelu":
      let form = try n.string("approximate", "none")
      guard let approximate = GeluAttributes.Approximation(rawValue: form) else {
        throw .invalid("approximate must be 'none' or 'tanh', found '\(form)'")
      }
      (kind, attributes) = (.gelu, GeluAttributes(approximate: approximate).encoded)
    case "Neg":
      (kind, attributes) = (.neg, NoAttributes().encoded)
    default:  // Reciprocal
      (kind, attributes) = (.reciprocal, NoAttributes().encoded)
    }
    let name = out(n), first = graph.values.count
    let result: ValueID
    do {
      result = try kind.build(v, attributes, named: name, into: &graph)
    } catch {
      throw .invalid(error.message)
    }
    // The composite's inner values take their names from the table too, so no ONNX name
    // claimed later meets them.
    for i in first..<graph.values.count where i != result.index {
      graph.values[i].name = names.fresh(graph.values[i].name)
    }
    set(n, result)
  }

  /// `Pow` as `pow` (broadcast as NumPy); an exponent known at import becomes a constant of
  /// the base's element type, 1 leaves the base as it is.
  mutating func power(_ n: NodeView) throws(ImportFailure) {
    let v = try x(n, 0)
    guard type(v).dtype.isFloatingPoint else {
      throw .unsupported("a power of \(type(v).dtype.rawValue) values (Glassbox's pow is floating point)")
    }
    guard let e = n.input(1) else { throw .invalid("needs an exponent") }
    switch env[e] {
    case .constant(let c)?:
      let shape = c.shape.map { Dim($0) }
      if c.uniformFloat == 1, (try? broadcast(type(v).shape, shape, op: .pow)) == type(v).shape {
        return try alias(n, v)
      }
      let values = try c.floatValues()
      let exponent: ValueID
      if c.count == 1 {
        exponent = try emit(
          .constant, [],
          ConstantAttributes(
            value: Double(values[0]), shape: shape,
            dtype: type(v).dtype), temporary(n, "exponent"))
      } else {
        exponent = try materialize(Constant(floats: values, shape: c.shape), name: temporary(n, "exponent"))
      }
      set(n, try binary(.pow, v, exponent, out(n)))
    default:
      let exponent = try x(n, 1)
      guard type(exponent).dtype == type(v).dtype else {
        throw .unsupported("an exponent of \(type(exponent).dtype.rawValue) values computed at run time")
      }
      set(n, try binary(.pow, v, exponent, out(n)))
    }
  }

  /// Activations composed from existing ops: `PRelu` and `Softsign` exactly, the exponential
  /// ones within an f32 rounding of ONNX's formulas.
  mutating func composedActivation(_ n: NodeView) throws(ImportFailure) {
    let v = try x(n, 0)
    func unary(_ op: Op, _ a: ValueID, _ suffix: String) throws(ImportFailure) -> ValueID {
      try emit(op, [a], NoAttributes(), temporary(n, suffix))
    }
    switch n.opType {
    case "PRelu":
      // relu(x) + slope·(x − relu(x)): x where x > 0, slope·x elsewhere, both exactly.
      var slope = try x(n, 1, asWeight: true)
      // A slope per channel [C] (PRelu before opset 7, and torch.onnx's PReLU(C)) applies along axis 1.
      let (xs, ss) = (type(v).shape, type(slope).shape)
      if (try? broadcast(xs, ss, op: .mul)) == nil, ss.count == 1, xs.count >= 2, ss[0] == xs[1] {
        slope = try reshape(slope, [ss[0]] + [Dim](repeating: 1, count: xs.count - 2), temporary(n, "per_channel"))
      }
      let positive = try unary(.relu, v, "positive")
      let negative = try binary(.sub, v, positive, temporary(n, "negative"))
      let scaled = try binary(.mul, negative, slope, temporary(n, "scaled"))
      set(n, try binary(.add, positive, scaled, out(n)))
    case "Softsign":
      // x/(1 + |x|)
      let one = try scalar(1, temporary(n, "one"), like: v)
      let denominator = try binary(.add, try unary(.abs, v, "magnitude"), one, temporary(n, "denominator"))
      set(n, try binary(.div, v, denominator, out(n)))
    case "Softplus":
      // log(1 + eˣ) as relu(x) + log(1 + e^−|x|), which never overflows.
      let minus = try scalar(-1, temporary(n, "minus_one"), like: v)
      let negated = try binary(.mul, try unary(.abs, v, "magnitude"), minus, temporary(n, "negated"))
      let one = try scalar(1, temporary(n, "one"), like: v)
      let sum = try binary(.add, one, try unary(.exp, negated, "exp"), temporary(n, "sum"))
      set(n, try binary(.add, try unary(.relu, v, "positive"), try unary(.log, sum, "log"), out(n)))
    default:
      // Elu, Celu and Selu: γ·(relu(x) + minimum(0, α·(e^(x/c) − 1))), the minimum taking the
      // negative part for α > 0 (c = α for Celu, else 1; γ 1 but for Selu).
      let alpha: Float, gamma: Float
      switch n.opType {
      case "Selu": (alpha, gamma) = (try n.float("alpha", 1.67326319), try n.float("gamma", 1.05070102))
      default: (alpha, gamma) = (try n.float("alpha", 1), 1)
      }
      guard alpha > 0, alpha.isFinite else { throw .unsupported("alpha \(alpha) (a positive alpha composes)") }
      var argument = v
      if n.opType == "Celu" {
        argument = try binary(.div, v, try scalar(alpha, temporary(n, "alpha"), like: v), temporary(n, "scaled"))
      }
      let one = try scalar(1, temporary(n, "one"), like: v)
      let shifted = try binary(.sub, try unary(.exp, argument, "exp"), one, temporary(n, "shifted"))
      let negative = try binary(
        .mul, try scalar(alpha, temporary(n, "alpha_factor"), like: v), shifted,
        temporary(n, "negative_part"))
      let zero = try scalar(0, temporary(n, "zero"), like: v)
      let lower = try binary(.minimum, zero, negative, temporary(n, "lower"))
      let name = n.opType == "Selu" ? temporary(n, "elu") : out(n)
      let elu = try binary(.add, try unary(.relu, v, "positive"), lower, name)
      if n.opType != "Selu" { return set(n, elu) }
      set(n, try binary(.mul, elu, try scalar(gamma, temporary(n, "gamma"), like: v), out(n)))
    }
  }

  /// `InstanceNormalization` of `x: [N, C, …]`, each image's channel over its positions:
  /// `scale·(x − mean)/√(variance + ε) + B` (biased variance, `scale` and `B` of `[C]`),
  /// composed from `mean`, `sqrt` and arithmetic.
  mutating func instanceNormalization(_ n: NodeView) throws(ImportFailure) {
    let v = try x(n, 0)
    let shape = type(v).shape
    guard shape.count >= 3 else { throw .invalid("input must be [N, C, …], found \(type(v).shapeDescription)") }
    let axes = ReduceAttributes(axes: Array(2..<shape.count), keepdims: true)
    let perChannel = [shape[1]] + [Dim](repeating: 1, count: shape.count - 2)
    let scale = try x(n, 1, asWeight: true, initializer: .ones), bias = try x(n, 2, asWeight: true)
    guard type(scale).shape == [shape[1]], type(bias).shape == [shape[1]] else {
      throw .invalid("scale \(type(scale).shapeDescription) and B \(type(bias).shapeDescription) must be [\(shape[1])]")
    }
    let mean = try emit(.mean, [v], axes, temporary(n, "mean"))
    let centred = try binary(.sub, v, mean, temporary(n, "centred"))
    let square = try binary(.mul, centred, centred, temporary(n, "square"))
    let variance = try emit(.mean, [square], axes, temporary(n, "variance"))
    let eps = try scalar(try n.float("epsilon", 1e-5), temporary(n, "epsilon"), like: v)
    let shifted = try binary(.add, variance, eps, temporary(n, "shifted"))
    let deviation = try emit(.sqrt, [shifted], NoAttributes(), temporary(n, "deviation"))
    let normalized = try binary(.div, centred, deviation, temporary(n, "normalized"))
    let scaled = try binary(
      .mul, normalized, try reshape(scale, perChannel, temporary(n, "scale")),
      temporary(n, "scaled"))
    set(n, try binary(.add, scaled, try reshape(bias, perChannel, temporary(n, "bias")), out(n)))
  }

  mutating func softmax(_ n: NodeView) throws(ImportFailure) {
    let v = try x(n, 0)
    let op: Op = n.opType == "Softmax" ? .softmax : .logSoftmax
    let shape = type(v).shape
    let axis = try checkedAxis(try n.int("axis", opset >= 13 ? -1 : 1), rank: shape.count)
    if opset >= 13 || axis == shape.count - 1 {
      return set(n, try emit(op, [v], SoftmaxAttributes(axis: axis == shape.count - 1 ? -1 : axis), out(n)))
    }
    // Before opset 13, the input is flattened to [∏ axes before `axis`, ∏ the rest] first.
    let rows = try product(shape[..<axis]), columns = try product(shape[axis...])
    let flat = try reshape(v, [rows, columns], temporary(n, "rows"))
    let s = try emit(op, [flat], SoftmaxAttributes(axis: -1), temporary(n, "normalized"))
    set(n, try reshape(s, shape, out(n)))
  }

  // MARK: Windows

  /// Window sizes, strides, dilations and pads must lie in 0...`maxWindow` (1... for all but pads).
  static let maxWindow = 1 << 16

  /// Checks a window's attributes (each a size per spatial axis) before arithmetic on them.
  func checkWindow(_ values: [[Int]], pads: [Int] = []) throws(ImportFailure) {
    for list in values where !list.allSatisfy({ $0 >= 1 && $0 <= Importer.maxWindow }) {
      throw .invalid("window sizes, strides and dilations must lie in 1...\(Importer.maxWindow), found \(list)")
    }
    guard pads.allSatisfy({ $0 >= 0 && $0 <= Importer.maxWindow }) else {
      throw .invalid("pads must lie in 0...\(Importer.maxWindow), found \(pads)")
    }
  }

  /// Padding before and after each spatial axis from `pads` or `auto_pad`.
  func spatialPads(
    _ n: NodeView, sizes: [Dim], kernel: [Int], strides: [Int], dilations: [Int]
  )
    throws(ImportFailure) -> [(begin: Int, end: Int)]
  {
    try checkWindow([kernel, strides, dilations])
    let k = kernel.count
    let autoPad = try n.string("auto_pad", "NOTSET")
    switch autoPad {
    case "NOTSET", "":
      let pads = try n.ints("pads") ?? [Int](repeating: 0, count: 2 * k)
      guard pads.count == 2 * k else { throw .invalid("pads \(pads) must be \(2 * k) sizes") }
      try checkWindow([], pads: pads)
      return (0..<k).map { (pads[$0], pads[$0 + k]) }
    case "VALID":
      return [(Int, Int)](repeating: (0, 0), count: k)
    case "SAME_UPPER", "SAME_LOWER":
      let inputs = try staticSizes(sizes, "a spatial axis")
      guard inputs.allSatisfy({ $0 <= Constant.maxElements }) else { throw .invalid("spatial sizes \(inputs)") }
      return (0..<k).map { i in
        let out = (inputs[i] + strides[i] - 1) / strides[i]
        let total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - inputs[i], 0)
        return autoPad == "SAME_UPPER" ? (total / 2, total - total / 2) : (total - total / 2, total / 2)
      }
    default:
      throw .invalid("auto_pad '\(autoPad)' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID")
    }
  }

  /// `x` with `before` and `after` elements of `value` added along `axis` (a `concat` with
  /// `constant` nodes).
  mutating func padAxis(
    _ n: NodeView, _ v: ValueID, axis: Int, before: Int, after: Int, value: Float
  )
    throws(ImportFailure) -> ValueID
  {
    guard before > 0 || after > 0 else { return v }
    var parts: [ValueID] = []
    let shape = type(v).shape
    for (count, side) in [(before, "before"), (after, "after")] where count > 0 {
      var s = shape
      s[axis] = Dim(count)
      let fill = try emit(
        .constant, [], ConstantAttributes(value: Double(value), shape: s, dtype: type(v).dtype),
        temporary(n, "pad\(axis)_\(side)"))
      parts.append(fill)
    }
    let operands = before > 0 ? [parts[0], v] + parts.dropFirst() : [v] + parts
    return try emit(.concat, operands, ConcatAttributes(axis: axis), temporary(n, "padded\(axis)"))
  }

  /// `Conv` as `conv2d`; a 1-D convolution runs as a 2-D one of height 1, asymmetric padding
  /// is added explicitly.
  mutating func convolution(_ n: NodeView) throws(ImportFailure) {
    var v = try x(n, 0)
    var w = try x(n, 1, asWeight: true, initializer: .uniform(bound: 0))
    let rank = type(v).rank
    guard rank == 3 || rank == 4 else {
      throw .unsupported("a convolution over \(rank - 2) spatial axes (Glassbox has conv2d, and 1-D through it)")
    }
    guard type(w).rank == rank else { throw .invalid("weight \(type(w).shapeDescription) does not fit the input") }
    let spatial = rank - 2
    let kernel = try staticSizes(Array(type(w).shape[2...]), "the kernel")
    let strides = try n.ints("strides") ?? [Int](repeating: 1, count: spatial)
    let dilations = try n.ints("dilations") ?? [Int](repeating: 1, count: spatial)
    guard strides.count == spatial, dilations.count == spatial else {
      throw .invalid("strides \(strides) and dilations \(dilations) must have \(spatial) entries")
    }
    if let k = try n.ints("kernel_shape"), k != kernel {
      throw .invalid("kernel_shape \(k) differs from the weight's \(kernel)")
    }
    var pads = try spatialPads(
      n, sizes: Array(type(v).shape[2...]), kernel: kernel, strides: strides,
      dilations: dilations)
    let group = try n.int("group", 1)
    let bound = 1 / Double(max(kernel.reduce(type(w).shape[1].staticValue ?? 1, &*), 1)).squareRoot()
    setInitializer(of: w, .uniform(bound: bound))
    var bias: ValueID?
    if has(n, 2) {
      bias = try x(n, 2, asWeight: true)
      if let b = bias { setInitializer(of: b, .uniform(bound: bound)) }
    }
    if rank == 3 {
      let s = type(v).shape
      v = try reshape(v, [s[0], s[1], 1, s[2]], temporary(n, "as_2d"))
      let ws = type(w).shape
      w = try reshape(w, [ws[0], ws[1], 1, ws[2]], temporary(n, "weight_2d"))
      pads = [(0, 0)] + pads
    }
    let strides2 = rank == 3 ? [1] + strides : strides, dilations2 = rank == 3 ? [1] + dilations : dilations
    // Padding beyond the symmetric part goes in as explicit zeros.
    var symmetric: [Int] = []
    for (axis, p) in pads.enumerated() {
      let common = min(p.begin, p.end)
      v = try padAxis(n, v, axis: 2 + axis, before: p.begin - common, after: p.end - common, value: 0)
      symmetric.append(common)
    }
    let geometry = ConvolutionGeometry(
      stride: Pair(strides2[0], strides2[1]),
      padding: Pair(symmetric[0], symmetric[1]),
      dilation: Pair(dilations2[0], dilations2[1]), groups: group)
    let operands = [v, w] + (bias.map { [$0] } ?? [])
    let name = rank == 3 ? temporary(n, "conv2d") : out(n)
    var y = try emit(
      .conv2d, operands, ConvolutionAttributes(geometry: geometry, activation: .none, layout: .plain), name)
    if rank == 3 {
      let s = type(y).shape
      y = try reshape(y, [s[0], s[1], s[3]], out(n))
    }
    set(n, y)
  }

  /// `v`'s node result renamed to `name` (its only use so far is being returned), so the
  /// composed op's last value carries the ONNX output's name; `v` itself when `name` is nil.
  mutating func renamed(_ v: ValueID, _ name: String?) throws(ImportFailure) -> ValueID {
    guard let name, graph[v].name != name else { return v }
    guard case .node = graph[v].origin else { return v }
    graph.values[v.index].name = name
    return v
  }

  /// `ConvTranspose` as `conv2d_backward_input`, the input gradient of the convolution it
  /// transposes: `W: [Cin, Cout/group, kH, kW]` is that convolution's weight, the output size
  /// `(H − 1)·s − 2p + d(k − 1) + 1 + output_padding` its input size. (The op has no gradient
  /// of its own, so taps cannot see through it.)
  mutating func transposedConvolution(_ n: NodeView) throws(ImportFailure) {
    var v = try x(n, 0)
    var w = try x(n, 1, asWeight: true)
    let rank = type(v).rank
    guard rank == 3 || rank == 4, type(w).rank == rank else {
      throw .unsupported("a transposed convolution over \(rank - 2) spatial axes")
    }
    let spatial = rank - 2
    let kernel = try staticSizes(Array(type(w).shape[2...]), "the kernel")
    let sizes = try staticSizes(Array(type(v).shape[2...]), "a spatial axis")
    let strides = try n.ints("strides") ?? [Int](repeating: 1, count: spatial)
    let dilations = try n.ints("dilations") ?? [Int](repeating: 1, count: spatial)
    let extra = try n.ints("output_padding") ?? [Int](repeating: 0, count: spatial)
    guard strides.count == spatial, dilations.count == spatial, extra.count == spatial else {
      throw .invalid("strides, dilations and output_padding must have \(spatial) entries")
    }
    if n.has("output_shape") { throw .unsupported("output_shape") }
    try checkWindow([kernel, strides, dilations], pads: try n.ints("pads") ?? [])
    try checkWindow([], pads: extra)
    let autoPad = try n.string("auto_pad", "NOTSET")
    guard autoPad == "NOTSET" || autoPad == "VALID" || autoPad.isEmpty else {
      throw .unsupported("auto_pad \(autoPad)")
    }
    let pads =
      autoPad == "VALID"
      ? [Int](repeating: 0, count: 2 * spatial)
      : try n.ints("pads") ?? [Int](repeating: 0, count: 2 * spatial)
    guard pads.count == 2 * spatial, (0..<spatial).allSatisfy({ pads[$0] == pads[$0 + spatial] }) else {
      throw .unsupported("asymmetric pads \(pads)")
    }
    var outputs: [Int] = []
    for i in 0..<spatial {
      let o = (sizes[i] - 1) * strides[i] - 2 * pads[i] + dilations[i] * (kernel[i] - 1) + 1 + extra[i]
      guard extra[i] >= 0, extra[i] < max(strides[i], dilations[i]), o >= 1 else {
        throw .invalid("output_padding \(extra) must be below the stride and the output positive")
      }
      outputs.append(o)
    }
    var geometry2 = (strides, pads.prefix(spatial).map { $0 }, dilations, outputs)
    if rank == 3 {
      let s = type(v).shape, ws = type(w).shape
      v = try reshape(v, [s[0], s[1], 1, s[2]], temporary(n, "as_2d"))
      w = try reshape(w, [ws[0], ws[1], 1, ws[2]], temporary(n, "weight_2d"))
      geometry2 = ([1] + strides, [0] + geometry2.1, [1] + dilations, [1] + outputs)
    }
    let (s2, p2, d2, o2) = geometry2
    let geometry = ConvolutionGeometry(
      stride: Pair(s2[0], s2[1]), padding: Pair(p2[0], p2[1]),
      dilation: Pair(d2[0], d2[1]), groups: try n.int("group", 1))
    let hasBias = has(n, 2)
    var y = try emit(
      .conv2dBackwardInput, [v, w],
      ConvolutionInputGradientAttributes(geometry: geometry, inputSize: Pair(o2[0], o2[1])),
      hasBias || rank == 3 ? temporary(n, "transposed") : out(n))
    if hasBias {
      let b = try x(n, 2, asWeight: true)
      let channels = type(b).shape
      let column = try reshape(b, channels + [1, 1], temporary(n, "bias_column"))
      y = try binary(.add, y, column, rank == 3 ? temporary(n, "biased") : out(n))
    }
    if rank == 3 {
      let s = type(y).shape
      y = try reshape(y, [s[0], s[1], s[3]], out(n))
    }
    set(n, y)
  }

  /// A parameter's initialiser (how a user training from scratch would draw it).
  mutating func setInitializer(of v: ValueID, _ initializer: ParameterInit) {
    guard case .parameter(let p) = graph[v].origin else { return }
    graph.parameters[p].initializer = initializer
  }

  /// `MaxPool` and `AveragePool` as `max_pool2d` and `avg_pool2d` (1-D as height 1);
  /// asymmetric padding runs as symmetric padding with the extra windows sliced off, where
  /// the stride lets it.
  mutating func pooling(_ n: NodeView) throws(ImportFailure) {
    var v = try x(n, 0)
    let rank = type(v).rank
    guard rank == 3 || rank == 4 else { throw .unsupported("pooling over \(rank - 2) spatial axes") }
    let spatial = rank - 2
    guard let kernel = try n.ints("kernel_shape"), kernel.count == spatial else {
      throw .invalid("kernel_shape must have \(spatial) entries")
    }
    let strides = try n.ints("strides") ?? [Int](repeating: 1, count: spatial)
    let dilations = try n.ints("dilations") ?? [Int](repeating: 1, count: spatial)
    guard strides.count == spatial, dilations.count == spatial else {
      throw .invalid("strides \(strides) and dilations \(dilations) must have \(spatial) entries")
    }
    let isMax = n.opType == "MaxPool"
    if !isMax, dilations.contains(where: { $0 != 1 }) { throw .unsupported("average pooling with dilations") }
    var pads = try spatialPads(
      n, sizes: Array(type(v).shape[2...]), kernel: kernel, strides: strides,
      dilations: dilations)
    let ceilMode = try n.int("ceil_mode", 0) == 1
    let countIncludePad = try n.int("count_include_pad", 0) == 1
    var sizes = try staticSizes(Array(type(v).shape[2...]), "a spatial axis")
    var k2 = kernel, s2 = strides, d2 = dilations
    if rank == 3 {
      let s = type(v).shape
      v = try reshape(v, [s[0], s[1], 1, s[2]], temporary(n, "as_2d"))
      (k2, s2, d2, sizes) = ([1] + kernel, [1] + strides, [1] + dilations, [1] + sizes)
      pads = [(0, 0)] + pads
    }
    // Per axis: the output ONNX gives, the symmetric padding the pooling op gets, and where
    // its windows start. Asymmetric padding is symmetric padding with the extra windows sliced
    // off when the stride allows, else (max, or average counting padding) explicit padding.
    var wanted: [Int] = [], offsets: [Int] = [], symmetric: [Int] = []
    for i in 0..<2 {
      let span = d2[i] * (k2[i] - 1) + 1, padded = sizes[i] + pads[i].begin + pads[i].end
      guard padded >= span else { throw .invalid("the window does not fit the padded input") }
      var o = ceilMode ? (padded - span + s2[i] - 1) / s2[i] + 1 : (padded - span) / s2[i] + 1
      if ceilMode, (o - 1) * s2[i] >= sizes[i] + pads[i].begin { o -= 1 }
      wanted.append(o)
      let (b, e) = pads[i]
      let p = max(b, e)
      if b == e || ((p - b) % s2[i] == 0 && 2 * p <= k2[i]) {
        offsets.append((p - b) / s2[i])
        symmetric.append(p)
      } else if isMax || countIncludePad {
        let common = min(b, e)
        let fill: Float = isMax ? -Float.greatestFiniteMagnitude : 0
        v = try padAxis(n, v, axis: 2 + i, before: b - common, after: e - common, value: fill)
        offsets.append(0)
        symmetric.append(common)
      } else {
        throw .unsupported("asymmetric padding \(pads[i]) with stride \(s2[i]) when padding does not count")
      }
      guard 2 * symmetric[i] <= k2[i] else {
        throw .unsupported("padding \(symmetric[i]) larger than half the kernel \(k2[i])")
      }
    }
    let kernelPair = Pair(k2[0], k2[1]), stridePair = Pair(s2[0], s2[1]), padPair = Pair(symmetric[0], symmetric[1])
    var y: ValueID
    if isMax {
      y = try emit(
        .maxPool2d, [v],
        MaxPoolAttributes(
          kernel: kernelPair, stride: stridePair, padding: padPair,
          dilation: Pair(d2[0], d2[1]), ceilMode: ceilMode),
        temporary(n, "pooled"))
    } else {
      y = try emit(
        .avgPool2d, [v],
        AvgPoolAttributes(
          kernel: kernelPair, stride: stridePair, padding: padPair,
          ceilMode: ceilMode, countIncludePad: countIncludePad),
        temporary(n, "pooled"))
    }
    for axis in 0..<2 {
      let size = try staticSizes([type(y).shape[2 + axis]], "the pooled axis")[0]
      guard offsets[axis] + wanted[axis] <= size else {
        throw .unsupported("padding \(pads[axis]) with ceil_mode gives fewer windows than ONNX's")
      }
      if offsets[axis] == 0 && wanted[axis] == size { continue }
      let window = SliceAttributes(axis: 2 + axis, start: offsets[axis], end: offsets[axis] + wanted[axis], step: 1)
      y = try emit(.slice, [y], window, temporary(n, "window\(axis)"))
    }
    // The last op takes the node's output name.
    y = try renamed(y, rank == 3 ? nil : out(n))
    if rank == 3 {
      let s = type(y).shape
      y = try reshape(y, [s[0], s[1], s[3]], out(n))
    }
    set(n, y)
  }

  // MARK: Normalisation

  mutating func batchNormalization(_ n: NodeView) throws(ImportFailure) {
    if opset < 9, try n.int("spatial", 1) == 0 { throw .unsupported("spatial = 0 (statistics per element)") }
    if opset >= 14, try n.int("training_mode", 0) == 1 { throw .unsupported("training_mode = 1") }
    for i in 3...4 { if let name = n.input(i) { bufferNames.insert(name) } }
    let v = try x(n, 0)
    let scale = try x(n, 1, asWeight: true, initializer: .ones)
    let bias = try x(n, 2, asWeight: true, initializer: .zeros)
    let mean = try x(n, 3, asWeight: true, initializer: .zeros)
    let variance = try x(n, 4, asWeight: true, initializer: .ones)
    setInitializer(of: scale, .ones)
    setInitializer(of: variance, .ones)
    let meanName = graph[mean].name
    let base = meanName.hasSuffix("running_mean") ? String(meanName.dropLast("running_mean".count)) : out(n) + "."
    let counter = addParameter(
      names.fresh(base + "num_batches_tracked"), Tensor(shape: [], storage: .i64([0])),
      role: .buffer, initializer: .zeros)
    let eps = Double(try n.float("epsilon", 1e-5))
    set(
      n,
      try emit(
        .batchNorm, [v, scale, bias, mean, variance, counter], BatchNormAttributes(eps: eps, momentum: 0.1),
        out(n)))
  }

  mutating func layerNormalization(_ n: NodeView) throws(ImportFailure) {
    let v = try x(n, 0)
    let scale = try x(n, 1, asWeight: true, initializer: .ones)
    setInitializer(of: scale, .ones)
    var operands = [v, scale]
    if has(n, 2) { operands.append(try x(n, 2, asWeight: true)) }
    let axis = try checkedAxis(try n.int("axis", -1), rank: type(v).rank)
    set(
      n,
      try emit(
        .layerNorm, operands, LayerNormAttributes(axis: axis, eps: Double(try n.float("epsilon", 1e-5))),
        out(n)))
  }

  // MARK: Products

  /// `Gemm`: `alpha·A'·B' + beta·C` as a `linear` when `B` is a constant (folded to
  /// `[N, K]`, scaled by alpha) and `C` a bias; otherwise `matmul` and arithmetic.
  mutating func gemm(_ n: NodeView) throws(ImportFailure) {
    var a = try x(n, 0)
    let alpha = try n.float("alpha", 1), beta = try n.float("beta", 1)
    let transA = try n.int("transA", 0) == 1, transB = try n.int("transB", 0) == 1
    guard type(a).rank == 2 else { throw .invalid("A must be 2-D, found \(type(a).shapeDescription)") }
    if transA { a = try emit(.transpose, [a], TransposeAttributes(perm: [1, 0]), temporary(n, "a_transposed")) }
    guard let bName = n.input(1) else { throw .invalid("needs B") }
    var c: ValueID?
    if case .constant(var weight)? = env[bName] {
      guard weight.shape.count == 2 else { throw .invalid("B must be 2-D, found \(weight.shape)") }
      let changed = !transB || alpha != 1
      if !transB { weight = transposed(weight, [1, 0]) }
      if alpha != 1 {
        weight = try ConstantArithmetic.binary(
          weight, Constant(floats: [alpha], shape: []), float: { $0 * $1 },
          int: ConstantArithmetic.mul)
      }
      let outputs = weight.shape[0]
      let bound = 1 / Double(max(weight.shape[1], 1)).squareRoot()
      let w: ValueID
      if changed, let cached = derivedWeights["gemm \(transB) \(alpha):" + bName] {
        w = cached
      } else if changed {
        w = try materialize(
          weight, name: weightName(n, 1) ?? names.claim(bName), asWeight: true,
          initializer: .uniform(bound: bound))
        derivedWeights["gemm \(transB) \(alpha):" + bName] = w
        notes.append(
          "\(graph[w].name) holds Gemm '\(n.label)''s B as [out, in]"
            + (alpha != 1 ? " times alpha \(alpha)" : "") + " (the layout of a linear layer's weight)")
      } else {
        w = try value(bName, asWeight: true, initializer: .uniform(bound: bound), preferredName: weightName(n, 1))
      }
      var operands = [a, w]
      if let cName = n.input(2), case .constant(var bias)? = env[cName], beta != 0,
        bias.count == outputs || bias.count == 1, bias.shape.count <= 2, bias.shape.last ?? 1 == bias.count
      {
        let biasChanged = bias.count != outputs || beta != 1 || bias.shape != [outputs]
        if bias.count == 1 {
          bias = Constant(floats: [Float](repeating: try bias.scalarFloat(), count: outputs), shape: [outputs])
        }
        if beta != 1 {
          bias = try ConstantArithmetic.binary(
            bias, Constant(floats: [beta], shape: []), float: { $0 * $1 },
            int: ConstantArithmetic.mul)
        }
        let biasValue =
          biasChanged
          ? try materialize(
            bias.reshaped([outputs]), name: weightName(n, 2) ?? names.claim(cName), asWeight: true,
            initializer: .uniform(bound: bound))
          : try value(cName, asWeight: true, initializer: .uniform(bound: bound), preferredName: weightName(n, 2))
        operands.append(biasValue)
      } else if has(n, 2), beta != 0 {
        c = try x(n, 2)
      }
      let y = try emit(
        .linear, operands, LinearAttributes(activation: .none),
        c == nil ? out(n) : temporary(n, "linear"))
      guard let c else { return set(n, y) }
      try addScaled(n, y, c, beta)
      return
    }
    var b = try x(n, 1)
    if transB { b = try emit(.transpose, [b], TransposeAttributes(perm: [1, 0]), temporary(n, "b_transposed")) }
    let hasC = has(n, 2) && beta != 0
    var y = try emit(.matmul, [a, b], NoAttributes(), hasC || alpha != 1 ? temporary(n, "product") : out(n))
    if alpha != 1 {
      y = try binary(.mul, y, try scalar(alpha, temporary(n, "alpha"), like: y), hasC ? temporary(n, "scaled") : out(n))
    }
    guard hasC else { return set(n, y) }
    try addScaled(n, y, try x(n, 2), beta)
  }

  /// `y + beta·c` as the node's output.
  mutating func addScaled(_ n: NodeView, _ y: ValueID, _ c: ValueID, _ beta: Float) throws(ImportFailure) {
    var term = c
    if beta != 1 {
      term = try binary(.mul, c, try scalar(beta, temporary(n, "beta"), like: c), temporary(n, "c_scaled"))
    }
    set(n, try binary(.add, y, term, out(n)))
  }

  /// `MatMul`: with a constant 2-D right operand a `linear` (the weight stored as `[N, K]`);
  /// otherwise `matmul` or `batch_matmul`.
  mutating func matmul(_ n: NodeView) throws(ImportFailure) {
    guard let aName = n.input(0), let bName = n.input(1) else { throw .invalid("needs two inputs") }
    var a = try value(aName)
    let rankA = type(a).rank
    if case .constant(let weight)? = env[bName], weight.shape.count <= 2, rankA >= 1 {
      let vector = weight.shape.count == 1
      let w2 = vector ? weight.reshaped([1, weight.shape[0]]) : transposed(weight, [1, 0])
      let w: ValueID
      if let cached = derivedWeights["matmul:" + bName] {
        w = cached
      } else {
        w = try materialize(
          w2, name: weightName(n, 1) ?? names.claim(bName), asWeight: true,
          initializer: .uniform(bound: 1 / Double(max(w2.shape[1], 1)).squareRoot()))
        derivedWeights["matmul:" + bName] = w
        if !vector {
          notes.append("\(graph[w].name) holds MatMul '\(n.label)''s right operand transposed, as [out, in]")
        }
      }
      let shape = type(a).shape
      if rankA == 1 { a = try reshape(a, [1, shape[0]], temporary(n, "row")) }
      let direct = rankA >= 2 && !vector
      // torch.onnx writes a linear layer on a sequence as MatMul, then Add of its bias: one `linear`.
      if direct, let (add, biasIndex) = biasAdd(after: n, outputs: w2.shape[0]) {
        let bias = try value(
          add.proto.input[biasIndex], asWeight: true,
          initializer: .uniform(bound: 1 / Double(max(w2.shape[1], 1)).squareRoot()))
        let y = try emit(.linear, [a, w, bias], LinearAttributes(activation: .none), out(add))
        set(add, y)
        return
      }
      var y = try emit(.linear, [a, w], LinearAttributes(activation: .none), direct ? out(n) : temporary(n, "linear"))
      if !direct {
        var target = type(y).shape
        if vector { target.removeLast() }
        if rankA == 1 { target.removeFirst() }
        y = try reshape(y, target, out(n))
      }
      return set(n, y)
    }
    let b = try value(bName)
    let (sa, sb) = (type(a).shape, type(b).shape)
    switch (sa.count, sb.count) {
    case (2, 2):
      set(n, try emit(.matmul, [a, b], NoAttributes(), out(n)))
    case (let r, 2) where r > 2:
      let rows = try product(sa.dropLast())
      let flat = try reshape(a, [rows, sa[r - 1]], temporary(n, "rows"))
      let y = try emit(.matmul, [flat, b], NoAttributes(), temporary(n, "product"))
      set(n, try reshape(y, Array(sa.dropLast()) + [sb[1]], out(n)))
    case (let r, let q) where r == q && r > 2 && sa.dropLast(2) == sb.dropLast(2):
      set(n, try emit(.batchMatmul, [a, b], NoAttributes(), out(n)))
    default:
      throw .unsupported(
        "a product of \(type(a).shapeDescription) and \(type(b).shapeDescription) "
          + "(batch axes must be equal)")
    }
  }

  /// The `Add` that only reads this node's output and a constant vector of `outputs` elements
  /// (a bias), with the bias's input index; the add is marked taken in.
  mutating func biasAdd(after n: NodeView, outputs: Int) -> (NodeView, Int)? {
    guard let y = n.output(0), readers[y]?.count == 1, let k = readers[y]?.first,
      !model.graph.output.contains(where: { $0.name == y })
    else { return nil }
    let node = model.graph.node[k]
    guard node.opType == "Add", node.domain.isEmpty, node.input.count == 2, node.output.count == 1 else { return nil }
    let biasIndex = node.input[0] == y ? 1 : 0
    guard node.input[1 - biasIndex] == y, case .constant(let c)? = env[node.input[biasIndex]], c.shape == [outputs],
      c.dtype == .f32
    else { return nil }
    absorbed.insert(k)
    return (NodeView(node, index: k), biasIndex)
  }

  // MARK: Shapes

  mutating func reshapeNode(_ n: NodeView) throws(ImportFailure) {
    let v = try x(n, 0)
    let shape = type(v).shape
    let input1: Constant?
    if n.opType == "Reshape" || (opset >= 13 && n.opType != "Flatten") {
      input1 = try constant(n, 1, n.opType == "Reshape" ? "the target shape" : "axes")
    } else {
      input1 = nil
    }
    let dims = try reshapedDims(n, of: shape, shapeInput: input1)
    if dims == shape { return try alias(n, v) }
    if n.opType == "Flatten", try n.int("axis", 1) == 1, shape.count > 2 {
      return set(n, try emit(.flatten, [v], FlattenAttributes(start: 1, end: -1), out(n)))
    }
    set(n, try emit(.reshape, [v], ReshapeAttributes(shape: dims), out(n)))
  }

  mutating func concat(_ n: NodeView) throws(ImportFailure) {
    var operands: [ValueID] = []
    for i in 0..<n.inputCount where has(n, i) { operands.append(try x(n, i)) }
    guard let first = operands.first else { throw .invalid("needs inputs") }
    let axis = try checkedAxis(try n.int("axis", 0), rank: type(first).rank)
    let kept = operands.filter { type($0).shape[axis] != Dim(0) }
    if kept.count == 1 { return try alias(n, kept[0]) }
    set(n, try emit(.concat, kept, ConcatAttributes(axis: axis), out(n)))
  }

  mutating func split(_ n: NodeView) throws(ImportFailure) {
    let v = try x(n, 0)
    let shape = type(v).shape
    let axis = try checkedAxis(try n.int("axis", 0), rank: shape.count)
    let size = try staticSizes([shape[axis]], "the split axis")[0]
    let sizes = try splitSizes(n, size: size, splitInput: opset >= 13 ? try constant(n, 1, "split") : nil)
    guard sizes.count == n.proto.output.count else {
      throw .invalid("\(sizes.count) pieces for \(n.proto.output.count) outputs")
    }
    if sizes.count == 1 { return try alias(n, v) }
    guard sizes.allSatisfy({ $0 > 0 }) else { throw .unsupported("an empty piece in split sizes \(sizes)") }
    var resultNames: [String] = []
    for k in sizes.indices { resultNames.append(n.output(k) != nil ? out(n, k) : temporary(n, "piece\(k)")) }
    let pieces = try emit(.split, [v], SplitAttributes(axis: axis, sizes: sizes), names: resultNames)
    for (k, p) in pieces.enumerated() { set(n, p, k) }
  }

  mutating func sliceNode(_ n: NodeView) throws(ImportFailure) {
    var v = try x(n, 0)
    var inputs: [Constant?] = [nil]
    if opset >= 10 {
      for i in 1..<max(n.inputCount, 3) { inputs.append(try constant(n, i, "a slice bound")) }
    }
    let rank = type(v).rank
    let (starts, ends, axes, steps) = try sliceArguments(n, rank: rank, inputs: inputs)
    var pending: [(axis: Int, start: Int, end: Int, step: Int)] = []
    for k in starts.indices {
      let axis = axes[k]
      guard steps[k] > 0 else { throw .unsupported("a negative slice step (reversal)") }
      guard let size = type(v).shape[axis].staticValue else {
        if starts[k] == 0 && ends[k] >= Int(Int32.max) && steps[k] == 1 { continue }
        throw .unsupported("slicing the symbolic axis \(type(v).shape[axis]); bind it")
      }
      let picks = Importer.sliceIndices(start: starts[k], end: ends[k], step: steps[k], size: size)
      guard let first = picks.first, let last = picks.last else { throw .invalid("the slice of axis \(axis) is empty") }
      if picks.count == size { continue }
      pending.append((axis, first, last + 1, steps[k]))
    }
    if pending.isEmpty { return try alias(n, v) }
    for (i, p) in pending.enumerated() {
      v = try emit(
        .slice, [v], SliceAttributes(axis: p.axis, start: p.start, end: p.end, step: p.step),
        i == pending.count - 1 ? out(n) : temporary(n, "axis\(p.axis)"))
    }
    set(n, v)
  }

  /// `Gather` with constant indices: `select` for one index, `slice` for a run, a `concat`
  /// of single slices otherwise.
  mutating func gatherNode(_ n: NodeView) throws(ImportFailure) {
    let v = try x(n, 0)
    guard let indices = try constant(n, 1, "the indices") else { throw .invalid("needs indices") }
    let shape = type(v).shape
    let axis = try checkedAxis(try n.int("axis", 0), rank: shape.count)
    let size = shape[axis].staticValue
    var picks: [Int] = []
    for i in try indices.intValues() {
      guard i >= 0 || size != nil else { throw .unsupported("a negative index on the symbolic axis \(shape[axis])") }
      let p = i < 0 ? i + (size ?? 0) : i
      if let size, p < 0 || p >= size { throw .invalid("index \(i) is out of range for an axis of size \(size)") }
      picks.append(p)
    }
    if indices.shape.isEmpty, let p = picks.first {
      return set(n, try emit(.select, [v], SelectAttributes(axis: axis, index: p), out(n)))
    }
    guard indices.shape.count == 1, !picks.isEmpty else {
      throw .unsupported("indices of shape \(indices.shape) (a scalar or a list are supported)")
    }
    guard picks.count <= 1 << 12 else { throw .unsupported("\(picks.count) indices (a gather op would be needed)") }
    let step = picks.count > 1 ? picks[1] - picks[0] : 1
    if step >= 1, picks.indices.allSatisfy({ picks[$0] == picks[0] + $0 * step }) {
      return set(
        n,
        try emit(
          .slice, [v],
          SliceAttributes(
            axis: axis, start: picks[0],
            end: (picks.last ?? 0) + 1, step: step), out(n)))
    }
    var parts: [ValueID] = []
    for (k, p) in picks.enumerated() {
      parts.append(
        try emit(
          .slice, [v], SliceAttributes(axis: axis, start: p, end: p + 1, step: 1),
          temporary(n, "index\(k)")))
    }
    set(n, try emit(.concat, parts, ConcatAttributes(axis: axis), out(n)))
  }

  /// `Expand` as a sum with zeros of the broadcast shape.
  mutating func expand(_ n: NodeView) throws(ImportFailure) {
    let v = try x(n, 0)
    guard let target = try constant(n, 1, "the shape") else { throw .invalid("needs a shape") }
    let shape: [Dim]
    do {
      shape = try broadcast(type(v).shape, target.dims, op: .add)
    } catch {
      throw .invalid("cannot expand \(type(v).shapeDescription) to \(target.dims)")
    }
    if shape == type(v).shape { return try alias(n, v) }
    let zeros = try emit(
      .constant, [], ConstantAttributes(value: 0, shape: shape, dtype: type(v).dtype),
      temporary(n, "zeros"))
    set(n, try binary(.add, v, zeros, out(n)))
  }

  /// `Tile` as a `concat` of copies along each repeated axis.
  mutating func tile(_ n: NodeView) throws(ImportFailure) {
    var v = try x(n, 0)
    guard let repeats = try constant(n, 1, "the repeats")?.intValues(), repeats.count == type(v).rank else {
      throw .invalid("repeats must have one entry per axis")
    }
    let axes = repeats.indices.filter { repeats[$0] != 1 }
    if axes.isEmpty { return try alias(n, v) }
    guard repeats.allSatisfy({ $0 >= 1 && $0 <= 1 << 12 }) else {
      throw .unsupported("repeats \(repeats) (each from 1 to \(1 << 12) composes as a concat)")
    }
    for (i, axis) in axes.enumerated() {
      v = try emit(
        .concat, [ValueID](repeating: v, count: repeats[axis]), ConcatAttributes(axis: axis),
        i == axes.count - 1 ? out(n) : temporary(n, "tiled\(axis)"))
    }
    set(n, v)
  }

  /// `Pad` as `pad` (modes constant, reflect and edge); negative pads crop with a `slice`
  /// first.
  mutating func pad(_ n: NodeView) throws(ImportFailure) {
    var v = try x(n, 0)
    let modeName = try n.string("mode", "constant")
    guard let mode = PadAttributes.Mode(rawValue: modeName) else {
      throw .unsupported("mode '\(modeName)' (constant, reflect and edge are supported)")
    }
    let rank = type(v).rank
    var pads: [Int]
    var fill: Float = 0
    var axes = Array(0..<rank)
    if opset < 11 {
      guard let p = try n.ints("pads") else { throw .invalid("needs pads") }
      pads = p
      fill = try n.float("value", 0)
    } else {
      guard let p = try constant(n, 1, "pads")?.intValues() else { throw .invalid("needs pads") }
      pads = p
      if let c = try constant(n, 2, "the constant value") { fill = try c.scalarFloat() }
      if let a = try constant(n, 3, "axes")?.intValues() {
        axes = []
        for axis in a { axes.append(try checkedAxis(axis, rank: rank)) }
      }
    }
    guard pads.count == 2 * axes.count else { throw .invalid("pads \(pads) must have \(2 * axes.count) entries") }
    guard pads.allSatisfy({ abs($0) <= 1 << 24 }) else { throw .invalid("pads \(pads) are too large") }
    var all = [Int](repeating: 0, count: 2 * rank)
    for (k, axis) in axes.enumerated() {
      var (before, after) = (pads[k], pads[k + axes.count])
      if before < 0 || after < 0 {
        guard let size = type(v).shape[axis].staticValue else { throw .unsupported("negative pads on a symbolic axis") }
        let start = max(-before, 0), end = size - max(-after, 0)
        guard start < end else { throw .invalid("pads remove the whole axis \(axis)") }
        v = try emit(
          .slice, [v], SliceAttributes(axis: axis, start: start, end: end, step: 1),
          temporary(n, "cut\(axis)"))
        before = max(before, 0)
        after = max(after, 0)
      }
      all[axis] += before
      all[rank + axis] += after
    }
    if all.allSatisfy({ $0 == 0 }) { return try alias(n, v) }
    let attributes = PadAttributes(pads: all, mode: mode, value: mode == .constant ? Double(fill) : 0)
    set(n, try emit(.pad, [v], attributes, out(n)))
  }

  mutating func reduction(_ n: NodeView) throws(ImportFailure) {
    var v = try x(n, 0)
    let rank = type(v).rank
    var axes = try n.ints("axes")
    let axesFromInput = n.opType == "ReduceSum" ? opset >= 13 : opset >= 18
    if axesFromInput { axes = try constant(n, 1, "axes")?.intValues() }
    if (axes ?? []).isEmpty, try n.int("noop_with_empty_axes", 0) == 1 { return try alias(n, v) }
    var normalized: [Int] = []
    for a in axes ?? [] { normalized.append(try checkedAxis(a, rank: rank)) }
    let attributes = ReduceAttributes(axes: normalized, keepdims: try n.int("keepdims", 1) == 1)
    switch n.opType {
    case "ReduceMean": set(n, try emit(.mean, [v], attributes, out(n)))
    case "ReduceSum": set(n, try emit(.sum, [v], attributes, out(n)))
    case "ReduceMax": set(n, try emit(.max, [v], attributes, out(n)))
    case "ReduceMin":
      // min = −max(−x)
      let minus = try scalar(-1, temporary(n, "minus_one"), like: v)
      let m = try emit(.max, [try binary(.mul, v, minus, temporary(n, "negated"))], attributes, temporary(n, "max"))
      set(n, try binary(.mul, m, minus, out(n)))
    case "ReduceSumSquare":
      v = try binary(.mul, v, v, temporary(n, "square"))
      set(n, try emit(.sum, [v], attributes, out(n)))
    default:  // ReduceL1
      let minus = try binary(.mul, v, try scalar(-1, temporary(n, "minus_one"), like: v), temporary(n, "negated"))
      let magnitude = try binary(
        .add, try emit(.relu, [v], NoAttributes(), temporary(n, "positive")),
        try emit(.relu, [minus], NoAttributes(), temporary(n, "negative")),
        temporary(n, "magnitude"))
      set(n, try emit(.sum, [magnitude], attributes, out(n)))
    }
  }

  /// Nearest-neighbour `Resize`/`Upsample` by whole factors: each element repeated, as a
  /// product with ones of a shape that interleaves the factors (`[N, C, H, 1, W, 1]` times
  /// `[1, 1, 1, sh, 1, sw]`), then merged back.
  mutating func resize(_ n: NodeView) throws(ImportFailure) {
    let v = try x(n, 0)
    let shape = type(v).shape
    let mode = try n.string("mode", "nearest")
    guard mode == "nearest" else { throw .unsupported("mode '\(mode)' (nearest by whole factors composes)") }
    var factors: [Float]
    if n.opType == "Upsample" {
      if let s = try n.floats("scales") {
        factors = s
      } else if let c = try constant(n, 1, "scales") {
        factors = try c.floatValues()
      } else {
        throw .invalid("needs scales")
      }
    } else {
      let scalesIndex = opset >= 11 ? 2 : 1
      let sizes = opset >= 11 ? try constant(n, 3, "sizes") : nil
      if let sizes, sizes.count > 0 {
        let inputs = try staticSizes(shape, "the input")
        factors = zip(try sizes.intValues(), inputs).map { Float($0) / Float(max($1, 1)) }
      } else if let s = try constant(n, scalesIndex, "scales"), s.count > 0 {
        factors = try s.floatValues()
      } else {
        throw .invalid("needs scales or sizes")
      }
      let transform = try n.string("coordinate_transformation_mode", "half_pixel")
      let nearest = try n.string("nearest_mode", "round_prefer_floor")
      let centred = ["half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn"].contains(transform)
      let floorLike = transform == "asymmetric" && nearest == "floor"
      guard centred || floorLike else {
        throw .unsupported("coordinate_transformation_mode '\(transform)' with nearest_mode '\(nearest)'")
      }
      if try n.ints("axes") != nil { throw .unsupported("the axes attribute") }
    }
    guard factors.count == shape.count else { throw .invalid("\(factors.count) scales for rank \(shape.count)") }
    var whole: [Int] = []
    for f in factors {
      guard f >= 1, f == f.rounded(), f < 65536 else { throw .unsupported("scale \(f) (whole factors ≥ 1 compose)") }
      whole.append(Int(f))
    }
    if whole.allSatisfy({ $0 == 1 }) { return try alias(n, v) }
    var spread: [Dim] = [], ones: [Dim] = [], merged: [Dim] = []
    for (d, f) in zip(shape, whole) {
      spread += [d, 1]
      ones += [1, Dim(f)]
      guard let m = d.multiplied(by: Dim(f)) else { throw .invalid("the size overflows") }
      merged.append(m)
    }
    let expanded = try reshape(v, spread, temporary(n, "spread"))
    let copies = try emit(
      .constant, [], ConstantAttributes(value: 1, shape: ones, dtype: type(v).dtype),
      temporary(n, "copies"))
    let repeated = try binary(.mul, expanded, copies, temporary(n, "repeated"))
    set(n, try reshape(repeated, merged, out(n)))
  }
}
