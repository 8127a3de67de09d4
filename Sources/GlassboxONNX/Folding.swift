import Foundation
import GlassboxIR

/// Nodes whose outputs are known at import: every input a constant (or, for `Shape` and
/// `Size`, a value of known type). torch.onnx writes a model's shape arithmetic this way
/// (`Shape → Gather → Unsqueeze → Concat → Reshape`), and it folds here to the reshape's target.
extension Importer {
  /// The node's outputs when they fold; nil when the node must become graph ops.
  mutating func fold(_ n: NodeView) throws(ImportFailure) -> [Constant]? {
    switch n.opType {
    case "Shape", "Size":
      guard let name = n.input(0), let entry = env[name] else { throw .invalid("needs an input") }
      let shape: [Dim]
      switch entry {
      case .value(let v): shape = type(v).shape
      case .constant(let c): shape = c.shape.map { Dim($0) }
      case .fill(_, _, let dims): shape = dims
      }
      if n.opType == "Size" {
        var total = Dim(1)
        for d in shape {
          guard let m = total.multiplied(by: d) else { throw .invalid("the size overflows") }
          total = m
        }
        return [Constant(dims: [total], shape: [])]
      }
      let rank = shape.count
      var start = try n.int("start", 0), end = try n.int("end", rank)
      start = start < 0 ? max(start, -rank) + rank : min(start, rank)
      end = end < 0 ? max(end, -rank) + rank : min(end, rank)
      let kept = start < end ? Array(shape[start..<end]) : []
      return [Constant(dims: kept, shape: [kept.count])]
    case "Constant":
      return [try constantAttribute(n)]
    default:
      break
    }
    // Everything else folds only when every given input is a constant.
    var inputs: [Constant?] = []
    for i in 0..<n.inputCount {
      guard let name = n.input(i) else {
        inputs.append(nil)
        continue
      }
      guard case .constant(let c)? = env[name] else { return nil }
      inputs.append(c)
    }
    func input(_ i: Int) throws(ImportFailure) -> Constant {
      guard i < inputs.count, let c = inputs[i] else { throw .invalid("input \(i) is missing") }
      return c
    }
    func optional(_ i: Int) -> Constant? { i < inputs.count ? inputs[i] : nil }

    switch n.opType {
    case "Identity":
      return [try input(0)]
    case "Dropout":
      let x = try input(0)
      return [x, Constant(dims: [Dim](repeating: 1, count: x.count), shape: x.shape, dtype: .bool)]
    case "Cast":
      return [try input(0).cast(to: try castTarget(n))]
    case "CastLike":
      return [try input(0).cast(to: try input(1).dtype)]
    case "ConstantOfShape":
      // A symbolic shape (a dynamic batch) is a fill the graph computes.
      guard try input(0).dims.allSatisfy(\.isStatic) else { return nil }
      let shape = try input(0).intValues()
      _ = try Constant.checkedCount(shape, "ConstantOfShape's result")
      return [try filled(n, shape: shape)]
    case "Unsqueeze", "Squeeze", "Reshape", "Flatten":
      let x = try input(0)
      let shape = try foldedShape(n, of: x.shape, shapeInput: optional(1))
      guard try Constant.checkedCount(shape) == x.count else {
        throw .invalid("cannot reshape \(x.shape) to \(shape)")
      }
      return [x.reshaped(shape)]
    case "Transpose":
      let x = try input(0)
      let perm = try n.ints("perm") ?? Array((0..<x.shape.count).reversed())
      guard perm.sorted() == Array(0..<x.shape.count) else { throw .invalid("perm \(perm) is not a permutation") }
      return [transposed(x, perm)]
    case "Gather":
      return [try gather(try input(0), indices: try input(1), axis: try n.int("axis", 0))]
    case "Concat":
      let parts = inputs.compactMap { $0 }
      guard let first = parts.first else { throw .invalid("needs inputs") }
      return [try concatenate(parts, axis: checkedAxis(try n.int("axis", 0), rank: first.shape.count))]
    case "Slice":
      let x = try input(0)
      let (starts, ends, axes, steps) = try sliceArguments(n, rank: x.shape.count, inputs: inputs)
      return [try slice(x, starts: starts, ends: ends, axes: axes, steps: steps)]
    case "Split":
      let x = try input(0)
      let axis = try checkedAxis(try n.int("axis", 0), rank: x.shape.count)
      let sizes = try splitSizes(n, size: x.shape[axis], splitInput: optional(1))
      var pieces: [Constant] = []
      var start = 0
      for s in sizes {
        pieces.append(try slice(x, starts: [start], ends: [start + s], axes: [axis], steps: [1]))
        start += s
      }
      return pieces
    case "Expand":
      let x = try input(0)
      let target = try input(1).intValues()
      guard target.count <= Constant.maxRank, let shape = broadcastShapes(x.shape, target) else {
        throw .invalid("cannot expand \(x.shape) to \(target)")
      }
      _ = try Constant.checkedCount(shape, "Expand's result", dtype: x.dtype)
      return [x.gathered(shape: shape, broadcastIndex(from: x.shape, to: shape))]
    case "Tile":
      let x = try input(0)
      let repeats = try input(1).intValues()
      guard repeats.count == x.shape.count, repeats.allSatisfy({ $0 >= 0 }) else {
        throw .invalid("repeats \(repeats) do not fit rank \(x.shape.count)")
      }
      var shape: [Int] = []
      for (d, r) in zip(x.shape, repeats) {
        let (p, overflow) = d.multipliedReportingOverflow(by: r)
        guard !overflow else { throw .invalid("repeats \(repeats) of \(x.shape) overflow") }
        shape.append(p)
      }
      _ = try Constant.checkedCount(shape, "Tile's result", dtype: x.dtype)
      let outStrides = strides(shape), inStrides = strides(x.shape)
      return [
        x.gathered(shape: shape) { flat in
          var rest = flat, index = 0
          for axis in shape.indices {
            index += (rest / outStrides[axis]) % x.shape[axis] * inStrides[axis]
            rest %= outStrides[axis]
          }
          return index
        }
      ]
    case "Range":
      let start = try input(0), limit = try input(1), delta = try input(2)
      let isFloat = start.dtype == .f32
      let (a, b, d) =
        isFloat
        ? (
          Double(try start.scalarFloat()), Double(try limit.scalarFloat()),
          Double(try delta.scalarFloat())
        )
        : (Double(try start.scalarInt()), Double(try limit.scalarInt()), Double(try delta.scalarInt()))
      let span = ((b - a) / d).rounded(.up)
      guard d != 0, span.isFinite, span <= Double(1 << 24) else {
        throw .invalid("a range from \(a) to \(b) by \(d) is empty-stepped or longer than \(1 << 24) elements")
      }
      let count = max(Int(span), 0)
      if isFloat {
        let (x, step) = (Float(a), Float(d))
        return [Constant(floats: (0..<count).map { x + Float($0) * step }, shape: [count])]
      }
      let (x, step) = (try start.scalarInt(), try delta.scalarInt())
      return [Constant(ints: (0..<count).map { x &+ $0 &* step }, shape: [count])]
    case "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Min", "Max", "Sum", "Mean":
      let parts = inputs.compactMap { $0 }
      guard var acc = parts.first else { throw .invalid("needs inputs") }
      for next in parts.dropFirst() { acc = try arithmetic(n.opType, acc, next) }
      if n.opType == "Mean" {
        acc = try ConstantArithmetic.binary(
          acc, Constant(floats: [Float(parts.count)], shape: []),
          float: { $0 / $1 }, int: ConstantArithmetic.div)
      }
      return [acc]
    case "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor":
      return [try comparison(n.opType, try input(0), try input(1))]
    case "Not":
      let x = try input(0)
      return [Constant(dims: try x.intValues().map { Dim($0 == 0 ? 1 : 0) }, shape: x.shape, dtype: .bool)]
    case "Where":
      let condition = try input(0), a = try input(1), b = try input(2)
      guard let ab = broadcastShapes(a.shape, b.shape), let shape = broadcastShapes(condition.shape, ab) else {
        throw .invalid("shapes \(condition.shape), \(a.shape) and \(b.shape) do not broadcast")
      }
      let c = try condition.intValues()
      let ic = broadcastIndex(from: condition.shape, to: shape)
      let ia = broadcastIndex(from: a.shape, to: shape), ib = broadcastIndex(from: b.shape, to: shape)
      let count = try Constant.checkedCount(shape, dtype: a.dtype == .f32 || b.dtype == .f32 ? .f32 : .i64)
      if a.dtype == .f32 || b.dtype == .f32 {
        let x = try a.floatValues(), y = try b.floatValues()
        return [Constant(floats: (0..<count).map { c[ic($0)] != 0 ? x[ia($0)] : y[ib($0)] }, shape: shape)]
      }
      let x = a.dims, y = b.dims
      return [Constant(dims: (0..<count).map { c[ic($0)] != 0 ? x[ia($0)] : y[ib($0)] }, shape: shape, dtype: a.dtype)]
    case "Neg", "Abs", "Sqrt", "Exp", "Log", "Reciprocal", "Floor", "Ceil", "Round", "Relu", "Sigmoid", "Tanh",
      "Sign", "Erf":
      return [try unary(n.opType, try input(0))]
    case "ReduceProd", "ReduceSum", "ReduceMin", "ReduceMax", "ReduceMean":
      let x = try input(0)
      let rank = x.shape.count
      var axes = try n.ints("axes")
      if axes == nil, let a = optional(1) { axes = try a.intValues() }
      if (axes ?? []).isEmpty, try n.int("noop_with_empty_axes", 0) == 1 { return [x] }
      var reduced: [Int] = []
      for a in axes ?? [] { reduced.append(try checkedAxis(a, rank: rank)) }
      if reduced.isEmpty { reduced = Array(0..<rank) }
      return [try reduce(n.opType, x, axes: Set(reduced), keepdims: try n.int("keepdims", 1) == 1)]
    default:
      return nil
    }
  }

