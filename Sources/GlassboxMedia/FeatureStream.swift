import Foundation
import GlassboxIR

/// Streams a data set's features in a fixed order while background threads decode ahead.
///
/// ```
///  workers (threads) ── extract (or load from the cache) ──▶ slots[position] ──▶ next()
///        claim position p only while p < consumed + capacity
/// ```
/// `capacity` = memory budget ÷ bytes of one example (every example has the recipe's shape),
/// at least 1: at most that many decoded examples exist at once, whatever the data set's size.
/// Examples come out in `order`; a file that fails to decode is skipped — reported through
/// `log` and kept in `skipped` — and the stream moves on to the next good one.
///
/// `waitSeconds` is the time `next()` spent blocked: the share of a training epoch spent
/// waiting on decoding.
public final class FeatureStream {
  /// One decoded example.
  public struct Example: Sendable {
    /// The recipe's tensor (no batch axis).
    public var tensor: Tensor
    /// The class index.
    public var label: Int
    /// The media file.
    public var path: String
  }

  /// How far extraction has come; handed to the progress callback after every file.
  public struct Progress: Sendable {
    /// Files finished (extracted, loaded from the cache, or failed).
    public var done: Int
    /// Files in the stream.
    public var total: Int
    /// Files served from the feature cache.
    public var cacheHits: Int
    /// Files that could not be decoded (skipped).
    public var failures: Int
  }

  private let state: State
  /// The shape of every example's tensor.
  public let exampleShape: [Int]
  /// Examples held at most at once (decoded ahead or being decoded).
  public let capacity: Int

  /// Starts the workers.
  ///
  /// - `order`: positions into `dataSet.examples` (a shuffled epoch); all of them by default.
  /// - `memoryBudgetBytes`: bound on decoded examples held ahead of the consumer.
  /// - `workers`: background threads; each decodes one file at a time with a 1-thread decoder.
  public init(
    dataSet: DataSet, recipe: InputRecipe, order: [Int]? = nil, cache: FeatureCache? = nil,
    memoryBudgetBytes: Int = 256 << 20,
    workers: Int = max(1, ProcessInfo.processInfo.activeProcessorCount - 1),
    progress: (@Sendable (Progress) -> Void)? = nil,
    log: (@Sendable (MediaError) -> Void)? = nil
  ) throws(MediaError) {
    let probe = try FeatureExtractor(recipe)
    exampleShape = probe.exampleShape
    let bytes = max(1, exampleShape.reduce(4, *))
    capacity = max(1, memoryBudgetBytes / bytes)
    let order = order ?? Array(dataSet.examples.indices)
    for p in order where !dataSet.examples.indices.contains(p) {
      throw MediaError(.layout, file: dataSet.root, "stream order names example \(p) of \(dataSet.examples.count)")
    }
    state = State(files: order.map { dataSet.examples[$0] }, capacity: capacity, progress: progress, log: log)
    let state = self.state
    for w in 0..<max(1, workers) {
      let thread = Thread {
        // Each worker owns its extractor (the audio path keeps FFT buffers).
        guard let extractor = try? FeatureExtractor(recipe) else { return }
        state.work(extractor: extractor, cache: cache)
      }
      thread.name = "glassbox-features-\(w)"
      thread.start()
    }
  }

  deinit { state.cancel() }

  /// The next good example in order, waiting for the workers when needed; nil at the end.
  public func next() -> Example? { state.next() }

  /// Stops the workers; `next()` then returns nil.
  public func cancel() { state.cancel() }

  /// Files skipped so far, each a clear error naming the file.
  public var skipped: [MediaError] { state.locked { $0.skipped } }
  /// Seconds `next()` has spent waiting on the workers.
  public var waitSeconds: Double { state.locked { $0.waitSeconds } }
  /// Examples served from the feature cache so far.
  public var cacheHits: Int { state.locked { $0.cacheHits } }

  /// Shared between the consumer and the workers; every field is guarded by `condition`.
  private final class State: @unchecked Sendable {
    let files: [LabeledFile]
    let capacity: Int
    let progress: (@Sendable (Progress) -> Void)?
    let log: (@Sendable (MediaError) -> Void)?
    let condition = NSCondition()
    var claimed = 0
    var consumed = 0
    var finished = 0
    var slots: [Int: Result<Tensor, MediaError>] = [:]
    var cancelled = false
    var skipped: [MediaError] = []
    var waitSeconds = 0.0
    var cacheHits = 0
    var failures = 0

    init(
      files: [LabeledFile], capacity: Int, progress: (@Sendable (Progress) -> Void)?,
      log: (@Sendable (MediaError) -> Void)?
    ) {
      self.files = files
      self.capacity = capacity
      self.progress = progress
      self.log = log
    }

    func locked<T>(_ body: (State) -> T) -> T {
      condition.lock()
      defer { condition.unlock() }
      return body(self)
    }

    func cancel() {
      condition.lock()
      cancelled = true
      condition.broadcast()
      condition.unlock()
    }

    func work(extractor: FeatureExtractor, cache: FeatureCache?) {
      while true {
        condition.lock()
        while !cancelled && claimed < files.count && claimed >= consumed + capacity { condition.wait() }
        if cancelled || claimed >= files.count {
          condition.unlock()
          return
        }
        let position = claimed
        claimed += 1
        condition.unlock()

        let file = files[position].path
        let result: Result<Tensor, MediaError>
        var hit = false
        do {
          if let cache {
            let (tensor, fromCache) = try cache.features(file, extractor: extractor, threads: 1)
            hit = fromCache
            result = .success(tensor)
          } else {
            result = .success(try extractor.extract(file, threads: 1))
          }
        } catch {
          result = .failure(error)
        }

        condition.lock()
        slots[position] = result
        finished += 1
        if hit { cacheHits += 1 }
        if case .failure = result { failures += 1 }
        let report = Progress(done: finished, total: files.count, cacheHits: cacheHits, failures: failures)
        condition.broadcast()
        condition.unlock()
        progress?(report)
      }
    }

    func next() -> Example? {
      condition.lock()
      defer { condition.unlock() }
      while !cancelled && consumed < files.count {
        if slots[consumed] == nil {
          let start = DispatchTime.now().uptimeNanoseconds
          while !cancelled && slots[consumed] == nil { condition.wait() }
          waitSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
          if cancelled { return nil }
        }
        guard let result = slots.removeValue(forKey: consumed) else { return nil }
        let file = files[consumed]
        consumed += 1
        condition.broadcast()
        switch result {
        case .success(let tensor):
          return Example(tensor: tensor, label: file.label, path: file.path)
        case .failure(let error):
          skipped.append(error)
          if let log {
            condition.unlock()
            log(error)
            condition.lock()
          }
        }
      }
      return nil
    }
  }
}
