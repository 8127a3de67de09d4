import Foundation
import GlassboxAnalysis
import GlassboxFormat

/// What each sharded job records of its examples, and how `ShardMerge` puts shards back
/// together into what the unsharded job computes: the same per-example values in the same
/// order, and the aggregates recomputed from them as the unsharded job computes them.
public enum ShardMerge {
  /// The `run` fields of a shard record: the model's and the data's fingerprints, the split,
  /// then `options` (every option that changes a result, in a fixed order).
  public static func run(
    model: Model, listing: SplitListing, split: String, options: [(String, JSONValue)]
  )
    throws(GlassboxError) -> [(String, JSONValue)]
  {
    [
      ("model", .string(try model.fingerprint())), ("data", .string(listing.fingerprint)), ("split", .string(split)),
      ("options", .object(options)),
    ]
  }

  // MARK: The classifier (`evaluate` without a tap)

  /// A classifier shard's results: each example's position, file, label, prediction and
  /// probabilities; the examples it could not read; the listing's notes.
  public static func results(
    of c: Classification, unreadable: [(position: Int, message: String)], notes: [String]
  )
    -> [(String, JSONValue)]
  {
    [
      ("classes", .array(c.classes.map { .string($0) })), ("split", .string(c.split)),
      (
        "examples",
        .array(
          c.examples.map { e in
            .array([
              .int(e.position), .string(e.file), .int(e.label), .int(e.predicted),
              .array(e.probabilities.map(number)),
            ])
          })
      ),
      ("unreadable", .array(unreadable.map { .array([.int($0.position), .string($0.message)]) })),
      ("notes", .array(notes.map { .string($0) })),
    ]
  }

  /// The classification of the whole split from its shards, and the notes the unsharded run
  /// prints (the listing's, then each unreadable example's in split order).
  public static func classification(_ set: ShardSet) throws(GlassboxError) -> (Classification, notes: [String]) {
    let first = set.first
    guard let classes = first.result("classes")?.arrayValue?.compactMap(\.stringValue),
      let split = first.result("split")?.stringValue
    else {
      throw first.problem("no classes or split in its results")
    }
    var c = Classification(classes: classes, split: split)
    typealias Example = Classification.Example
    c.examples = try set.inOrder { (r: ShardRecord) throws(GlassboxError) -> [(position: Int, item: Example)] in
      guard let items = r.result("examples")?.arrayValue else { throw r.problem("no examples in its results") }
      var out: [(position: Int, item: Example)] = []
      for item in items {
        guard let v = item.arrayValue, v.count == 5, let p = v[0].intValue, let file = v[1].stringValue,
          let label = v[2].intValue, let predicted = v[3].intValue,
          let probabilities = v[4].arrayValue?.map(double), !probabilities.contains(nil)
        else {
          throw r.problem("an example's result is not [position, file, label, predicted, probabilities]")
        }
        out.append(
          (
            p,
            .init(
              file: file, label: label, predicted: predicted,
              probabilities: probabilities.map { $0 ?? 0 }, position: p)
          ))
      }
      return out
    }
    let unreadable = try set.inOrder { (r: ShardRecord) throws(GlassboxError) -> [(position: Int, item: String)] in
      try (r.result("unreadable")?.arrayValue ?? []).map { (v: JSONValue) throws(GlassboxError) in
        guard let p = v.arrayValue?.first?.intValue, let m = v.arrayValue?.last?.stringValue else {
          throw r.problem("an unreadable example is not [position, message]")
        }
        return (p, m)
      }
    }
    let notes = (first.result("notes")?.arrayValue ?? []).compactMap(\.stringValue)
    guard !c.examples.isEmpty else { throw GlassboxError(.input, "no \(split) examples") }
    if let width = c.examples.first?.probabilities.count, width != c.classes.count {
      throw GlassboxError(.input, "the data has \(c.classes.count) classes but the model has \(width) outputs")
    }
    return (c, notes + unreadable)
  }

  // MARK: Explanation measures (`evaluate MODEL TAP`)

  /// An explanation-measure shard's results: the tap, its kind, the sanity check's blocks and
  /// each example's measures.
  public static func results(of part: ExplanationEvaluation.Part) -> [(String, JSONValue)] {
    [
      ("tap", .string(part.tap)), ("kind", .string(part.kind.rawValue)),
      ("blocks", .array(part.blocks.map { .string($0) })),
      ("measures", .array(part.measures.map(json))),
    ]
  }

