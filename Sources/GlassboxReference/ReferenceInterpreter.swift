import Foundation
import GlassboxIR

/// The oracle: evaluates any graph op by op in Float64, with plain loops and no
/// optimisation, following PyTorch's semantics. Passes, lowering and kernels are checked
/// against it; it is written for clarity, not speed.
///
/// Inference semantics: `dropout` is the identity and `batch_norm` uses the running
/// statistics (PyTorch's `eval()` mode).
public struct ReferenceInterpreter {
  /// Values by name: inputs, parameters, and (after `run`) every node result.
  public private(set) var values: [String: Tensor] = [:]
  public let graph: Graph

  public init(graph: Graph) { self.graph = graph }

  /// Problems with the tensors given to `run`, named.
  public struct InputError: Error, CustomStringConvertible {
    public var description: String
  }

  /// Evaluates the graph. `inputs` are keyed by input name, `parameters` by parameter name;
  /// missing parameters take zeros. Returns every value by name (all Float64 except `i64` and
  /// `bool` values, which keep their type).
  public mutating func run(inputs: [String: Tensor], parameters: [String: Tensor] = [:]) throws -> [String: Tensor] {
    var env: [Int: Tensor] = [:]
    for id in graph.inputs {
      let v = graph[id]
      guard let t = inputs[v.name] else { throw InputError(description: "input '\(v.name)' is missing") }
      guard t.shape.count == v.type.rank,
        zip(t.shape, v.type.shape).allSatisfy({ $1.staticValue == nil || $1.staticValue == $0 })
      else {
        throw InputError(
          description: "input '\(v.name)' has shape \(t.shape) but the graph expects \(v.type.shapeDescription)")
      }
      env[id.index] = Self.widen(t)
    }
    for p in graph.parameters {
      let shape = p.type.shape.compactMap(\.staticValue)
      guard shape.count == p.type.rank else {
        throw InputError(
          description: "parameter '\(p.name)' has symbolic shape \(p.type.shapeDescription); bind the symbols")
      }
      if let t = parameters[p.name] {
        guard t.shape == shape else {
          throw InputError(description: "parameter '\(p.name)' has shape \(t.shape) but the graph expects \(shape)")
        }
        env[p.value.index] = Self.widen(t)
      } else {
        env[p.value.index] = Tensor(zeros: p.type.dtype == .f32 ? .f64 : p.type.dtype, shape: shape)
      }
    }
    for node in graph.nodes {
      let operands = node.operands.map { env[$0.index] ?? Tensor(zeros: .f64, shape: []) }
      let results = Self.evaluate(node.op, operands, node.attributes)
      for (id, t) in zip(node.results, results) { env[id.index] = t }
    }
    var out: [String: Tensor] = [:]
    for (i, v) in graph.values.enumerated() { if let t = env[i] { out[v.name] = t } }
    values = out
    return out
  }

  /// f32 data is computed in f64.
  static func widen(_ t: Tensor) -> Tensor {
    if case .f32(let v) = t.storage { return Tensor(shape: t.shape, f64: v.map(Double.init)) }
    return t
  }

  // MARK: Ops

