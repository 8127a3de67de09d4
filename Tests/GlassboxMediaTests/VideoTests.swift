import Foundation
@testable import GlassboxMedia
import GlassboxIR
import Testing

/// Video decoding through FFmpeg, on clips the ffmpeg CLI makes at test time. Each clip's frame
/// n is a flat grey of luma 16 + 3n, so a frame's brightness says which frame it is.
struct VideoTests {
  /// Container extension and encoder arguments for each covered format.
  static let formats: [(String, [String])] = [
    ("avi", ["-c:v", "mpeg4", "-q:v", "2"]),
    ("mp4", ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]),
    ("mkv", ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]),
    ("webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "0", "-crf", "20"]),
  ]

  /// A `frames`-frame clip at 25 fps, 64×48, frame n a flat grey of luma 16 + 3n.
  static func makeClip(_ directory: TemporaryDirectory, _ ext: String, frames: Int = 50) throws -> String {
    let codec = formats.first { $0.0 == ext }!.1
    let path = directory.path("clip.\(ext)")
    try runFFmpeg(
      [
        "-f", "lavfi", "-i", "color=c=black:s=64x48:r=25,format=yuv420p",
        "-vf", "geq=lum='16+3*N':cb=128:cr=128", "-frames:v", "\(frames)",
      ] + codec + [path])
    return path
  }

  static func runFFmpeg(_ arguments: [String]) throws {
    try runTool(["ffmpeg", "-nostdin", "-v", "error", "-y"] + arguments)
  }

  /// Mean brightness (0–255) of each image.
  static func brightness(_ images: [RGBImage]) -> [Double] {
    images.map { image in Double(image.pixels.reduce(0) { $0 + Int($1) }) / Double(image.pixels.count) }
  }

  @Test(arguments: formats.map(\.0))
  func uniformSamplingPicksTheRightFrames(_ ext: String) throws {
    let directory = try TemporaryDirectory()
    let path = try Self.makeClip(directory, ext)
    let info = try VideoDecoder.info(path)
    #expect(info.width == 64 && info.height == 48)
    #expect(info.frameCount == 50, "\(ext): \(info.frameCount) frames")
    let all = try VideoDecoder.images(path, count: 50)
    #expect(all.indices == Array(0..<50))
    let levels = Self.brightness(all.images)
    for n in 1..<50 { #expect(levels[n] > levels[n - 1] + 1, "\(ext): frame \(n) not brighter than \(n - 1)") }
    let sampled = try VideoDecoder.images(path, count: 8)
    #expect(sampled.indices == [3, 9, 15, 21, 28, 34, 40, 46])
    let sampledLevels = Self.brightness(sampled.images)
    for (slot, n) in sampled.indices.enumerated() {
      #expect(abs(sampledLevels[slot] - levels[n]) < 0.5, "\(ext): slot \(slot) is not frame \(n)")
    }
  }

  /// With a keyframe every 4 frames the decoder seeks from group to group; the frames it
  /// returns must be the ones a sequential decode numbers the same way.
  @Test(arguments: [
    ("avi", ["-c:v", "mpeg4", "-q:v", "2", "-g", "4", "-sc_threshold", "1000000000"]),
    (
      "mp4",
      [
        "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", "4", "-sc_threshold", "0",
        "-pix_fmt", "yuv420p",
      ]
    ),
  ])
  func seekingOverGroupsOfPicturesKeepsFrameNumbers(_ format: (String, [String])) throws {
    let directory = try TemporaryDirectory()
    let path = directory.path("gop.\(format.0)")
    try Self.runFFmpeg(
      [
        "-f", "lavfi", "-i", "color=c=black:s=64x48:r=25,format=yuv420p",
        "-vf", "geq=lum='16+3*N':cb=128:cr=128", "-frames:v", "60",
      ] + format.1 + [path])
    let found = try KeyframeIndex.of(path)
    let index = try #require(found, "\(format.0): expected a per-frame keyframe index")
    #expect(index.keyframes == Array(stride(from: 0, to: 60, by: 4)))
    let all = Self.brightness(try VideoDecoder.images(path, count: 60).images)
    let sampled = try VideoDecoder.images(path, count: 5)
    #expect(sampled.indices == [6, 18, 30, 42, 54])
    for (slot, n) in sampled.indices.enumerated() {
      #expect(
        abs(Self.brightness([sampled.images[slot]])[0] - all[n]) < 0.5, "\(format.0): slot \(slot) is not frame \(n)")
    }
  }

  @Test func strideSamplingTakesEveryKthFrameFromTheStart() throws {
    let directory = try TemporaryDirectory()
    let path = try Self.makeClip(directory, "avi")
    let all = Self.brightness(try VideoDecoder.images(path, count: 50).images)
    let strided = try VideoDecoder.images(path, count: 5, sampling: .stride(3))
    #expect(strided.indices == [0, 3, 6, 9, 12])
    for (slot, n) in strided.indices.enumerated() {
      #expect(abs(Self.brightness([strided.images[slot]])[0] - all[n]) < 0.5)
    }
  }

  @Test func recipeTensorIsNormalised() throws {
    let directory = try TemporaryDirectory()
    let path = try Self.makeClip(directory, "mp4")
    let recipe = VideoRecipe(frames: 4, size: 16, mean: [0.5, 0.25, 0], std: [0.5, 0.25, 1])
    let tensor = try VideoDecoder.frames(path, recipe: recipe)
    #expect(tensor.shape == [4, 3, 16, 16])
    let images = try VideoDecoder.images(path, count: 4, width: 16, height: 16).images
    let values = tensor.floats
    for t in 0..<4 {
      for c in 0..<3 {
        for p in stride(from: 0, to: 256, by: 37) {
          let byte = Float(images[t].pixels[p * 3 + c])
          let expected = (byte / 255 - recipe.mean[c]) / recipe.std[c]
          #expect(abs(values[((t * 3 + c) * 256) + p] - expected) < 1e-6)
        }
      }
    }
  }

  @Test func uniformIndicesAreSegmentCentres() throws {
    #expect(try VideoDecoder.frameIndices(frameCount: 16, count: 16, sampling: .uniform) == Array(0..<16))
    #expect(try VideoDecoder.frameIndices(frameCount: 125, count: 4, sampling: .uniform) == [15, 46, 78, 109])
    #expect(try VideoDecoder.frameIndices(frameCount: 10, count: 1, sampling: .uniform) == [5])
  }

  // MARK: Bad input

  @Test func tooFewFramesIsAClearError() throws {
    let directory = try TemporaryDirectory()
    let path = try Self.makeClip(directory, "avi", frames: 10)
    let error = try #require(throws: MediaError.self) {
      try VideoDecoder.frames(path, recipe: VideoRecipe(frames: 16, size: 8))
    }
    #expect(error.kind == .tooShort)
    #expect(error.description == "\(path): clip has 10 frames; the recipe samples 16")
    let strided = try #require(throws: MediaError.self) {
      try VideoDecoder.frames(path, recipe: VideoRecipe(frames: 4, size: 8, sampling: .stride(4)))
    }
    #expect(strided.kind == .tooShort)
    #expect(strided.message == "clip has 10 frames; 4 frames every 4 need 13")
  }

  @Test func audioOnlyFileHasNoVideoStream() throws {
    let directory = try TemporaryDirectory()
    let path = directory.path("tone.mp4")
    try Self.runFFmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=0.5", "-c:a", "aac", path])
    let error = try #require(throws: MediaError.self) { try VideoDecoder.frames(path, recipe: VideoRecipe()) }
    #expect(error.kind == .noStream)
    #expect(error.description == "\(path): has no video stream")
  }

  @Test func missingEmptyAndGarbageFiles() throws {
    let directory = try TemporaryDirectory()
    let missing = directory.path("nothing.avi")
    #expect(throws: MediaError(.unreadable, file: missing, "no such file")) {
      try VideoDecoder.frames(missing, recipe: VideoRecipe())
    }
    let empty = directory.path("empty.avi")
    _ = FileManager.default.createFile(atPath: empty, contents: Data())
    #expect(throws: MediaError(.empty, file: empty, "file is empty (0 bytes)")) {
      try VideoDecoder.frames(empty, recipe: VideoRecipe())
    }
    let garbage = directory.path("garbage.avi")
    try Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ 13) }).write(to: URL(fileURLWithPath: garbage))
    let error = try #require(throws: MediaError.self) { try VideoDecoder.frames(garbage, recipe: VideoRecipe()) }
    #expect(error.kind == .corrupt)
    #expect(error.file == garbage)
  }

  /// A clip cut in half: the frames that remain decode, and asking for more than remain is a
  /// clear error naming the file (never a crash).
  @Test(arguments: ["avi", "mp4", "mkv", "webm"])
  func truncatedClip(_ ext: String) throws {
    let directory = try TemporaryDirectory()
    let path = try Self.makeClip(directory, ext)
    let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
    let cut = directory.path("cut.\(ext)")
    try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: cut))
    do {
      let tensor = try VideoDecoder.frames(cut, recipe: VideoRecipe(frames: 4, size: 8))
      #expect(tensor.shape == [4, 3, 8, 8])
    } catch {
      #expect(error.file == cut)
      #expect([.tooShort, .corrupt].contains(error.kind), "\(error)")
    }
  }

  @Test func imageRecipeReadsPNG() throws {
    let directory = try TemporaryDirectory()
    let path = directory.path("red.png")
    try Self.runFFmpeg(["-f", "lavfi", "-i", "color=c=red:s=40x30", "-frames:v", "1", path])
    let tensor = try VideoDecoder.image(path, recipe: ImageRecipe(size: 8, mean: [0, 0, 0], std: [1, 1, 1]))
    #expect(tensor.shape == [3, 8, 8])
    let v = tensor.floats
    #expect(v[0] > 0.99 && v[64] < 0.01 && v[128] < 0.01)
  }
}