  /// A `Constant` node's value from whichever attribute holds it.
  func constantAttribute(_ n: NodeView) throws(ImportFailure) -> Constant {
    if let a = n.attributes["value"] {
      return try ONNXFile.constant(a.t, what: "the value of Constant '\(n.label)'", context: context)
    }
    if let a = n.attributes["value_float"] { return Constant(floats: [a.f], shape: []) }
    if let a = n.attributes["value_floats"] { return Constant(floats: a.floats, shape: [a.floats.count]) }
    if let a = n.attributes["value_int"] { return Constant(ints: [Int(a.i)], shape: []) }
    if let a = n.attributes["value_ints"] { return Constant(ints: a.ints.map { Int($0) }, shape: [a.ints.count]) }
    if n.has("sparse_value") { throw .unsupported("a sparse constant") }
    if n.has("value_string") || n.has("value_strings") { throw .unsupported("a string constant") }
    throw .invalid("has no value attribute")
  }

  /// `ConstantOfShape`'s result: `value` (a one-element tensor, 0.0 by default) everywhere.
  func filled(_ n: NodeView, shape: [Int]) throws(ImportFailure) -> Constant {
    guard let a = n.attributes["value"] else { return Constant(dtype: .f32, shape: shape, elements: .splat(0)) }
    let v = try ONNXFile.constant(a.t, what: "the value of ConstantOfShape '\(n.label)'", context: context)
    guard v.count == 1 else { throw .invalid("value must have one element, found \(v.count)") }
    if v.dtype == .f32 { return Constant(dtype: .f32, shape: shape, elements: .splat(try v.scalarFloat())) }
    let n = try Constant.checkedCount(shape)
    guard n <= 1 << 24 else { throw .unsupported("an integer constant of \(n) elements") }
    return Constant(dims: [Dim](repeating: v.dims[0], count: n), shape: shape, dtype: v.dtype)
  }

