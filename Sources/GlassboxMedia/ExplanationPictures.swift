import Foundation

/// Pictures of explanations: heat maps over frames, strips, per-frame relevance plots, and
/// MFCC images with attention. Pure drawing on `RGBImage`s and SVG text; files are written by
/// `ImageWriter` and `VideoWriter`.
public enum ExplanationPictures {
  /// An RGB picture of one image of a normalised input tensor `[3, H, W]` (channel planes),
  /// undoing the recipe's `(x/255 − mean)/std`: `pixel = 255·(x·std + mean)`, clamped.
  public static func denormalized(
    _ planes: ArraySlice<Float>, width: Int, height: Int,
    mean: [Float], std: [Float]
  ) -> RGBImage {
    let plane = width * height
    var pixels = [UInt8](repeating: 0, count: plane * 3)
    let base = planes.startIndex
    for c in 0..<3 {
      let m = c < mean.count ? mean[c] : 0, s = c < std.count ? std[c] : 1
      for i in 0..<plane {
        let v = (planes[base + c * plane + i] * s + m) * 255
        pixels[3 * i + c] = UInt8(min(max(v.rounded(), 0), 255))
      }
    }
    return RGBImage(width: width, height: height, pixels: pixels)
  }

  /// Images side by side, left to right, with `gap` pixels of `background` between them;
  /// rows of the shorter images are padded at the bottom.
  public static func strip(
    _ images: [RGBImage], gap: Int = 2, background: (UInt8, UInt8, UInt8) = (255, 255, 255)
  ) -> RGBImage {
    guard !images.isEmpty else { return RGBImage(width: 1, height: 1, fill: background) }
    let width = images.reduce(0) { $0 + $1.width } + gap * (images.count - 1)
    let height = images.map(\.height).max() ?? 1
    var out = RGBImage(width: width, height: height, fill: background)
    var x = 0
    for image in images {
      paste(image, into: &out, x: x, y: 0)
      x += image.width + gap
    }
    return out
  }

  /// Images one above the other, with `gap` pixels between them.
  public static func column(
    _ images: [RGBImage], gap: Int = 2, background: (UInt8, UInt8, UInt8) = (255, 255, 255)
  ) -> RGBImage {
    guard !images.isEmpty else { return RGBImage(width: 1, height: 1, fill: background) }
    let width = images.map(\.width).max() ?? 1
    let height = images.reduce(0) { $0 + $1.height } + gap * (images.count - 1)
    var out = RGBImage(width: width, height: height, fill: background)
    var y = 0
    for image in images {
      paste(image, into: &out, x: 0, y: y)
      y += image.height + gap
    }
    return out
  }

  /// Copies `image` into `canvas` with its top-left corner at (x, y), clipped to the canvas.
  public static func paste(_ image: RGBImage, into canvas: inout RGBImage, x: Int, y: Int) {
    for row in 0..<image.height where y + row >= 0 && y + row < canvas.height {
      for col in 0..<image.width where x + col >= 0 && x + col < canvas.width {
        let s = 3 * (row * image.width + col), d = 3 * ((y + row) * canvas.width + x + col)
        canvas.pixels[d] = image.pixels[s]; canvas.pixels[d + 1] = image.pixels[s + 1];
        canvas.pixels[d + 2] = image.pixels[s + 2]
      }
    }
  }

