import Foundation
import GlassboxIR
import GlassboxViz
import Testing

/// The DOT text of `GraphPicture` and its rendering through libgraphviz.
struct GraphPictureTests {
  /// A per-step block, a stage of two nested blocks, a tap inside the per-step block.
  static let tinySpec = """
    graph tiny(x: f32[B, T, 8]) -> (y: f32[B, 3]) {
      enc = each_step(encoder, x)
      stack = stage(enc)
      last = select(stack, axis: 1, index: -1)
      head = linear(last, out: 3)
      y = head
      tap act = activation(enc.fc1)
    }
    block encoder(x) {
      fc1 = linear(x, out: 16)
      return relu(fc1)
    }
    block pair(x) {
      return tanh(linear(x, out: 16))
    }
    block stage(x) {
      first = pair(x) @0
      return pair(first) @1
    }
    """

  static func compile(_ text: String, file: String = "test.graph", bindings: [String: Int] = [:]) throws -> Graph {
    let result = Spec.compile(SourceText(fileName: file, text: text), bindings: bindings)
    let graph = try #require(result.graph, "\(result.diagnostics)")
    return graph
  }

  static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

  static func studySpec(_ name: String) throws -> Graph {
    let path = Self.packageRoot.appendingPathComponent("graphs/\(name).graph").path
    let text = try String(contentsOfFile: path, encoding: .utf8)
    return try Self.compile(text, file: path, bindings: ["C": 5])
  }

  /// The DOT text's structure: for each cluster its enclosing cluster, for each node id its
  /// enclosing cluster (nil: top level), and each node's attribute line.
  struct DotOutline {
    var clusterParent: [String: String?] = [:]
    var nodeCluster: [String: String?] = [:]
    var nodeLine: [String: String] = [:]
    var edges: [String] = []

    init(_ text: String) {
      var stack: [String] = []
      for raw in text.split(separator: "\n") {
        let line = raw.trimmingCharacters(in: .whitespaces)
        if line.hasPrefix("subgraph "), let name = line.split(separator: " ").dropFirst().first {
          clusterParent[String(name)] = stack.last
          stack.append(String(name))
        } else if line == "}" {
          _ = stack.popLast()
        } else if line.contains(" -> ") {
          edges.append(line)
        } else if let id = line.split(separator: " ").first, line.contains(" [label=") {
          nodeCluster[String(id)] = stack.last
          nodeLine[String(id)] = line
        }
      }
    }
  }

  /// Sum of every `N params` label line.
  static func labelledParameters(_ text: String) -> Int {
    text.split(separator: "\"").flatMap { $0.split(separator: "\\n") }.compactMap { piece in
      piece.hasSuffix(" params") ? Int(piece.dropLast(7).replacingOccurrences(of: ",", with: "")) : nil
    }.reduce(0, +)
  }

