import Foundation
import GlassboxFormat
import GlassboxIR
import GlassboxPasses
import GlassboxRuntime

/// How a session compiles and runs.
public struct SessionOptions: Sendable {
  /// Cores the kernels split their work over.
  public var threads: Int
  /// Sizes for the model's symbols (`["B": 1]`); symbols left unbound take their sizes from
  /// each run's inputs (one compiled program per distinct input shape, kept for reuse).
  public var bindings: [String: Int]
  /// Taps `run` returns besides the outputs: nil for every tap that is a value of the forward
  /// pass (activation, attention, hidden), or the names of any taps — those that explain a
  /// class then explain the predicted one.
  public var taps: [String]?

  public init(threads: Int = 2, bindings: [String: Int] = [:], taps: [String]? = nil) {
    self.threads = threads
    self.bindings = bindings
    self.taps = taps
  }
}

/// Which class an explanation explains.
public enum Target: Sendable, Equatable {
  /// Each example's predicted class (the argmax of its class scores, the first on ties).
  case predicted
  /// One class for every example.
  case fixed(Int)
  /// A class per example; -1 stands for that example's predicted class.
  case each([Int])
}

/// A model compiled for running: programs specialised to the input shapes seen (or bound),
/// each over one arena. Runs are serialised by a lock, so one session may be shared between
/// threads (they take turns); for parallel runs, give each thread a session of its own.
public final class Session: @unchecked Sendable {
  public let model: Model
  public let options: SessionOptions
  /// The model's graph with the session's bindings.
  let graph: Graph
  private let lock = NSLock()
  /// Compiled programs by purpose and input shapes, oldest first.
  private var programs: [(key: ProgramKey, program: CompiledProgram)] = []
  /// Programs kept at once; the oldest goes when another shape arrives.
  static let programLimit = 8

  /// What a program computes, for the cache.
  struct ProgramKey: Hashable {
    /// `run`, or `explain:TAP:SCOPE`.
    var purpose: String
    var shapes: [[Int]]
  }

  /// An executable with what its lowering made of the taps.
  package final class CompiledProgram {
    package let executable: Executable
    package let bound: Graph
    package let lowered: [LowerTaps.Lowered]
    init(executable: Executable, bound: Graph, lowered: [LowerTaps.Lowered]) {
      self.executable = executable
      self.bound = bound
      self.lowered = lowered
    }
  }

  init(model: Model, options: SessionOptions) throws(GlassboxError) {
    guard options.threads >= 1 else {
      throw GlassboxError(.input, "threads must be at least 1, found \(options.threads)")
    }
    var graph = model.graph
    if !options.bindings.isEmpty {
      let unknown = options.bindings.keys.filter { !graph.symbols.contains($0) }.sorted()
      guard unknown.isEmpty else {
        let symbols = graph.symbols.isEmpty ? "none" : graph.symbols.joined(separator: ", ")
        throw GlassboxError(
          .input, file: model.path,
          "bindings name \(unknown.joined(separator: ", ")), not a symbol of the model (its symbols: \(symbols))")
      }
      graph = try withGlassboxErrors(file: model.path) { try graph.bound(options.bindings) }
    }
    if let taps = options.taps {
      for t in taps { _ = try model.tap(named: t) }
    }
    self.model = model
    self.options = options
    self.graph = graph
    // A fully bound model compiles now, so that its errors surface here, not at the first run.
    if graph.symbols.isEmpty {
      let shapes = graph.inputs.map { graph[$0].type.shape.map { $0.staticValue ?? 0 } }
      _ = try program(ProgramKey(purpose: "run", shapes: shapes), explaining: nil)
    }
  }

  /// The session's inputs, bound as far as its bindings go.
  public var inputs: [TensorInfo] { graph.inputs.map { TensorInfo(name: graph[$0].name, type: graph[$0].type) } }

  // MARK: Running

