import Foundation
import GlassboxFormat
import GlassboxIR
import GlassboxONNX

extension Model {
  /// A copy with one more tap, given as on the command line: `KIND:VALUE[,VALUE][:option=value…]`
  /// (`gradcam:layer3`, `cam:layer4,fc.weight`, `gradcam:cnn.layer4:scope=frame:name=frames`,
  /// `occlusion:image:window=16:stride=8,8`), by
  /// the rules of a spec's `tap NAME = KIND(VALUE, option: value)`. The name defaults to the
  /// kind (or `kind_value` when a tap has that name already); `name=` sets it. A model imported
  /// from ONNX takes its values' ONNX names too (`gradcam:/layer4/layer4.1/relu_1/Relu_output_0`),
  /// and `auto` chooses the feature map (`Model.explainedFeatureMap`).
  public func adding(tap text: String) throws(GlassboxError) -> Model {
    var g = graph
    try Model.addTap(text, to: &g, onnxNames: onnxNames)
    return try with(graph: g)
  }

  /// The model with the tap `text` names: this model when it has a tap of that name,
  /// otherwise a copy with the tap `KIND:VALUE[:option=value…]` added (`adding(tap:)`), and
  /// the tap's name.
  public func withTap(_ text: String) throws(GlassboxError) -> (model: Model, tap: String) {
    if graph.taps.contains(where: { $0.name == text }) || !text.contains(":") { return (self, text) }
    let extended = try adding(tap: text)
    return (extended, extended.graph.taps.last?.name ?? text)
  }

  /// A comma-separated list of taps as the command line writes it
  /// (`gradcam,layercam:cnn.layer4,saliency`), split into the texts `withTap` takes. A comma
  /// starts the next tap only where the piece after it starts one — a tap of the model, a bare
  /// tap kind, or `KIND:` — or where the tap before it is a bare name (which takes no comma);
  /// other commas stay in their tap (`cam:layer4,fc.weight`, `occlusion:image:stride=8,8`). A
  /// text that names one of the model's taps is that tap alone.
  public func tapTexts(_ list: String) -> [String] {
    if graph.taps.contains(where: { $0.name == list }) { return [list] }
    func startsTap(_ piece: Substring) -> Bool {
      if graph.taps.contains(where: { $0.name == piece }) || TapKind(rawValue: String(piece)) != nil { return true }
      guard let colon = piece.firstIndex(of: ":") else { return false }
      return TapKind(rawValue: String(piece[..<colon])) != nil
    }
    var texts: [String] = []
    for piece in list.split(separator: ",", omittingEmptySubsequences: false) {
      if let last = texts.last, last.contains(":"), !startsTap(piece) {
        texts[texts.count - 1] = last + "," + piece
      } else {
        texts.append(String(piece))
      }
    }
    return texts
  }

  /// The model with every tap of `texts` (each as `withTap` takes it: a tap's name, or
  /// `KIND:VALUE[:option=value…]` to add) and the taps' names in order, each checked to be a
  /// tap of the model and none named twice, so that a bad list fails before any work.
  public func withTaps(_ texts: [String]) throws(GlassboxError) -> (model: Model, taps: [String]) {
    guard !texts.isEmpty else { throw GlassboxError(.input, "give at least one tap to explain") }
    var model = self
    var names: [String] = []
    for text in texts {
      guard !text.isEmpty else {
        throw GlassboxError(.input, "an empty tap in the list '\(texts.joined(separator: ","))'")
      }
      let (extended, name) = try model.withTap(text)
      _ = try extended.tap(named: name)
      guard !names.contains(name) else { throw GlassboxError(.input, "tap \(name) is asked for twice") }
      model = extended
      names.append(name)
    }
    return (model, names)
  }

