import GlassboxExplain
import Testing

/// The measures on cases whose answers follow from their definitions.
struct MetricsTests {
  @Test func ranksAverageTies() {
    #expect(Metrics.ranks([10, 20, 20, 30]) == [1, 2.5, 2.5, 4])
    #expect(Metrics.ranks([3, 1, 2]) == [3, 1, 2])
  }

  @Test func spearmanIsInvariantToMonotoneMaps() throws {
    let a: [Double] = [0.3, 1.2, -0.5, 4, 2.2]
    #expect(abs(try #require(Metrics.spearman(a, a.map { $0 * $0 * $0 + 7 })) - 1) < 1e-12)
    #expect(abs(try #require(Metrics.spearman(a, a.map { -$0 })) + 1) < 1e-12)
    #expect(Metrics.spearman(a, [1, 1, 1, 1, 1]) == nil)
    // Ranks [1,2,3,4] against [2,1,4,3]: 1 − 6·Σd²/(n(n²−1)) = 1 − 6·4/60 = 0.6.
    #expect(abs(try #require(Metrics.spearman([1, 2, 3, 4], [2, 1, 4, 3])) - 0.6) < 1e-12)
  }

  @Test func curvesAndAreas() {
    #expect(Metrics.schedule(units: 16, steps: 4) == [0, 4, 8, 12, 16])
    #expect(Metrics.schedule(units: 3, steps: 8) == [0, 1, 2, 3])
    #expect(Metrics.area([1, 0]) == 0.5)
    #expect(Metrics.area([1, 1, 1]) == 1)
    #expect(Metrics.area([0, 1, 0]) == 0.5)
    #expect(Metrics.order(byDescending: [0.1, 0.5, 0.5, 0.2]) == [1, 2, 3, 0])
  }

  @Test func localisation() {
    // A 4×3 map whose maximum is at (x 2, y 1).
    let map: [Float] = [
      0, 0, 0, 0,
      0, 1, 3, 0,
      0, 0, 0, 0,
    ]
    let box = Metrics.Box(x0: 2, y0: 0, x1: 3, y1: 2)
    #expect(Metrics.pointingHit(map, width: 4, height: 3, box: box))
    #expect(!Metrics.pointingHit(map, width: 4, height: 3, box: Metrics.Box(x0: 0, y0: 0, x1: 1, y1: 2)))
    #expect(Metrics.energyInBox(map, width: 4, height: 3, box: box) == 0.75)
    // A plateau of maxima in the bottom-left corner (a border cell, upsampled): its
    // innermost pixel, nearest the frame's centre (2.5, 1.5), not its first, is the point; a
    // flat map points nowhere.
    let plateau: [Float] = [
      0, 0, 0, 0, 0, 0,
      2, 2, 2, 1, 0, 0,
      2, 2, 2, 1, 0, 0,
      2, 2, 2, 1, 0, 0,
    ]
    #expect(Metrics.peak(plateau, width: 6, height: 4)! == (2, 1))
    #expect(Metrics.pointingHit(plateau, width: 6, height: 4, box: Metrics.Box(x0: 2, y0: 1, x1: 3, y1: 2)))
    #expect(!Metrics.pointingHit(plateau, width: 6, height: 4, box: Metrics.Box(x0: 0, y0: 1, x1: 1, y1: 3)))
    #expect(!Metrics.pointingHit([Float](repeating: 0, count: 12), width: 4, height: 3, box: box))
    // The space-time peak of three 2×2 frames is in frame 1 (the first of the two 5s).
    #expect(Metrics.peakFrame([0, 1, 2, 0, 0, 5, 1, 0, 5, 0, 0, 0], frames: 3) == 1)
    #expect(Metrics.peakFrame([Float](repeating: 0.5, count: 8), frames: 2) == nil)
    // 160×120 → 80×60 halves the box.
    #expect(
      Metrics.Box(x0: 10, y0: 20, x1: 29, y1: 39).scaled(from: 160, 120, to: 80, 60)
        == Metrics.Box(x0: 5, y0: 10, x1: 14, y1: 19))
  }

  @Test func intervalsAndDistances() {
    let r = Metrics.massInIntervals([0.1, 0.4, 0.4, 0.1], [1..<3])
    #expect(abs(r.mass - 0.8) < 1e-12 && r.chance == 0.5)
    #expect(Metrics.totalVariation([0.5, 0.5], [1, 0]) == 0.5)
    let p = Metrics.softmax([1, 2, 3])
    #expect(abs(p.reduce(0, +) - 1) < 1e-12 && p[2] > p[1] && p[1] > p[0])
    #expect(Metrics.median([3, 1, 2, 10]) == 2.5)
  }
}
