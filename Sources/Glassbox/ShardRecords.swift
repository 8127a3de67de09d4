import Foundation
import GlassboxAnalysis
import GlassboxFormat

/// What one shard of a corpus job leaves in its folder for `ShardSet`: `shard.json`, written
/// last and atomically (its presence marks a finished shard), beside whatever files the command
/// writes there (explanation folders, feature vectors).
///
/// `shard.json`:
/// ```
/// {"glassbox_shard": 1, "command": "evaluate", "shard": {"index": 2, "count": 4},
///  "run": {"model": SHA-256, "data": SHA-256 of the split's listing, "split": …, …options},
///  "examples": total in the unsharded split, "block": positions per block,
///  "positions": [the positions this shard took, in order],
///  "outputs": {where the unsharded run writes, how it prints},
///  "results": {the command's per-example results, in position order}}
/// ```
/// Every number is written in the shortest form that reads back to the same bits, so a merge
/// recomputes the unsharded run's aggregates from exactly its per-example values.
public struct ShardRecord: Sendable {
  /// The file name inside a shard's folder.
  public static let fileName = "shard.json"
  static let formatVersion = 1

  /// Which job: `evaluate` (the classifier), `evaluate-tap`, `tap` or `embed`.
  public var command: String
  public var shard: Shard
  /// What every shard of a job must agree on: the model's and the data's fingerprints, the
  /// split and every option that changes a result, in a fixed order.
  public var run: [(String, JSONValue)]
  /// Examples in the unsharded split and the block size it was dealt in.
  public var total: Int
  public var block: Int
  /// The positions this shard took (`Shard.positions(of: total, block: block)`).
  public var positions: [Int]
  /// Where the unsharded run writes its results and how it prints them.
  public var outputs: [(String, JSONValue)]
  /// The command's results, each example's with its position.
  public var results: [(String, JSONValue)]
  /// The shard's folder.
  public var folder: String

  public init(
    command: String, shard: Shard, run: [(String, JSONValue)], total: Int, block: Int,
    outputs: [(String, JSONValue)], results: [(String, JSONValue)] = [], folder: String
  ) {
    self.command = command
    self.shard = shard
    self.run = run
    self.total = total
    self.block = block
    positions = shard.positions(of: total, block: block)
    self.outputs = outputs
    self.results = results
    self.folder = folder
  }

  /// The JSON text of `shard.json`.
  public var json: JSONValue {
    .object([
      ("glassbox_shard", .int(Self.formatVersion)), ("command", .string(command)),
      ("shard", .object([("index", .int(shard.index)), ("count", .int(shard.count))])),
      ("run", .object(run)), ("examples", .int(total)), ("block", .int(block)),
      ("positions", .array(positions.map { .int($0) })), ("outputs", .object(outputs)), ("results", .object(results)),
    ])
  }

  /// Makes the shard's folder (when missing) and removes a `shard.json` an earlier, unfinished
  /// attempt may have left, so the folder reads as unfinished until `finish` writes it.
  public static func prepare(folder: String) throws(GlassboxError) {
    try withGlassboxErrors(file: folder) {
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
      let path = (folder as NSString).appendingPathComponent(fileName)
      if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
    }
  }

  /// Writes `shard.json` (atomically), which marks the shard finished.
  public func finish() throws(GlassboxError) {
    let path = (folder as NSString).appendingPathComponent(Self.fileName)
    try withGlassboxErrors(file: path) { try writeAtomically(Data((json.text + "\n").utf8), to: path) }
  }

  /// Reads the record of the shard in `folder`.
  public init(folder: String) throws(GlassboxError) {
    let path = (folder as NSString).appendingPathComponent(Self.fileName)
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw GlassboxError(.file, file: folder, "no such shard folder")
    }
    guard let data = FileManager.default.contents(atPath: path) else {
      throw GlassboxError(
        .file, file: folder,
        "not a finished shard: it has no \(Self.fileName) (the shard stopped "
          + "before the end, or this is not a shard's folder); run that shard again")
    }
    let value: JSONValue
    do {
      value = try JSONValue(parsing: [UInt8](data))
    } catch {
      throw GlassboxError(.file, file: path, "not JSON: \(error)")
    }
    func bad(_ what: String) -> GlassboxError { GlassboxError(.file, file: path, "not a shard record: \(what)") }
    guard value["glassbox_shard"]?.intValue == Self.formatVersion else {
      throw bad("glassbox_shard is not \(Self.formatVersion)")
    }
    guard let command = value["command"]?.stringValue, let index = value["shard"]?["index"]?.intValue,
      let count = value["shard"]?["count"]?.intValue, let run = value["run"]?.objectValue,
      let total = value["examples"]?.intValue, let block = value["block"]?.intValue,
      let positions = value["positions"]?.arrayValue?.map(\.intValue),
      let outputs = value["outputs"]?.objectValue, let results = value["results"]?.objectValue,
      total >= 0, block >= 1
    else {
      throw bad("a field is missing or of the wrong kind")
    }
    let shard: Shard
    do {
      shard = try Shard(index: index, count: count)
    } catch {
      throw bad(error.message)
    }
    self.init(
      command: command, shard: shard, run: run, total: total, block: block, outputs: outputs,
      results: results, folder: folder)
    guard positions.map({ $0 ?? -1 }) == self.positions else {
      throw GlassboxError(
        .file, file: path,
        "its positions are not those of shard \(shard) of \(total) examples in "
          + "blocks of \(block)")
    }
  }

  /// The value of `key` in `results`.
  public func result(_ key: String) -> JSONValue? { results.first { $0.0 == key }?.1 }
  /// The value of `key` in `outputs`.
  public func output(_ key: String) -> JSONValue? { outputs.first { $0.0 == key }?.1 }

  /// The record's problem, as an error about its `shard.json`.
  public func problem(_ message: String) -> GlassboxError {
    GlassboxError(.file, file: (folder as NSString).appendingPathComponent(Self.fileName), message)
  }
}