  /// Adds a tap written as `adding(tap:)` takes it to `graph`; `onnxNames` maps ONNX value
  /// names to the graph's.
  public static func addTap(
    _ text: String, to graph: inout Graph, onnxNames: [String: String] = [:]
  )
    throws(GlassboxError)
  {
    func fail(_ m: String) -> GlassboxError { GlassboxError(.input, "--tap \(text): \(m)") }
    // KIND, then the values (an ONNX name may hold ':'), then the options (each has '=').
    var parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
    var optionParts: [String] = []
    while parts.count > 2, let last = parts.last, last.contains("=") { optionParts.insert(parts.removeLast(), at: 0) }
    if parts.count > 2 { parts = [parts[0], parts.dropFirst().joined(separator: ":")] }
    guard parts.count >= 2, !parts[1].isEmpty else { throw fail("expected KIND:VALUE[:option=value…]") }
    guard let kind = TapKind(rawValue: parts[0]) else {
      throw fail("unknown tap kind '\(parts[0])'; expected \(TapKind.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    var valueNames = parts[1].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    var operands: [ValueID] = []
    if valueNames == ["auto"] {
      guard let map = explainedFeatureMap(in: graph) else {
        throw fail(
          "auto: the graph has no 4-D feature map [N, C, h, w] (h·w > 1) before a global pooling or "
            + "flattening on the way to its output '\(graph.outputs.first?.name ?? "")'; name the value")
      }
      operands = [map]
      if kind == .cam {
        guard let weight = classifierWeight(after: map, in: graph) else {
          throw fail("auto: no linear classifier reads the pooled map \(graph[map].name); name the map and the weight")
        }
        operands.append(weight)
      }
      valueNames = operands.map { graph[$0].name }
    } else {
      guard valueNames.count == kind.operandCount else {
        throw fail(
          "tap \(kind.rawValue) takes \(kind.operandCount) value\(kind.operandCount == 1 ? "" : "s") (separated by ','), found \(valueNames.count)"
        )
      }
      for n in valueNames {
        let id =
          graph.value(named: n) ?? onnxNames[n].flatMap { graph.value(named: $0) }
          ?? graph.value(named: ONNXNames.readable(n))
        guard let id else { throw fail("the graph has no value named '\(n)'") }
        operands.append(id)
      }
    }
    guard operands.count == kind.operandCount else {
      throw fail("tap \(kind.rawValue) takes \(kind.operandCount) values, found \(operands.count)")
    }
    var name: String?
    var options = Attributes()
    for option in optionParts {
      let kv = option.split(separator: "=", maxSplits: 1).map(String.init)
      guard kv.count == 2 else { throw fail("option '\(option)' is not name=value") }
      if kv[0] == "name" {
        name = kv[1]
        continue
      }
      guard let spec = kind.options.first(where: { $0.name == kv[0] }) else {
        let known = (kind.options.map(\.name) + ["name"]).joined(separator: ", ")
        throw fail("tap \(kind.rawValue) has no option '\(kv[0])'; expected \(known)")
      }
      guard options[spec.name] == nil else { throw fail("option '\(spec.name)' is given twice") }
      switch spec.kind {
      case .int:
        guard let v = Int(kv[1]) else { throw fail("option \(spec.name) must be an integer, found '\(kv[1])'") }
        options[spec.name] = .int(v)
      case .choice(let names):
        guard names.contains(kv[1]) else {
          throw fail("option \(spec.name) must be one of \(names.joined(separator: ", ")), found '\(kv[1])'")
        }
        options[spec.name] = .string(kv[1])
      case .float:
        guard let v = Double(kv[1]), v.isFinite else {
          throw fail("option \(spec.name) must be a number, found '\(kv[1])'")
        }
        options[spec.name] = .float(v)
      case .pair:
        let sides = kv[1].split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
        guard (1...2).contains(sides.count), let h = sides[0], let w = sides.last ?? nil else {
          throw fail("option \(spec.name) must be N or H,W, found '\(kv[1])'")
        }
        options[spec.name] = Pair(h, w).attribute
      case .bool, .dim, .ints, .floats, .dims:
        throw fail("option \(spec.name) cannot be given on the command line")
      }
    }
    for spec in kind.options where options[spec.name] == nil { options[spec.name] = spec.defaultValue }
    let tapName: String
    if let name {
      tapName = name
    } else if !graph.taps.contains(where: { $0.name == kind.rawValue }) {
      tapName = kind.rawValue
    } else {
      tapName = kind.rawValue + "_" + graph[operands[0]].name.replacingOccurrences(of: ".", with: "_")
    }
    guard !tapName.isEmpty, !graph.taps.contains(where: { $0.name == tapName }) else {
      throw fail("a tap named '\(tapName)' exists already; give another with :name=NAME")
    }
    let type: TensorType
    do {
      type = try kind.inferType(operands, options: options, in: graph)
    } catch {
      throw fail(error.message)
    }
    graph.taps.append(Tap(name: tapName, kind: kind, operands: operands, options: options, type: type))
  }

  /// Class names from a file, one per line (a final newline and `\r` line ends allowed); their
  /// count must be the class count of the graph's first output when that is static.
  public static func readLabels(_ path: String, for graph: Graph) throws(GlassboxError) -> [String] {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw GlassboxError(.file, file: path, "cannot be read")
    }
    guard let text = String(data: data, encoding: .utf8) else {
      throw GlassboxError(.file, file: path, "labels are not UTF-8 text")
    }
    // "\r\n" is one Character in Swift, and a newline like "\n".
    var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
    while lines.last == "" { lines.removeLast() }
    if let empty = lines.firstIndex(of: "") {
      throw GlassboxError(.input, file: path, "line \(empty + 1) is empty; give one label per line")
    }
    if let n = graph.labelCount, n != lines.count {
      throw GlassboxError(
        .input, file: path, "\(lines.count) labels but output '\(graph.outputs[0].name)' has \(n) classes")
    }
    return lines
  }
}