  /// The report of the whole split from its shards; `sanity` as the run was asked.
  public static func explanationReport(_ set: ShardSet, sanity: Bool) throws(GlassboxError) -> [(String, JSONValue)] {
    let first = set.first
    guard let tap = first.result("tap")?.stringValue,
      let kind = first.result("kind")?.stringValue.flatMap(TapKind.init),
      let blocks = first.result("blocks")?.arrayValue?.compactMap(\.stringValue)
    else {
      throw first.problem("no tap, kind or blocks in its results")
    }
    typealias Measures = ExplanationEvaluation.ExampleMeasures
    let measures = try set.inOrder { (r: ShardRecord) throws(GlassboxError) -> [(position: Int, item: Measures)] in
      try (r.result("measures")?.arrayValue ?? []).map {
        (v: JSONValue) throws(GlassboxError) -> (position: Int, item: Measures) in
        guard let m = exampleMeasures(v) else { throw r.problem("an example's measures are incomplete") }
        return (m.position, m)
      }
    }
    guard !measures.isEmpty else { throw GlassboxError(.input, "no examples were measured") }
    return ExplanationEvaluation.report(tap: tap, kind: kind, blocks: sanity ? blocks : [], measures: measures)
  }

  static func json(_ m: ExplanationEvaluation.ExampleMeasures) -> JSONValue {
    var pairs: [(String, JSONValue)] = [("position", .int(m.position)), ("correct", .bool(m.correct))]
    if let d = m.deletion, let i = m.insertion, let u = m.units {
      pairs += [("deletion", .array(d.map(number))), ("insertion", .array(i.map(number))), ("units", .string(u))]
    }
    pairs += [
      ("uniform_correct", .bool(m.uniformCorrect)), ("tvd", .array(m.permutationTVD.map(number))),
      ("flips", .int(m.flips)),
    ]
    if let h = m.hits, let e = m.energies {
      pairs += [
        ("hits", .array(h.map(number))), ("energies", .array(e.map(number))),
        ("peak", m.peak.map { .int($0) } ?? .null),
      ]
    }
    if let s = m.speechMass, let c = m.speechChance {
      pairs += [("speech_mass", number(s)), ("speech_chance", number(c))]
    }
    pairs.append(("sanity", .array(m.sanity.map { $0.map(number) ?? .null })))
    return .object(pairs)
  }

  static func exampleMeasures(_ v: JSONValue) -> ExplanationEvaluation.ExampleMeasures? {
    func doubles(_ key: String) -> [Double]?? {
      guard let a = v[key] else { return .some(nil) }
      let d = a.arrayValue?.map(double)
      guard let d, !d.contains(nil) else { return nil }
      return .some(d.map { $0 ?? 0 })
    }
    guard let position = v["position"]?.intValue, let correct = v["correct"]?.boolValue,
      let uniform = v["uniform_correct"]?.boolValue, let flips = v["flips"]?.intValue,
      let deletion = doubles("deletion"), let insertion = doubles("insertion"), let tvd = doubles("tvd"),
      let hits = doubles("hits"), let energies = doubles("energies"),
      let sanity = v["sanity"]?.arrayValue
    else { return nil }
    var m = ExplanationEvaluation.ExampleMeasures(position: position, correct: correct)
    (m.deletion, m.insertion, m.units) = (deletion, insertion, v["units"]?.stringValue)
    (m.uniformCorrect, m.permutationTVD, m.flips) = (uniform, tvd ?? [], flips)
    (m.hits, m.energies, m.peak) = (hits, energies, v["peak"]?.intValue)
    m.speechMass = v["speech_mass"].flatMap(double)
    m.speechChance = v["speech_chance"].flatMap(double)
    m.sanity = sanity.map(double)
    return m
  }

  // MARK: Tap features (`embed`)

  /// The file holding an embed shard's feature vectors (f64 `[examples, features]`).
  public static let featuresFile = "features.npy"

