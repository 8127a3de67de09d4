/// The op catalogue. Every op is one case here; each table about ops (schema, shape rule,
/// and later gradient, lowering and reference evaluation) is an exhaustive `switch` over it,
/// so adding a case does not build until every table knows it.
///
/// Ops are functional: weights are operands (graph parameters), never hidden state. Layout
/// conventions follow PyTorch: images `NCHW`, `Conv2d` weights `OIHW`, `Linear` weights
/// `[out, in]`, LSTM `batch_first` with gate order i, f, g, o.
public enum Op: String, CaseIterable, Sendable, Hashable {
  /// 2-D convolution. `x: [N, Cin, H, W]`, `weight: [Cout, Cin/groups, kH, kW]`,
  /// optional `bias: [Cout]` → `[N, Cout, H', W']`, `H' = ⌊(H + 2p − d(k−1) − 1)/s⌋ + 1`.
  /// Epilogue (made by the `fuse-epilogues` pass): an optional `residual` operand of the
  /// result's shape is added, then `activation` (`relu`) applied.
  case conv2d
  /// Max pooling over `[N, C, H, W]` windows (implicit −∞ padding), PyTorch's output size.
  case maxPool2d = "max_pool2d"
  /// Average pooling over `[N, C, H, W]` windows; zero padding is counted, like PyTorch's default.
  case avgPool2d = "avg_pool2d"
  /// Global average pooling `[N, C, H, W]` → `[N, C, 1, 1]` (`AdaptiveAvgPool2d((1, 1))`).
  case globalAvgPool2d = "global_avg_pool2d"
  /// Batch normalisation over axis 1 of `[N, C, …]`: operands `x, weight, bias, running_mean,
  /// running_var, num_batches_tracked` (the last three are buffers), eps 1e-5 as in PyTorch.
  case batchNorm = "batch_norm"
  /// Layer normalisation over the trailing axes from `axis` on (`torch.nn.LayerNorm`, ONNX
  /// `LayerNormalization`): operands `x: [..., d_axis, …, d_last]`, `weight` and optional
  /// `bias` of shape `[d_axis, …, d_last]`; each row (one index of the leading axes) becomes
  /// `(x − mean)/√(variance + eps)·weight + bias`, mean and biased variance over the row.
  case layerNorm = "layer_norm"
  /// Local response normalisation across channels (ONNX `LRN`; `nn.LocalResponseNorm` for an odd
  /// `size`) of `x: [N, C, …]`: each element divided by `(bias + alpha/size · S)^beta`, `S` the
  /// sum of squares over channels `c − ⌊(size−1)/2⌋ … c + ⌈(size−1)/2⌉` (those that exist).
  /// For an even `size` that is ONNX's window; PyTorch's has its larger half before `c`.
  case lrn
  /// `x: [..., in]`, `weight: [out, in]`, optional `bias: [out]` → `[..., out]`; `x Wᵀ + b`,
  /// with the same optional epilogue as `conv2d` (`residual` operand, `activation`).
  case linear
  /// Matrix product `[m, k] × [k, n]` → `[m, n]`.
  case matmul
  /// Batched matrix product `[..., m, k] × [..., k, n]` → `[..., m, n]`; batch axes equal.
  case batchMatmul = "batch_matmul"
  /// Elementwise sum with NumPy broadcasting.
  case add
  /// Elementwise difference with NumPy broadcasting.
  case sub
  /// Elementwise product with NumPy broadcasting.
  case mul
  /// Elementwise quotient with NumPy broadcasting.
  case div
  /// `max(x, 0)`.
  case relu
  /// `1 / (1 + e^−x)`.
  case sigmoid
  /// Hyperbolic tangent.
  case tanh
  /// `eˣ` elementwise (ONNX `Exp`): +∞ past f32's range.
  case exp
  /// The natural logarithm elementwise (ONNX `Log`): −∞ at 0, NaN below it.
  case log
  /// `√x` elementwise (ONNX `Sqrt`): NaN below 0.
  case sqrt
  /// `|x|` elementwise (ONNX `Abs`).
  case abs
  /// The error function `erf(x) = 2/√π ∫₀ˣ e^(−t²) dt` elementwise (ONNX `Erf`; exact GELU's).
  case erf
  /// `aᵇ` elementwise with NumPy broadcasting (ONNX `Pow`, `torch.pow`): NaN for a negative `a`
  /// and a non-integer `b`.
  case pow
  /// The larger of `a` and `b` elementwise with NumPy broadcasting, NaN where either is NaN
  /// (`torch.maximum`, ONNX `Max` of two). The gradient goes to `a` where they are equal, so
  /// composites choose their value at a kink by the order of the operands.
  case maximum
  /// The smaller of `a` and `b`, as `maximum` (`torch.minimum`, ONNX `Min` of two); the
  /// gradient goes to `a` where they are equal.
  case minimum
  /// Softmax along `axis`.
  case softmax
  /// Log of the softmax along `axis`, computed stably.
  case logSoftmax = "log_softmax"
  /// Sum over `axes` (all when empty), dropping them unless `keepdims`.
  case sum
  /// Mean over `axes` (all when empty), dropping them unless `keepdims`.
  case mean
  /// Maximum over `axes` (all when empty), dropping them unless `keepdims`.
  case max
  /// Same elements, new shape (row-major); one axis may be `-1`, inferred.
  case reshape
  /// Merges axes `start…end` into one (`torch.flatten`).
  case flatten
  /// Permutes axes: result axis `i` is input axis `perm[i]`.
  case transpose
  /// Joins operands along `axis`; other axes equal.
  case concat
  /// Elements `start ..< end` by `step` along `axis` (negative indices count from the end).
  case slice
  /// The entry at `index` along `axis`, dropping that axis (`x[:, -1]` is `axis: 1, index: -1`).
  case select
  /// Splits along `axis` into pieces of the given `sizes`; one result per piece.
  case split
  /// `x` grown on both sides of its axes (ONNX `Pad`, `F.pad`): `pads` lists the elements added
  /// before each axis, then after each, in ONNX's order `[b₀, b₁, …, e₀, e₁, …]`. `mode`
  /// `constant` fills with `value`; `reflect` mirrors about the edge element without repeating
  /// it (each pad less than the axis); `edge` repeats the edge element (PyTorch's `replicate`).
  case pad
  /// LSTM over `x: [B, T, in]` (batch first), gate order i, f, g, o; operands `weight_ih: [4H, in]`,
  /// `weight_hh: [4H, H]`, `bias_ih: [4H]`, `bias_hh: [4H]`, then the same four for the reverse
  /// direction when `bidirectional`. Result `[B, T, H·directions]`, forward half first; with
  /// `last`, only the outputs at the last time step, `[B, H·directions]` (what
  /// `select(lstm(x), axis: 1, index: -1)` keeps — the reverse direction then runs one step).
  case lstm
  /// One LSTM time step, fused (what `unroll-lstm` makes of an LSTM): operands
  /// `gates_x: [B, 4H]` (the step's input projection, both biases included), `h: [B, H]`,
  /// `c: [B, H]`, `weight_hh: [4H, H]`; `gates = gates_x + h·W_hhᵀ`, then
  /// `c' = σ(f)·c + σ(i)·tanh(g)`, `h' = σ(o)·tanh(c')`. Results `h'`, `c'`.
  case lstmCell = "lstm_cell"
  /// Zeroes elements with probability `p` and scales the rest by `1/(1−p)` in training;
  /// identity in inference.
  case dropout
  /// Mean cross-entropy of `logits: [N, C]` against class indices `target: i64[N]` → `f32[]`.
  case crossEntropy = "cross_entropy"
  /// A tensor of the given `shape` filled with `value`.
  case constant
  /// A chain of elementwise ops computed in one loop (what `fuse-elementwise` makes).
  /// Operands `x…` each have the result's shape or one element (broadcast); `program` lists
  /// steps of three integers `code, a, b`: registers `0..<operands` hold the operands, step
  /// `i` writes register `operands + i`, the last step is the result. Codes (`ElementwiseCode`):
  /// 0 add, 1 sub, 2 mul, 3 div, 7 maximum, 8 minimum, 9 pow (of registers `a`, `b`), 4 relu,
  /// 5 sigmoid, 6 tanh, 10 exp, 11 log, 12 sqrt, 13 abs, 14 erf (of `a`).
  case fusedElementwise = "fused_elementwise"
  /// `x: [N, C, H, W]` (`C` a multiple of 16) → `[N, C/16, H, W, 16]`: the channel-blocked layout
  /// (NCHW16c) the `choose-layouts` pass gives convolutions, channel `16·b + l` at `[n, b, h, w, l]`.
  case toBlocked = "to_blocked"
  /// `x: [N, C/16, H, W, 16]` → `[N, C, H, W]`: a blocked value back in the plain layout.
  case fromBlocked = "from_blocked"

