/// Index of a value in `Graph.values`.
public struct ValueID: Hashable, Sendable, Comparable, CustomStringConvertible {
  public let index: Int
  public init(_ index: Int) { self.index = index }
  public static func < (a: ValueID, b: ValueID) -> Bool { a.index < b.index }
  public var description: String { "%\(index)" }
}

/// Index of a node in `Graph.nodes`.
public struct NodeID: Hashable, Sendable, Comparable {
  public let index: Int
  public init(_ index: Int) { self.index = index }
  public static func < (a: NodeID, b: NodeID) -> Bool { a.index < b.index }
}

/// Where a value comes from.
public enum ValueOrigin: Hashable, Sendable {
  /// The graph input at this position of `Graph.inputs`.
  case input(Int)
  /// The parameter or buffer at this position of `Graph.parameters`.
  case parameter(Int)
  /// Result `result` of a node.
  case node(NodeID, result: Int)
}

/// A typed SSA value with a unique, human-readable name (`layer1.0.conv1`).
public struct Value: Hashable, Sendable {
  public var name: String
  public var type: TensorType
  public var origin: ValueOrigin
}

/// Whether a parameter is trained or only carried (BatchNorm running statistics).
public enum ParameterRole: String, Hashable, Sendable {
  case trainable = "param"
  case buffer
}

/// How a parameter is initialised when no weights are given; the defaults follow PyTorch's
/// modules (`Linear`, `Conv2d`: uniform ±1/√fan_in; `LSTM`: uniform ±1/√hidden).
public enum ParameterInit: Hashable, Sendable, CustomStringConvertible {
  case zeros
  case ones
  /// Uniform on [−bound, bound].
  case uniform(bound: Double)
  /// Normal with mean 0.
  case normal(std: Double)

  public var description: String {
    switch self {
    case .zeros: "zeros"
    case .ones: "ones"
    case .uniform(let b): "uniform(\(AttrValue.formatFloat(b)))"
    case .normal(let s): "normal(\(AttrValue.formatFloat(s)))"
    }
  }
}

/// A named, stored tensor: a trainable parameter or a buffer. Names are PyTorch's
/// `state_dict` keys (`layer1.0.bn1.running_mean`), so weights import by name.
public struct Parameter: Hashable, Sendable {
  public var name: String
  public var type: TensorType
  public var role: ParameterRole
  public var initializer: ParameterInit
  /// The value that stands for this parameter in the graph.
  public var value: ValueID
}

/// One operation: an op applied to operand values, producing result values.
public struct Node: Sendable {
  public var op: Op
  public var operands: [ValueID]
  public var results: [ValueID]
  public var attributes: Attributes
  /// Where the node was written, when it came from a spec.
  public var location: SourceLocation?
}

extension Node: Equatable {
  /// Locations do not take part: a graph and its printed-then-parsed copy are equal.
  public static func == (a: Node, b: Node) -> Bool {
    a.op == b.op && a.operands == b.operands && a.results == b.results && a.attributes == b.attributes
  }
}

/// A named group of nodes made by instantiating a block (drawn as a cluster by `glassbox dot`).
///
/// A scope whose `steps` is set applies its block to every time step of a sequence: its
/// values carry the batch and time axes merged into one leading axis of size `batch*time`.
public struct Scope: Hashable, Sendable {
  /// Dotted path, the prefix of every name inside (`layer1.0`, `cnn`).
  public var path: String
  /// The block this scope instantiates.
  public var block: String
  public var steps: Steps?

  public init(path: String, block: String, steps: Steps? = nil) {
    self.path = path
    self.block = block
    self.steps = steps
  }

  public struct Steps: Hashable, Sendable {
    public var batch: Dim
    public var time: Dim

    public init(batch: Dim, time: Dim) {
      self.batch = batch
      self.time = time
    }
  }
}

/// A graph: inputs, parameters, nodes in topological order, outputs and taps.
///
/// Invariants (checked by `Verifier`): every operand is defined before the node that uses it;
/// names are unique; every value's type is what its op's shape rule gives.
public struct Graph: Equatable, Sendable {
  public var name: String
  public var values: [Value] = []
  public var inputs: [ValueID] = []
  /// Outputs by their signature name; the value may have another name.
  public var outputs: [(name: String, value: ValueID)] = []
  public var parameters: [Parameter] = []
  public var nodes: [Node] = []
  public var taps: [Tap] = []
  public var scopes: [Scope] = []
  /// How raw media files become inputs, for the inputs that have a recipe.
  public var recipes: [InputRecipe] = []

  public init(name: String) { self.name = name }

  public static func == (a: Graph, b: Graph) -> Bool {
    a.name == b.name && a.values == b.values && a.inputs == b.inputs
      && a.outputs.elementsEqual(b.outputs, by: { $0.name == $1.name && $0.value == $1.value })
      && a.parameters == b.parameters && a.nodes == b.nodes && a.taps == b.taps && a.scopes == b.scopes
      && a.recipes == b.recipes
  }