  /// A one-pixel rectangle outline in `color` around pixels `x0...x1` × `y0...y1` (rounded
  /// outwards, clipped to the image): the object's box on an explanation overlay.
  public static func outline(
    _ image: inout RGBImage, x0: Double, y0: Double, x1: Double, y1: Double,
    color: (UInt8, UInt8, UInt8) = (255, 255, 255)
  ) {
    guard x0.isFinite, y0.isFinite, x1.isFinite, y1.isFinite, x1 >= x0, y1 >= y0 else { return }
    // Edges past the image are clamped one pixel outside it (so they draw nothing), which also
    // keeps a box from a corrupt sidecar (1e300) from overflowing Int or looping for ever.
    func edge(_ v: Double, _ size: Int) -> Int { Int(Swift.min(Swift.max(v, -1), Double(size))) }
    let left = edge(x0.rounded(.down), image.width), right = edge(x1.rounded(.up), image.width)
    let top = edge(y0.rounded(.down), image.height), bottom = edge(y1.rounded(.up), image.height)
    func put(_ x: Int, _ y: Int) {
      guard x >= 0, x < image.width, y >= 0, y < image.height else { return }
      let d = 3 * (y * image.width + x)
      image.pixels[d] = color.0; image.pixels[d + 1] = color.1; image.pixels[d + 2] = color.2
    }
    for x in left...right {
      put(x, top)
      put(x, bottom)
    }
    for y in top...bottom {
      put(left, y)
      put(right, y)
    }
  }

  /// Min-max normalisation to [0, 1]; a constant input maps to zeros.
  public static func normalized(_ values: [Float]) -> [Float] {
    guard let lo = values.min(), let hi = values.max(), hi > lo else {
      return [Float](repeating: 0, count: values.count)
    }
    return values.map { ($0 - lo) / (hi - lo) }
  }

  /// A time × feature matrix (`[frames, features]`, row-major) as a picture with time running
  /// left to right and feature 0 at the bottom, each pixel `scale`×`scale`, min-max normalised.
  public static func timeFeatureImage(
    _ matrix: [Float], frames: Int, features: Int, colorMap: ColorMap = .viridis,
    scale: Int = 1
  ) -> RGBImage {
    let v = normalized(matrix)
    var turned = [Float](repeating: 0, count: frames * features)
    for t in 0..<frames { for f in 0..<features { turned[(features - 1 - f) * frames + t] = v[t * features + f] } }
    let image = colorMap.image(turned, width: frames, height: features)
    return scale <= 1 ? image : enlarged(image, by: scale)
  }

  /// A time × feature matrix as `timeFeatureImage` draws it, but with each feature (row of
  /// the picture) min-max normalised on its own: an MFCC's first coefficient spans a hundred
  /// times the range of the others, and one scale for all leaves them a flat block.
  public static func perFeatureImage(
    _ matrix: [Float], frames: Int, features: Int, colorMap: ColorMap = .viridis,
    scale: Int = 1
  ) -> RGBImage {
    var turned = [Float](repeating: 0, count: frames * features)
    for f in 0..<features {
      let row = normalized((0..<frames).map { matrix[$0 * features + f] })
      for t in 0..<frames { turned[(features - 1 - f) * frames + t] = row[t] }
    }
    let image = colorMap.image(turned, width: frames, height: features)
    return scale <= 1 ? image : widened(image, by: scale)
  }

  /// The frames of a `[frames, features]` matrix that hold the clip: from the first to the last
  /// frame with a non-zero value (a recipe pads short clips with rows of literal zeros); all
  /// frames when every one is zero.
  public static func contentFrames(_ matrix: [Float], frames: Int, features: Int) -> Range<Int> {
    func holdsSignal(_ t: Int) -> Bool { (0..<features).contains { matrix[t * features + $0] != 0 } }
    guard let first = (0..<frames).first(where: holdsSignal), let last = (0..<frames).last(where: holdsSignal) else {
      return 0..<frames
    }
    return first..<(last + 1)
  }

  /// Each pixel repeated `factor` times along x (the time axis of a time × feature picture).
  public static func widened(_ image: RGBImage, by factor: Int) -> RGBImage {
    guard factor > 1 else { return image }
    var out = RGBImage(width: image.width * factor, height: image.height)
    for y in 0..<out.height {
      for x in 0..<out.width {
        let s = 3 * (y * image.width + x / factor), d = 3 * (y * out.width + x)
        out.pixels[d] = image.pixels[s]; out.pixels[d + 1] = image.pixels[s + 1];
        out.pixels[d + 2] = image.pixels[s + 2]
      }
    }
    return out
  }

