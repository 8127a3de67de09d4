import Foundation
import GlassboxRuntime

/// P of Barnes–Hut t-SNE in compressed rows: each point's Gaussian over its
/// k = min(n − 1, ⌊3·perplexity⌋ + 1) nearest neighbours (perplexity by the same binary search
/// as the exact method), symmetrised P + Pᵀ and normalised to sum 1 (scikit-learn's
/// `_joint_probabilities_nn`). Row i's entries are `columns[rowStart[i]..<rowStart[i+1]]`
/// with values `values[…]`, columns ascending.
struct SparseJointProbabilities {
  var rowStart: [Int]
  var columns: [Int]
  var values: [Double]

  init(_ points: Points, perplexity: Double) {
    let n = points.count
    let k = min(n - 1, Int(3 * perplexity + 1))
    let (neighbours, distances) = Distances.nearest(points, k: k)
    // Conditional p(j|i) over the neighbours.
    var conditional = [Double](repeating: 0, count: n * k)
    let target = Foundation.log(perplexity)
    for i in 0..<n {
      var beta = 1.0, low = -Double.infinity, high = Double.infinity
      let row = i * k
      for _ in 0..<100 {
        var sumP = 0.0
        for j in 0..<k {
          let v = Foundation.exp(-distances[row + j] * beta)
          conditional[row + j] = v
          sumP += v
        }
        if sumP == 0 { sumP = Double(Float(1e-8)) }
        var sumDP = 0.0
        for j in 0..<k {
          conditional[row + j] /= sumP
          sumDP += distances[row + j] * conditional[row + j]
        }
        let diff = Foundation.log(sumP) + beta * sumDP - target
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
    // P + Pᵀ: every (i, j, p) and (j, i, p), sorted, duplicates summed.
    var entries: [(Int, Int, Double)] = []
    entries.reserveCapacity(2 * n * k)
    for i in 0..<n {
      for j in 0..<k {
        entries.append((i, neighbours[i * k + j], conditional[i * k + j]))
        entries.append((neighbours[i * k + j], i, conditional[i * k + j]))
      }
    }
    entries.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
    var rowStart = [Int](repeating: 0, count: n + 1)
    var columns: [Int] = [], values: [Double] = []
    var total = 0.0
    for (i, j, v) in entries {
      total += v
      if let last = columns.last, values.count > rowStart[i], last == j {
        values[values.count - 1] += v
      } else {
        columns.append(j)
        values.append(v)
      }
      rowStart[i + 1] = columns.count
    }
    for i in 0..<n { rowStart[i + 1] = max(rowStart[i + 1], rowStart[i]) }
    total = max(total, Double.ulpOfOne)
    self.rowStart = rowStart
    self.columns = columns
    self.values = values.map { $0 / total }
  }
}

/// The Barnes–Hut gradient (van der Maaten 2014) as scikit-learn computes it: attraction over
/// P's entries, repulsion from a quadtree of the embedding in which a cell of width w whose
/// centre of mass lies at distance d from the point acts as one body when w² / d² < angle².
enum BarnesHut {
  /// A quadtree cell; cells live in one array, children at `firstChild ..< firstChild + 4`.
  struct Cell {
    var centreX: Double, centreY: Double, half: Double
    var mass = 0
    var sumX = 0.0, sumY = 0.0
    var firstChild = -1
    /// The point of a leaf holding exactly one position (duplicates add mass).
    var point = -1
  }

  struct Tree {
    var cells: [Cell]

    init(_ y: [Double], count n: Int) {
      var x0 = Double.infinity, x1 = -Double.infinity, y0 = Double.infinity, y1 = -Double.infinity
      for i in 0..<n {
        x0 = min(x0, y[2 * i]); x1 = max(x1, y[2 * i])
        y0 = min(y0, y[2 * i + 1]); y1 = max(y1, y[2 * i + 1])
      }
      let half = max(x1 - x0, y1 - y0, 1e-12) / 2 * (1 + 1e-6) + 1e-12
      cells = [Cell(centreX: (x0 + x1) / 2, centreY: (y0 + y1) / 2, half: half)]
      cells.reserveCapacity(4 * n)
      for i in 0..<n { insert(i, x: y[2 * i], y: y[2 * i + 1], y) }
    }

    func quadrant(_ c: Cell, _ x: Double, _ y: Double) -> Int { (x >= c.centreX ? 1 : 0) + (y >= c.centreY ? 2 : 0) }

    mutating func split(_ index: Int) {
      let c = cells[index]
      let h = c.half / 2
      cells[index].firstChild = cells.count
      for q in 0..<4 {
        cells.append(
          Cell(centreX: c.centreX + (q & 1 == 1 ? h : -h), centreY: c.centreY + (q & 2 == 2 ? h : -h), half: h))
      }
    }

    mutating func insert(_ i: Int, x: Double, y: Double, _ positions: [Double]) {
      var index = 0, depth = 0
      while true {
        cells[index].mass += 1
        cells[index].sumX += x
        cells[index].sumY += y
        let c = cells[index]
        if c.firstChild >= 0 {
          index = c.firstChild + quadrant(c, x, y)
          depth += 1
          continue
        }
        if c.mass == 1 {
          cells[index].point = i
          return
        }
        // An occupied leaf: the same position (or too deep to tell apart) keeps both here.
        let other = c.point
        if other < 0 || (positions[2 * other] == x && positions[2 * other + 1] == y) || depth > 48 { return }
        split(index)
        cells[index].point = -1
        let ox = positions[2 * other], oy = positions[2 * other + 1]
        let child = cells[index].firstChild + quadrant(cells[index], ox, oy)
        cells[child].mass = c.mass - 1
        cells[child].sumX = c.sumX - x
        cells[child].sumY = c.sumY - y
        cells[child].point = other
        index = cells[index].firstChild + quadrant(cells[index], x, y)
        depth += 1
      }
    }
  }

  static func gradient(
    p: SparseJointProbabilities, exaggeration: Double, y: [Double], count n: Int, angle: Double,
    grad: inout [Double], computeError: Bool
  ) -> Double? {
    let tree = Tree(y, count: n)
    let theta2 = angle * angle
    var negative = [Double](repeating: 0, count: 2 * n)
    var sumQ = 0.0
    var stack: [Int] = []
    for i in 0..<n {
      let xi = y[2 * i], yi = y[2 * i + 1]
      var fx = 0.0, fy = 0.0
      stack.removeAll(keepingCapacity: true)
      stack.append(0)
      while let index = stack.popLast() {
        let c = tree.cells[index]
        guard c.mass > 0 else { continue }
        let mx = c.sumX / Double(c.mass), my = c.sumY / Double(c.mass)
        let dx = xi - mx, dy = yi - my
        let d2 = dx * dx + dy * dy
        let isLeaf = c.firstChild < 0
        if isLeaf && abs(dx) <= 1e-6 && abs(dy) <= 1e-6 { continue }  // the point itself
        let width = 2 * c.half
        if isLeaf || width * width / d2 < theta2 {
          let q = 1 / (1 + d2)
          let m = Double(c.mass)
          sumQ += m * q
          fx += m * q * q * dx
          fy += m * q * q * dy
        } else {
          for k in 0..<4 { stack.append(c.firstChild + k) }
        }
      }
      negative[2 * i] = fx
      negative[2 * i + 1] = fy
    }
    sumQ = max(sumQ, Double.ulpOfOne)
    var kl = 0.0
    let tiny = Double(Float.leastNormalMagnitude)
    for i in 0..<n {
      var fx = 0.0, fy = 0.0
      let xi = y[2 * i], yi = y[2 * i + 1]
      for e in p.rowStart[i]..<p.rowStart[i + 1] {
        let j = p.columns[e]
        let pij = p.values[e] * exaggeration
        let dx = xi - y[2 * j], dy = yi - y[2 * j + 1]
        let q = 1 / (1 + dx * dx + dy * dy)
        if computeError { kl += pij * Foundation.log(max(pij, tiny) / max(q / sumQ, tiny)) }
        fx += pij * q * dx
        fy += pij * q * dy
      }
      grad[2 * i] = 4 * (fx - negative[2 * i] / sumQ)
      grad[2 * i + 1] = 4 * (fy - negative[2 * i + 1] / sumQ)
    }
    return computeError ? kl : nil
  }
}

extension Distances {
  /// The `k` nearest neighbours of every point (itself excluded) and their squared distances,
  /// `[n, k]` row-major, nearest first. Distances come in blocks of rows from OpenBLAS
  /// (|x|² + |y|² − 2·x·y), so memory stays O(block · n).
  static func nearest(_ x: Points, k: Int) -> (indices: [Int], squaredDistances: [Double]) {
    let n = x.count, d = x.dimensions
    var indices = [Int](repeating: 0, count: n * k), out = [Double](repeating: 0, count: n * k)
    let a = x.values.map(Float.init)
    var norms = [Double](repeating: 0, count: n)
    for i in 0..<n { for j in 0..<d { norms[i] += x[i, j] * x[i, j] } }
    var transposed = [Float](repeating: 0, count: d * n)
    for i in 0..<n { for j in 0..<d { transposed[j * n + i] = a[i * d + j] } }
    let haveBLAS = (try? BLAS.ensureLoaded()) != nil
    let block = 256
    var gram = [Float](repeating: 0, count: block * n)
    var r0 = 0
    while r0 < n {
      let rows = min(block, n - r0)
      if haveBLAS {
        a.withUnsafeBufferPointer { pa in
          transposed.withUnsafeBufferPointer { pb in
            gram.withUnsafeMutableBufferPointer { pc in
              if let base = pa.baseAddress, let b = pb.baseAddress, let c = pc.baseAddress {
                BLAS.sgemm(m: rows, n: n, k: d, a: base + r0 * d, b: b, c: c)
              }
            }
          }
        }
      } else {
        for r in 0..<rows {
          for j in 0..<n {
            var s: Float = 0
            for t in 0..<d { s += a[(r0 + r) * d + t] * a[j * d + t] }
            gram[r * n + j] = s
          }
        }
      }
      for r in 0..<rows {
        let i = r0 + r
        var row = [Double](repeating: 0, count: n)
        for j in 0..<n { row[j] = j == i ? .infinity : max(0, norms[i] + norms[j] - 2 * Double(gram[r * n + j])) }
        let chosen = Trustworthiness.nearest(k, excluding: i, count: n) { row[$0] }
        for (t, j) in chosen.enumerated() {
          indices[i * k + t] = j
          out[i * k + t] = Double(Float(row[j]))
        }
      }
      r0 += rows
    }
    return (indices, out)
  }
}
