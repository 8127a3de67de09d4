/// A shape rule's complaint: the rule and both sides, without a location (the caller adds it).
public struct ShapeError: Error, Hashable, Sendable {
  public var message: String
  public init(_ message: String) { self.message = message }
}

extension Op {
  /// The result types for operands of the given types, or why they do not fit.
  ///
  /// Expects operand count and attribute kinds already checked against `operands` and
  /// `attributes` (the elaborator and the verifier do that first).
  public func inferTypes(_ x: [TensorType], _ a: Attributes) throws(ShapeError) -> [TensorType] {
    switch self {
    case .conv2d:
      let attrs = try decode(ConvolutionAttributes.self, a)
      let input = try x[0].plainImage(op: self)
      if x[0].rank == 5, attrs.layout == .plain {
        throw ShapeError("conv2d: a blocked input \(x[0].shapeDescription) needs layout: blocked")
      }
      let w = try x[1].requireRank(4, op: self, operand: "weight", layout: "[Cout, Cin/groups, kH, kW]")
      try requireFloat(x, op: self)
      let groups = attrs.geometry.groups
      guard groups >= 1 else { throw ShapeError("conv2d: groups must be at least 1, found \(groups)") }
      guard let perGroup = w.shape[1].staticValue else {
        throw ShapeError("conv2d: weight's input channels must be static, found \(w.shape[1])")
      }
      let cin = input.shape[1]
      let expected = Dim(perGroup * groups)
      guard cin == expected else {
        let detail = groups == 1 ? "" : " (\(perGroup) per group × \(groups) groups)"
        throw ShapeError("conv2d: input has \(cin) channels but weight expects \(expected)\(detail)")
      }
      if let cout = w.shape[0].staticValue, cout % groups != 0 {
        throw ShapeError("conv2d: \(cout) output channels are not divisible by \(groups) groups")
      }
      if x.count > 2 {
        let b = try x[2].requireRank(1, op: self, operand: "bias", layout: "[Cout]")
        guard b.shape[0] == w.shape[0] else {
          throw ShapeError("conv2d: bias has \(b.shape[0]) elements but weight has \(w.shape[0]) output channels")
        }
      }
      let geometry = attrs.geometry
      let (oh, ow) = try windowOutput(
        input, kernel: [w.shape[2], w.shape[3]], stride: geometry.stride,
        padding: geometry.padding, dilation: geometry.dilation, ceilMode: false, op: self)
      var result = TensorType(input.dtype, [input.shape[0], w.shape[0], oh, ow])
      if attrs.layout == .blocked {
        guard groups == 1 else { throw ShapeError("conv2d: layout blocked takes no groups, found \(groups)") }
        result = try result.blocked(op: self)
      }
      try checkResidual(x, result, op: self)
      return [result]

    case .toBlocked:
      let input = try x[0].requireRank(4, op: self, operand: "input", layout: "[N, C, H, W]")
      return [try input.blocked(op: self)]

    case .fromBlocked:
      guard x[0].rank == 5 else {
        throw ShapeError("from_blocked: input must have rank 5 [N, C/16, H, W, 16], found \(x[0].shapeDescription)")
      }
      return [try x[0].plainImage(op: self)]

    case .maxPool2d, .avgPool2d:
      let input =
        self == .maxPool2d
        ? try x[0].plainImage(op: self)
        : try x[0].requireRank(4, op: self, operand: "input", layout: "[N, C, H, W]")
      let window =
        self == .maxPool2d
        ? try decode(MaxPoolAttributes.self, a).window
        : try decode(AvgPoolAttributes.self, a).window
      let kernel = [Dim(window.kernel.h), Dim(window.kernel.w)]
      let (oh, ow) = try windowOutput(
        input, kernel: kernel, stride: window.stride, padding: window.padding,
        dilation: window.dilation, ceilMode: window.ceilMode, op: self)
      let result = TensorType(input.dtype, [input.shape[0], input.shape[1], oh, ow])
      return [x[0].rank == 5 ? try result.blocked(op: self) : result]

    case .globalAvgPool2d:
      let input = try x[0].requireRank(4, op: self, operand: "input", layout: "[N, C, H, W]")
      try requireFloat(x, op: self)
      return [TensorType(input.dtype, [input.shape[0], input.shape[1], 1, 1])]

    case .batchNorm:
      let input = x[0]
      guard input.rank >= 2 else {
        throw ShapeError("batch_norm: input must have rank at least 2 ([N, C, …]), found \(input.shapeDescription)")
      }
      let c = input.shape[1]
      for (i, name) in ["weight", "bias", "running_mean", "running_var"].enumerated() {
        let t = x[i + 1]
        guard t.shape == [c] else {
          throw ShapeError("batch_norm: \(name) must be [\(c)] for \(c) channels, found \(t.shapeDescription)")
        }
      }
      guard x[5].shape.isEmpty, x[5].dtype == .i64 else {
        throw ShapeError("batch_norm: num_batches_tracked must be i64[], found \(x[5])")
      }
      try requireFloat(Array(x[0..<5]), op: self)
      return [input]

    case .layerNorm, .layerNormBackward:
      let input = self == .layerNorm ? x[0] : x[1]
      try requireFloat(x, op: self)
      let attrs = try decode(LayerNormAttributes.self, a)
      let axis = try checkedAxis(attrs.axis, rank: input.rank, op: self), eps = attrs.eps
      guard eps >= 0 else { throw ShapeError("\(name): eps must be non-negative, found \(AttrValue.formatFloat(eps))") }
      let normalized = TensorType(input.dtype, Array(input.shape[axis...]))
      let perRow = self == .layerNorm ? Array(x.dropFirst()) : [x[2]]
      for (t, operand) in zip(perRow, ["weight", "bias"]) where t != normalized {
        throw ShapeError(
          "\(name): \(operand) must be \(normalized.shapeDescription) for the axes from \(axis) of "
            + "\(input.shapeDescription), found \(t.shapeDescription)")
      }
      if self == .layerNorm { return [input] }
      guard x[0] == input else { throw ShapeError("layer_norm_backward: dy is \(x[0]) but x is \(input)") }
      return [input, normalized, normalized]

    case .lrn, .lrnBackward:
      let input = x[self == .lrn ? 0 : 1]
      try requireFloat(x, op: self)
      guard input.rank >= 2 else {
        throw ShapeError("\(name): input must have rank at least 2 ([N, C, …]), found \(input.shapeDescription)")
      }
      let attrs = try decode(LRNAttributes.self, a)
      guard attrs.size >= 1 else { throw ShapeError("\(name): size must be at least 1, found \(attrs.size)") }
      guard attrs.bias > 0, attrs.alpha >= 0, attrs.alpha.isFinite, attrs.beta.isFinite else {
        throw ShapeError(
          "\(name): bias must be positive, alpha non-negative and beta finite, found bias "
            + "\(AttrValue.formatFloat(attrs.bias)), alpha \(AttrValue.formatFloat(attrs.alpha)) and beta "
            + "\(AttrValue.formatFloat(attrs.beta))")
      }
      if self == .lrnBackward, x[0] != input { throw ShapeError("lrn_backward: dy is \(x[0]) but x is \(input)") }
      return [input]

    case .linear:
      let input = x[0]
      let w = try x[1].requireRank(2, op: self, operand: "weight", layout: "[out, in]")
      try requireFloat(x, op: self)
      guard let features = input.shape.last else {
        throw ShapeError("linear: input must have at least one axis, found a scalar")
      }
      guard features == w.shape[1] else {
        throw ShapeError("linear: input has \(features) features but weight expects \(w.shape[1])")
      }
      if x.count > 2 {
        let b = try x[2].requireRank(1, op: self, operand: "bias", layout: "[out]")
        guard b.shape[0] == w.shape[0] else {
          throw ShapeError("linear: bias has \(b.shape[0]) elements but weight has \(w.shape[0]) outputs")
        }
      }
      let result = TensorType(input.dtype, input.shape.dropLast() + [w.shape[0]])
      try checkResidual(x, result, op: self)
      return [result]

    case .matmul:
      let l = try x[0].requireRank(2, op: self, operand: "a", layout: "[m, k]")
      let r = try x[1].requireRank(2, op: self, operand: "b", layout: "[k, n]")
      try requireSameDType(x, op: self)
      guard l.shape[1] == r.shape[0] else {
        throw ShapeError(
          "matmul: a is \(l.shapeDescription) and b is \(r.shapeDescription); inner sizes \(l.shape[1]) and \(r.shape[0]) differ"
        )
      }
      return [TensorType(l.dtype, [l.shape[0], r.shape[1]])]

    case .batchMatmul:
      let l = x[0], r = x[1]
      try requireSameDType(x, op: self)
      guard l.rank >= 3, l.rank == r.rank else {
        throw ShapeError(
          "batch_matmul: operands must have the same rank ≥ 3, found \(l.shapeDescription) and \(r.shapeDescription)")
      }
      guard l.shape.dropLast(2) == r.shape.dropLast(2) else {
        throw ShapeError("batch_matmul: batch axes differ: \(l.shapeDescription) and \(r.shapeDescription)")
      }
      guard l.shape[l.rank - 1] == r.shape[r.rank - 2] else {
        throw ShapeError(
          "batch_matmul: a is \(l.shapeDescription) and b is \(r.shapeDescription); inner sizes \(l.shape[l.rank - 1]) and \(r.shape[r.rank - 2]) differ"
        )
      }
      return [TensorType(l.dtype, l.shape.dropLast() + [r.shape[r.rank - 1]])]

    case .add, .sub, .mul, .div:
      try requireSameDType(x, op: self)
      guard x[0].dtype != .bool else { throw ShapeError("\(name): operands must be numeric, found bool") }
      return [TensorType(x[0].dtype, try broadcast(x[0].shape, x[1].shape, op: self))]

    case .pow, .maximum, .minimum:
      try requireFloat(x, op: self)
      return [TensorType(x[0].dtype, try broadcast(x[0].shape, x[1].shape, op: self))]

    case .relu, .sigmoid, .tanh, .exp, .log, .sqrt, .abs, .erf, .dropout:
      try requireFloat(x, op: self)
      if self == .dropout {
        let p = try decode(DropoutAttributes.self, a).p
        guard p >= 0, p < 1 else { throw ShapeError("dropout: p must be in [0, 1), found \(AttrValue.formatFloat(p))") }
      }
      return [x[0]]

    case .fusedElementwise:
      try requireFloat(x, op: self)
      try requireSameDType(x, op: self)
      let full = x.first(where: { $0.shape.count != 0 && $0.shape != [Dim(1)] })?.shape ?? x[0].shape
      for t in x where t.shape != full && t.elementCount != Dim(1) {
        throw ShapeError(
          "fused_elementwise: operands must have the result's shape \(TensorType(t.dtype, full).shapeDescription) or one element, found \(t.shapeDescription)"
        )
      }
      let program = try decode(FusedElementwiseAttributes.self, a).program
      guard !program.isEmpty, program.count % 3 == 0 else {
        throw ShapeError(
          "fused_elementwise: program must be steps of three integers (code, a, b), found \(program.count) integers")
      }
      for step in 0..<(program.count / 3) {
        let registers = x.count + step
        guard let code = ElementwiseCode(rawValue: program[3 * step]) else {
          throw ShapeError("fused_elementwise: step \(step) has unknown code \(program[3 * step])")
        }
        let reads = code.isBinary ? [program[3 * step + 1], program[3 * step + 2]] : [program[3 * step + 1]]
        for r in reads where r < 0 || r >= registers {
          throw ShapeError("fused_elementwise: step \(step) reads register \(r), but only 0..<\(registers) are written")
        }
      }
      return [TensorType(x[0].dtype, full)]

    case .softmax, .logSoftmax:
      try requireFloat(x, op: self)
      _ = try checkedAxis(decode(SoftmaxAttributes.self, a).axis, rank: x[0].rank, op: self)
      return [x[0]]

    case .sum, .mean, .max:
      let input = x[0]
      if self == .mean { try requireFloat(x, op: self) }
      let attrs = try decode(ReduceAttributes.self, a)
      var axes: [Int: Int] = [:]  // normalised axis → as written
      for axis in attrs.axes {
        let n = try checkedAxis(axis, rank: input.rank, op: self)
        if let first = axes[n] {
          throw ShapeError(
            first == axis
              ? "\(name): axis \(axis) is listed twice"
              : "\(name): axes \(first) and \(axis) both name axis \(n)")
        }
        axes[n] = axis
      }
      let reduced = axes.isEmpty ? Set(0..<input.rank) : Set(axes.keys)
      let keep = attrs.keepdims
      var shape: [Dim] = []
      for (i, d) in input.shape.enumerated() {
        if reduced.contains(i) { if keep { shape.append(1) } } else { shape.append(d) }
      }
      return [TensorType(input.dtype, shape)]

    case .reshape:
      let target = try decode(ReshapeAttributes.self, a).shape
      guard let total = x[0].elementCount else { throw ShapeError("reshape: input element count overflows") }
      var known = Dim(1)
      var inferred: Int?
      for (i, d) in target.enumerated() {
        if d == Dim(-1) {
          guard inferred == nil else {
            throw ShapeError(
              "reshape: only one axis may be -1, found \(TensorType(x[0].dtype, target).shapeDescription)")
          }
          inferred = i
        } else {
          guard d.coefficient > 0 else {
            throw ShapeError("reshape: target sizes must be positive or -1, found \(d) at axis \(i)")
          }
          guard let k = known.multiplied(by: d) else { throw ShapeError("reshape: target element count overflows") }
          known = k
        }
      }
      var shape = target
      if let i = inferred {
        guard let rest = total.divided(by: known) else {
          throw ShapeError("reshape: cannot infer axis \(i): \(total) elements are not divisible by \(known)")
        }
        shape[i] = rest
      } else if known != total {
        throw ShapeError(
          "reshape: input \(x[0].shapeDescription) has \(total) elements but target \(TensorType(x[0].dtype, target).shapeDescription) has \(known)"
        )
      }
      return [TensorType(x[0].dtype, shape)]

    case .flatten:
      let input = x[0]
      let attrs = try decode(FlattenAttributes.self, a)
      let start = try checkedAxis(attrs.start, rank: input.rank, op: self)
      let end = try checkedAxis(attrs.end, rank: input.rank, op: self)
      guard start <= end else { throw ShapeError("flatten: start axis \(start) is after end axis \(end)") }
      var merged = Dim(1)
      for d in input.shape[start...end] {
        guard let m = merged.multiplied(by: d) else { throw ShapeError("flatten: element count overflows") }
        merged = m
      }
      return [TensorType(input.dtype, Array(input.shape[..<start]) + [merged] + Array(input.shape[(end + 1)...]))]

    case .transpose:
      let perm = try decode(TransposeAttributes.self, a).perm
      guard perm.count == x[0].rank, perm.sorted() == Array(0..<x[0].rank) else {
        throw ShapeError(
          "transpose: perm \(perm) is not a permutation of the \(x[0].rank) axes of \(x[0].shapeDescription)")
      }
      return [TensorType(x[0].dtype, perm.map { x[0].shape[$0] })]

    case .concat:
      try requireSameDType(x, op: self)
      let first = x[0]
      let axis = try checkedAxis(decode(ConcatAttributes.self, a).axis, rank: first.rank, op: self)
      var total = Dim(0)
      for (i, t) in x.enumerated() {
        guard t.rank == first.rank else {
          throw ShapeError("concat: operand \(i) has rank \(t.rank) but operand 0 has rank \(first.rank)")
        }
        for j in 0..<t.rank where j != axis && t.shape[j] != first.shape[j] {
          throw ShapeError(
            "concat: operand \(i) is \(t.shapeDescription) but operand 0 is \(first.shapeDescription); axis \(j) differs"
          )
        }
        let d = t.shape[axis]
        if total == Dim(0) {
          total = d
        } else if let s = total.staticValue, let v = d.staticValue {
          total = Dim(s + v)
        } else if total.symbols == d.symbols {
          total = Dim(coefficient: total.coefficient + d.coefficient, symbols: d.symbols)
        } else {
          throw ShapeError("concat: cannot add sizes \(total) and \(d) along axis \(axis); bind the symbols")
        }
      }
      var shape = first.shape
      shape[axis] = total
      return [TensorType(first.dtype, shape)]

    case .slice:
      return [try sliceResult(x[0], decode(SliceAttributes.self, a))]

    case .select:
      let input = x[0]
      let attrs = try decode(SelectAttributes.self, a)
      let axis = try checkedAxis(attrs.axis, rank: input.rank, op: self)
      let index = attrs.index
      if let n = input.shape[axis].staticValue {
        guard index >= -n, index < n else {
          throw ShapeError("select: index \(index) is out of range for axis \(axis) of size \(n)")
        }
      } else if index != 0 && index != -1 {
        throw ShapeError(
          "select: index \(index) on symbolic axis \(axis) (\(input.shape[axis])) needs a binding; only 0 and -1 are always valid"
        )
      }
      var shape = input.shape
      shape.remove(at: axis)
      return [TensorType(input.dtype, shape)]

    case .split:
      let input = x[0]
      let attrs = try decode(SplitAttributes.self, a)
      let axis = try checkedAxis(attrs.axis, rank: input.rank, op: self)
      let sizes = attrs.sizes
      guard !sizes.isEmpty, sizes.allSatisfy({ $0 > 0 }) else {
        throw ShapeError("split: sizes must be a non-empty list of positive sizes, found \(sizes)")
      }
      let total = sizes.reduce(0, +)
      guard input.shape[axis] == Dim(total) else {
        throw ShapeError("split: sizes \(sizes) add up to \(total) but axis \(axis) has size \(input.shape[axis])")
      }
      return sizes.map { s in
        var shape = input.shape
        shape[axis] = Dim(s)
        return TensorType(input.dtype, shape)
      }

    case .pad:
      let input = x[0]
      try requireFloat(x, op: self)
      let attrs = try decode(PadAttributes.self, a)
      let pads = attrs.pads
      guard pads.count == 2 * input.rank else {
        throw ShapeError(
          "pad: pads must list \(2 * input.rank) sizes (before each axis of \(input.shapeDescription), "
            + "then after each), found \(pads.count)")
      }
      guard pads.allSatisfy({ $0 >= 0 }) else {
        throw ShapeError("pad: pads must be non-negative (slice crops), found \(pads)")
      }
      var shape = input.shape
      for axis in 0..<input.rank where attrs.before(axis) > 0 || attrs.after(axis) > 0 {
        guard let n = input.shape[axis].staticValue else {
          throw ShapeError("pad: padded axis \(axis) has symbolic size \(input.shape[axis]); bind it")
        }
        if attrs.mode == .reflect, attrs.before(axis) >= n || attrs.after(axis) >= n {
          throw ShapeError(
            "pad: reflect padding must be less than the axis' size, found \(attrs.before(axis)) and "
              + "\(attrs.after(axis)) on axis \(axis) of size \(n)")
        }
        shape[axis] = Dim(n + attrs.before(axis) + attrs.after(axis))
      }
      return [TensorType(input.dtype, shape)]

    case .lstm:
      let input = try x[0].requireRank(3, op: self, operand: "input", layout: "[B, T, features]")
      try requireFloat(x, op: self)
      let attrs = try decode(LSTMAttributes.self, a)
      let h = attrs.hidden
      guard h >= 1 else { throw ShapeError("lstm: hidden must be at least 1, found \(h)") }
      let directions = attrs.directions
      guard x.count == 1 + 4 * directions else {
        throw ShapeError(
          "lstm: \(directions == 2 ? "a bidirectional" : "a unidirectional") LSTM takes \(1 + 4 * directions) operands (the input, then two weights and two biases per direction), found \(x.count)"
        )
      }
      let features = input.shape[2]
      for d in 0..<directions {
        let suffix = d == 0 ? "" : "_reverse"
        let expected: [(String, [Dim])] = [
          ("weight_ih\(suffix)", [Dim(4 * h), features]), ("weight_hh\(suffix)", [Dim(4 * h), Dim(h)]),
          ("bias_ih\(suffix)", [Dim(4 * h)]), ("bias_hh\(suffix)", [Dim(4 * h)]),
        ]
        for (k, (name, shape)) in expected.enumerated() where x[1 + 4 * d + k].shape != shape {
          throw ShapeError(
            "lstm: \(name) must be \(TensorType(.f32, shape).shapeDescription) for hidden \(h) and \(features) input features, found \(x[1 + 4 * d + k].shapeDescription)"
          )
        }
      }
      if attrs.last { return [TensorType(input.dtype, [input.shape[0], Dim(h * directions)])] }
      return [TensorType(input.dtype, [input.shape[0], input.shape[1], Dim(h * directions)])]

    case .lstmCell:
      try requireFloat(x, op: self)
      let h = try x[1].requireRank(2, op: self, operand: "h", layout: "[B, H]")
      let (b, hidden) = (h.shape[0], h.shape[1])
      let gates = TensorType(h.dtype, [b, Dim(4 * (hidden.staticValue ?? 0))])
      guard let hs = hidden.staticValue, x[0] == gates, x[2] == h, x[3].shape == [Dim(4 * hs), hidden] else {
        throw ShapeError(
          "lstm_cell: for h \(h) expected gates_x \(gates.shapeDescription), c \(h.shapeDescription) and weight_hh [\(4 * (hidden.staticValue ?? 0)), \(hidden)], found \(x[0].shapeDescription), \(x[2].shapeDescription) and \(x[3].shapeDescription)"
        )
      }
      return [h, h]

    case .crossEntropy:
      let logits = try x[0].requireRank(2, op: self, operand: "logits", layout: "[N, C]")
      let target = try x[1].requireRank(1, op: self, operand: "target", layout: "[N]")
      guard logits.dtype.isFloatingPoint else {
        throw ShapeError("cross_entropy: logits must be floating point, found \(logits.dtype.rawValue)")
      }
      guard target.dtype == .i64 else {
        throw ShapeError("cross_entropy: target must be i64 class indices, found \(target.dtype.rawValue)")
      }
      guard target.shape[0] == logits.shape[0] else {
        throw ShapeError("cross_entropy: logits have \(logits.shape[0]) rows but target has \(target.shape[0])")
      }
      return [TensorType(logits.dtype, [])]

    case .constant:
      let attrs = try decode(ConstantAttributes.self, a)
      for (i, d) in attrs.shape.enumerated() where d.coefficient < 1 {
        throw ShapeError("constant: sizes must be positive, found \(d) at axis \(i)")
      }
      return [TensorType(attrs.dtype, attrs.shape)]

    case .classSeed:
      let logits = try x[0].requireRank(2, op: self, operand: "logits", layout: "[N, C]")
      try requireFloat([logits], op: self)
      if x.count > 1 {
        let target = try x[1].requireRank(1, op: self, operand: "target", layout: "[N]")
        guard target.dtype == .i64 || target.dtype == .f32 else {
          throw ShapeError("class_seed: target must be i64 or f32 class indices, found \(target.dtype.rawValue)")
        }
        guard target.shape[0] == logits.shape[0] else {
          throw ShapeError("class_seed: logits have \(logits.shape[0]) rows but target has \(target.shape[0])")
        }
      }
      let k = try decode(ClassSeedAttributes.self, a).classIndex
      if k < -1 { throw ShapeError("class_seed: class must be -1 (the argmax) or a class index, found \(k)") }
      if k >= 0, let c = logits.shape[1].staticValue, k >= c {
        throw ShapeError("class_seed: class \(k) is out of range for \(c) classes")
      }
      return [logits]

    case .reluBackward:
      try requireFloat(x, op: self)
      guard x[0] == x[1] else { throw ShapeError("relu_backward: dy is \(x[0]) but x is \(x[1])") }
      return [x[1]]

    case .linearBackwardWeight:
      try requireFloat(x, op: self)
      guard x[0].rank >= 1, x[0].rank == x[1].rank, x[0].shape.dropLast() == x[1].shape.dropLast() else {
        throw ShapeError(
          "linear_backward_weight: dy \(x[0].shapeDescription) and x \(x[1].shapeDescription) must share every axis but the last"
        )
      }
      return [TensorType(x[0].dtype, [x[0].shape[x[0].rank - 1], x[1].shape[x[1].rank - 1]])]

    case .sliceBackward:
      try requireFloat(x, op: self)
      let dy = x[0]
      let attrs = try decode(SliceBackwardAttributes.self, a)
      let axis = try checkedAxis(attrs.slice.axis, rank: dy.rank, op: self)
      var shape = dy.shape
      shape[axis] = attrs.size
      let input = TensorType(dy.dtype, shape)
      let sliced: TensorType
      do { sliced = try sliceResult(input, attrs.slice) } catch {
        throw ShapeError("slice_backward: \(error.message)")
      }
      guard sliced == dy else {
        throw ShapeError(
          "slice_backward: slicing \(input.shapeDescription) gives \(sliced.shapeDescription), "
            + "not dy \(dy.shapeDescription)")
      }
      return [input]

    case .maxBackward:
      try requireFloat(x, op: self)
      let reduced = try Op.max.inferTypes([x[1]], a)
      guard x[0] == reduced[0], x[2] == reduced[0] else {
        throw ShapeError(
          "max_backward: dy \(x[0].shapeDescription) and y \(x[2].shapeDescription) must be the reduced shape \(reduced[0].shapeDescription)"
        )
      }
      return [x[1]]

    case .lstmCellBackward:
      try requireFloat(x, op: self)
      let step = try Op.lstmCell.inferTypes(Array(x[2...]), a)
      guard x[0] == step[0], x[1] == step[1] else {
        throw ShapeError(
          "lstm_cell_backward: dh and dc must be \(step[0].shapeDescription), found \(x[0].shapeDescription) and \(x[1].shapeDescription)"
        )
      }
      return [x[2], x[3], x[4]]

    case .crossEntropyBackward:
      guard x[0].rank == 0, x[0].dtype.isFloatingPoint else {
        throw ShapeError("cross_entropy_backward: dloss must be a floating-point scalar, found \(x[0])")
      }
      _ = try Op.crossEntropy.inferTypes(Array(x[1...]), a)
      return [x[1]]

    case .conv2dBackwardInput, .conv2dBackwardWeight:
      let dy = try x[0].requireRank(4, op: self, operand: "dy", layout: "[N, Cout, H', W']")
      try requireFloat(x, op: self)
      let input: TensorType, weight: TensorType, geometry: ConvolutionGeometry
      if self == .conv2dBackwardInput {
        let attrs = try decode(ConvolutionInputGradientAttributes.self, a)
        geometry = attrs.geometry
        weight = try x[1].requireRank(4, op: self, operand: "weight", layout: "[Cout, Cin/groups, kH, kW]")
        let size = attrs.inputSize
        guard size.h >= 1, size.w >= 1 else {
          throw ShapeError("conv2d_backward_input: input_size must be two positive sizes, found \(size)")
        }
        input = TensorType(
          dy.dtype,
          [
            dy.shape[0], Dim((weight.shape[1].staticValue ?? 0) * geometry.groups),
            Dim(size.h), Dim(size.w),
          ])
      } else {
        let attrs = try decode(ConvolutionWeightGradientAttributes.self, a)
        geometry = attrs.geometry
        input = try x[1].requireRank(4, op: self, operand: "x", layout: "[N, Cin, H, W]")
        let k = attrs.kernel, groups = Swift.max(geometry.groups, 1)
        guard k.h >= 1, k.w >= 1, let cin = input.shape[1].staticValue, cin % groups == 0 else {
          throw ShapeError(
            "conv2d_backward_weight: kernel must be two positive sizes and the \(input.shape[1]) input channels divisible by \(groups) groups"
          )
        }
        weight = TensorType(dy.dtype, [dy.shape[1], Dim(cin / groups), Dim(k.h), Dim(k.w)])
      }
      let forward = ConvolutionAttributes(geometry: geometry, activation: .none, layout: .plain).encoded
      let out = try Op.conv2d.inferTypes([input, weight], forward)
      guard out == [dy] else {
        throw ShapeError(
          "\(name): conv2d of \(input.shapeDescription) by \(weight.shapeDescription) gives \(out[0].shapeDescription), not dy \(dy.shapeDescription)"
        )
      }
      return [self == .conv2dBackwardInput ? input : weight]

    case .maxPool2dBackward, .avgPool2dBackward:
      let forward: Op = self == .maxPool2dBackward ? .maxPool2d : .avgPool2d
      try requireFloat(x, op: self)
      let out = try forward.inferTypes([x[1]], a)
      guard out == [x[0]] else {
        throw ShapeError(
          "\(name): \(forward.name) of \(x[1].shapeDescription) gives \(out[0].shapeDescription), not dy \(x[0].shapeDescription)"
        )
      }
      return [x[1]]

    case .batchNormTrain, .batchNormTrainBackward:
      try requireFloat(x, op: self)
      let input = self == .batchNormTrain ? x[0] : x[1]
      guard input.rank >= 2 else {
        throw ShapeError("\(name): input must have rank at least 2 ([N, C, …]), found \(input.shapeDescription)")
      }
      let channel = TensorType(input.dtype, [input.shape[1]])
      let perChannel = self == .batchNormTrain ? Array(x[1...]) : Array(x[2...])
      for t in perChannel where t != channel {
        throw ShapeError(
          "\(name): per-channel operands must be \(channel.shapeDescription) for \(input.shape[1]) channels, found \(t.shapeDescription)"
        )
      }
      if self == .batchNormTrainBackward, x[0] != input {
        throw ShapeError("batch_norm_train_backward: dy is \(x[0]) but x is \(input)")
      }
      let attrs = try decode(BatchNormTrainAttributes.self, a)
      if self == .batchNormTrainBackward, attrs.activation == .relu, x.count < 6 {
        throw ShapeError("batch_norm_train_backward: activation relu needs the bias (6 operands), found \(x.count)")
      }
      return [input, channel, channel]
    }
  }
}