  // MARK: Seeds and backward ops (made by `Differentiate`; see `Gradients.swift`)

  /// `logits: [N, C]` (+ `target: [N]`) → `[N, C]`: a one-hot row per example, at `class`, or
  /// at the row's argmax (first on ties) when `class` is -1. With a `target` operand (i64 or
  /// f32 class indices, one per row) each row takes its own class, -1 meaning its argmax; the
  /// `class` attribute is then unused. Stops gradients; taps seed "the gradient of the class
  /// score" with it.
  case classSeed = "class_seed"
  /// `dy, x` of one shape → `dy` where `x > 0`, else 0 (the gradient of `relu(x)`).
  case reluBackward = "relu_backward"
  /// `dy: [..., out]`, `x: [..., in]` with equal leading axes → `[out, in]` = Σ over rows of
  /// `dyᵀ·x`: the weight gradient of `linear`, one GEMM over every row (all time steps).
  case linearBackwardWeight = "linear_backward_weight"
  /// `dy` (a `slice` result) → zeros of the sliced input's shape (axis `axis` of size `size`)
  /// with `dy` placed where `slice(axis, start, end, step)` read: the gradient of `slice`.
  case sliceBackward = "slice_backward"
  /// `dy, x, y` (`y = max(x)`, `dy` and `y` of the reduced shape) → `[x]`: `dy` shared evenly
  /// among the elements equal to their lane's maximum (`torch.amax`'s gradient).
  case maxBackward = "max_backward"
  /// One LSTM step backwards, fused: operands `dh', dc'` (gradients of the step's results),
  /// then the step's own operands `gates_x: [B, 4H], h, c: [B, H], weight_hh: [4H, H]`; the
  /// gates are recomputed. Results `d gates_x: [B, 4H]` (also the gradient of the gate
  /// pre-activations, so of both biases), `dh: [B, H]` (already `d gates · W_hh`), `dc: [B, H]`.
  case lstmCellBackward = "lstm_cell_backward"
  /// `dloss: []`, `logits: [N, C]`, `target: i64[N]` → `[N, C]` = `dloss·(softmax(logits) −
  /// onehot(target))/N`, the gradient of the mean `cross_entropy`.
  case crossEntropyBackward = "cross_entropy_backward"
  /// `dy: [N, Cout, H', W']`, `weight: [Cout, Cin/groups, kH, kW]` → `dx: [N, Cin, H, W]` with
  /// `H, W = input_size`: the input gradient of `conv2d` (GEMM `Wᵀ·dy`, then col2im).
  case conv2dBackwardInput = "conv2d_backward_input"
  /// `dy: [N, Cout, H', W']`, `x: [N, Cin, H, W]` → `dw: [Cout, Cin/groups, kH, kW]` with
  /// `kH, kW = kernel`: the weight gradient of `conv2d` (GEMM of `dy` with im2col columns).
  case conv2dBackwardWeight = "conv2d_backward_weight"
  /// `dy` (a `max_pool2d` result), `x` → `dx`: each window's `dy` goes to its first maximum.
  case maxPool2dBackward = "max_pool2d_backward"
  /// `dy` (an `avg_pool2d` result), `x` (for its shape) → `dx`: each window's `dy` spread over
  /// the elements it averaged, divided by the same count.
  case avgPool2dBackward = "avg_pool2d_backward"
  /// Training-mode batch normalisation over axis 1 of `[N, C, …]`: operands `x, weight, bias`;
  /// results `y`, this batch's per-channel `mean: [C]` and biased `variance: [C]` (what the
  /// running statistics are updated from). `y = (x − mean)/√(variance + eps)·w + b`, then
  /// `activation` (`relu`).
  case batchNormTrain = "batch_norm_train"
  /// `dy, x, weight, mean, variance` (of a `batch_norm_train`) → `dx, dweight: [C], dbias: [C]`,
  /// the statistics differentiated too. With `activation: relu`, `dy` is the ReLU's and the
  /// operand `bias` follows: `dy` counts where the recomputed pre-activation is positive.
  case batchNormTrainBackward = "batch_norm_train_backward"
  /// `dy, x` (of an `lrn`, same attributes) → `dx`: with `D = bias + alpha/size · S`,
  /// `dx_c = dy_c·D_c^−β − 2·alpha·beta/size · x_c · Σ dy_j·x_j·D_j^(−β−1)` over the channels `j`
  /// whose window holds `c`; `D` recomputed from `x`.
  case lrnBackward = "lrn_backward"
  /// `dy, x, weight` (of a `layer_norm`, same attributes) → `dx` (of `x`'s shape), `dweight`,
  /// `dbias` (of `weight`'s shape): the row statistics recomputed from `x`, then
  /// `dx = (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))/√(variance + eps)` with `ĝ = dy·weight`, and the
  /// sums over the rows of `dy·x̂` and `dy`.
  case layerNormBackward = "layer_norm_backward"

