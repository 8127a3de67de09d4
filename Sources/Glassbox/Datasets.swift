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
  public static func media(root: String, kind: RecipeKind, split: String, seed: UInt64) throws(GlassboxError) -> DataSet {
    try withGlassboxErrors {
      switch kind {
      case .video, .image:
        let name = split == "validation" || split == "val" ? "validation" : split
        guard let subset = HMDB51.Subset(rawValue: name), subset != .unused else {
          throw GlassboxError(.input, "split '\(split)' of an HMDB-51 data set: train or test (the layout has no validation split)")
        }
        return try HMDB51.load(root: root, split: 1, subset: subset)
      case .audio:
        let name = split == "val" ? "validation" : split
        guard let subset = SpokenLanguage.Subset(rawValue: name) else {
          throw GlassboxError(.input, "split '\(split)' of an audio data set: \(SpokenLanguage.Subset.allCases.map(\.rawValue).joined(separator: ", "))")
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

/// The examples of one split of a data set for a model's input, read one at a time: a tensor
/// folder's `.npy` files, or media files through the input's recipe (with an optional feature
/// cache). Unreadable media files are skipped and listed in `skipped`.
public final class DatasetSplit {
  /// One example: the input tensor without its batch axis, its class and its file.
  public struct Example: Sendable {
    public var tensor: Tensor
    public var label: Int
    public var file: String
  }

  /// Class names; label i is `classes[i]`.
  public let classes: [String]
  /// Examples in the split (after `limit`), unreadable ones included.
  public let count: Int
  private var tensorFiles: [LabeledFile] = []
  private var position = 0
  private var stream: FeatureStream?
  private var mediaSkipped: [String] = []

  /// Problems that did not stop reading, each naming its file.
  public var skipped: [String] { mediaSkipped + (stream?.skipped.map(\.description) ?? []) }

  private init(classes: [String], count: Int, tensorFiles: [LabeledFile], stream: FeatureStream?, skipped: [String]) {
    self.classes = classes
    self.count = count
    self.tensorFiles = tensorFiles
    self.stream = stream
    mediaSkipped = skipped
  }

  /// The split `split` of the data at `root` for `model`'s input `input` (its only one when
  /// nil): a tensor folder when `root` has one, else media through the input's recipe. At most
  /// `limit` examples, taken from each class in turn.
  public convenience init(root: String, split: String, model: Model, input: String? = nil, cache: String? = nil,
                          limit: Int = Int.max) throws(GlassboxError) {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw GlassboxError(.file, file: root, "no such folder")
    }
    let inputName = try model.inputNamed(input).name
    if let folder = Datasets.tensorFolder(root, split: split) {
      let files = Datasets.balanced(folder.files, limit: limit).map { folder.files[$0] }
      self.init(classes: folder.classes, count: files.count, tensorFiles: files, stream: nil, skipped: [])
      return
    }
    guard let recipe = model.recipes.first(where: { $0.input == inputName }) else {
      throw GlassboxError(.input, file: root,
                          "no tensor folder \(root)/\(split)/<class>/*.npy, and input '\(inputName)' has no recipe for raw media")
    }
    let set = try Datasets.media(root: root, kind: recipe.kind, split: split, seed: model.splitSeed)
    let order = Datasets.balanced(set.examples, limit: limit)
    let stream = try withGlassboxErrors {
      try FeatureStream(dataSet: set, recipe: recipe, order: order, cache: try cache.map { try FeatureCache(directory: $0) })
    }
    self.init(classes: set.classes, count: order.count, tensorFiles: [], stream: stream, skipped: set.skipped.map(\.description))
  }

  /// The next example, or nil at the end.
  public func next() throws(GlassboxError) -> Example? {
    if let stream {
      guard let e = stream.next() else { return nil }
      return Example(tensor: e.tensor, label: e.label, file: e.path)
    }
    guard position < tensorFiles.count else { return nil }
    let f = tensorFiles[position]
    position += 1
    let t = try withGlassboxErrors { try NPY.read(f.path) }
    guard t.dtype.isFloatingPoint else {
      throw GlassboxError(.input, file: f.path, "holds \(t.dtype.rawValue); examples must be floating point")
    }
    return Example(tensor: t, label: f.label, file: f.path)
  }
}

extension Model {
  /// The seed a spoken-language data set was split with when this model was trained (`train
  /// --seed N` splits with N), so that its test split is the one it never saw; 0 otherwise.
  public var splitSeed: UInt64 { provenance.training?.seed ?? 0 }
}
