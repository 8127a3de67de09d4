import CKernels
import GlassboxIR

/// Lowering: each op of a bound graph becomes kernels over arena offsets. One exhaustive
/// switch, so a new op does not build until it has a lowering.
enum Lowering {
  static func shape(_ g: Graph, _ v: ValueID) -> [Int] { g[v].type.shape.map { $0.staticValue ?? 0 } }

  /// Scratch floats a node needs while it runs (im2col columns, LSTM state).
  static func scratch(_ node: Node, _ g: Graph, threads: Int) -> Int {
    if let c = pooledConvolution(node, g) {
      let y = shape(g, g.nodes[c].results[0])  // [N, C/16, H, W, 16]
      return BlockedConvMaxPool.scratchCount(
        cout: y[1] * 16, convolutionWidth: y[3], poolKernelHeight: PoolWindow(of: node).kernel.h, threads: threads)
    }
    if functionOfInput(node, g) != nil {
      let w = shape(g, node.operands[1])
      return Linear.scratchCount(
        rows: shape(g, node.operands[0]).dropLast().reduce(1, *), inFeatures: w[1], outFeatures: w[0], threads: threads)
    }
    switch node.op {
    case .fusedElementwise:
      return FusedElementwise.scratchCount(
        steps: FusedElementwiseAttributes(of: node).stepCount,
        count: shape(g, node.results[0]).reduce(1, *), threads: threads)
    case .conv2d:
      let w = shape(g, node.operands[1]), o = shape(g, node.results[0])
      let geometry = ConvolutionAttributes(of: node).geometry
      if winograd(node, g) {
        return WinogradConv3x3.scratchCount(
          n: o[0], cin: w[1], cout: w[0], oh: o[2], ow: o[3], threads: threads, m: winogradTile(node, g),
          blocked: blocked(node))
      }
      if blocked(node) { return 0 }
      if direct(node, g) {
        return DirectConv2d.scratchCount(
          n: o[0], cin: w[1], oh: o[2], ow: o[3], kh: w[2], kw: w[3],
          stride: geometry.stride.tuple, padding: geometry.padding.tuple, dilation: geometry.dilation.tuple,
          threads: threads)
      }
      let pointwise = w[2] == 1 && w[3] == 1 && geometry.stride == Pair(1) && geometry.padding == Pair(0)
      let groups = geometry.groups
      return Conv2d.scratchCount(
        images: o[0], cin: w[1] * groups, cout: w[0], kh: w[2], kw: w[3], groups: groups,
        spatial: o[2] * o[3], pointwise: pointwise, threads: threads)
    case .lstm:
      let x = shape(g, node.operands[0]), a = LSTMAttributes(of: node)
      return a.directions * LSTMLayer.scratchCount(batch: x[0], steps: x[1], hidden: a.hidden)
    case .maxPool2d, .avgPool2d, .globalAvgPool2d, .batchNorm, .linear, .matmul, .batchMatmul, .add, .sub,
      .mul, .div, .relu, .sigmoid, .tanh, .softmax, .logSoftmax, .sum, .mean, .max, .reshape, .flatten,
      .transpose, .concat, .slice, .select, .split, .pad, .dropout, .crossEntropy, .constant, .classSeed,
      .reluBackward, .sliceBackward, .crossEntropyBackward, .maxPool2dBackward,
      .avgPool2dBackward, .batchNormTrain, .batchNormTrainBackward, .layerNorm, .layerNormBackward, .lrn,
      .exp, .log, .sqrt, .abs, .erf, .pow, .maximum, .minimum, .toBlocked, .fromBlocked:
      return 0
    case .lrnBackward:
      return LRNBackward.scratchCount(shape(g, node.operands[1]))
    case .linearBackwardWeight:
      let x = shape(g, node.operands[1]), w = shape(g, node.results[0])
      return LinearBackwardWeight.scratchCount(
        rows: x.dropLast().reduce(1, *), outFeatures: w[0], inFeatures: w[1],
        threads: threads)
    case .maxBackward:
      return shape(g, node.operands[2]).reduce(1, *)
    case .lstmCellBackward:
      return shape(g, node.results[0]).reduce(1, *)
    case .lstmCell:
      return shape(g, node.operands[0]).reduce(1, *)
    case .conv2dBackwardInput, .conv2dBackwardWeight:
      if winograd(node, g) {
        let dy = shape(g, node.operands[0])
        if node.op == .conv2dBackwardWeight {
          let x = shape(g, node.operands[1])
          return WinogradWeightGradient.scratchCount(
            n: x[0], cin: x[1], cout: dy[1], oh: dy[2], ow: dy[3], threads: threads, m: winogradTile(node, g))
        }
        let w = shape(g, node.operands[1]), dx = shape(g, node.results[0])
        return WinogradConv3x3.scratchCount(
          n: dx[0], cin: w[0], cout: w[1], oh: dx[2], ow: dx[3], threads: threads, m: winogradTile(node, g))
      }
      let geometry = convolutionBackwardGeometry(node, g, scratch: 0, threads: threads)
      return convolutionBackwardScratch(geometry, weight: node.op == .conv2dBackwardWeight)
    }
  }

  /// The forward convolution a backward node differentiates (offsets unused but `scratch`).
  static func convolutionBackwardGeometry(_ node: Node, _ g: Graph, scratch: Int, threads: Int) -> Conv2d {
    let isInput = node.op == .conv2dBackwardInput
    let dy = shape(g, node.operands[0])
    let xs = isInput ? shape(g, node.results[0]) : shape(g, node.operands[1])
    let w = isInput ? shape(g, node.operands[1]) : shape(g, node.results[0])
    let a = convolutionGeometry(node)
    return Conv2d(
      label: "", n: xs[0], cin: xs[1], h: xs[2], w: xs[3], cout: w[0], kh: w[2], kw: w[3],
      stride: a.stride.tuple, padding: a.padding.tuple, dilation: a.dilation.tuple,
      groups: a.groups, oh: dy[2], ow: dy[3], x: 0, weight: 0, bias: nil, out: 0,
      scratch: scratch, epilogue: Epilogue(residual: nil, relu: false), threads: threads)
  }

