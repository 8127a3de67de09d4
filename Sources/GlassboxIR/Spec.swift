/// Compiling spec text into a checked graph: parse → elaborate (blocks, layers, names) →
/// shape-check, with every diagnostic of the file collected.
public enum Spec {
  /// The graph (when there were no errors) and every diagnostic, in source order.
  public struct Result: Sendable {
    public var graph: Graph?
    public var diagnostics: [Diagnostic]
    public init(graph: Graph?, diagnostics: [Diagnostic]) {
      self.graph = graph
      self.diagnostics = diagnostics
    }
  }

  /// Compiles spec text; `bindings` sizes symbols (`["B": 1, "C": 5]`) and override the
  /// spec's `where` defaults.
  public static func compile(_ source: SourceText, bindings: [String: Int] = [:]) -> Result {
    var parser = Parser(source: source)
    let file = parser.parseFile()
    var diagnostics = parser.diagnostics
    var graph: Graph?
    if let decl = file.graphs.first {
      for extra in file.graphs.dropFirst() {
        diagnostics.append(
          Diagnostic(
            "a spec defines one graph; '\(extra.name)' is a second (the first is '\(decl.name)')",
            at: extra.location))
      }
      var elaborator = Elaborator(file: file, graphName: decl.name)
      let (g, more) = elaborator.elaborate(decl, bindings: bindings)
      diagnostics += more
      graph = g
    } else if diagnostics.isEmpty {
      diagnostics.append(
        Diagnostic(
          "spec defines no graph: expected 'graph NAME(inputs) -> (outputs) { … }'",
          at: SourceLocation(file: source.fileName, line: 1, column: 1)))
    }
    diagnostics = sortedByLocation(diagnostics)
    let failed = diagnostics.contains { $0.severity == .error }
    return Result(graph: failed ? nil : graph, diagnostics: diagnostics)
  }

  /// Compiles and throws every diagnostic when any is an error.
  public static func checkedGraph(_ source: SourceText, bindings: [String: Int] = [:]) throws(DiagnosticList) -> Graph {
    let result = compile(source, bindings: bindings)
    guard let graph = result.graph else { throw DiagnosticList(result.diagnostics) }
    return graph
  }

  /// Stable sort: located diagnostics by line and column, unlocated ones first.
  static func sortedByLocation(_ ds: [Diagnostic]) -> [Diagnostic] {
    ds.enumerated().sorted { a, b in
      let la = a.element.location, lb = b.element.location
      switch (la, lb) {
      case (nil, nil): return a.offset < b.offset
      case (nil, _): return true
      case (_, nil): return false
      case (let x?, let y?):
        if x.line != y.line { return x.line < y.line }
        if x.column != y.column { return x.column < y.column }
        return a.offset < b.offset
      }
    }.map(\.element)
  }
}