  /// Each pixel repeated `factor`×`factor` times.
  public static func enlarged(_ image: RGBImage, by factor: Int) -> RGBImage {
    var out = RGBImage(width: image.width * factor, height: image.height * factor)
    for y in 0..<out.height {
      for x in 0..<out.width {
        let s = 3 * ((y / factor) * image.width + x / factor), d = 3 * (y * out.width + x)
        out.pixels[d] = image.pixels[s]; out.pixels[d + 1] = image.pixels[s + 1];
        out.pixels[d + 2] = image.pixels[s + 2]
      }
    }
    return out
  }

  /// A curve of `values` (one per column, min-max scaled to the height) on white, drawn as a
  /// filled area in `color`; one column per value.
  public static func curve(_ values: [Float], height: Int, color: (UInt8, UInt8, UInt8) = (200, 40, 40)) -> RGBImage {
    var out = RGBImage(width: max(values.count, 1), height: height, fill: (255, 255, 255))
    let v = normalized(values)
    for (x, value) in v.enumerated() {
      let top = height - 1 - Int((value * Float(height - 1)).rounded())
      for y in top..<height {
        let d = 3 * (y * out.width + x)
        out.pixels[d] = color.0; out.pixels[d + 1] = color.1; out.pixels[d + 2] = color.2
      }
    }
    return out
  }

  /// A band `height` pixels high and `width` wide, dark where a column lies in one of
  /// `intervals` (half-open column ranges), light elsewhere: speech intervals under an MFCC image.
  public static func intervalBand(width: Int, height: Int, intervals: [Range<Int>]) -> RGBImage {
    var out = RGBImage(width: width, height: height, fill: (235, 235, 235))
    for r in intervals {
      for x in max(r.lowerBound, 0)..<min(r.upperBound, width) where r.lowerBound < width {
        for y in 0..<height {
          let d = 3 * (y * width + x)
          out.pixels[d] = 30; out.pixels[d + 1] = 140; out.pixels[d + 2] = 60
        }
      }
    }
    return out
  }

  /// An SVG bar chart of one relevance value per frame (frame numbers under the bars).
  public static func relevanceSVG(_ values: [Float], title: String) -> String {
    let barWidth = 28, gap = 6, plotHeight = 160, left = 40, top = 30
    let width = left + values.count * (barWidth + gap) + 10, height = top + plotHeight + 40
    let hi = max(values.max() ?? 0, 1e-12)
    func esc(_ s: String) -> String {
      s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
        of: ">", with: "&gt;")
    }
    var svg = """
      <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" font-family="sans-serif" font-size="11">
      <rect width="100%" height="100%" fill="white"/>
      <text x="\(left)" y="18" font-size="13">\(esc(title))</text>
      <line x1="\(left)" y1="\(top + plotHeight)" x2="\(width - 10)" y2="\(top + plotHeight)" stroke="black"/>
      <line x1="\(left)" y1="\(top)" x2="\(left)" y2="\(top + plotHeight)" stroke="black"/>
      <text x="\(left - 4)" y="\(top + 4)" text-anchor="end">\(String(format: "%.3g", hi))</text>
      <text x="\(left - 4)" y="\(top + plotHeight)" text-anchor="end">0</text>

      """
    for (t, v) in values.enumerated() {
      let h = Int((Double(max(v, 0)) / Double(hi) * Double(plotHeight)).rounded())
      let x = left + gap + t * (barWidth + gap)
      let (r, g, b) = ColorMap.jet.color(v / hi)
      svg +=
        "<rect x=\"\(x)\" y=\"\(top + plotHeight - h)\" width=\"\(barWidth)\" height=\"\(h)\" fill=\"rgb(\(r),\(g),\(b))\"><title>frame \(t): \(v)</title></rect>\n"
      svg += "<text x=\"\(x + barWidth / 2)\" y=\"\(top + plotHeight + 14)\" text-anchor=\"middle\">\(t)</text>\n"
    }
    svg += "<text x=\"\(left + (width - left) / 2)\" y=\"\(height - 6)\" text-anchor=\"middle\">frame</text>\n</svg>\n"
    return svg
  }
}
