import Foundation
import GlassboxFormat
import GlassboxIR
import GlassboxMedia

/// A problem with training data or settings; `description` names the file or folder first.
public struct TrainingError: KindedError, Equatable, Sendable {
  public var description: String
  /// `.input` for data and models that do not fit; `.runtime` where Open MPI fails.
  public var errorKind: ErrorKind
  public var errorFile: String?

  public init(_ description: String, kind: ErrorKind = .input) {
    self.description = description
    errorKind = kind
  }

  public init(file: String, _ message: String) {
    description = "\(file): \(message)"
    errorKind = .input
    errorFile = file
  }
}

/// A subset of a data set with random access: examples as tensors of one shape (no batch axis)
/// and class indices into `classes`.
public protocol ExampleSource: AnyObject {
  /// What the examples are read from (a folder), for messages.
  var root: String { get }
  /// Class names; label i is `classes[i]`.
  var classes: [String] { get }
  /// Number of examples.
  var count: Int { get }
  /// The shape of every example's tensor.
  var exampleShape: [Int] { get }
  /// Example `index`: its f32 elements (row-major, `exampleShape`) and its class. Errors name
  /// the file; `SkippedExample` means the example is unreadable and left out (logged in
  /// `skipped`), the others stop the caller.
  func example(_ index: Int) throws -> (values: [Float], label: Int)
  /// Announces the order the next examples will be asked for in (an epoch's), so a source
  /// can read ahead of the consumer on a background thread.
  func prefetch(_ order: [Int])
  /// Seconds `example` has spent blocked so far: decoding, or waiting for the read-ahead.
  var waitSeconds: Double { get }
  /// Examples found unreadable and left out so far, each naming its file and the problem.
  var skipped: [String] { get }
  /// The examples' files, in index order (empty for examples that have none).
  var files: [String] { get }
}

extension ExampleSource {
  public func prefetch(_ order: [Int]) {}
  public var waitSeconds: Double { 0 }
  public var skipped: [String] { [] }
  public var files: [String] { [] }

  /// What names these examples for comparison between processes: the folder, classes,
  /// count, example shape and every file, in order.
  public var listingText: String {
    "\(root)\n\(classes.joined(separator: ","))\n\(count) of \(exampleShape)\n" + files.joined(separator: "\n")
  }
}

/// An example that cannot be read (a corrupt or truncated media file, …): the batch is built
/// without it, and the source lists it in `skipped`.
public struct SkippedExample: Error, CustomStringConvertible, Sendable {
  public var description: String
  public init(_ description: String) { self.description = description }
}

/// A mini-batch: inputs `[B, exampleShape…]` f32 and labels `i64[B]`; rows past `count` are
/// zero padding (label 0) so a short last batch fits a program compiled for B. Examples the
/// source skips are left out, so `count` may be below the number asked for (even 0).
public struct Batch: Sendable {
  public var inputs: Tensor
  public var labels: Tensor
  /// Real examples in the batch (the first `count` rows).
  public var count: Int

  public init(inputs: Tensor, labels: Tensor, count: Int) {
    self.inputs = inputs
    self.labels = labels
    self.count = count
  }
}

extension Batch {
  /// Rows `count..<rows` filled with copies of the real rows, in turn: a batch that lost
  /// examples to skipping still trains on real examples only (not on zero padding labelled 0).
  /// `count` stays the number of distinct examples.
  public func repeatingRows(upTo rows: Int) -> Batch {
    guard count > 0, count < rows, let size = inputs.shape.first, rows <= size else { return self }
    let per = inputs.count / size
    var values = inputs.floats
    var y: [Int64] = []
    if case .i64(let l) = labels.storage { y = l } else { return self }
    for r in count..<rows {
      let from = (r - count) % count
      for k in 0..<per { values[r * per + k] = values[from * per + k] }
      y[r] = y[from]
    }
    return Batch(
      inputs: Tensor(shape: inputs.shape, f32: values), labels: Tensor(shape: labels.shape, storage: .i64(y)),
      count: count)
  }
}

