/// Places buffers in one arena by liveness: buffers whose lifetimes overlap never share
/// memory; others may. Greedy by size (largest first), each at the lowest offset that fits.
///
/// Offsets and sizes are in floats and 16-float (64-byte) aligned.
struct MemoryPlan {
  struct Buffer {
    /// Elements needed.
    var count: Int
    /// First and last position that touch the buffer (inclusive): a kernel's index in
    /// program order, or within a group of kernels that run side by side `Schedule.position`.
    var first: Int, last: Int
    /// The lane of a group that alone touches the buffer (`Schedule`): it never shares
    /// memory with a buffer of the group's other lane, whatever the positions.
    var lane: Schedule.Lane? = nil

    func conflicts(with other: Buffer) -> Bool {
      if first <= other.last && other.first <= last { return true }
      guard let l = lane, let m = other.lane else { return false }
      return l.group == m.group && l.index != m.index
    }
  }

  static let alignment = 16

  /// The offset of each buffer and the arena size.
  ///
  /// The buffers already placed that a buffer may conflict with are found through an index
  /// by position (blocks of positions, coarser for longer lives) and by lane, not by testing
  /// all of them: a training program has ~10⁴ buffers, and testing every pair, quadratic in
  /// them, would be most of its compile.
  static func place(_ buffers: [Buffer]) -> (offsets: [Int], size: Int) {
    let order = buffers.indices.sorted {
      buffers[$0].count > buffers[$1].count || (buffers[$0].count == buffers[$1].count && $0 < $1)
    }
    var offsets = [Int](repeating: 0, count: buffers.count)
    // Levels of blocks 64, 1024, … positions wide; a placed buffer is listed at the first
    // level where it spans at most two blocks (so a long-lived one is listed a few times,
    // not once per 64 positions of its life).
    let positions = (buffers.map(\.last).max() ?? 0) + 1
    var widths = [64]
    while widths.last! < positions { widths.append(widths.last! * 16) }
    var byBlock = widths.map { [[Int]](repeating: [], count: positions / $0 + 1) }
    func level(_ b: Buffer) -> Int {
      widths.firstIndex { Swift.max(b.last, 0) / $0 - Swift.max(b.first, 0) / $0 <= 1 } ?? widths.count - 1
    }
    // The address ranges the placed buffers of each lane cover, merged and by start: every
    // one of them conflicts with a buffer of the group's other lane.
    var laneRanges: [Schedule.Lane: [(offset: Int, end: Int)]] = [:]
    var seen = [Int](repeating: -1, count: buffers.count)
    var size = 0
    for (k, i) in order.enumerated() {
      let b = buffers[i]
      let need = round(b.count)
      func span(_ w: Int) -> ClosedRange<Int> { Swift.max(b.first, 0) / w...Swift.max(b.last, 0) / w }
      // Address ranges of placed buffers alive at the same time, by start.
      var conflicts: [(offset: Int, end: Int)] = []
      func consider(_ j: Int) {
        guard seen[j] != k else { return }
        seen[j] = k
        if buffers[j].conflicts(with: b) { conflicts.append((offsets[j], offsets[j] + round(buffers[j].count))) }
      }
      for (l, w) in widths.enumerated() { for block in span(w) { for j in byBlock[l][block] { consider(j) } } }
      if let lane = b.lane {
        for (other, ranges) in laneRanges where other.group == lane.group && other.index != lane.index {
          conflicts += ranges
        }
      }
      conflicts.sort { $0.offset < $1.offset }
      var offset = 0
      for c in conflicts {
        if offset + need <= c.offset { break }
        offset = Swift.max(offset, c.end)
      }
      offsets[i] = offset
      size = Swift.max(size, offset + need)
      let l = level(b)
      for block in span(widths[l]) { byBlock[l][block].append(i) }
      if let lane = b.lane { laneRanges[lane, default: []].insertMerged((offset, offset + need)) }
    }
    return (offsets, size)
  }

  static func round(_ n: Int) -> Int { (Swift.max(n, 1) + alignment - 1) / alignment * alignment }
}

extension Array where Element == (offset: Int, end: Int) {
  /// Adds a range to ranges sorted by start and pairwise disjoint, merging those it touches.
  mutating func insertMerged(_ range: (offset: Int, end: Int)) {
    var lo = 0, hi = count
    while lo < hi { let mid = (lo + hi) / 2; if self[mid].end < range.offset { lo = mid + 1 } else { hi = mid } }
    var merged = range, last = lo
    while last < count && self[last].offset <= merged.end {
      merged = (Swift.min(merged.offset, self[last].offset), Swift.max(merged.end, self[last].end))
      last += 1
    }
    replaceSubrange(lo..<last, with: [merged])
  }
}
