import Foundation

/// Loss and accuracy curves as a small self-contained SVG: two panels side by side, epochs on
/// the x axis, training solid and validation dashed.
public enum Curves {
  public static func svg(_ history: [EpochRecord]) -> String {
    let width = 760.0, height = 305.0, panel = 340.0, top = 36.0, plotHeight = 210.0, left = 50.0
    var out =
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
    out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    let epochs = history.map { Double($0.epoch) }
    let maxEpoch = max(epochs.max() ?? 1, 1)
    func panelSVG(
      _ x0: Double, title: String, series: [(name: String, values: [Double?], color: String, dashed: Bool)],
      range: (Double, Double)
    ) -> String {
      var s = "<text x=\"\(x0 + panel / 2)\" y=\"20\" text-anchor=\"middle\" font-size=\"13\">\(title)</text>\n"
      s +=
        "<rect x=\"\(x0)\" y=\"\(top)\" width=\"\(panel - 20)\" height=\"\(plotHeight)\" fill=\"none\" stroke=\"#999\"/>\n"
      let (lo, hi) = range.1 > range.0 ? range : (range.0 - 0.5, range.0 + 0.5)
      func px(_ e: Double) -> Double {
        x0 + (maxEpoch <= 1 ? (panel - 20) / 2 : (e - 1) / (maxEpoch - 1) * (panel - 20))
      }
      func py(_ v: Double) -> Double { top + plotHeight - (v - lo) / (hi - lo) * plotHeight }
      for k in 0...4 {
        let v = lo + (hi - lo) * Double(k) / 4
        s += "<text x=\"\(x0 - 4)\" y=\"\(py(v) + 4)\" text-anchor=\"end\">\(String(format: "%.3g", v))</text>\n"
      }
      s +=
        "<text x=\"\(x0 + (panel - 20) / 2)\" y=\"\(top + plotHeight + 28)\" text-anchor=\"middle\">epoch (1–\(Int(maxEpoch)))</text>\n"
      for (i, line) in series.enumerated() {
        let points = zip(epochs, line.values).compactMap { e, v in
          v.flatMap { $0.isFinite ? "\(px(e)),\(py($0))" : nil }
        }
        guard !points.isEmpty else { continue }
        s +=
          "<polyline fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"2\"\(line.dashed ? " stroke-dasharray=\"6 4\"" : "") points=\"\(points.joined(separator: " "))\"/>\n"
        for p in points {
          s +=
            "<circle cx=\"\(p.split(separator: ",")[0])\" cy=\"\(p.split(separator: ",")[1])\" r=\"2.5\" fill=\"\(line.color)\"/>\n"
        }
        // The legend sits under the axis label, clear of the curves.
        s +=
          "<text x=\"\(x0 + Double(i) * 90)\" y=\"\(top + plotHeight + 46)\" fill=\"\(line.color)\">\(line.dashed ? "- - " : "— ")\(line.name)</text>\n"
      }
      return s
    }
    let losses = history.flatMap { [$0.trainLoss] + ($0.validationLoss.map { [$0] } ?? []) }.filter(\.isFinite)
    out += panelSVG(
      left, title: "loss",
      series: [
        ("train", history.map { $0.trainLoss }, "#1f77b4", false),
        ("validation", history.map { $0.validationLoss }, "#ff7f0e", true),
      ], range: (min(0, losses.min() ?? 0), losses.max() ?? 1))
    out += panelSVG(
      left + panel + 30, title: "accuracy",
      series: [
        ("train", history.map { $0.trainAccuracy }, "#1f77b4", false),
        ("validation", history.map { $0.validationAccuracy }, "#ff7f0e", true),
      ], range: (0, 1))
    return out + "</svg>\n"
  }
}
