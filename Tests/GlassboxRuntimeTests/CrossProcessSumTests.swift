import Foundation
import GlassboxIR
import GlassboxReference
import GlassboxRuntime
import Testing

/// Training batch norms with a cross-process sum (SyncBatchNorm), two processes played by two
/// programs on two threads, each on half of the batch, their sums exchanged in memory: the
/// statistics, outputs and input gradients of the whole batch, each program calling the sum
/// once per layer per phase; one process's sum gives the bits of no sum at all.
struct CrossProcessSumTests {
  /// Two training batch norms (with and without the folded ReLU) and their backwards, over maps
  /// of 33 × 33 (a scalar tail after the vectors) and 8 channels, enough to split the channels
  /// over two cores for the half batch as for the whole one.
  static let spec = """
    graph g(x: f32[N, 8, 33, 33], dy: f32[N, 8, 33, 33], dz: f32[N, 8, 33, 33]) -> (y: f32[N, 8, 33, 33],
            ym: f32[8], yv: f32[8], z: f32[N, 8, 33, 33], zm: f32[8], zv: f32[8],
            dx: f32[N, 8, 33, 33], dw: f32[8], db: f32[8], dx2: f32[N, 8, 33, 33], dw2: f32[8], db2: f32[8]) {
      param w: f32[8] init uniform(1)
      param b: f32[8] init uniform(0.5)
      param w2: f32[8] init uniform(1)
      param b2: f32[8] init uniform(0.5)
      y, ym, yv = batch_norm_train(x, w, b, activation: relu)
      z, zm, zv = batch_norm_train(y, w2, b2)
      dx2, dw2, db2 = batch_norm_train_backward(dz, y, w2, zm, zv)
      dx, dw, db = batch_norm_train_backward(dy, x, w, ym, yv, b, activation: relu)
    }
    """

  static let batch = 8
  static let perExample = 8 * 33 * 33
  static let perBatch: Set<String> = ["y", "z", "dx", "dx2"]

  static func program(batch: Int) throws -> Executable {
    let graph = try Spec.checkedGraph(SourceText(fileName: "sync.graph", text: spec)).bound(["N": batch])
    return try Executable(graph: graph, parameters: DeterministicTensors.parameters(of: graph), threads: 2)
  }

  /// The whole batch's inputs, and the rows `rows` of them.
  static func inputs(rows: Range<Int>) -> [String: Tensor] {
    var out: [String: Tensor] = [:]
    for name in ["x", "dy", "dz"] {
      let all = DeterministicTensors.tensor("input:" + name, shape: [batch, 8, 33, 33]).floats
      out[name] = Tensor(
        shape: [rows.count, 8, 33, 33],
        f32: Array(all[(rows.lowerBound * perExample)..<(rows.upperBound * perExample)]))
    }
    return out
  }

