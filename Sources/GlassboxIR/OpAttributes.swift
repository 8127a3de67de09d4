/// The attributes of each op, one `AttributeSet` per kind of attribute list (several ops share
/// one: `sum`, `mean`, `max` and `max_backward` read `ReduceAttributes`). `Op.attributeSet`
/// maps every op to its struct in one exhaustive switch. A field's initial value is its
/// default; required attributes start at a placeholder that decoding always replaces. The
/// public initialisers take every attribute, so code that builds a node names each one.

extension Op {
  /// The struct this op's attributes are read through.
  public var attributeSet: any AttributeSet.Type {
    switch self {
    case .conv2d: ConvolutionAttributes.self
    case .conv2dBackwardInput: ConvolutionInputGradientAttributes.self
    case .conv2dBackwardWeight: ConvolutionWeightGradientAttributes.self
    case .maxPool2d, .maxPool2dBackward: MaxPoolAttributes.self
    case .avgPool2d, .avgPool2dBackward: AvgPoolAttributes.self
    case .batchNorm: BatchNormAttributes.self
    case .batchNormTrain, .batchNormTrainBackward: BatchNormTrainAttributes.self
    case .layerNorm, .layerNormBackward: LayerNormAttributes.self
    case .lrn, .lrnBackward: LRNAttributes.self
    case .linear: LinearAttributes.self
    case .softmax, .logSoftmax: SoftmaxAttributes.self
    case .sum, .mean, .max, .maxBackward: ReduceAttributes.self
    case .reshape: ReshapeAttributes.self
    case .flatten: FlattenAttributes.self
    case .transpose: TransposeAttributes.self
    case .concat: ConcatAttributes.self
    case .slice: SliceAttributes.self
    case .sliceBackward: SliceBackwardAttributes.self
    case .select: SelectAttributes.self
    case .split: SplitAttributes.self
    case .pad: PadAttributes.self
    case .lstm: LSTMAttributes.self
    case .dropout: DropoutAttributes.self
    case .constant: ConstantAttributes.self
    case .fusedElementwise: FusedElementwiseAttributes.self
    case .classSeed: ClassSeedAttributes.self
    case .globalAvgPool2d, .matmul, .batchMatmul, .add, .sub, .mul, .div, .relu, .sigmoid, .tanh, .exp, .log,
      .sqrt, .abs, .erf, .pow, .maximum, .minimum, .lstmCell, .crossEntropy, .reluBackward, .linearBackwardWeight,
      .lstmCellBackward, .crossEntropyBackward, .toBlocked, .fromBlocked:
      NoAttributes.self
    }
  }

  /// The attributes this op accepts, with defaults (nil: required), in the order the printer
  /// and messages list them.
  public var attributes: [AttrSpec] { attributeSet.schema }
}

/// Ops without attributes.
public struct NoAttributes: AttributeSet {
  /// The empty set.
  public init() {}
  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {}
}

// MARK: Convolution

/// Where a convolution's windows sit: shared by `conv2d` and its two gradients.
public struct ConvolutionGeometry: Hashable, Sendable {
  /// `stride`: the step between windows.
  public var stride = Pair(1)
  /// `padding`: zeros added on each side.
  public var padding = Pair(0)
  /// `dilation`: the step between a window's taps.
  public var dilation = Pair(1)
  /// Channels are split into this many groups, each convolved with its own filters.
  public var groups = 1

  /// Every attribute given.
  public init(stride: Pair, padding: Pair, dilation: Pair, groups: Int) {
    self.stride = stride
    self.padding = padding
    self.dilation = dilation
    self.groups = groups
  }

  init() {}

  mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.defaulted("stride", &stride)
    v.defaulted("padding", &padding)
    v.defaulted("dilation", &dilation)
    v.defaulted("groups", &groups)
  }
}

