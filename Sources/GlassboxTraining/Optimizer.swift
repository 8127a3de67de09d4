import Foundation
import GlassboxRuntime

/// Parameter updates with PyTorch's semantics (`torch.optim.SGD`, `torch.optim.Adam`,
/// `torch.optim.AdamW`, single-tensor code paths, float32 tensors and Double scalars), applied
/// in place to flat f32 buffers.
///
/// State per parameter (by name, same element count as the parameter):
/// - SGD with momentum: `momentum_buffer` (absent until the first step, as in PyTorch);
/// - Adam/AdamW: `exp_avg` and `exp_avg_sq`, and the shared step count `step`.
public struct OptimizerSettings: Sendable, Equatable {
  /// The update rule.
  public enum Kind: String, Sendable, CaseIterable {
    /// SGD with momentum (dampening 0, no Nesterov) and L2 weight decay added to the gradient.
    case sgd
    /// Adam with L2 weight decay added to the gradient.
    case adam
    /// Adam with decoupled weight decay (`p ← p·(1 − lr·wd)` before the update).
    case adamw
  }

  public var kind: Kind
  /// Momentum factor of SGD (0: plain SGD).
  public var momentum: Double
  /// L2 (SGD, Adam) or decoupled (AdamW) weight-decay factor.
  public var weightDecay: Double
  /// Adam's β₁, β₂ and ε.
  public var beta1: Double
  public var beta2: Double
  public var epsilon: Double

  /// Settings with PyTorch's defaults for the other fields (β = (0.9, 0.999), ε = 1e-8).
  public init(
    kind: Kind, momentum: Double = 0, weightDecay: Double = 0, beta1: Double = 0.9,
    beta2: Double = 0.999, epsilon: Double = 1e-8
  ) {
    self.kind = kind
    self.momentum = momentum
    self.weightDecay = weightDecay
    self.beta1 = beta1
    self.beta2 = beta2
    self.epsilon = epsilon
  }
}

/// An optimizer and its state. `update` changes one parameter in place from its gradient; call
/// `beginStep()` once per training step before the parameters' updates (Adam's step count).
///
/// Element-wise arithmetic follows ATen's CPU kernels: `add(…, alpha)` and `lerp` are fused
/// multiply-adds, so results agree with PyTorch to the last bit or two.
public struct Optimizer: Sendable {
  public var settings: OptimizerSettings
  /// Steps begun so far (Adam's bias-correction `t`).
  public private(set) var stepCount: Int = 0
  /// Per-parameter state buffers: `name` → slots (`momentum_buffer`; or `exp_avg`, `exp_avg_sq`).
  public private(set) var state: [String: [String: [Float]]] = [:]

  public init(_ settings: OptimizerSettings) {
    self.settings = settings
  }

  /// Starts a step: Adam's `t` becomes `stepCount + 1`.
  public mutating func beginStep() { stepCount += 1 }

  /// Updates `parameter` in place from `gradient` with learning rate `learningRate`.
  /// Both hold the same number of elements (checked by the caller; a mismatch traps).
  ///
  /// One pass over the elements, the state buffers updated where they are stored (taken out of
  /// `state` for the pass, so that no copy is made), split over `threads` cores for large
  /// parameters: each element's arithmetic is the same whichever core does it.
  public mutating func update(
    _ name: String, parameter: inout [Float], gradient: [Float], learningRate: Double,
    threads: Int = 1
  ) {
    precondition(
      parameter.count == gradient.count,
      "optimizer: '\(name)' has \(parameter.count) elements but its gradient \(gradient.count)")
    let n = parameter.count
    let lr = Float(learningRate)
    let wd = Float(settings.weightDecay)
    var slots = state.removeValue(forKey: name) ?? [:]
    defer { if !slots.isEmpty { state[name] = slots } }
    switch settings.kind {
    case .sgd:
      // d = g + wd·p; buf = d (first step) or momentum·buf + d; p -= lr·buf.
      let m = Float(settings.momentum)
      let first = slots["momentum_buffer"] == nil
      var buffer = m == 0 ? [] : slots.removeValue(forKey: "momentum_buffer") ?? [Float](repeating: 0, count: n)
      buffer.withUnsafeMutableBufferPointer { b in
        parameter.withUnsafeMutableBufferPointer { p in
          gradient.withUnsafeBufferPointer { g in
            guard let p = p.baseAddress, let g = g.baseAddress else { return }
            UpdateKernels.sgd(
              parameter: p, gradient: g, buffer: m == 0 ? nil : b.baseAddress, count: n, momentum: m,
              first: first, decay: wd, rate: lr, threads: threads)
          }
        }
      }
      if m != 0 { slots["momentum_buffer"] = buffer }
    case .adam, .adamw:
      let t = Double(max(stepCount, 1))
      var m = slots.removeValue(forKey: "exp_avg") ?? [Float](repeating: 0, count: n)
      var v = slots.removeValue(forKey: "exp_avg_sq") ?? [Float](repeating: 0, count: n)
      let step = UpdateKernels.AdamStep(
        coupledDecay: settings.kind == .adam ? wd : 0,
        decoupledScale: settings.kind == .adamw && wd != 0 ? Float(1 - learningRate * settings.weightDecay) : nil,
        oneMinusBeta1: Float(1 - settings.beta1), beta2: Float(settings.beta2),
        oneMinusBeta2: Float(1 - settings.beta2),
        stepSize: Float(learningRate / (1 - pow(settings.beta1, t))),
        biasCorrection2Sqrt: Float((1 - pow(settings.beta2, t)).squareRoot()), epsilon: Float(settings.epsilon))
      m.withUnsafeMutableBufferPointer { m in
        v.withUnsafeMutableBufferPointer { v in
          gradient.withUnsafeBufferPointer { g in
            parameter.withUnsafeMutableBufferPointer { p in
              guard let p = p.baseAddress, let g = g.baseAddress, let m = m.baseAddress, let v = v.baseAddress else {
                return
              }
              UpdateKernels.adam(parameter: p, gradient: g, m: m, v: v, count: n, step, threads: threads)
            }
          }
        }
      }
      slots["exp_avg"] = m
      slots["exp_avg_sq"] = v
    }
  }

  /// The state as flat named buffers (`name/slot`) plus the step count, for checkpoints.
  public var snapshot: (stepCount: Int, buffers: [(name: String, values: [Float])]) {
    var out: [(String, [Float])] = []
    for name in state.keys.sorted() {
      for slot in state[name, default: [:]].keys.sorted() { out.append((name + "/" + slot, state[name]![slot]!)) }
    }
    return (stepCount, out)
  }

  /// Restores what `snapshot` returned.
  public mutating func restore(stepCount: Int, buffers: [(name: String, values: [Float])]) {
    self.stepCount = stepCount
    state = [:]
    for (key, values) in buffers {
      guard let slash = key.lastIndex(of: "/") else { continue }
      state[String(key[..<slash]), default: [:]][String(key[key.index(after: slash)...])] = values
    }
  }
}