extension ExampleSource {
  /// The examples at `indices`, padded with zero rows to `size` (≥ `indices.count`).
  public func batch(_ indices: some Collection<Int>, size: Int) throws -> Batch {
    let per = exampleShape.reduce(1, *)
    var values = [Float](repeating: 0, count: size * per)
    var labels = [Int64](repeating: 0, count: size)
    var row = 0
    for index in indices {
      let e: (values: [Float], label: Int)
      do {
        e = try example(index)
      } catch is SkippedExample {
        continue
      }
      values.withUnsafeMutableBufferPointer { v in
        e.values.withUnsafeBufferPointer { s in
          if let base = s.baseAddress { (v.baseAddress! + row * per).update(from: base, count: per) }
        }
      }
      labels[row] = Int64(e.label)
      row += 1
    }
    return Batch(
      inputs: Tensor(shape: [size] + exampleShape, f32: values),
      labels: Tensor(shape: [size], storage: .i64(labels)), count: row)
  }
}

/// `SPLIT/<class>/<example>.npy`: classes are the sub-folders, sorted by name (label = index),
/// like torchvision's ImageFolder. Every file is read and checked when the folder is opened:
/// f32 (or f64, converted) tensors of one shape; anything else is an error naming the file.
public final class TensorFolder: ExampleSource {
  public let root: String
  public let classes: [String]
  public let exampleShape: [Int]
  /// The files, in class then name order.
  public let files: [String]
  private let labels: [Int]
  private let values: [[Float]]

  public var count: Int { files.count }

  /// Opens `root`. `classes`, when given, fixes the class list (validation and test folders
  /// must have the training set's classes); `exampleShape`, when given, is required of every
  /// file.
  public init(root: String, classes expected: [String]? = nil, exampleShape expectedShape: [Int]? = nil) throws {
    self.root = root
    let fm = FileManager.default
    var isDirectory: ObjCBool = false
    guard fm.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw TrainingError(file: root, "no such data folder")
    }
    guard let entries = try? fm.contentsOfDirectory(atPath: root) else {
      throw TrainingError(file: root, "cannot list the folder")
    }
    let found = entries.filter { name in
      var sub: ObjCBool = false
      return !name.hasPrefix(".")
        && fm.fileExists(atPath: (root as NSString).appendingPathComponent(name), isDirectory: &sub)
        && sub.boolValue
    }.sorted()
    guard !found.isEmpty else {
      throw TrainingError(
        file: root, "no classes: expected one folder per class holding .npy files (\(root)/<class>/<example>.npy)")
    }
    if let expected, expected != found {
      let missing = expected.filter { !found.contains($0) }, extra = found.filter { !expected.contains($0) }
      throw TrainingError(
        file: root,
        "classes differ from the training split's"
          + (missing.isEmpty ? "" : "; missing: \(missing.joined(separator: ", "))")
          + (extra.isEmpty ? "" : "; not in training: \(extra.joined(separator: ", "))"))
    }
    var files: [String] = [], labels: [Int] = [], values: [[Float]] = []
    var shape = expectedShape
    for (label, name) in found.enumerated() {
      let dir = (root as NSString).appendingPathComponent(name)
      let npys = ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).filter {
        $0.hasSuffix(".npy") && !$0.hasPrefix(".")
      }.sorted()
      guard !npys.isEmpty else { throw TrainingError(file: dir, "empty class: no .npy files in this class folder") }
      for file in npys {
        let path = (dir as NSString).appendingPathComponent(file)
        let tensor: Tensor
        do {
          tensor = try NPY.read(path)
        } catch {
          throw TrainingError(error.description)
        }
        let floats: [Float]
        switch tensor.storage {
        case .f32(let v): floats = v
        case .f64(let v): floats = v.map(Float.init)
        case .i64, .bool:
          throw TrainingError(file: path, "holds \(tensor.dtype.rawValue) elements; examples must be f32 (or f64)")
        }
        if let shape, shape != tensor.shape {
          throw TrainingError(file: path, "has shape \(tensor.shape) but the model's input needs \(shape) per example")
        }
        shape = tensor.shape
        files.append(path)
        labels.append(label)
        values.append(floats)
      }
    }
    self.classes = found
    self.exampleShape = shape ?? []
    self.files = files
    self.labels = labels
    self.values = values
  }

  public func example(_ index: Int) throws -> (values: [Float], label: Int) { (values[index], labels[index]) }
}