  /// Two programs on two threads, each on half of the batch, summing through `Exchange`.
  static func halves() throws -> (outputs: [[String: Tensor]], calls: [[Int]]) {
    let exchange = Exchange()
    let programs = try [program(batch: batch / 2), program(batch: batch / 2)]
    let results = Results()
    for (rank, p) in programs.enumerated() {
      p.crossProcessSum = { values in
        results.record(rank, values.count)
        exchange.sum(values, rank: rank)
      }
    }
    DispatchQueue.concurrentPerform(iterations: 2) { rank in
      let range = (rank * batch / 2)..<((rank + 1) * batch / 2)
      results.set(rank, Result { try programs[rank].run(inputs: inputs(rows: range)) })
    }
    return (try results.outputs.map { try #require($0).get() }, results.calls)
  }

  @Test func twoHalvesNormaliseAsTheWholeBatch() throws {
    let whole = try Self.program(batch: Self.batch).run(inputs: Self.inputs(rows: 0..<Self.batch))
    let (halves, calls) = try Self.halves()
    // Per layer: the sums and count (9), the squared deviations (8); the backward's sums of dy
    // and dy·x̂ and count (17). In one order on both.
    #expect(calls[0] == calls[1])
    #expect(calls[0].sorted() == [8, 8, 9, 9, 17, 17])
    for (name, expected) in whole {
      let actual: [Float]
      if Self.perBatch.contains(name) {
        actual = halves[0][name]!.floats + halves[1][name]!.floats
      } else if ["dw", "db", "dw2", "db2"].contains(name) {
        // Each half's own sums: a data-parallel step adds them up with the other gradients.
        actual = zip(halves[0][name]!.floats, halves[1][name]!.floats).map { $0 + $1 }
      } else {
        // The statistics: the whole batch's, on both.
        #expect(halves[0][name]!.floats == halves[1][name]!.floats, "\(name) differs between the halves")
        actual = halves[0][name]!.floats
      }
      let e = expected.floats
      let scale = e.reduce(1e-3) { max($0, abs($1)) }
      let diff = zip(actual, e).reduce(0) { max($0, abs($1.0 - $1.1)) }
      #expect(actual.count == e.count)
      #expect(diff <= 1e-5 * scale, "\(name): max difference \(diff) (scale \(scale))")
    }
  }

  /// Without the sum each half has its own statistics: far from the whole batch's.
  @Test func withoutTheSumEachHalfHasItsOwnStatistics() throws {
    let whole = try Self.program(batch: Self.batch).run(inputs: Self.inputs(rows: 0..<Self.batch))
    let half = try Self.program(batch: Self.batch / 2).run(inputs: Self.inputs(rows: 0..<(Self.batch / 2)))
    let diff = zip(half["yv"]!.floats, whole["yv"]!.floats).reduce(0) { max($0, abs($1.0 - $1.1)) }
    #expect(diff > 1e-3)
  }

  /// A sum over one process (the identity) takes the phased path and gives the same bits as
  /// the single pass without one.
  @Test func oneProcessGivesTheBitsOfNoSum() throws {
    let inputs = Self.inputs(rows: 0..<Self.batch)
    let alone = try Self.program(batch: Self.batch).run(inputs: inputs)
    let summed = try Self.program(batch: Self.batch)
    var calls = 0
    summed.crossProcessSum = { _ in calls += 1 }
    let outputs = try summed.run(inputs: inputs)
    #expect(calls == 6)
    for (name, expected) in alone {
      #expect(outputs[name]!.floats.map(\.bitPattern) == expected.floats.map(\.bitPattern), "\(name)")
    }
  }
}

/// Sums two threads' buffers, in rank order, and hands each the sum: a collective of two
/// processes, in memory.
private final class Exchange: @unchecked Sendable {
  let condition = NSCondition()
  var deposits: [[Double]?] = [nil, nil]
  var total: [Double] = []
  var generation = 0

  func sum(_ values: UnsafeMutableBufferPointer<Double>, rank: Int) {
    condition.lock()
    defer { condition.unlock() }
    let mine = generation
    deposits[rank] = Array(values)
    if let a = deposits[0], let b = deposits[1] {
      total = zip(a, b).map { $0 + $1 }
      deposits = [nil, nil]
      generation += 1
      condition.broadcast()
    } else {
      while generation == mine { condition.wait() }
    }
    // The other thread cannot start the next sum's total before this one has arrived there.
    _ = values.update(fromContentsOf: total)
  }
}

/// What each thread's program returned and the lengths of the sums it called.
private final class Results: @unchecked Sendable {
  let lock = NSLock()
  var outputs: [Result<[String: Tensor], any Error>?] = [nil, nil]
  var calls: [[Int]] = [[], []]

  func set(_ rank: Int, _ result: Result<[String: Tensor], any Error>) {
    lock.lock()
    outputs[rank] = result
    lock.unlock()
  }

  func record(_ rank: Int, _ count: Int) {
    lock.lock()
    calls[rank].append(count)
    lock.unlock()
  }
}