  /// The element type `Cast` converts to.
  func castTarget(_ n: NodeView) throws(ImportFailure) -> DType {
    let to = try n.int("to", 1)
    guard let t = ONNXFile.DataType(rawValue: Int32(truncatingIfNeeded: to)), let d = t.dtype else {
      throw .unsupported("a cast to \(ONNXFile.DataType.name(Int32(truncatingIfNeeded: to)))")
    }
    return d
  }

  /// The shape `Unsqueeze`, `Squeeze`, `Reshape` or `Flatten` gives an operand of `shape`,
  /// with the axes and targets of the node's opset.
  func foldedShape(_ n: NodeView, of shape: [Int], shapeInput: Constant?) throws(ImportFailure) -> [Int] {
    let dims = try reshapedDims(n, of: shape.map { Dim($0) }, shapeInput: shapeInput)
    let total = try Constant.checkedCount(shape)
    var known = 1
    var inferred: Int?
    var out: [Int] = []
    for (i, d) in dims.enumerated() {
      if d == Dim(-1) {
        inferred = i
        out.append(0)
      } else {
        guard let v = d.staticValue else { throw .invalid("symbolic target size \(d)") }
        out.append(v)
        let (p, overflow) = known.multipliedReportingOverflow(by: v)
        guard !overflow else { throw .invalid("target \(dims) has too many elements") }
        known = p
      }
    }
    if let i = inferred {
      guard known > 0, total % known == 0 else { throw .invalid("cannot infer a size: \(total) by \(known)") }
      out[i] = total / known
    }
    return out
  }