/// `conv2d`: the window geometry, the fused epilogue's activation and the result's layout.
public struct ConvolutionAttributes: AttributeSet {
  /// `stride`, `padding`, `dilation`, `groups`.
  public var geometry = ConvolutionGeometry()
  /// `activation`: applied after the bias and the residual.
  public var activation = Activation.none
  /// `layout`: the result's, `plain` (`[N, Cout, H', W']`) or `blocked` (`[N, Cout/16, H', W', 16]`,
  /// the residual too; what `choose-layouts` gives). The input's layout is its rank's.
  public var layout = Layout.plain

  /// Every attribute given.
  public init(geometry: ConvolutionGeometry, activation: Activation, layout: Layout) {
    self.geometry = geometry
    self.activation = activation
    self.layout = layout
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    geometry.visit(&v)
    v.defaulted("activation", &activation)
    v.defaulted("layout", &layout)
  }
}

/// `conv2d_backward_input`: the forward geometry and the input's height and width.
public struct ConvolutionInputGradientAttributes: AttributeSet {
  /// The forward convolution's `stride`, `padding`, `dilation`, `groups`.
  public var geometry = ConvolutionGeometry()
  /// `input_size`: the forward input's height and width.
  public var inputSize = Pair(0)

  /// Every attribute given.
  public init(geometry: ConvolutionGeometry, inputSize: Pair) {
    self.geometry = geometry
    self.inputSize = inputSize
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    geometry.visit(&v)
    v.required("input_size", &inputSize)
  }
}

/// `conv2d_backward_weight`: the forward geometry and the kernel's height and width.
public struct ConvolutionWeightGradientAttributes: AttributeSet {
  /// The forward convolution's `stride`, `padding`, `dilation`, `groups`.
  public var geometry = ConvolutionGeometry()
  /// `kernel`: the weight's height and width.
  public var kernel = Pair(0)

  /// Every attribute given.
  public init(geometry: ConvolutionGeometry, kernel: Pair) {
    self.geometry = geometry
    self.kernel = kernel
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    geometry.visit(&v)
    v.required("kernel", &kernel)
  }
}

// MARK: Pooling

/// `max_pool2d` and its gradient.
public struct MaxPoolAttributes: AttributeSet {
  /// `kernel`: the window's height and width.
  public var kernel = Pair(0)
  /// Nil: the kernel (PyTorch's default).
  public var stride: Pair? = nil
  /// `padding`: −∞ added on each side, at most half the kernel.
  public var padding = Pair(0)
  /// `dilation`: the step between a window's taps.
  public var dilation = Pair(1)
  /// `ceil_mode`: a last partial window counts (PyTorch's rule).
  public var ceilMode = false

  /// Every attribute given.
  public init(kernel: Pair, stride: Pair?, padding: Pair, dilation: Pair, ceilMode: Bool) {
    self.kernel = kernel
    self.stride = stride
    self.padding = padding
    self.dilation = dilation
    self.ceilMode = ceilMode
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.required("kernel", &kernel)
    v.defaulted("stride", &stride)
    v.defaulted("padding", &padding)
    v.defaulted("dilation", &dilation)
    v.defaulted("ceil_mode", &ceilMode)
  }
}

/// `avg_pool2d` and its gradient (no dilation; padding counted unless `countIncludePad` is false).
public struct AvgPoolAttributes: AttributeSet {
  /// `kernel`: the window's height and width.
  public var kernel = Pair(0)
  /// Nil: the kernel (PyTorch's default).
  public var stride: Pair? = nil
  /// `padding`: zeros added on each side, at most half the kernel.
  public var padding = Pair(0)
  /// `ceil_mode`: a last partial window counts (PyTorch's rule).
  public var ceilMode = false
  /// `count_include_pad`: padding counts in a window's divisor.
  public var countIncludePad = true

  /// Every attribute given.
  public init(kernel: Pair, stride: Pair?, padding: Pair, ceilMode: Bool, countIncludePad: Bool) {
    self.kernel = kernel
    self.stride = stride
    self.padding = padding
    self.ceilMode = ceilMode
    self.countIncludePad = countIncludePad
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.required("kernel", &kernel)
    v.defaulted("stride", &stride)
    v.defaulted("padding", &padding)
    v.defaulted("ceil_mode", &ceilMode)
    v.defaulted("count_include_pad", &countIncludePad)
  }
}

