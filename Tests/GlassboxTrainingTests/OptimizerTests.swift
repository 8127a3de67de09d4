import Foundation
import Testing
@testable import GlassboxTraining

/// Fixtures from tools/reference/optimizer_fixtures.py (torch.optim on the same tensors).
enum Fixture {
  static let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Fixtures/optimizers.json")
  nonisolated(unsafe) static let json: [String: Any] = {
    guard let data = try? Data(contentsOf: url),
      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    else { return [:] }
    return object
  }()

  static func floats(_ any: Any?) -> [Float] {
    (any as? [Any] ?? []).map { Float(($0 as? NSNumber)?.doubleValue ?? .nan) }
  }
  static func doubles(_ any: Any?) -> [Double] { (any as? [Any] ?? []).map { ($0 as? NSNumber)?.doubleValue ?? .nan } }

  static func optimizerCase(_ name: String) -> [String: Any] {
    (json["optimizers"] as? [[String: Any]] ?? []).first { $0["name"] as? String == name } ?? [:]
  }
}

func expectClose(_ a: [Float], _ b: [Float], relative: Float, _ what: String) {
  #expect(a.count == b.count, "\(what): \(a.count) vs \(b.count) elements")
  for (i, (x, y)) in zip(a, b).enumerated() {
    let scale = max(abs(y), 1e-3)
    #expect(abs(x - y) <= relative * scale, "\(what)[\(i)]: \(x) vs PyTorch \(y)")
  }
}

@Suite struct OptimizerTests {
  static let cases: [(String, OptimizerSettings, Double)] = [
    ("sgd", OptimizerSettings(kind: .sgd), 0.05),
    ("sgd_momentum_wd", OptimizerSettings(kind: .sgd, momentum: 0.9, weightDecay: 1e-2), 0.1),
    ("sgd_momentum_clip", OptimizerSettings(kind: .sgd, momentum: 0.9), 0.1),
    ("adam", OptimizerSettings(kind: .adam), 1e-2),
    ("adam_wd", OptimizerSettings(kind: .adam, weightDecay: 1e-2), 1e-2),
    ("adamw", OptimizerSettings(kind: .adamw, weightDecay: 0.1), 1e-2),
    ("adam_clip", OptimizerSettings(kind: .adam), 1e-3),
  ]

  @Test(arguments: cases.indices)
  func stepsMatchPyTorch(_ index: Int) throws {
    let (name, settings, lr) = Self.cases[index]
    let c = Fixture.optimizerCase(name)
    let initial = (c["initial"] as? [Any] ?? []).map(Fixture.floats)
    let gradients = (c["gradients"] as? [Any] ?? []).map { ($0 as? [Any] ?? []).map(Fixture.floats) }
    let after = (c["after"] as? [Any] ?? []).map { ($0 as? [Any] ?? []).map(Fixture.floats) }
    let clip = (c["clip"] as? NSNumber)?.doubleValue
    let norms = Fixture.doubles(c["norms"])
    try #require(initial.count == 2 && gradients.count == 4 && after.count == 4, "fixture case \(name) missing")
    var optimizer = Optimizer(settings)
    var parameters = initial
    for step in 0..<4 {
      var g = gradients[step]
      if let clip {
        let norm = clipGradientNorm(&g, maxNorm: clip)
        #expect(
          abs(norm - norms[step]) <= 1e-6 * norms[step], "\(name) step \(step + 1): norm \(norm) vs \(norms[step])")
      }
      optimizer.beginStep()
      for i in parameters.indices {
        optimizer.update("p\(i)", parameter: &parameters[i], gradient: g[i], learningRate: lr)
        expectClose(parameters[i], after[step][i], relative: 1e-6, "\(name) step \(step + 1) parameter \(i)")
      }
    }
  }

  /// Parameters of 2^16 elements and more are updated on several cores, eight elements at a
  /// time: the same bits as on one core, and each element as a one-element update of it gives
  /// (which runs the scalar code PyTorch's fixtures check above), over three steps.
  @Test(arguments: cases.indices)
  func largeUpdatesSplitOverCores(_ index: Int) {
    let (_, settings, lr) = Self.cases[index]
    let n = 100_003
    let initial = (0..<n).map { Float(sin(Double($0) * 0.37)) }
    var one = Optimizer(settings), two = Optimizer(settings)
    var singles = [Optimizer](repeating: Optimizer(settings), count: 5)
    let sampled = [0, 7, 8, 65_535, n - 1]
    var p1 = initial, p2 = initial
    var ps = sampled.map { [initial[$0]] }
    for step in 0..<3 {
      let g = (0..<n).map { Float(cos(Double($0 * (step + 2)) * 0.11)) * 0.5 }
      one.beginStep()
      two.beginStep()
      one.update("w", parameter: &p1, gradient: g, learningRate: lr, threads: 1)
      two.update("w", parameter: &p2, gradient: g, learningRate: lr, threads: 2)
      for (k, i) in sampled.enumerated() {
        singles[k].beginStep()
        singles[k].update("w", parameter: &ps[k], gradient: [g[i]], learningRate: lr)
      }
    }
    let same = p1 == p2  // a Bool, so that a failure does not print 100 003 floats
    #expect(same, "case \(index): one core and two differ")
    for (k, i) in sampled.enumerated() {
      #expect(p2[i] == ps[k][0], "case \(index) element \(i): \(p2[i]) vs \(ps[k][0])")
    }
  }

  @Test func snapshotRestoresState() {
    var a = Optimizer(OptimizerSettings(kind: .adam, weightDecay: 0.01))
    var p: [Float] = [1, -2, 3]
    a.beginStep()
    a.update("w", parameter: &p, gradient: [0.5, 0.25, -1], learningRate: 0.1)
    let snap = a.snapshot
    var b = Optimizer(a.settings)
    b.restore(stepCount: snap.stepCount, buffers: snap.buffers)
    var p1 = p, p2 = p
    a.beginStep()
    b.beginStep()
    a.update("w", parameter: &p1, gradient: [0.1, 0.2, 0.3], learningRate: 0.1)
    b.update("w", parameter: &p2, gradient: [0.1, 0.2, 0.3], learningRate: 0.1)
    #expect(p1 == p2)
  }
}

