import Foundation

/// A learning rate per epoch, as PyTorch's schedulers compute it when `scheduler.step()` is
/// called once at the end of each epoch (epoch 0 uses the base rate).
public enum LearningRateSchedule: Sendable, Equatable {
  /// The base rate throughout.
  case constant
  /// `StepLR`: base · γ^⌊epoch / stepSize⌋.
  case step(every: Int, gamma: Double)
  /// `CosineAnnealingLR`: η_min + (base − η_min)·(1 + cos(π·epoch / T_max)) / 2.
  case cosine(tMax: Int, minimum: Double)

  /// The learning rate of `epoch` (0-based) for base rate `base`.
  public func rate(epoch: Int, base: Double) -> Double {
    switch self {
    case .constant:
      return base
    case .step(let every, let gamma):
      return base * pow(gamma, Double(epoch / max(every, 1)))
    case .cosine(let tMax, let minimum):
      return minimum + (base - minimum) * (1 + cos(Double.pi * Double(epoch) / Double(max(tMax, 1)))) / 2
    }
  }
}

/// `torch.nn.utils.clip_grad_norm_` (L2, `error_if_nonfinite` false): scales every gradient
/// by min(1, maxNorm / (‖g‖₂ + 1e-6)) where ‖g‖₂ is the norm over all gradients together.
/// Returns the total norm before clipping.
@discardableResult
public func clipGradientNorm(_ gradients: inout [[Float]], maxNorm: Double) -> Double {
  // PyTorch: the norm of the per-tensor norms, each computed in float32.
  var squares = 0.0
  for g in gradients {
    var s: Double = 0
    g.withUnsafeBufferPointer { g in for x in g { s += Double(x) * Double(x) } }
    let norm = Float(s.squareRoot())
    squares += Double(norm) * Double(norm)
  }
  let total = Double(Float(squares.squareRoot()))
  let coefficient = Float(min(1, Double(Float(maxNorm) / Float(total + 1e-6))))
  for i in gradients.indices {
    gradients[i].withUnsafeMutableBufferPointer { g in for j in g.indices { g[j] *= coefficient } }
  }
  return total
}

/// PyTorch's batch-norm running-statistics update in training mode (momentum 0.1 by default):
/// running_mean ← (1 − m)·running_mean + m·mean; running_var ← (1 − m)·running_var +
/// m·var·n/(n − 1) (the unbiased batch variance; `n` is the count of values per channel, N·H·W);
/// num_batches_tracked += 1 (done by the caller, it is i64).
///
/// `batchVariance` is the biased (divide-by-n) variance the forward pass normalised with.
public func updateRunningStatistics(
  runningMean: inout [Float], runningVariance: inout [Float],
  batchMean: [Float], batchVariance: [Float], count: Int,
  momentum: Double = 0.1
) {
  let m = Float(momentum), keep = Float(1 - momentum)
  let correction = count > 1 ? Float(Double(count) / Double(count - 1)) : 1
  for c in runningMean.indices {
    runningMean[c] = keep * runningMean[c] + m * batchMean[c]
    runningVariance[c] = keep * runningVariance[c] + m * (batchVariance[c] * correction)
  }
}
