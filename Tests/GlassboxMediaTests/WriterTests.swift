import Foundation
@testable import GlassboxMedia
import Testing

/// PNG, MP4, AVI and GIF writing, read back through the decoder; colour maps and blending.
struct WriterTests {
  /// A 40×30 picture with a horizontal red ramp, a vertical green ramp and constant blue.
  static func gradient(width: Int = 40, height: Int = 30, blue: UInt8 = 90) -> RGBImage {
    var image = RGBImage(width: width, height: height)
    for y in 0..<height {
      for x in 0..<width {
        let i = (y * width + x) * 3
        image.pixels[i] = UInt8(x * 255 / (width - 1))
        image.pixels[i + 1] = UInt8(y * 255 / (height - 1))
        image.pixels[i + 2] = blue
      }
    }
    return image
  }

  static func meanAbsDifference(_ a: RGBImage, _ b: RGBImage) -> Double {
    Double(zip(a.pixels, b.pixels).reduce(0) { $0 + abs(Int($1.0) - Int($1.1)) }) / Double(a.pixels.count)
  }

  @Test func pngRoundTripsExactly() throws {
    let directory = try TemporaryDirectory()
    let path = directory.path("picture.png")
    let image = Self.gradient()
    try ImageWriter.writePNG(image, to: path)
    let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
    #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    let back = try VideoDecoder.images(path, count: 1)
    #expect(back.images == [image])
  }

  @Test(arguments: ["mp4", "avi", "mkv"])
  func videoRoundTrips(_ ext: String) throws {
    let directory = try TemporaryDirectory()
    let path = directory.path("clip.\(ext)")
    let frames = (0..<10).map { Self.gradient(blue: UInt8($0 * 25)) }
    let writer = try VideoWriter(path: path, width: 40, height: 30, framesPerSecond: 5)
    for f in frames { try writer.append(f) }
    try writer.finish()
    let info = try VideoDecoder.info(path)
    #expect(info.frameCount == 10)
    #expect(info.width == 40 && info.height == 30)
    #expect(abs(info.framesPerSecond - 5) < 1e-9)
    let back = try VideoDecoder.images(path, count: 10)
    for (a, b) in zip(frames, back.images) {
      #expect(Self.meanAbsDifference(a, b) < 4, "\(ext): lossy but close")
    }
  }

  @Test func gifUsesThePaletteAndDither() throws {
    let directory = try TemporaryDirectory()
    let path = directory.path("clip.gif")
    let frames = (0..<4).map { Self.gradient(blue: UInt8($0 * 60)) }
    let writer = try VideoWriter(path: path, width: 40, height: 30, framesPerSecond: 4)
    for f in frames { try writer.append(f) }
    try writer.finish()
    let info = try VideoDecoder.info(path)
    #expect(info.codec == "gif")
    let back = try VideoDecoder.images(path, count: 4)
    #expect(back.images.count == 4)
    for (a, b) in zip(frames, back.images) {
      // 6 levels per channel are 51 apart; dithering keeps the average close.
      #expect(Self.meanAbsDifference(a, b) < 20)
    }
  }

  @Test func oddSizesAreCutToEvenForYUV() throws {
    let directory = try TemporaryDirectory()
    let path = directory.path("odd.mp4")
    let writer = try VideoWriter(path: path, width: 41, height: 31)
    try writer.append(Self.gradient(width: 41, height: 31))
    try writer.finish()
    let info = try VideoDecoder.info(path)
    #expect(info.width == 40 && info.height == 30)
  }

  @Test func writerRefusesWrongSizesAndExtensions() throws {
    let directory = try TemporaryDirectory()
    #expect(throws: MediaError.self) { try VideoWriter(path: directory.path("x.mov"), width: 8, height: 8) }
    let writer = try VideoWriter(path: directory.path("x.mp4"), width: 8, height: 8)
    let error = try #require(throws: MediaError.self) { try writer.append(RGBImage(width: 4, height: 4)) }
    #expect(error.message == "frame is 4×4; this video is 8×8")
  }

  // MARK: Colour maps and blending

