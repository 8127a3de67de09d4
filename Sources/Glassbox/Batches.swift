import Foundation
import GlassboxExplain
import GlassboxFormat
import GlassboxIR
import GlassboxMedia

extension Session {
  /// Runs the session over every example of `split`, `batch` at a time, and calls `body` with
  /// each batch's results (by name, `[batch, …]`) and the examples in it — the first
  /// `examples.count` rows: the last batch is padded with zeros (examples are independent in
  /// inference) so one program serves every batch. `progress` counts examples.
  ///
  /// A batch holds the examples of `batch` consecutive positions of the unsharded split
  /// (positions `k·batch ..< (k+1)·batch`), fewer where some could not be read: so a shard of
  /// the split cut in blocks of `batch` (`Shard.positions`) runs exactly the batches the
  /// unsharded run does, and each example's results are the same bits.
  public func forEachBatch(
    of split: DatasetSplit, batch: Int, progress: ProgressReporter? = nil,
    _ body: (_ results: [String: Tensor], _ examples: [DatasetSplit.Example]) throws -> Void
  )
    throws(GlassboxError)
  {
    guard batch >= 1 else { throw GlassboxError(.input, "batch must be at least 1, found \(batch)") }
    let inputName = try model.inputNamed(nil).name
    var exampleShape: [Int]?
    var pending: [DatasetSplit.Example] = []
    var done = 0

    func flush() throws(GlassboxError) {
      guard let first = pending.first else { return }
      let shape = exampleShape ?? first.tensor.shape
      exampleShape = shape
      let per = shape.reduce(1, *)
      var values = [Float](repeating: 0, count: batch * per)
      for (b, e) in pending.enumerated() {
        guard e.tensor.shape == shape else {
          throw GlassboxError(.input, file: e.file, "shape \(e.tensor.shape) differs from the first example's \(shape)")
        }
        let f = e.tensor.floats
        for k in 0..<per { values[b * per + k] = f[k] }
      }
      let results = try run([inputName: Tensor(shape: [batch] + shape, f32: values)])
      try withGlassboxErrors { try body(results, pending) }
      done += pending.count
      progress?.update(done: done, note: ((pending.last?.file ?? "") as NSString).lastPathComponent)
      pending.removeAll()
    }

    while let e = try split.next() {
      if let first = pending.first, first.position >= 0, e.position / batch != first.position / batch { try flush() }
      pending.append(e)
      if pending.count == batch { try flush() }
    }
    try flush()
    // Examples that could not be read count as done (they are listed as skipped).
    if done < split.count { progress?.update(done: split.count, note: "\(split.count - done) skipped") }
    progress?.finish()
  }

  /// The classifier's predictions over `split`: its first output read as class scores. A split
  /// without examples is an error unless `allowingNone` (a shard may get none).
  public func classify(
    _ split: DatasetSplit, splitName: String = "test", batch: Int = 8,
    progress: ProgressReporter? = nil, allowingNone: Bool = false
  ) throws(GlassboxError)
    -> Classification
  {
    guard let logits = model.outputs.first?.name else { throw GlassboxError(.input, "\(model.name) has no outputs") }
    var result = Classification(classes: [], split: splitName)
    try forEachBatch(of: split, batch: batch, progress: progress) { out, examples in
      guard let t = out[logits] else {
        throw GlassboxError(.runtime, "the compiled program did not produce '\(logits)'")
      }
      let classes = t.count / batch, values = t.floats
      for (b, e) in examples.enumerated() {
        result.add(
          file: e.file, label: e.label, logits: Array(values[(b * classes)..<((b + 1) * classes)]),
          position: e.position)
      }
    }
    result.classes = model.labels.isEmpty ? split.classes : model.labels
    guard !result.examples.isEmpty || allowingNone else { throw GlassboxError(.input, "no \(splitName) examples") }
    if let width = result.examples.first?.probabilities.count, width != result.classes.count {
      throw GlassboxError(.input, "the data has \(result.classes.count) classes but \(model.name) has \(width) outputs")
    }
    return result
  }