  /// One op on f64 tensors (shapes already checked by the shape rules).
  public static func evaluate(_ op: Op, _ x: [Tensor], _ a: Attributes) -> [Tensor] {
    switch op {
    case .conv2d:
      // A blocked convolution computes what the plain one does, in the blocked layout.
      let attrs = ConvolutionAttributes(verified: a)
      let plain = x.enumerated().map { i, t in i == 0 || i == 3 ? unblocked(t) : t }
      let y = epilogue(conv2d(plain[0], plain[1], x.count > 2 ? x[2] : nil, attrs.geometry), plain, attrs.activation)
      return [attrs.layout == .blocked ? blocked(y) : y]
    case .maxPool2d:
      let y = pool(unblocked(x[0]), MaxPoolAttributes(verified: a).window, max: true)
      return [x[0].shape.count == 5 ? blocked(y) : y]
    case .toBlocked: return [blocked(x[0])]
    case .fromBlocked: return [unblocked(x[0])]
    case .avgPool2d: return [pool(x[0], AvgPoolAttributes(verified: a).window, max: false)]
    case .globalAvgPool2d:
      let s = x[0].shape, v = x[0].doubles, hw = s[2] * s[3]
      var out = [Double](repeating: 0, count: s[0] * s[1])
      for i in 0..<out.count { out[i] = v[(i * hw)..<((i + 1) * hw)].reduce(0, +) / Double(hw) }
      return [Tensor(shape: [s[0], s[1], 1, 1], f64: out)]
    case .batchNorm:
      let s = x[0].shape, v = x[0].doubles
      let w = x[1].doubles, b = x[2].doubles, mean = x[3].doubles, variance = x[4].doubles
      let c = s[1], inner = s.dropFirst(2).reduce(1, *), eps = BatchNormAttributes(verified: a).eps
      var out = v
      for i in 0..<v.count {
        let ch = (i / inner) % c
        out[i] = (v[i] - mean[ch]) / (variance[ch] + eps).squareRoot() * w[ch] + b[ch]
      }
      return [Tensor(shape: s, f64: out)]
    case .layerNorm:
      let s = x[0].shape, attrs = LayerNormAttributes(verified: a), v = x[0].doubles, w = x[1].doubles
      let n = s[normalizedAxis(attrs.axis, rank: s.count)...].reduce(1, *)
      let bias = x.count > 2 ? x[2].doubles : [Double](repeating: 0, count: n)
      var out = v
      for row in 0..<(v.count / n) {
        let (mean, inverse) = rowStatistics(v[(row * n)..<((row + 1) * n)], eps: attrs.eps)
        for j in 0..<n { out[row * n + j] = (v[row * n + j] - mean) * inverse * w[j] + bias[j] }
      }
      return [Tensor(shape: s, f64: out)]
    case .layerNormBackward:
      // x̂ = (x − mean)·r, y = x̂·w + b; with ĝ = dy·w: dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)).
      let s = x[1].shape, attrs = LayerNormAttributes(verified: a)
      let dy = x[0].doubles, v = x[1].doubles, w = x[2].doubles
      let n = s[normalizedAxis(attrs.axis, rank: s.count)...].reduce(1, *)
      var dx = v, dw = [Double](repeating: 0, count: n), db = dw
      for row in 0..<(v.count / n) {
        let (mean, inverse) = rowStatistics(v[(row * n)..<((row + 1) * n)], eps: attrs.eps)
        let xhat = (0..<n).map { (v[row * n + $0] - mean) * inverse }
        let g = (0..<n).map { dy[row * n + $0] * w[$0] }
        let meanG = g.reduce(0, +) / Double(n)
        let meanGX = zip(g, xhat).reduce(0) { $0 + $1.0 * $1.1 } / Double(n)
        for j in 0..<n {
          dx[row * n + j] = inverse * (g[j] - meanG - xhat[j] * meanGX)
          dw[j] += dy[row * n + j] * xhat[j]
          db[j] += dy[row * n + j]
        }
      }
      let ws = x[2].shape
      return [Tensor(shape: s, f64: dx), Tensor(shape: ws, f64: dw), Tensor(shape: ws, f64: db)]
    case .lrn, .lrnBackward:
      let s = x[op == .lrn ? 0 : 1].shape, v = x[op == .lrn ? 0 : 1].doubles, attrs = LRNAttributes(verified: a)
      let c = s[1], inner = s.dropFirst(2).reduce(1, *), (before, after) = attrs.window
      let scale = attrs.alpha / Double(attrs.size), beta = attrs.beta
      // D = bias + alpha/size · Σ x² over each element's window of channels.
      var d = v
      for i in v.indices {
        let ch = (i / inner) % c, base = i - ch * inner
        var sum = 0.0
        for j in Swift.max(0, ch - before)...Swift.min(c - 1, ch + after) {
          sum += v[base + j * inner] * v[base + j * inner]
        }
        d[i] = attrs.bias + scale * sum
      }
      if op == .lrn { return [Tensor(shape: s, f64: v.indices.map { v[$0] * Foundation.pow(d[$0], -beta) })] }
      let dy = x[0].doubles
      var dx = v
      for i in v.indices {
        let ch = (i / inner) % c, base = i - ch * inner
        // The channels whose window holds ch.
        var sum = 0.0
        for j in Swift.max(0, ch - after)...Swift.min(c - 1, ch + before) {
          let k = base + j * inner
          sum += dy[k] * v[k] * Foundation.pow(d[k], -beta - 1)
        }
        dx[i] = dy[i] * Foundation.pow(d[i], -beta) - 2 * scale * beta * v[i] * sum
      }
      return [Tensor(shape: s, f64: dx)]
    case .linear:
      let s = x[0].shape, v = x[0].doubles, w = x[1].doubles
      let out = x[1].shape[0], inF = x[1].shape[1], rows = v.count / inF
      let bias = x.count > 2 ? x[2].doubles : [Double](repeating: 0, count: out)
      var r = [Double](repeating: 0, count: rows * out)
      for i in 0..<rows {
        for o in 0..<out {
          var acc = bias[o]
          for k in 0..<inF { acc += v[i * inF + k] * w[o * inF + k] }
          r[i * out + o] = acc
        }
      }
      return [epilogue(Tensor(shape: Array(s.dropLast()) + [out], f64: r), x, LinearAttributes(verified: a).activation)]
    case .matmul, .batchMatmul:
      let l = x[0].shape, r = x[1].shape
      let m = l[l.count - 2], k = l[l.count - 1], n = r[r.count - 1]
      let batch = l.dropLast(2).reduce(1, *)
      let av = x[0].doubles, bv = x[1].doubles
      var out = [Double](repeating: 0, count: batch * m * n)
      for b in 0..<batch {
        for i in 0..<m {
          for j in 0..<n {
            var acc = 0.0
            for p in 0..<k { acc += av[b * m * k + i * k + p] * bv[b * k * n + p * n + j] }
            out[b * m * n + i * n + j] = acc
          }
        }
      }
      return [Tensor(shape: Array(l.dropLast()) + [n], f64: out)]
    case .add: return [broadcast(x[0], x[1], +)]
    case .sub: return [broadcast(x[0], x[1], -)]
    case .mul: return [broadcast(x[0], x[1], *)]
    case .div: return [broadcast(x[0], x[1], /)]
    case .relu: return [map(x[0]) { Swift.max($0, 0) }]
    case .sigmoid: return [map(x[0]) { 1 / (1 + exp(-$0)) }]
    case .tanh: return [map(x[0]) { tanh($0) }]
    case .exp: return [map(x[0]) { Foundation.exp($0) }]
    case .log: return [map(x[0]) { Foundation.log($0) }]
    case .sqrt: return [map(x[0]) { $0.squareRoot() }]
    case .abs: return [map(x[0]) { Swift.abs($0) }]
    case .erf: return [map(x[0]) { Foundation.erf($0) }]
    case .pow: return [broadcast(x[0], x[1]) { Foundation.pow($0, $1) }]
    case .maximum: return [broadcast(x[0], x[1]) { $0.isNaN || $1.isNaN ? .nan : Swift.max($0, $1) }]
    case .minimum: return [broadcast(x[0], x[1]) { $0.isNaN || $1.isNaN ? .nan : Swift.min($0, $1) }]
    case .dropout: return [x[0]]
    case .softmax, .logSoftmax:
      let s = x[0].shape, v = x[0].doubles
      let axis = normalizedAxis(SoftmaxAttributes(verified: a).axis, rank: s.count)
      var out = v
      forEachLane(s, axis: axis) { idx in
        let m = idx.map { v[$0] }.max() ?? 0
        let sum = idx.reduce(0.0) { $0 + exp(v[$1] - m) }
        for i in idx { out[i] = op == .softmax ? exp(v[i] - m) / sum : v[i] - m - log(sum) }
      }
      return [Tensor(shape: s, f64: out)]
    case .sum, .mean, .max:
      return [reduce(x[0], ReduceAttributes(verified: a), op)]
    case .reshape, .flatten:
      let shape: [Int]
      if op == .reshape {
        let target = ReshapeAttributes(verified: a).shape.map { $0.staticValue ?? -1 }
        let known = target.filter { $0 != -1 }.reduce(1, *)
        shape = target.map { $0 == -1 ? x[0].count / Swift.max(known, 1) : $0 }
      } else {
        let s = x[0].shape, r = s.count, attrs = FlattenAttributes(verified: a)
        let start = normalizedAxis(attrs.start, rank: r), end = normalizedAxis(attrs.end, rank: r)
        shape = Array(s[..<start]) + [s[start...end].reduce(1, *)] + Array(s[(end + 1)...])
      }
      return [Tensor(shape: shape, storage: x[0].storage)]
    case .transpose:
      let s = x[0].shape, perm = TransposeAttributes(verified: a).perm, v = x[0].doubles
      let outShape = perm.map { s[$0] }
      let inStrides = strides(s)
      var out = [Double](repeating: 0, count: v.count)
      var idx = [Int](repeating: 0, count: s.count)
      for o in 0..<v.count {
        var src = 0
        for (d, p) in perm.enumerated() { src += idx[d] * inStrides[p] }
        out[o] = v[src]
        increment(&idx, outShape)
      }
      return [Tensor(shape: outShape, f64: out)]
    case .concat:
      let axis = normalizedAxis(ConcatAttributes(verified: a).axis, rank: x[0].shape.count)
      let outer = x[0].shape[..<axis].reduce(1, *)
      var out: [Double] = []
      for o in 0..<outer {
        for t in x {
          let inner = t.shape[axis...].reduce(1, *)
          out += t.doubles[(o * inner)..<((o + 1) * inner)]
        }
      }
      var shape = x[0].shape
      shape[axis] = x.reduce(0) { $0 + $1.shape[axis] }
      return [Tensor(shape: shape, f64: out)]
    case .slice:
      let s = x[0].shape, attrs = SliceAttributes(verified: a)
      let axis = normalizedAxis(attrs.axis, rank: s.count)
      let picks = Array(attrs.indices(size: s[axis]))
      var shape = s
      shape[axis] = picks.count
      return [Tensor(shape: shape, f64: gather(x[0], axis: axis, picks: picks))]
    case .select:
      let s = x[0].shape, attrs = SelectAttributes(verified: a)
      let axis = normalizedAxis(attrs.axis, rank: s.count)
      var shape = s
      shape.remove(at: axis)
      return [Tensor(shape: shape, f64: gather(x[0], axis: axis, picks: [attrs.position(size: s[axis])]))]
    case .split:
      let s = x[0].shape, attrs = SplitAttributes(verified: a)
      let axis = normalizedAxis(attrs.axis, rank: s.count)
      var start = 0
      return attrs.sizes.map { size in
        let picks = Array(start..<(start + size))
        start += size
        var shape = s
        shape[axis] = size
        return Tensor(shape: shape, f64: gather(x[0], axis: axis, picks: picks))
      }
    case .pad:
      let s = x[0].shape, attrs = PadAttributes(verified: a), v = x[0].doubles
      let outShape = s.indices.map { s[$0] + attrs.before($0) + attrs.after($0) }
      let inStrides = strides(s)
      var out = [Double](repeating: attrs.value, count: outShape.reduce(1, *))
      var idx = [Int](repeating: 0, count: s.count)
      for o in out.indices {
        var src: Int? = 0
        for axis in s.indices {
          guard let offset = src, let j = attrs.source(idx[axis], axis: axis, size: s[axis]) else { src = nil; break }
          src = offset + j * inStrides[axis]
        }
        if let src { out[o] = v[src] }
        increment(&idx, outShape)
      }
      return [Tensor(shape: outShape, f64: out)]
    case .lstm:
      let attrs = LSTMAttributes(verified: a)
      let all = lstm(x, hidden: attrs.hidden, bidirectional: attrs.bidirectional)
      guard attrs.last else { return [all] }
      let steps = all.shape[1]
      return [Tensor(shape: [all.shape[0], all.shape[2]], f64: gather(all, axis: 1, picks: [steps - 1]))]
    case .lstmCell:
      let (b, h) = (x[1].shape[0], x[1].shape[1])
      let gx = x[0].doubles, hv = x[1].doubles, cv = x[2].doubles, w = x[3].doubles
      var hOut = [Double](repeating: 0, count: b * h), cOut = hOut
      for r in 0..<b {
        var gates = [Double](repeating: 0, count: 4 * h)
        for j in 0..<(4 * h) {
          var acc = gx[r * 4 * h + j]
          for k in 0..<h { acc += w[j * h + k] * hv[r * h + k] }
          gates[j] = acc
        }
        for j in 0..<h {
          let i = sigmoid(gates[j]), f = sigmoid(gates[h + j]), g = tanh(gates[2 * h + j]),
            o = sigmoid(gates[3 * h + j])
          cOut[r * h + j] = f * cv[r * h + j] + i * g
          hOut[r * h + j] = o * tanh(cOut[r * h + j])
        }
      }
      return [Tensor(shape: [b, h], f64: hOut), Tensor(shape: [b, h], f64: cOut)]
    case .crossEntropy:
      let n = x[0].shape[0], c = x[0].shape[1], v = x[0].doubles, t = x[1].doubles
      var total = 0.0
      for i in 0..<n {
        let row = v[(i * c)..<((i + 1) * c)]
        let m = row.max() ?? 0
        let lse = m + log(row.reduce(0.0) { $0 + exp($1 - m) })
        total += lse - v[i * c + Int(t[i])]
      }
      return [Tensor(shape: [], f64: [total / Double(n)])]
    case .constant:
      let attrs = ConstantAttributes(verified: a)
      let shape = attrs.shape.compactMap(\.staticValue)
      return [Tensor(shape: shape, f64: [Double](repeating: attrs.value, count: shape.reduce(1, *)))]
    case .fusedElementwise:
      let full = x.max(by: { $0.shape.reduce(1, *) < $1.shape.reduce(1, *) })?.shape ?? []
      let count = full.reduce(1, *)
      let values = x.map(\.doubles)
      let program = FusedElementwiseAttributes(verified: a).program
      var out = [Double](repeating: 0, count: count)
      var registers = [Double](repeating: 0, count: x.count + program.count / 3)
      for i in 0..<count {
        for (r, v) in values.enumerated() { registers[r] = v.count == 1 ? v[0] : v[i] }
        for step in 0..<(program.count / 3) {
          let l = registers[program[3 * step + 1]]
          let code = ElementwiseCode(rawValue: program[3 * step]) ?? .add
          let r = code.isBinary ? registers[program[3 * step + 2]] : 0
          let y: Double =
            switch code {
            case .add: l + r
            case .sub: l - r
            case .mul: l * r
            case .div: l / r
            case .relu: Swift.max(l, 0)
            case .sigmoid: 1 / (1 + exp(-l))
            case .tanh: tanh(l)
            case .maximum: l.isNaN || r.isNaN ? .nan : Swift.max(l, r)
            case .minimum: l.isNaN || r.isNaN ? .nan : Swift.min(l, r)
            case .pow: Foundation.pow(l, r)
            case .exp: Foundation.exp(l)
            case .log: Foundation.log(l)
            case .sqrt: l.squareRoot()
            case .abs: Swift.abs(l)
            case .erf: Foundation.erf(l)
            }
          registers[x.count + step] = y
        }
        out[i] = registers[registers.count - 1]
      }
      return [Tensor(shape: full, f64: out)]
    case .classSeed:
      let n = x[0].shape[0], c = x[0].shape[1], v = x[0].doubles, fixed = ClassSeedAttributes(verified: a).classIndex
      let targets = x.count > 1 ? x[1].doubles.map { $0 >= 0 && $0 < Double(c) ? Int($0) : -1 } : nil
      var out = [Double](repeating: 0, count: n * c)
      for i in 0..<n {
        var best = 0
        let k = targets?[i] ?? fixed
        if k >= 0 && k < c {
          best = k
        } else {
          for j in 1..<Swift.max(c, 1) where v[i * c + j] > v[i * c + best] { best = j }
        }
        out[i * c + best] = 1
      }
      return [Tensor(shape: x[0].shape, f64: out)]
    case .reluBackward:
      return [Tensor(shape: x[0].shape, f64: zip(x[0].doubles, x[1].doubles).map { $1 > 0 ? $0 : 0 })]
    case .linearBackwardWeight:
      let out = x[0].shape.last ?? 1, inF = x[1].shape.last ?? 1, rows = x[0].count / Swift.max(out, 1)
      let dy = x[0].doubles, xv = x[1].doubles
      var r = [Double](repeating: 0, count: out * inF)
      for i in 0..<rows {
        for o in 0..<out { for k in 0..<inF { r[o * inF + k] += dy[i * out + o] * xv[i * inF + k] } }
      }
      return [Tensor(shape: [out, inF], f64: r)]
    case .sliceBackward:
      let dy = x[0], s = dy.shape, attrs = SliceBackwardAttributes(verified: a)
      let axis = normalizedAxis(attrs.slice.axis, rank: s.count)
      let n = attrs.size.staticValue ?? 0
      let picks = Array(attrs.slice.indices(size: n))
      var shape = s
      shape[axis] = n
      let inner = s[(axis + 1)...].reduce(1, *), outer = s[..<axis].reduce(1, *), dv = dy.doubles
      var out = [Double](repeating: 0, count: shape.reduce(1, *))
      for o in 0..<outer {
        for (j, p) in picks.enumerated() {
          for i in 0..<inner { out[(o * n + p) * inner + i] += dv[(o * picks.count + j) * inner + i] }
        }
      }
      return [Tensor(shape: shape, f64: out)]
    case .maxBackward:
      // Lanes: each element of x maps to one element of the reduced y; ties share dy evenly.
      let s = x[1].shape, xv = x[1].doubles, dy = x[0].doubles, y = x[2].doubles
      let axes = ReduceAttributes(verified: a).reducedAxes(rank: s.count)
      let kept = s.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
      let keptStrides = strides(kept)
      var idx = [Int](repeating: 0, count: s.count)
      var target = [Int](repeating: 0, count: xv.count)
      var ties = [Double](repeating: 0, count: y.count)
      for i in 0..<xv.count {
        var o = 0
        for d in 0..<s.count where !axes.contains(d) { o += idx[d] * keptStrides[d] }
        target[i] = o
        if xv[i] == y[o] { ties[o] += 1 }
        increment(&idx, s)
      }
      return [
        Tensor(shape: s, f64: (0..<xv.count).map { xv[$0] == y[target[$0]] ? dy[target[$0]] / ties[target[$0]] : 0 })
      ]
    case .lstmCellBackward:
      let (b, h) = (x[3].shape[0], x[3].shape[1])
      let dh = x[0].doubles, dc = x[1].doubles, gx = x[2].doubles, hv = x[3].doubles, cv = x[4].doubles,
        w = x[5].doubles
      var dg = [Double](repeating: 0, count: b * 4 * h), dhPrev = [Double](repeating: 0, count: b * h), dcPrev = dhPrev
      for r in 0..<b {
        var pre = [Double](repeating: 0, count: 4 * h)
        for j in 0..<(4 * h) {
          var acc = gx[r * 4 * h + j]
          for k in 0..<h { acc += w[j * h + k] * hv[r * h + k] }
          pre[j] = acc
        }
        for j in 0..<h {
          let i = sigmoid(pre[j]), f = sigmoid(pre[h + j]), g = tanh(pre[2 * h + j]), o = sigmoid(pre[3 * h + j])
          let c = f * cv[r * h + j] + i * g, tc = tanh(c)
          let dhj = dh[r * h + j]
          let dct = dc[r * h + j] + dhj * o * (1 - tc * tc)
          dg[r * 4 * h + j] = dct * g * i * (1 - i)
          dg[r * 4 * h + h + j] = dct * cv[r * h + j] * f * (1 - f)
          dg[r * 4 * h + 2 * h + j] = dct * i * (1 - g * g)
          dg[r * 4 * h + 3 * h + j] = dhj * tc * o * (1 - o)
          dcPrev[r * h + j] = dct * f
        }
        for k in 0..<h {
          var acc = 0.0
          for j in 0..<(4 * h) { acc += dg[r * 4 * h + j] * w[j * h + k] }
          dhPrev[r * h + k] = acc
        }
      }
      return [
        Tensor(shape: [b, 4 * h], f64: dg), Tensor(shape: [b, h], f64: dhPrev), Tensor(shape: [b, h], f64: dcPrev),
      ]
    case .crossEntropyBackward:
      let n = x[1].shape[0], c = x[1].shape[1], v = x[1].doubles, t = x[2].doubles, scale = x[0].doubles[0] / Double(n)
      var out = [Double](repeating: 0, count: n * c)
      for i in 0..<n {
        let row = v[(i * c)..<((i + 1) * c)]
        let m = row.max() ?? 0
        let sum = row.reduce(0.0) { $0 + exp($1 - m) }
        for j in 0..<c { out[i * c + j] = (exp(v[i * c + j] - m) / sum - (j == Int(t[i]) ? 1 : 0)) * scale }
      }
      return [Tensor(shape: [n, c], f64: out)]
    case .conv2dBackwardInput:
      let attrs = ConvolutionInputGradientAttributes(verified: a), w = x[1].shape
      let shape = [x[0].shape[0], w[1] * attrs.geometry.groups, attrs.inputSize.h, attrs.inputSize.w]
      var dx = [Double](repeating: 0, count: shape.reduce(1, *))
      let dy = x[0].doubles, wv = x[1].doubles
      convolutionTaps(shape, w, x[0].shape, attrs.geometry) { xi, wi, yi in dx[xi] += dy[yi] * wv[wi] }
      return [Tensor(shape: shape, f64: dx)]
    case .conv2dBackwardWeight:
      let attrs = ConvolutionWeightGradientAttributes(verified: a), dy = x[0].doubles, xv = x[1].doubles
      let shape = [x[0].shape[1], x[1].shape[1] / attrs.geometry.groups, attrs.kernel.h, attrs.kernel.w]
      var dw = [Double](repeating: 0, count: shape.reduce(1, *))
      convolutionTaps(x[1].shape, shape, x[0].shape, attrs.geometry) { xi, wi, yi in dw[wi] += dy[yi] * xv[xi] }
      return [Tensor(shape: shape, f64: dw)]
    case .maxPool2dBackward, .avgPool2dBackward:
      let xs = x[1].shape, xv = x[1].doubles, dy = x[0].doubles
      var dx = [Double](repeating: 0, count: xv.count)
      let pool =
        op == .maxPool2dBackward
        ? MaxPoolAttributes(verified: a).window
        : AvgPoolAttributes(verified: a).window
      poolWindows(xs, x[0].shape, pool, average: op == .avgPool2dBackward) { y, window, divisor in
        if op == .maxPool2dBackward {
          // The first maximum of the window in row-major order, or its last NaN (PyTorch's
          // `val > maxval || isnan(val)`).
          guard var best = window.first else { return }
          for i in window where xv[i] > xv[best] || xv[i].isNaN { best = i }
          dx[best] += dy[y]
        } else {
          for i in window { dx[i] += dy[y] / divisor }
        }
      }
      return [Tensor(shape: xs, f64: dx)]
    case .batchNormTrain:
      let s = x[0].shape, v = x[0].doubles, w = x[1].doubles, b = x[2].doubles
      let attrs = BatchNormTrainAttributes(verified: a)
      let c = s[1], inner = s.dropFirst(2).reduce(1, *), m = Double(v.count / Swift.max(c, 1)), eps = attrs.eps
      var mean = [Double](repeating: 0, count: c), variance = mean
      for i in 0..<v.count { mean[(i / inner) % c] += v[i] / m }
      for i in 0..<v.count { let d = v[i] - mean[(i / inner) % c]; variance[(i / inner) % c] += d * d / m }
      let relu = attrs.activation == .relu
      let out = (0..<v.count).map { i -> Double in
        let ch = (i / inner) % c
        let y = (v[i] - mean[ch]) / (variance[ch] + eps).squareRoot() * w[ch] + b[ch]
        return relu ? Swift.max(y, 0) : y
      }
      return [Tensor(shape: s, f64: out), Tensor(shape: [c], f64: mean), Tensor(shape: [c], f64: variance)]
    case .batchNormTrainBackward:
      let s = x[1].shape, v = x[1].doubles, w = x[2].doubles, mean = x[3].doubles, variance = x[4].doubles
      let attrs = BatchNormTrainAttributes(verified: a)
      let c = s[1], inner = s.dropFirst(2).reduce(1, *), m = Double(v.count / Swift.max(c, 1)), eps = attrs.eps
      let inv = variance.map { 1 / ($0 + eps).squareRoot() }
      var dy = x[0].doubles
      if attrs.activation == .relu {
        // The ReLU's gradient: dy where the pre-activation (recomputed) is positive.
        let b = x[5].doubles
        for i in 0..<v.count {
          let ch = (i / inner) % c
          if !((v[i] - mean[ch]) / (variance[ch] + eps).squareRoot() * w[ch] + b[ch] > 0) { dy[i] = 0 }
        }
      }
      var db = [Double](repeating: 0, count: c), dw = db
      for i in 0..<v.count {
        let ch = (i / inner) % c
        db[ch] += dy[i]
        dw[ch] += dy[i] * (v[i] - mean[ch]) * inv[ch]
      }
      let dx = (0..<v.count).map { i -> Double in
        let ch = (i / inner) % c
        let xhat = (v[i] - mean[ch]) * inv[ch]
        return w[ch] * inv[ch] / m * (m * dy[i] - db[ch] - xhat * dw[ch])
      }
      return [Tensor(shape: s, f64: dx), Tensor(shape: [c], f64: dw), Tensor(shape: [c], f64: db)]
    }
  }

