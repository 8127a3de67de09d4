/// The layer form of an op: `conv2d(x, out: 64, kernel: 3)` instead of `conv2d(x, w, b)`.
/// A layer call creates its parameters, with PyTorch's module names, shapes and default
/// initialisation, under the call's value name.
struct LayerSugar {
  /// The ops that have a layer form.
  enum Kind {
    case conv2d, linear, batchNorm, layerNorm, lstm
  }

  let op: Op
  let kind: Kind

  init?(op: Op) {
    self.op = op
    switch op {
    case .conv2d: kind = .conv2d
    case .linear: kind = .linear
    case .batchNorm: kind = .batchNorm
    case .layerNorm: kind = .layerNorm
    case .lstm: kind = .lstm
    case .maxPool2d, .avgPool2d, .globalAvgPool2d, .matmul, .batchMatmul, .add, .sub, .mul, .div,
      .relu, .sigmoid, .tanh, .softmax, .logSoftmax, .sum, .mean, .max, .reshape, .flatten,
      .transpose, .concat, .slice, .select, .split, .pad, .dropout, .crossEntropy, .constant, .lstmCell, .classSeed,
      .reluBackward, .linearBackwardWeight, .sliceBackward, .maxBackward, .lstmCellBackward,
      .crossEntropyBackward, .conv2dBackwardInput, .conv2dBackwardWeight, .maxPool2dBackward, .avgPool2dBackward,
      .batchNormTrain, .batchNormTrainBackward, .fusedElementwise, .layerNormBackward, .lrn, .lrnBackward,
      .exp, .log, .sqrt, .abs, .erf, .pow, .maximum, .minimum, .toBlocked, .fromBlocked:
      return nil
    }
  }

  /// Arguments the layer form takes that the op itself does not (they size the parameters).
  var ownArguments: [Op.AttrSpec] {
    switch kind {
    case .conv2d: ConvolutionLayerArguments.schema
    case .linear: LinearLayerArguments.schema
    case .layerNorm: LayerNormLayerArguments.schema
    case .batchNorm, .lstm: []
    }
  }

  /// A parameter the layer creates: `NAME.suffix`.
  struct ParameterSpec {
    var suffix: String
    var type: TensorType
    var role: ParameterRole
    var initializer: ParameterInit
  }

