import GlassboxIR

extension Model {
  /// The feature map a Grad-CAM explains when none is named: the last 4-D map `[N, C, h, w]`
  /// (`h·w > 1`) that a global pooling, a pooling to 1×1 or a flattening turns into features on
  /// the way to the first output — the output of ResNet's `layer4`, DenseNet's and VGG's last
  /// block, the target layer pytorch-grad-cam's examples choose. Nil when there is none.
  public static func explainedFeatureMap(in graph: Graph) -> ValueID? {
    guard let output = graph.outputs.first?.value else { return nil }
    // Nodes the first output depends on.
    var needed = Set<Int>()
    var stack = [output]
    var seen = Set<ValueID>()
    while let v = stack.popLast() {
      guard seen.insert(v).inserted, let node = graph.producer(of: v) else { continue }
      needed.insert(node.index)
      stack += graph[node].operands
    }
    var chosen: ValueID?
    for index in needed.sorted() {
      let node = graph.nodes[index]
      guard let x = node.operands.first, let y = node.results.first else { continue }
      let map = graph[x].type
      guard map.rank == 4, map.dtype.isFloatingPoint, let h = map.shape[2].staticValue,
        let w = map.shape[3].staticValue, h * w > 1
      else { continue }
      let result = graph[y].type
      let collapsesSpace: Bool
      switch node.op {
      case .globalAvgPool2d:
        collapsesSpace = true
      case .mean, .max, .sum:
        collapsesSpace = ReduceAttributes(of: node).reducedAxes(rank: 4).isSuperset(of: [2, 3])
      case .avgPool2d, .maxPool2d:
        collapsesSpace = result.rank == 4 && result.shape[2] == Dim(1) && result.shape[3] == Dim(1)
      case .flatten, .reshape:
        collapsesSpace = result.rank <= 2
      default:
        collapsesSpace = false
      }
      if collapsesSpace { chosen = x }
    }
    return chosen
  }

  /// The weight `[classes, C]` of the linear layer that reads the globally pooled `map` (through
  /// reshapes), for a class activation map; nil when no such layer follows.
  public static func classifierWeight(after map: ValueID, in graph: Graph) -> ValueID? {
    var current = map
    var pooled = false
    for _ in 0..<8 {
      guard let reader = graph.nodes.first(where: { $0.operands.first == current }), let next = reader.results.first
      else { return nil }
      switch reader.op {
      case .globalAvgPool2d, .mean:
        pooled = true
      case .reshape, .flatten, .dropout:
        break
      case .linear where pooled:
        return reader.operands[1]
      default:
        return nil
      }
      current = next
    }
    return nil
  }
}
