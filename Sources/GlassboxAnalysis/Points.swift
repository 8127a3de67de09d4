import GlassboxIR
import GlassboxRuntime

/// A set of points as a row-major matrix: `values[i * dimensions + j]` is coordinate j of
/// point i, so `values.count == count * dimensions`.
public struct Points: Sendable, Equatable {
  /// How many points.
  public var count: Int
  /// Coordinates per point.
  public var dimensions: Int
  /// Row-major coordinates, `[count, dimensions]`.
  public var values: [Double]

  /// Points from a row-major array; `values.count` must be `count * dimensions`.
  public init(count: Int, dimensions: Int, values: [Double]) throws(AnalysisError) {
    guard count >= 0, dimensions >= 1, values.count == count * dimensions else {
      throw AnalysisError("points: \(values.count) values do not fill \(count) points of \(dimensions) dimensions")
    }
    guard values.allSatisfy(\.isFinite) else {
      throw AnalysisError("points: \(values.filter { !$0.isFinite }.count) coordinates are not finite")
    }
    self.count = count
    self.dimensions = dimensions
    self.values = values
  }

  /// Points from rows of equal length.
  public init(rows: [[Double]]) throws(AnalysisError) {
    let d = rows.first?.count ?? 1
    guard rows.allSatisfy({ $0.count == d }) else { throw AnalysisError("points: rows have different lengths") }
    try self.init(count: rows.count, dimensions: d, values: rows.flatMap { $0 })
  }

  /// Coordinate `j` of point `i`.
  @inline(__always)
  public subscript(i: Int, j: Int) -> Double { values[i * dimensions + j] }

  /// Point `i` as an array.
  public func row(_ i: Int) -> [Double] { Array(values[(i * dimensions)..<((i + 1) * dimensions)]) }
}

/// A problem with what an analysis was given (too few points, a bad option), stated in full.
public struct AnalysisError: Error, Sendable, Equatable, CustomStringConvertible {
  /// The message.
  public var description: String

  /// An error with `description`.
  public init(_ description: String) { self.description = description }
}

/// Pairwise squared Euclidean distances.
enum Distances {
  /// `[n, n]` squared distances, row-major, computed as |x|² + |y|² − 2·x·y with the Gram
  /// matrix from one OpenBLAS SGEMM (single precision, as scikit-learn's t-SNE casts its
  /// distances to float32 too); negatives from rounding are clamped to 0 and the diagonal is 0.
  /// Falls back to a plain Float64 loop when OpenBLAS is missing.
  static func squared(_ x: Points) -> [Double] {
    let n = x.count, d = x.dimensions
    var out = [Double](repeating: 0, count: n * n)
    guard n > 0 else { return out }
    var norms = [Double](repeating: 0, count: n)
    for i in 0..<n {
      var s = 0.0
      for j in 0..<d { s += x[i, j] * x[i, j] }
      norms[i] = s
    }
    if (try? BLAS.ensureLoaded()) != nil {
      // Float32 copies: A = X [n, d], B = Xᵀ [d, n]; C = A·B [n, n].
      let a = x.values.map(Float.init)
      var b = [Float](repeating: 0, count: d * n)
      for i in 0..<n { for j in 0..<d { b[j * n + i] = a[i * d + j] } }
      var gram = [Float](repeating: 0, count: n * n)
      a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
          gram.withUnsafeMutableBufferPointer { pc in
            if let a = pa.baseAddress, let b = pb.baseAddress, let c = pc.baseAddress {
              BLAS.sgemm(m: n, n: n, k: d, a: a, b: b, c: c)
            }
          }
        }
      }
      for i in 0..<n {
        for j in 0..<n where j != i {
          out[i * n + j] = max(0, norms[i] + norms[j] - 2 * Double(gram[i * n + j]))
        }
      }
    } else {
      out = exactSquared(x)
    }
    return out
  }

  /// `[n, n]` squared distances summed in Float64, difference by difference (no cancellation):
  /// what ranking neighbours needs.
  static func exactSquared(_ x: Points) -> [Double] {
    let n = x.count, d = x.dimensions
    var out = [Double](repeating: 0, count: n * n)
    x.values.withUnsafeBufferPointer { v in
      for i in 0..<n {
        for j in (i + 1)..<max(n, i + 1) {
          var s = 0.0
          for k in 0..<d {
            let t = v[i * d + k] - v[j * d + k]
            s += t * t
          }
          out[i * n + j] = s
          out[j * n + i] = s
        }
      }
    }
    return out
  }
}

extension AnalysisError: KindedError {
  public var errorKind: ErrorKind { .input }
}