  @Test func everyScopeIsANestedClusterWithItsLabel() throws {
    let graph = try Self.compile(Self.tinySpec)
    let outline = DotOutline(GraphPicture(graph).text)
    #expect(graph.scopes.map(\.path) == ["enc", "stack", "stack.0", "stack.1"])
    #expect(
      outline.clusterParent == [
        "cluster_s0": nil, "cluster_s1": nil,
        "cluster_s2": "cluster_s1", "cluster_s3": "cluster_s1",
      ])
    let text = GraphPicture(graph).text
    #expect(text.contains("label=\"enc: encoder (per time step)\""))
    #expect(text.contains("label=\"stack.0: pair\""))
    #expect(!text.contains("stack: stage (per time step)"))
    // Nodes sit in their innermost scope; the block's own output sits in the block.
    for (name, cluster) in [
      ("enc.fc1", "cluster_s0"), ("stack.0", "cluster_s2"), ("stack", "cluster_s1"),
      ("stack.1.linear", "cluster_s3"), ("head", nil),
    ] {
      let node = try #require(graph.value(named: name).flatMap(graph.producer(of:)))
      #expect(outline.nodeCluster["n\(node.index)"] == .some(cluster), "\(name)")
    }
  }

  @Test func tapTargetIsHighlightedAndTapIsDrawn() throws {
    let graph = try Self.compile(Self.tinySpec)
    let outline = DotOutline(GraphPicture(graph).text)
    let target = try #require(graph.value(named: "enc.fc1").flatMap(graph.producer(of:)))
    #expect(outline.nodeLine["n\(target.index)"]?.contains("fillcolor=\"#ffd54f\"") == true)
    #expect(outline.nodeLine["t0"]?.contains("label=\"tap act: activation\\nf32[B*T, 16]\"") == true)
    #expect(outline.edges.contains("n\(target.index) -> t0 [style=dashed, color=\"#e69500\"]"))
    let highlighted = outline.nodeLine.values.filter { $0.contains("#ffd54f") }
    #expect(highlighted.count == 1)
  }

  @Test func labelsCarryParameterCountsAndParametersAreNotNodes() throws {
    let graph = try Self.compile(Self.tinySpec)
    let text = GraphPicture(graph).text
    #expect(text.contains("fc1\\nlinear\\n[B*T, 16]\\n144 params"))  // 8·16 + 16
    #expect(text.contains("head\\nlinear\\n[B, 3]\\n51 params"))  // 16·3 + 3
    #expect(!text.contains("weight"))
    #expect(Self.labelledParameters(text) == graph.parameterCount.staticValue)
    #expect(
      GraphPicture(graph).nodeCount == graph.nodes.count + graph.inputs.count + graph.outputs.count + graph.taps.count)
  }

  @Test func collapseFoldsOutermostBlocksAndKeepsTheirEdges() throws {
    let graph = try Self.compile(Self.tinySpec)
    let picture = GraphPicture(graph, collapse: true)
    let outline = DotOutline(picture.text)
    #expect(outline.clusterParent.isEmpty)
    #expect(
      outline.nodeLine["c0"]?.contains("label=\"enc\\nencoder (per time step)\\n[B, T, 16]\\n144 params\"") == true)
    #expect(outline.nodeLine["c0"]?.contains("#ffd54f") == true)  // the tap's target is inside
    #expect(outline.nodeLine["c1"]?.contains("label=\"stack\\nstage\\n[B, T, 16]\\n544 params\"") == true)
    #expect(outline.nodeLine["c2"] == nil && outline.nodeLine["c3"] == nil)
    #expect(outline.edges.contains("i0 -> c0") && outline.edges.contains("c0 -> c1"))
    #expect(outline.edges.contains("c0 -> t0 [style=dashed, color=\"#e69500\"]"))
    // 2 blocks + select + linear + input + output + tap.
    #expect(picture.nodeCount == 7)
  }

  @Test func collapsedResNetHasOneNodePerStageAndEachEdgeOnce() throws {
    let graph = try Self.studySpec("resnet18")
    let full = GraphPicture(graph)
    let collapsed = GraphPicture(graph, collapse: true)
    #expect(collapsed.nodeCount < full.nodeCount)
    let outline = DotOutline(collapsed.text)
    let stages = graph.scopes.enumerated().filter { !$0.element.path.contains(".") }
    #expect(stages.map(\.element.path) == ["layer1", "layer2", "layer3", "layer4"])
    #expect(stages.allSatisfy { outline.nodeLine["c\($0.offset)"] != nil })
    let ids = stages.map { "c\($0.offset)" }
    for (a, b) in zip(ids, ids.dropFirst()) { #expect(outline.edges.contains("\(a) -> \(b)")) }
    #expect(Set(outline.edges).count == outline.edges.count)
    #expect(Self.labelledParameters(collapsed.text) == graph.parameterCount.staticValue)
    #expect(Self.labelledParameters(full.text) == graph.parameterCount.staticValue)
  }

  @Test func quotesAndBackslashesInNamesAreEscaped() throws {
    var graph = Graph(name: "say \"hi\"")
    let x = graph.addInput(name: #"in"put\n"#, type: TensorType(.f32, [2]))
    let y = graph.addNode(.relu, operands: [x], attributes: Attributes(), results: [(#"a\"b"#, TensorType(.f32, [2]))])
    graph.outputs = [(name: "out", value: y[0])]
    let text = GraphPicture(graph).text
    #expect(text.hasPrefix(#"digraph "say \"hi\"" {"#))
    #expect(text.contains(#"i0 [label="in\"put\\n\nf32[2]""#))
    #expect(text.contains(#"n0 [label="a\\\"b\nrelu\n[2]"]"#))
    let svg = String(decoding: try Graphviz.render(text, as: .svg), as: UTF8.self)
    #expect(svg.contains("in&quot;put\\n"))
    #expect(svg.contains(#"a\&quot;b"#))
  }

  @Test(arguments: ["bilstm", "bilstm_attention1d", "bilstm_attention2d", "resnet18", "resnet18_lstm", "vgg19_lstm"])
  func studySpecRendersToSVG(name: String) throws {
    let graph = try Self.studySpec(name)
    for collapse in [false, true] {
      let svg = String(
        decoding: try Graphviz.render(GraphPicture(graph, collapse: collapse).text, as: .svg), as: UTF8.self)
      #expect(svg.hasPrefix("<?xml") || svg.hasPrefix("<svg"))
      #expect(svg.contains(">\(graph[graph.inputs[0]].name)</text>"))
      #expect(svg.contains(">logits</text>"))
      #expect(svg.contains(">tap \(graph.taps[0].name): \(graph.taps[0].kind.rawValue)</text>"))
    }
  }

  @Test func rendersPNGAndPDF() throws {
    let text = GraphPicture(try Self.studySpec("bilstm_attention2d")).text
    let png = try Graphviz.render(text, as: .png)
    #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
    let pdf = try Graphviz.render(text, as: .pdf)
    #expect(pdf.starts(with: Array("%PDF".utf8)))
  }

  @Test func malformedDotIsAnErrorNotACrash() {
    #expect {
      try Graphviz.render("digraph { a -> ", as: .svg)
    } throws: { error in
      String(describing: error).hasPrefix("graphviz: cannot read the DOT text")
    }
  }
}