  /// How an op's operands are named and counted.
  public struct OperandSpec: Sendable {
    /// Names of the operands in order, for messages and the printer.
    public var names: [String]
    /// How many operands are required; the rest of `names` are optional (or, when
    /// `variadic`, the last name repeats).
    public var required: Int
    public var variadic: Bool = false
  }

  /// The kind of value an attribute takes.
  public enum AttrKind: Sendable, Equatable {
    case int, float, bool, dim
    /// One integer or two (`[h, w]`); stored as a two-element list.
    case pair
    /// A list of integers.
    case ints
    /// A list of numbers.
    case floats
    /// A list of dimensions, `-1` allowed once (reshape targets).
    case dims
    /// One of the given names.
    case choice([String])
  }

  /// One attribute an op accepts; `defaultValue == nil` means required. An op's list comes
  /// from its attribute struct (`Op.attributeSet`, `OpAttributes.swift`).
  public struct AttrSpec: Sendable {
    public var name: String
    public var kind: AttrKind
    public var defaultValue: AttrValue?
    public init(_ name: String, _ kind: AttrKind, _ defaultValue: AttrValue? = nil) {
      self.name = name
      self.kind = kind
      self.defaultValue = defaultValue
    }
  }

  /// The operands this op takes.
  public var operands: OperandSpec {
    switch self {
    case .conv2d: OperandSpec(names: ["x", "weight", "bias", "residual"], required: 2)
    case .maxPool2d, .avgPool2d, .globalAvgPool2d, .relu, .sigmoid, .tanh, .exp, .log, .sqrt, .abs, .erf,
      .softmax, .logSoftmax, .sum, .mean, .max, .reshape, .flatten, .transpose, .slice, .select, .split, .pad,
      .dropout, .toBlocked, .fromBlocked:
      OperandSpec(names: ["x"], required: 1)
    case .batchNorm:
      OperandSpec(
        names: ["x", "weight", "bias", "running_mean", "running_var", "num_batches_tracked"],
        required: 6)
    case .linear: OperandSpec(names: ["x", "weight", "bias", "residual"], required: 2)
    case .matmul, .batchMatmul, .add, .sub, .mul, .div, .pow, .maximum, .minimum:
      OperandSpec(names: ["a", "b"], required: 2)
    case .concat, .fusedElementwise: OperandSpec(names: ["x"], required: 1, variadic: true)
    case .lstm:
      OperandSpec(
        names: [
          "x", "weight_ih", "weight_hh", "bias_ih", "bias_hh",
          "weight_ih_reverse", "weight_hh_reverse", "bias_ih_reverse", "bias_hh_reverse",
        ],
        required: 5)
    case .crossEntropy: OperandSpec(names: ["logits", "target"], required: 2)
    case .lstmCell: OperandSpec(names: ["gates_x", "h", "c", "weight_hh"], required: 4)
    case .constant: OperandSpec(names: [], required: 0)
    case .classSeed: OperandSpec(names: ["logits", "target"], required: 1)
    case .reluBackward, .linearBackwardWeight: OperandSpec(names: ["dy", "x"], required: 2)
    case .sliceBackward: OperandSpec(names: ["dy"], required: 1)
    case .maxBackward: OperandSpec(names: ["dy", "x", "y"], required: 3)
    case .lstmCellBackward: OperandSpec(names: ["dh", "dc", "gates_x", "h", "c", "weight_hh"], required: 6)
    case .crossEntropyBackward: OperandSpec(names: ["dloss", "logits", "target"], required: 3)
    case .conv2dBackwardInput: OperandSpec(names: ["dy", "weight"], required: 2)
    case .conv2dBackwardWeight, .maxPool2dBackward, .avgPool2dBackward: OperandSpec(names: ["dy", "x"], required: 2)
    case .batchNormTrain: OperandSpec(names: ["x", "weight", "bias"], required: 3)
    case .batchNormTrainBackward: OperandSpec(names: ["dy", "x", "weight", "mean", "variance", "bias"], required: 5)
    case .layerNorm: OperandSpec(names: ["x", "weight", "bias"], required: 2)
    case .lrn: OperandSpec(names: ["x"], required: 1)
    case .lrnBackward: OperandSpec(names: ["dy", "x"], required: 2)
    case .layerNormBackward: OperandSpec(names: ["dy", "x", "weight"], required: 3)
    }
  }