  /// The parameters for an input of type `x`, in the op's operand order.
  ///
  /// Initialisation follows PyTorch: `Conv2d` and `Linear` draw weight and bias from
  /// U(±1/√fan_in) (what `kaiming_uniform_(a=√5)` amounts to); `init: kaiming_normal` is
  /// torchvision's ResNet/VGG convolution init, N(0, √(2/fan_out)) with a zero bias, and
  /// `init: kaiming_normal_fan_in` PyTorch's `kaiming_normal_` in its default mode,
  /// N(0, √(2/fan_in)) with a zero bias (He et al.'s: it keeps the activations' scale through a
  /// deep stack of ReLU convolutions without batch norm, where fan_out shrinks it wherever the
  /// channels grow); `LSTM` draws everything from U(±1/√hidden); `BatchNorm2d` starts at
  /// weight 1, bias 0, mean 0, variance 1; `LayerNorm` at weight 1, bias 0.
  func parameters(
    input x: TensorType, own: Attributes, nodeAttributes: Attributes
  ) throws(ShapeError) -> [ParameterSpec] {
    let dtype = x.dtype
    switch kind {
    case .conv2d:
      let input = try x.requireRank(4, op: op, operand: "input", layout: "[N, C, H, W]")
      let arguments = try op.decode(ConvolutionLayerArguments.self, own)
      let out = arguments.out
      let kernel = arguments.kernel
      let groups = try op.decode(ConvolutionAttributes.self, nodeAttributes).geometry.groups
      guard groups >= 1 else { throw ShapeError("conv2d: groups must be at least 1, found \(groups)") }
      guard let cin = input.shape[1].staticValue else {
        throw ShapeError("conv2d: input channels must be static to size the weight, found \(input.shape[1])")
      }
      guard cin % groups == 0 else {
        throw ShapeError("conv2d: \(cin) input channels are not divisible by \(groups) groups")
      }
      guard let o = out.staticValue, o >= 1 else {
        throw ShapeError("conv2d: out must be a positive static size, found \(out)")
      }
      guard kernel.h >= 1, kernel.w >= 1 else {
        throw ShapeError("conv2d: kernel sizes must be positive, found [\(kernel.h), \(kernel.w)]")
      }
      let fanIn = cin / groups * kernel.h * kernel.w
      let fanOut = o * kernel.h * kernel.w
      let kaiming = arguments.initializer != .uniform
      let bound = 1 / Double(fanIn).squareRoot()
      let std = (2 / Double(arguments.initializer == .kaimingNormalFanIn ? fanIn : fanOut)).squareRoot()
      let weight = TensorType(dtype, [out, Dim(cin / groups), Dim(kernel.h), Dim(kernel.w)])
      var specs = [
        ParameterSpec(
          suffix: "weight", type: weight, role: .trainable,
          initializer: kaiming ? .normal(std: std) : .uniform(bound: bound))
      ]
      if arguments.bias {
        specs.append(
          ParameterSpec(
            suffix: "bias", type: TensorType(dtype, [out]), role: .trainable,
            initializer: kaiming ? .zeros : .uniform(bound: bound)))
      }
      return specs

    case .linear:
      guard let features = x.shape.last else {
        throw ShapeError("linear: input must have at least one axis, found a scalar")
      }
      guard let fanIn = features.staticValue else {
        throw ShapeError("linear: input features must be static to size the weight, found \(features)")
      }
      let arguments = try op.decode(LinearLayerArguments.self, own)
      let out = arguments.out
      guard out.coefficient >= 1 else { throw ShapeError("linear: out must be a positive size, found \(out)") }
      let bound = 1 / Double(fanIn).squareRoot()
      var specs = [
        ParameterSpec(
          suffix: "weight", type: TensorType(dtype, [out, features]), role: .trainable,
          initializer: .uniform(bound: bound))
      ]
      if arguments.bias {
        specs.append(
          ParameterSpec(
            suffix: "bias", type: TensorType(dtype, [out]), role: .trainable,
            initializer: .uniform(bound: bound)))
      }
      return specs

    case .batchNorm:
      guard x.rank >= 2 else {
        throw ShapeError("batch_norm: input must have rank at least 2 ([N, C, …]), found \(x.shapeDescription)")
      }
      let c = x.shape[1]
      return [
        ParameterSpec(suffix: "weight", type: TensorType(dtype, [c]), role: .trainable, initializer: .ones),
        ParameterSpec(suffix: "bias", type: TensorType(dtype, [c]), role: .trainable, initializer: .zeros),
        ParameterSpec(suffix: "running_mean", type: TensorType(dtype, [c]), role: .buffer, initializer: .zeros),
        ParameterSpec(suffix: "running_var", type: TensorType(dtype, [c]), role: .buffer, initializer: .ones),
        ParameterSpec(suffix: "num_batches_tracked", type: TensorType(.i64, []), role: .buffer, initializer: .zeros),
      ]

    case .layerNorm:
      let axis = try checkedAxis(op.decode(LayerNormAttributes.self, nodeAttributes).axis, rank: x.rank, op: op)
      let normalized = TensorType(dtype, Array(x.shape[axis...]))
      var specs = [ParameterSpec(suffix: "weight", type: normalized, role: .trainable, initializer: .ones)]
      if try op.decode(LayerNormLayerArguments.self, own).bias {
        specs.append(ParameterSpec(suffix: "bias", type: normalized, role: .trainable, initializer: .zeros))
      }
      return specs

    case .lstm:
      let input = try x.requireRank(3, op: op, operand: "input", layout: "[B, T, features]")
      let attributes = try op.decode(LSTMAttributes.self, nodeAttributes)
      let h = attributes.hidden
      guard h >= 1 else { throw ShapeError("lstm: hidden must be at least 1, found \(h)") }
      let directions = attributes.directions
      let bound = 1 / Double(h).squareRoot()
      var specs: [ParameterSpec] = []
      for d in 0..<directions {
        let suffix = d == 0 ? "" : "_reverse"
        for (name, shape) in [
          ("weight_ih", [Dim(4 * h), input.shape[2]]), ("weight_hh", [Dim(4 * h), Dim(h)]),
          ("bias_ih", [Dim(4 * h)]), ("bias_hh", [Dim(4 * h)]),
        ] {
          specs.append(
            ParameterSpec(
              suffix: "\(name)_l0\(suffix)", type: TensorType(dtype, shape), role: .trainable,
              initializer: .uniform(bound: bound)))
        }
      }
      return specs
    }
  }
}

/// The layer form's own arguments of `conv2d(x, out: 64, kernel: 3)`.
struct ConvolutionLayerArguments: AttributeSet {
  /// How the weight is drawn (`LayerSugar.parameters`).
  enum Initializer: String, AttributeChoice {
    case uniform = "default"
    case kaimingNormal = "kaiming_normal"
    case kaimingNormalFanIn = "kaiming_normal_fan_in"
  }

  var out = Dim(1)
  var kernel = Pair(1)
  var bias = true
  var initializer = Initializer.uniform

  init(defaults: AttributeDefaults) {}
  mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.required("out", &out)
    v.required("kernel", &kernel)
    v.defaulted("bias", &bias)
    v.defaulted("init", &initializer)
  }
}

/// The layer form's own arguments of `layer_norm(x)`: PyTorch's `LayerNorm(…, bias: false)`
/// has a weight alone.
struct LayerNormLayerArguments: AttributeSet {
  var bias = true

  init(defaults: AttributeDefaults) {}
  mutating func visit<V: AttributeVisitor>(_ v: inout V) { v.defaulted("bias", &bias) }
}

/// The layer form's own arguments of `linear(x, out: 10)`.
struct LinearLayerArguments: AttributeSet {
  var out = Dim(1)
  var bias = true

  init(defaults: AttributeDefaults) {}
  mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.required("out", &out)
    v.defaulted("bias", &bias)
  }
}
