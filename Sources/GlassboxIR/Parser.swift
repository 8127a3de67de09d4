/// Parses spec text into a `SpecFile`, reporting every syntax error it finds: after an error
/// it skips to the end of the statement and goes on.
///
/// Grammar (statements end at a newline; newlines inside `()` and `[]` are ignored):
/// ```
/// file      := (graph | block)*
/// graph     := 'graph' NAME '(' entries ')' '->' '(' entries ')' ['where' NAME '=' INT, …] '{' body '}'
/// block     := 'block' NAME '(' [NAME [':' KIND ['=' attr]], …] ')' '{' body '}'
/// body      := stmt*
/// stmt      := NAME, … '=' expr [':' type, …]
///            | ('param' | 'buffer') NAME ':' type ['init' NAME ['(' number ')']]
///            | 'scope' NAME '=' NAME ['steps' '(' attr ',' attr ')']
///            | 'tap' NAME '=' call [':' type]
///            | 'recipe' NAME '=' call
///            | 'return' expr
/// expr      := NAME | call
/// call      := NAME '(' [(NAME ':' attr | expr), …] ')' ['@' PATH]
/// attr      := term ('*' term)*;  term := INT | FLOAT | '-' number | NAME | '[' attr, … ']'
/// type      := NAME '[' attr, … ']'
/// ```
struct Parser {
  /// Calls and lists nested deeper than this are refused (a diagnostic, not a stack overflow).
  static let maxNesting = 200
  static let keywords: Set<String> = ["graph", "block", "param", "buffer", "scope", "tap", "return", "where", "recipe"]

  private let tokens: [Token]
  private var position = 0
  private var depth = 0
  private(set) var diagnostics: [Diagnostic] = []
  private var brokenNames: Set<String> = []

  init(source: SourceText) {
    var lexer = Lexer(source: source)
    tokens = lexer.tokenize()
    diagnostics = lexer.diagnostics
  }

  /// Thrown inside a statement to abandon it; the diagnostic is already recorded.
  private struct Abandon: Error {}

  private var current: Token { tokens[position] }
  private func peek(_ offset: Int = 1) -> Token { tokens[min(position + offset, tokens.count - 1)] }

  private mutating func advance() -> Token {
    let t = tokens[position]
    if position < tokens.count - 1 { position += 1 }
    return t
  }

  private mutating func fail(_ message: String, at location: SourceLocation? = nil) -> Abandon {
    diagnostics.append(Diagnostic(message, at: location ?? current.location))
    return Abandon()
  }

  private mutating func expect(_ kind: Token.Kind, _ what: String) throws(Abandon) -> Token {
    guard current.kind == kind else { throw fail("expected \(what), found \(current.quoted)") }
    return advance()
  }

  private mutating func skipNewlines() {
    while current.kind == .newline { _ = advance() }
  }

  /// Skips to just after the end of the current statement.
  private mutating func recover() {
    while current.kind != .newline && current.kind != .eof && current.kind != .rbrace { _ = advance() }
    if current.kind == .newline { _ = advance() }
  }

  // MARK: File

  mutating func parseFile() -> SpecFile {
    var file = SpecFile()
    skipNewlines()
    if current.kind == .eof && diagnostics.isEmpty {
      let start = SourceLocation(file: current.location.file, line: 1, column: 1)
      diagnostics.append(Diagnostic("spec is empty: expected a 'graph' definition", at: start))
    }
    while current.kind != .eof {
      do throws(Abandon) {
        if current.kind == .name && current.text == "graph" {
          file.graphs.append(try parseGraph())
        } else if current.kind == .name && current.text == "block" {
          file.blocks.append(try parseBlock())
        } else {
          throw fail("expected 'graph' or 'block', found \(current.quoted)")
        }
      } catch {
        // Skip the rest of this top-level item: to a line that starts a new one.
        recover()
        while current.kind != .eof
          && !(current.kind == .name && (current.text == "graph" || current.text == "block")
            && (position == 0 || tokens[position - 1].kind == .newline))
        {
          _ = advance()
        }
      }
      skipNewlines()
    }
    file.brokenNames = brokenNames
    file.hadSyntaxErrors = !diagnostics.isEmpty
    return file
  }