  /// The target shape of a shape-changing node as dimensions (`-1` where `Reshape` infers one).
  func reshapedDims(_ n: NodeView, of shape: [Dim], shapeInput: Constant?) throws(ImportFailure) -> [Dim] {
    switch n.opType {
    case "Unsqueeze":
      let axes = try opset >= 13 ? (shapeInput?.intValues() ?? []) : (n.ints("axes") ?? [])
      let rank = shape.count + axes.count
      guard rank <= Constant.maxRank else { throw .invalid("the result's rank \(rank) is over \(Constant.maxRank)") }
      var positions = Set<Int>()
      for a in axes {
        let p = a < 0 ? max(a, -rank - 1) + rank : a
        guard p >= 0, p < rank, positions.insert(p).inserted else { throw .invalid("axes \(axes) are not valid") }
      }
      var out: [Dim] = []
      var rest = shape.makeIterator()
      for i in 0..<rank { out.append(positions.contains(i) ? Dim(1) : (rest.next() ?? Dim(1))) }
      return out
    case "Squeeze":
      let axes = try opset >= 13 ? shapeInput?.intValues() : n.ints("axes")
      var drop = Set<Int>()
      if let axes, !axes.isEmpty {
        for a in axes {
          let p = try checkedAxis(a, rank: shape.count)
          guard shape[p] == Dim(1) else { throw .invalid("axis \(a) has size \(shape[p]), not 1") }
          drop.insert(p)
        }
      } else {
        drop = Set(shape.indices.filter { shape[$0] == Dim(1) })
      }
      return shape.indices.filter { !drop.contains($0) }.map { shape[$0] }
    case "Flatten":
      let axis = try n.int("axis", 1)
      let k = axis < 0 ? max(axis, -shape.count - 1) + shape.count : axis
      guard k >= 0, k <= shape.count else { throw .invalid("axis \(axis) is out of range for rank \(shape.count)") }
      return [try product(shape[..<k]), try product(shape[k...])]
    case "Reshape":
      guard let target = opset >= 5 ? shapeInput : nil else {
        guard let s = try n.ints("shape") else { throw .invalid("needs a shape") }
        return try resolvedReshape(s.map { Dim($0) }, of: shape, allowZero: false)
      }
      guard target.shape.count == 1 else { throw .invalid("shape must be 1-D, found \(target.shape)") }
      return try resolvedReshape(target.dims, of: shape, allowZero: try n.int("allowzero", 0) == 1)
    default:
      throw .invalid("not a shape op")
    }
  }