/// A pooling window's placement, whichever pooling it is.
public struct PoolWindow: Hashable, Sendable {
  /// The window's height and width.
  public var kernel: Pair
  /// The step between windows.
  public var stride: Pair
  /// Added on each side.
  public var padding: Pair
  /// Always 1 for average pooling.
  public var dilation: Pair
  /// A last partial window counts.
  public var ceilMode: Bool
  /// Average pooling divides by the padded window (true for max pooling, where it is unused).
  public var countIncludePad: Bool
}

extension MaxPoolAttributes {
  /// The window, the stride made explicit.
  public var window: PoolWindow {
    PoolWindow(
      kernel: kernel, stride: stride ?? kernel, padding: padding, dilation: dilation, ceilMode: ceilMode,
      countIncludePad: true)
  }
}

extension AvgPoolAttributes {
  /// The window, the stride made explicit.
  public var window: PoolWindow {
    PoolWindow(
      kernel: kernel, stride: stride ?? kernel, padding: padding, dilation: Pair(1), ceilMode: ceilMode,
      countIncludePad: countIncludePad)
  }
}

extension PoolWindow {
  /// The window of a pooling node or of its gradient.
  public init(of node: Node) {
    if ObjectIdentifier(node.op.attributeSet) == ObjectIdentifier(MaxPoolAttributes.self) {
      self = MaxPoolAttributes(of: node).window
    } else {
      self = AvgPoolAttributes(of: node).window
    }
  }
}

// MARK: Normalisation

/// `batch_norm` (inference: running statistics). `momentum` is the trainer's, for the
/// running-statistics update.
public struct BatchNormAttributes: AttributeSet {
  /// `eps`: added to the variance.
  public var eps = 1e-5
  /// `momentum`: the running statistics' update rate.
  public var momentum = 0.1

  /// Every attribute given.
  public init(eps: Double, momentum: Double) {
    self.eps = eps
    self.momentum = momentum
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.defaulted("eps", &eps)
    v.defaulted("momentum", &momentum)
  }
}

/// `batch_norm_train` and its gradient.
public struct BatchNormTrainAttributes: AttributeSet {
  /// `eps`: added to the variance.
  public var eps = 1e-5
  /// `activation`: applied to the normalised result.
  public var activation = Activation.none

  /// Every attribute given.
  public init(eps: Double, activation: Activation) {
    self.eps = eps
    self.activation = activation
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.defaulted("eps", &eps)
    v.defaulted("activation", &activation)
  }
}

/// `layer_norm` and its gradient: normalise over the axes from `axis` to the last (`-1`, the
/// last axis alone, is PyTorch's `LayerNorm(d)`; ONNX's `LayerNormalization` has the same
/// `axis` and its `epsilon` is `eps`).
public struct LayerNormAttributes: AttributeSet {
  /// `axis`: the first normalised axis; negative counts from the end.
  public var axis = -1
  /// `eps`: added to the variance.
  public var eps = 1e-5

  /// Every attribute given.
  public init(axis: Int, eps: Double) {
    self.axis = axis
    self.eps = eps
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.defaulted("axis", &axis)
    v.defaulted("eps", &eps)
  }
}

/// `lrn` and its gradient: ONNX `LRN`'s attributes and defaults (`nn.LocalResponseNorm`'s `k`
/// is `bias`).
public struct LRNAttributes: AttributeSet {
  /// `size`: channels in a window, at least 1.
  public var size = 1
  /// `alpha`: the scale of the window's mean square (ONNX divides it by `size`, as here).
  public var alpha = 1e-4
  /// `beta`: the exponent.
  public var beta = 0.75
  /// `bias`: added before the power; positive.
  public var bias = 1.0

  /// Every attribute given.
  public init(size: Int, alpha: Double, beta: Double, bias: Double) {
    self.size = size
    self.alpha = alpha
    self.beta = beta
    self.bias = bias
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.required("size", &size)
    v.defaulted("alpha", &alpha)
    v.defaulted("beta", &beta)
    v.defaulted("bias", &bias)
  }

