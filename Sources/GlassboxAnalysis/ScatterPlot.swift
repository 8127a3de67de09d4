import Foundation

/// A 2-D scatter plot as a standalone SVG: one dot per point coloured by class, a legend with
/// each class's name and count, a title and a subtitle. The plot keeps the data's aspect ratio
/// (t-SNE axes have no units; stretching one would mislead) and has explicit pixel `width` and
/// `height` so browsers decode it as an image of that size.
public struct ScatterPlot: Sendable {
  /// Heading above the plot.
  public var title: String
  /// A second line (e.g. the trustworthiness).
  public var subtitle: String = ""
  /// Width and height of the square plotting area in pixels.
  public var size = 520.0
  /// Dot radius in pixels.
  public var radius = 3.5

  /// A plot with a title.
  public init(title: String, subtitle: String = "") {
    self.title = title
    self.subtitle = subtitle
  }

  /// Ten colours that stay distinct for colour-blind readers (Tableau 10), then ten more
  /// (Tableau 20's light tones); classes past twenty reuse them with a ring.
  public static let palette = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
    "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#aec7e8", "#ffbb78", "#98df8a",
    "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
  ]

  /// The SVG text for `points` (`[n, 2]`) with class `labels[i]` of `classes`.
  public func svg(points: Points, labels: [Int], classes: [String]) throws(AnalysisError) -> String {
    guard points.dimensions == 2 else {
      throw AnalysisError("scatter plot: points have \(points.dimensions) dimensions, not 2")
    }
    guard labels.count == points.count else {
      throw AnalysisError("scatter plot: \(labels.count) labels for \(points.count) points")
    }
    guard labels.allSatisfy({ classes.indices.contains($0) }) else {
      throw AnalysisError("scatter plot: a label is outside the \(classes.count) classes")
    }
    let margin = 16.0, top = subtitle.isEmpty ? 44.0 : 62.0
    let legendWidth = min(260.0, 60 + 7.2 * Double(classes.map(\.count).max() ?? 4))
    let width = margin + size + margin + legendWidth
    let height = max(top + size + margin, top + 20 * Double(classes.count) + margin)

    var xs = (0..<points.count).map { points[$0, 0] }, ys = (0..<points.count).map { points[$0, 1] }
    if xs.isEmpty { xs = [0]; ys = [0] }
    let (x0, x1) = (xs.min() ?? 0, xs.max() ?? 1), (y0, y1) = (ys.min() ?? 0, ys.max() ?? 1)
    let span = max(x1 - x0, y1 - y0, 1e-12) * 1.06
    let cx = (x0 + x1) / 2, cy = (y0 + y1) / 2
    func px(_ x: Double) -> Double { margin + size / 2 + (x - cx) / span * size }
    func py(_ y: Double) -> Double { top + size / 2 - (y - cy) / span * size }

    var s = """
      <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
      viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif">
      <rect width="100%" height="100%" fill="white"/>
      <text x="\(margin)" y="24" font-size="17" font-weight="bold">\(escapeXML(title))</text>

      """
    if !subtitle.isEmpty {
      s += "<text x=\"\(margin)\" y=\"44\" font-size=\"13\" fill=\"#555\">\(escapeXML(subtitle))</text>\n"
    }
    s += "<rect x=\"\(margin)\" y=\"\(top)\" width=\"\(size)\" height=\"\(size)\" fill=\"none\" stroke=\"#ccc\"/>\n"
    var counts = [Int](repeating: 0, count: classes.count)
    for i in 0..<points.count {
      let c = labels[i]
      counts[c] += 1
      let colour = ScatterPlot.palette[c % ScatterPlot.palette.count]
      let ring = c >= ScatterPlot.palette.count ? " stroke=\"black\" stroke-width=\"1\"" : ""
      s +=
        "<circle cx=\"\(fixed(px(points[i, 0])))\" cy=\"\(fixed(py(points[i, 1])))\" r=\"\(fixed(radius))\" "
        + "fill=\"\(colour)\" fill-opacity=\"0.85\"\(ring)/>\n"
    }
    let lx = margin + size + margin
    for (c, name) in classes.enumerated() {
      let y = top + 8 + 20 * Double(c)
      let colour = ScatterPlot.palette[c % ScatterPlot.palette.count]
      s += "<circle cx=\"\(lx + 6)\" cy=\"\(y)\" r=\"5\" fill=\"\(colour)\"/>"
      s += "<text x=\"\(lx + 16)\" y=\"\(y + 4)\" font-size=\"12\">\(escapeXML(name)) (\(counts[c]))</text>\n"
    }
    return s + "</svg>\n"
  }
}

/// `x` with one decimal (SVG coordinates).
func fixed(_ x: Double) -> String { String(format: "%.1f", x) }

/// Text made safe for XML and HTML content and attribute values.
public func escapeXML(_ s: String) -> String {
  var out = ""
  for ch in s {
    switch ch {
    case "&": out += "&amp;"
    case "<": out += "&lt;"
    case ">": out += "&gt;"
    case "\"": out += "&quot;"
    case "'": out += "&#39;"
    default: out.append(ch)
    }
  }
  return out
}
