import Foundation
@testable import GlassboxMedia
import GlassboxIR
import Testing

/// The two data-set layouts, the streaming loader and the feature cache.
struct DatasetTests {
  static func write(_ text: String, to path: String) throws {
    try FileManager.default.createDirectory(
      atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try text.write(toFile: path, atomically: true, encoding: .utf8)
  }

  /// ROOT/<language>/clip_i.wav tones (a different pitch per language), a sidecar per clip,
  /// and an empty folder.
  static func spokenLanguageRoot(_ directory: TemporaryDirectory, perLanguage: Int = 10) throws -> String {
    let root = directory.path("lid")
    for (l, language) in ["Hindi", "Tamil", "Telugu"].enumerated() {
      try FileManager.default.createDirectory(atPath: root + "/" + language, withIntermediateDirectories: true)
      for i in 0..<perLanguage {
        try writeWAV(
          "\(root)/\(language)/clip_\(i).wav",
          interleaved: sine(hz: 200 + 100 * Double(l) + Double(i), sampleRateHz: 16000, seconds: 0.3),
          channels: 1, sampleRateHz: 16000, bits: 16)
        try write("{}", to: "\(root)/\(language)/clip_\(i).json")
      }
    }
    try FileManager.default.createDirectory(atPath: root + "/Empty", withIntermediateDirectories: true)
    return root
  }

  // MARK: Spoken language

  @Test func spokenLanguageSplitIsStratifiedDeterministicAndWritten() throws {
    let directory = try TemporaryDirectory()
    let root = try Self.spokenLanguageRoot(directory)
    let train = try SpokenLanguage.load(root: root, subset: .train, seed: 7)
    #expect(train.classes == ["Hindi", "Tamil", "Telugu"])
    #expect(train.classCounts == [8, 8, 8])
    #expect(
      train.skipped.map(\.description) == [
        "\(root)/Empty: skipped: no audio clips (.wav, .mp3, .flac, .ogg) in this language folder"
      ])
    let validation = try SpokenLanguage.load(root: root, subset: .validation, seed: 7)
    let test = try SpokenLanguage.load(root: root, subset: .test, seed: 7)
    #expect(validation.classCounts == [1, 1, 1] && test.classCounts == [1, 1, 1])
    let all = Set((train.examples + validation.examples + test.examples).map(\.path))
    #expect(all.count == 30, "each clip in exactly one subset")

    let splitFile = SpokenLanguage.defaultSplitFile(root: root, seed: 7)
    let text = try String(contentsOfFile: splitFile, encoding: .utf8)
    #expect(text.hasPrefix("# glassbox spoken-language split: seed 7, train 0.8, validation 0.1, test 0.1\n"))
    #expect(text.split(separator: "\n").filter { !$0.hasPrefix("#") }.count == 30)

    // The same seed gives the same split from scratch; another seed another one.
    let again = SpokenLanguage.assign(
      clips: try SpokenLanguage.scan(root: root).clips, classes: train.classes, seed: 7, fractions: .init())
    #expect(Set(again.filter { $0.0 == .train }.map { root + "/" + $0.1 }) == Set(train.examples.map(\.path)))
    let other = try SpokenLanguage.load(root: root, subset: .train, seed: 8)
    #expect(Set(other.examples.map(\.path)) != Set(train.examples.map(\.path)))

    // A clip removed after the split was written: the split file still rules, the clip is a logged skip.
    let gone = train.examples[0].path
    try FileManager.default.removeItem(atPath: gone)
    let reloaded = try SpokenLanguage.load(root: root, subset: .train, seed: 7)
    #expect(reloaded.examples.count == 23)
    let relative = gone.dropFirst(root.count + 1)
    #expect(
      reloaded.skipped.last?.description
        == "\(splitFile): skipped 1 train clip the split names but \(root) lacks: \(relative)")
  }

  @Test func spokenLanguageLayoutErrors() throws {
    let directory = try TemporaryDirectory()
    let nothing = directory.path("none")
    #expect(throws: MediaError(.layout, file: nothing, "no such data-set folder")) {
      try SpokenLanguage.load(root: nothing, subset: .train)
    }
    let empty = directory.path("empty")
    try FileManager.default.createDirectory(atPath: empty + "/Hindi", withIntermediateDirectories: true)
    #expect(
      throws: MediaError(
        .layout, file: empty, "no language folders with audio clips (ROOT/<language>/<clip>.wav|mp3|flac|ogg)")
    ) {
      try SpokenLanguage.load(root: empty, subset: .train)
    }
    let root = try Self.spokenLanguageRoot(directory, perLanguage: 2)
    let split = directory.path("bad_split.txt")
    try Self.write("train Hindi/clip_0.wav\nfinal Hindi/clip_1.wav\n", to: split)
    #expect(
      throws: MediaError(
        .layout, file: "\(split):2", "expected 'train|validation|test language/clip', found 'final Hindi/clip_1.wav'")
    ) {
      try SpokenLanguage.load(root: root, subset: .train, splitFile: split)
    }
  }

  // MARK: HMDB-51

  static func hmdbRoot(_ directory: TemporaryDirectory) throws -> String {
    let root = directory.path("hmdb")
    for (c, name) in ["clap", "wave"].enumerated() {
      try FileManager.default.createDirectory(atPath: root + "/" + name, withIntermediateDirectories: true)
      for i in 0..<3 {
        try ffmpeg(
          "-f", "lavfi", "-i", "color=c=\(c == 0 ? "red" : "blue"):s=32x24:r=10", "-frames:v", "20",
          "-c:v", "mpeg4", "\(root)/\(name)/\(name)_\(i).avi")
      }
    }
    let splits = root + "/testTrainMulti_7030_splits"
    try write("clap_0.avi 1 \nclap_1.avi 2 \nclap_2.avi 0 \n", to: splits + "/clap_test_split1.txt")
    try write(
      "wave_0.avi 1\nwave_1.avi 1\nwave_2.avi 2\nwave_9.avi 1\nwave_8.avi 1\n", to: splits + "/wave_test_split1.txt")
    try write("clap_0.avi 2\n", to: splits + "/clap_test_split2.txt")
    return root
  }

  @Test func hmdbSplitsPickSubsetsAndReportMissingClips() throws {
    let directory = try TemporaryDirectory()
    let root = try Self.hmdbRoot(directory)
    let train = try HMDB51.load(root: root, split: 1, subset: .train)
    #expect(train.classes == ["clap", "wave"])
    #expect(
      train.examples.map { ($0.path as NSString).lastPathComponent } == ["clap_0.avi", "wave_0.avi", "wave_1.avi"])
    #expect(train.examples.map(\.label) == [0, 1, 1])
    #expect(
      train.skipped.map(\.description) == [
        "\(root)/testTrainMulti_7030_splits/wave_test_split1.txt: skipped 2 train clips missing from \(root)/wave: wave_9.avi, wave_8.avi"
      ])
    let test = try HMDB51.load(root: root, split: 1, subset: .test)
    #expect(test.examples.count == 2 && test.skipped.isEmpty)
    let unused = try HMDB51.load(root: root, split: 1, subset: .unused)
    #expect(unused.examples.map(\.path) == ["\(root)/clap/clap_2.avi"])
    // Split 2 has only one class's file: only that class.
    #expect(try HMDB51.load(root: root, split: 2, subset: .test).classes == ["clap"])
    #expect(throws: MediaError(.layout, file: root, "HMDB-51 has splits 1, 2 and 3; found 4")) {
      try HMDB51.load(root: root, split: 4, subset: .train)
    }
    let noSplit3 = try #require(throws: MediaError.self) { try HMDB51.load(root: root, split: 3, subset: .train) }
    #expect(noSplit3.message.hasPrefix("no split files '<class>_test_split3.txt' in"))

    try Self.write("clap_0.avi train\n", to: root + "/testTrainMulti_7030_splits/clap_test_split1.txt")
    #expect(
      throws: MediaError(
        .layout, file: "\(root)/testTrainMulti_7030_splits/clap_test_split1.txt:1",
        "expected 'clip.avi 0|1|2', found 'clap_0.avi train'")
    ) {
      try HMDB51.load(root: root, split: 1, subset: .train)
    }
  }

  // MARK: Streaming and the cache

  @Test func streamKeepsOrderSkipsBadFilesAndBoundsMemory() throws {
    let directory = try TemporaryDirectory()
    let root = try Self.spokenLanguageRoot(directory, perLanguage: 4)
    var set = try SpokenLanguage.load(root: root, subset: .train, seed: 1, fractions: .init(train: 1, validation: 0))
    let bad = root + "/Tamil/broken.wav"
    try Data("RIFF nonsense".utf8).write(to: URL(fileURLWithPath: bad))
    set.examples.insert(LabeledFile(path: bad, label: 1), at: 5)
    let recipe = InputRecipe(input: "mfcc", kind: .audio, options: Attributes(["frames": .int(12)]))
    let order = Array(set.examples.indices.reversed())
    let logged = Logged()
    let stream = try FeatureStream(
      dataSet: set, recipe: recipe, order: order,
      memoryBudgetBytes: 3 * 12 * 128 * 4, workers: 2,
      log: { logged.append($0) })
    #expect(stream.capacity == 3)
    var paths: [String] = []
    while let example = stream.next() {
      #expect(example.tensor.shape == [12, 128])
      paths.append(example.path)
    }
    #expect(paths == order.map { set.examples[$0].path }.filter { $0 != bad })
    #expect(stream.skipped.map(\.file) == [bad])
    #expect(logged.errors.map(\.file) == [bad])
  }

  @Test func cacheIsKeyedByContentAndRecipe() throws {
    let directory = try TemporaryDirectory()
    let root = try Self.spokenLanguageRoot(directory, perLanguage: 2)
    let set = try SpokenLanguage.load(root: root, subset: .train, seed: 1, fractions: .init(train: 1, validation: 0))
    let cache = try FeatureCache(directory: directory.path("cache"))
    let recipe = InputRecipe(input: "mfcc", kind: .audio, options: Attributes(["frames": .int(8)]))
    let first = try FeatureStream(dataSet: set, recipe: recipe, cache: cache, workers: 2)
    var tensors: [Tensor] = []
    while let e = first.next() { tensors.append(e.tensor) }
    #expect(first.cacheHits == 0)
    let second = try FeatureStream(dataSet: set, recipe: recipe, cache: cache, workers: 2)
    var again: [Tensor] = []
    while let e = second.next() { again.append(e.tensor) }
    #expect(second.cacheHits == 6)
    #expect(again == tensors)

    // A copy of a clip under another name hits; other bytes or another recipe miss.
    let extractor = try FeatureExtractor(recipe)
    let original = set.examples[0].path
    let copy = directory.path("copy.wav")
    try FileManager.default.copyItem(atPath: original, toPath: copy)
    #expect(try cache.features(copy, extractor: extractor).hit)
    #expect(
      try FeatureCache.key(file: original, recipeKey: extractor.recipeKey)
        != FeatureCache.key(
          file: original,
          recipeKey: try FeatureExtractor(
            InputRecipe(input: "mfcc", kind: .audio, options: Attributes(["frames": .int(9)]))
          ).recipeKey))
    try writeWAV(
      copy, interleaved: sine(hz: 999, sampleRateHz: 16000, seconds: 0.3), channels: 1, sampleRateHz: 16000, bits: 16)
    #expect(try !cache.features(copy, extractor: extractor).hit)

    // A damaged entry is ignored and rewritten.
    let key = try FeatureCache.key(file: original, recipeKey: extractor.recipeKey)
    try Data([1, 2, 3]).write(to: URL(fileURLWithPath: cache.path(forKey: key)))
    let repaired = try cache.features(original, extractor: extractor)
    #expect(!repaired.hit && repaired.tensor == tensors[0])
    #expect(try cache.features(original, extractor: extractor).hit)
  }

  @Test func sha256MatchesKnownDigest() throws {
    #expect(sha256(bytes: Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  }

  @Test func videoDataSetStreams() throws {
    let directory = try TemporaryDirectory()
    let root = try Self.hmdbRoot(directory)
    let set = try HMDB51.load(root: root, split: 1, subset: .train)
    let recipe = InputRecipe(
      input: "frames", kind: .video,
      options: Attributes([
        "frames": .int(4), "size": .int(16), "sampling": .string("uniform"), "stride": .int(1),
        "mean": .list([.float(0.5), .float(0.5), .float(0.5)]), "std": .list([.float(0.5), .float(0.5), .float(0.5)]),
      ]))
    let stream = try FeatureStream(dataSet: set, recipe: recipe, workers: 1)
    var labels: [Int] = []
    while let e = stream.next() {
      #expect(e.tensor.shape == [4, 3, 16, 16])
      // Red clips: R channel high; blue clips: B channel high.
      let v = e.tensor.floats
      let red = v[0], blue = v[2 * 256]
      #expect(e.label == 0 ? red > blue : blue > red)
      labels.append(e.label)
    }
    #expect(labels == [0, 1, 1])
  }
}

/// Errors handed to a stream's log callback, collected across threads.
final class Logged: @unchecked Sendable {
  private let lock = NSLock()
  private var items: [MediaError] = []
  func append(_ e: MediaError) { lock.lock(); items.append(e); lock.unlock() }
  var errors: [MediaError] { lock.lock(); defer { lock.unlock() }; return items }
}
