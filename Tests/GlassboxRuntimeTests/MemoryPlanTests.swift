@testable import GlassboxRuntime
import Testing

/// The arena's placement (`MemoryPlan.place`), whose search for conflicting buffers goes
/// through an index by position and lane: on random buffers — many short-lived, some living
/// over thousands of positions, some in the two lanes of a group — it places every buffer
/// where testing every placed buffer would, and no two buffers that conflict share memory.
struct MemoryPlanTests {
  /// Buffers like a training program's: short per-step ones, long-lived saved states, a few
  /// pinned to the end, a third of them in one of two lanes of three groups.
  static func buffers(seed: UInt64, count: Int, positions: Int) -> [MemoryPlan.Buffer] {
    var state = seed
    func next(_ n: Int) -> Int {
      state = state &* 6364136223846793005 &+ 1442695040888963407
      return Int((state >> 33) % UInt64(n))
    }
    return (0..<count).map { _ in
      let first = next(positions)
      let life = [0, 1, 3, 20, 400, positions][next(6)]
      let last = Swift.min(positions - 1, first + next(life + 1))
      let size = [1, 16, 100, 1024, 40_000][next(5)] + next(16)
      var lane: Schedule.Lane? = nil
      if next(3) == 0 { lane = Schedule.Lane(group: next(3), index: next(2)) }
      return MemoryPlan.Buffer(count: size, first: first, last: last, lane: lane)
    }
  }

  /// First fit against every placed buffer: what `place` did before it had an index.
  static func placeTestingAll(_ buffers: [MemoryPlan.Buffer]) -> (offsets: [Int], size: Int) {
    let order = buffers.indices.sorted {
      buffers[$0].count > buffers[$1].count || (buffers[$0].count == buffers[$1].count && $0 < $1)
    }
    var offsets = [Int](repeating: 0, count: buffers.count),
      placed: [(offset: Int, end: Int, buffer: MemoryPlan.Buffer)] = []
    var size = 0
    for i in order {
      let b = buffers[i], need = MemoryPlan.round(b.count)
      var offset = 0
      for c in placed.filter({ $0.buffer.conflicts(with: b) }).sorted(by: { $0.offset < $1.offset }) {
        if offset + need <= c.offset { break }
        offset = Swift.max(offset, c.end)
      }
      offsets[i] = offset
      placed.append((offset, offset + need, b))
      size = Swift.max(size, offset + need)
    }
    return (offsets, size)
  }

  @Test(arguments: [(1, 2000, 3000), (2, 1500, 100), (3, 3000, 20_000)])
  func placesAsTestingEveryBuffer(seed: Int, count: Int, positions: Int) {
    let buffers = Self.buffers(seed: UInt64(seed), count: count, positions: positions)
    let plan = MemoryPlan.place(buffers), expected = Self.placeTestingAll(buffers)
    #expect(plan.size == expected.size)
    #expect(plan.offsets == expected.offsets)
    var overlaps = 0
    for i in buffers.indices {
      for j in buffers.indices where j > i && buffers[i].conflicts(with: buffers[j]) {
        let a = plan.offsets[i]..<(plan.offsets[i] + MemoryPlan.round(buffers[i].count))
        let b = plan.offsets[j]..<(plan.offsets[j] + MemoryPlan.round(buffers[j].count))
        if a.overlaps(b) { overlaps += 1 }
      }
    }
    #expect(overlaps == 0)
  }

  /// Ranges merged as `place` keeps each lane's: sorted, disjoint, covering what was added.
  @Test func lanesRangesMerge() {
    var ranges: [(offset: Int, end: Int)] = []
    for r in [(10, 20), (30, 40), (20, 25), (0, 5), (38, 50), (60, 70), (4, 10)] { ranges.insertMerged(r) }
    #expect(ranges.map(\.offset) == [0, 30, 60] && ranges.map(\.end) == [25, 50, 70])
  }
}
