import Foundation
import GlassboxFormat
import GlassboxIR
import GlassboxMedia
import GlassboxONNX

/// A model ready to compile: its graph (symbols such as `B` and `T` possibly unbound), its
/// weights, class labels, input recipes and provenance — from a `.model` file, a spec (with
/// safetensors weights or seeded initialisation), an ONNX model (`.onnx`, imported with its
/// weights) or a `.model`'s bytes.
///
/// ```swift
/// let model = try Model(contentsOf: "lid.model")
/// let session = try model.session()
/// let outputs = try session.run(["mfcc": try model.tensor(fromMedia: "clip.wav")])
/// ```
///
/// A `Model` is immutable and can be shared between threads; sessions compiled from it hold
/// their own memory.
public final class Model: @unchecked Sendable {
  /// The graph's name (`bilstm_attention2d`).
  public var name: String { graph.name }
  /// The file the model came from (nil for bytes or spec text).
  public let path: String?
  /// The checked graph, bound as far as the load's bindings go.
  public let graph: Graph
  /// Class names in logit order (empty when the model has none).
  public let labels: [String]
  /// Where the model came from: producer, spec hash, weights, training record.
  public let provenance: Provenance
  /// The spec text the graph was compiled from (nil for a `.model`).
  public let source: SourceText?
  /// What a partial weight import ignored or initialised (empty when the weights fit exactly);
  /// for an ONNX model, what the import changed (a weight stored transposed).
  public let weightNotes: [String]
  /// For a model imported from ONNX: each ONNX value name → the name of the graph value that
  /// stands for it (empty otherwise). Taps may name values either way.
  public let onnxNames: [String: String]
  let weights: Weights

  /// Where parameter values come from.
  enum Weights {
    /// A `.model`'s weights, by parameter index (memory-mapped).
    case file(ModelFile)
    /// Values in `graph.parameters` order.
    case tensors([Tensor])
    /// Made when the parameters' shapes are known (a spec whose classes are bound later).
    case deferred(WeightOptions)
  }

  /// How a spec gets its weights.
  public struct WeightOptions: Sendable {
    /// A safetensors `state_dict`, matched to the parameters by name; nil initialises every
    /// parameter as PyTorch would, from `seed`.
    public var file: String?
    /// Prefix rules applied to the file's names first (`features.` → `cnn.`); the first match wins.
    public var renames: [(old: String, new: String)]
    /// Seed of the initialisation (of every parameter, or of those `allowMissing` lets through).
    public var seed: UInt64
    /// Accept a file lacking some parameters (initialised from `seed`): a pretrained backbone
    /// under a new head.
    public var allowMissing: Bool
    /// Accept a file holding tensors the graph does not use.
    public var allowUnexpected: Bool
    /// How errors name the two allowances (the CLI's flags, or these properties).
    public var allowanceNames = (missing: "allowMissing", unexpected: "allowUnexpected")

    public init(
      file: String? = nil, renames: [(old: String, new: String)] = [], seed: UInt64 = 0,
      allowMissing: Bool = false, allowUnexpected: Bool = false
    ) {
      self.file = file
      self.renames = renames
      self.seed = seed
      self.allowMissing = allowMissing
      self.allowUnexpected = allowUnexpected
    }
  }

  init(
    graph: Graph, weights: Weights, labels: [String], provenance: Provenance, path: String?, source: SourceText?,
    weightNotes: [String] = [], onnxNames: [String: String] = [:]
  ) {
    self.weightNotes = weightNotes
    self.onnxNames = onnxNames
    self.graph = graph
    self.weights = weights
    self.labels = labels
    self.provenance = provenance
    self.path = path
    self.source = source
  }

  /// Loads a `.model` file, imports an ONNX model (`.onnx`), or compiles a spec file
  /// (`.graph`), with `bindings` for its symbols. A `.model` and an ONNX model keep their own
  /// weights (`weights` must be empty); a spec takes them from `weights`. Every problem names
  /// the file.
  public convenience init(
    contentsOf path: String, bindings: [String: Int] = [:],
    weights: WeightOptions = WeightOptions()
  ) throws(GlassboxError) {
    if ONNXImporter.isONNXFile(path) {
      guard weights.file == nil else {
        throw GlassboxError(.input, file: path, "an ONNX model carries its weights; weights files apply to specs")
      }
      if let exported = try Model.exportedONNX(path, bindings: bindings) {
        // A Glassbox export: its own graph, not the lowered one its nodes spell out.
        self.init(
          graph: exported.graph, weights: .tensors(exported.weights), labels: exported.labels,
          provenance: exported.provenance, path: path, source: nil)
      } else {
        try self.init(onnx: try Model.importONNX(path, bindings: bindings), path: path)
      }
    } else if Model.isModelFile(path) {
      guard weights.file == nil else {
        throw GlassboxError(.input, file: path, "a .model carries its weights; weights files apply to specs")
      }
      let file: ModelFile
      do {
        file = try ModelFile.load(path, checkingWeights: true)
      } catch {
        // Missing, unreadable or not a regular file: the file's problem, not a corrupt model.
        var isDirectory: ObjCBool = false
        let readable =
          FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
          && !isDirectory.boolValue && FileManager.default.isReadableFile(atPath: path)
        throw GlassboxError(readable ? .model : .file, file: error.path, error.description)
      }
      try self.init(modelFile: file, bindings: bindings)
    } else {
      let source = try Model.readSpec(path)
      try self.init(source: source, bindings: bindings, weights: weights)
    }
  }

