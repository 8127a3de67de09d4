import CFFmpeg
import Foundation

/// PNG pictures through FFmpeg's `png` encoder.
public enum ImageWriter {
  /// The PNG file's bytes for `image` (RGB, 8 bits per channel).
  public static func png(_ image: RGBImage) throws(MediaError) -> [UInt8] {
    _ = FF.quiet
    let name = "png"
    guard image.width >= 1, image.height >= 1 else {
      throw MediaError(.write, file: name, "cannot encode an image of \(image.width)×\(image.height)")
    }
    let encoder = try Encoder(
      codecName: "png", width: image.width, height: image.height,
      pixelFormat: AV_PIX_FMT_RGB24, timeBase: AVRational(num: 1, den: 1), file: name)
    var bytes: [UInt8] = []
    let frame = try RGBFrame(width: image.width, height: image.height, format: AV_PIX_FMT_RGB24, file: name)
    frame.fill(from: image)
    try encoder.send(frame.frame) { packet in
      bytes += UnsafeBufferPointer(start: packet.pointee.data, count: Int(packet.pointee.size))
    }
    try encoder.send(nil) { packet in
      bytes += UnsafeBufferPointer(start: packet.pointee.data, count: Int(packet.pointee.size))
    }
    return bytes
  }

  /// Writes `image` as a PNG file at `path` (replacing it only once the bytes are complete).
  public static func writePNG(_ image: RGBImage, to path: String) throws(MediaError) {
    let bytes: [UInt8]
    do {
      bytes = try png(image)
    } catch {
      throw MediaError(error.kind, file: path, error.message)
    }
    try writeFileAtomically(path, bytes: bytes)
  }
}

/// Writes a video frame by frame through libavformat and libavcodec; the container is chosen
/// by the file's extension:
///
/// | extension | codec | pixels |
/// |---|---|---|
/// | `.mp4`, `.mkv` | H.264 (libx264, CRF 18; MPEG-4 part 2 where x264 is missing) | YUV 4:2:0 |
/// | `.avi` | MPEG-4 part 2 (`mpeg4`, q 3) | YUV 4:2:0 |
/// | `.gif` | GIF, looping; a fixed 6×7×6 palette with 4×4 ordered dithering | 8-bit palette |
///
/// YUV 4:2:0 needs even sizes: an odd width or height is cut by one pixel. Every frame must
/// have the size given at creation. Call `finish()` to write the trailer; a writer released
/// without it leaves an incomplete file.
public final class VideoWriter {
  /// The file being written.
  public let path: String
  /// Width of the frames `append` takes.
  public let width: Int
  /// Height of the frames `append` takes.
  public let height: Int
  /// Playback rate.
  public let framesPerSecond: Int
  private var output: UnsafeMutablePointer<AVFormatContext>?
  private let encoder: Encoder
  private let stream: UnsafeMutablePointer<AVStream>
  private let frame: RGBFrame
  private let converter: OpaquePointer?
  private let isGIF: Bool
  private var nextTimestamp: Int64 = 0
  private var finished = false
  private let encodedWidth: Int
  private let encodedHeight: Int

  /// The extensions this writer knows.
  public static let extensions = ["mp4", "mkv", "avi", "gif"]