  public subscript(value: ValueID) -> Value { values[value.index] }
  public subscript(node: NodeID) -> Node { nodes[node.index] }

  // MARK: Building

  /// Adds a graph input.
  @discardableResult
  public mutating func addInput(name: String, type: TensorType) -> ValueID {
    let id = ValueID(values.count)
    values.append(Value(name: name, type: type, origin: .input(inputs.count)))
    inputs.append(id)
    return id
  }

  /// Adds a parameter or buffer.
  @discardableResult
  public mutating func addParameter(
    name: String, type: TensorType, role: ParameterRole,
    initializer: ParameterInit
  ) -> ValueID {
    let id = ValueID(values.count)
    values.append(Value(name: name, type: type, origin: .parameter(parameters.count)))
    parameters.append(Parameter(name: name, type: type, role: role, initializer: initializer, value: id))
    return id
  }

  /// Adds a node whose results have the given names and types; returns the result values.
  @discardableResult
  public mutating func addNode(
    _ op: Op, operands: [ValueID], attributes: Attributes,
    results: [(name: String, type: TensorType)],
    location: SourceLocation? = nil
  ) -> [ValueID] {
    let nodeID = NodeID(nodes.count)
    var ids: [ValueID] = []
    for (i, r) in results.enumerated() {
      ids.append(ValueID(values.count))
      values.append(Value(name: r.name, type: r.type, origin: .node(nodeID, result: i)))
    }
    nodes.append(Node(op: op, operands: operands, results: ids, attributes: attributes, location: location))
    return ids
  }

  /// Adds a node with typed attributes (of the op's `attributeSet`); returns the result values.
  @discardableResult
  public mutating func addNode<A: AttributeSet>(
    _ op: Op, operands: [ValueID], attributes: A,
    results: [(name: String, type: TensorType)],
    location: SourceLocation? = nil
  ) -> [ValueID] {
    precondition(ObjectIdentifier(op.attributeSet) == ObjectIdentifier(A.self), "\(op.name) reads \(op.attributeSet)")
    return addNode(op, operands: operands, attributes: attributes.encoded, results: results, location: location)
  }

  // MARK: Queries

  /// Sum of the element counts of trainable parameters (`41472 + 65*C` while `C` is unbound).
  public var parameterCount: DimPolynomial { count(role: .trainable) }

  /// Sum of the element counts of buffers.
  public var bufferCount: DimPolynomial { count(role: .buffer) }

  private func count(role: ParameterRole) -> DimPolynomial {
    var total = DimPolynomial()
    for p in parameters where p.role == role {
      if let n = p.type.elementCount { total.add(n) }
    }
    return total
  }

  /// The value with this name, if any.
  public func value(named name: String) -> ValueID? {
    values.firstIndex { $0.name == name }.map(ValueID.init)
  }

  /// The node that produces a value, if a node does.
  public func producer(of value: ValueID) -> NodeID? {
    if case .node(let n, _) = values[value.index].origin { return n }
    return nil
  }

  /// The innermost scope a value belongs to: the longest scope path that is the value's name
  /// or a dotted prefix of it.
  public func scope(ofValueNamed name: String) -> Scope? {
    var best: Scope?
    for s in scopes where name == s.path || name.hasPrefix(s.path + ".") {
      if s.path.count > (best?.path.count ?? -1) { best = s }
    }
    return best
  }

  /// The innermost enclosing scope that applies a block per time step, if any.
  public func stepScope(ofValueNamed name: String) -> Scope? {
    var best: Scope?
    for s in scopes where s.steps != nil && (name == s.path || name.hasPrefix(s.path + ".")) {
      if s.path.count > (best?.path.count ?? -1) { best = s }
    }
    return best
  }

  /// Symbol names that appear in the types of inputs and outputs, sorted.
  public var symbols: [String] {
    var seen = Set<String>()
    for v in inputs + outputs.map(\.value) {
      for d in values[v.index].type.shape { seen.formUnion(d.symbols) }
    }
    return seen.sorted()
  }
}

/// Names not yet taken in a graph: `base` itself when free, else `base_2`, `base_3`, … — the
/// one convention for every name the compiler makes (the elaborator's, the gradient builder's,
/// the training program's and the tap lowering's).
public struct FreshNames: Sendable {
  private var taken: Set<String>

  /// The names of `graph`'s values are taken.
  public init(_ graph: Graph) { taken = Set(graph.values.map(\.name)) }

  /// A name of `base`'s family not yet taken; it is taken from then on.
  public mutating func make(_ base: String) -> String {
    var name = base, k = 1
    while taken.contains(name) {
      k += 1
      name = "\(base)_\(k)"
    }
    taken.insert(name)
    return name
  }
}