  /// A `Reshape` target with `0` (copy the input's size) resolved; `-1` stays.
  func resolvedReshape(_ target: [Dim], of shape: [Dim], allowZero: Bool) throws(ImportFailure) -> [Dim] {
    guard target.count <= Constant.maxRank else { throw .invalid("a target of rank \(target.count)") }
    var out: [Dim] = []
    for (i, d) in target.enumerated() {
      if d == Dim(0) && !allowZero {
        guard i < shape.count else { throw .invalid("target \(target) copies axis \(i), which the input lacks") }
        out.append(shape[i])
      } else {
        guard d == Dim(-1) || d.coefficient > 0 else { throw .invalid("target size \(d) is not valid") }
        out.append(d)
      }
    }
    guard out.filter({ $0 == Dim(-1) }).count <= 1 else { throw .invalid("target \(target) has two -1") }
    return out
  }

  func product<C: Collection<Dim>>(_ dims: C) throws(ImportFailure) -> Dim {
    var total = Dim(1)
    for d in dims {
      guard let m = total.multiplied(by: d) else { throw .invalid("the size overflows") }
      total = m
    }
    return total
  }

  /// `axis` counted from the end when negative, or an error naming the valid range.
  func checkedAxis(_ axis: Int, rank: Int) throws(ImportFailure) -> Int {
    guard axis >= -rank, axis < rank else { throw .invalid("axis \(axis) is out of range for rank \(rank)") }
    let a = axis < 0 ? axis + rank : axis
    return a
  }

  func transposed(_ x: Constant, _ perm: [Int]) -> Constant {
    let shape = perm.map { x.shape[$0] }
    let outStrides = strides(shape), inStrides = strides(x.shape)
    return x.gathered(shape: shape) { flat in
      var rest = flat, index = 0
      for axis in shape.indices {
        index += rest / outStrides[axis] * inStrides[perm[axis]]
        rest %= outStrides[axis]
      }
      return index
    }
  }

  func gather(_ x: Constant, indices: Constant, axis rawAxis: Int) throws(ImportFailure) -> Constant {
    let axis = try checkedAxis(rawAxis, rank: x.shape.count)
    let size = x.shape[axis]
    var picks: [Int] = []
    for i in try indices.intValues() {
      guard i >= -size, i < size else {
        throw .invalid("index \(i) is out of range for axis \(axis) of size \(size)")
      }
      picks.append(i < 0 ? i + size : i)
    }
    let shape = Array(x.shape[..<axis]) + indices.shape + Array(x.shape[(axis + 1)...])
    _ = try Constant.checkedCount(shape, "Gather's result", dtype: x.dtype)
    let inner = x.shape[(axis + 1)...].reduce(1, *)
    let count = picks.count
    return x.gathered(shape: shape) { flat in
      let innerIndex = flat % inner
      let pick = picks[(flat / inner) % max(count, 1)]
      let outer = flat / (inner * max(count, 1))
      return (outer * size + pick) * inner + innerIndex
    }
  }

  func concatenate(_ parts: [Constant], axis: Int) throws(ImportFailure) -> Constant {
    guard let first = parts.first else { throw .invalid("needs inputs") }
    for p in parts
    where p.shape.count != first.shape.count
      || p.shape.indices.contains(where: { $0 != axis && p.shape[$0] != first.shape[$0] })
    {
      throw .invalid("cannot concatenate \(first.shape) and \(p.shape) along axis \(axis)")
    }
    var shape = first.shape
    shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
    let inner = first.shape[(axis + 1)...].reduce(1, *)
    let outer = first.shape[..<axis].reduce(1, *)
    if parts.contains(where: { $0.dtype == .f32 }) {
      var values: [Float] = []
      values.reserveCapacity(shape.reduce(1, *))
      let arrays = try parts.map { p throws(ImportFailure) in try p.floatValues() }
      for o in 0..<outer {
        for (p, a) in zip(parts, arrays) {
          let chunk = p.shape[axis] * inner
          values += a[(o * chunk)..<((o + 1) * chunk)]
        }
      }
      return Constant(floats: values, shape: shape)
    }
    var values: [Dim] = []
    let arrays = parts.map(\.dims)
    for o in 0..<outer {
      for (p, a) in zip(parts, arrays) {
        let chunk = p.shape[axis] * inner
        values += a[(o * chunk)..<((o + 1) * chunk)]
      }
    }
    return Constant(dims: values, shape: shape, dtype: first.dtype)
  }