  /// matplotlib's jet is piecewise linear (its `_jet_data`); the table must follow it.
  @Test func jetFollowsMatplotlibSegments() {
    func piecewise(_ points: [(Double, Double)], _ x: Double) -> Double {
      for (a, b) in zip(points, points.dropFirst()) where x <= b.0 {
        return a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0)
      }
      return points.last!.1
    }
    let red: [(Double, Double)] = [(0, 0), (0.35, 0), (0.66, 1), (0.89, 1), (1, 0.5)]
    let green: [(Double, Double)] = [(0, 0), (0.125, 0), (0.375, 1), (0.64, 1), (0.91, 0), (1, 0)]
    let blue: [(Double, Double)] = [(0, 0.5), (0.11, 1), (0.34, 1), (0.65, 0), (1, 0)]
    for level in 0..<256 {
      let x = Double(level) / 255
      let (r, g, b) = ColorMap.jet.color(Float(x))
      #expect(abs(Double(r) - 255 * piecewise(red, x)) <= 1.01, "red at level \(level)")
      #expect(abs(Double(g) - 255 * piecewise(green, x)) <= 1.01, "green at level \(level)")
      #expect(abs(Double(b) - 255 * piecewise(blue, x)) <= 1.01, "blue at level \(level)")
    }
  }

  @Test func viridisEndsAndClamping() {
    #expect(ColorMap.viridis.color(0) == (68, 1, 84))
    #expect(ColorMap.viridis.color(1) == (253, 231, 37))
    #expect(ColorMap.viridis.color(-3) == ColorMap.viridis.color(0))
    #expect(ColorMap.viridis.color(7) == ColorMap.viridis.color(1))
    #expect(ColorMap.viridis.color(.nan) == ColorMap.viridis.color(0))
  }

  @Test func bilinearResizeSamplesPixelCentres() {
    // PyTorch: F.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]), size=(4, 4), mode="bilinear")
    let out = Heatmap.resize([0, 1, 2, 3], width: 2, height: 2, to: 4, 4)
    let expected: [Float] = [0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3]
    #expect(out == expected)
  }

  @Test func overlayBlends() {
    let frame = RGBImage(width: 4, height: 4, fill: (200, 100, 0))
    let heat: [Float] = [0, 1, 1, 0]
    #expect(Heatmap.overlay(heat, width: 2, height: 2, on: frame, alpha: 0) == frame)
    let full = Heatmap.overlay(heat, width: 2, height: 2, on: frame, colorMap: .viridis, alpha: 1)
    #expect(full[0, 0] == ColorMap.viridis.color(0))
    #expect(full[3, 0] == ColorMap.viridis.color(1))
    let half = Heatmap.overlay(
      [1], width: 1, height: 1, on: RGBImage(width: 1, height: 1, fill: (0, 0, 0)), colorMap: .jet, alpha: 0.5)
    let (r, g, b) = ColorMap.jet.color(1)
    #expect(
      half[0, 0] == (UInt8((Float(r) / 2).rounded()), UInt8((Float(g) / 2).rounded()), UInt8((Float(b) / 2).rounded())))
  }

  /// The box's border, rounded outwards and clipped to the image; the inside and the outside
  /// keep their pixels; a box off the image or not a box draws nothing.
  @Test func outlineDrawsTheBorderOnly() {
    var image = RGBImage(width: 8, height: 6, fill: (0, 0, 0))
    ExplanationPictures.outline(&image, x0: 1.5, y0: 1, x1: 4.2, y1: 3, color: (9, 8, 7))
    for y in 0..<6 {
      for x in 0..<8 {
        let border = (x == 1 || x == 5) && (1...3).contains(y) || (y == 1 || y == 3) && (1...5).contains(x)
        #expect((image[x, y] == (9, 8, 7)) == border, "(\(x), \(y))")
      }
    }
    var clipped = RGBImage(width: 4, height: 4, fill: (0, 0, 0))
    ExplanationPictures.outline(&clipped, x0: -3, y0: 2, x1: 10, y1: 9)
    #expect(clipped[0, 2] == (255, 255, 255) && clipped[3, 2] == (255, 255, 255) && clipped[1, 3] == (0, 0, 0))
    let before = clipped
    ExplanationPictures.outline(&clipped, x0: 20, y0: 20, x1: 30, y1: 30)
    ExplanationPictures.outline(&clipped, x0: .nan, y0: 0, x1: 1, y1: 1)
    ExplanationPictures.outline(&clipped, x0: 3, y0: 0, x1: 1, y1: 1)
    #expect(clipped == before)
    // Absurd edges (a corrupt sidecar) are clamped: the rows inside drawn across, the sides
    // outside not at all, at once.
    var huge = RGBImage(width: 4, height: 4, fill: (0, 0, 0))
    ExplanationPictures.outline(&huge, x0: -1e300, y0: 0, x1: 1e300, y1: 3)
    #expect(huge[0, 0] == (255, 255, 255) && huge[3, 3] == (255, 255, 255) && huge[0, 1] == (0, 0, 0))
  }

  /// An MFCC's padding is rows of literal zeros: the picture keeps the frames from the first to
  /// the last with a non-zero value.
  @Test func contentFramesSkipZeroPadding() {
    var m = [Float](repeating: 0, count: 10 * 3)
    m[4 * 3 + 1] = -2  // frame 4 holds a value
    m[7 * 3 + 0] = 0.5  // frame 7 too; frame 5 is silent inside the clip and kept
    #expect(ExplanationPictures.contentFrames(m, frames: 10, features: 3) == 4..<8)
    #expect(ExplanationPictures.contentFrames([Float](repeating: 0, count: 6), frames: 3, features: 2) == 0..<3)
  }

  /// Each feature is scaled on its own: a feature spanning a thousand and one spanning one
  /// both reach both ends of the colour map; time runs left to right, feature 0 at the bottom.
  @Test func perFeatureImageScalesEachFeature() {
    let frames = 3
    let m: [Float] = [0, 5, 1000, 6, 500, 7]  // [frames, 2]: feature 0 = 0, 1000, 500; feature 1 = 5, 6, 7
    let image = ExplanationPictures.perFeatureImage(m, frames: frames, features: 2, scale: 2)
    #expect(image.width == 6 && image.height == 2)
    let low = ColorMap.viridis.color(0), high = ColorMap.viridis.color(1)
    #expect(image[0, 1] == low && image[2, 1] == high && image[3, 1] == high)  // feature 0, bottom row
    #expect(image[0, 0] == low && image[4, 0] == high)  // feature 1, top row
    #expect(image[2, 1] == ColorMap.viridis.color(1) && image[4, 1] == ColorMap.viridis.color(0.5))
  }
}
