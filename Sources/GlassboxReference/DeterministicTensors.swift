import GlassboxIR

/// Tensors that Swift and the PyTorch reference scripts (`tools/reference/detrand.py`) fill
/// identically, bit for bit, so fixtures need only hold expected outputs, not inputs or
/// weights: a 64-bit LCG seeded from the FNV-1a hash of a name; each element is
/// `u · 2^-k` with `u` uniform on [−1, 1) in steps of 2^-23 (exact in f32).
public enum DeterministicTensors {
  /// FNV-1a, 64-bit, of the UTF-8 bytes.
  public static func seed(_ name: String) -> UInt64 { SplitMix64.fnv1a(name) }

  /// `count` values for `name`: `u · scale` with `scale = 2^-log2Scale`.
  public static func values(_ name: String, count: Int, log2Scale: Int = 0) -> [Float] {
    var state = seed(name)
    let scale = Float(sign: .plus, exponent: -log2Scale, significand: 1)
    return (0..<count).map { _ in
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      let u = Float(Int64(state >> 40) - (1 << 23)) / Float(1 << 23)  // [-1, 1)
      return u * scale
    }
  }

  /// A tensor of the given shape for `name`.
  public static func tensor(_ name: String, shape: [Int], log2Scale: Int = 0) -> Tensor {
    Tensor(shape: shape, f32: values(name, count: shape.reduce(1, *), log2Scale: log2Scale))
  }

  /// A tensor for every input of a graph (`input:NAME`), its symbols taken as 1.
  public static func inputs(of graph: Graph) -> [String: Tensor] {
    var out: [String: Tensor] = [:]
    for id in graph.inputs {
      out[graph[id].name] = tensor("input:" + graph[id].name, shape: graph[id].type.shape.map { $0.staticValue ?? 1 })
    }
    return out
  }

  /// Values for every parameter of a bound graph: weights scaled by about 1/√fan_in (a power
  /// of two), biases by 1/8, BatchNorm variances in [0.5, 1.5), means by 1/8, counts zero.
  public static func parameters(of graph: Graph) -> [String: Tensor] {
    var out: [String: Tensor] = [:]
    for p in graph.parameters {
      let shape = p.type.shape.map { $0.staticValue ?? 1 }
      let n = shape.reduce(1, *)
      if p.type.dtype == .i64 {
        out[p.name] = Tensor(shape: shape, storage: .i64([Int64](repeating: 0, count: n)))
      } else if p.name.hasSuffix("running_var") {
        out[p.name] = Tensor(shape: shape, f32: values(p.name, count: n, log2Scale: 1).map { 1 + $0 })
      } else {
        out[p.name] = tensor(p.name, shape: shape, log2Scale: log2Scale(for: shape))
      }
    }
    return out
  }

  /// k with 2^-k nearest below 1/√fan_in, where fan_in is the product of all but the first axis
  /// (8 for vectors, i.e. scale 1/8).
  public static func log2Scale(for shape: [Int]) -> Int {
    guard shape.count >= 2 else { return 3 }
    let fanIn = shape.dropFirst().reduce(1, *)
    var k = 0
    while (1 << (2 * k)) < fanIn { k += 1 }
    return k
  }
}