  /// `Slice`'s starts, ends, axes and steps, from attributes (opset < 10) or inputs.
  func sliceArguments(
    _ n: NodeView, rank: Int, inputs: [Constant?]
  ) throws(ImportFailure)
    -> (starts: [Int], ends: [Int], axes: [Int], steps: [Int])
  {
    let starts: [Int], ends: [Int]
    var axes: [Int]?, steps: [Int]?
    if opset < 10 {
      guard let s = try n.ints("starts"), let e = try n.ints("ends") else { throw .invalid("needs starts and ends") }
      (starts, ends, axes) = (s, e, try n.ints("axes"))
    } else {
      guard inputs.count > 2, let s = inputs[1], let e = inputs[2] else {
        throw .unsupported("starts and ends computed at run time")
      }
      (starts, ends) = (try s.intValues(), try e.intValues())
      if inputs.count > 3, let a = inputs[3] { axes = try a.intValues() }
      if inputs.count > 4, let st = inputs[4] { steps = try st.intValues() }
    }
    let resolvedAxes = axes ?? Array(0..<starts.count)
    guard starts.count == ends.count, resolvedAxes.count == starts.count,
      steps == nil || steps?.count == starts.count
    else {
      throw .invalid("starts, ends, axes and steps differ in length")
    }
    var normalized: [Int] = []
    for a in resolvedAxes { normalized.append(try checkedAxis(a, rank: rank)) }
    return (starts, ends, normalized, steps ?? [Int](repeating: 1, count: starts.count))
  }

  /// The indices a slice reads along an axis of `size`, ONNX's clamping (any nonzero step).
  static func sliceIndices(start: Int, end: Int, step: Int, size: Int) -> [Int] {
    func clamp(_ v: Int, _ low: Int, _ high: Int) -> Int { min(max(v, low), high) }
    var s = start < 0 ? max(start, -size - 1) + size : start
    var e = end < 0 ? max(end, -size - 1) + size : end
    if step > 0 {
      s = clamp(s, 0, size)
      e = clamp(e, 0, size)
      return Array(stride(from: s, to: e, by: step))
    }
    s = clamp(s, -1, size - 1)
    e = clamp(e, -1, size - 1)
    return Array(stride(from: s, to: e, by: step))
  }

  func slice(_ x: Constant, starts: [Int], ends: [Int], axes: [Int], steps: [Int]) throws(ImportFailure) -> Constant {
    var picks = x.shape.map { Array(0..<$0) }
    for (k, axis) in axes.enumerated() {
      guard steps[k] != 0 else { throw .invalid("a slice step is 0") }
      picks[axis] = Importer.sliceIndices(start: starts[k], end: ends[k], step: steps[k], size: x.shape[axis])
    }
    let shape = picks.map(\.count)
    let outStrides = strides(shape), inStrides = strides(x.shape)
    return x.gathered(shape: shape) { flat in
      var rest = flat, index = 0
      for axis in shape.indices {
        index += picks[axis][rest / outStrides[axis]] * inStrides[axis]
        rest %= outStrides[axis]
      }
      return index
    }
  }

  /// `Split`'s piece sizes along an axis of `size`: the `split` attribute (opset < 13), the
  /// second input, `num_outputs` (opset 18) or equal pieces, one per output.
  func splitSizes(_ n: NodeView, size: Int, splitInput: Constant?) throws(ImportFailure) -> [Int] {
    let outputs = n.proto.output.count
    var sizes: [Int]?
    if opset < 13 { sizes = try n.ints("split") } else if let s = splitInput { sizes = try s.intValues() }
    if let sizes, !sizes.isEmpty {
      guard sizes.allSatisfy({ $0 >= 0 && $0 <= size }), sizes.reduce(0, &+) == size else {
        throw .invalid("split sizes \(sizes) do not add up to the axis size \(size)")
      }
      return sizes
    }
    let pieces = try n.int("num_outputs", outputs)
    guard pieces >= 1 else { throw .invalid("needs at least one output") }
    let chunk = (size + pieces - 1) / pieces
    return (0..<pieces).map { max(min(chunk, size - $0 * chunk), 0) }
  }