/// Every shard of one job, checked to belong together, in shard order: same command, same
/// run (model, data, split, options), the same number of shards, each exactly once. Any
/// disagreement is an error naming the shards and the value that differs, before anything
/// is written.
public struct ShardSet: Sendable {
  public let records: [ShardRecord]

  /// Reads and checks the shards in `folders`.
  public init(folders: [String]) throws(GlassboxError) {
    guard !folders.isEmpty else { throw GlassboxError(.input, "give the shard folders to merge") }
    var records: [ShardRecord] = []
    for f in folders { records.append(try ShardRecord(folder: f)) }
    try self.init(records: records)
  }

  /// Checks records read already.
  public init(records: [ShardRecord]) throws(GlassboxError) {
    guard let first = records.first else { throw GlassboxError(.input, "give the shard folders to merge") }
    func name(_ r: ShardRecord) -> String { "shard \(r.shard) (\(r.folder))" }
    for r in records.dropFirst() {
      if r.command != first.command {
        throw GlassboxError(
          .input,
          "the shards come from different commands: \(name(first)) is \(first.command), "
            + "\(name(r)) is \(r.command)")
      }
      if r.shard.count != first.shard.count {
        throw GlassboxError(
          .input,
          "the shards come from jobs of different sizes: \(name(first)) is one of "
            + "\(first.shard.count), \(name(r)) one of \(r.shard.count)")
      }
      if let difference = Self.difference(first.run, r.run) {
        throw GlassboxError(
          .input,
          "the shards come from different runs: they disagree on \(difference.key): "
            + "\(name(first)) has \(difference.a), \(name(r)) has \(difference.b)")
      }
      if r.total != first.total || r.block != first.block {
        throw GlassboxError(
          .input,
          "the shards disagree on the split: \(name(first)) has \(first.total) examples in "
            + "blocks of \(first.block), \(name(r)) \(r.total) in blocks of \(r.block)")
      }
    }
    var byIndex: [Int: ShardRecord] = [:]
    for r in records {
      if let other = byIndex[r.shard.index] {
        throw GlassboxError(.input, "shard \(r.shard) is given twice: \(other.folder) and \(r.folder)")
      }
      byIndex[r.shard.index] = r
    }
    let n = first.shard.count
    let missing = (0..<n).filter { byIndex[$0] == nil }
    guard missing.isEmpty else {
      throw GlassboxError(
        .input,
        "missing \(missing.count == 1 ? "shard" : "shards") "
          + missing.map { "\($0)/\(n)" }.joined(separator: ", ") + " of \(n) (given: "
          + records.map { "\($0.shard)" }.sorted().joined(separator: ", ") + ")")
    }
    self.records = (0..<n).compactMap { byIndex[$0] }
  }

  /// The command, run and outputs every shard shares (those of shard 0).
  public var first: ShardRecord { records[0] }

  /// The first key (a dotted path) whose values differ, with both values as text.
  static func difference(
    _ a: [(String, JSONValue)], _ b: [(String, JSONValue)], prefix: String = ""
  )
    -> (key: String, a: String, b: String)?
  {
    let keys = a.map(\.0) + b.map(\.0).filter { k in !a.contains { $0.0 == k } }
    for k in keys {
      let x = a.first { $0.0 == k }?.1, y = b.first { $0.0 == k }?.1
      if case .object(let xo)? = x, case .object(let yo)? = y {
        if let d = difference(xo, yo, prefix: prefix + k + ".") { return d }
        continue
      }
      if x != y { return (prefix + k, x?.text ?? "nothing", y?.text ?? "nothing") }
    }
    return nil
  }

  /// Items of every shard (each shard's in its position order) put in the unsharded order by
  /// their positions. Two items at one position are an error.
  public func inOrder<T>(
    _ items: (ShardRecord) throws(GlassboxError) -> [(position: Int, item: T)]
  )
    throws(GlassboxError) -> [T]
  {
    var all: [(position: Int, item: T)] = []
    for r in records {
      let mine = try items(r)
      let allowed = Set(r.positions)
      for m in mine where !allowed.contains(m.position) {
        throw r.problem("a result at position \(m.position), which is not one of shard \(r.shard)'s")
      }
      all += mine
    }
    all.sort { $0.position < $1.position }
    for (a, b) in zip(all, all.dropFirst()) where a.position == b.position {
      throw GlassboxError(.input, "two results at position \(a.position) of the split")
    }
    return all.map(\.item)
  }
}

extension Model {
  /// SHA-256 that names this model in a shard record: of the `.model` file's bytes, or of a
  /// spec's text with its bindings and where its weights came from.
  public func fingerprint() throws(GlassboxError) -> String {
    if let path, Model.isModelFile(path) {
      guard let data = FileManager.default.contents(atPath: path) else {
        throw GlassboxError(.file, file: path, "cannot be read")
      }
      return data.withUnsafeBytes { SHA256.hex($0) }
    }
    var text = (source.map { String(decoding: $0.bytes, as: UTF8.self) } ?? graph.name) + "\n--\n"
    for (k, v) in provenance.bindings.sorted(by: { $0.key < $1.key }) { text += "\(k)=\(v)\n" }
    text += "weights: \(provenance.weights)\n"
    return SHA256.hex(Array(text.utf8))
  }
}