  /// One feature vector per example of `split` from the value tap `tap` (activation,
  /// attention or hidden; the session must return it): averaged over time when the tap is
  /// `[B, T, H]`, kept as is for `[B, H]`, flattened per example otherwise.
  public func tapFeatures(
    _ tap: String, of split: DatasetSplit, batch: Int = 16,
    progress: ProgressReporter? = nil
  ) throws(GlassboxError) -> TapFeatures {
    let info = try model.tap(named: tap)
    guard info.kind.isValue else {
      throw GlassboxError(
        .input, "tap '\(tap)' is \(info.kind.withArticle) tap; features come from activation, attention and hidden taps"
      )
    }
    var features = TapFeatures(rows: [], labels: [], files: [], classes: split.classes, skipped: [])
    try forEachBatch(of: split, batch: batch, progress: progress) { out, pending in
      guard let tapped = out[tap] else {
        throw GlassboxError(.runtime, "the compiled program did not produce tap '\(tap)'")
      }
      let v = tapped.floats, shape = tapped.shape
      let rowSize = shape.dropFirst().reduce(1, *)
      for (b, e) in pending.enumerated() {
        let slice = v[(b * rowSize)..<((b + 1) * rowSize)]
        var row: [Double]
        if shape.count == 3 {
          let (steps, width) = (shape[1], shape[2])
          row = [Double](repeating: 0, count: width)
          for s in 0..<steps { for h in 0..<width { row[h] += Double(slice[slice.startIndex + s * width + h]) } }
          for h in 0..<width { row[h] /= Double(max(steps, 1)) }
        } else {
          row = slice.map(Double.init)
        }
        features.rows.append(row)
        features.labels.append(e.label)
        features.files.append(e.file)
        features.positions.append(e.position)
      }
    }
    features.skipped = split.skipped
    features.unreadable = split.unreadable
    features.listing = split.listing
    guard !features.rows.isEmpty || split.count == 0 else {
      throw GlassboxError(.input, "no examples to read '\(tap)' from")
    }
    return features
  }
}

extension Model {
  /// One feature vector per example of a split (see `Session.tapFeatures`): the value tap
  /// `tap` over the data at `root`, `batch` examples per run, at most `limit` examples taken
  /// from each class in turn; of them, `shard`'s (cut in blocks of `batch`) when given.
  public func tapFeatures(
    _ tap: String, root: String, split: String, batch: Int = 16, limit: Int = Int.max,
    cache: String? = nil, threads: Int = 2, shard: Shard? = nil,
    progress: ((Int) -> ProgressReporter)? = nil
  ) throws(GlassboxError) -> TapFeatures {
    let usable = taps.filter(\.kind.isValue).map(\.name)
    guard let info = taps.first(where: { $0.name == tap }) else {
      throw GlassboxError(
        .input,
        "\(name) has no tap '\(tap)'; taps it can embed: \(usable.isEmpty ? "none" : usable.joined(separator: ", "))")
    }
    guard info.kind.isValue else {
      throw GlassboxError(
        .input, "tap '\(tap)' is \(info.kind.withArticle) tap; features come from activation, attention and hidden taps"
      )
    }
    let examples = try DatasetSplit(
      root: root, split: split, model: self, cache: cache, limit: limit, shard: shard,
      block: batch)
    let session = try self.session(SessionOptions(threads: threads, taps: [tap]))
    return try session.tapFeatures(tap, of: examples, batch: batch, progress: progress?(examples.count))
  }
}

/// Feature vectors of a tap over one split: one row per example.
public struct TapFeatures: Sendable {
  public var rows: [[Double]]
  public var labels: [Int]
  public var files: [String]
  public var classes: [String]
  /// Examples that could not be read, each naming its file.
  public var skipped: [String]
  /// Each row's position in the split (unsharded).
  public var positions: [Int] = []
  /// The examples that could not be read, at their positions (`skipped` names them too).
  public var unreadable: [(position: Int, message: String)] = []
  /// The whole split the rows were read from (unsharded).
  public var listing = SplitListing(classes: [], files: [])

  public init(rows: [[Double]], labels: [Int], files: [String], classes: [String], skipped: [String]) {
    self.rows = rows
    self.labels = labels
    self.files = files
    self.classes = classes
    self.skipped = skipped
  }
}

/// A classifier's predictions over a split: accuracy, mean cross-entropy and the confusion
/// matrix `confusion[true][predicted]`.
public struct Classification: Sendable {
  public struct Example: Sendable {
    public var file: String
    public var label: Int
    public var predicted: Int
    public var probabilities: [Double]
    /// Where the example stands in its split (unsharded); -1 when unknown.
    public var position: Int