  /// Runs the model on `inputs` (by input name) and returns its outputs and the session's taps
  /// by name. Unbound symbols take their sizes from the inputs.
  public func run(_ inputs: [String: Tensor]) throws(GlassboxError) -> [String: Tensor] {
    lock.lock()
    defer { lock.unlock() }
    let compiled = try program(for: inputs.mapValues(\.shape), dtypes: inputs.mapValues(\.dtype), explaining: nil)
    return try withGlassboxErrors { try compiled.executable.run(inputs: inputs) }
  }

  /// Runs on inputs in memory the caller owns and hands each result to `body` as a view valid
  /// during the call (the C API's path: no copy but into the arena and out of it).
  package func run(
    rawInputs: [String: Executable.RawInput], explaining tap: (name: String, scope: String?)? = nil,
    results body: (_ name: String, _ shape: [Int], _ values: UnsafeBufferPointer<Float>) throws -> Void
  )
    throws(GlassboxError)
  {
    lock.lock()
    defer { lock.unlock() }
    var raw = rawInputs
    let compiled = try program(
      for: raw.mapValues(\.shape), dtypes: raw.mapValues(\.dtype), explaining: tap.map { ([$0.name], $0.scope) })
    // An explanation without a target explains each example's predicted class.
    let targetName = compiled.lowered.compactMap(\.targetInput).first
    var predicted: [Int64] = []
    if let targetName, raw[targetName] == nil {
      let target = compiled.bound.inputs.first { compiled.bound[$0].name == targetName }
      let rows = target.map { compiled.bound[$0].type.shape[0].staticValue ?? 0 } ?? 0
      predicted = [Int64](repeating: -1, count: rows)
    }
    try withGlassboxErrors {
      try predicted.withUnsafeBytes { bytes in
        if let targetName, let base = bytes.baseAddress, raw[targetName] == nil {
          raw[targetName] = Executable.RawInput(dtype: .i64, shape: [predicted.count], data: base)
        }
        try compiled.executable.run(rawInputs: raw, results: body)
      }
    }
  }

  // MARK: Explaining

  /// Explains `inputs` with the tap named `tap`: every example of the batch at once, each for
  /// its `target` class. `scope` (`frame` or `clip`) overrides the tap's normalisation scope.
  public func explain(
    _ tap: String, _ inputs: [String: Tensor], target: Target = .predicted,
    scope: String? = nil
  ) throws(GlassboxError) -> Explanation {
    try explain(taps: [tap], inputs, target: target, scope: scope)[0]
  }

