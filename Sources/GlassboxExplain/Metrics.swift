import Foundation

/// Measures of explanations, as plain functions of maps and model outputs (no graphs, no I/O):
/// rank correlation for the sanity check, areas under deletion and insertion curves,
/// localisation against boxes and attention mass in intervals, and distances between outputs
/// for attention faithfulness.
public enum Metrics {
  /// Ranks 1…n of `values`, ties sharing the mean of their ranks (SciPy's `rankdata`).
  public static func ranks(_ values: [Double]) -> [Double] {
    let order = values.indices.sorted { values[$0] < values[$1] }
    var ranks = [Double](repeating: 0, count: values.count)
    var i = 0
    while i < order.count {
      var j = i
      while j + 1 < order.count && values[order[j + 1]] == values[order[i]] { j += 1 }
      let shared = Double(i + j) / 2 + 1
      for k in i...j { ranks[order[k]] = shared }
      i = j + 1
    }
    return ranks
  }

  /// Pearson correlation; nil when either side is constant or the lengths differ.
  public static func pearson(_ a: [Double], _ b: [Double]) -> Double? {
    guard a.count == b.count, a.count > 1 else { return nil }
    let n = Double(a.count)
    let ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
    var sab = 0.0, saa = 0.0, sbb = 0.0
    for (x, y) in zip(a, b) {
      sab += (x - ma) * (y - mb); saa += (x - ma) * (x - ma); sbb += (y - mb) * (y - mb)
    }
    guard saa > 0, sbb > 0 else { return nil }
    return sab / (saa * sbb).squareRoot()
  }

  /// Spearman's rank correlation (Pearson on tie-averaged ranks); nil when a side is constant.
  public static func spearman(_ a: [Double], _ b: [Double]) -> Double? { pearson(ranks(a), ranks(b)) }

  /// Unit indices from most to least important (`scores` descending, ties by index).
  public static func order(byDescending scores: [Double]) -> [Int] {
    scores.indices.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
  }

  /// How many units are perturbed at each of `steps + 1` points of a deletion or insertion
  /// curve over `units` units: `round(i·units/steps)` for i = 0…steps.
  public static func schedule(units: Int, steps: Int) -> [Int] {
    let s = max(1, min(steps, units))
    return (0...s).map { Int((Double($0) * Double(units) / Double(s)).rounded()) }
  }

  /// Area under a curve sampled at evenly spaced points of [0, 1] (trapezoids).
  public static func area(_ curve: [Double]) -> Double {
    guard curve.count > 1 else { return curve.first ?? 0 }
    var s = 0.0
    for i in 1..<curve.count { s += (curve[i - 1] + curve[i]) / 2 }
    return s / Double(curve.count - 1)
  }

  /// A box in pixels, inclusive `[x0, x1] × [y0, y1]`.
  public struct Box: Sendable, Equatable {
    public var x0, y0, x1, y1: Double
    public init(x0: Double, y0: Double, x1: Double, y1: Double) {
      self.x0 = x0; self.y0 = y0; self.x1 = x1; self.y1 = y1
    }

    /// The box in a picture resized from `width×height` to `newWidth×newHeight`.
    public func scaled(from width: Int, _ height: Int, to newWidth: Int, _ newHeight: Int) -> Box {
      let sx = Double(newWidth) / Double(width), sy = Double(newHeight) / Double(height)
      return Box(x0: x0 * sx, y0: y0 * sy, x1: (x1 + 1) * sx - 1, y1: (y1 + 1) * sy - 1)
    }

    func contains(x: Int, y: Int) -> Bool {
      Double(x) >= x0.rounded(.down) && Double(x) <= x1.rounded(.up) && Double(y) >= y0.rounded(.down)
        && Double(y) <= y1.rounded(.up)
    }
  }

  /// Pointing game (Zhang et al. 2016): whether the map's maximum point lies in the box. `map`
  /// is row-major `width×height`; a flat map (no maximum, e.g. all zeros) is a miss.
  public static func pointingHit(_ map: [Float], width: Int, height: Int, box: Box) -> Bool {
    guard let p = peak(map, width: width, height: height) else { return false }
    return box.contains(x: p.x, y: p.y)
  }