  // MARK: Helpers

  /// Calls `body(x index, weight index, y index)` for every product a convolution of an input
  /// of shape `xs` by a weight of shape `ws` into `ys` sums (padding skipped).
  static func convolutionTaps(
    _ xs: [Int], _ ws: [Int], _ ys: [Int], _ geometry: ConvolutionGeometry,
    _ body: (Int, Int, Int) -> Void
  ) {
    let (n, cin, h, wd) = (xs[0], xs[1], xs[2], xs[3])
    let (cout, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3])
    let (oh, ow) = (ys[2], ys[3])
    let s = [geometry.stride.h, geometry.stride.w], p = [geometry.padding.h, geometry.padding.w]
    let d = [geometry.dilation.h, geometry.dilation.w]
    let coutPerGroup = cout / geometry.groups
    for b0 in 0..<n {
      for oc in 0..<cout {
        let g = oc / coutPerGroup
        for oy in 0..<oh {
          for ox in 0..<ow {
            for ic in 0..<cg {
              let c = g * cg + ic
              for ky in 0..<kh {
                let iy = oy * s[0] - p[0] + ky * d[0]
                guard iy >= 0, iy < h else { continue }
                for kx in 0..<kw {
                  let ix = ox * s[1] - p[1] + kx * d[1]
                  guard ix >= 0, ix < wd else { continue }
                  body(
                    ((b0 * cin + c) * h + iy) * wd + ix, ((oc * cg + ic) * kh + ky) * kw + kx,
                    ((b0 * cout + oc) * oh + oy) * ow + ox)
                }
              }
            }
          }
        }
      }
    }
  }

  /// Calls `body(y index, x indices in the window, divisor)` for every pooling window, with
  /// the placement and counts of `pool` (average pooling has no dilation).
  static func poolWindows(
    _ xs: [Int], _ ys: [Int], _ pool: PoolWindow, average: Bool,
    _ body: (Int, [Int], Double) -> Void
  ) {
    let (h, w) = (xs[2], xs[3]), (oh, ow) = (ys[2], ys[3])
    let k = [pool.kernel.h, pool.kernel.w], s = [pool.stride.h, pool.stride.w], p = [pool.padding.h, pool.padding.w]
    let d = [pool.dilation.h, pool.dilation.w]
    let includePad = pool.countIncludePad
    for plane in 0..<(xs[0] * xs[1]) {
      for oy in 0..<oh {
        for ox in 0..<ow {
          let y0 = oy * s[0] - p[0], x0 = ox * s[1] - p[1]
          var window: [Int] = []
          for ky in 0..<k[0] {
            for kx in 0..<k[1] {
              let iy = y0 + ky * d[0], ix = x0 + kx * d[1]
              guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
              window.append((plane * h + iy) * w + ix)
            }
          }
          var count = 1
          if average {
            if includePad {
              count = (Swift.min(y0 + k[0], h + p[0]) - y0) * (Swift.min(x0 + k[1], w + p[1]) - x0)
            } else {
              count = Swift.max(
                (Swift.min(y0 + k[0], h) - Swift.max(y0, 0)) * (Swift.min(x0 + k[1], w) - Swift.max(x0, 0)), 1)
            }
          }
          body((plane * oh + oy) * ow + ox, window, Double(count))
        }
      }
    }
  }

  /// The mean of a row and `1/√(variance + eps)`, the variance biased (divided by the count).
  static func rowStatistics(_ row: ArraySlice<Double>, eps: Double) -> (mean: Double, inverse: Double) {
    let mean = row.reduce(0, +) / Double(row.count)
    let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(row.count)
    return (mean, 1 / (variance + eps).squareRoot())
  }

  /// `[N, C, H, W]` as `[N, C/16, H, W, 16]` (channel `16·b + l` at `[n, b, h, w, l]`).
  static func blocked(_ x: Tensor) -> Tensor {
    let s = x.shape, v = x.doubles, (n, c, plane) = (s[0], s[1], s[2] * s[3])
    var out = [Double](repeating: 0, count: v.count)
    for i in 0..<n {
      for ch in 0..<c {
        for p in 0..<plane { out[((i * (c / 16) + ch / 16) * plane + p) * 16 + ch % 16] = v[(i * c + ch) * plane + p] }
      }
    }
    return Tensor(shape: [n, c / 16, s[2], s[3], 16], f64: out)
  }

  /// A blocked `[N, C/16, H, W, 16]` as `[N, C, H, W]`; a rank-4 tensor as it is.
  static func unblocked(_ x: Tensor) -> Tensor {
    guard x.shape.count == 5 else { return x }
    let s = x.shape, v = x.doubles, (n, c, plane) = (s[0], s[1] * 16, s[2] * s[3])
    var out = [Double](repeating: 0, count: v.count)
    for i in 0..<n {
      for ch in 0..<c {
        for p in 0..<plane { out[(i * c + ch) * plane + p] = v[((i * (c / 16) + ch / 16) * plane + p) * 16 + ch % 16] }
      }
    }
    return Tensor(shape: [n, c, s[2], s[3]], f64: out)
  }

  /// A fused epilogue: `+ residual` (operand 3) then the activation.
  static func epilogue(_ t: Tensor, _ x: [Tensor], _ activation: Activation) -> Tensor {
    var v = t.doubles
    if x.count > 3 { v = zip(v, x[3].doubles).map { $0 + $1 } }
    if activation == .relu { v = v.map { Swift.max($0, 0) } }
    return Tensor(shape: t.shape, f64: v)
  }

  static func strides(_ shape: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: shape.count)
    var acc = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
      s[i] = acc
      acc *= shape[i]
    }
    return s
  }

  /// Advances a multi-index in row-major order.
  static func increment(_ idx: inout [Int], _ shape: [Int]) {
    var d = shape.count - 1
    while d >= 0 {
      idx[d] += 1
      if idx[d] < shape[d] { return }
      idx[d] = 0
      d -= 1
    }
  }

  static func map(_ t: Tensor, _ f: (Double) -> Double) -> Tensor {
    Tensor(shape: t.shape, f64: t.doubles.map(f))
  }

  static func broadcast(_ a: Tensor, _ b: Tensor, _ f: (Double, Double) -> Double) -> Tensor {
    let rank = Swift.max(a.shape.count, b.shape.count)
    let sa = [Int](repeating: 1, count: rank - a.shape.count) + a.shape
    let sb = [Int](repeating: 1, count: rank - b.shape.count) + b.shape
    let shape = zip(sa, sb).map { Swift.max($0, $1) }
    let stA = strides(sa), stB = strides(sb), av = a.doubles, bv = b.doubles
    var idx = [Int](repeating: 0, count: rank)
    let n = shape.reduce(1, *)
    var out = [Double](repeating: 0, count: n)
    for o in 0..<n {
      var ia = 0, ib = 0
      for d in 0..<rank {
        if sa[d] != 1 { ia += idx[d] * stA[d] }
        if sb[d] != 1 { ib += idx[d] * stB[d] }
      }
      out[o] = f(av[ia], bv[ib])
      increment(&idx, shape)
    }
    let result = Tensor(shape: shape, f64: out)
    if a.dtype == .i64 && b.dtype == .i64 { return Tensor(shape: shape, storage: .i64(out.map { Int64($0) })) }
    return result
  }

  /// Calls `body` with the flat indices of every 1-D lane along `axis`.
  static func forEachLane(_ shape: [Int], axis: Int, _ body: ([Int]) -> Void) {
    let inner = shape[(axis + 1)...].reduce(1, *), n = shape[axis]
    let outer = shape[..<axis].reduce(1, *)
    for o in 0..<outer {
      for i in 0..<inner {
        body((0..<n).map { o * n * inner + $0 * inner + i })
      }
    }
  }

  static func gather(_ t: Tensor, axis: Int, picks: [Int]) -> [Double] {
    let s = t.shape, v = t.doubles
    let inner = s[(axis + 1)...].reduce(1, *), n = s[axis], outer = s[..<axis].reduce(1, *)
    var out: [Double] = []
    out.reserveCapacity(outer * picks.count * inner)
    for o in 0..<outer {
      for p in picks { out += v[((o * n + p) * inner)..<((o * n + p + 1) * inner)] }
    }
    return out
  }

  static func reduce(_ t: Tensor, _ a: ReduceAttributes, _ op: Op) -> Tensor {
    let s = t.shape, v = t.doubles
    let axes = a.reducedAxes(rank: s.count)
    let fullShape = s.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
    let n = fullShape.reduce(1, *)
    var out = [Double](repeating: op == .max ? -.infinity : 0, count: n)
    let outStrides = strides(fullShape)
    var idx = [Int](repeating: 0, count: s.count)
    for i in 0..<v.count {
      var o = 0
      for d in 0..<s.count where !axes.contains(d) { o += idx[d] * outStrides[d] }
      out[o] = op == .max ? Swift.max(out[o], v[i]) : out[o] + v[i]
      increment(&idx, s)
    }
    if op == .mean {
      let count = Double(v.count / Swift.max(n, 1))
      out = out.map { $0 / count }
    }
    let shape = a.keepdims ? fullShape : s.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
    if t.dtype == .i64 && op != .mean { return Tensor(shape: shape, storage: .i64(out.map { Int64($0) })) }
    return Tensor(shape: shape, f64: out)
  }

  static func conv2d(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ geometry: ConvolutionGeometry) -> Tensor {
    let (n, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (cout, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
    let s = [geometry.stride.h, geometry.stride.w], p = [geometry.padding.h, geometry.padding.w]
    let d = [geometry.dilation.h, geometry.dilation.w], groups = geometry.groups
    let oh = (h + 2 * p[0] - d[0] * (kh - 1) - 1) / s[0] + 1
    let ow = (wd + 2 * p[1] - d[1] * (kw - 1) - 1) / s[1] + 1
    let xv = x.doubles, wv = w.doubles, bv = b?.doubles
    let coutPerGroup = cout / groups
    var out = [Double](repeating: 0, count: n * cout * oh * ow)
    for b0 in 0..<n {
      for oc in 0..<cout {
        let g = oc / coutPerGroup
        for oy in 0..<oh {
          for ox in 0..<ow {
            var acc = bv?[oc] ?? 0
            for ic in 0..<cg {
              let c = g * cg + ic
              for ky in 0..<kh {
                let iy = oy * s[0] - p[0] + ky * d[0]
                guard iy >= 0, iy < h else { continue }
                for kx in 0..<kw {
                  let ix = ox * s[1] - p[1] + kx * d[1]
                  guard ix >= 0, ix < wd else { continue }
                  acc += xv[((b0 * cin + c) * h + iy) * wd + ix] * wv[((oc * cg + ic) * kh + ky) * kw + kx]
                }
              }
            }
            out[((b0 * cout + oc) * oh + oy) * ow + ox] = acc
          }
        }
      }
    }
    return Tensor(shape: [n, cout, oh, ow], f64: out)
  }

  /// Max or average pooling with PyTorch's window placement (ceil mode drops a last window
  /// that starts in the right padding; average counts padding unless `count_include_pad` is
  /// false, and never counts what lies beyond the padding).
  static func pool(_ x: Tensor, _ pool: PoolWindow, max isMax: Bool) -> Tensor {
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let k = [pool.kernel.h, pool.kernel.w], s = [pool.stride.h, pool.stride.w], p = [pool.padding.h, pool.padding.w]
    let d = [pool.dilation.h, pool.dilation.w]
    let ceilMode = pool.ceilMode, includePad = pool.countIncludePad
    func outSize(_ size: Int, _ i: Int) -> Int {
      let span = d[i] * (k[i] - 1) + 1
      var o = ceilMode ? (size + 2 * p[i] - span + s[i] - 1) / s[i] + 1 : (size + 2 * p[i] - span) / s[i] + 1
      if ceilMode, (o - 1) * s[i] >= size + p[i] { o -= 1 }
      return o
    }
    let oh = outSize(h, 0), ow = outSize(w, 1), xv = x.doubles
    var out = [Double](repeating: 0, count: n * c * oh * ow)
    for plane in 0..<(n * c) {
      for oy in 0..<oh {
        for ox in 0..<ow {
          var acc = isMax ? -Double.infinity : 0
          let y0 = oy * s[0] - p[0], x0 = ox * s[1] - p[1]
          for ky in 0..<k[0] {
            for kx in 0..<k[1] {
              let iy = y0 + ky * d[0], ix = x0 + kx * d[1]
              guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
              let v = xv[(plane * h + iy) * w + ix]
              // A NaN wins, and every later NaN in the window takes its place (PyTorch's
              // `val > maxval || isnan(val)`).
              if isMax { if v > acc || v.isNaN { acc = v } } else { acc += v }
            }
          }
          if !isMax {
            let count: Int
            if includePad {
              let yEnd = Swift.min(y0 + k[0], h + p[0]), xEnd = Swift.min(x0 + k[1], w + p[1])
              count = (yEnd - y0) * (xEnd - x0)
            } else {
              let yA = Swift.max(y0, 0), yB = Swift.min(y0 + k[0], h), xA = Swift.max(x0, 0),
                xB = Swift.min(x0 + k[1], w)
              count = Swift.max((yB - yA) * (xB - xA), 1)
            }
            acc /= Double(count)
          }
          out[(plane * oh + oy) * ow + ox] = acc
        }
      }
    }
    return Tensor(shape: [n, c, oh, ow], f64: out)
  }

  /// PyTorch's LSTM (batch first): gates i, f, g, o from `W_ih x + b_ih + W_hh h + b_hh`;
  /// `c' = σ(f)·c + σ(i)·tanh(g)`, `h' = σ(o)·tanh(c')`; the reverse direction reads the
  /// sequence backwards and its outputs are stored at their time step, after the forward half.
  static func lstm(_ x: [Tensor], hidden h: Int, bidirectional: Bool) -> Tensor {
    let (batch, steps, features) = (x[0].shape[0], x[0].shape[1], x[0].shape[2])
    let xv = x[0].doubles
    let directions = bidirectional ? 2 : 1
    var out = [Double](repeating: 0, count: batch * steps * h * directions)
    for dir in 0..<directions {
      let wih = x[1 + 4 * dir].doubles, whh = x[2 + 4 * dir].doubles
      let bih = x[3 + 4 * dir].doubles, bhh = x[4 + 4 * dir].doubles
      for b in 0..<batch {
        var hs = [Double](repeating: 0, count: h), cs = [Double](repeating: 0, count: h)
        for s in 0..<steps {
          let t = dir == 0 ? s : steps - 1 - s
          var gates = [Double](repeating: 0, count: 4 * h)
          for g in 0..<(4 * h) {
            var acc = bih[g] + bhh[g]
            for k in 0..<features { acc += wih[g * features + k] * xv[(b * steps + t) * features + k] }
            for k in 0..<h { acc += whh[g * h + k] * hs[k] }
            gates[g] = acc
          }
          for j in 0..<h {
            let i = sigmoid(gates[j]), f = sigmoid(gates[h + j])
            let gg = tanh(gates[2 * h + j]), o = sigmoid(gates[3 * h + j])
            cs[j] = f * cs[j] + i * gg
            hs[j] = o * tanh(cs[j])
            out[((b * steps + t) * directions + dir) * h + j] = hs[j]
          }
        }
      }
    }
    return Tensor(shape: [batch, steps, h * directions], f64: out)
  }

  static func sigmoid(_ v: Double) -> Double { 1 / (1 + exp(-v)) }
}

extension ReferenceInterpreter.InputError: KindedError {
  public var errorKind: ErrorKind { .input }
}
