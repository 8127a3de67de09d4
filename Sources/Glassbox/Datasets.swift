import Foundation
import GlassboxFormat
import GlassboxIR
import GlassboxMedia

/// The data sets the library reads: the HMDB-51 layout for video, a folder per language for
/// audio (split with a seed), and tensor folders `DIR/{train,val,test}/<class>/*.npy`.
public enum Datasets {
  /// The media data set at `root` for a recipe of `kind`, one split: `train`, `test` (both
  /// layouts) or `validation`/`val` (audio). The audio split is drawn with `seed` — a model's
  /// training seed (`Model.splitSeed`), so that its test split is the one it never saw.
  public static func media(root: String, kind: RecipeKind, split: String, seed: UInt64) throws(GlassboxError) -> DataSet
  {
    try withGlassboxErrors {
      switch kind {
      case .video, .image:
        let name = split == "validation" || split == "val" ? "validation" : split
        guard let subset = HMDB51.Subset(rawValue: name), subset != .unused else {
          throw GlassboxError(
            .input, "split '\(split)' of an HMDB-51 data set: train or test (the layout has no validation split)")
        }
        return try HMDB51.load(root: root, split: 1, subset: subset)
      case .audio:
        let name = split == "val" ? "validation" : split
        guard let subset = SpokenLanguage.Subset(rawValue: name) else {
          throw GlassboxError(
            .input,
            "split '\(split)' of an audio data set: \(SpokenLanguage.Subset.allCases.map(\.rawValue).joined(separator: ", "))"
          )
        }
        return try SpokenLanguage.load(root: root, subset: subset, seed: seed)
      }
    }
  }

  /// Up to `limit` of `files` (indices, in order), taken in turn from each class so every class
  /// stays represented: a split lists its files class by class, and a prefix would hold the
  /// first few classes only.
  public static func balanced(_ files: [LabeledFile], limit: Int) -> [Int] {
    guard files.count > limit else { return Array(files.indices) }
    var byClass: [Int: [Int]] = [:]
    for (i, f) in files.enumerated() { byClass[f.label, default: []].append(i) }
    let queues = byClass.keys.sorted().map { byClass[$0] ?? [] }
    var chosen: [Int] = [], round = 0
    while chosen.count < limit {
      var any = false
      for q in queues where round < q.count && chosen.count < limit {
        chosen.append(q[round])
        any = true
      }
      if !any { break }
      round += 1
    }
    return chosen.sorted()
  }

  /// The tensor-folder layout, `DIR/<split>/<class>/*.npy`, when DIR has it; nil otherwise.
  /// `val` and `validation` name the same split.
  public static func tensorFolder(_ root: String, split: String) -> (classes: [String], files: [LabeledFile])? {
    let names = split == "validation" || split == "val" ? ["val", "validation"] : [split]
    let fm = FileManager.default
    for name in names {
      let dir = (root as NSString).appendingPathComponent(name)
      guard let entries = try? fm.contentsOfDirectory(atPath: dir) else { continue }
      var classes: [String] = [], files: [LabeledFile] = []
      for c in entries.sorted() where !c.hasPrefix(".") {
        let classDir = (dir as NSString).appendingPathComponent(c)
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: classDir, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
        let npys = ((try? fm.contentsOfDirectory(atPath: classDir)) ?? []).filter { $0.hasSuffix(".npy") }.sorted()
        files += npys.map { LabeledFile(path: (classDir as NSString).appendingPathComponent($0), label: classes.count) }
        classes.append(c)
      }
      if !files.isEmpty { return (classes, files) }
    }
    return nil
  }
}

/// A split's examples in their unsharded order (after `limit`): what a job over the split, or
/// any of its shards, works through. Every shard of a job lists the whole split, so each can
/// record which positions it took and `fingerprint` names the list they were taken from.
public struct SplitListing: Sendable {
  /// Class names; label i is `classes[i]`.
  public var classes: [String]
  /// The examples, class by class (a balanced subset when limited).
  public var files: [LabeledFile]
  /// Problems that did not stop listing (a split file naming a missing clip), each naming its
  /// file.
  public var skipped: [String]

  public init(classes: [String], files: [LabeledFile], skipped: [String] = []) {
    self.classes = classes
    self.files = files
    self.skipped = skipped
  }

  /// The media data set's split, limited to `limit` examples taken from each class in turn.
  public init(_ set: DataSet, limit: Int = Int.max) {
    self.init(
      classes: set.classes, files: Datasets.balanced(set.examples, limit: limit).map { set.examples[$0] },
      skipped: set.skipped.map(\.description))
  }

