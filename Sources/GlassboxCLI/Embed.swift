import ArgumentParser
import Foundation
import GlassboxAnalysis
import GlassboxFormat
import GlassboxIR
import GlassboxMedia
import GlassboxPasses
import GlassboxRuntime

/// `glassbox embed MODEL --data DIR -o plot.svg`: a t-SNE map of what the model's LSTM makes of
/// a data set, coloured by class.
struct Embed: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Draw a t-SNE map of a tap (the LSTM outputs by default) over a data set, coloured by class.",
    discussion: """
      Runs the model over every example of one split of DIR, reads the tap (`tap hidden =
      hidden(lstm)` in the study specs: [B, T, H]), averages it over time, embeds the vectors
      with t-SNE (perplexity 30, scikit-learn's schedule; exact up to 1000 examples, Barnes–Hut above) and writes an SVG scatter plot
      with a legend, the points as PLOT.json and PLOT.csv beside it, and prints the map's
      trustworthiness T(5) (1 = every neighbour on the map is a neighbour in the features).

      DIR is either a tensor folder, DIR/{train,val,test}/<class>/*.npy (one example per file,
      the input's shape without the batch axis), or a raw-media data set read through the
      input's recipe: ROOT/<language>/<clip>.wav for audio (the seeded 80/10/10 split), the
      HMDB-51 layout for video (split 1; train and test).
      """)

  @OptionGroup var options: SpecOptions

  @Option(help: ArgumentHelp("The data set: a tensor folder or a raw-media data set.", valueName: "DIR"))
  var data: String

  @Option(help: "Which split: train, val or test.")
  var split = "train"

  @Option(help: "The tap to embed (an activation, attention or hidden tap).")
  var tap = "hidden"

  @Option(name: .shortAndLong, help: ArgumentHelp("The SVG plot to write (PLOT.json and PLOT.csv go beside it).", valueName: "PLOT.svg"))
  var output: String

  @Flag(help: "Print the summary as JSON.")
  var json = false

  @Option(help: "t-SNE perplexity (lowered to (n − 1) / 3 for small sets).")
  var perplexity = 30.0

  @Option(help: "Embed at most this many examples (taken in turn from each class).")
  var limit = 20000

  @Option(help: ArgumentHelp("exact, barnes_hut, or automatic (exact up to 1000 examples).", valueName: "METHOD"))
  var method = "automatic"

  @Option(help: "Examples per forward pass.")
  var batch = 16

  @Option(help: ArgumentHelp("Feature cache folder for raw media.", valueName: "DIR"))
  var cache: String?

  @Option(help: "Seed of PyTorch-style initialisation when MODEL is a spec (untrained weights).")
  var seed: UInt64 = 0

  @Option(help: "Cores to use.")
  var threads = 2

  func validate() throws {
    guard output.hasSuffix(".svg") else { throw ValidationError("-o \(output): the plot is an .svg file") }
    guard batch >= 1, threads >= 1, limit >= 4 else { throw ValidationError("--batch and --threads must be at least 1, --limit at least 4") }
    guard TSNE.Method(rawValue: method) != nil else {
      throw ValidationError("--method \(method): use exact, barnes_hut or automatic")
    }
    guard ["train", "val", "validation", "test"].contains(split) else {
      throw ValidationError("--split \(split): use train, val or test")
    }
  }

  func run() throws {
    let loaded = try loadGraph(options, checkingWeights: true)
    guard let graph = loaded.result.graph else {
      printDiagnostics(loaded.result.diagnostics, source: loaded.source)
      throw ExitCode(1)
    }
    let start = Date()
    let features = try TapFeatures.collect(graph: graph, model: loaded.model, seed: seed, data: data, split: split,
                                           tap: tap, batch: batch, limit: limit, cache: cache, threads: threads)
    var tsne = TSNE()
    tsne.perplexity = perplexity
    tsne.method = TSNE.Method(rawValue: method) ?? .automatic
    let source = "glassbox embed \(options.spec) --data \(data) --split \(split) --tap \(tap)"
    let map = try EmbeddingMap.make(features: features.points, labels: features.labels, files: features.files,
                                    classes: features.classes, source: source, tsne: tsne)
    let name = ((options.spec as NSString).lastPathComponent as NSString).deletingPathExtension
    let stem = (output as NSString).deletingPathExtension
    try writeAtomically(Data(try map.svg(title: "\(name): \(tap) over \(split) (time-averaged)").utf8), to: output)
    try writeAtomically(try map.json(), to: stem + ".json")
    try writeAtomically(Data(map.csv.utf8), to: stem + ".csv")
    let seconds = Date().timeIntervalSince(start)
    for s in features.skipped { FileHandle.standardError.write(Data("glassbox embed: \(s)\n".utf8)) }
    if json {
      var summary: [String: Any] = ["plot": output, "points": map.points.count, "classes": map.classes,
                                    "perplexity": map.perplexity, "kl_divergence": map.klDivergence,
                                    "tsne_seconds": map.seconds, "seconds": seconds, "skipped": features.skipped.count]
      summary["trustworthiness"] = map.trustworthiness ?? NSNull()
      let bytes = try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys])
      print(String(decoding: bytes, as: UTF8.self))
    } else {
      let trust = map.trustworthiness.map { String(format: "%.4f", $0) } ?? "n/a (10 examples or fewer)"
      print("embed: \(map.points.count) examples, \(map.classes.count) classes, \(map.featureDimensions)-D \(tap) features")
      print("trustworthiness T(5) = \(trust)  (KL \(String(format: "%.3f", map.klDivergence)), \(map.iterations) iterations, t-SNE \(String(format: "%.1f", map.seconds)) s, total \(String(format: "%.1f", seconds)) s)")
      print("wrote \(output), \(stem).json, \(stem).csv")
    }
  }
}