  private mutating func parseName(_ what: String) throws(Abandon) -> (String, SourceLocation) {
    let t = try expect(.name, what)
    if Parser.keywords.contains(t.text) {
      throw fail("'\(t.text)' is a keyword and cannot be used as \(what)", at: t.location)
    }
    return (t.text, t.location)
  }

  private mutating func parseGraph() throws(Abandon) -> GraphDecl {
    let start = advance()  // 'graph'
    let (name, _) = try parseName("a graph name")
    _ = try expect(.lparen, "'(' after the graph name")
    let inputs = try parseEntries()
    _ = try expect(.arrow, "'->' and the outputs after the inputs")
    _ = try expect(.lparen, "'(' before the outputs")
    let outputs = try parseEntries()
    var defaults: [(String, Int, SourceLocation)] = []
    if current.kind == .name && current.text == "where" {
      _ = advance()
      repeat {
        let (symbol, loc) = try parseName("a symbol name")
        _ = try expect(.equals, "'=' after the symbol")
        let value = try expect(.int, "an integer size")
        guard let v = Int(value.text) else { throw fail("size \(value.text) is too large", at: value.location) }
        defaults.append((symbol, v, loc))
      } while try consumeComma()
    }
    let body = try parseBody(of: "graph '\(name)'")
    return GraphDecl(
      name: name, inputs: inputs, outputs: outputs, defaults: defaults, body: body,
      location: start.location)
  }

  private mutating func consumeComma() throws(Abandon) -> Bool {
    if current.kind == .comma { _ = advance(); return true }
    return false
  }

  /// `name: type, …)` — consumes the closing parenthesis.
  private mutating func parseEntries() throws(Abandon) -> [SignatureEntry] {
    var entries: [SignatureEntry] = []
    if current.kind == .rparen { _ = advance(); return entries }
    repeat {
      let (name, loc) = try parseName("a name")
      _ = try expect(.colon, "':' and a type after '\(name)'")
      entries.append(SignatureEntry(name: name, type: try parseType(), location: loc))
    } while try consumeComma()
    _ = try expect(.rparen, "',' or ')'")
    return entries
  }

  private mutating func parseBlock() throws(Abandon) -> BlockDecl {
    let start = advance()  // 'block'
    let (name, _) = try parseName("a block name")
    // Calls to a block whose header or body fails to parse are not reported again.
    brokenNames.insert(name)
    _ = try expect(.lparen, "'(' after the block name")
    var params: [BlockParam] = []
    if current.kind != .rparen {
      repeat {
        let (pname, loc) = try parseName("a parameter name")
        var kind = BlockParam.Kind.tensor
        var defaultValue: AttrExpr?
        if current.kind == .colon {
          _ = advance()
          let k = try expect(.name, "a parameter kind (int, float, bool or dim)")
          guard let parsed = BlockParam.Kind(rawValue: k.text), parsed != .tensor else {
            throw fail("unknown parameter kind '\(k.text)': expected int, float, bool or dim", at: k.location)
          }
          kind = parsed
          if current.kind == .equals {
            _ = advance()
            defaultValue = try parseAttr()
          }
        }
        params.append(BlockParam(name: pname, kind: kind, defaultValue: defaultValue, location: loc))
      } while try consumeComma()
    }
    _ = try expect(.rparen, "',' or ')'")
    let body = try parseBody(of: "block '\(name)'")
    brokenNames.remove(name)
    return BlockDecl(name: name, params: params, body: body, location: start.location)
  }