// MARK: - Helpers shared by the rules

extension Op {
  /// The attributes as `T` (this op's `attributeSet`), or which one does not fit.
  func decode<T: AttributeSet>(_: T.Type, _ a: Attributes) throws(ShapeError) -> T {
    do { return try T(decoding: a) } catch { throw ShapeError("\(name): \(error.message)") }
  }
}

/// The type `slice` gives for `input`.
func sliceResult(_ input: TensorType, _ a: SliceAttributes) throws(ShapeError) -> TensorType {
  let axis = try checkedAxis(a.axis, rank: input.rank, op: .slice)
  let step = a.step
  guard step >= 1 else { throw ShapeError("slice: step must be at least 1, found \(step)") }
  guard let n = input.shape[axis].staticValue else {
    throw ShapeError("slice: axis \(axis) has symbolic size \(input.shape[axis]); bind it")
  }
  let start = clampIndex(a.start, n), end = clampIndex(a.end, n)
  let count = end > start ? (end - start + step - 1) / step : 0
  guard count > 0 else {
    throw ShapeError(
      a.end == Int.max
        ? "slice: start \(a.start) is past the end of axis \(axis) (size \(n))"
        : "slice: range \(a.start)..<\(a.end) is empty on axis \(axis) (size \(n))")
  }
  var shape = input.shape
  shape[axis] = Dim(count)
  return TensorType(input.dtype, shape)
}