/// Feature vectors of a tap over one split of a data set: one row per example.
struct TapFeatures {
  var points: Points
  var labels: [Int]
  var files: [String]
  var classes: [String]
  /// Examples that could not be read, each naming its file.
  var skipped: [String]

  /// Runs `graph` over the split and collects the tap, averaged over time when it is
  /// `[B, T, …]` of rank 3 (`[B, T, H]` → `[B, H]`), kept as is for `[B, H]`, and flattened per
  /// example otherwise. The last batch is padded with zeros (examples are independent in
  /// inference) and the padding dropped.
  static func collect(graph: Graph, model: ModelFile?, seed: UInt64, data: String, split: String, tap: String,
                      batch: Int, limit: Int, cache: String?, threads: Int) throws -> TapFeatures {
    guard let t = graph.taps.first(where: { $0.name == tap }) else {
      let usable = graph.taps.filter { [.activation, .attention, .hidden].contains($0.kind) }.map(\.name)
      throw CommandError("\(graph.name) has no tap '\(tap)'; taps it can embed: \(usable.isEmpty ? "none" : usable.joined(separator: ", "))")
    }
    guard [.activation, .attention, .hidden].contains(t.kind) else {
      throw CommandError("tap '\(tap)' is a \(t.kind.rawValue) tap; embed reads activation, attention and hidden taps")
    }

    var rows: [[Double]] = [], labels: [Int] = [], files: [String] = []
    let examples = try BatchedInference.run(graph: graph, model: model, seed: seed, data: data, split: split, batch: batch,
                                            limit: limit, cache: cache, threads: threads, keepTaps: true,
                                            progressLabel: "embed") { out, pending in
      guard let tapped = out[tap] else { throw CommandError("the compiled program did not produce tap '\(tap)'") }
      let v = tapped.floats
      let shape = tapped.shape
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
        rows.append(row)
        labels.append(e.label)
        files.append(e.file)
      }
    }
    guard !rows.isEmpty else { throw CommandError("\(data): no examples in split '\(split)'") }
    return TapFeatures(points: try Points(rows: rows), labels: labels, files: files, classes: examples.classes,
                       skipped: examples.skipped)
  }
}

/// A model's inference program run over one split of a data set, a batch at a time.
enum BatchedInference {
  /// Compiles `graph` (weights from `model`, else seeded initialisation) for batches of
  /// `batch` examples of the first example's shape, and calls `body` with each batch's outputs
  /// (by name; `[batch, …]`) and the examples in it — the first `examples.count` rows; the last
  /// batch is padded with zeros (examples are independent in inference). `keepTaps: false`
  /// drops the graph's taps so the program computes the outputs only. With `progressLabel`,
  /// progress goes to standard error (`ProgressReporter`). Returns the source (its classes and
  /// what it skipped).
  @discardableResult
  static func run(graph: Graph, model: ModelFile?, seed: UInt64, data: String, split: String, batch: Int, limit: Int,
                  cache: String?, threads: Int, keepTaps: Bool, progressLabel: String? = nil,
                  _ body: (_ outputs: [String: Tensor], _ examples: [ExampleSource.Example]) throws -> Void) throws -> ExampleSource {
    guard graph.inputs.count == 1, let inputID = graph.inputs.first else {
      throw CommandError("\(graph.name): needs a graph with one input; it has \(graph.inputs.count)")
    }
    let inputName = graph[inputID].name
    let examples = try ExampleSource.open(data: data, split: split, graph: graph, input: inputName, cache: cache, limit: limit,
                                          splitSeed: model?.provenance.training?.seed ?? 0)
    var program: Executable?
    var exampleShape: [Int] = []
    var pending: [ExampleSource.Example] = []
    let progress = progressLabel.map { ProgressReporter(label: $0, total: examples.count) }
    var done = 0

    func flush() throws {
      guard !pending.isEmpty else { return }
      if program == nil {
        exampleShape = pending[0].tensor.shape
        let found = try graph.inferBindings(inputShapes: [inputName: [batch] + exampleShape])
        var bound = try graph.bound(found)
        if !keepTaps { bound.taps = [] }
        let parameters: [String: Tensor]
        if let model {
          parameters = Dictionary(uniqueKeysWithValues: bound.parameters.indices.map { (bound.parameters[$0].name, model.weight(ofParameter: $0)) })
        } else {
          parameters = Dictionary(uniqueKeysWithValues: zip(bound.parameters.map(\.name), try Initialization.weights(for: bound, seed: seed)))
        }
        var module = Module(graph: bound, weights: parameters)
        Pipeline.run(Pipeline.inference, on: &module)
        program = try Executable(graph: module.graph, parameters: module.weights, threads: threads)
      }
      guard let program else { return }
      let per = exampleShape.reduce(1, *)
      var values = [Float](repeating: 0, count: batch * per)
      for (b, e) in pending.enumerated() {
        guard e.tensor.shape == exampleShape else {
          throw CommandError("\(e.file): shape \(e.tensor.shape) differs from the first example's \(exampleShape)")
        }
        let f = e.tensor.floats
        for k in 0..<per { values[b * per + k] = f[k] }
      }
      try body(try program.run(inputs: [inputName: Tensor(shape: [batch] + exampleShape, f32: values)]), pending)
      done += pending.count
      progress?.update(done: done, note: ((pending.last?.file ?? "") as NSString).lastPathComponent)
      pending.removeAll()
    }

    while let e = try examples.next() {
      pending.append(e)
      if pending.count == batch { try flush() }
    }
    try flush()
    // Examples that could not be read count as done (they are listed as skipped).
    if done < examples.count { progress?.update(done: examples.count, note: "\(examples.count - done) skipped") }
    progress?.finish()
    return examples
  }
}

