/// How far an embedding keeps local structure (Venna and Kaski 2001), with the semantics of
/// `sklearn.manifold.trustworthiness(X, Y, n_neighbors=k)`:
///
///     T(k) = 1 − 2 / (n·k·(2n − 3k − 1)) · Σ_i Σ_{j ∈ N_k(i)} max(0, r(i, j) − k)
///
/// where `N_k(i)` are the k nearest neighbours of point i in the embedding (i itself excluded)
/// and `r(i, j)` is the rank of j among i's neighbours in the input space (1 = nearest). 1 means
/// every embedded neighbour is a true neighbour; unexpected neighbours cost by how far they
/// really are. Distances are Euclidean, summed in Float64; equal distances rank by index.
public enum Trustworthiness {
  /// T(k) of `embedding` for `input` (the same points, in the same order). Needs
  /// 1 ≤ k < n/2, as scikit-learn does, so that T lies in [0, 1].
  public static func score(input: Points, embedding: Points, neighbors k: Int = 5) throws(AnalysisError) -> Double {
    let n = input.count
    guard embedding.count == n else {
      throw AnalysisError("trustworthiness: \(n) input points but \(embedding.count) embedded points")
    }
    guard k >= 1, Double(k) < Double(n) / 2 else {
      throw AnalysisError(
        "trustworthiness: n_neighbors (\(k)) should be at least 1 and less than n_samples / 2 (\(Double(n) / 2))")
    }
    let high = Distances.exactSquared(input)
    let low = Distances.exactSquared(embedding)
    var penalty = 0.0
    for i in 0..<n {
      let row = i * n
      for j in nearest(k, excluding: i, count: n, distance: { low[row + $0] }) {
        // Rank of j in the input space: how many points are nearer to i than j is (ties by
        // index), plus one.
        let dij = high[row + j]
        var rank = 1
        for l in 0..<n where l != i {
          let dil = high[row + l]
          if dil < dij || (dil == dij && l < j) { rank += 1 }
        }
        if rank > k { penalty += Double(rank - k) }
      }
    }
    let nd = Double(n), kd = Double(k)
    return 1 - penalty * (2 / (nd * kd * (2 * nd - 3 * kd - 1)))
  }

  /// The `k` nearest of points `0..<n` other than `i` by `distance(j)`, nearest first, equal
  /// distances by index.
  static func nearest(_ k: Int, excluding i: Int, count n: Int, distance: (Int) -> Double) -> [Int] {
    var best: [(Double, Int)] = []
    best.reserveCapacity(k + 1)
    for j in 0..<n where j != i {
      let d = distance(j)
      if best.count == k, let last = best.last, !(d < last.0) { continue }
      // Insert keeping order; equal distances keep index order since j increases.
      var p = best.count
      while p > 0 && d < best[p - 1].0 { p -= 1 }
      best.insert((d, j), at: p)
      if best.count > k { best.removeLast() }
    }
    return best.map(\.1)
  }
}
