import GlassboxIR

/// Matches a `state_dict` (from safetensors) to a graph's parameters by name, after prefix
/// renames, and reports every missing, unexpected and mis-shaped tensor at once.
public struct WeightImport: Sendable {
  /// A prefix rule: a name starting with `old` has that prefix replaced by `new`
  /// (`features.` → `cnn.` for torchvision's VGG). The first matching rule applies.
  public struct Rename: Sendable, Equatable {
    public var old: String
    public var new: String
    public init(old: String, new: String) {
      self.old = old
      self.new = new
    }
  }

  /// One tensor per parameter, in `graph.parameters` order, when nothing is missing or mis-shaped.
  public var weights: [Tensor]?
  /// Parameters with no tensor of their name (a batch norm's `num_batches_tracked` counter is
  /// never missing: it starts at 0, as in PyTorch).
  public var missing: [String] = []
  /// Tensors (by their renamed name) that no parameter takes.
  public var unexpected: [String] = []
  /// `name: file has f32[3, 4] but the graph expects f32[4, 3]`.
  public var misshaped: [String] = []
  /// The tensors that fit, by parameter name (what a partial import keeps: a pretrained
  /// backbone under a new head).
  public var found: [String: Tensor] = [:]

  /// Whether every parameter found a tensor of its type (unexpected tensors aside).
  public var isComplete: Bool { weights != nil }

  /// The report, one line per problem, missing first.
  public var problems: [String] {
    missing.map { "missing: \($0)" } + misshaped.map { "mis-shaped: \($0)" } + unexpected.map { "unexpected: \($0)" }
  }

  public static func renamed(_ name: String, _ rules: [Rename]) -> String {
    for r in rules where name.hasPrefix(r.old) { return r.new + name.dropFirst(r.old.count) }
    return name
  }

  public init(graph: Graph, file: SafeTensorsFile, renames: [Rename] = []) {
    var byName: [String: Tensor] = [:]
    var duplicates: [String] = []
    for t in file.tensors {
      let name = Self.renamed(t.name, renames)
      if byName[name] != nil { duplicates.append("\(name) (two tensors are renamed to it)") }
      byName[name] = t.tensor
    }
    misshaped += duplicates
    var out: [Tensor] = []
    let expected = Set(graph.parameters.map(\.name))
    for p in graph.parameters {
      guard let t = byName[p.name] else {
        // PyTorch's BatchNorm loads a state_dict without its counter (one saved before the
        // counter existed, or stripped of buffers) as 0 batches seen; so does this.
        if p.name.hasSuffix("num_batches_tracked"), p.type == TensorType(.i64, []) {
          let zero = Tensor(shape: [], storage: .i64([0]))
          out.append(zero)
          found[p.name] = zero
          continue
        }
        missing.append(p.name)
        continue
      }
      if t.type != p.type {
        misshaped.append("\(p.name): file has \(t.type) but the graph expects \(p.type)")
        continue
      }
      out.append(t)
      found[p.name] = t
    }
    unexpected = file.tensors.map { Self.renamed($0.name, renames) }.filter { !expected.contains($0) }
    weights = missing.isEmpty && misshaped.isEmpty ? out : nil
  }
}