  /// Whether a convolution runs as Winograd F(2×2, 3×3) — or a gradient of one: the input
  /// gradient of a 3×3 kernel of stride 1 is itself a convolution of `dy` by the weights
  /// flipped and transposed (`Cin` filters of `Cout` channels) with padding 2 − p; the weight
  /// gradient has its own kernel (`WinogradWeightGradient`) over the same transforms.
  static func winograd(_ node: Node, _ g: Graph) -> Bool {
    guard let a = convolutionGeometryIfAny(node), !direct(node, g) else { return false }
    let w: [Int], flipped: Bool
    if node.op == .conv2dBackwardWeight {
      w = shape(g, node.results[0])
      flipped = false
    } else {
      // The weights must be a parameter: they are transformed whenever parameters are set
      // (once for inference, before every step in training).
      guard case .parameter = g[node.operands[1]].origin else { return false }
      w = shape(g, node.operands[1])
      flipped = node.op == .conv2dBackwardInput
    }
    let padding = [a.padding.h, a.padding.w]
    // A blocked convolution runs on the blocked kernel where it has few tiles (as a plain one
    // runs direct) or a plain input (read in place there); Winograd's blocked transforms take
    // blocks on both sides.
    if blocked(node) {
      let o = shape(g, node.results[0])
      guard g[node.operands[0]].type.rank == 5, !WinogradConv3x3.fewTiles(n: o[0], oh: o[2], ow: o[3]) else {
        return false
      }
    }
    return WinogradConv3x3.applies(
      kh: w[2], kw: w[3], stride: [a.stride.h, a.stride.w],
      dilation: [a.dilation.h, a.dilation.w],
      padding: flipped ? padding.map { 2 - $0 } : padding, groups: a.groups,
      cin: flipped ? w[0] : w[1], cout: flipped ? w[1] : w[0])
  }

  /// The tile of a convolution (or gradient) that runs by Winograd (`WinogradConv3x3.m`), from
  /// the outputs its transforms tile: a convolution's or an input gradient's result, a weight
  /// gradient's `dy`.
  static func winogradTile(_ node: Node, _ g: Graph) -> Int {
    let o = shape(g, node.op == .conv2dBackwardWeight ? node.operands[0] : node.results[0])
    return WinogradConv3x3.tileSize(oh: o[2], ow: o[3], blocked: blocked(node))
  }

  /// A Winograd kernel's label suffix: `(winograd)` for F(2×2, 3×3), `(winograd 4×4)` for
  /// F(4×4, 3×3), with `, blocked` inside for a blocked convolution.
  static func winogradSuffix(_ node: Node, _ g: Graph) -> String {
    " (winograd" + (winogradTile(node, g) == 4 ? " 4×4" : "") + (blocked(node) ? ", blocked)" : ")")
  }

  /// Whether a forward convolution runs as `DirectConv2d`: one with parameter weights (packed
  /// whenever parameters are set, as Winograd's are transformed) that the kernel takes, unless
  /// Winograd has enough tiles to beat it (`WinogradConv3x3.minimumTiles`), or it is a pointwise
  /// one on a small map that the channel kernel does not take (`DirectConv2d.minimumPointwiseOutputs`).
  static func direct(_ node: Node, _ g: Graph) -> Bool {
    guard node.op == .conv2d, !blocked(node), case .parameter = g[node.operands[1]].origin else { return false }
    let a = ConvolutionAttributes(of: node).geometry, w = shape(g, node.operands[1]), o = shape(g, node.results[0])
    guard DirectConv2d.applies(groups: a.groups, kh: w[2], kw: w[3]) else { return false }
    if DirectConv2d.pointwise(kh: w[2], kw: w[3], padding: a.padding.tuple) {
      return o[2] * o[3] >= DirectConv2d.minimumPointwiseOutputs
        || DirectConv2d.byChannels(cin: w[1], oh: o[2], ow: o[3], pointwise: true)
    }
    let winograd = WinogradConv3x3.applies(
      kh: w[2], kw: w[3], stride: [a.stride.h, a.stride.w],
      dilation: [a.dilation.h, a.dilation.w], padding: [a.padding.h, a.padding.w],
      groups: a.groups, cin: w[1], cout: w[0])
    return !winograd || WinogradConv3x3.fewTiles(n: o[0], oh: o[2], ow: o[3])
  }

  /// The operands (by position) a node's result may be written over (`BufferAssignment.inPlace`):
  /// each of an elementwise op's (`Op.writesOverOperand`), and the residual of a blocked
  /// convolution whose kernel reads each residual float just before it writes the output float
  /// at its place and writes that float once: blocked Winograd (`WinogradConv3x3.blockedPut`), and
  /// the blocked direct kernel where it takes all input blocks in one chunk (1×1 convolutions of
  /// up to 128 input channels: `glassbox_conv_blocked_one_chunk`; with more, a chunk's partial
  /// sums are stored in the output before the last chunk adds the residual). A plain
  /// convolution's kernels store the sums before they add the residual, so they may not.
  static func overwritableOperands(_ node: Node, _ g: Graph) -> [Int] {
    if node.op.writesOverOperand { return Array(node.operands.indices) }
    guard node.op == .conv2d, node.operands.count > 3, blocked(node) else { return [] }
    if winograd(node, g) { return [3] }
    let w = shape(g, node.operands[1]), x = shape(g, node.operands[0])
    let cin = x.count == 4 ? x[1] : x[1] * 16
    return glassbox_conv_blocked_one_chunk(Int32(cin), Int32(w[2]), Int32(w[3])) != 0 ? [3] : []
  }