extension TensorType {
  /// Self, when it has the rank the op needs; otherwise a message with the expected layout.
  func requireRank(_ rank: Int, op: Op, operand: String, layout: String) throws(ShapeError) -> TensorType {
    guard self.rank == rank else {
      throw ShapeError("\(op.name): \(operand) must have rank \(rank) \(layout), found \(shapeDescription)")
    }
    return self
  }
}

extension TensorType {
  /// An image as `[N, C, H, W]`: itself, or a blocked `[N, C/16, H, W, 16]` seen plain.
  func plainImage(op: Op) throws(ShapeError) -> TensorType {
    if rank == 4 { return self }
    guard rank == 5, shape[4] == Dim(16), let blocks = shape[1].staticValue else {
      throw ShapeError(
        "\(op.name): input must have rank 4 [N, C, H, W] or be blocked [N, C/16, H, W, 16], found \(shapeDescription)")
    }
    return TensorType(dtype, [shape[0], Dim(blocks * 16), shape[2], shape[3]])
  }

  /// `[N, C, H, W]` blocked: `[N, C/16, H, W, 16]`, `C` static and a multiple of 16.
  func blocked(op: Op) throws(ShapeError) -> TensorType {
    guard let c = shape[1].staticValue, c % 16 == 0 else {
      throw ShapeError("\(op.name): a blocked layout needs a multiple of 16 channels, found \(shape[1])")
    }
    return TensorType(dtype, [shape[0], Dim(c / 16), shape[2], shape[3], Dim(16)])
  }
}

