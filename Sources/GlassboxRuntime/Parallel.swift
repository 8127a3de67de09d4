import Dispatch
import Foundation
import Synchronization

/// Runs `body(0)`, …, `body(count − 1)` on the calling thread and the runtime's worker threads,
/// returning when all have run — `DispatchQueue.concurrentPerform`'s contract, for the
/// runtime's kernels.
///
/// Dispatch parks its workers as soon as a region ends, and on a VM a parked core takes tens
/// of microseconds to start again: a region of two 400 µs halves took 467 µs (median, after
/// 100 µs on one core; a test program) where the parts begin together in 401 µs. Programs run
/// one region after another, a few hundred microseconds apart (a BiLSTM's two directions,
/// then its attention, then the next forward), so `WorkerPool`'s workers spin a while between
/// regions before they sleep. Which thread runs a part never changes what it computes.
///
/// A region started while another runs (nested in one of its parts, or from another thread)
/// goes to Dispatch instead.
@inline(__always)
func parallelFor(_ count: Int, _ body: (Int) -> Void) {
  guard count > 1 else {
    if count == 1 { body(0) }
    return
  }
  withoutActuallyEscaping(body) { body in
    if !WorkerPool.shared.run(count, body) {
      let job = Job(body: body)
      DispatchQueue.concurrentPerform(iterations: count) { job.body($0) }
    }
  }
}

/// A region's body, handed to other threads: each part writes what no other part touches.
private struct Job: @unchecked Sendable {
  let body: (Int) -> Void
}

/// Up to seven worker threads (started as regions need them) that take a region's parts by
/// counter with the calling thread, then spin for `spinNanoseconds` for the next region
/// before they sleep on a condition.
final class WorkerPool: @unchecked Sendable {
  static let shared = WorkerPool()
  static let maximumWorkers = 7
  static let spinNanoseconds: UInt64 = 200_000

  /// A pool of its own (tests); the kernels share `shared`.
  init() {}

  /// Bumped when a region is published; a worker that sees it change takes parts.
  private let generation = Atomic<Int>(0)
  /// The next part to take, and parts finished, of the current region.
  private let next = Atomic<Int>(0)
  private let finished = Atomic<Int>(0)
  /// Workers between seeing a region and letting go of it, and the last region closed to
  /// them: a region is cleared only once it is closed and no worker is active, and a worker
  /// reads a region only while it is open (so none reads one being written or cleared).
  private let active = Atomic<Int>(0)
  private let closed = Atomic<Int>(0)
  private let sleepers = Atomic<Int>(0)
  /// A region is running (the pool takes one at a time).
  private let busy = Atomic<Bool>(false)
  private let condition = NSCondition()
  private let startLock = NSLock()
  private nonisolated(unsafe) var workers = 0
  private nonisolated(unsafe) var body: ((Int) -> Void)?
  private nonisolated(unsafe) var count = 0

  /// Runs the region `0..<count`; false (nothing run) when another region holds the pool.
  func run(_ count: Int, _ body: @escaping (Int) -> Void) -> Bool {
    guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
    defer { busy.store(false, ordering: .releasing) }
    startWorkers(Swift.min(count - 1, Self.maximumWorkers))
    self.body = body
    self.count = count
    next.store(0, ordering: .relaxed)
    finished.store(0, ordering: .relaxed)
    let g = generation.add(1, ordering: .sequentiallyConsistent).newValue
    if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
      condition.lock()
      condition.broadcast()
      condition.unlock()
    }
    takeParts(body, count)
    Self.spin { finished.load(ordering: .acquiring) < count }
    closed.store(g, ordering: .sequentiallyConsistent)
    Self.spin { active.load(ordering: .sequentiallyConsistent) != 0 }
    self.body = nil
    return true
  }

  /// Takes parts of the current region until none is left.
  private func takeParts(_ body: (Int) -> Void, _ count: Int) {
    while true {
      let i = next.add(1, ordering: .relaxed).oldValue
      guard i < count else { return }
      body(i)
      finished.add(1, ordering: .releasing)
    }
  }

  private func startWorkers(_ wanted: Int) {
    guard workers < wanted else { return }
    startLock.lock()
    defer { startLock.unlock() }
    while workers < wanted {
      let seen = generation.load(ordering: .sequentiallyConsistent)
      let thread = Thread { [self] in work(from: seen) }
      thread.name = "glassbox worker \(workers + 1)"
      thread.start()
      workers += 1
    }
  }

  private func work(from start: Int) {
    var seen = start
    while true {
      wait(past: seen)
      active.add(1, ordering: .sequentiallyConsistent)
      let g = generation.load(ordering: .sequentiallyConsistent)
      if g != seen {
        seen = g
        if closed.load(ordering: .sequentiallyConsistent) != g, let body { takeParts(body, count) }
      }
      active.subtract(1, ordering: .sequentiallyConsistent)
    }
  }

  /// Spins while `condition` holds, giving the core up every 64 tries: when the process has
  /// more threads than cores (tests side by side), the thread waited for may be the one this
  /// core would run next.
  @inline(__always)
  static func spin(while condition: () -> Bool) {
    var spins = 0
    while condition() {
      spins += 1
      if spins & 63 == 0 { sched_yield() }
    }
  }

  /// Returns once `generation` is past `seen`: spinning first, then asleep.
  private func wait(past seen: Int) {
    let deadline = DispatchTime.now().uptimeNanoseconds + Self.spinNanoseconds
    var spins = 0
    while generation.load(ordering: .acquiring) == seen {
      spins += 1
      guard spins & 63 == 0 else { continue }
      sched_yield()
      guard DispatchTime.now().uptimeNanoseconds > deadline else { continue }
      condition.lock()
      sleepers.add(1, ordering: .sequentiallyConsistent)
      while generation.load(ordering: .sequentiallyConsistent) == seen { condition.wait() }
      sleepers.subtract(1, ordering: .sequentiallyConsistent)
      condition.unlock()
    }
  }
}