  /// Explains `inputs` with several taps in one program run: one forward pass, and one backward
  /// pass per tap that needs a gradient, every tap explaining the same `target` classes. One
  /// explanation per tap, in `taps` order.
  public func explain(
    taps: [String], _ inputs: [String: Tensor], target: Target = .predicted,
    scope: String? = nil
  ) throws(GlassboxError) -> [Explanation] {
    guard !taps.isEmpty else { throw GlassboxError(.input, "give at least one tap to explain") }
    if let repeated = taps.first(where: { name in taps.filter { $0 == name }.count > 1 }) {
      throw GlassboxError(.input, "tap \(repeated) is asked for twice")
    }
    let infos = try taps.map { (name: String) throws(GlassboxError) -> TapInfo in try model.tap(named: name) }
    if let scope, scope != "frame", scope != "clip" {
      throw GlassboxError(.input, "scope must be frame or clip, found '\(scope)'")
    }
    lock.lock()
    defer { lock.unlock() }
    let compiled = try program(
      for: inputs.mapValues(\.shape), dtypes: inputs.mapValues(\.dtype),
      explaining: (taps, scope))
    var lowered: [LowerTaps.Lowered] = []
    for name in taps {
      guard let l = compiled.lowered.first(where: { $0.name == name }) else {
        throw GlassboxError(.runtime, "tap \(name) was not lowered")
      }
      lowered.append(l)
    }
    var feeds = inputs
    var targets: [Int] = []
    let logits = compiled.bound.outputs.first
    let logitsName = logits?.name
    if let targetName = lowered.compactMap(\.targetInput).first, let logits {
      let shape = compiled.bound[logits.value].type.shape.map { $0.staticValue ?? 0 }
      let (rows, classes) = (shape[0], shape[1])
      switch target {
      case .predicted: targets = [Int](repeating: -1, count: rows)
      case .fixed(let k): targets = [Int](repeating: k, count: rows)
      case .each(let ks):
        guard ks.count == rows else {
          throw GlassboxError(.input, "\(ks.count) targets for \(rows) examples; give one class per example")
        }
        targets = ks
      }
      if let bad = targets.first(where: { $0 < -1 || $0 >= classes }) {
        throw GlassboxError(
          .input,
          "target class \(bad) is out of range: \(model.name) has \(classes) classes (0…\(classes - 1); -1 = predicted)"
        )
      }
      feeds[targetName] = Tensor(shape: [rows], storage: .i64(targets.map(Int64.init)))
    } else if target != .predicted, let info = infos.first(where: { !$0.needsClass }) {
      throw GlassboxError(
        .input, "tap \(info.name) is \(info.kind.withArticle) tap; it explains no class, so takes no target")
    }
    let results = try withGlassboxErrors { try compiled.executable.run(inputs: feeds) }
    let tapOutputs = Set(lowered.flatMap(\.outputs.values))
    var explained: [Int]?
    if !targets.isEmpty, let logitsName, let scores = results[logitsName] {
      let classes = scores.shape[1], v = scores.floats
      explained = targets.enumerated().map { i, k in
        guard k < 0 else { return k }
        var best = 0
        for j in 1..<max(classes, 1) where v[i * classes + j] > v[i * classes + best] { best = j }
        return best
      }
    }
    return zip(taps, lowered).map { name, l in
      var explanation = Explanation(
        tap: name, kind: l.kind, scope: l.scope, perStep: l.perStep,
        classes: l.targetInput == nil ? nil : explained, maps: [:], outputs: [:])
      for (role, output) in l.outputs { explanation.maps[role] = results[output] }
      for o in compiled.bound.outputs where !tapOutputs.contains(o.name) {
        explanation.outputs[o.name] = results[o.name]
      }
      return explanation
    }
  }

  /// `explain(taps:)` on inputs in the caller's memory (copied: an explanation's backward pass
  /// outweighs the copy).
  package func explain(
    taps: [String], rawInputs: [String: Executable.RawInput], target: Target,
    scope: String?
  ) throws(GlassboxError) -> [Explanation] {
    try explain(taps: taps, rawInputs.mapValues(\.tensor), target: target, scope: scope)
  }

  // MARK: Compiling

  /// The program for inputs of these shapes and dtypes: checked against the graph (every
  /// problem at once), compiled on first use.
  func program(
    for shapes: [String: [Int]], dtypes: [String: DType], explaining tap: (names: [String], scope: String?)?
  )
    throws(GlassboxError) -> CompiledProgram
  {
    let names = graph.inputs.map { graph[$0].name }
    var problems: [String] = []
    for name in shapes.keys.sorted() where !names.contains(name) {
      // The target input of an explanation is the session's to make, or the caller's to give.
      if tap != nil, name == "target" || name == "tap.target" { continue }
      problems.append("\(model.name) has no input '\(name)' (inputs: \(names.joined(separator: ", ")))")
    }
    for id in graph.inputs {
      let v = graph[id]
      guard let dtype = dtypes[v.name] else {
        problems.append("input '\(v.name)' is missing (\(TensorInfo(name: v.name, type: v.type)))")
        continue
      }
      if dtype != v.type.dtype && !(dtype.isFloatingPoint && v.type.dtype.isFloatingPoint) {
        problems.append("input '\(v.name)' is \(dtype.rawValue) but the graph expects \(v.type.dtype.rawValue)")
      }
    }
    guard problems.isEmpty else { throw GlassboxError(.input, problems.joined(separator: "\n")) }
    let inputShapes = graph.inputs.map { shapes[graph[$0].name] ?? [] }
    let purpose = tap.map { "explain:\($0.names.joined(separator: ",")):\($0.scope ?? "")" } ?? "run"
    return try program(ProgramKey(purpose: purpose, shapes: inputShapes), explaining: tap)
  }