  func arithmetic(_ op: String, _ a: Constant, _ b: Constant) throws(ImportFailure) -> Constant {
    switch op {
    case "Add", "Sum", "Mean":
      return try ConstantArithmetic.binary(a, b, float: { $0 + $1 }, int: ConstantArithmetic.add)
    case "Sub": return try ConstantArithmetic.binary(a, b, float: { $0 - $1 }, int: ConstantArithmetic.sub)
    case "Mul": return try ConstantArithmetic.binary(a, b, float: { $0 * $1 }, int: ConstantArithmetic.mul)
    case "Div": return try ConstantArithmetic.binary(a, b, float: { $0 / $1 }, int: ConstantArithmetic.div)
    case "Pow":
      return try ConstantArithmetic.binary(
        a, b, result: a.dtype, float: { Float(pow(Double($0), Double($1))) },
        int: ConstantArithmetic.staticInts(
          { x, y in
            y < 0 || y > 62 ? nil : (0..<y).reduce(1) { acc, _ in acc &* x }
          }, "the power"))
    case "Mod":
      return try ConstantArithmetic.binary(
        a, b, float: { fmodf($0, $1) },
        int: ConstantArithmetic.staticInts(
          { x, y in
            guard y != 0 else { return nil }
            let r = x % y
            return r != 0 && (r < 0) != (y < 0) ? r + y : r
          }, "the remainder"))
    case "Min":
      return try ConstantArithmetic.binary(
        a, b, float: { Swift.min($0, $1) },
        int: ConstantArithmetic.staticInts({ Swift.min($0, $1) }, "min"))
    default:
      return try ConstantArithmetic.binary(
        a, b, float: { Swift.max($0, $1) },
        int: ConstantArithmetic.staticInts({ Swift.max($0, $1) }, "max"))
    }
  }

  func comparison(_ op: String, _ a: Constant, _ b: Constant) throws(ImportFailure) -> Constant {
    func compare(_ f: @escaping @Sendable (Double, Double) -> Bool) throws(ImportFailure) -> Constant {
      try ConstantArithmetic.binary(
        a, b, result: .bool, float: { f(Double($0), Double($1)) ? 1 : 0 },
        int: ConstantArithmetic.staticInts(
          { f(Double($0), Double($1)) ? 1 : 0 }, op,
          symbolic: { x, y in
            // Symbolic sizes compare equal only to themselves.
            op == "Equal" ? Dim(x == y ? 1 : 0) : nil
          }))
    }
    switch op {
    case "Equal": return try compare { $0 == $1 }
    case "Less": return try compare { $0 < $1 }
    case "Greater": return try compare { $0 > $1 }
    case "LessOrEqual": return try compare { $0 <= $1 }
    case "GreaterOrEqual": return try compare { $0 >= $1 }
    case "And": return try compare { $0 != 0 && $1 != 0 }
    case "Or": return try compare { $0 != 0 || $1 != 0 }
    default: return try compare { ($0 != 0) != ($1 != 0) }
    }
  }