  /// A `.model` file's bytes (as read from anywhere); `name` stands for the file in messages.
  public convenience init(bytes: [UInt8], name: String = "model", bindings: [String: Int] = [:]) throws(GlassboxError) {
    let file: ModelFile
    do {
      file = try ModelFile.decode(bytes, fileName: name, checkingWeights: true)
    } catch {
      throw GlassboxError.wrapping(error)
    }
    try self.init(modelFile: file, bindings: bindings)
  }

  /// An imported ONNX model: its graph, weights and the ONNX names of its values.
  convenience init(onnx imported: ONNXImport, path: String) throws(GlassboxError) {
    var provenance = Provenance()
    if let data = FileManager.default.contents(atPath: path) {
      provenance.stamp(specText: [UInt8](data))
      provenance.weights = .imported(sha256: provenance.specSHA256)
    }
    self.init(
      graph: imported.graph, weights: .tensors(imported.weights), labels: [], provenance: provenance,
      path: path, source: nil, weightNotes: imported.notes, onnxNames: imported.valueNames)
  }

  /// Imports an ONNX model, its problems as the library's errors: a missing file is a file
  /// error, operators without a Glassbox form `unsupported`, a malformed model a model error.
  public static func importONNX(_ path: String, bindings: [String: Int] = [:]) throws(GlassboxError) -> ONNXImport {
    do {
      return try ONNXImporter.importModel(contentsOf: path, bindings: bindings)
    } catch {
      throw GlassboxError.wrapping(error, file: path)
    }
  }

  /// Spec text; `fileName` names it in diagnostics.
  public convenience init(
    specText: String, fileName: String = "spec.graph", bindings: [String: Int] = [:],
    weights: WeightOptions = WeightOptions()
  ) throws(GlassboxError) {
    try self.init(source: SourceText(fileName: fileName, text: specText), bindings: bindings, weights: weights)
  }

  convenience init(modelFile file: ModelFile, bindings: [String: Int]) throws(GlassboxError) {
    var graph = file.graph
    if !bindings.isEmpty {
      let unknown = bindings.keys.filter { !graph.symbols.contains($0) }.sorted()
      guard unknown.isEmpty else {
        let symbols = graph.symbols.isEmpty ? "none" : graph.symbols.joined(separator: ", ")
        throw GlassboxError(
          .input, file: file.path,
          "bindings name \(unknown.joined(separator: ", ")), not a symbol of the model (its symbols: \(symbols))")
      }
      graph = try withGlassboxErrors(file: file.path) { try graph.bound(bindings) }
    }
    self.init(
      graph: graph, weights: .file(file), labels: file.labels, provenance: file.provenance, path: file.path,
      source: nil)
  }

  convenience init(source: SourceText, bindings: [String: Int], weights: WeightOptions) throws(GlassboxError) {
    let result = Spec.compile(source, bindings: bindings)
    guard let graph = result.graph else {
      throw GlassboxError(
        .spec, file: source.fileName, "the spec does not check", diagnostics: result.diagnostics,
        source: source)
    }
    var provenance = Provenance()
    provenance.stamp(specText: source.bytes)
    provenance.bindings = bindings
    let values: Weights
    var notes: [String] = []
    if graph.parameters.allSatisfy({ $0.type.shape.allSatisfy(\.isStatic) }) {
      let resolved = try Model.resolveNoting(weights, for: graph)
      (values, notes) = (.tensors(resolved.values), resolved.notes)
    } else {
      values = .deferred(weights)
    }
    provenance.weights = try Model.weightProvenance(weights)
    self.init(
      graph: graph, weights: values, labels: [], provenance: provenance, path: source.fileName, source: source,
      weightNotes: notes)
  }