/// Examples held in memory (benchmarks, tests).
public final class InMemoryExamples: ExampleSource {
  public let root: String
  public let classes: [String]
  public let exampleShape: [Int]
  let values: [[Float]]
  let labels: [Int]

  public var count: Int { values.count }

  /// `values[i]` has `exampleShape`'s element count; `labels[i]` indexes `classes`.
  public init(root: String, classes: [String], exampleShape: [Int], values: [[Float]], labels: [Int]) {
    self.root = root
    self.classes = classes
    self.exampleShape = exampleShape
    self.values = values
    self.labels = labels
  }

  public func example(_ index: Int) throws -> (values: [Float], label: Int) { (values[index], labels[index]) }
}

/// Raw media (HMDB-51-like video folders, spoken-language audio folders) through the input's
/// recipe and the feature cache, read ahead of the trainer on a background thread.
///
/// ```
///  prefetch(order) ─▶ reader thread: decode (or load from the cache) order[k] ─▶ ahead[k]
///                                    while ahead holds < lookahead examples
///  example(i) ─▶ resident[i] | ahead[i] | wait for the reader | decode here (counted in waitSeconds)
/// ```
/// Decoded examples stay resident for later epochs while they fit `memoryBudgetBytes`; past
/// that they are read again (from the feature cache when there is one), so memory stays
/// bounded whatever the data set's size. A file that cannot be decoded is skipped — listed in
/// `skipped`, left out of every batch — and training goes on with the good ones.
public final class MediaExamples: ExampleSource, @unchecked Sendable {
  public let root: String
  public let classes: [String]
  public let exampleShape: [Int]
  private let dataSet: DataSet
  private let recipe: InputRecipe
  private let extractor: FeatureExtractor
  private let cache: FeatureCache?
  /// Examples kept across epochs.
  private let residentCapacity: Int
  /// Examples decoded ahead of the consumer at most.
  private let lookahead: Int
  public var files: [String] { dataSet.examples.map(\.path) }

  // Guarded by `condition`.
  private let condition = NSCondition()
  private var resident: [Int: [Float]] = [:]
  private var ahead: [Int: [Float]] = [:]
  private var failed: [Int: String] = [:]
  private var skippedFiles: [String] = []
  private var blocked = 0.0
  /// The read-ahead's order and how far it has read.
  private var order: [Int] = []
  private var reading = 0
  private var generation = 0
  private var pending: Set<Int> = []

  public var count: Int { dataSet.examples.count }

  /// `memoryBudgetBytes` bounds the examples held (resident and read ahead); a sixteenth of
  /// it, at least 2 examples, is the read-ahead.
  public init(dataSet: DataSet, recipe: InputRecipe, cache: FeatureCache?, memoryBudgetBytes: Int = 2 << 30) throws {
    self.dataSet = dataSet
    self.recipe = recipe
    root = dataSet.root
    classes = dataSet.classes
    do {
      extractor = try FeatureExtractor(recipe)
    } catch {
      throw TrainingError(error.description)
    }
    exampleShape = extractor.exampleShape
    self.cache = cache
    let bytes = max(4, exampleShape.reduce(4, *))
    let capacity = max(2, memoryBudgetBytes / bytes)
    lookahead = max(2, capacity / 16)
    residentCapacity = max(0, capacity - lookahead)
  }

