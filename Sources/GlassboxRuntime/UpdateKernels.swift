/// The optimizers' element loops, over flat f32 buffers (GlassboxTraining's `Optimizer` keeps
/// their state and semantics). They live here to be compiled with the runtime's flags:
/// elsewhere `addingProduct` is a call to libm's `fmaf` per element and nothing vectorises, and
/// an update of a large model's parameters is then slower on two cores than a vectorised loop
/// on one. Each element's arithmetic is the same whichever core runs it.
public enum UpdateKernels {
  /// SGD over `count` elements: `d = g + decay·p`; with a momentum buffer `b`, `b = d` (the
  /// first step) or `momentum·b + d`, then `p -= rate·b`; without, `p -= rate·d`. One loop per
  /// case, so that each vectorises.
  public static func sgd(
    parameter p: UnsafeMutablePointer<Float>, gradient g: UnsafePointer<Float>,
    buffer b: UnsafeMutablePointer<Float>?, count: Int, momentum m: Float, first: Bool,
    decay wd: Float, rate lr: Float, threads: Int
  ) {
    split(p, count: count, threads: threads) { p, range in
      switch (b, first, wd != 0) {
      case (nil, _, false): for i in range { p[i] = p[i].plusProduct(-lr, g[i]) }
      case (nil, _, true): for i in range { p[i] = p[i].plusProduct(-lr, g[i].plusProduct(wd, p[i])) }
      case (let b?, true, false):
        for i in range { b[i] = g[i]; p[i] = p[i].plusProduct(-lr, b[i]) }
      case (let b?, true, true):
        for i in range { b[i] = g[i].plusProduct(wd, p[i]); p[i] = p[i].plusProduct(-lr, b[i]) }
      case (let b?, false, false):
        for i in range { b[i] = b[i] * m + g[i]; p[i] = p[i].plusProduct(-lr, b[i]) }
      case (let b?, false, true):
        for i in range { b[i] = b[i] * m + g[i].plusProduct(wd, p[i]); p[i] = p[i].plusProduct(-lr, b[i]) }
      }
    }
  }

  /// Adam's constants for one step (the caller derives them from β, ε, the learning rate,
  /// the step count and the weight decay).
  public struct AdamStep: Sendable {
    /// L2 decay added to the gradient (Adam), or 0.
    public var coupledDecay: Float
    /// `1 − lr·wd` the parameter is scaled by first (AdamW), or nil.
    public var decoupledScale: Float?
    public var oneMinusBeta1: Float, beta2: Float, oneMinusBeta2: Float
    /// `lr / (1 − β₁ᵗ)` and `√(1 − β₂ᵗ)`.
    public var stepSize: Float, biasCorrection2Sqrt: Float
    public var epsilon: Float

    public init(
      coupledDecay: Float, decoupledScale: Float?, oneMinusBeta1: Float, beta2: Float, oneMinusBeta2: Float,
      stepSize: Float, biasCorrection2Sqrt: Float, epsilon: Float
    ) {
      self.coupledDecay = coupledDecay
      self.decoupledScale = decoupledScale
      self.oneMinusBeta1 = oneMinusBeta1
      self.beta2 = beta2
      self.oneMinusBeta2 = oneMinusBeta2
      self.stepSize = stepSize
      self.biasCorrection2Sqrt = biasCorrection2Sqrt
      self.epsilon = epsilon
    }
  }

  /// Adam (AdamW) over `count` elements with moments `m` and `v`, as PyTorch's single-tensor
  /// path: `exp_avg.lerp_(g, 1 − β₁)`, `exp_avg_sq.mul_(β₂).addcmul_(g, g, 1 − β₂)`,
  /// `p += −stepSize · m / (√v / √(1 − β₂ᵗ) + ε)`.
  public static func adam(
    parameter p: UnsafeMutablePointer<Float>, gradient g: UnsafePointer<Float>,
    m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, count: Int, _ s: AdamStep,
    threads: Int
  ) {
    split(p, count: count, threads: threads) { p, range in
      for i in range {
        if let scale = s.decoupledScale { p[i] = p[i] * scale }
        let gi = s.coupledDecay != 0 ? g[i].plusProduct(s.coupledDecay, p[i]) : g[i]
        m[i] = m[i].plusProduct(s.oneMinusBeta1, gi - m[i])
        v[i] = v[i] * s.beta2 + s.oneMinusBeta2 * (gi * gi)
        let denom = v[i].squareRoot() / s.biasCorrection2Sqrt + s.epsilon
        p[i] = p[i] + (-s.stepSize) * (m[i] / denom)
      }
    }
  }

  /// `body` over `0..<count` on up to `threads` cores when there are at least 2^16 elements.
  @inline(__always)
  static func split(
    _ p: UnsafeMutablePointer<Float>, count: Int, threads: Int,
    _ body: (UnsafeMutablePointer<Float>, Range<Int>) -> Void
  ) {
    splitOverCores(p, count: count, threads: threads, worthIt: count >= 1 << 16, body)
  }
}
