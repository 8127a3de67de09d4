/// ONNX names as spec-language names.
///
/// ONNX names are any strings (`gpu_0/conv1_w_0`, `/layer1/layer1.0/conv1/Conv_output_0`,
/// `onnx::Conv_193`, `input.1`, `123`); a spec name is dot-separated segments of letters,
/// digits and `_`, starting with a letter or `_`. The readable form keeps letters, digits, `_`
/// and `.`, turns `/` and `:` into segment breaks, any other character into `_`, drops empty
/// segments and puts `v` before a leading digit:
///
/// ```
/// /layer1/layer1.0/conv1/Conv_output_0   layer1.layer1.0.conv1.Conv_output_0
/// gpu_0/conv1_w_0                        gpu_0.conv1_w_0
/// onnx::Conv_193                         onnx.Conv_193
/// 123                                    v123
/// layer1.0.conv1.weight                  layer1.0.conv1.weight   (a state_dict name is kept)
/// ```
///
/// Two ONNX names with one readable form get `_2`, `_3`, … in the order the importer meets
/// them (inputs, initializers, then node outputs in node order), so the mapping is one to one
/// and the importer records it both ways (`ONNXImport.valueNames`): a name can always be
/// taken back to the ONNX name it came from.
public enum ONNXNames {
  /// Words that start a statement in the spec language; a name equal to one gets a `_`.
  static let keywords: Set<String> = [
    "graph", "block", "param", "buffer", "scope", "tap", "return", "where",
    "recipe",
  ]

  /// The readable spec form of an ONNX name (before any `_2` a clash adds).
  public static func readable(_ name: String) -> String {
    var segments: [String] = []
    var current = ""
    for scalar in name.unicodeScalars {
      switch scalar {
      case "a"..."z", "A"..."Z", "0"..."9", "_": current.unicodeScalars.append(scalar)
      case ".", "/", ":":
        if !current.isEmpty { segments.append(current) }
        current = ""
      default: current += "_"
      }
    }
    if !current.isEmpty { segments.append(current) }
    if segments.isEmpty { return "v" }
    if let first = segments[0].unicodeScalars.first, ("0"..."9").contains(first) { segments[0] = "v" + segments[0] }
    let joined = segments.joined(separator: ".")
    return keywords.contains(joined) ? joined + "_" : joined
  }

  /// The PyTorch module path of a node torch.onnx named (`/layer4/layer4.0/downsample/downsample.0/Conv`
  /// → `layer4.0.downsample.0`, its weights' `state_dict` prefix): each scope is its module's name
  /// under the scope before, or that name extended (`layer4` → `layer4.0`). Nil for other names.
  public static func modulePath(ofNode name: String) -> String? {
    guard name.hasPrefix("/") else { return nil }
    let scopes = name.split(separator: "/").dropLast().map(String.init)
    guard !scopes.isEmpty else { return nil }
    var path: [String] = []
    for scope in scopes {
      if let last = path.last, scope.hasPrefix(last + ".") { path[path.count - 1] = scope } else { path.append(scope) }
    }
    return readable(path.joined(separator: "."))
  }

  /// A symbol name for an ONNX `dim_param` (`batch_size`, `seq`): the readable form without
  /// dots (a symbol is one segment).
  static func symbol(_ dimParam: String) -> String {
    readable(dimParam).replacingOccurrences(of: ".", with: "_")
  }
}

/// The names taken in one imported graph: ONNX names with their spec names, and the names
/// the importer makes up for the intermediate values of an op it composes.
struct NameTable {
  private(set) var specNames: [String: String] = [:]
  private var taken: Set<String> = []

  /// The spec name of an ONNX name, claiming a free one the first time it is asked.
  mutating func claim(_ onnxName: String) -> String {
    if let s = specNames[onnxName] { return s }
    let s = fresh(ONNXNames.readable(onnxName))
    specNames[onnxName] = s
    return s
  }

  /// `base`, or `base_2`, `base_3`, … whichever is free first; taken from then on.
  mutating func fresh(_ base: String) -> String {
    var name = base
    var k = 2
    while taken.contains(name) {
      name = "\(base)_\(k)"
      k += 1
    }
    taken.insert(name)
    return name
  }

  /// Whether a spec name is taken.
  func isTaken(_ name: String) -> Bool { taken.contains(name) }
}