  /// A copy with other labels, provenance or weights (`values` in `graph.parameters` order).
  public func with(
    labels: [String]? = nil, provenance: Provenance? = nil, values: [Tensor]? = nil,
    graph newGraph: Graph? = nil
  ) throws(GlassboxError) -> Model {
    let g = newGraph ?? graph
    if let labels, let n = g.labelCount, n != labels.count {
      throw GlassboxError(.input, "\(labels.count) labels but output '\(g.outputs[0].name)' has \(n) classes")
    }
    let w: Weights
    if let values {
      guard values.count == g.parameters.count else {
        throw GlassboxError(.input, "\(values.count) weights for \(g.parameters.count) parameters")
      }
      w = .tensors(values)
    } else {
      w = weights
    }
    return Model(
      graph: g, weights: w, labels: labels ?? self.labels, provenance: provenance ?? self.provenance,
      path: path, source: source, onnxNames: onnxNames)
  }

  // MARK: Signature

  /// The graph's inputs: name, element type and shape (symbols where a size is not bound).
  public var inputs: [TensorInfo] { graph.inputs.map { TensorInfo(name: graph[$0].name, type: graph[$0].type) } }
  /// The graph's outputs, in order (the first holds the class scores of a classifier).
  public var outputs: [TensorInfo] { graph.outputs.map { TensorInfo(name: $0.name, type: graph[$0.value].type) } }
  /// The taps compiled into the model.
  public var taps: [TapInfo] {
    graph.taps.map { t in
      TapInfo(
        name: t.name, kind: t.kind, values: t.operands.map { graph[$0].name },
        type: TensorInfo(name: t.name, type: t.type))
    }
  }
  /// The recipes that turn a media file into an input tensor, by input name.
  public var recipes: [InputRecipe] { graph.recipes }
  /// Symbols left to bind (`B`, `T`): sessions bind them from their inputs' shapes.
  public var symbols: [String] { graph.symbols }
  /// Parameter count (every element of every parameter).
  public var parameterCount: Int {
    graph.parameters.reduce(0) { $0 + $1.type.shape.reduce(1) { $0 * ($1.staticValue ?? 1) } }
  }

  /// The tap named `name`, or an error listing the model's taps.
  public func tap(named name: String) throws(GlassboxError) -> TapInfo {
    guard let t = taps.first(where: { $0.name == name }) else {
      let known = taps.map { "\($0.name) (\($0.kind.rawValue))" }
      throw GlassboxError(
        .input, file: path,
        "no tap '\(name)'; taps: \(known.isEmpty ? "none" : known.joined(separator: ", "))")
    }
    return t
  }

  // MARK: Inputs from media

  /// The input tensor for a media file through the recipe of `input` (the model's only input
  /// when nil), with a leading batch axis of 1: `[1, T, 3, H, W]` for a video, `[1, 768, 128]`
  /// for the MFCC of an audio clip.
  public func tensor(fromMedia path: String, input: String? = nil) throws(GlassboxError) -> Tensor {
    let (name, rank) = try inputNamed(input)
    guard let recipe = graph.recipes.first(where: { $0.input == name }) else {
      throw GlassboxError(.input, file: path, "input '\(name)' has no recipe for media files; give a tensor")
    }
    return try withGlassboxErrors(file: path) {
      let t = try FeatureExtractor(recipe).extract(path)
      return t.shape.count == rank - 1 ? Tensor(shape: [1] + t.shape, storage: t.storage) : t
    }
  }

  /// The tensor for input `input` (the model's only input when nil) in a file: a `.npy` as it
  /// is, or with a leading batch axis of 1 when it has one axis fewer than the input; any other
  /// file through the input's recipe (`tensor(fromMedia:input:)`). Errors name the file.
  public func tensor(fromFile path: String, input: String? = nil) throws(GlassboxError) -> Tensor {
    let (_, rank) = try inputNamed(input)
    guard path.hasSuffix(".npy") else { return try tensor(fromMedia: path, input: input) }
    let t = try withGlassboxErrors(file: path) { try NPY.read(path) }
    return t.shape.count == rank - 1 ? Tensor(shape: [1] + t.shape, storage: t.storage) : t
  }

  /// The input `name` (the only input when nil) and its rank.
  func inputNamed(_ name: String?) throws(GlassboxError) -> (name: String, rank: Int) {
    if let name {
      guard let id = graph.inputs.first(where: { graph[$0].name == name }) else {
        throw GlassboxError(
          .input, "\(graph.name) has no input '\(name)' (inputs: \(inputs.map(\.name).joined(separator: ", ")))")
      }
      return (name, graph[id].type.rank)
    }
    guard graph.inputs.count == 1, let id = graph.inputs.first else {
      throw GlassboxError(.input, "\(graph.name) has \(graph.inputs.count) inputs; name the one to read into")
    }
    return (graph[id].name, graph[id].type.rank)
  }