  deinit {
    condition.lock()
    generation += 1
    condition.broadcast()
    condition.unlock()
  }

  public var waitSeconds: Double {
    condition.lock(); defer { condition.unlock() }
    return blocked
  }

  public var skipped: [String] {
    condition.lock(); defer { condition.unlock() }
    return skippedFiles
  }

  /// Reads `order` ahead on one background thread (replacing an earlier read-ahead).
  public func prefetch(_ order: [Int]) {
    condition.lock()
    generation += 1
    let mine = generation
    self.order = order.filter { dataSet.examples.indices.contains($0) }
    reading = 0
    ahead.removeAll()
    condition.broadcast()
    condition.unlock()
    let recipe = self.recipe
    let thread = Thread { [weak self] in
      // Its own extractor: the audio path keeps FFT buffers. The source is held only for one
      // step at a time, so a consumer that stops reading (an aborted epoch) frees it.
      guard let extractor = try? FeatureExtractor(recipe) else { return }
      while let source = self, source.readAhead(generation: mine, extractor: extractor) {}
    }
    thread.name = "glassbox-read-ahead"
    thread.start()
  }

  /// Reads the next example of the order into `ahead`, or waits (at most a second) for room;
  /// false once the order is done or replaced.
  private func readAhead(generation mine: Int, extractor: FeatureExtractor) -> Bool {
    condition.lock()
    if generation == mine && reading < order.count && ahead.count >= lookahead {
      _ = condition.wait(until: Date(timeIntervalSinceNow: 1))
      condition.unlock()
      return true
    }
    guard generation == mine, reading < order.count else { condition.unlock(); return false }
    let index = order[reading]
    reading += 1
    if resident[index] != nil || failed[index] != nil || ahead[index] != nil { condition.unlock(); return true }
    pending.insert(index)
    condition.unlock()
    let result = decode(index, extractor: extractor)
    condition.lock()
    pending.remove(index)
    switch result {
    case .success(let v): if generation == mine { ahead[index] = v }
    case .failure(let e): fail(index, e.description)
    }
    condition.broadcast()
    condition.unlock()
    return true
  }

  private func decode(_ index: Int, extractor: FeatureExtractor) -> Result<[Float], TrainingError> {
    let path = dataSet.examples[index].path
    do {
      let tensor = try cache.map { try $0.features(path, extractor: extractor).tensor } ?? extractor.extract(path)
      return .success(tensor.floats)
    } catch {
      return .failure(TrainingError("\(error)"))
    }
  }

  /// Records a bad example (called with the lock held).
  private func fail(_ index: Int, _ message: String) {
    guard failed[index] == nil else { return }
    failed[index] = message
    skippedFiles.append("\(message) (skipped)")
  }

  /// Keeps `values` for later epochs if they fit (called with the lock held).
  private func keep(_ index: Int, _ values: [Float]) {
    if resident.count < residentCapacity { resident[index] = values }
  }

  public func example(_ index: Int) throws -> (values: [Float], label: Int) {
    let label = dataSet.examples[index].label
    let start = DispatchTime.now().uptimeNanoseconds
    condition.lock()
    defer { condition.unlock() }
    var blocking = false
    defer { if blocking { blocked += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 } }
    while true {
      if let v = resident[index] { return (v, label) }
      if let v = ahead.removeValue(forKey: index) {
        keep(index, v)
        condition.broadcast()  // room for the read-ahead
        return (v, label)
      }
      if let message = failed[index] { throw SkippedExample(message) }
      // The read-ahead has it in hand or will come to it soon: wait for it.
      let comingUp =
        ahead.count < lookahead && reading < order.count
        && order[reading..<min(order.count, reading + lookahead)].contains(index)
      guard pending.contains(index) || comingUp else { break }
      blocking = true
      condition.wait()
    }
    // Not read ahead: decode here, without the lock.
    blocking = true
    condition.unlock()
    let result = decode(index, extractor: extractor)
    condition.lock()
    switch result {
    case .success(let v):
      keep(index, v)
      return (v, label)
    case .failure(let e):
      fail(index, e.description)
      throw SkippedExample(e.description)
    }
  }
}