  /// The node index of the convolution a max pooling takes into its kernel (`BlockedConvMaxPool`):
  /// the producer of its blocked input where that is a blocked direct convolution without a
  /// residual whose result nothing else reads (no other node, output or tap — a backward pass
  /// reads it, so only inference programs pool this way), and the pooling's dilation is 1. The
  /// convolution's result then has no storage, and the convolution no kernel of its own
  /// (`BufferAssignment`).
  static func pooledConvolution(_ node: Node, _ g: Graph) -> Int? {
    guard node.op == .maxPool2d, shape(g, node.operands[0]).count == 5, PoolWindow(of: node).dilation == Pair(1),
      let producer = g.producer(of: node.operands[0])
    else { return nil }
    let conv = g.nodes[producer.index]
    guard blocked(conv), !winograd(conv, g), conv.operands.count <= 3, readOnce(node.operands[0], g) else {
      return nil
    }
    return producer.index
  }

  /// The node index of the elementwise function a linear layer applies to its input inside its
  /// own kernel (`Linear.inputFunction`): the producer of its input where that is a one-operand
  /// elementwise op (tanh, sigmoid, …) whose result nothing else reads (no other node, output or
  /// tap — a backward pass reads it, so only inference programs map this way), and the layer
  /// has more rows than its dot-product path takes. The function's result then has no storage,
  /// and the function no kernel (`BufferAssignment`).
  static func functionOfInput(_ node: Node, _ g: Graph) -> Int? {
    guard node.op == .linear, shape(g, node.operands[0]).dropLast().reduce(1, *) > Linear.dotRows,
      let producer = g.producer(of: node.operands[0]), inputFunction(g.nodes[producer.index]) != nil,
      readOnce(node.operands[0], g)
    else { return nil }
    return producer.index
  }

  /// The function a one-operand elementwise node computes.
  static func inputFunction(_ node: Node) -> UnaryOp? {
    node.operands.count == 1 ? ElementwiseCode(node.op).flatMap(UnaryOp.init) : nil
  }

  /// Whether one operand of one node is all that reads `v`: no output or tap does.
  static func readOnce(_ v: ValueID, _ g: Graph) -> Bool {
    g.nodes.reduce(0, { $0 + $1.operands.count(where: { $0 == v }) }) == 1
      && !g.outputs.contains(where: { $0.value == v }) && !g.taps.contains(where: { $0.operands.contains(v) })
  }

  /// The blocked direct convolution kernel of `node` (`BlockedConv2d`), its packed weights at
  /// `packed`.
  static func blockedConvolution(
    _ node: Node, _ g: Graph, _ off: [Int], label: String, packed: Int, threads: Int
  ) -> BlockedConv2d {
    let x = shape(g, node.operands[0]), w = shape(g, node.operands[1]), out = shape(g, node.results[0])
    let a = ConvolutionAttributes(of: node), geometry = a.geometry, plain = x.count == 4
    let weight = node.operands[1]
    return BlockedConv2d(
      label: label, n: x[0], cin: plain ? x[1] : x[1] * 16, h: x[2], w: x[3], cout: w[0],
      kh: w[2], kw: w[3], stride: geometry.stride.tuple, padding: geometry.padding.tuple,
      dilation: geometry.dilation.tuple, oh: out[2], ow: out[3], plainInput: plain, x: off[node.operands[0].index],
      weight: off[weight.index] >= 0 ? .arena(off[weight.index]) : .caller(weight.index),
      bias: node.operands.count > 2 ? off[node.operands[2].index] : nil, out: off[node.results[0].index],
      packed: packed,
      epilogue: Epilogue(
        residual: node.operands.count > 3 ? off[node.operands[3].index] : nil, relu: a.activation == .relu),
      threads: threads)
  }

  /// Whether a forward convolution's result is blocked (`BlockedConv2d`; `choose-layouts` gives
  /// that layout only to convolutions with parameter weights that the kernel takes).
  static func blocked(_ node: Node) -> Bool {
    node.op == .conv2d && ConvolutionAttributes(of: node).layout == .blocked
  }

  /// The window geometry of a convolution or of one of its gradients.
  static func convolutionGeometry(_ node: Node) -> ConvolutionGeometry {
    guard let geometry = convolutionGeometryIfAny(node) else {
      preconditionFailure("\(node.op.name) is not a convolution")
    }
    return geometry
  }

  /// The window geometry of a convolution or of one of its gradients; nil for other ops.
  static func convolutionGeometryIfAny(_ node: Node) -> ConvolutionGeometry? {
    switch node.op {
    case .conv2d: ConvolutionAttributes(of: node).geometry
    case .conv2dBackwardInput: ConvolutionInputGradientAttributes(of: node).geometry
    case .conv2dBackwardWeight: ConvolutionWeightGradientAttributes(of: node).geometry
    case .maxPool2d, .avgPool2d, .globalAvgPool2d, .batchNorm, .linear, .matmul, .batchMatmul, .add, .sub, .mul,
      .div, .relu, .sigmoid, .tanh, .softmax, .logSoftmax, .sum, .mean, .max, .reshape, .flatten, .transpose,
      .concat, .slice, .select, .split, .pad, .lstm, .lstmCell, .dropout, .crossEntropy, .constant,
      .fusedElementwise,
      .classSeed, .reluBackward, .linearBackwardWeight, .sliceBackward, .maxBackward, .lstmCellBackward,
      .crossEntropyBackward, .maxPool2dBackward, .avgPool2dBackward, .batchNormTrain, .batchNormTrainBackward,
      .layerNorm, .layerNormBackward, .lrn, .lrnBackward, .exp, .log, .sqrt, .abs, .erf, .pow, .maximum, .minimum,
      .toBlocked, .fromBlocked:
      nil
    }
  }

