import Foundation
import GlassboxIR

/// One example of a data set: a media file and the index of its class.
public struct LabeledFile: Sendable, Hashable {
  /// The media file.
  public var path: String
  /// Index into the data set's `classes`.
  public var label: Int

  /// A file and its class index.
  public init(path: String, label: Int) {
    self.path = path
    self.label = label
  }
}

/// The examples of one subset of a data set, with the class names (label i is `classes[i]`)
/// and what was skipped while reading the layout.
public struct DataSet: Sendable {
  /// The data-set folder.
  public var root: String
  /// Class names; label i is `classes[i]`.
  public var classes: [String]
  /// The subset's files, in layout order (class by class).
  public var examples: [LabeledFile]
  /// Problems that did not stop loading — a split file naming missing clips, an empty class
  /// folder — each naming the file or folder. Callers log them.
  public var skipped: [MediaError]

  /// A data set from its parts.
  public init(root: String, classes: [String], examples: [LabeledFile], skipped: [MediaError] = []) {
    self.root = root
    self.classes = classes
    self.examples = examples
    self.skipped = skipped
  }

  /// Examples per class, in class order.
  public var classCounts: [Int] {
    var counts = [Int](repeating: 0, count: classes.count)
    for e in examples { counts[e.label] += 1 }
    return counts
  }
}

// MARK: - HMDB-51

/// The HMDB-51 layout: `ROOT/<class>/<clip>.avi`, with split files
/// `<class>_test_split<k>.txt` (k = 1, 2, 3) whose lines read `clip.avi 1` (train), `2` (test)
/// or `0` (unused). The split files are looked for in `ROOT/testTrainMulti_7030_splits/` (as
/// the official download unpacks), `ROOT/splits/`, then `ROOT/` itself.
///
/// Classes are the class names that have a split file for the chosen k, sorted; a clip a split
/// file names but that is missing from its folder is skipped and reported (one report per split
/// file, naming the clips).
public enum HMDB51 {
  /// The split file marks: 1 train, 2 test, 0 unused.
  public enum Subset: String, Sendable, CaseIterable {
    case train, test, unused

    var mark: Int {
      switch self {
      case .train: 1
      case .test: 2
      case .unused: 0
      }
    }
  }

  /// Where split files are looked for, relative to the root, in order.
  public static let splitFolders = ["testTrainMulti_7030_splits", "splits", "."]

  /// The folder holding the split files of `root`, or nil.
  public static func splitsDirectory(root: String, split: Int) -> String? {
    for folder in splitFolders {
      let dir = folder == "." ? root : (root as NSString).appendingPathComponent(folder)
      let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
      if files.contains(where: { $0.hasSuffix("_test_split\(split).txt") }) { return dir }
    }
    return nil
  }

  /// The `subset` of split `split` (1, 2 or 3).
  public static func load(
    root: String, split: Int, subset: Subset, splitsDirectory: String? = nil
  ) throws(MediaError) -> DataSet {
    guard (1...3).contains(split) else {
      throw MediaError(.layout, file: root, "HMDB-51 has splits 1, 2 and 3; found \(split)")
    }
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw MediaError(.layout, file: root, "no such data-set folder")
    }
    guard let dir = splitsDirectory ?? self.splitsDirectory(root: root, split: split) else {
      throw MediaError(
        .layout, file: root,
        "no split files '<class>_test_split\(split).txt' in \(splitFolders.map { $0 == "." ? "the root" : $0 + "/" }.joined(separator: ", "))"
      )
    }
    let suffix = "_test_split\(split).txt"
    let splitFiles = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(suffix) }
      .sorted()
    let classes = splitFiles.map { String($0.dropLast(suffix.count)) }
    guard !classes.isEmpty else { throw MediaError(.layout, file: dir, "no split files for split \(split)") }
    var examples: [LabeledFile] = []
    var skipped: [MediaError] = []
    for (label, name) in classes.enumerated() {
      let splitPath = (dir as NSString).appendingPathComponent(name + suffix)
      guard let text = try? String(contentsOfFile: splitPath, encoding: .utf8) else {
        throw MediaError(.layout, file: splitPath, "cannot read the split file as UTF-8 text")
      }
      let classDir = (root as NSString).appendingPathComponent(name)
      var missing: [String] = []
      for (number, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
        let fields = raw.split(whereSeparator: \.isWhitespace)
        if fields.isEmpty { continue }
        guard fields.count == 2, let mark = Int(fields[1]), (0...2).contains(mark) else {
          throw MediaError(
            .layout, file: "\(splitPath):\(number + 1)",
            "expected 'clip.avi 0|1|2', found '\(raw.trimmingCharacters(in: .whitespaces))'")
        }
        guard mark == subset.mark else { continue }
        let clip = String(fields[0])
        guard !clip.contains("/"), clip != "..", clip != "." else {
          throw MediaError(
            .layout, file: "\(splitPath):\(number + 1)", "clip name '\(clip)' must be a file name, not a path")
        }
        let path = (classDir as NSString).appendingPathComponent(clip)
        if FileManager.default.fileExists(atPath: path) {
          examples.append(LabeledFile(path: path, label: label))
        } else {
          missing.append(clip)
        }
      }
      if !missing.isEmpty {
        let shown = missing.prefix(5).joined(separator: ", ") + (missing.count > 5 ? ", …" : "")
        skipped.append(
          MediaError(
            .layout, file: splitPath,
            "skipped \(missing.count) \(subset.rawValue) clip\(missing.count == 1 ? "" : "s") missing from \(classDir): \(shown)"
          ))
      }
    }
    return DataSet(root: root, classes: classes, examples: examples, skipped: skipped)
  }
}