/// A fused epilogue's residual (operand 3) must have the result's type.
func checkResidual(_ x: [TensorType], _ result: TensorType, op: Op) throws(ShapeError) {
  guard x.count > 3 else { return }
  guard x[3] == result else {
    throw ShapeError("\(op.name): residual is \(x[3]) but the result is \(result)")
  }
}

func requireFloat(_ types: [TensorType], op: Op) throws(ShapeError) {
  for t in types where !t.dtype.isFloatingPoint {
    throw ShapeError("\(op.name): operands must be floating point, found \(t)")
  }
  try requireSameDType(types, op: op)
}

func requireSameDType(_ types: [TensorType], op: Op) throws(ShapeError) {
  guard let first = types.first else { return }
  for t in types.dropFirst() where t.dtype != first.dtype {
    throw ShapeError("\(op.name): operand types differ: \(first.dtype.rawValue) and \(t.dtype.rawValue)")
  }
}

/// `axis` made non-negative (`normalizedAxis`), or a message saying which axes exist.
func checkedAxis(_ axis: Int, rank: Int, op: Op) throws(ShapeError) -> Int {
  let n = normalizedAxis(axis, rank: rank)
  guard rank > 0 else { throw ShapeError("\(op.name): a scalar has no axis \(axis)") }
  guard n >= 0, n < rank else {
    throw ShapeError("\(op.name): axis \(axis) is out of range for rank \(rank) (valid: \(-rank)…\(rank - 1))")
  }
  return n
}

