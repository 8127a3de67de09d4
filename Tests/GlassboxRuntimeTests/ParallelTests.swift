import Dispatch
import Foundation
import Synchronization
import Testing
@testable import GlassboxRuntime

/// The runtime's parallel regions (`parallelFor` over `WorkerPool`): every part runs once,
/// whatever the count, one region after another with the workers awake or asleep, regions
/// inside regions and regions from several threads at once (those go to Dispatch).
struct ParallelTests {
  /// Runs `parallelFor(count)` and returns how many times each part ran.
  static func runs(_ count: Int, work: (Int) -> Void = { _ in }) -> [Int] {
    let hits = (0..<count).map { _ in Counter() }
    parallelFor(count) { i in
      work(i)
      hits[i].value.add(1, ordering: .relaxed)
    }
    return hits.map { $0.value.load(ordering: .relaxed) }
  }

  @Test func everyPartRunsOnce() {
    for count in [0, 1, 2, 3, 8, 9, 100] {
      #expect(Self.runs(count) == [Int](repeating: 1, count: count), "\(count) parts")
    }
  }

  /// Thousands of short regions back to back (workers spinning between them), then regions
  /// after a pause long enough for them to sleep (unless other tests keep the shared pool
  /// busy: `partsRunTogether` wakes a pool of its own).
  @Test func regionsOneAfterAnother() {
    var wrong = 0
    for r in 0..<5000 where Self.runs(2 + r % 3) != [Int](repeating: 1, count: 2 + r % 3) { wrong += 1 }
    #expect(wrong == 0)
    for _ in 0..<3 {
      usleep(UInt32(WorkerPool.spinNanoseconds / 1000) * 3)
      #expect(Self.runs(2) == [1, 1])
    }
  }

  /// A region in a part of another, and regions started from eight threads at once.
  @Test func nestedAndConcurrentRegions() {
    let inner = (0..<4).map { _ in Counter() }
    let outer = Self.runs(4) { i in
      let counts = Self.runs(5)
      inner[i].value.store(counts == [1, 1, 1, 1, 1] ? 1 : 0, ordering: .relaxed)
    }
    #expect(outer == [1, 1, 1, 1])
    #expect(inner.map { $0.value.load(ordering: .relaxed) } == [1, 1, 1, 1])
    let right = Atomic<Int>(0)
    DispatchQueue.concurrentPerform(iterations: 8) { t in
      for r in 0..<200 where Self.runs(2 + (t + r) % 4) == [Int](repeating: 1, count: 2 + (t + r) % 4) {
        right.add(1, ordering: .relaxed)
      }
    }
    #expect(right.load(ordering: .relaxed) == 8 * 200)
  }

  /// The parts really run side by side, also after the workers have gone to sleep: two parts
  /// that each wait for the other finish (on one thread the first would wait forever; a
  /// bounded wait fails instead). A pool of its own, so that other tests' regions neither
  /// keep its workers awake nor take it; a region inside one of its parts is refused.
  @Test func partsRunTogether() {
    let pool = WorkerPool()
    for _ in 0..<2 {
      let arrived = Atomic<Int>(0), met = Atomic<Int>(0), refused = Atomic<Int>(0)
      let ran = pool.run(2) { _ in
        arrived.add(1, ordering: .sequentiallyConsistent)
        let deadline = DispatchTime.now().uptimeNanoseconds + 2_000_000_000
        while arrived.load(ordering: .sequentiallyConsistent) < 2 && DispatchTime.now().uptimeNanoseconds < deadline {}
        if arrived.load(ordering: .sequentiallyConsistent) == 2 { met.add(1, ordering: .relaxed) }
        if !pool.run(2, { _ in }) { refused.add(1, ordering: .relaxed) }
      }
      #expect(ran)
      #expect(met.load(ordering: .relaxed) == 2)
      #expect(refused.load(ordering: .relaxed) == 2)
      usleep(UInt32(WorkerPool.spinNanoseconds / 1000) * 5)
    }
  }
}

/// An atomic count that arrays can hold (`Atomic` itself cannot be copied into one).
final class Counter: Sendable {
  let value = Atomic<Int>(0)
}