  /// Writes an embed shard's feature vectors into its folder and returns its results: each
  /// example's position, label and file, the classes and what could not be read.
  public static func results(
    of features: TapFeatures, positions: [Int], unreadable: [(position: Int, message: String)],
    notes: [String], folder: String
  ) throws(GlassboxError) -> [(String, JSONValue)] {
    let width = features.rows.first?.count ?? 0
    let path = (folder as NSString).appendingPathComponent(featuresFile)
    try withGlassboxErrors(file: path) {
      try NPY.write(Tensor(shape: [features.rows.count, width], f64: features.rows.flatMap { $0 }), to: path)
    }
    return [
      ("classes", .array(features.classes.map { .string($0) })),
      (
        "examples",
        .array(
          zip(positions, zip(features.labels, features.files)).map {
            .array([.int($0.0), .int($0.1.0), .string($0.1.1)])
          })
      ),
      ("unreadable", .array(unreadable.map { .array([.int($0.position), .string($0.message)]) })),
      ("notes", .array(notes.map { .string($0) })),
    ]
  }

  /// The feature vectors of the whole split from its shards, in the split's order.
  public static func tapFeatures(_ set: ShardSet) throws(GlassboxError) -> TapFeatures {
    guard let classes = set.first.result("classes")?.arrayValue?.compactMap(\.stringValue) else {
      throw set.first.problem("no classes in its results")
    }
    typealias Row = ([Double], Int, String)
    let rows = try set.inOrder { (r: ShardRecord) throws(GlassboxError) -> [(position: Int, item: Row)] in
      guard let items = r.result("examples")?.arrayValue else { throw r.problem("no examples in its results") }
      guard !items.isEmpty else { return [] }
      let path = (r.folder as NSString).appendingPathComponent(featuresFile)
      let t = try withGlassboxErrors(file: path) { try NPY.read(path) }
      guard t.shape.count == 2, t.shape[0] == items.count else {
        throw GlassboxError(.file, file: path, "holds \(t.shape) but the shard lists \(items.count) examples")
      }
      let values = t.doubles, width = t.shape[1]
      var out: [(position: Int, item: Row)] = []
      for (i, item) in items.enumerated() {
        guard let v = item.arrayValue, v.count == 3, let p = v[0].intValue, let label = v[1].intValue,
          let file = v[2].stringValue
        else { throw r.problem("an example is not [position, label, file]") }
        out.append((p, (Array(values[(i * width)..<((i + 1) * width)]), label, file)))
      }
      return out
    }
    let unreadable = try set.inOrder { (r: ShardRecord) throws(GlassboxError) -> [(position: Int, item: String)] in
      try (r.result("unreadable")?.arrayValue ?? []).map { (v: JSONValue) throws(GlassboxError) in
        guard let p = v.arrayValue?.first?.intValue, let m = v.arrayValue?.last?.stringValue else {
          throw r.problem("an unreadable example is not [position, message]")
        }
        return (p, m)
      }
    }
    let notes = (set.first.result("notes")?.arrayValue ?? []).compactMap(\.stringValue)
    guard !rows.isEmpty else { throw GlassboxError(.input, "no examples to read the tap from") }
    return TapFeatures(
      rows: rows.map(\.0), labels: rows.map(\.1), files: rows.map(\.2), classes: classes,
      skipped: notes + unreadable)
  }

  // MARK: Explanation folders (`tap --data`)

  /// A `tap --data` shard's results: the folders written for each position (relative to the
  /// shard's folder, as to the unsharded output: one, or one per tap, `TAP/EXAMPLE`), and each
  /// failure with its message.
  public static func results(
    written: [(position: Int, folders: [String])], failures: [(position: Int, message: String)]
  )
    -> [(String, JSONValue)]
  {
    [
      ("written", .array(written.map { .array([.int($0.position)] + $0.folders.map(JSONValue.string)) })),
      ("failures", .array(failures.map { .array([.int($0.position), .string($0.message)]) })),
    ]
  }