  /// Floats a node keeps for the life of the program, derived from parameters (Winograd's
  /// transformed weights, a direct convolution's packed weights, an LSTM layer's packed `W_ih`
  /// and summed biases).
  static func persistent(_ node: Node, _ g: Graph) -> Int {
    if node.op == .lstm {
      let x = shape(g, node.operands[0]), a = LSTMAttributes(of: node)
      return a.directions * LSTMLayer.persistentCount(features: x[2], hidden: a.hidden)
    }
    if blocked(node), !winograd(node, g) {
      let w = shape(g, node.operands[1])
      return BlockedConv2d.persistentCount(cin: w[1], cout: w[0], kh: w[2], kw: w[3])
    }
    if direct(node, g) {
      let w = shape(g, node.operands[1])
      return DirectConv2d.persistentCount(
        cin: w[1], cout: w[0], kh: w[2], kw: w[3], padding: ConvolutionAttributes(of: node).geometry.padding.tuple,
        oh: shape(g, node.results[0])[2], ow: shape(g, node.results[0])[3])
    }
    guard node.op != .conv2dBackwardWeight, winograd(node, g) else { return 0 }
    let w = shape(g, node.operands[1])
    return WinogradConv3x3.persistentCount(cin: w[1], cout: w[0], m: winogradTile(node, g))
  }

  /// Whether the node's kernel reads its weights (operand 1) only in `prepare`, to derive its
  /// own copy (`persistent`): a forward convolution run directly or by Winograd, or the Winograd
  /// input gradient of one (its own transform, or the forward's). A parameter only such
  /// kernels read needs no slot (`BufferAssignment.Storage.derivedOnly`). (An LSTM layer also
  /// reads its four parameters per direction only in `prepare`; they keep their slots for now.)
  static func derivesWeight(_ node: Node, _ g: Graph) -> Bool {
    (node.op == .conv2d || node.op == .conv2dBackwardInput) && persistent(node, g) > 0
  }