  /// SHA-256 of the class names and every example's path and label, in order: shards of one
  /// job agree on it.
  public var fingerprint: String {
    var text = classes.joined(separator: "\n") + "\n\n"
    for f in files { text += "\(f.label)\t\(f.path)\n" }
    return SHA256.hex(Array(text.utf8))
  }

  /// The positions `shard` takes (every position when nil), in order; `block` is the batch
  /// size of the unsharded run (see `Shard.positions`).
  public func positions(for shard: Shard?, block: Int = 1) -> [Int] {
    shard?.positions(of: files.count, block: block) ?? Array(files.indices)
  }
}

/// The examples of one split of a data set for a model's input, read one at a time: a tensor
/// folder's `.npy` files, or media files through the input's recipe (with an optional feature
/// cache). Unreadable media files are skipped and listed in `skipped`. With a shard, only the
/// shard's positions of the split are read; each example carries its position.
public final class DatasetSplit {
  /// One example: the input tensor without its batch axis, its class, its file and its
  /// position in the unsharded split.
  public struct Example: Sendable {
    public var tensor: Tensor
    public var label: Int
    public var file: String
    public var position: Int
  }

  /// Class names; label i is `classes[i]`.
  public let classes: [String]
  /// Examples this split reads (after `limit`, of its shard), unreadable ones included.
  public let count: Int
  /// The whole split, unsharded.
  public let listing: SplitListing
  /// The positions of `listing.files` this split reads, in order.
  public let positions: [Int]
  private var position = 0
  private var stream: FeatureStream?
  private var positionOfFile: [String: Int] = [:]

  /// Problems that did not stop reading, each naming its file.
  public var skipped: [String] { listing.skipped + (stream?.skipped.map(\.description) ?? []) }

  /// The examples that could not be read (skipped), each at its position of the split.
  public var unreadable: [(position: Int, message: String)] {
    (stream?.skipped ?? []).map { (positionOfFile[$0.file] ?? -1, $0.description) }
  }

  /// The split `split` of the data at `root` for `model`'s input `input` (its only one when
  /// nil): a tensor folder when `root` has one, else media through the input's recipe. At most
  /// `limit` examples, taken from each class in turn; of them, `shard`'s positions for batches
  /// of `block` (all when nil).
  public init(
    root: String, split: String, model: Model, input: String? = nil, cache: String? = nil,
    limit: Int = Int.max, shard: Shard? = nil, block: Int = 1
  ) throws(GlassboxError) {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw GlassboxError(.file, file: root, "no such folder")
    }
    let inputName = try model.inputNamed(input).name
    if let folder = Datasets.tensorFolder(root, split: split) {
      let files = Datasets.balanced(folder.files, limit: limit).map { folder.files[$0] }
      listing = SplitListing(classes: folder.classes, files: files)
      positions = listing.positions(for: shard, block: block)
    } else {
      guard let recipe = model.recipes.first(where: { $0.input == inputName }) else {
        throw GlassboxError(
          .input, file: root,
          "no tensor folder \(root)/\(split)/<class>/*.npy, and input "
            + "'\(inputName)' has no recipe for raw media")
      }
      let set = try Datasets.media(root: root, kind: recipe.kind, split: split, seed: model.splitSeed)
      let order = Datasets.balanced(set.examples, limit: limit)
      listing = SplitListing(set, limit: limit)
      positions = listing.positions(for: shard, block: block)
      for p in positions { positionOfFile[listing.files[p].path] = p }
      let chosen = positions.map { order[$0] }
      stream = try withGlassboxErrors {
        try FeatureStream(
          dataSet: set, recipe: recipe, order: chosen,
          cache: try cache.map { try FeatureCache(directory: $0) })
      }
    }
    classes = listing.classes
    count = positions.count
  }

  /// The next example, or nil at the end.
  public func next() throws(GlassboxError) -> Example? {
    if let stream {
      guard let e = stream.next() else { return nil }
      return Example(tensor: e.tensor, label: e.label, file: e.path, position: positionOfFile[e.path] ?? -1)
    }
    guard position < positions.count else { return nil }
    let p = positions[position]
    let f = listing.files[p]
    position += 1
    let t = try withGlassboxErrors { try NPY.read(f.path) }
    guard t.dtype.isFloatingPoint else {
      throw GlassboxError(.input, file: f.path, "holds \(t.dtype.rawValue); examples must be floating point")
    }
    return Example(tensor: t, label: f.label, file: f.path, position: p)
  }
}

extension Model {
  /// The seed a spoken-language data set was split with when this model was trained (`train
  /// --seed N` splits with N), so that its test split is the one it never saw; 0 otherwise.
  public var splitSeed: UInt64 { provenance.training?.seed ?? 0 }
}