  /// Channels of the window before `c`, ⌊(size−1)/2⌋, and after it, ⌈(size−1)/2⌉.
  public var window: (before: Int, after: Int) { ((size - 1) / 2, size / 2) }
}

// MARK: Products

/// `linear`: the fused epilogue's activation.
public struct LinearAttributes: AttributeSet {
  /// `activation`: applied after the bias and the residual.
  public var activation = Activation.none

  /// Every attribute given.
  public init(activation: Activation) { self.activation = activation }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) { v.defaulted("activation", &activation) }
}

// MARK: Axes and shapes

/// `softmax` and `log_softmax`.
public struct SoftmaxAttributes: AttributeSet {
  /// `axis`: negative counts from the end.
  public var axis = -1

  /// Every attribute given.
  public init(axis: Int) { self.axis = axis }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) { v.defaulted("axis", &axis) }
}

/// `sum`, `mean`, `max` and `max_backward`: the axes reduced (all when empty).
public struct ReduceAttributes: AttributeSet {
  /// `axes`: negative ones count from the end; empty means every axis.
  public var axes: [Int] = []
  /// `keepdims`: reduced axes stay, of size 1.
  public var keepdims = false

  /// Every attribute given.
  public init(axes: [Int], keepdims: Bool) {
    self.axes = axes
    self.keepdims = keepdims
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.defaulted("axes", &axes)
    v.defaulted("keepdims", &keepdims)
  }

  /// The reduced axes of a rank-`rank` operand, non-negative (every axis when `axes` is empty).
  public func reducedAxes(rank: Int) -> Set<Int> {
    axes.isEmpty ? Set(0..<rank) : Set(axes.map { normalizedAxis($0, rank: rank) })
  }
}

/// `reshape`: the new shape, one entry `-1` (inferred) at most.
public struct ReshapeAttributes: AttributeSet {
  /// `shape`: sizes, one of them -1 (inferred) at most.
  public var shape: [Dim] = []

  /// Every attribute given.
  public init(shape: [Dim]) { self.shape = shape }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) { v.required("shape", &shape) }
}

/// `flatten`: the axes `start…end` merged.
public struct FlattenAttributes: AttributeSet {
  /// `start`: the first merged axis; negative counts from the end.
  public var start = 1
  /// `end`: the last merged axis; negative counts from the end.
  public var end = -1

  /// Every attribute given.
  public init(start: Int, end: Int) {
    self.start = start
    self.end = end
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.defaulted("start", &start)
    v.defaulted("end", &end)
  }
}

/// `transpose`: result axis `i` is operand axis `perm[i]`.
public struct TransposeAttributes: AttributeSet {
  /// `perm`: a permutation of the axes.
  public var perm: [Int] = []

  /// Every attribute given.
  public init(perm: [Int]) { self.perm = perm }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) { v.required("perm", &perm) }
}

/// `concat`.
public struct ConcatAttributes: AttributeSet {
  /// `axis`: negative counts from the end.
  public var axis = 0

  /// Every attribute given.
  public init(axis: Int) { self.axis = axis }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) { v.required("axis", &axis) }
}

/// `slice`: `start ..< end` by `step` along `axis`, Python's clamping of the bounds.
public struct SliceAttributes: AttributeSet {
  /// `axis`: negative counts from the end.
  public var axis = 0
  /// `start`: the first index; negative counts from the end.
  public var start = 0
  /// `Int.max`: to the end.
  public var end = Int.max
  /// `step`: at least 1.
  public var step = 1

  /// Every attribute given.
  public init(axis: Int, start: Int, end: Int, step: Int) {
    self.axis = axis
    self.start = start
    self.end = end
    self.step = step
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.required("axis", &axis)
    v.defaulted("start", &start)
    v.defaulted("end", &end)
    v.defaulted("step", &step)
  }