  /// Creates the file and writes its header; the extension picks the container (table above).
  public init(path: String, width: Int, height: Int, framesPerSecond: Int = 8) throws(MediaError) {
    _ = FF.quiet
    let ext = (path as NSString).pathExtension.lowercased()
    guard VideoWriter.extensions.contains(ext) else {
      throw MediaError(.write, file: path, "unknown video extension '.\(ext)'; use .mp4, .mkv, .avi or .gif")
    }
    guard width >= 2, height >= 2, width <= 8192, height <= 8192, framesPerSecond >= 1, framesPerSecond <= 1000 else {
      throw MediaError(.write, file: path, "cannot write \(width)×\(height) video at \(framesPerSecond) fps")
    }
    self.path = path
    self.width = width
    self.height = height
    self.framesPerSecond = framesPerSecond
    isGIF = ext == "gif"
    encodedWidth = isGIF ? width : width & ~1
    encodedHeight = isGIF ? height : height & ~1

    frame = try RGBFrame(
      width: encodedWidth, height: encodedHeight,
      format: isGIF ? AV_PIX_FMT_PAL8 : AV_PIX_FMT_YUV420P, file: path)
    converter =
      isGIF
      ? nil
      : sws_getContext(
        Int32(encodedWidth), Int32(encodedHeight), AV_PIX_FMT_RGB24,
        Int32(encodedWidth), Int32(encodedHeight), AV_PIX_FMT_YUV420P,
        SWS_BILINEAR, nil, nil, nil)
    var ctx: UnsafeMutablePointer<AVFormatContext>? = nil
    let allocated = avformat_alloc_output_context2(&ctx, nil, nil, path)
    guard allocated >= 0, let ctx else {
      sws_freeContext(converter)
      throw MediaError(.write, file: path, "cannot create the container (\(FF.message(allocated)))")
    }
    output = ctx
    let timeBase = AVRational(num: 1, den: Int32(framesPerSecond))
    let globalHeader = (ctx.pointee.oformat.pointee.flags & AVFMT_GLOBALHEADER) != 0
    do {
      switch ext {
      case "gif":
        encoder = try Encoder(
          codecName: "gif", width: width, height: height, pixelFormat: AV_PIX_FMT_PAL8,
          timeBase: timeBase, globalHeader: globalHeader, file: path)
      case "avi":
        encoder = try Encoder(
          codecName: "mpeg4", width: encodedWidth, height: encodedHeight, pixelFormat: AV_PIX_FMT_YUV420P,
          timeBase: timeBase, globalHeader: globalHeader, options: [:], quality: 3, file: path)
      default:
        if avcodec_find_encoder_by_name("libx264") != nil {
          encoder = try Encoder(
            codecName: "libx264", width: encodedWidth, height: encodedHeight, pixelFormat: AV_PIX_FMT_YUV420P,
            timeBase: timeBase, globalHeader: globalHeader,
            options: ["crf": "18", "preset": "fast"], file: path)
        } else {
          encoder = try Encoder(
            codecName: "mpeg4", width: encodedWidth, height: encodedHeight, pixelFormat: AV_PIX_FMT_YUV420P,
            timeBase: timeBase, globalHeader: globalHeader, options: [:], quality: 3, file: path)
        }
      }
    } catch {
      avformat_free_context(ctx)
      sws_freeContext(converter)
      throw error
    }
    guard let stream = avformat_new_stream(ctx, nil) else {
      avformat_free_context(ctx)
      sws_freeContext(converter)
      throw MediaError(.write, file: path, "cannot add a video stream")
    }
    self.stream = stream
    stream.pointee.time_base = timeBase
    stream.pointee.avg_frame_rate = AVRational(num: Int32(framesPerSecond), den: 1)
    avcodec_parameters_from_context(stream.pointee.codecpar, encoder.context)
    if (ctx.pointee.oformat.pointee.flags & AVFMT_NOFILE) == 0 {
      let opened = avio_open(&ctx.pointee.pb, path, AVIO_FLAG_WRITE)
      guard opened >= 0 else {
        throw MediaError(.write, file: path, "cannot open for writing (\(FF.message(opened)))")
      }
    }
    let header = avformat_write_header(ctx, nil)
    guard header >= 0 else {
      throw MediaError(.write, file: path, "cannot write the container header (\(FF.message(header)))")
    }
  }

  deinit {
    if let output {
      if (output.pointee.oformat.pointee.flags & AVFMT_NOFILE) == 0 { avio_closep(&output.pointee.pb) }
      avformat_free_context(output)
    }
    sws_freeContext(converter)
  }

  /// Encodes one frame; `image` must be `width`×`height`.
  public func append(_ image: RGBImage) throws(MediaError) {
    guard !finished else { throw MediaError(.write, file: path, "frame appended after finish()") }
    guard image.width == width, image.height == height else {
      throw MediaError(.write, file: path, "frame is \(image.width)×\(image.height); this video is \(width)×\(height)")
    }
    try frame.makeWritable(file: path)
    if isGIF {
      frame.fillPalettised(from: image)
    } else {
      image.pixels.withUnsafeBufferPointer { p in
        var source: [UnsafePointer<UInt8>?] = [p.baseAddress, nil, nil, nil]
        var strides: [Int32] = [Int32(width * 3), 0, 0, 0]
        let f = frame.frame
        let data = f.pointer(to: \.data)!.withMemoryRebound(to: UnsafeMutablePointer<UInt8>?.self, capacity: 8) { $0 }
        let lines = f.pointer(to: \.linesize)!.withMemoryRebound(to: Int32.self, capacity: 8) { $0 }
        _ = sws_scale(converter, &source, &strides, 0, Int32(encodedHeight), data, lines)
      }
    }
    frame.frame.pointee.pts = nextTimestamp
    nextTimestamp += 1
    try encoder.send(frame.frame) { (packet) throws(MediaError) in try self.write(packet) }
  }