  /// `persistent` is the node's region of values derived from parameters; with
  /// `sharesForward` (an input gradient), a forward convolution's transformed weights.
  /// `rowStrides` gives the row stride of values that are views of a larger tensor's rows
  /// (`BufferAssignment.stepViews`).
  static func kernels(
    _ node: Node, _ g: Graph, _ off: [Int], scratch: Int, persistent: Int, sharesForward: Bool = false,
    rowStrides: [Int: Int] = [:], threads: Int
  ) throws -> [any Kernel] {
    let label = "\(node.op.name) \(g[node.results[0]].name)"
    func o(_ v: ValueID) -> Int { off[v.index] }
    /// A weight a kernel derives its own copy from: in the arena, or the caller's when it has no slot.
    func source(_ v: ValueID) -> WeightSource { off[v.index] >= 0 ? .arena(off[v.index]) : .caller(v.index) }
    let x = node.operands.first.map { shape(g, $0) } ?? []
    let out = shape(g, node.results[0])
    /// The fused epilogue of a convolution or linear layer.
    func epilogue(_ activation: Activation) -> Epilogue {
      Epilogue(residual: node.operands.count > 3 ? o(node.operands[3]) : nil, relu: activation == .relu)
    }
    func binary(_ op: BinaryOp) -> [any Kernel] {
      let (runs, ls, rs) = Binary.collapsed(
        out, broadcastStrides(x, to: out),
        broadcastStrides(shape(g, node.operands[1]), to: out))
      return [
        Binary(
          label: label, op: op, shape: runs, lhs: o(node.operands[0]), lhsStrides: ls,
          rhs: o(node.operands[1]), rhsStrides: rs, out: o(node.results[0]), threads: threads)
      ]
    }
    func unary(_ op: UnaryOp) -> [any Kernel] {
      [
        Unary(
          label: label, op: op, src: o(node.operands[0]), dst: o(node.results[0]), count: out.reduce(1, *),
          threads: threads)
      ]
    }
    /// A reduction over the node's axes.
    func reduction(_ kind: Reduce.Kind) -> [any Kernel] {
      let axes = ReduceAttributes(of: node).reducedAxes(rank: x.count)
      // Adjacent axes that are both reduced or both kept merge, and axes of one drop out: the
      // same reduction in fewer, longer runs (Grad-CAM's spatial mean of [T, C, h, w] becomes
      // runs of h·w floats, its sum over channels runs of h·w outputs).
      var shape: [Int] = [], reduced: [Bool] = []
      for (i, n) in x.enumerated() where n != 1 {
        if reduced.last == axes.contains(i) {
          shape[shape.count - 1] *= n
        } else {
          shape.append(n)
          reduced.append(axes.contains(i))
        }
      }
      if shape.isEmpty { (shape, reduced) = ([1], [false]) }
      var strides = rowMajorStrides(zip(shape, reduced).map { $1 ? 1 : $0 })
      for (i, r) in reduced.enumerated() where r { strides[i] = 0 }
      let divisor = axes.reduce(1) { $0 * x[$1] }
      return [
        Reduce(
          label: label, kind: kind, shape: shape, x: o(node.operands[0]), out: o(node.results[0]),
          outCount: out.reduce(1, *), outStrides: strides, divisor: Float(divisor))
      ]
    }

    switch node.op {
    case .conv2d:
      let w = shape(g, node.operands[1])
      let a = ConvolutionAttributes(of: node), geometry = a.geometry, fused = epilogue(a.activation)
      if blocked(node), !winograd(node, g) {
        return [blockedConvolution(node, g, off, label: label + " (blocked)", packed: persistent, threads: threads)]
      }
      if winograd(node, g) {
        var kernel = WinogradConv3x3(
          label: label + winogradSuffix(node, g), n: x[0], cin: w[1], h: x[2], w: x[3], cout: w[0],
          padding: geometry.padding.tuple, oh: out[2], ow: out[3], x: o(node.operands[0]),
          weight: source(node.operands[1]), bias: node.operands.count > 2 ? o(node.operands[2]) : nil,
          out: o(node.results[0]), transformed: persistent, scratch: scratch, epilogue: fused,
          threads: threads, m: winogradTile(node, g))
        kernel.blocked = a.layout == .blocked
        return [kernel]
      }
      if direct(node, g) {
        return [
          DirectConv2d(
            label: label + " (direct)", n: x[0], cin: x[1], h: x[2], w: x[3], cout: w[0], kh: w[2],
            kw: w[3], stride: geometry.stride.tuple, padding: geometry.padding.tuple,
            dilation: geometry.dilation.tuple, oh: out[2], ow: out[3], x: o(node.operands[0]),
            weight: source(node.operands[1]), bias: node.operands.count > 2 ? o(node.operands[2]) : nil,
            out: o(node.results[0]), packed: persistent, scratch: scratch, epilogue: fused,
            threads: threads)
        ]
      }
      return [
        Conv2d(
          label: label, n: x[0], cin: x[1], h: x[2], w: x[3], cout: w[0], kh: w[2], kw: w[3],
          stride: geometry.stride.tuple, padding: geometry.padding.tuple, dilation: geometry.dilation.tuple,
          groups: geometry.groups,
          oh: out[2], ow: out[3], x: o(node.operands[0]), weight: o(node.operands[1]),
          bias: node.operands.count > 2 ? o(node.operands[2]) : nil, out: o(node.results[0]), scratch: scratch,
          epilogue: fused, threads: threads)
      ]

    case .maxPool2d, .avgPool2d:
      let window = PoolWindow(of: node)
      if let c = pooledConvolution(node, g) {
        let conv = g.nodes[c]
        let inner = blockedConvolution(
          conv, g, off, label: "\(conv.op.name) \(g[conv.results[0]].name)", packed: persistent, threads: threads)
        let pool = glassbox_max_pool(
          oh: Int32(out[2]), ow: Int32(out[3]), kh: Int32(window.kernel.h), kw: Int32(window.kernel.w),
          sy: Int32(window.stride.h), sx: Int32(window.stride.w), py: Int32(window.padding.h),
          px: Int32(window.padding.w))
        return [
          BlockedConvMaxPool(
            label: inner.label + " + " + label + " (blocked)", convolution: inner, pool: pool,
            out: o(node.results[0]), scratch: scratch)
        ]
      }
      if x.count == 5 {
        return [
          BlockedMaxPool(
            label: label + " (blocked)", n: x[0], blocks: x[1], h: x[2], w: x[3], oh: out[2], ow: out[3],
            kernel: window.kernel.tuple, stride: window.stride.tuple, padding: window.padding.tuple,
            dilation: window.dilation.tuple, x: o(node.operands[0]), out: o(node.results[0]), threads: threads)
        ]
      }
      // An average over the whole map (ONNX models' AveragePool of ResNet-50's last 7×7 map) is
      // a plane's mean.
      if node.op == .avgPool2d, out[2] == 1, out[3] == 1, window.kernel.tuple == (x[2], x[3]),
        window.padding.tuple == (0, 0)
      {
        return [
          PlaneMean(
            label: label, planes: x[0] * x[1], spatial: x[2] * x[3], x: o(node.operands[0]), out: o(node.results[0]))
        ]
      }
      return [
        Pool(
          label: label, isMax: node.op == .maxPool2d, planes: x[0] * x[1], h: x[2], w: x[3], oh: out[2], ow: out[3],
          kernel: window.kernel.tuple, stride: window.stride.tuple, padding: window.padding.tuple,
          dilation: window.dilation.tuple, countIncludePad: window.countIncludePad, x: o(node.operands[0]),
          out: o(node.results[0]), threads: threads)
      ]

    case .toBlocked, .fromBlocked:
      let plain = node.op == .toBlocked ? x : out
      return [
        Reorder(
          label: label, toBlocked: node.op == .toBlocked, n: plain[0], channels: plain[1], plane: plain[2] * plain[3],
          x: o(node.operands[0]), out: o(node.results[0]), threads: threads)
      ]

    case .globalAvgPool2d:
      return [PlaneMean(planes: x[0] * x[1], spatial: x[2] * x[3], x: o(node.operands[0]), out: o(node.results[0]))]

    case .batchNorm:
      let ops = node.operands
      return [
        BatchNorm(
          label: label, n: x[0], c: x[1], inner: x.dropFirst(2).reduce(1, *),
          eps: Float(BatchNormAttributes(of: node).eps),
          x: o(ops[0]), weight: o(ops[1]), bias: o(ops[2]), mean: o(ops[3]), variance: o(ops[4]),
          out: o(node.results[0]))
      ]

    case .layerNorm:
      let a = LayerNormAttributes(of: node), n = x[normalizedAxis(a.axis, rank: x.count)...].reduce(1, *)
      return [
        LayerNorm(
          label: label, rows: out.reduce(1, *) / n, n: n, eps: Float(a.eps), x: o(node.operands[0]),
          weight: o(node.operands[1]), bias: node.operands.count > 2 ? o(node.operands[2]) : nil,
          out: o(node.results[0]), threads: threads)
      ]

    case .lrn, .lrnBackward:
      let xs = shape(g, node.operands[node.op == .lrn ? 0 : 1])
      let geometry = LRNGeometry(LRNAttributes(of: node), n: xs[0], c: xs[1], spatial: xs.dropFirst(2).reduce(1, *))
      if node.op == .lrn {
        return [
          LRN(
            label: label, geometry: geometry, x: o(node.operands[0]), out: o(node.results[0]),
            threads: threads)
        ]
      }
      return [
        LRNBackward(
          label: label, geometry: geometry, dy: o(node.operands[0]), x: o(node.operands[1]),
          dx: o(node.results[0]), scratch: scratch, threads: threads)
      ]

    case .layerNormBackward:
      let a = LayerNormAttributes(of: node), n = out[normalizedAxis(a.axis, rank: out.count)...].reduce(1, *)
      return [
        LayerNormBackward(
          label: label, rows: out.reduce(1, *) / n, n: n, eps: Float(a.eps),
          dy: o(node.operands[0]), x: o(node.operands[1]), weight: o(node.operands[2]),
          dx: o(node.results[0]), dweight: o(node.results[1]), dbias: o(node.results[2]))
      ]

    case .linear:
      let w = shape(g, node.operands[1])
      let function = functionOfInput(node, g).map { g.nodes[$0] }
      return [
        Linear(
          label: label + (function.map { " (\($0.op.name) of its input)" } ?? ""), rows: x.dropLast().reduce(1, *),
          inFeatures: w[1], outFeatures: w[0], x: o(function?.operands[0] ?? node.operands[0]),
          weight: o(node.operands[1]), bias: node.operands.count > 2 ? o(node.operands[2]) : nil,
          out: o(node.results[0]), epilogue: epilogue(LinearAttributes(of: node).activation), threads: threads,
          inputFunction: function.flatMap(inputFunction), scratch: scratch)
      ]

    case .matmul, .batchMatmul:
      let r = shape(g, node.operands[1])
      return [
        Matmul(
          label: label, batch: x.dropLast(2).reduce(1, *), m: x[x.count - 2], n: r[r.count - 1], k: x[x.count - 1],
          lhs: o(node.operands[0]), rhs: o(node.operands[1]), out: o(node.results[0]), threads: threads)
      ]

    case .add: return binary(.add)
    case .sub: return binary(.sub)
    case .mul: return binary(.mul)
    case .div: return binary(.div)
    case .pow: return binary(.pow)
    case .maximum: return binary(.maximum)
    case .minimum: return binary(.minimum)
    case .relu: return unary(.relu)
    case .sigmoid: return unary(.sigmoid)
    case .tanh: return unary(.tanh)
    case .exp: return unary(.exp)
    case .log: return unary(.log)
    case .sqrt: return unary(.sqrt)
    case .abs: return unary(.abs)
    case .erf: return unary(.erf)

    case .reshape, .flatten, .dropout:
      return []  // aliases: the planner gives the result its operand's storage

    case .softmax, .logSoftmax:
      let ax = normalizedAxis(SoftmaxAttributes(of: node).axis, rank: x.count)
      return [
        Softmax(
          label: label, isLog: node.op == .logSoftmax, outer: x[..<ax].reduce(1, *), n: x[ax],
          inner: x[(ax + 1)...].reduce(1, *), x: o(node.operands[0]), out: o(node.results[0]), threads: threads)
      ]

    case .sum: return reduction(.sum)
    case .mean: return reduction(.mean)
    case .max: return reduction(.max)

    case .transpose:
      let inStrides = rowMajorStrides(x)
      let srcStrides = TransposeAttributes(of: node).perm.map { inStrides[$0] }
      return [
        StridedCopy(
          label: label, shape: out, src: o(node.operands[0]), srcStrides: srcStrides,
          dst: o(node.results[0]), dstStrides: rowMajorStrides(out))
      ]

    case .concat:
      let ax = normalizedAxis(ConcatAttributes(of: node).axis, rank: out.count)
      let outStrides = rowMajorStrides(out)
      var position = 0
      var copies: [any Kernel] = []
      for operand in node.operands {
        let s = shape(g, operand)
        copies.append(
          StridedCopy(
            label: label, shape: s, src: o(operand), srcStrides: rowMajorStrides(s),
            dst: o(node.results[0]) + position * outStrides[ax], dstStrides: outStrides))
        position += s[ax]
      }
      return copies

    case .slice:
      let a = SliceAttributes(of: node), ax = normalizedAxis(a.axis, rank: x.count)
      let step = a.step, start = clampIndex(a.start, x[ax])
      var strides = rowMajorStrides(x)
      let base = o(node.operands[0]) + start * strides[ax]
      strides[ax] *= step
      return [
        StridedCopy(
          label: label, shape: out, src: base, srcStrides: strides, dst: o(node.results[0]),
          dstStrides: rowMajorStrides(out))
      ]

    case .select:
      let a = SelectAttributes(of: node), ax = normalizedAxis(a.axis, rank: x.count)
      let index = a.position(size: x[ax])
      var strides = rowMajorStrides(x)
      let base = o(node.operands[0]) + index * strides[ax]
      strides.remove(at: ax)
      return [
        StridedCopy(
          label: label, shape: out, src: base, srcStrides: strides, dst: o(node.results[0]),
          dstStrides: rowMajorStrides(out))
      ]

    case .split:
      let ax = normalizedAxis(SplitAttributes(of: node).axis, rank: x.count)
      let strides = rowMajorStrides(x)
      var start = 0
      return node.results.map { r in
        let s = shape(g, r)
        defer { start += s[ax] }
        return StridedCopy(
          label: "split \(g[r].name)", shape: s, src: o(node.operands[0]) + start * strides[ax],
          srcStrides: strides, dst: o(r), dstStrides: rowMajorStrides(s))
      }

    case .pad:
      let a = PadAttributes(of: node)
      return [
        Pad(
          label: label, shape: x, before: x.indices.map(a.before), after: x.indices.map(a.after), mode: a.mode,
          value: Float(a.value), x: o(node.operands[0]), out: o(node.results[0]), threads: threads)
      ]

    case .lstm:
      let a = LSTMAttributes(of: node), dirs = a.directions
      let w = (0..<dirs).map { d in
        (
          o(node.operands[1 + 4 * d]), o(node.operands[2 + 4 * d]), o(node.operands[3 + 4 * d]),
          o(node.operands[4 + 4 * d])
        )
      }
      return [
        LSTMLayer(
          label: label, batch: x[0], steps: x[1], features: x[2], hidden: a.hidden, directions: dirs,
          x: o(node.operands[0]), out: o(node.results[0]), weights: w, scratch: scratch, persistent: persistent,
          parallel: threads > 1, threads: threads, lastOnly: a.last)
      ]

    case .lstmCell:
      let h = shape(g, node.operands[1])
      return [
        LSTMCell(
          label: label, batch: h[0], hidden: h[1], gates: o(node.operands[0]), h: o(node.operands[1]),
          c: o(node.operands[2]), weight: o(node.operands[3]), hOut: o(node.results[0]), cOut: o(node.results[1]),
          scratch: scratch, threads: threads, gatesStride: rowStrides[node.operands[0].index] ?? 4 * h[1])
      ]

    case .crossEntropy:
      return [
        CrossEntropy(
          n: x[0], c: x[1], logits: o(node.operands[0]), target: o(node.operands[1]), out: o(node.results[0]))
      ]

    case .fusedElementwise:
      let operands = node.operands.map {
        (offset: o($0), scalar: shape(g, $0).reduce(1, *) == 1 && out.reduce(1, *) != 1)
      }
      let program = FusedElementwiseAttributes(of: node).program
      return [
        FusedElementwise(
          label: label, operands: operands, program: program, count: out.reduce(1, *),
          out: o(node.results[0]), scratch: scratch, threads: threads)
      ]

    case .constant:
      let value = Float(ConstantAttributes(of: node).value)
      return [Fill(dst: o(node.results[0]), count: Swift.max(out.reduce(1, *), 1), value: value)]

    case .classSeed:
      let fixedClass = ClassSeedAttributes(of: node).classIndex
      return [
        ClassSeed(
          n: x[0], c: x[1], fixedClass: fixedClass, logits: o(node.operands[0]),
          target: node.operands.count > 1 ? o(node.operands[1]) : nil, out: o(node.results[0]))
      ]

    case .reluBackward:
      return [
        ReluBackward(
          label: label, dy: o(node.operands[0]), x: o(node.operands[1]), dx: o(node.results[0]),
          count: out.reduce(1, *), threads: threads)
      ]

    case .linearBackwardWeight:
      return [
        LinearBackwardWeight(
          label: label, rows: x.dropLast().reduce(1, *), outFeatures: out[0], inFeatures: out[1],
          dy: o(node.operands[0]), x: o(node.operands[1]), dw: o(node.results[0]), threads: threads,
          scratch: scratch)
      ]

    case .sliceBackward:
      // Zeros, then dy copied into the view the slice read.
      let a = SliceBackwardAttributes(of: node).slice, ax = normalizedAxis(a.axis, rank: out.count)
      let step = a.step, start = clampIndex(a.start, out[ax])
      var strides = rowMajorStrides(out)
      let base = o(node.results[0]) + start * strides[ax]
      strides[ax] *= step
      return [
        Fill(label: label, dst: o(node.results[0]), count: Swift.max(out.reduce(1, *), 1), value: 0),
        StridedCopy(
          label: label, shape: x, src: o(node.operands[0]), srcStrides: rowMajorStrides(x),
          dst: base, dstStrides: strides),
      ]

    case .maxBackward:
      let xs = shape(g, node.operands[1])
      let axes = ReduceAttributes(of: node).reducedAxes(rank: xs.count)
      let kept = xs.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
      var strides = rowMajorStrides(kept)
      for ax in axes { strides[ax] = 0 }
      return [
        MaxBackward(
          label: label, shape: xs, outStrides: strides, outCount: x.reduce(1, *),
          dy: o(node.operands[0]), x: o(node.operands[1]), y: o(node.operands[2]), dx: o(node.results[0]),
          scratch: scratch)
      ]

    case .lstmCellBackward:
      let h = shape(g, node.operands[3])
      return [
        LSTMCellBackward(
          label: label, batch: h[0], hidden: h[1], dh: o(node.operands[0]), dc: o(node.operands[1]),
          gates: o(node.operands[2]), h: o(node.operands[3]), c: o(node.operands[4]),
          weight: o(node.operands[5]), dGates: o(node.results[0]), dhPrev: o(node.results[1]),
          dcPrev: o(node.results[2]), scratch: scratch, threads: threads,
          gatesStride: rowStrides[node.operands[2].index] ?? 4 * h[1],
          dGatesStride: rowStrides[node.results[0].index] ?? 4 * h[1])
      ]

    case .crossEntropyBackward:
      let l = shape(g, node.operands[1])
      return [
        CrossEntropyBackward(
          n: l[0], c: l[1], dloss: o(node.operands[0]), logits: o(node.operands[1]),
          target: o(node.operands[2]), out: o(node.results[0]))
      ]

    case .conv2dBackwardWeight where winograd(node, g):
      let dy = x, xs = shape(g, node.operands[1]), p = convolutionGeometry(node).padding
      let forward = WinogradConv3x3(
        label: label, n: xs[0], cin: xs[1], h: xs[2], w: xs[3], cout: dy[1],
        padding: p.tuple, oh: dy[2], ow: dy[3], x: o(node.operands[1]), weight: .arena(0),
        bias: nil, out: 0, transformed: 0, scratch: scratch,
        epilogue: Epilogue(residual: nil, relu: false), threads: threads, m: winogradTile(node, g))
      return [
        WinogradWeightGradient(
          label: label + winogradSuffix(node, g), forward: forward, dy: o(node.operands[0]),
          dw: o(node.results[0]))
      ]

    case .conv2dBackwardInput, .conv2dBackwardWeight:
      if winograd(node, g) {
        let dy = x, w = shape(g, node.operands[1]), p = convolutionGeometry(node).padding
        return [
          WinogradConv3x3(
            label: label + winogradSuffix(node, g), n: dy[0], cin: dy[1], h: dy[2], w: dy[3], cout: w[1],
            padding: (2 - p.h, 2 - p.w), oh: out[2], ow: out[3], x: o(node.operands[0]),
            weight: source(node.operands[1]), bias: nil, out: o(node.results[0]), transformed: persistent,
            scratch: scratch, epilogue: Epilogue(residual: nil, relu: false), threads: threads,
            flipped: sharesForward ? .forward : .own, m: winogradTile(node, g))
        ]
      }
      let geometry = convolutionBackwardGeometry(node, g, scratch: scratch, threads: threads)
      if node.op == .conv2dBackwardInput {
        return [
          Conv2dBackwardInput(
            label: label, geometry: geometry, dy: o(node.operands[0]), weight: o(node.operands[1]),
            dx: o(node.results[0]))
        ]
      }
      return [
        Conv2dBackwardWeight(
          label: label, geometry: geometry, dy: o(node.operands[0]), x: o(node.operands[1]),
          dw: o(node.results[0]))
      ]

    case .maxPool2dBackward, .avgPool2dBackward:
      let xs = out, window = PoolWindow(of: node)
      let pool = Pool(
        label: label, isMax: node.op == .maxPool2dBackward, planes: xs[0] * xs[1], h: xs[2], w: xs[3],
        oh: x[2], ow: x[3], kernel: window.kernel.tuple, stride: window.stride.tuple,
        padding: window.padding.tuple, dilation: window.dilation.tuple,
        countIncludePad: window.countIncludePad, x: 0, out: 0, threads: threads)
      return [
        PoolBackward(label: label, pool: pool, dy: o(node.operands[0]), x: o(node.operands[1]), dx: o(node.results[0]))
      ]

    case .batchNormTrain:
      let ops = node.operands, a = BatchNormTrainAttributes(of: node)
      return [
        BatchNormTrain(
          label: label, n: x[0], c: x[1], inner: x.dropFirst(2).reduce(1, *),
          eps: Float(a.eps), x: o(ops[0]), weight: o(ops[1]), bias: o(ops[2]),
          out: o(node.results[0]), mean: o(node.results[1]), variance: o(node.results[2]),
          relu: a.activation == .relu, threads: threads)
      ]

    case .batchNormTrainBackward:
      let ops = node.operands, xs = shape(g, ops[1]), a = BatchNormTrainAttributes(of: node)
      return [
        BatchNormTrainBackward(
          label: label, n: xs[0], c: xs[1], inner: xs.dropFirst(2).reduce(1, *),
          eps: Float(a.eps), dy: o(ops[0]), x: o(ops[1]),
          weight: o(ops[2]), mean: o(ops[3]), variance: o(ops[4]), dx: o(node.results[0]),
          dweight: o(node.results[1]), dbias: o(node.results[2]),
          bias: a.activation == .relu ? o(ops[5]) : nil,
          threads: threads)
      ]
    }
  }