  /// The indices read along an axis of `size` elements.
  public func indices(size n: Int) -> StrideTo<Int> {
    stride(from: clampIndex(start, n), to: clampIndex(end, n), by: Swift.max(step, 1))
  }
}

/// `slice_backward`: the slice it differentiates and the size of the sliced axis.
public struct SliceBackwardAttributes: AttributeSet {
  /// `axis`, `start`, `end`, `step` of the slice.
  public var slice = SliceAttributes(defaults: AttributeDefaults())
  /// `size`: the sliced input's size along the axis.
  public var size = Dim(0)

  /// Every attribute given.
  public init(slice: SliceAttributes, size: Dim) {
    self.slice = slice
    self.size = size
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    slice.visit(&v)
    v.required("size", &size)
  }
}

/// `select`: the entry `index` along `axis` (negative counts from the end).
public struct SelectAttributes: AttributeSet {
  /// `axis`: negative counts from the end.
  public var axis = 0
  /// `index`: negative counts from the end.
  public var index = 0

  /// Every attribute given.
  public init(axis: Int, index: Int) {
    self.axis = axis
    self.index = index
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.required("axis", &axis)
    v.required("index", &index)
  }

  /// `index` made non-negative for an axis of `size` elements.
  public func position(size n: Int) -> Int { index < 0 ? index + n : index }
}

/// `split`: pieces of `sizes` along `axis`.
public struct SplitAttributes: AttributeSet {
  /// `axis`: negative counts from the end.
  public var axis = 0
  /// `sizes`: the pieces' sizes along the axis, adding up to its size.
  public var sizes: [Int] = []

  /// Every attribute given.
  public init(axis: Int, sizes: [Int]) {
    self.axis = axis
    self.sizes = sizes
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.required("axis", &axis)
    v.required("sizes", &sizes)
  }
}

/// `pad`: how many elements each side of each axis gains, and what they hold.
public struct PadAttributes: AttributeSet {
  /// What the added elements hold.
  public enum Mode: String, AttributeChoice {
    /// `value`.
    case constant
    /// The elements mirrored about the edge element, which is not repeated (`[1, 2, 3]`
    /// padded by 2 before: `[3, 2, 1, 2, 3]`).
    case reflect
    /// The edge element repeated (PyTorch's `replicate`).
    case edge
  }

  /// `pads`: the elements added before each axis, then after each (`2·rank` non-negative
  /// integers, ONNX's order).
  public var pads: [Int] = []
  /// `mode`: `constant`, `reflect` or `edge`.
  public var mode = Mode.constant
  /// `value`: what `constant` padding holds.
  public var value = 0.0

  /// Every attribute given.
  public init(pads: [Int], mode: Mode, value: Double) {
    self.pads = pads
    self.mode = mode
    self.value = value
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.required("pads", &pads)
    v.defaulted("mode", &mode)
    v.defaulted("value", &value)
  }

  /// The elements added before axis `axis` of a rank-`pads.count / 2` operand.
  public func before(_ axis: Int) -> Int { pads[axis] }
  /// The elements added after axis `axis`.
  public func after(_ axis: Int) -> Int { pads[pads.count / 2 + axis] }

  /// Where output index `i` of an axis of `n` input elements reads: an input index, or nil
  /// for `constant` padding.
  public func source(_ i: Int, axis: Int, size n: Int) -> Int? {
    let j = i - before(axis)
    if j >= 0 && j < n { return j }
    switch mode {
    case .constant: return nil
    case .edge: return j < 0 ? 0 : n - 1
    case .reflect: return j < 0 ? -j : 2 * (n - 1) - j
    }
  }
}

// MARK: Recurrence, regularisation, constants

/// `lstm`.
public struct LSTMAttributes: AttributeSet {
  /// `hidden`: units per direction.
  public var hidden = 0
  /// `bidirectional`: a reverse direction too, its outputs after the forward ones.
  public var bidirectional = false
  /// Only the outputs at the last time step.
  public var last = false