    public init(file: String, label: Int, predicted: Int, probabilities: [Double], position: Int = -1) {
      self.file = file
      self.label = label
      self.predicted = predicted
      self.probabilities = probabilities
      self.position = position
    }
  }

  public var classes: [String]
  public var split: String
  public var examples: [Example] = []

  public init(classes: [String], split: String) {
    self.classes = classes
    self.split = split
  }

  /// Adds an example from its class scores.
  public mutating func add(file: String, label: Int, logits: [Float], position: Int = -1) {
    let p = Metrics.softmax(logits.map(Double.init))
    examples.append(
      Example(
        file: file, label: label, predicted: p.indices.max { p[$0] < p[$1] } ?? 0, probabilities: p,
        position: position))
  }

  public var accuracy: Double {
    Double(examples.filter { $0.predicted == $0.label }.count) / Double(max(examples.count, 1))
  }

  /// Mean of −log p(label), with p floored at 1e-12 so one certain mistake stays finite.
  public var crossEntropy: Double {
    examples.reduce(0.0) {
      $0 - Foundation.log(max($1.label < $1.probabilities.count ? $1.probabilities[$1.label] : 0, 1e-12))
    }
      / Double(max(examples.count, 1))
  }

  public var confusion: [[Int]] {
    let n = max(classes.count, (examples.map { max($0.label, $0.predicted) }.max() ?? -1) + 1)
    var m = [[Int]](repeating: [Int](repeating: 0, count: n), count: n)
    for e in examples { m[e.label][e.predicted] += 1 }
    return m
  }

  public var summaryJSON: JSONValue {
    .object([
      ("split", .string(split)), ("examples", .int(examples.count)), ("accuracy", .number(accuracy)),
      ("cross_entropy", .number(crossEntropy)), ("classes", .array(classes.map { .string($0) })),
      ("confusion", .array(confusion.map { .array($0.map { .int($0) }) })),
    ])
  }

  public var predictionsJSON: JSONValue {
    .object([
      ("classes", .array(classes.map { .string($0) })),
      (
        "examples",
        .array(
          examples.map { e in
            .object([
              ("file", .string(e.file)), ("label", .int(e.label)), ("predicted", .int(e.predicted)),
              ("probabilities", .array(e.probabilities.map { .number($0) })),
            ])
          })
      ),
    ])
  }

  /// Reads what `predictionsJSON` wrote.
  public static func read(predictions path: String, split: String = "test") throws(GlassboxError) -> Classification {
    guard let data = FileManager.default.contents(atPath: path),
      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let classes = object["classes"] as? [String], let examples = object["examples"] as? [[String: Any]]
    else {
      throw GlassboxError(.file, file: path, "missing or not a predictions file")
    }
    var c = Classification(classes: classes, split: split)
    for e in examples {
      guard let file = e["file"] as? String, let label = e["label"] as? Int, let predicted = e["predicted"] as? Int,
        let p = e["probabilities"] as? [Double], predicted >= 0, predicted < p.count
      else {
        throw GlassboxError(.file, file: path, "an example lacks file, label, predicted or probabilities")
      }
      c.examples.append(.init(file: file, label: label, predicted: predicted, probabilities: p))
    }
    return c
  }

  /// Accuracy and cross-entropy, then the confusion matrix with class names.
  public var table: String {
    var lines = [
      Self.row("examples (\(split))", String(examples.count)),
      Self.row("accuracy", String(format: "%.4f", accuracy)),
      Self.row("cross_entropy", String(format: "%.4f", crossEntropy)),
      "confusion (rows: true class, columns: predicted)",
    ]
    let m = confusion
    let names = (0..<m.count).map { $0 < classes.count ? classes[$0] : String($0) }
    let width = max(6, (names.map(\.count).max() ?? 0) + 1)
    func pad(_ s: String) -> String { s.count >= width ? s : String(repeating: " ", count: width - s.count) + s }
    lines.append(pad("") + names.map { pad(String($0.prefix(width - 1))) }.joined())
    for (i, row) in m.enumerated() {
      lines.append(pad(String(names[i].prefix(width - 1))) + row.map { pad(String($0)) }.joined())
    }
    return lines.joined(separator: "\n")
  }

  /// `key` padded to 44 columns, then `value`.
  public static func row(_ key: String, _ value: String) -> String {
    key.count >= 44 ? key + " " + value : key + String(repeating: " ", count: 44 - key.count) + value
  }
}
