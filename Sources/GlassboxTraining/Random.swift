import GlassboxIR

/// The trainer's one source of randomness (shuffles, dropout masks) is `SplitMix64`, its state
/// stored in checkpoints; these draws are the trainer's.
extension SplitMix64 {
  /// A generator for one purpose of one run: `seed` mixed with a stream number and indices
  /// (e.g. `(seed, stream: 1, epoch, step)`), so any epoch's draws are reproducible on their own.
  public init(seed: UInt64, stream: UInt64, _ indices: Int...) {
    var g = SplitMix64(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03))
    for i in indices { g.state ^= g.next() &+ UInt64(bitPattern: Int64(i)) }
    self.init(seed: g.next())
  }

  /// A uniform Float in [0, 1) with 24 random bits.
  public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * 0x1p-24 }

  /// A uniform integer in 0..<bound (bound > 0), by rejection: no modulo bias.
  public mutating func next(below bound: Int) -> Int {
    let b = UInt64(bound)
    let limit = UInt64.max - UInt64.max % b
    while true {
      let x = next()
      if x < limit { return Int(x % b) }
    }
  }
}

/// Example orders and dropout masks, each a pure function of the seed and its indices.
public enum Sampling {
  /// The order of `count` examples in `epoch`: a Fisher–Yates shuffle from (seed, epoch).
  public static func order(count: Int, seed: UInt64, epoch: Int) -> [Int] {
    var order = Array(0..<count)
    var g = SplitMix64(seed: seed, stream: 1, epoch)
    if count > 1 {
      for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, g.next(below: i + 1)) }
    }
    return order
  }

  /// Consecutive mini-batches of `order`: full batches of `batchSize`; the last, shorter one is
  /// kept only when `keepPartial` (training drops it so every step has the compiled batch size).
  public static func batches(_ order: [Int], batchSize: Int, keepPartial: Bool) -> [ArraySlice<Int>] {
    var out: [ArraySlice<Int>] = []
    var start = 0
    while start < order.count {
      let end = min(start + batchSize, order.count)
      if end - start == batchSize || keepPartial { out.append(order[start..<end]) }
      start = end
    }
    return out
  }

  /// An inverted-dropout mask: each element 1/(1 − p) with probability 1 − p, else 0
  /// (PyTorch's `F.dropout` in training), drawn from (seed, epoch, step, mask index).
  public static func dropoutMask(count: Int, p: Double, seed: UInt64, epoch: Int, step: Int, index: Int) -> [Float] {
    guard p > 0 else { return [Float](repeating: 1, count: count) }
    guard p < 1 else { return [Float](repeating: 0, count: count) }
    var g = SplitMix64(seed: seed, stream: 2, epoch, step, index)
    let keep = Float(1 / (1 - p)), threshold = Float(p)
    var mask = [Float](repeating: 0, count: count)
    for i in 0..<count where g.nextUnitFloat() >= threshold { mask[i] = keep }
    return mask
  }
}