  /// Strides of `shape` read as `target` under broadcasting (0 on broadcast axes).
  static func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
    let padded = [Int](repeating: 1, count: target.count - shape.count) + shape
    let strides = rowMajorStrides(padded)
    return zip(padded, target).enumerated().map { i, pair in pair.0 == 1 && pair.1 != 1 ? 0 : strides[i] }
  }
}

extension Op {
  /// Whether lowering gives the result its operand's storage and no kernel: the bytes do not
  /// change (`reshape`, `flatten`, and `dropout`, the identity in inference).
  var aliasesOperand: Bool {
    switch self {
    case .reshape, .flatten, .dropout: true
    case .conv2d, .maxPool2d, .avgPool2d, .globalAvgPool2d, .batchNorm, .linear, .matmul, .batchMatmul, .add, .sub,
      .mul, .div, .relu, .sigmoid, .tanh, .softmax, .logSoftmax, .sum, .mean, .max, .transpose, .concat, .slice,
      .select, .split, .pad, .lstm, .lstmCell, .crossEntropy, .constant, .fusedElementwise, .classSeed,
      .reluBackward,
      .linearBackwardWeight, .sliceBackward, .maxBackward, .lstmCellBackward, .crossEntropyBackward,
      .conv2dBackwardInput, .conv2dBackwardWeight, .maxPool2dBackward, .avgPool2dBackward, .batchNormTrain,
      .batchNormTrainBackward, .layerNorm, .layerNormBackward, .lrn, .lrnBackward,
      .exp, .log, .sqrt, .abs, .erf, .pow, .maximum, .minimum, .toBlocked, .fromBlocked:
      false
    }
  }

