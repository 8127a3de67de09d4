import Foundation
import GlassboxIR

/// t-distributed stochastic neighbour embedding (van der Maaten and Hinton 2008) into two
/// dimensions, following scikit-learn's `TSNE` defaults step for step so that the two can be
/// compared:
///
/// 1. Squared Euclidean distances of the input (one OpenBLAS SGEMM, float32 as scikit-learn).
/// 2. For each point a Gaussian whose precision β is found by binary search (at most 100 steps,
///    |H − log perplexity| ≤ 1e-5, starting at β = 1) so that the conditional distribution
///    p(j|i) has the requested perplexity; P = (p(j|i) + p(i|j)) / Σ, floored at 2^-52.
/// 3. Initial embedding: the first two principal components scaled so that the first has
///    standard deviation 1e-4 (or seeded Gaussian noise of that deviation).
/// 4. Gradient descent on KL(P‖Q) with Student-t Q (one degree of freedom), per-coordinate
///    gains (+0.2 when the gradient changes sign, ×0.8 otherwise, at least 0.01) and momentum:
///    250 iterations with P × early exaggeration (12) and momentum 0.5, then up to the
///    iteration limit (1000) with momentum 0.8; each phase starts with zero velocity and unit
///    gains. Every 50 iterations the KL divergence is checked: a phase stops after 300 (250
///    in the first) iterations without improvement, or when the gradient norm ≤ 1e-7.
///    Learning rate "auto": max(n / early exaggeration / 4, 50).
///
/// Exact: O(n²) memory and time per iteration (a few thousand points); Barnes–Hut
/// (`BarnesHut`): P on nearest neighbours and a quadtree, O(n log n). Deterministic: the same
/// points and configuration give the same embedding, bit for bit.
public struct TSNE: Sendable {
  /// How the embedding starts.
  public enum Initialization: String, Sendable, CaseIterable {
    /// The first two principal components, scaled so the first has deviation 1e-4.
    case pca
    /// Gaussian noise of deviation 1e-4 from the seed.
    case random
  }

  /// Perplexity: roughly the number of neighbours each point attends to (5–50).
  public var perplexity = 30.0
  /// Factor on P during the first phase.
  public var earlyExaggeration = 12.0
  /// Step size; nil is scikit-learn's "auto", max(n / earlyExaggeration / 4, 50).
  public var learningRate: Double? = nil
  /// Total iterations, both phases.
  public var iterations = 1000
  /// Iterations of the first phase (exaggerated, momentum 0.5).
  public var explorationIterations = 250
  /// Iterations without improvement of the KL divergence after which the second phase stops.
  public var iterationsWithoutProgress = 300
  /// Gradient norm at which a phase stops.
  public var minGradientNorm = 1e-7
  /// The starting embedding.
  public var initialization = Initialization.pca
  /// Seed of the random initialisation.
  public var seed: UInt64 = 0
  /// Exact, Barnes–Hut, or exact up to `exactLimit` points and Barnes–Hut above.
  public var method = Method.automatic
  /// Barnes–Hut's accuracy: a quadtree cell of width w at distance d from a point acts as one
  /// body when w / d < angle (scikit-learn's 0.5).
  public var angle = 0.5

  /// How the gradient is computed.
  public enum Method: String, Sendable, CaseIterable {
    /// All pairs: O(n²) per iteration and in memory.
    case exact
    /// P on the 3·perplexity nearest neighbours, repulsion through a quadtree: O(n log n).
    case barnesHut = "barnes_hut"
    /// Exact up to `exactLimit` points.
    case automatic
  }

  /// The largest point count `automatic` embeds exactly.
  public static let exactLimit = 1000

  /// The defaults above.
  public init() {}

  /// What `embed` returns.
  public struct Result: Sendable {
    /// The embedding, `[n, 2]`.
    public var embedding: Points
    /// KL(P‖Q) at the end.
    public var klDivergence: Double
    /// Iterations run (both phases).
    public var iterations: Int
  }