  func program(
    _ key: ProgramKey, explaining tap: (names: [String], scope: String?)?
  ) throws(GlassboxError) -> CompiledProgram {
    if let i = programs.firstIndex(where: { $0.key == key }) { return programs[i].program }
    let shapes = Dictionary(uniqueKeysWithValues: zip(graph.inputs.map { graph[$0].name }, key.shapes))
    let bound: Graph
    let bindings: [String: Int]
    do {
      bindings = try graph.inferBindings(inputShapes: shapes)
      bound = try graph.bound(bindings)
    } catch {
      throw GlassboxError(.input, error.diagnostics.map(\.message).joined(separator: "\n"))
    }
    let parameters = try model.parameterValues(for: bound)
    let taps: InferenceTaps
    if let tap {
      taps = .explain(tap.names, scope: tap.scope)
    } else if let names = options.taps {
      taps = .named(names)
    } else {
      taps = .values
    }
    // Taps that run copies of their input graft the model bound at a multiple of its batch.
    let rebatch = LowerTaps.rebatcher(unbound: model.graph, bindings: options.bindings.merging(bindings) { $1 })
    let compiled = try Model.compileInference(
      bound, parameters: parameters, taps: taps, threads: options.threads,
      rebatch: rebatch)
    programs.append((key, compiled))
    if programs.count > Self.programLimit { programs.removeFirst() }
    return compiled
  }
}

/// Which taps an inference program computes besides the outputs.
package enum InferenceTaps {
  /// None.
  case none
  /// Those that are values of the forward pass (activation, attention, hidden).
  case values
  /// These, whatever their kind (class-seeded ones explain the predicted class, or the tap's own).
  case named([String])
  /// These taps with their classes as the input `target` (`tap.target` when the graph has a
  /// `target`), shared by every tap that explains a class.
  case explain([String], scope: String?)
  /// One tap for a fixed class (nil: the tap's own class option or the predicted one).
  case fixedClass(String, classIndex: Int?)
}

extension Model {
  /// The one way from a bound graph to a program: the selected taps lowered into outputs,
  /// optionally LSTMs unrolled into per-step cells, the inference pipeline, then the runtime's
  /// lowering and memory plan. `rebatch` gives the graph at a multiple of its batch, for taps
  /// that run copies of their input (Integrated Gradients, SmoothGrad, …).
  package static func compileInference(
    _ bound: Graph, parameters: [String: Tensor], taps: InferenceTaps, threads: Int,
    unrollLSTM: Bool = false,
    rebatch: LowerTaps.Rebatcher? = nil
  ) throws(GlassboxError) -> Session.CompiledProgram {
    try withGlassboxErrors {
      var module = Module(graph: bound, weights: parameters)
      var lowered: [LowerTaps.Lowered] = []
      switch taps {
      case .none: module.graph.taps = []
      case .values: module.graph.taps = bound.taps.filter(\.kind.isValue)
      case .named(let names):
        let selected = bound.taps.filter { names.contains($0.name) }
        if selected.contains(where: { !$0.kind.isValue }) {
          (module, lowered) = try LowerTaps.apply(
            to: module, options: .init(taps: selected.map(\.name), rebatch: rebatch))
        } else {
          module.graph.taps = selected
        }
      case .explain(let names, let scope):
        let target = bound.value(named: "target") == nil ? "target" : "tap.target"
        (module, lowered) = try LowerTaps.apply(
          to: module,
          options: .init(
            taps: names, targetInput: target, scope: scope,
            rebatch: rebatch))
      case .fixedClass(let name, let k):
        (module, lowered) = try LowerTaps.apply(
          to: module, options: .init(taps: [name], classIndex: k, rebatch: rebatch))
      }
      Pipeline.run(
        (unrollLSTM ? [UnrollLSTM()] : []) + Pipeline.inference(blockedLayouts: Executable.blockedLayouts),
        on: &module)
      let executable = try Executable(graph: module.graph, parameters: module.weights, threads: threads)
      return Session.CompiledProgram(executable: executable, bound: module.graph, lowered: lowered)
    }
  }