/// A slice bound clamped Python's way to an axis of `n` elements: negative counts from the
/// end, and the result lies in `0...n`.
public func clampIndex(_ i: Int, _ n: Int) -> Int {
  if i < 0 { return Swift.max(i + n, 0) }
  return Swift.min(i, n)
}

/// NumPy broadcasting of two shapes, aligned at the trailing axis.
public func broadcast(_ a: [Dim], _ b: [Dim], op: Op) throws(ShapeError) -> [Dim] {
  let n = Swift.max(a.count, b.count)
  var out: [Dim] = []
  out.reserveCapacity(n)
  for i in 0..<n {
    let da = i < n - a.count ? Dim(1) : a[i - (n - a.count)]
    let db = i < n - b.count ? Dim(1) : b[i - (n - b.count)]
    if da == db || db == Dim(1) {
      out.append(da)
    } else if da == Dim(1) {
      out.append(db)
    } else {
      throw ShapeError(
        "\(op.name): shapes \(TensorType(.f32, a).shapeDescription) and \(TensorType(.f32, b).shapeDescription) do not broadcast: axis \(i) has sizes \(da) and \(db)"
      )
    }
  }
  return out
}

/// Output height and width of a sliding window (convolution or pooling), PyTorch's formula:
/// `⌊(H + 2p − d(k−1) − 1)/s⌋ + 1`, or the ceiling with `ceil_mode` (a last window that
/// starts in the padding is dropped, as PyTorch does).
func windowOutput(
  _ input: TensorType, kernel: [Dim], stride strideSizes: Pair, padding paddingSizes: Pair,
  dilation dilationSizes: Pair, ceilMode: Bool, op: Op
) throws(ShapeError) -> (Dim, Dim) {
  let stride = [strideSizes.h, strideSizes.w], padding = [paddingSizes.h, paddingSizes.w]
  let dilation = [dilationSizes.h, dilationSizes.w]
  var out: [Dim] = []
  for axis in 0..<2 {
    let axisName = axis == 0 ? "height" : "width"
    guard let size = input.shape[2 + axis].staticValue else {
      throw ShapeError("\(op.name): input \(axisName) must be static, found \(input.shape[2 + axis]); bind it")
    }
    guard kernel.count == 2, let k = kernel[axis].staticValue else {
      throw ShapeError(
        "\(op.name): kernel \(axisName) must be static, found \(kernel.count == 2 ? kernel[axis].description : "none")")
    }
    let s = stride[axis], p = padding[axis], d = dilation[axis]
    guard k >= 1, s >= 1, d >= 1, p >= 0 else {
      throw ShapeError(
        "\(op.name): kernel \(k), stride \(s) and dilation \(d) must be positive and padding \(p) non-negative")
    }
    if op != .conv2d, p * 2 > k {
      throw ShapeError("\(op.name): padding \(p) must be at most half the kernel size \(k)")
    }
    let span = d * (k - 1) + 1
    let padded = size + 2 * p
    guard padded >= span else {
      throw ShapeError(
        "\(op.name): window of \(span) does not fit the padded \(axisName) \(padded) (input \(size), padding \(p))")
    }
    var o = ceilMode ? (padded - span + s - 1) / s + 1 : (padded - span) / s + 1
    if ceilMode, (o - 1) * s >= size + p { o -= 1 }
    out.append(Dim(o))
  }
  return (out[0], out[1])
}