  // MARK: Weights

  /// Parameter values by name for `bound`, this model's graph with every symbol bound.
  func parameterValues(for bound: Graph) throws(GlassboxError) -> [String: Tensor] {
    let values: [Tensor]
    switch weights {
    case .file(let file): values = bound.parameters.indices.map { file.weight(ofParameter: $0) }
    case .tensors(let t): values = t
    case .deferred(let options): values = try Model.resolve(options, for: bound)
    }
    return Dictionary(zip(bound.parameters.map(\.name), values), uniquingKeysWith: { first, _ in first })
  }

  /// Every parameter's value for `bound` (this model's graph with symbols bound), in
  /// `graph.parameters` order.
  public func parameterTensors(for bound: Graph) throws(GlassboxError) -> [Tensor] {
    let byName = try parameterValues(for: bound)
    return bound.parameters.map { byName[$0.name] ?? Tensor(zeros: $0.type.dtype, shape: []) }
  }

  /// Every parameter's value in `graph.parameters` order; fails when a spec's parameter
  /// shapes still depend on unbound symbols.
  public func parameterTensors() throws(GlassboxError) -> [Tensor] {
    switch weights {
    case .file(let file): return graph.parameters.indices.map { file.weight(ofParameter: $0) }
    case .tensors(let t): return t
    case .deferred:
      let open = graph.parameters.filter { !$0.type.shape.allSatisfy(\.isStatic) }.map(\.name)
      throw GlassboxError(
        .input, file: path,
        "parameters \(open.prefix(3).joined(separator: ", ")) have unbound sizes; bind \(graph.symbols.joined(separator: ", ")) first"
      )
    }
  }

  /// Weights for a bound graph from a safetensors file (matched by name) or PyTorch-style
  /// initialisation; every missing, unexpected and mis-shaped tensor in one error.
  static func resolve(_ options: WeightOptions, for graph: Graph) throws(GlassboxError) -> [Tensor] {
    try resolveNoting(options, for: graph).values
  }

  /// `resolve`, with a note of what a partial import ignored or initialised (nothing when the
  /// file fits exactly).
  static func resolveNoting(
    _ options: WeightOptions, for graph: Graph
  ) throws(GlassboxError)
    -> (values: [Tensor], notes: [String])
  {
    guard let path = options.file else {
      return (
        try withGlassboxErrors(file: graph.name) { try Initialization.weights(for: graph, seed: options.seed) }, []
      )
    }
    let file = try withGlassboxErrors(file: path) { try SafeTensors.read(path) }
    let match = WeightImport(
      graph: graph, file: file,
      renames: options.renames.map { WeightImport.Rename(old: $0.old, new: $0.new) })
    let partial = options.allowMissing && match.misshaped.isEmpty && !match.found.isEmpty
    let fits = (match.isComplete || partial) && (match.unexpected.isEmpty || options.allowUnexpected)
    guard fits else {
      // Mis-shaped tensors have no allowance: the hints only where the allowances would make it fit.
      let names = options.allowanceNames
      let hints =
        !match.misshaped.isEmpty
        ? []
        : (match.missing.isEmpty || options.allowMissing ? [] : ["\(names.missing) to initialise the missing ones"])
          + (match.unexpected.isEmpty || options.allowUnexpected
            ? [] : ["\(names.unexpected) to ignore the unexpected ones"])
      throw GlassboxError(
        .model, file: path,
        "does not fit \(graph.name): \(match.missing.count) missing, \(match.misshaped.count) mis-shaped, \(match.unexpected.count) unexpected tensors"
          + (hints.isEmpty ? "" : " (pass " + hints.joined(separator: ", or ") + ")")
          + "\n  " + match.problems.joined(separator: "\n  "))
    }
    var notes: [String] = []
    if !match.problems.isEmpty {
      notes.append(
        (match.unexpected.isEmpty ? "" : "ignoring tensors the graph does not use")
          + (!match.unexpected.isEmpty && !match.missing.isEmpty ? "; " : "")
          + (match.missing.isEmpty ? "" : "initialising the missing parameters from seed \(options.seed)") + ":")
      notes += match.problems.map { "  \($0)" }
    }
    if let w = match.weights { return (w, notes) }
    let initial = try withGlassboxErrors(file: graph.name) {
      try Initialization.weights(for: graph, seed: options.seed)
    }
    return (zip(graph.parameters, initial).map { match.found[$0.name] ?? $1 }, notes)
  }