  /// Flushes the encoder and writes the container's trailer.
  public func finish() throws(MediaError) {
    guard !finished else { return }
    finished = true
    try encoder.send(nil) { (packet) throws(MediaError) in try self.write(packet) }
    let trailer = av_write_trailer(output)
    guard trailer >= 0 else {
      throw MediaError(.write, file: path, "cannot finish the file (\(FF.message(trailer)))")
    }
  }

  private func write(_ packet: UnsafeMutablePointer<AVPacket>) throws(MediaError) {
    av_packet_rescale_ts(packet, encoder.context.pointee.time_base, stream.pointee.time_base)
    packet.pointee.stream_index = stream.pointee.index
    let written = av_interleaved_write_frame(output, packet)
    guard written >= 0 else {
      throw MediaError(.write, file: path, "cannot write a frame (\(FF.message(written)))")
    }
  }
}

/// An opened encoder. Internal.
final class Encoder {
  let context: UnsafeMutablePointer<AVCodecContext>
  let file: String
  private let packet: UnsafeMutablePointer<AVPacket>

  init(
    codecName: String, width: Int, height: Int, pixelFormat: AVPixelFormat, timeBase: AVRational,
    globalHeader: Bool = false, options: [String: String] = [:], quality: Int? = nil, file: String
  ) throws(MediaError) {
    self.file = file
    guard let codec = avcodec_find_encoder_by_name(codecName) else {
      throw MediaError(.write, file: file, "this FFmpeg has no '\(codecName)' encoder")
    }
    guard let ctx = avcodec_alloc_context3(codec), let packet = av_packet_alloc() else {
      throw MediaError(.write, file: file, "out of memory")
    }
    context = ctx
    self.packet = packet
    ctx.pointee.width = Int32(width)
    ctx.pointee.height = Int32(height)
    ctx.pointee.pix_fmt = pixelFormat
    ctx.pointee.time_base = timeBase
    ctx.pointee.framerate = AVRational(num: timeBase.den, den: timeBase.num)
    ctx.pointee.gop_size = 12
    if globalHeader { ctx.pointee.flags |= Int32(AV_CODEC_FLAG_GLOBAL_HEADER) }
    if let quality {
      ctx.pointee.flags |= Int32(AV_CODEC_FLAG_QSCALE)
      ctx.pointee.global_quality = Int32(quality) * FF_QP2LAMBDA
    }
    for (key, value) in options { av_opt_set(ctx.pointee.priv_data, key, value, 0) }
    let opened = avcodec_open2(ctx, codec, nil)
    guard opened >= 0 else {
      throw MediaError(
        .write, file: file, "cannot open the \(codecName) encoder for \(width)×\(height) (\(FF.message(opened)))")
    }
  }

  deinit {
    var c: UnsafeMutablePointer<AVCodecContext>? = context
    avcodec_free_context(&c)
    var p: UnsafeMutablePointer<AVPacket>? = packet
    av_packet_free(&p)
  }

  /// Sends a frame (nil flushes) and hands every packet that comes out to `sink`.
  func send(
    _ frame: UnsafeMutablePointer<AVFrame>?, sink: (UnsafeMutablePointer<AVPacket>) throws(MediaError) -> Void
  ) throws(MediaError) {
    let sent = avcodec_send_frame(context, frame)
    guard sent >= 0 || (frame == nil && sent == FF.endOfFile) else {
      throw MediaError(.write, file: file, "encoding failed (\(FF.message(sent)))")
    }
    while true {
      let received = avcodec_receive_packet(context, packet)
      if received == FF.again || received == FF.endOfFile { return }
      guard received >= 0 else { throw MediaError(.write, file: file, "encoding failed (\(FF.message(received)))") }
      defer { av_packet_unref(packet) }
      try sink(packet)
    }
  }
}