  func unary(_ op: String, _ x: Constant) throws(ImportFailure) -> Constant {
    if x.dtype != .f32, ["Neg", "Abs", "Sign", "Relu"].contains(op) {
      let v = try x.intValues()
      let r: [Int]
      switch op {
      case "Neg": r = v.map { 0 &- $0 }
      case "Abs": r = v.map { $0 == Int.min ? $0 : Swift.abs($0) }
      case "Sign": r = v.map { $0.signum() }
      default: r = v.map { Swift.max($0, 0) }
      }
      return Constant(dims: r.map { Dim($0) }, shape: x.shape, dtype: x.dtype)
    }
    if x.dtype != .f32, ["Floor", "Ceil", "Round"].contains(op) { return x }
    let f: (Double) -> Double
    switch op {
    case "Neg": f = { -$0 }
    case "Abs": f = { Swift.abs($0) }
    case "Sqrt": f = { $0.squareRoot() }
    case "Exp": f = { Foundation.exp($0) }
    case "Log": f = { Foundation.log($0) }
    case "Reciprocal": f = { 1 / $0 }
    case "Floor": f = { $0.rounded(.down) }
    case "Ceil": f = { $0.rounded(.up) }
    case "Round": f = { $0.rounded(.toNearestOrEven) }
    case "Relu": f = { Swift.max($0, 0) }
    case "Sigmoid": f = { 1 / (1 + Foundation.exp(-$0)) }
    case "Tanh": f = { Foundation.tanh($0) }
    case "Erf": f = { Foundation.erf($0) }
    default: f = { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }
    }
    if case .splat(let v) = x.elements {
      return Constant(dtype: .f32, shape: x.shape, elements: .splat(Float(f(Double(v)))))
    }
    return Constant(floats: try x.floatValues().map { Float(f(Double($0))) }, shape: x.shape)
  }

  func reduce(_ op: String, _ x: Constant, axes: Set<Int>, keepdims: Bool) throws(ImportFailure) -> Constant {
    let rank = x.shape.count
    let outShapeKept = x.shape.indices.map { axes.contains($0) ? 1 : x.shape[$0] }
    let outShape = keepdims ? outShapeKept : x.shape.indices.filter { !axes.contains($0) }.map { x.shape[$0] }
    let outCount = outShapeKept.reduce(1, *)
    let inStrides = strides(x.shape), outStrides = strides(outShapeKept)
    func target(_ flat: Int) -> Int {
      var rest = flat, index = 0
      for axis in 0..<rank {
        let c = rest / inStrides[axis]
        rest %= inStrides[axis]
        if !axes.contains(axis) { index += c * outStrides[axis] }
      }
      return index
    }
    let perOutput = max(x.count / max(outCount, 1), 1)
    if x.dtype == .f32 {
      let v = try x.floatValues()
      let starts: [String: Double] = ["ReduceProd": 1, "ReduceMin": .infinity, "ReduceMax": -.infinity]
      let start = starts[op] ?? 0
      var acc = [Double](repeating: start, count: outCount)
      for (i, value) in v.enumerated() {
        let t = target(i), d = Double(value)
        switch op {
        case "ReduceProd": acc[t] *= d
        case "ReduceMin": acc[t] = Swift.min(acc[t], d)
        case "ReduceMax": acc[t] = Swift.max(acc[t], d)
        default: acc[t] += d
        }
      }
      if op == "ReduceMean" { acc = acc.map { $0 / Double(perOutput) } }
      return Constant(floats: acc.map { Float($0) }, shape: outShape)
    }
    var acc = [Dim?](repeating: nil, count: outCount)
    let v = x.dims
    for (i, value) in v.enumerated() {
      let t = target(i)
      guard let current = acc[t] else {
        acc[t] = value
        continue
      }
      switch op {
      case "ReduceProd": acc[t] = try ConstantArithmetic.mul(current, value)
      case "ReduceMin": acc[t] = try ConstantArithmetic.staticInts({ Swift.min($0, $1) }, "min")(current, value)
      case "ReduceMax": acc[t] = try ConstantArithmetic.staticInts({ Swift.max($0, $1) }, "max")(current, value)
      default: acc[t] = try ConstantArithmetic.add(current, value)
      }
    }
    var out = acc.map { $0 ?? Dim(op == "ReduceProd" ? 1 : 0) }
    if op == "ReduceMean" {
      out = try out.map { d throws(ImportFailure) in try ConstantArithmetic.div(d, Dim(perOutput)) }
    }
    return Constant(dims: out, shape: outShape, dtype: x.dtype)
  }
}