/// The examples of one split, from a tensor folder or a raw-media data set.
final class ExampleSource {
  struct Example {
    var tensor: Tensor
    var label: Int
    var file: String
  }

  let classes: [String]
  /// Examples in the split (after `limit`), unreadable ones included.
  let count: Int
  private var tensorFiles: [LabeledFile] = []
  private var position = 0
  private var stream: FeatureStream?
  private var mediaSkipped: [String] = []

  /// Problems that did not stop reading, each naming its file.
  var skipped: [String] { mediaSkipped + (stream?.skipped.map(\.description) ?? []) }

  private init(classes: [String], count: Int, tensorFiles: [LabeledFile], stream: FeatureStream?, skipped: [String]) {
    self.classes = classes
    self.count = count
    self.tensorFiles = tensorFiles
    self.stream = stream
    mediaSkipped = skipped
  }

  /// The tensor-folder layout, `DIR/<split>/<class>/*.npy`, when DIR has it; nil otherwise.
  /// `val` and `validation` name the same split.
  static func tensorFolder(data: String, split: String) -> (classes: [String], files: [LabeledFile])? {
    let names = split == "validation" || split == "val" ? ["val", "validation"] : [split]
    let fm = FileManager.default
    for name in names {
      let dir = (data as NSString).appendingPathComponent(name)
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

  /// Up to `limit` of `files`, taken in turn from each class so every class stays represented.
  static func balanced(_ files: [LabeledFile], limit: Int) -> [Int] {
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

  static func open(data: String, split: String, graph: Graph, input: String, cache: String?, limit: Int,
                   splitSeed: UInt64) throws -> ExampleSource {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: data, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw CommandError("--data \(data): no such folder")
    }
    if let folder = tensorFolder(data: data, split: split) {
      let files = balanced(folder.files, limit: limit).map { folder.files[$0] }
      return ExampleSource(classes: folder.classes, count: files.count, tensorFiles: files, stream: nil, skipped: [])
    }
    guard let recipe = graph.recipes.first(where: { $0.input == input }) else {
      throw CommandError("--data \(data): no tensor folder \(data)/\(split)/<class>/*.npy, and input '\(input)' has no recipe for raw media")
    }
    let set: DataSet
    switch recipe.kind {
    case .audio:
      let subset: SpokenLanguage.Subset = split == "train" ? .train : split == "test" ? .test : .validation
      set = try SpokenLanguage.load(root: data, subset: subset, seed: splitSeed)
    case .video, .image:
      guard split != "val", split != "validation" else {
        throw CommandError("--split \(split): the HMDB-51 layout has train and test splits only")
      }
      set = try HMDB51.load(root: data, split: 1, subset: split == "train" ? .train : .test)
    }
    let order = balanced(set.examples, limit: limit)
    let stream = try FeatureStream(dataSet: set, recipe: recipe, order: order, cache: try cache.map { try FeatureCache(directory: $0) })
    return ExampleSource(classes: set.classes, count: order.count, tensorFiles: [], stream: stream,
                         skipped: set.skipped.map(\.description))
  }

  /// The next example, or nil at the end.
  func next() throws -> Example? {
    if let stream {
      guard let e = stream.next() else { return nil }
      return Example(tensor: e.tensor, label: e.label, file: e.path)
    }
    guard position < tensorFiles.count else { return nil }
    let f = tensorFiles[position]
    position += 1
    let t = try NPY.read(f.path)
    guard t.dtype.isFloatingPoint else { throw CommandError("\(f.path): holds \(t.dtype.rawValue); embed needs floating-point examples") }
    return Example(tensor: t, label: f.label, file: f.path)
  }
}