  /// Whether the op is elementwise (same shape out as the broadcast of its operands).
  public var isElementwise: Bool {
    switch self {
    case .add, .sub, .mul, .div, .relu, .sigmoid, .tanh, .exp, .log, .sqrt, .abs, .erf, .pow, .maximum, .minimum,
      .dropout, .reluBackward, .fusedElementwise:
      true
    case .conv2d, .maxPool2d, .avgPool2d, .globalAvgPool2d, .batchNorm, .linear, .matmul,
      .batchMatmul, .softmax, .logSoftmax, .sum, .mean, .max, .reshape, .flatten, .transpose,
      .concat, .slice, .select, .split, .pad, .lstm, .lstmCell, .crossEntropy, .constant, .classSeed,
      .linearBackwardWeight, .sliceBackward, .maxBackward, .lstmCellBackward, .crossEntropyBackward,
      .conv2dBackwardInput, .conv2dBackwardWeight, .maxPool2dBackward, .avgPool2dBackward, .batchNormTrain,
      .batchNormTrainBackward, .layerNorm, .layerNormBackward, .lrn, .lrnBackward, .toBlocked, .fromBlocked:
      false
    }
  }

  /// The spec-language name (`max_pool2d`).
  public var name: String { rawValue }
}

/// The step codes of `fused_elementwise` programs.
public enum ElementwiseCode: Int, CaseIterable, Sendable {
  case add = 0, sub, mul, div, relu, sigmoid, tanh, maximum, minimum, pow, exp, log, sqrt, abs, erf

  /// Whether the step reads a second register.
  public var isBinary: Bool {
    switch self {
    case .add, .sub, .mul, .div, .maximum, .minimum, .pow: true
    case .relu, .sigmoid, .tanh, .exp, .log, .sqrt, .abs, .erf: false
    }
  }

  /// The op a step stands for.
  public var op: Op {
    switch self {
    case .add: .add
    case .sub: .sub
    case .mul: .mul
    case .div: .div
    case .relu: .relu
    case .sigmoid: .sigmoid
    case .tanh: .tanh
    case .maximum: .maximum
    case .minimum: .minimum
    case .pow: .pow
    case .exp: .exp
    case .log: .log
    case .sqrt: .sqrt
    case .abs: .abs
    case .erf: .erf
    }
  }

  /// The code of a fusible op.
  public init?(_ op: Op) {
    guard let c = ElementwiseCode.allCases.first(where: { $0.op == op }) else { return nil }
    self = c
  }
}