// MARK: - Spoken language

/// The spoken-language layout: `ROOT/<language>/<clip>.(wav|mp3|flac|ogg)`; other files (the
/// generators' `.json` sidecars) are ignored. Classes are the language folders that hold at
/// least one clip, sorted; an empty folder is skipped and reported.
///
/// The train/validation/test split is stratified (each language split by the same fractions)
/// and deterministic: each language's clips, sorted by name, are shuffled by a SplitMix64
/// generator seeded from the seed and the language name, then cut at round(n·train) and
/// round(n·(train + validation)). It is written to a split file (`subset language/clip` per
/// line) and read back from it when it exists, so a run can be reproduced even after clips are
/// added.
public enum SpokenLanguage {
  /// The three parts of the split.
  public enum Subset: String, Sendable, CaseIterable {
    case train, validation, test
  }

  /// File extensions counted as clips (lower case).
  public static let audioExtensions: Set<String> = ["wav", "mp3", "flac", "ogg"]

  /// Fractions of each language for train and validation; the rest is test.
  public struct Fractions: Sendable, Hashable {
    /// Fraction of each language for training.
    public var train: Double
    /// Fraction of each language for validation.
    public var validation: Double

    /// Fractions; the default is 80% / 10% / 10%.
    public init(train: Double = 0.8, validation: Double = 0.1) {
      self.train = train
      self.validation = validation
    }
  }

  /// The default split file of `root` for `seed`: `ROOT/split_seed<seed>.txt`.
  public static func defaultSplitFile(root: String, seed: UInt64) -> String {
    (root as NSString).appendingPathComponent("split_seed\(seed).txt")
  }

  /// The `subset` of the data set at `root`, from `splitFile` (written first when it does not
  /// exist).
  public static func load(
    root: String, subset: Subset, seed: UInt64 = 0, fractions: Fractions = Fractions(),
    splitFile: String? = nil
  ) throws(MediaError) -> DataSet {
    let file = splitFile ?? defaultSplitFile(root: root, seed: seed)
    let scan = try self.scan(root: root)
    if !FileManager.default.fileExists(atPath: file) {
      try writeSplit(scan: scan, seed: seed, fractions: fractions, to: file)
    }
    return try readSplit(file, root: root, classes: scan.classes, subset: subset, skipped: scan.skipped)
  }