  /// Embeds `points` in two dimensions. As in scikit-learn, the perplexity must be less than
  /// the number of points.
  public func embed(_ points: Points) throws(AnalysisError) -> Result {
    let n = points.count
    guard n >= 2 else { throw AnalysisError("t-SNE needs at least 2 points; found \(n)") }
    guard perplexity > 0, perplexity < Double(n) else {
      throw AnalysisError(
        "t-SNE: perplexity (\(perplexity)) must be positive and less than the number of points (\(n))")
    }
    guard iterations >= explorationIterations, explorationIterations >= 1, earlyExaggeration >= 1 else {
      throw AnalysisError(
        "t-SNE: needs 1 ≤ exploration iterations (\(explorationIterations)) ≤ iterations (\(iterations)) and early exaggeration ≥ 1"
      )
    }
    let useTree: Bool
    switch method {
    case .exact: useTree = false
    case .barnesHut: useTree = true
    case .automatic: useTree = n > TSNE.exactLimit
    }
    var y = initialization == .pca ? TSNE.principalComponents(points) : TSNE.gaussian(count: 2 * n, seed: seed)
    let rate = learningRate ?? max(Double(n) / earlyExaggeration / 4, 50)
    var exaggeration = earlyExaggeration
    let objective: (_ y: [Double], _ grad: inout [Double], _ computeError: Bool) -> Double?
    if useTree {
      let p = SparseJointProbabilities(points, perplexity: perplexity)
      let angle = self.angle
      objective = { y, grad, computeError in
        BarnesHut.gradient(
          p: p, exaggeration: exaggeration, y: y, count: n, angle: angle, grad: &grad, computeError: computeError)
      }
    } else {
      let distances = Distances.squared(points).map { Double(Float($0)) }
      let p = TSNE.jointProbabilities(distances: distances, count: n, perplexity: perplexity)
      var num = [Double](repeating: 0, count: n * n)
      objective = { y, grad, computeError in
        TSNE.gradient(
          p: p, exaggeration: exaggeration, y: y, count: n, num: &num, grad: &grad, computeError: computeError)
      }
    }
    var phase = descend(
      objective, y: &y, count: n, from: 0, to: explorationIterations, momentum: 0.5, rate: rate,
      patience: explorationIterations)
    exaggeration = 1
    if phase.last < explorationIterations || iterations > explorationIterations {
      phase = descend(
        objective, y: &y, count: n, from: phase.last + 1, to: iterations, momentum: 0.8, rate: rate,
        patience: iterationsWithoutProgress)
    }
    return Result(
      embedding: try Points(count: n, dimensions: 2, values: y), klDivergence: phase.error, iterations: phase.last + 1)
  }

  /// Gradient descent with momentum and gains over iterations `start..<end` (scikit-learn's
  /// `_gradient_descent`). Returns the last iteration run and the last KL divergence.
  func descend(
    _ objective: (_ y: [Double], _ grad: inout [Double], _ computeError: Bool) -> Double?,
    y: inout [Double], count n: Int, from start: Int, to end: Int, momentum: Double,
    rate: Double, patience: Int
  ) -> (last: Int, error: Double) {
    var update = [Double](repeating: 0, count: 2 * n)
    var gains = [Double](repeating: 1, count: 2 * n)
    var grad = [Double](repeating: 0, count: 2 * n)
    var error = Double.greatestFiniteMagnitude, bestError = Double.greatestFiniteMagnitude
    var bestIteration = start, i = start
    let checkEvery = 50
    var iteration = start
    while iteration < end {
      i = iteration
      let check = (iteration + 1) % checkEvery == 0
      let kl = objective(y, &grad, check || iteration == end - 1)
      if let kl { error = kl }
      for k in 0..<(2 * n) {
        if update[k] * grad[k] < 0 { gains[k] += 0.2 } else { gains[k] *= 0.8 }
        gains[k] = max(gains[k], 0.01)
        grad[k] *= gains[k]
        update[k] = momentum * update[k] - rate * grad[k]
        y[k] += update[k]
      }
      if check {
        let norm = grad.reduce(0) { $0 + $1 * $1 }.squareRoot()
        if error < bestError {
          bestError = error
          bestIteration = iteration
        } else if iteration - bestIteration > patience {
          break
        }
        if norm <= minGradientNorm { break }
      }
      iteration += 1
    }
    return (i, error)
  }

