/// The syntax tree of a spec file, as written (blocks not yet instantiated).

/// An attribute expression: a literal, a name (block attribute, symbol or choice), a product
/// (`B*T`, `2*planes`) or a list.
indirect enum AttrExpr: Sendable {
  case int(Int, SourceLocation)
  case float(Double, SourceLocation)
  case bool(Bool, SourceLocation)
  case name(String, SourceLocation)
  case product([AttrExpr], SourceLocation)
  case list([AttrExpr], SourceLocation)

  var location: SourceLocation {
    switch self {
    case .int(_, let l), .float(_, let l), .bool(_, let l), .name(_, let l), .product(_, let l),
      .list(_, let l):
      l
    }
  }
}

/// A named argument of a call: `stride: 2`.
struct NamedArg: Sendable {
  var name: String
  var value: AttrExpr
  var location: SourceLocation
}

/// `callee(operands…, name: value…) @path`.
struct Call: Sendable {
  var callee: String
  var operands: [Expr]
  var named: [NamedArg]
  /// The explicit name given with `@`.
  var path: String?
  var pathLocation: SourceLocation?
  var location: SourceLocation
}

/// A tensor expression: a reference to a named value, or a call.
indirect enum Expr: Sendable {
  case ref(String, SourceLocation)
  case call(Call)

  var location: SourceLocation {
    switch self {
    case .ref(_, let l): l
    case .call(let c): c.location
    }
  }
}

/// `f32[B, 768, 128]`.
struct TypeExpr: Sendable {
  var dtype: String
  var dims: [AttrExpr]
  var location: SourceLocation
}

/// `uniform(0.125)`, `zeros`.
struct InitExpr: Sendable {
  var name: String
  var argument: Double?
  var location: SourceLocation
}

/// One statement of a graph or block body.
enum Stmt: Sendable {
  /// `a[, b] = expr [: type[, type]]`.
  case binding(names: [(String, SourceLocation)], expr: Expr, types: [TypeExpr]?, location: SourceLocation)
  /// `param name: type [init …]` or `buffer name: type [init …]`.
  case parameter(name: String, type: TypeExpr, role: ParameterRole, initializer: InitExpr?, location: SourceLocation)
  /// `scope path = block [steps(batch, time)]`.
  case scope(path: String, block: String, steps: (AttrExpr, AttrExpr)?, location: SourceLocation)
  /// `tap name = kind(operands…, options…) [: type]`.
  case tap(name: String, call: Call, type: TypeExpr?, location: SourceLocation)
  /// `return expr`.
  case ret(Expr, location: SourceLocation)
  /// `recipe input = kind(options…)`.
  case recipe(input: String, call: Call, location: SourceLocation)
}

/// `name: type` in a graph signature.
struct SignatureEntry: Sendable {
  var name: String
  var type: TypeExpr
  var location: SourceLocation
}

/// `name` (a tensor) or `name: int|float|bool|dim [= default]` (an attribute) in a block's header.
struct BlockParam: Sendable {
  enum Kind: String, Sendable { case tensor, int, float, bool, dim }
  var name: String
  var kind: Kind
  var defaultValue: AttrExpr?
  var location: SourceLocation
}

struct BlockDecl: Sendable {
  var name: String
  var params: [BlockParam]
  var body: [Stmt]
  var location: SourceLocation
}

struct GraphDecl: Sendable {
  var name: String
  var inputs: [SignatureEntry]
  var outputs: [SignatureEntry]
  /// `where C = 5, T = 16`: default bindings, overridden by `--bind`.
  var defaults: [(String, Int, SourceLocation)]
  var body: [Stmt]
  var location: SourceLocation
}

struct SpecFile: Sendable {
  var graphs: [GraphDecl] = []
  var blocks: [BlockDecl] = []
  /// Names bound by statements that failed to parse: references to them are not reported again.
  var brokenNames: Set<String> = []
  /// Whether the parser reported anything (then missing values need no diagnostic of their own).
  var hadSyntaxErrors = false
}