  /// A copy whose weights come from `options` (a safetensors file matched by name, or seeded
  /// initialisation) instead of its own; the provenance says so and drops any training record.
  /// `notes` lists what a partial import ignored or initialised.
  public func replacingWeights(_ options: WeightOptions) throws(GlassboxError) -> (model: Model, notes: [String]) {
    let (values, notes) = try Model.resolveNoting(options, for: graph)
    var p = provenance
    p.weights = try Model.weightProvenance(options)
    p.training = nil
    return (
      Model(
        graph: graph, weights: .tensors(values), labels: labels, provenance: p, path: path, source: source,
        onnxNames: onnxNames), notes
    )
  }

  static func weightProvenance(_ options: WeightOptions) throws(GlassboxError) -> Provenance.Weights {
    guard let file = options.file else { return .initialized(seed: options.seed) }
    guard let data = FileManager.default.contents(atPath: file) else {
      throw GlassboxError(.file, file: file, "cannot be read")
    }
    return .imported(sha256: SHA256.hex([UInt8](data)))
  }

  // MARK: Files

  /// Spec files larger than this are refused before reading.
  public static let maxSpecBytes = 64 << 20

  /// Whether `path` names a `.model` file: by its extension, or by its first bytes.
  public static func isModelFile(_ path: String) -> Bool {
    if path.hasSuffix(".model") { return true }
    guard let handle = FileHandle(forReadingAtPath: path) else { return false }
    defer { try? handle.close() }
    return (try? handle.read(upToCount: 8)) == Data("GBXMODEL".utf8)
  }

  /// A spec file's text, naming the file in every error.
  public static func readSpec(_ path: String) throws(GlassboxError) -> SourceText {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      throw GlassboxError(.file, file: path, "no such file")
    }
    guard !isDirectory.boolValue else { throw GlassboxError(.file, file: path, "is a directory, not a spec file") }
    let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
    guard size <= maxSpecBytes else {
      throw GlassboxError(.file, file: path, "spec file is \(size) bytes; the limit is \(maxSpecBytes)")
    }
    guard let data = FileManager.default.contents(atPath: path) else {
      throw GlassboxError(.file, file: path, "cannot be read")
    }
    do {
      return try SourceText(fileName: path, bytes: [UInt8](data))
    } catch {
      throw GlassboxError(.spec, file: path, error.description, diagnostics: [error])
    }
  }

  /// The model as a `.model` file's contents (graph as loaded, every weight, labels,
  /// provenance stamped with this producer).
  public func contents() throws(GlassboxError) -> ModelContents {
    var p = provenance
    p.stamp(specText: source?.bytes)
    return ModelContents(graph: graph, weights: try parameterTensors(), labels: labels, provenance: p)
  }

  /// Writes the model as a `.model` file through a temporary file renamed into place.
  public func write(to path: String) throws(GlassboxError) {
    let c = try contents()
    do {
      try ModelFile.write(c, to: path)
    } catch {
      // The contents are made: what fails here is the destination (no folder, no space, no access).
      throw GlassboxError(.file, file: error.path, error.description)
    }
  }
}

/// A named tensor of a model's signature: element type and shape, symbolic where unbound.
public struct TensorInfo: Sendable, Equatable, CustomStringConvertible {
  public var name: String
  public var dtype: DType
  /// Each axis: a size, or the symbol (or product of symbols, `B*T`) that sizes it.
  public var shape: [Dimension]

  init(name: String, type: TensorType) {
    self.name = name
    self.dtype = type.dtype
    self.shape = type.shape.map { d in d.staticValue.map(Dimension.fixed) ?? .symbol(d.description) }
  }

  /// `mfcc f32[B, 768, 128]`.
  public var description: String { "\(name) \(dtype.rawValue)[\(shape.map(\.description).joined(separator: ", "))]" }
}

/// One axis of a signature.
public enum Dimension: Sendable, Equatable, CustomStringConvertible {
  case fixed(Int)
  case symbol(String)

  public var description: String {
    switch self {
    case .fixed(let n): String(n)
    case .symbol(let s): s
    }
  }
}

/// A tap of a model: its name, kind, the values it looks at and its type.
public struct TapInfo: Sendable, Equatable {
  public var name: String
  public var kind: TapKind
  /// The graph values the tap reads (a feature map, a classifier weight).
  public var values: [String]
  /// The raw map's (or value's) type.
  public var type: TensorInfo
  /// Whether it explains a class score (the predicted class unless a target is given).
  public var needsClass: Bool { kind.needsClass }
}

/// The library's version, written into the provenance of every `.model` it writes.
public let glassboxVersion = Provenance.currentProducerVersion
