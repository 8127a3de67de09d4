import GlassboxIR
/// Why an ONNX model cannot be imported: the file, and one line per problem, each naming the
/// node (or initializer, or input) it is about.
///
/// Nodes whose operator has no Glassbox form are listed together, once per operator type, with
/// every node of that type and the model's opset:
///
/// ```
/// model.onnx: 3 nodes use operators Glassbox cannot import yet (opset 9):
///   LRN (2 nodes: norm1, norm2)
///   Gelu (1 node: /encoder/Gelu)
/// ```
public struct ONNXError: Error, Sendable, CustomStringConvertible {
  /// The model file (or the name given for its bytes).
  public var file: String
  /// Every problem found, in node order.
  public var problems: [Problem]

  /// One thing wrong with the model.
  public struct Problem: Sendable, Equatable {
    /// What kind of problem it is.
    public enum Kind: String, Sendable {
      /// The operator type has no Glassbox form (a new Glassbox op would be needed).
      case unsupportedOperator
      /// The operator is known, but not with these attributes or inputs.
      case unsupportedForm
      /// The file or the graph is malformed (bad sizes, a cycle, a missing value, …).
      case invalid
    }
    public var kind: Kind
    /// The node's name (or its first output's when it has none); nil for file-wide problems.
    public var node: String?
    /// The ONNX operator type (`Conv`), when a node is at fault.
    public var opType: String?
    /// The rule and what was found.
    public var message: String

    public init(_ kind: Kind, node: String? = nil, opType: String? = nil, _ message: String) {
      self.kind = kind
      self.node = node
      self.opType = opType
      self.message = message
    }

    /// `node 'conv1' (Conv): message`, or the message alone; an unsupported form says
    /// `not supported:` first.
    public var description: String {
      let text = kind == .unsupportedForm ? "not supported: " + message : message
      guard let node else { return text }
      return "node '\(node)'" + (opType.map { " (\($0))" } ?? "") + ": " + text
    }
  }

  /// The opset of the default domain, for the unsupported-operator line (nil when unknown).
  public var opset: Int?

  public init(file: String, problems: [Problem], opset: Int? = nil) {
    self.file = file
    self.problems = problems
    self.opset = opset
  }

  /// A file-wide problem.
  public init(file: String, _ message: String) {
    self.init(file: file, problems: [Problem(.invalid, message)])
  }

  /// The operator types no Glassbox op covers, each with its nodes, in order of first use.
  public var unsupportedOperators: [(opType: String, nodes: [String])] {
    var order: [String] = []
    var nodes: [String: [String]] = [:]
    for p in problems where p.kind == .unsupportedOperator {
      let op = p.opType ?? "?"
      if nodes[op] == nil { order.append(op) }
      nodes[op, default: []].append(p.node ?? "?")
    }
    return order.map { ($0, nodes[$0] ?? []) }
  }

  /// The first line names the file; unsupported operators come first, grouped by type, then
  /// every other problem on a line of its own.
  public var description: String {
    var blocks: [[String]] = []
    let unsupported = unsupportedOperators
    if !unsupported.isEmpty {
      let count = unsupported.reduce(0) { $0 + $1.nodes.count }
      let opsetText = opset.map { " (opset \($0))" } ?? ""
      var block = [
        "\(count) node\(count == 1 ? " uses an operator" : "s use operators") Glassbox cannot import "
          + "yet\(opsetText):"
      ]
      for (op, nodes) in unsupported {
        let shown = nodes.prefix(8).joined(separator: ", ") + (nodes.count > 8 ? ", …" : "")
        block.append("  \(op) (\(nodes.count) node\(nodes.count == 1 ? "" : "s"): \(shown))")
      }
      blocks.append(block)
    }
    for p in problems where p.kind != .unsupportedOperator { blocks.append([p.description]) }
    if blocks.count == 1 { return "\(file): " + blocks[0].joined(separator: "\n") }
    return "\(file): \(blocks.count) problems:\n"
      + blocks.map { b in b.map { "  " + $0 }.joined(separator: "\n") }
      .joined(separator: "\n")
  }
}

extension ONNXError: KindedError {
  /// A file that is missing or unreadable is a file error; a model that uses operators or forms
  /// Glassbox lacks is unsupported; anything else wrong with it is a malformed model.
  public var errorKind: ErrorKind {
    let missing =
      problems.count == 1 && ["no such file", "cannot be read"].contains(problems[0].message)
      || problems.first?.message.hasPrefix("is a directory") == true
    if missing { return .file }
    return problems.contains { $0.kind != .invalid } ? .unsupported : .model
  }
  public var errorFile: String? { file }
}