  /// The map's maximum point: of the plateau of maximal pixels around the first maximum in
  /// row-major order (4-connected), the pixel nearest the frame's centre. An upsampled map has
  /// such plateaus: a bilinear resize with `align_corners=False` repeats a border cell's value
  /// exactly from the cell's centre out to the frame's edge (extrapolation), so the first
  /// maximal pixel of a border cell is on the edge — at a 3×3 Grad-CAM map, the frame's
  /// corner for eight cells of nine — while the interpolated map peaks at the cell's centre,
  /// the plateau's innermost pixel. (Interior peaks are one or two pixels wide.) Nil for an
  /// empty or flat map.
  public static func peak(_ map: [Float], width: Int, height: Int) -> (x: Int, y: Int)? {
    guard width > 0, height > 0, map.count == width * height,
      let best = map.indices.max(by: { map[$0] < map[$1] })
    else { return nil }
    let top = map[best]
    guard map.contains(where: { $0 != top }) else { return nil }
    let cx = Double(width - 1) / 2, cy = Double(height - 1) / 2
    func distance(_ i: Int) -> Double {
      let dx = Double(i % width) - cx, dy = Double(i / width) - cy
      return dx * dx + dy * dy
    }
    var seen = [Bool](repeating: false, count: map.count)
    var stack = [best], chosen = best
    seen[best] = true
    while let i = stack.popLast() {
      if distance(i) < distance(chosen) || (distance(i) == distance(chosen) && i < chosen) { chosen = i }
      let x = i % width, y = i / width
      for (nx, ny) in [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)]
      where nx >= 0 && nx < width && ny >= 0 && ny < height {
        let j = ny * width + nx
        if !seen[j] && map[j] == top { seen[j] = true; stack.append(j) }
      }
    }
    return (chosen % width, chosen / width)
  }

  /// The frame holding the maximum of a clip's space-time map (`maps`: `frames` equal maps,
  /// row-major; the first frame on ties), where the pointing game scores the clip as one
  /// trial. Nil for no frames or a flat volume (no maximum).
  public static func peakFrame(_ maps: [Float], frames: Int) -> Int? {
    guard frames > 0, !maps.isEmpty, maps.count % frames == 0, let top = maps.max(),
      maps.contains(where: { $0 != top })
    else { return nil }
    return maps.firstIndex(of: top).map { $0 / (maps.count / frames) }
  }

  /// The share of the map's (non-negative) mass inside the box (energy-based pointing game,
  /// Wang et al. 2020); 0 for an all-zero map.
  public static func energyInBox(_ map: [Float], width: Int, height: Int, box: Box) -> Double {
    var inside = 0.0, total = 0.0
    for y in 0..<height {
      for x in 0..<width {
        let v = Double(max(map[y * width + x], 0))
        total += v
        if box.contains(x: x, y: y) { inside += v }
      }
    }
    return total > 0 ? inside / total : 0
  }

  /// The share of `weights` (one non-negative weight per time frame) inside the frame ranges,
  /// and the share of frames inside them (the value a uniform weighting would get).
  public static func massInIntervals(_ weights: [Double], _ intervals: [Range<Int>]) -> (mass: Double, chance: Double) {
    var inside = [Bool](repeating: false, count: weights.count)
    for r in intervals { for t in r where t >= 0 && t < weights.count { inside[t] = true } }
    let total = weights.reduce(0) { $0 + max($1, 0) }
    let mass = zip(weights, inside).reduce(0.0) { $0 + ($1.1 ? max($1.0, 0) : 0) }
    let frames = Double(inside.filter { $0 }.count)
    return (total > 0 ? mass / total : 0, weights.isEmpty ? 0 : frames / Double(weights.count))
  }

  /// Total variation distance ½ Σ|p − q| between two distributions.
  public static func totalVariation(_ p: [Double], _ q: [Double]) -> Double {
    zip(p, q).reduce(0) { $0 + abs($1.0 - $1.1) } / 2
  }

  /// Softmax of a row of logits, computed stably.
  public static func softmax(_ logits: [Double]) -> [Double] {
    guard let m = logits.max() else { return [] }
    let e = logits.map { Foundation.exp($0 - m) }
    let s = e.reduce(0, +)
    return e.map { $0 / s }
  }

  /// Mean and median of values (0 for none).
  public static func mean(_ v: [Double]) -> Double { v.isEmpty ? 0 : v.reduce(0, +) / Double(v.count) }
  public static func median(_ v: [Double]) -> Double {
    guard !v.isEmpty else { return 0 }
    let s = v.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
  }
}