/// An `AVFrame` with its own buffers, for encoding. Internal.
final class RGBFrame {
  let frame: UnsafeMutablePointer<AVFrame>

  init(width: Int, height: Int, format: AVPixelFormat, file: String) throws(MediaError) {
    guard let f = av_frame_alloc() else { throw MediaError(.write, file: file, "out of memory") }
    frame = f
    f.pointee.width = Int32(width)
    f.pointee.height = Int32(height)
    f.pointee.format = format.rawValue
    let allocated = av_frame_get_buffer(f, 0)
    guard allocated >= 0 else {
      throw MediaError(.write, file: file, "cannot allocate a frame (\(FF.message(allocated)))")
    }
  }

  deinit {
    var f: UnsafeMutablePointer<AVFrame>? = frame
    av_frame_free(&f)
  }

  /// The encoder may still hold the previous frame's buffers: copy them before writing.
  func makeWritable(file: String) throws(MediaError) {
    let status = av_frame_make_writable(frame)
    guard status >= 0 else { throw MediaError(.write, file: file, "cannot reuse a frame (\(FF.message(status)))") }
  }

  /// Copies packed RGB24 rows into plane 0 (an RGB24 frame).
  func fill(from image: RGBImage) {
    guard let plane = frame.pointee.data.0 else { return }
    let stride = Int(frame.pointee.linesize.0)
    image.pixels.withUnsafeBufferPointer { p in
      for y in 0..<image.height {
        (plane + y * stride).update(from: p.baseAddress! + y * image.width * 3, count: image.width * 3)
      }
    }
  }

  /// Quantises `image` to the fixed GIF palette (6 levels of red × 7 of green × 6 of blue) with
  /// a 4×4 Bayer ordered dither, writing indices to plane 0 and the palette to plane 1.
  func fillPalettised(from image: RGBImage) {
    guard let indices = frame.pointee.data.0, let paletteBytes = frame.pointee.data.1 else { return }
    let palette = UnsafeMutableRawPointer(paletteBytes).assumingMemoryBound(to: UInt32.self)
    let levels = (6, 7, 6)
    for i in 0..<256 {
      let r = i / 42, g = (i / 6) % 7, b = i % 6
      if i < 252 {
        let rv = UInt32(r * 255 / (levels.0 - 1)), gv = UInt32(g * 255 / (levels.1 - 1)),
          bv = UInt32(b * 255 / (levels.2 - 1))
        palette[i] = 0xFF00_0000 | rv << 16 | gv << 8 | bv
      } else {
        palette[i] = 0xFF00_0000
      }
    }
    let bayer: [Float] = [0, 8, 2, 10, 12, 4, 14, 6, 3, 11, 1, 9, 15, 7, 13, 5].map { ($0 + 0.5) / 16 - 0.5 }
    let stride = Int(frame.pointee.linesize.0)
    func quantise(_ v: UInt8, _ count: Int, _ d: Float) -> Int {
      let x = Float(v) / 255 * Float(count - 1) + d
      return min(max(Int(x.rounded()), 0), count - 1)
    }
    for y in 0..<image.height {
      for x in 0..<image.width {
        let d = bayer[(y & 3) * 4 + (x & 3)]
        let (r, g, b) = image[x, y]
        let index = quantise(r, levels.0, d) * 42 + quantise(g, levels.1, d) * 6 + quantise(b, levels.2, d)
        indices[y * stride + x] = UInt8(index)
      }
    }
  }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`, so a failure
/// never leaves a half-written file.
func writeFileAtomically(_ path: String, bytes: [UInt8]) throws(MediaError) {
  let url = URL(fileURLWithPath: path)
  let temporary = url.deletingLastPathComponent().appendingPathComponent(
    ".\(url.lastPathComponent).\(UUID().uuidString).tmp")
  do {
    try Data(bytes).write(to: temporary)
  } catch {
    throw MediaError(.write, file: path, "cannot write: \(error.localizedDescription)")
  }
  guard rename(temporary.path, url.path) == 0 else {
    let reason = String(cString: strerror(errno))
    try? FileManager.default.removeItem(at: temporary)
    throw MediaError(.write, file: path, "cannot write: \(reason)")
  }
}