  /// The KL gradient 4 Σ_j (p_ij − q_ij)(1 + |y_i − y_j|²)⁻¹ (y_i − y_j) into `grad`, and
  /// KL(P‖Q) when asked. `p` is the full symmetric `[n, n]` matrix; `num` is scratch `[n, n]`.
  static func gradient(
    p: [Double], exaggeration: Double, y: [Double], count n: Int, num: inout [Double],
    grad: inout [Double], computeError: Bool
  ) -> Double? {
    let eps = Double.ulpOfOne
    var sum = 0.0
    // Upper triangle only: num[i·n + j] for j > i; each pair's force acts on both points.
    num.withUnsafeMutableBufferPointer { w in
      y.withUnsafeBufferPointer { y in
        for i in 0..<n {
          let xi = y[2 * i], yi = y[2 * i + 1]
          for j in (i + 1)..<max(n, i + 1) {
            let dx = xi - y[2 * j], dy = yi - y[2 * j + 1]
            let v = 1 / (1 + dx * dx + dy * dy)
            w[i * n + j] = v
            sum += v
          }
        }
      }
    }
    sum *= 2
    var kl = 0.0
    let inverse = 1 / sum
    p.withUnsafeBufferPointer { p in
      num.withUnsafeBufferPointer { w in
        y.withUnsafeBufferPointer { y in
          grad.withUnsafeMutableBufferPointer { g in
            for k in 0..<(2 * n) { g[k] = 0 }
            for i in 0..<n {
              var gx = 0.0, gy = 0.0
              let xi = y[2 * i], yi = y[2 * i + 1]
              for j in (i + 1)..<max(n, i + 1) {
                let v = w[i * n + j]
                let q = max(v * inverse, eps)
                let pij = p[i * n + j] * exaggeration
                let m = (pij - q) * v
                let fx = m * (xi - y[2 * j]), fy = m * (yi - y[2 * j + 1])
                gx += fx
                gy += fy
                g[2 * j] -= fx
                g[2 * j + 1] -= fy
                if computeError { kl += 2 * pij * Foundation.log(max(pij, eps) / q) }
              }
              g[2 * i] += gx
              g[2 * i + 1] += gy
            }
            for k in 0..<(2 * n) { g[k] *= 4 }
          }
        }
      }
    }
    return computeError ? kl : nil
  }

  /// Symmetric joint probabilities `[n, n]` (diagonal 0) from squared distances, with each
  /// point's Gaussian precision found by binary search for the perplexity.
  static func jointProbabilities(distances: [Double], count n: Int, perplexity: Double) -> [Double] {
    let conditional = conditionalProbabilities(distances: distances, count: n, perplexity: perplexity)
    var p = [Double](repeating: 0, count: n * n)
    var total = 0.0
    for i in 0..<n {
      for j in 0..<n where j != i {
        let v = conditional[i * n + j] + conditional[j * n + i]
        p[i * n + j] = v
        total += v
      }
    }
    total = max(total, Double.ulpOfOne)
    for i in 0..<n { for j in 0..<n where j != i { p[i * n + j] = max(p[i * n + j] / total, Double.ulpOfOne) } }
    return p
  }

  /// p(j|i) `[n, n]` by scikit-learn's `_binary_search_perplexity` over all points.
  static func conditionalProbabilities(distances: [Double], count n: Int, perplexity: Double) -> [Double] {
    var p = [Double](repeating: 0, count: n * n)
    let target = Foundation.log(perplexity)
    for i in 0..<n {
      var beta = 1.0, low = -Double.infinity, high = Double.infinity
      let row = i * n
      for _ in 0..<100 {
        var sumP = 0.0
        for j in 0..<n where j != i {
          let v = Foundation.exp(-distances[row + j] * beta)
          p[row + j] = v
          sumP += v
        }
        if sumP == 0 { sumP = Double(Float(1e-8)) }
        var sumDP = 0.0
        for j in 0..<n {
          p[row + j] /= sumP
          sumDP += distances[row + j] * p[row + j]
        }
        let entropy = Foundation.log(sumP) + beta * sumDP
        let diff = entropy - target
        if abs(diff) <= Double(Float(1e-5)) { break }
        if diff > 0 {
          low = beta
          beta = high == .infinity ? beta * 2 : (beta + high) / 2
        } else {
          high = beta
          beta = low == -.infinity ? beta / 2 : (beta + low) / 2
        }
      }
    }
    return p
  }

