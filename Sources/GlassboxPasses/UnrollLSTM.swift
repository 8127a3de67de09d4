import GlassboxIR

/// Unrolls each LSTM into per-step fused cells, with the input projection of every time step
/// hoisted into one GEMM per direction:
///
/// ```
///                                            lstm.bias = add(bias_ih, bias_hh)
///                                            lstm.proj = linear(x, weight_ih, lstm.bias)     # [B, T, 4H], one GEMM
/// h = lstm(x, …, hidden: H)           →      lstm.x0 = select(lstm.proj, axis: 1, index: 0)
///                                            lstm.h0, lstm.c0 = lstm_cell(lstm.x0, zeros, zeros, weight_hh)
///                                            …                                              # one cell per step
///                                            h = concat(reshape(lstm.h0, [B, 1, H]), …, axis: 1)
/// ```
/// The reverse direction walks the steps backwards and its outputs are placed at their time
/// step; with `last`, only the final cells are kept (the reverse direction runs one step, and
/// projects only that step's input).
/// Needs a bound time axis. This is the form backpropagation through time differentiates,
/// and per-step values are what taps on a time step read; the inference pipeline keeps the
/// whole-layer kernel instead, which runs the two directions on two cores.
public struct UnrollLSTM: Pass {
  public let name = "unroll-lstm"
  public init() {}

  public func run(_ module: inout Module) -> Bool {
    let g = module.graph
    guard g.nodes.contains(where: { $0.op == .lstm && g[$0.operands[0]].type.shape[1].isStatic }) else { return false }
    module.graph = g.rewritten { node, ng in
      guard node.op == .lstm, let steps = ng[node.operands[0]].type.shape[1].staticValue else { return .keep }
      return .forward([Self.unroll(node, steps: steps, name: g[node.results[0]].name, into: &ng)])
    }
    return true
  }

  static func unroll(_ node: Node, steps: Int, name: String, into g: inout Graph) -> ValueID {
    let x = node.operands[0]
    let xt = g[x].type
    let attributes = LSTMAttributes(of: node)
    let hidden = attributes.hidden, directions = attributes.directions, last = attributes.last
    let batch = xt.shape[0], dtype = xt.dtype
    let state = TensorType(dtype, [batch, Dim(hidden)])
    func add<A: AttributeSet>(
      _ op: Op, _ operands: [ValueID], _ attrs: A,
      _ results: [(String, TensorType)]
    ) -> [ValueID] {
      g.addNode(
        op, operands: operands, attributes: attrs, results: results.map { ($0.0, $0.1) },
        location: node.location)
    }
    let zeros = add(
      .constant, [], ConstantAttributes(value: 0, shape: state.shape, dtype: dtype),
      [("\(name).zeros", state)])[0]
    var pieces: [ValueID] = []
    for d in 0..<directions {
      let suffix = d == 0 ? "" : "_reverse"
      let (wih, whh, bih, bhh) = (
        node.operands[1 + 4 * d], node.operands[2 + 4 * d], node.operands[3 + 4 * d], node.operands[4 + 4 * d]
      )
      let gates = TensorType(dtype, [Dim(4 * hidden)])
      let bias = add(.add, [bih, bhh], NoAttributes(), [("\(name).bias\(suffix)", gates)])[0]
      let count = last && d == 1 ? 1 : steps
      // The reverse direction of a last-step LSTM reads one step: project only that one.
      let projected =
        count == 1 && steps > 1
        ? add(
          .select, [x], SelectAttributes(axis: 1, index: steps - 1),
          [("\(name).input\(steps - 1)\(suffix)", TensorType(dtype, [batch, xt.shape[2]]))])[0] : x
      let proj = add(
        .linear, [projected, wih, bias], LinearAttributes(activation: .none),
        [
          (
            "\(name).proj\(suffix)",
            TensorType(
              dtype,
              count == 1 && steps > 1
                ? [batch, Dim(4 * hidden)]
                : [batch, xt.shape[1], Dim(4 * hidden)])
          )
        ])[0]
      var h = zeros, c = zeros
      var outputs = [ValueID?](repeating: nil, count: steps)
      for s in 0..<count {
        let t = d == 0 ? s : steps - 1 - s
        let gx =
          count == 1 && steps > 1
          ? proj
          : add(
            .select, [proj], SelectAttributes(axis: 1, index: t),
            [("\(name).x\(t)\(suffix)", TensorType(dtype, [batch, Dim(4 * hidden)]))])[0]
        let hc = add(
          .lstmCell, [gx, h, c, whh], NoAttributes(),
          [("\(name).h\(t)\(suffix)", state), ("\(name).c\(t)\(suffix)", state)])
        (h, c) = (hc[0], hc[1])
        outputs[t] = h
      }
      if last {
        pieces.append(h)
      } else {
        let column = TensorType(dtype, [batch, 1, Dim(hidden)])
        let columns = (0..<steps).compactMap { t in
          outputs[t].map {
            add(
              .reshape, [$0], ReshapeAttributes(shape: column.shape),
              [("\(name).y\(t)\(suffix)", column)])[0]
          }
        }
        pieces.append(
          add(
            .concat, columns, ConcatAttributes(axis: 1),
            [("\(name).seq\(suffix)", TensorType(dtype, [batch, xt.shape[1], Dim(hidden)]))])[0])
      }
    }
    if pieces.count == 1 {
      // The result keeps the LSTM's name.
      g.values[pieces[0].index].name = name
      return pieces[0]
    }
    let outShape = last ? [batch, Dim(2 * hidden)] : [batch, xt.shape[1], Dim(2 * hidden)]
    return add(.concat, pieces, ConcatAttributes(axis: -1), [(name, TensorType(dtype, outShape))])[0]
  }
}