  /// `{ stmt* }`; statements that fail to parse are reported and skipped.
  private mutating func parseBody(of owner: String) throws(Abandon) -> [Stmt] {
    skipNewlines()
    let open = try expect(.lbrace, "'{'")
    var body: [Stmt] = []
    skipNewlines()
    while current.kind != .rbrace {
      if current.kind == .eof {
        throw fail("the body of \(owner) is never closed: expected '}' before the end of the file", at: open.location)
      }
      if current.kind == .name, current.text == "graph" || current.text == "block",
        position > 0, tokens[position - 1].kind == .newline
      {
        throw fail(
          "expected '}' to close the body of \(owner) (opened at \(open.location.line):\(open.location.column)) before '\(current.text)'"
        )
      }
      do throws(Abandon) {
        body.append(try parseStatement())
        if current.kind != .rbrace {
          _ = try expect(.newline, "end of line after the statement")
        }
      } catch {
        recover()
      }
      skipNewlines()
    }
    _ = advance()  // '}'
    return body
  }

  // MARK: Statements

  private mutating func parseStatement() throws(Abandon) -> Stmt {
    let start = current
    if start.kind == .name && peek().kind != .equals && peek().kind != .comma {
      switch start.text {
      case "param", "buffer":
        _ = advance()
        let (name, loc) = try parseName("a parameter name")
        brokenNames.insert(name)
        _ = try expect(.colon, "':' and a type after '\(name)'")
        let type = try parseType()
        var initializer: InitExpr?
        if current.kind == .name && current.text == "init" {
          _ = advance()
          let n = try expect(.name, "an initialiser (zeros, ones, uniform(bound) or normal(std))")
          var argument: Double?
          if current.kind == .lparen {
            _ = advance()
            argument = try parseNumber()
            _ = try expect(.rparen, "')'")
          }
          initializer = InitExpr(name: n.text, argument: argument, location: n.location)
        }
        brokenNames.remove(name)
        return .parameter(
          name: name, type: type, role: start.text == "param" ? .trainable : .buffer,
          initializer: initializer, location: loc)
      case "scope":
        _ = advance()
        let (path, loc) = try parseName("a scope path")
        _ = try expect(.equals, "'=' and a block name")
        let (block, _) = try parseName("a block name")
        var steps: (AttrExpr, AttrExpr)?
        if current.kind == .name && current.text == "steps" {
          _ = advance()
          _ = try expect(.lparen, "'('")
          let batch = try parseAttr()
          _ = try expect(.comma, "','")
          let time = try parseAttr()
          _ = try expect(.rparen, "')'")
          steps = (batch, time)
        }
        return .scope(path: path, block: block, steps: steps, location: loc)
      case "tap":
        _ = advance()
        let (name, loc) = try parseName("a tap name")
        _ = try expect(.equals, "'=' and a tap kind")
        guard current.kind == .name, peek().kind == .lparen else {
          throw fail("expected a tap kind call such as gradcam(value), found \(current.quoted)")
        }
        let call = try parseCall()
        var type: TypeExpr?
        if current.kind == .colon {
          _ = advance()
          type = try parseType()
        }
        return .tap(name: name, call: call, type: type, location: loc)
      case "recipe":
        _ = advance()
        let (input, loc) = try parseName("an input name")
        _ = try expect(.equals, "'=' and a recipe kind")
        guard current.kind == .name, peek().kind == .lparen else {
          throw fail("expected a recipe such as audio(sample_rate: 16000), found \(current.quoted)")
        }
        return .recipe(input: input, call: try parseCall(), location: loc)
      case "return":
        _ = advance()
        return .ret(try parseExpr(), location: start.location)
      default:
        break
      }
    }
    var names: [(String, SourceLocation)] = []
    repeat {
      let (n, l) = try parseName("a value name")
      names.append((n, l))
    } while try consumeComma()
    brokenNames.formUnion(names.map(\.0))
    _ = try expect(.equals, "'=' after \(names.count == 1 ? "the name" : "the names")")
    let expr = try parseExpr()
    var types: [TypeExpr]?
    if current.kind == .colon {
      _ = advance()
      var list: [TypeExpr] = []
      repeat { list.append(try parseType()) } while try consumeComma()
      types = list
    }
    brokenNames.subtract(names.map(\.0))
    return .binding(names: names, expr: expr, types: types, location: names[0].1)
  }

  // MARK: Expressions