  /// A session over this model: programs compiled for `options.bindings` now (when they bind
  /// every symbol), or for each new input shape at its first run.
  public func session(_ options: SessionOptions = SessionOptions()) throws(GlassboxError) -> Session {
    try Session(model: self, options: options)
  }
}

/// What an explanation tap computed for a batch.
public struct Explanation: Sendable {
  /// The tap's name and kind.
  public var tap: String
  public var kind: TapKind
  /// `frame` or `clip`: over what the normalised maps were scaled (nil for values).
  public var scope: String?
  /// Whether maps are per step of a sequence (`[B, T, h, w]`, one map per frame).
  public var perStep: Bool
  /// The class each example's map explains (nil for taps that explain no class).
  public var classes: [Int]?
  /// The tap's tensors by role: `raw` always; `normalized`, `upsampled` (at the input's
  /// resolution) and, per step, `relevance` (`[B, T]`) where they apply.
  public var maps: [String: Tensor]
  /// The model's outputs from the same run (the class scores first).
  public var outputs: [String: Tensor]

  /// Every tensor by the name a program gives it: the model's outputs, then the tap's
  /// (`TAP`, `TAP.normalized`, `TAP.upsampled`, `TAP.relevance`).
  public var tensors: [(name: String, tensor: Tensor)] {
    outputs.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } + mapTensors
  }

  /// The tap's tensors by the names a program gives them: `TAP`, `TAP.normalized`,
  /// `TAP.upsampled`, `TAP.relevance` (those it has, in that order).
  public var mapTensors: [(name: String, tensor: Tensor)] {
    let roles = ["raw", "normalized", "upsampled", "relevance"]
    return roles.compactMap { role in maps[role].map { (role == "raw" ? tap : "\(tap).\(role)", $0) } }
  }

  /// The raw map (or value) of the tap.
  public var map: Tensor { maps["raw"] ?? Tensor(shape: [0], f32: []) }
  public var normalized: Tensor? { maps["normalized"] }
  public var upsampled: Tensor? { maps["upsampled"] }
  public var relevance: Tensor? { maps["relevance"] }
}

extension Executable.RawInput {
  /// A copy of the caller's elements as a tensor.
  var tensor: Tensor {
    let n = shape.reduce(1, *)
    switch dtype {
    case .f32:
      return Tensor(
        shape: shape,
        storage: .f32(Array(UnsafeBufferPointer(start: data.assumingMemoryBound(to: Float.self), count: n))))
    case .f64:
      return Tensor(
        shape: shape,
        storage: .f64(Array(UnsafeBufferPointer(start: data.assumingMemoryBound(to: Double.self), count: n))))
    case .i64:
      return Tensor(
        shape: shape,
        storage: .i64(Array(UnsafeBufferPointer(start: data.assumingMemoryBound(to: Int64.self), count: n))))
    case .bool:
      let bytes = UnsafeBufferPointer(start: data.assumingMemoryBound(to: UInt8.self), count: n)
      return Tensor(shape: shape, storage: .bool(bytes.map { $0 != 0 }))
    }
  }
}

extension TapKind {
  /// `an activation`, `a gradcam`: the kind's name after its article, for messages.
  var withArticle: String { ("aeiou".contains(rawValue.first ?? "x") ? "an " : "a ") + rawValue }
}