/// The three splits of a training data folder.
public struct TrainingData {
  public var train: any ExampleSource
  public var validation: (any ExampleSource)?
  public var test: (any ExampleSource)?
  /// Notes about what was skipped while reading the layout (one per line, each naming a file).
  public var notes: [String] = []

  public var classes: [String] { train.classes }

  public init(
    train: any ExampleSource, validation: (any ExampleSource)? = nil, test: (any ExampleSource)? = nil,
    notes: [String] = []
  ) {
    self.train = train
    self.validation = validation
    self.test = test
    self.notes = notes
  }

  /// Opens `root`:
  /// - `root/{train,val,test}/<class>/<example>.npy` (val and test optional);
  /// - otherwise raw media when `recipe` is given: HMDB-51 split files (split 1; train, test,
  ///   and no validation), or a spoken-language folder (seeded 80/10/10 split).
  ///
  /// `exampleShape` is what the model's input needs per example; a mismatch is an error.
  public static func open(
    _ root: String, exampleShape: [Int]?, recipe: InputRecipe?, cacheDirectory: String?,
    seed: UInt64
  ) throws -> TrainingData {
    let fm = FileManager.default
    func sub(_ name: String) -> String { (root as NSString).appendingPathComponent(name) }
    var isDirectory: ObjCBool = false
    guard fm.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw TrainingError(file: root, "no such data folder")
    }
    if fm.fileExists(atPath: sub("train")) {
      let train = try TensorFolder(root: sub("train"), exampleShape: exampleShape)
      let validation = try ["val", "validation"].map(sub).first(where: { fm.fileExists(atPath: $0) }).map {
        try TensorFolder(root: $0, classes: train.classes, exampleShape: train.exampleShape)
      }
      let test =
        try fm.fileExists(atPath: sub("test"))
        ? TensorFolder(root: sub("test"), classes: train.classes, exampleShape: train.exampleShape) : nil
      return TrainingData(train: train, validation: validation, test: test)
    }
    guard let recipe else {
      throw TrainingError(
        file: root,
        "expected \(root)/train/<class>/<example>.npy (and optional val/, test/); raw media need a model input with a recipe"
      )
    }
    let cache = try cacheDirectory.map { dir in
      do { return try FeatureCache(directory: dir) } catch { throw TrainingError("\(error)") }
    }
    do {
      if HMDB51.splitsDirectory(root: root, split: 1) != nil {
        let train = try HMDB51.load(root: root, split: 1, subset: .train)
        let test = try HMDB51.load(root: root, split: 1, subset: .test)
        return TrainingData(
          train: try MediaExamples(dataSet: train, recipe: recipe, cache: cache), validation: nil,
          test: try MediaExamples(dataSet: test, recipe: recipe, cache: cache),
          notes: (train.skipped + test.skipped).map(\.description))
      }
      let train = try SpokenLanguage.load(root: root, subset: .train, seed: seed)
      let validation = try SpokenLanguage.load(root: root, subset: .validation, seed: seed)
      let test = try SpokenLanguage.load(root: root, subset: .test, seed: seed)
      return TrainingData(
        train: try MediaExamples(dataSet: train, recipe: recipe, cache: cache),
        validation: try MediaExamples(dataSet: validation, recipe: recipe, cache: cache),
        test: try MediaExamples(dataSet: test, recipe: recipe, cache: cache),
        notes: train.skipped.map(\.description))
    } catch {
      throw TrainingError("\(error)")
    }
  }
}