  /// The first two principal components of `points`, `[n, 2]` row-major, scaled so that the
  /// first column has (population) standard deviation 1e-4. Components come from power
  /// iteration on the covariance with deflation; each is signed so that its largest loading is
  /// positive (scikit-learn's `svd_flip`).
  static func principalComponents(_ points: Points) -> [Double] {
    let n = points.count, d = points.dimensions
    var mean = [Double](repeating: 0, count: d)
    for i in 0..<n { for j in 0..<d { mean[j] += points[i, j] } }
    for j in 0..<d { mean[j] /= Double(n) }
    var centred = points.values
    for i in 0..<n { for j in 0..<d { centred[i * d + j] -= mean[j] } }
    var covariance = [Double](repeating: 0, count: d * d)
    for i in 0..<n {
      for a in 0..<d {
        let xa = centred[i * d + a]
        if xa == 0 { continue }
        for b in a..<d { covariance[a * d + b] += xa * centred[i * d + b] }
      }
    }
    for a in 0..<d { for b in 0..<a { covariance[a * d + b] = covariance[b * d + a] } }

    var components: [[Double]] = []
    for c in 0..<min(2, d) {
      // A fixed start that is not orthogonal to a generic eigenvector.
      var v = (0..<d).map { 1 + Double(($0 * 7 + c * 3) % 11) / 10 }
      for _ in 0..<2000 {
        var w = [Double](repeating: 0, count: d)
        for a in 0..<d {
          var s = 0.0
          for b in 0..<d { s += covariance[a * d + b] * v[b] }
          w[a] = s
        }
        for u in components {  // deflate: stay orthogonal to components found
          let dot = zip(w, u).reduce(0) { $0 + $1.0 * $1.1 }
          for a in 0..<d { w[a] -= dot * u[a] }
        }
        let norm = w.reduce(0) { $0 + $1 * $1 }.squareRoot()
        guard norm > 0 else { break }
        for a in 0..<d { w[a] /= norm }
        let change = zip(w, v).reduce(0) { $0 + abs($1.0 - $1.1) }
        v = w
        if change < 1e-12 { break }
      }
      if let big = v.indices.max(by: { abs(v[$0]) < abs(v[$1]) }), v[big] < 0 { v = v.map { -$0 } }
      components.append(v)
    }
    while components.count < 2 { components.append([Double](repeating: 0, count: d)) }
    var y = [Double](repeating: 0, count: 2 * n)
    for i in 0..<n {
      for c in 0..<2 {
        var s = 0.0
        for j in 0..<d { s += centred[i * d + j] * components[c][j] }
        y[2 * i + c] = Double(Float(s))
      }
    }
    let column = (0..<n).map { y[2 * $0] }
    let m = column.reduce(0, +) / Double(n)
    let deviation = (column.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(n)).squareRoot()
    if deviation > 0 { for k in y.indices { y[k] = y[k] / deviation * 1e-4 } }
    return y
  }

  /// `count` Gaussian numbers of deviation 1e-4 from `seed` (SplitMix64 and Box–Muller).
  static func gaussian(count: Int, seed: UInt64) -> [Double] {
    var generator = SplitMix64(seed: seed)
    /// Uniform on (0, 1): the top 53 bits of a draw, centred in their interval (never 0 for the log).
    func next() -> Double { (Double(generator.next() >> 11) + 0.5) / Double(1 << 53) }
    var out: [Double] = []
    out.reserveCapacity(count + 1)
    while out.count < count {
      let r = (-2 * Foundation.log(next())).squareRoot(), t = 2 * Double.pi * next()
      out.append(1e-4 * r * Foundation.cos(t))
      out.append(1e-4 * r * Foundation.sin(t))
    }
    return Array(out.prefix(count))
  }
}