  /// Every attribute given.
  public init(hidden: Int, bidirectional: Bool, last: Bool) {
    self.hidden = hidden
    self.bidirectional = bidirectional
    self.last = last
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.required("hidden", &hidden)
    v.defaulted("bidirectional", &bidirectional)
    v.defaulted("last", &last)
  }

  /// 2 when bidirectional, else 1.
  public var directions: Int { bidirectional ? 2 : 1 }
}

/// `dropout`: the probability of zeroing an element in training.
public struct DropoutAttributes: AttributeSet {
  /// `p`: in [0, 1).
  public var p = 0.5

  /// Every attribute given.
  public init(p: Double) { self.p = p }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) { v.defaulted("p", &p) }
}

/// `constant`: `shape` filled with `value`.
public struct ConstantAttributes: AttributeSet {
  /// `value`: every element.
  public var value = 0.0
  /// `shape`: empty for a scalar.
  public var shape: [Dim] = []
  /// `dtype`: the element type.
  public var dtype = DType.f32

  /// Every attribute given.
  public init(value: Double, shape: [Dim], dtype: DType) {
    self.value = value
    self.shape = shape
    self.dtype = dtype
  }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.required("value", &value)
    v.defaulted("shape", &shape)
    v.defaulted("dtype", &dtype)
  }
}

/// `fused_elementwise`: the program, three integers per step (`Op.fusedElementwise`).
public struct FusedElementwiseAttributes: AttributeSet {
  /// `program`: `code, a, b` per step.
  public var program: [Int] = []

  /// Every attribute given.
  public init(program: [Int]) { self.program = program }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) { v.required("program", &program) }

  /// Steps in the program.
  public var stepCount: Int { program.count / 3 }
}

/// `class_seed`: the class each row is seeded at, -1 meaning the row's argmax.
public struct ClassSeedAttributes: AttributeSet {
  /// `class`: -1 for each row's argmax.
  public var classIndex = -1

  /// Every attribute given.
  public init(classIndex: Int) { self.classIndex = classIndex }

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) { v.defaulted("class", &classIndex) }
}

extension Node {
  /// The activation fused into the op that makes the result (`conv2d`, `linear`, a training
  /// batch norm and its gradient); nil for ops that cannot carry one. Set only on those.
  public var fusedActivation: Activation? {
    get {
      switch op {
      case .conv2d: ConvolutionAttributes(of: self).activation
      case .linear: LinearAttributes(of: self).activation
      case .batchNormTrain, .batchNormTrainBackward: BatchNormTrainAttributes(of: self).activation
      case .maxPool2d, .avgPool2d, .globalAvgPool2d, .batchNorm, .matmul, .batchMatmul, .add, .sub, .mul, .div,
        .relu, .sigmoid, .tanh, .exp, .log, .sqrt, .abs, .erf, .pow, .maximum, .minimum, .softmax, .logSoftmax,
        .sum, .mean, .max, .reshape, .flatten, .transpose, .concat, .slice, .select, .split, .pad, .lstm, .lstmCell,
        .dropout, .crossEntropy, .constant,
        .fusedElementwise, .classSeed, .reluBackward, .linearBackwardWeight, .sliceBackward, .maxBackward,
        .lstmCellBackward, .crossEntropyBackward, .conv2dBackwardInput, .conv2dBackwardWeight,
        .maxPool2dBackward, .avgPool2dBackward, .layerNorm, .layerNormBackward, .lrn, .lrnBackward, .toBlocked,
        .fromBlocked:
        nil
      }
    }
    set {
      guard let activation = newValue, fusedActivation != nil else {
        preconditionFailure("\(op.name) carries no activation to set to \(newValue.map(\.rawValue) ?? "nil")")
      }
      if op == .conv2d {
        var a = ConvolutionAttributes(of: self)
        a.activation = activation
        attributes = a.encoded
      } else if op == .linear {
        attributes = LinearAttributes(activation: activation).encoded
      } else {
        var a = BatchNormTrainAttributes(of: self)
        a.activation = activation
        attributes = a.encoded
      }
    }
  }
}