@Suite struct ScheduleTests {
  @Test func ratesMatchPyTorch() throws {
    let schedules = Fixture.json["schedules"] as? [[String: Any]] ?? []
    try #require(schedules.count == 2)
    for s in schedules {
      let name = s["name"] as? String ?? ""
      let schedule: LearningRateSchedule =
        name == "step" ? .step(every: 3, gamma: 0.5) : .cosine(tMax: 6, minimum: 1e-3)
      for (epoch, expected) in Fixture.doubles(s["rates"]).enumerated() {
        let rate = schedule.rate(epoch: epoch, base: 0.1)
        #expect(abs(rate - expected) <= 1e-6 * expected, "\(name) epoch \(epoch): \(rate) vs PyTorch \(expected)")
      }
    }
  }
}

@Suite struct BatchNormStatisticsTests {
  /// Batch mean and biased variance per channel of an NCHW tensor, in Double.
  static func statistics(_ x: [Float], shape: [Int]) -> (mean: [Float], variance: [Float], count: Int) {
    let (n, c, hw) = (shape[0], shape[1], shape[2] * shape[3])
    var mean = [Float](), variance = [Float]()
    for ch in 0..<c {
      var values: [Double] = []
      for b in 0..<n { for i in 0..<hw { values.append(Double(x[(b * c + ch) * hw + i])) } }
      let m = values.reduce(0, +) / Double(values.count)
      mean.append(Float(m))
      variance.append(Float(values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count)))
    }
    return (mean, variance, n * hw)
  }

  @Test func runningStatisticsMatchPyTorch() throws {
    let bn = Fixture.json["batch_norm"] as? [String: Any] ?? [:]
    let shape = (bn["shape"] as? [Int]) ?? []
    let inputs = (bn["inputs"] as? [Any] ?? []).map(Fixture.floats)
    let states = bn["states"] as? [[String: Any]] ?? []
    try #require(shape.count == 4 && inputs.count == 2 && states.count == 2)
    var mean = [Float](repeating: 0, count: shape[1]), variance = [Float](repeating: 1, count: shape[1])
    for (x, state) in zip(inputs, states) {
      let s = Self.statistics(x, shape: shape)
      updateRunningStatistics(
        runningMean: &mean, runningVariance: &variance, batchMean: s.mean, batchVariance: s.variance,
        count: s.count)
      expectClose(mean, Fixture.floats(state["running_mean"]), relative: 1e-6, "running_mean")
      expectClose(variance, Fixture.floats(state["running_var"]), relative: 1e-6, "running_var")
    }
  }
}

@Suite struct SamplingTests {
  @Test func shufflesAreSeededPermutations() {
    let a = Sampling.order(count: 100, seed: 42, epoch: 3)
    #expect(a == Sampling.order(count: 100, seed: 42, epoch: 3))
    #expect(a.sorted() == Array(0..<100))
    #expect(a != Sampling.order(count: 100, seed: 42, epoch: 4))
    #expect(a != Sampling.order(count: 100, seed: 43, epoch: 3))
  }

  @Test func batchesDropOrKeepTheShortLast() {
    let order = Array(0..<10)
    #expect(
      Sampling.batches(order, batchSize: 4, keepPartial: false).map(Array.init) == [[0, 1, 2, 3], [4, 5, 6, 7]])
    #expect(Sampling.batches(order, batchSize: 4, keepPartial: true).last.map(Array.init) == [8, 9])
  }

  @Test func dropoutMasksKeepOneMinusPScaled() {
    let p = 0.3
    let mask = Sampling.dropoutMask(count: 20000, p: p, seed: 1, epoch: 0, step: 5, index: 0)
    #expect(mask == Sampling.dropoutMask(count: 20000, p: p, seed: 1, epoch: 0, step: 5, index: 0))
    #expect(mask != Sampling.dropoutMask(count: 20000, p: p, seed: 1, epoch: 0, step: 6, index: 0))
    let kept = mask.filter { $0 != 0 }
    #expect(Set(kept) == [Float(1 / (1 - p))])
    // Binomial(20000, 0.7): standard deviation ≈ 65; 5σ bounds.
    #expect(abs(Double(kept.count) - 14000) < 325)
  }
}