  /// Puts every shard's explanation folders into `output` as the unsharded run lays them out:
  /// built beside it under a temporary name (files hard-linked where the file system allows,
  /// copied otherwise; the shards keep theirs) and renamed into place, so `output` appears
  /// complete or not at all. An existing `output` is an error unless `replacing`. Returns the
  /// number of examples written and the failures, in split order.
  public static func explanationFolders(
    _ set: ShardSet, into output: String, replacing: Bool
  ) throws(GlassboxError)
    -> (written: Int, failures: [String])
  {
    let fm = FileManager.default
    typealias Folder = (source: String, relative: String)
    let written = try set.inOrder { (r: ShardRecord) throws(GlassboxError) -> [(position: Int, item: [Folder])] in
      try (r.result("written")?.arrayValue ?? []).map { (v: JSONValue) throws(GlassboxError) in
        let entry = v.arrayValue ?? []
        let folders = entry.dropFirst().compactMap(\.stringValue)
        guard let p = entry.first?.intValue, !folders.isEmpty, folders.count == entry.count - 1,
          folders.allSatisfy({ !$0.isEmpty && !$0.hasPrefix("/") && !$0.split(separator: "/").contains("..") })
        else {
          throw r.problem("a written entry is not [position, relative folder, …]")
        }
        return try (
          p,
          folders.map { (f: String) throws(GlassboxError) -> Folder in
            let source = (r.folder as NSString).appendingPathComponent(f)
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: source, isDirectory: &isDirectory), isDirectory.boolValue else {
              throw GlassboxError(.file, file: source, "missing: shard \(r.shard) records it as written")
            }
            return (source, f)
          }
        )
      }
    }
    let failures = try set.inOrder { (r: ShardRecord) throws(GlassboxError) -> [(position: Int, item: String)] in
      try (r.result("failures")?.arrayValue ?? []).map { (v: JSONValue) throws(GlassboxError) in
        guard let p = v.arrayValue?.first?.intValue, let m = v.arrayValue?.last?.stringValue else {
          throw r.problem("a failure is not [position, message]")
        }
        return (p, m)
      }
    }
    if fm.fileExists(atPath: output), !replacing {
      throw GlassboxError(.file, file: output, "exists; merge writes a new folder (--force replaces it)")
    }
    let parent = (output as NSString).deletingLastPathComponent
    let base = (output as NSString).lastPathComponent
    let building = ((parent.isEmpty ? "." : parent) as NSString).appendingPathComponent(".\(base).merging-\(getpid())")
    try withGlassboxErrors(file: output) {
      try fm.createDirectory(atPath: parent.isEmpty ? "." : parent, withIntermediateDirectories: true)
      if fm.fileExists(atPath: building) { try fm.removeItem(atPath: building) }
      do {
        try fm.createDirectory(atPath: building, withIntermediateDirectories: false)
        for (source, relative) in written.joined() {
          try placeTree(from: source, to: (building as NSString).appendingPathComponent(relative))
        }
        if fm.fileExists(atPath: output) {
          let old = ((parent.isEmpty ? "." : parent) as NSString)
            .appendingPathComponent(".\(base).replaced-\(getpid())")
          try fm.moveItem(atPath: output, toPath: old)
          try fm.moveItem(atPath: building, toPath: output)
          try? fm.removeItem(atPath: old)
        } else {
          try fm.moveItem(atPath: building, toPath: output)
        }
      } catch {
        try? fm.removeItem(atPath: building)
        throw error
      }
    }
    return (written.count, failures)
  }

  /// Hard-links (or copies) every file under `source` to the same place under `destination`.
  static func placeTree(from source: String, to destination: String) throws {
    let fm = FileManager.default
    try fm.createDirectory(atPath: destination, withIntermediateDirectories: true)
    for name in try fm.contentsOfDirectory(atPath: source).sorted() {
      let from = (source as NSString).appendingPathComponent(name)
      let to = (destination as NSString).appendingPathComponent(name)
      var isDirectory: ObjCBool = false
      _ = fm.fileExists(atPath: from, isDirectory: &isDirectory)
      if isDirectory.boolValue {
        try placeTree(from: from, to: to)
      } else if link(from, to) != 0 {
        try fm.copyItem(atPath: from, toPath: to)
      }
    }
  }

  // MARK: Numbers

  /// A number as JSON that reads back to the same bits; non-finite values (which JSON cannot
  /// hold) as the strings "nan", "inf" and "-inf".
  static func number(_ d: Double) -> JSONValue {
    d.isNaN ? .string("nan") : d.isInfinite ? .string(d < 0 ? "-inf" : "inf") : .number(d)
  }

  static func double(_ v: JSONValue) -> Double? {
    switch v.stringValue {
    case "nan"?: .nan
    case "inf"?: .infinity
    case "-inf"?: -.infinity
    default: v.doubleValue
    }
  }
}