  /// Whether the op's kernel may write its result over an operand of the result's shape: each
  /// output element depends only on the same element of that operand, which the kernel reads
  /// before it writes (`Binary`, `Unary`, `FusedElementwise`, `ReluBackward`). The buffer
  /// assignment then lets chains of such ops reuse one buffer (`BufferAssignment.inPlace`).
  var writesOverOperand: Bool {
    switch self {
    case .add, .sub, .mul, .div, .relu, .sigmoid, .tanh, .exp, .log, .sqrt, .abs, .erf, .pow, .maximum, .minimum,
      .fusedElementwise, .reluBackward:
      true
    // dropout is elementwise too, but an alias: it has no kernel.
    case .conv2d, .maxPool2d, .avgPool2d, .globalAvgPool2d, .batchNorm, .linear, .matmul, .batchMatmul, .softmax,
      .logSoftmax, .sum, .mean, .max, .reshape, .flatten, .transpose, .concat, .slice, .select, .split, .pad, .lstm,
      .lstmCell, .dropout, .crossEntropy, .constant, .classSeed, .linearBackwardWeight, .sliceBackward,
      .maxBackward, .lstmCellBackward, .crossEntropyBackward, .conv2dBackwardInput, .conv2dBackwardWeight,
      .maxPool2dBackward, .avgPool2dBackward, .batchNormTrain, .batchNormTrainBackward, .layerNorm,
      .layerNormBackward, .lrn, .lrnBackward, .toBlocked, .fromBlocked:
      false
    }
  }
}

extension Pair {
  /// `(h, w)`, as the kernels take it.
  var tuple: (Int, Int) { (h, w) }
}