  private mutating func parseExpr() throws(Abandon) -> Expr {
    guard current.kind == .name else { throw fail("expected a value or a call, found \(current.quoted)") }
    if peek().kind == .lparen { return .call(try parseCall()) }
    let t = advance()
    if current.kind == .atPath {
      throw fail("'@\(current.text)' names a call; a plain reference cannot be renamed")
    }
    return .ref(t.text, t.location)
  }

  private mutating func parseCall() throws(Abandon) -> Call {
    depth += 1
    defer { depth -= 1 }
    let callee = advance()
    if depth > Parser.maxNesting {
      throw fail("expressions are nested more than \(Parser.maxNesting) deep", at: callee.location)
    }
    _ = advance()  // '('
    var operands: [Expr] = []
    var named: [NamedArg] = []
    if current.kind != .rparen {
      repeat {
        if current.kind == .name && peek().kind == .colon {
          let n = advance()
          _ = advance()
          named.append(NamedArg(name: n.text, value: try parseAttr(), location: n.location))
        } else {
          if let first = named.first {
            throw fail("operands must come before named arguments (after '\(first.name):')")
          }
          operands.append(try parseExpr())
        }
      } while try consumeComma()
    }
    _ = try expect(.rparen, "',' or ')' in the call to '\(callee.text)'")
    var path: String?
    var pathLocation: SourceLocation?
    if current.kind == .atPath {
      let t = advance()
      path = t.text
      pathLocation = t.location
    }
    return Call(
      callee: callee.text, operands: operands, named: named, path: path,
      pathLocation: pathLocation, location: callee.location)
  }

  private mutating func parseNumber() throws(Abandon) -> Double {
    var sign = 1.0
    let start = current
    if current.kind == .minus { _ = advance(); sign = -1 }
    guard current.kind == .int || current.kind == .float, let v = Double(current.text) else {
      throw fail("expected a number, found \(current.quoted)", at: start.location)
    }
    _ = advance()
    return sign * v
  }

  private mutating func parseAttr() throws(Abandon) -> AttrExpr {
    let first = try parseAttrTerm()
    guard current.kind == .star else { return first }
    var factors = [first]
    while current.kind == .star {
      _ = advance()
      factors.append(try parseAttrTerm())
    }
    return .product(factors, first.location)
  }

  private mutating func parseAttrTerm() throws(Abandon) -> AttrExpr {
    let t = current
    switch t.kind {
    case .int:
      _ = advance()
      guard let v = Int(t.text) else { throw fail("integer \(t.text) is too large", at: t.location) }
      return .int(v, t.location)
    case .float:
      _ = advance()
      return .float(Double(t.text) ?? .nan, t.location)
    case .minus:
      _ = advance()
      let n = current
      if n.kind == .int, let v = Int(n.text) { _ = advance(); return .int(-v, t.location) }
      if n.kind == .float, let v = Double(n.text) { _ = advance(); return .float(-v, t.location) }
      throw fail("expected a number after '-', found \(n.quoted)")
    case .name:
      _ = advance()
      if t.text == "true" { return .bool(true, t.location) }
      if t.text == "false" { return .bool(false, t.location) }
      return .name(t.text, t.location)
    case .lbracket:
      depth += 1
      defer { depth -= 1 }
      if depth > Parser.maxNesting { throw fail("expressions are nested more than \(Parser.maxNesting) deep") }
      _ = advance()
      var items: [AttrExpr] = []
      if current.kind != .rbracket {
        repeat { items.append(try parseAttr()) } while try consumeComma()
      }
      _ = try expect(.rbracket, "',' or ']'")
      return .list(items, t.location)
    default:
      throw fail("expected a value (number, name or list), found \(t.quoted)")
    }
  }

  private mutating func parseType() throws(Abandon) -> TypeExpr {
    let t = try expect(.name, "a type such as f32[B, 64]")
    _ = try expect(.lbracket, "'[' and the shape after '\(t.text)'")
    var dims: [AttrExpr] = []
    if current.kind != .rbracket {
      repeat { dims.append(try parseAttr()) } while try consumeComma()
    }
    _ = try expect(.rbracket, "',' or ']' in the shape")
    return TypeExpr(dtype: t.text, dims: dims, location: t.location)
  }
}
