import Foundation
import GlassboxFormat
import GlassboxIR

extension Model {
  /// A copy with one more tap, given as on the command line: `KIND:VALUE[,VALUE][:option=value…]`
  /// (`gradcam:layer3`, `cam:layer4,fc.weight`, `gradcam:cnn.layer4:scope=frame:name=frames`,
  /// `occlusion:image:window=16:stride=8,8`), by
  /// the rules of a spec's `tap NAME = KIND(VALUE, option: value)`. The name defaults to the
  /// kind (or `kind_value` when a tap has that name already); `name=` sets it.
  public func adding(tap text: String) throws(GlassboxError) -> Model {
    var g = graph
    try Model.addTap(text, to: &g)
    return try with(graph: g)
  }

  /// Adds a tap written as `adding(tap:)` takes it to `graph`.
  public static func addTap(_ text: String, to graph: inout Graph) throws(GlassboxError) {
    func fail(_ m: String) -> GlassboxError { GlassboxError(.input, "--tap \(text): \(m)") }
    let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
    guard parts.count >= 2, !parts[1].isEmpty else { throw fail("expected KIND:VALUE[:option=value…]") }
    guard let kind = TapKind(rawValue: parts[0]) else {
      throw fail("unknown tap kind '\(parts[0])'; expected \(TapKind.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    let valueNames = parts[1].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    guard valueNames.count == kind.operandCount else {
      throw fail("tap \(kind.rawValue) takes \(kind.operandCount) value\(kind.operandCount == 1 ? "" : "s") (separated by ','), found \(valueNames.count)")
    }
    var operands: [ValueID] = []
    for n in valueNames {
      guard let id = graph.value(named: n) else { throw fail("the graph has no value named '\(n)'") }
      operands.append(id)
    }
    var name: String?
    var options = Attributes()
    for option in parts.dropFirst(2) {
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
        guard let v = Double(kv[1]), v.isFinite else { throw fail("option \(spec.name) must be a number, found '\(kv[1])'") }
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
      tapName = kind.rawValue + "_" + valueNames[0].replacingOccurrences(of: ".", with: "_")
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
    guard let data = FileManager.default.contents(atPath: path) else { throw GlassboxError(.file, file: path, "cannot be read") }
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
      throw GlassboxError(.input, file: path, "\(lines.count) labels but output '\(graph.outputs[0].name)' has \(n) classes")
    }
    return lines
  }
}