  /// Language folders and their clips (relative paths `language/clip`, sorted).
  public static func scan(
    root: String
  ) throws(MediaError) -> (classes: [String], clips: [[String]], skipped: [MediaError]) {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw MediaError(.layout, file: root, "no such data-set folder")
    }
    let entries = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted()
    var classes: [String] = [], clips: [[String]] = [], skipped: [MediaError] = []
    for name in entries where !name.hasPrefix(".") {
      let dir = (root as NSString).appendingPathComponent(name)
      var sub: ObjCBool = false
      guard FileManager.default.fileExists(atPath: dir, isDirectory: &sub), sub.boolValue else { continue }
      let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
        .filter { !$0.hasPrefix(".") && audioExtensions.contains(($0 as NSString).pathExtension.lowercased()) }
        .sorted()
      if files.isEmpty {
        skipped.append(
          MediaError(.layout, file: dir, "skipped: no audio clips (.wav, .mp3, .flac, .ogg) in this language folder"))
        continue
      }
      classes.append(name)
      clips.append(files.map { name + "/" + $0 })
    }
    guard !classes.isEmpty else {
      throw MediaError(
        .layout, file: root, "no language folders with audio clips (ROOT/<language>/<clip>.wav|mp3|flac|ogg)")
    }
    return (classes, clips, skipped)
  }

  /// The split of every clip, per the rule above.
  public static func assign(
    clips: [[String]], classes: [String], seed: UInt64, fractions: Fractions
  ) -> [(Subset, String)] {
    var out: [(Subset, String)] = []
    for (language, files) in zip(classes, clips) {
      var generator = SplitMix64(seed: seed, name: language)
      var order = files
      // Fisher–Yates with the seeded generator (Swift's shuffle(using:) is not specified to
      // stay the same across releases).
      if order.count > 1 {
        for i in stride(from: order.count - 1, to: 0, by: -1) {
          let j = Int(generator.next() % UInt64(i + 1))
          order.swapAt(i, j)
        }
      }
      let n = Double(order.count)
      let trainEnd = Int((n * fractions.train).rounded())
      let validationEnd = min(order.count, Int((n * (fractions.train + fractions.validation)).rounded()))
      for (i, clip) in order.enumerated() {
        out.append((i < trainEnd ? .train : i < validationEnd ? .validation : .test, clip))
      }
    }
    return out
  }

  static func writeSplit(
    scan: (classes: [String], clips: [[String]], skipped: [MediaError]), seed: UInt64,
    fractions: Fractions, to file: String
  ) throws(MediaError) {
    guard fractions.train >= 0, fractions.validation >= 0, fractions.train + fractions.validation <= 1 else {
      throw MediaError(.layout, file: file, "split fractions must be non-negative and sum to at most 1")
    }
    var text =
      "# glassbox spoken-language split: seed \(seed), train \(fractions.train), validation \(fractions.validation), test \(((1 - fractions.train - fractions.validation) * 1e6).rounded() / 1e6)\n"
    text += "# one line per clip: subset language/clip\n"
    for (subset, clip) in assign(clips: scan.clips, classes: scan.classes, seed: seed, fractions: fractions).sorted(
      by: { $0.1 < $1.1 })
    {
      text += "\(subset.rawValue) \(clip)\n"
    }
    try writeFileAtomically(file, bytes: Array(text.utf8))
  }

  static func readSplit(
    _ file: String, root: String, classes: [String], subset: Subset, skipped: [MediaError]
  ) throws(MediaError) -> DataSet {
    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
      throw MediaError(.layout, file: file, "cannot read the split file as UTF-8 text")
    }
    let labels = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
    var examples: [LabeledFile] = []
    var missing: [String] = []
    var skipped = skipped
    for (number, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
      let line = raw.trimmingCharacters(in: .whitespaces)
      if line.isEmpty || line.hasPrefix("#") { continue }
      let fields = line.split(separator: " ", maxSplits: 1).map(String.init)
      guard fields.count == 2, let s = Subset(rawValue: fields[0]) else {
        throw MediaError(
          .layout, file: "\(file):\(number + 1)", "expected 'train|validation|test language/clip', found '\(line)'")
      }
      guard s == subset else { continue }
      let parts = fields[1].split(separator: "/").map(String.init)
      guard parts.count == 2, !parts.contains(".."), let label = labels[parts[0]] else {
        if parts.count == 2, !parts.contains("..") { missing.append(fields[1]); continue }
        throw MediaError(.layout, file: "\(file):\(number + 1)", "expected 'language/clip', found '\(fields[1])'")
      }
      let path = (root as NSString).appendingPathComponent(fields[1])
      if FileManager.default.fileExists(atPath: path) {
        examples.append(LabeledFile(path: path, label: label))
      } else {
        missing.append(fields[1])
      }
    }
    if !missing.isEmpty {
      let shown = missing.prefix(5).joined(separator: ", ") + (missing.count > 5 ? ", …" : "")
      skipped.append(
        MediaError(
          .layout, file: file,
          "skipped \(missing.count) \(subset.rawValue) clip\(missing.count == 1 ? "" : "s") the split names but \(root) lacks: \(shown)"
        ))
    }
    return DataSet(root: root, classes: classes, examples: examples, skipped: skipped)
  }
}
