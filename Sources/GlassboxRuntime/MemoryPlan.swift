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
  static func place(_ buffers: [Buffer]) -> (offsets: [Int], size: Int) {
    let order = buffers.indices.sorted { buffers[$0].count > buffers[$1].count || (buffers[$0].count == buffers[$1].count && $0 < $1) }
    var offsets = [Int](repeating: 0, count: buffers.count)
    var placed: [(offset: Int, end: Int, buffer: Buffer)] = []
    var size = 0
    for i in order {
      let b = buffers[i]
      let need = round(b.count)
      // Address ranges of placed buffers alive at the same time, by start.
      let conflicts = placed.filter { $0.buffer.conflicts(with: b) }.sorted { $0.offset < $1.offset }
      var offset = 0
      for c in conflicts {
        if offset + need <= c.offset { break }
        offset = Swift.max(offset, c.end)
      }
      offsets[i] = offset
      placed.append((offset, offset + need, b))
      size = Swift.max(size, offset + need)
    }
    return (offsets, size)
  }

  static func round(_ n: Int) -> Int { (Swift.max(n, 1) + alignment - 1) / alignment * alignment }
}
