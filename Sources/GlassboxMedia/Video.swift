import CFFmpeg
import Foundation
import GlassboxIR

/// An 8-bit RGB picture: `pixels` holds `height` rows of `width` pixels, each R, G, B
/// (`pixels[(y·width + x)·3 + c]`), no row padding.
public struct RGBImage: Sendable, Equatable {
  /// Pixels per row.
  public var width: Int
  /// Rows.
  public var height: Int
  /// `height·width·3` bytes, R G B per pixel, rows top to bottom.
  public var pixels: [UInt8]

  /// An image of `width`×`height` filled with one colour.
  public init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8) = (0, 0, 0)) {
    self.width = width
    self.height = height
    var p = [UInt8](repeating: 0, count: width * height * 3)
    if fill != (0, 0, 0) {
      for i in stride(from: 0, to: p.count, by: 3) { p[i] = fill.0; p[i + 1] = fill.1; p[i + 2] = fill.2 }
    }
    pixels = p
  }

  /// An image from packed RGB bytes; `pixels.count` must be `width·height·3`.
  public init(width: Int, height: Int, pixels: [UInt8]) {
    precondition(pixels.count == width * height * 3, "RGBImage: \(pixels.count) bytes for \(width)×\(height)")
    self.width = width
    self.height = height
    self.pixels = pixels
  }

  /// The pixel at column x, row y.
  public subscript(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
    let i = (y * width + x) * 3
    return (pixels[i], pixels[i + 1], pixels[i + 2])
  }
}

/// What the container says about a video, before decoding.
public struct VideoInfo: Sendable, Equatable {
  /// Coded frame width in pixels.
  public var width: Int
  /// Coded frame height in pixels.
  public var height: Int
  /// Frames in the stream: the container's count when it records one (AVI, MP4), otherwise
  /// the number of video packets (Matroska, WebM), counted by demuxing without decoding.
  public var frameCount: Int
  /// Average frame rate; 0 when the container does not say.
  public var framesPerSecond: Double
  /// Length from the stream (or the container) in seconds; 0 when unknown.
  public var durationSeconds: Double
  /// FFmpeg's codec name (`mpeg4`, `h264`, `vp9`, …).
  public var codec: String
}

/// Reads frames of any container and codec this FFmpeg decodes (libavformat, libavcodec),
/// converting and resizing them with libswscale.
public enum VideoDecoder {
  /// The container's description of the best video stream of `path`.
  public static func info(_ path: String) throws(MediaError) -> VideoInfo {
    let demuxer = try Demuxer(path: path)
    let (index, stream) = try videoStream(demuxer)
    return try describe(stream, demuxer: demuxer, index: index)
  }

  /// The frame numbers (0-based, in presentation order) that `count` frames by `sampling` take
  /// from a clip of `frameCount` frames; throws `.tooShort` when the clip cannot supply them.
  public static func frameIndices(
    frameCount: Int, count: Int, sampling: FrameSampling, file: String = "video"
  ) throws(MediaError) -> [Int] {
    switch sampling {
    case .uniform:
      guard frameCount >= count else {
        throw MediaError(.tooShort, file: file, "clip has \(frameCount) frames; the recipe samples \(count)")
      }
      return (0..<count).map { i in (2 * i + 1) * frameCount / (2 * count) }
    case .stride(let k):
      let needed = (count - 1) * k + 1
      guard frameCount >= needed else {
        throw MediaError(
          .tooShort, file: file, "clip has \(frameCount) frames; \(count) frames every \(k) need \(needed)")
      }
      return (0..<count).map { $0 * k }
    }
  }

  /// The recipe's tensor for `path`: `[frames, 3, size, size]` (f32), frames chosen by the
  /// recipe's sampling, each resized to size×size, scaled to [0, 1] and normalised per channel.
  ///
  /// `threads` is the decoder's thread count: 0 lets FFmpeg choose (fastest for one file); data
  /// sets decode several files at once with 1 thread each.
  public static func frames(_ path: String, recipe: VideoRecipe, threads: Int = 0) throws(MediaError) -> Tensor {
    try recipe.validate(name: path)
    let size = recipe.size
    let plane = size * size
    var values = [Float](repeating: 0, count: recipe.frames * 3 * plane)
    let table = NormalisationTable(mean: recipe.mean, std: recipe.std)
    try decode(path, count: recipe.frames, sampling: recipe.sampling, width: size, height: size, threads: threads) {
      slot, rgb, stride in
      values.withUnsafeMutableBufferPointer { out in
        let base = out.baseAddress! + slot * 3 * plane
        table.normalise(rgb: rgb, rowStride: stride, width: size, height: size, into: base)
      }
    }
    return Tensor(shape: [recipe.frames, 3, size, size], f32: values)
  }

  /// The sampled frames themselves as RGB pictures of `width`×`height` (by default the video's
  /// own size), with their frame numbers — for drawing explanations over them.
  public static func images(
    _ path: String, count: Int, sampling: FrameSampling = .uniform,
    width: Int? = nil, height: Int? = nil, threads: Int = 0
  ) throws(MediaError) -> (indices: [Int], images: [RGBImage]) {
    var images = [RGBImage?](repeating: nil, count: count)
    var w = width ?? 0, h = height ?? 0
    if width == nil || height == nil {
      let info = try info(path)
      w = width ?? info.width
      h = height ?? info.height
    }
    let indices = try decode(path, count: count, sampling: sampling, width: w, height: h, threads: threads) {
      slot, rgb, stride in
      var pixels = [UInt8](repeating: 0, count: w * h * 3)
      pixels.withUnsafeMutableBufferPointer { p in
        for y in 0..<h { (p.baseAddress! + y * w * 3).update(from: rgb + y * stride, count: w * 3) }
      }
      images[slot] = RGBImage(width: w, height: h, pixels: pixels)
    }
    return (indices, images.compactMap { $0 })
  }

  /// An image file (PNG, JPEG, BMP, …, or the first frame of a video) by the `image` recipe:
  /// `[3, size, size]` (f32).
  public static func image(_ path: String, recipe: ImageRecipe, threads: Int = 0) throws(MediaError) -> Tensor {
    let size = recipe.size
    var values = [Float](repeating: 0, count: 3 * size * size)
    let table = NormalisationTable(mean: recipe.mean, std: recipe.std)
    try decode(path, indices: [0], width: size, height: size, threads: threads) { _, rgb, stride in
      values.withUnsafeMutableBufferPointer { out in
        table.normalise(rgb: rgb, rowStride: stride, width: size, height: size, into: out.baseAddress!)
      }
    }
    return Tensor(shape: [3, size, size], f32: values)
  }

  // MARK: Decoding

  /// Called with the slot (position among the chosen frames), the converted RGB24 pixels and
  /// their row stride in bytes. The pixels are only valid during the call.
  typealias FrameSink = (_ slot: Int, _ rgb: UnsafePointer<UInt8>, _ rowStride: Int) -> Void

  /// Chooses frames by `sampling`, decodes them, converts each to RGB24 `width`×`height` and
  /// hands it to `sink`. Returns the frame numbers used.
  @discardableResult
  static func decode(
    _ path: String, count: Int, sampling: FrameSampling, width: Int, height: Int,
    threads: Int, sink: FrameSink
  ) throws(MediaError) -> [Int] {
    guard count >= 1, width >= 1, height >= 1, width <= 16384, height <= 16384 else {
      throw MediaError(.invalidRecipe, file: path, "cannot sample \(count) frames of \(width)×\(height)")
    }
    let demuxer = try Demuxer(path: path)
    let (index, stream) = try videoStream(demuxer)
    var frameCount: Int
    switch sampling {
    case .stride(let k):
      // Frames from the start: no count needed, decoding stops at the last one.
      frameCount = (count - 1) * k + 1
    case .uniform:
      frameCount = Int(stream.pointee.nb_frames)
      if frameCount <= 0 { frameCount = try countPackets(path: path, streamIndex: index) }
    }
    let indices = try frameIndices(frameCount: frameCount, count: count, sampling: sampling, file: path)
    let decoded = try decode(
      demuxer: demuxer, streamIndex: index, stream: stream, indices: indices,
      width: width, height: height, threads: threads, sink: sink)
    if decoded.delivered == count { return indices }
    // The container's count was wrong (it announced more frames than decode): sample again
    // from the frames that really exist.
    let actual = try frameIndices(frameCount: decoded.framesSeen, count: count, sampling: sampling, file: path)
    try decode(path, indices: actual, width: width, height: height, threads: threads, sink: sink)
    return actual
  }

  /// Decodes the frames numbered `indices` (ascending) of `path`.
  static func decode(
    _ path: String, indices: [Int], width: Int, height: Int, threads: Int,
    sink: FrameSink
  ) throws(MediaError) {
    let demuxer = try Demuxer(path: path)
    let (index, stream) = try videoStream(demuxer)
    let decoded = try decode(
      demuxer: demuxer, streamIndex: index, stream: stream, indices: indices,
      width: width, height: height, threads: threads, sink: sink)
    guard decoded.delivered == indices.count else {
      if decoded.framesSeen == 0 {
        throw MediaError(.corrupt, file: path, "no video frame could be decoded")
      }
      throw MediaError(
        .tooShort, file: path,
        "only \(decoded.framesSeen) frames could be decoded; frame \(indices[decoded.delivered]) was asked for")
    }
  }

  private static func videoStream(_ demuxer: Demuxer) throws(MediaError) -> (Int32, UnsafeMutablePointer<AVStream>) {
    guard let index = demuxer.bestStream(AVMEDIA_TYPE_VIDEO), let stream = demuxer.stream(index) else {
      throw MediaError(.noStream, file: demuxer.path, "has no video stream")
    }
    return (index, stream)
  }

  private static func describe(
    _ stream: UnsafeMutablePointer<AVStream>, demuxer: Demuxer, index: Int32
  ) throws(MediaError) -> VideoInfo {
    let parameters = stream.pointee.codecpar.pointee
    var frames = Int(stream.pointee.nb_frames)
    if frames <= 0 { frames = try countPackets(path: demuxer.path, streamIndex: index) }
    let rate = stream.pointee.avg_frame_rate
    let fps = rate.den > 0 ? Double(rate.num) / Double(rate.den) : 0
    var duration = 0.0
    if stream.pointee.duration > 0 {
      duration = Double(stream.pointee.duration) * av_q2d(stream.pointee.time_base)
    } else if let ctx = demuxer.context, ctx.pointee.duration > 0 {
      duration = Double(ctx.pointee.duration) / Double(AV_TIME_BASE)
    }
    return VideoInfo(
      width: Int(parameters.width), height: Int(parameters.height), frameCount: frames,
      framesPerSecond: fps, durationSeconds: duration,
      codec: String(cString: avcodec_get_name(parameters.codec_id)))
  }

  /// Counts the packets of one stream by demuxing a fresh copy of the file (no decoding).
  private static func countPackets(path: String, streamIndex: Int32) throws(MediaError) -> Int {
    let demuxer = try Demuxer(path: path)
    guard let packet = av_packet_alloc() else { throw MediaError(.corrupt, file: path, "out of memory") }
    var p: UnsafeMutablePointer<AVPacket>? = packet
    defer { av_packet_free(&p) }
    var count = 0
    while av_read_frame(demuxer.context, packet) >= 0 {
      if packet.pointee.stream_index == streamIndex { count += 1 }
      av_packet_unref(packet)
    }
    return count
  }

  /// The decode loop: reads packets of the stream, decodes, and converts only the frames whose
  /// number is in `indices` (ascending; repeats allowed). Stops as soon as the last is delivered.
  ///
  /// When the container indexes every frame with its keyframe flag and frames are not
  /// reordered (AVI and MP4 without B-frames, the common case for HMDB-51's XVID clips), the
  /// loop jumps over whole groups of pictures: before each chosen frame it seeks to the last
  /// keyframe at or before it when that is ahead of the decoder, and numbers frames by their
  /// timestamps. Any surprise (a timestamp not in the index) falls back to plain sequential
  /// decoding from the start.
  private static func decode(
    demuxer: Demuxer, streamIndex: Int32, stream: UnsafeMutablePointer<AVStream>,
    indices: [Int], width: Int, height: Int, threads: Int,
    sink: FrameSink
  ) throws(MediaError) -> (delivered: Int, framesSeen: Int) {
    let keyframes = KeyframeIndex(stream: stream)
    if let keyframes {
      do {
        return try decode(
          demuxer: demuxer, streamIndex: streamIndex, stream: stream, indices: indices,
          width: width, height: height, threads: threads, keyframes: keyframes, sink: sink)
      } catch let error where error.kind == .seekFallback {
        let fresh = try Demuxer(path: demuxer.path)
        guard let s = fresh.stream(streamIndex) else {
          throw MediaError(.noStream, file: demuxer.path, "has no video stream")
        }
        return try decode(
          demuxer: fresh, streamIndex: streamIndex, stream: s, indices: indices,
          width: width, height: height, threads: threads, keyframes: nil, sink: sink)
      }
    }
    return try decode(
      demuxer: demuxer, streamIndex: streamIndex, stream: stream, indices: indices,
      width: width, height: height, threads: threads, keyframes: nil, sink: sink)
  }

  private static func decode(
    demuxer: Demuxer, streamIndex: Int32, stream: UnsafeMutablePointer<AVStream>,
    indices: [Int], width: Int, height: Int, threads: Int, keyframes: KeyframeIndex?,
    sink: FrameSink
  ) throws(MediaError) -> (delivered: Int, framesSeen: Int) {
    let path = demuxer.path
    let decoder = try StreamDecoder(stream: stream, path: path, threads: Int32(clamping: threads))
    // Only the chosen stream's packets are wanted; the demuxer may skip the others.
    if let ctx = demuxer.context {
      for i in 0..<Int(ctx.pointee.nb_streams) where i != Int(streamIndex) {
        ctx.pointee.streams[i]?.pointee.discard = AVDISCARD_ALL
      }
    }
    guard let packet = av_packet_alloc(), let frame = av_frame_alloc() else {
      throw MediaError(.corrupt, file: path, "out of memory")
    }
    var packetOwner: UnsafeMutablePointer<AVPacket>? = packet
    var frameOwner: UnsafeMutablePointer<AVFrame>? = frame
    let converter = FrameConverter(width: width, height: height)
    defer {
      av_packet_free(&packetOwner)
      av_frame_free(&frameOwner)
    }
    var delivered = 0
    /// One past the highest frame number decoded so far.
    var framesSeen = 0
    /// The number the next decoded frame gets when frames are counted (no keyframe index).
    var nextNumber = 0
    var decodeError: Int32 = 0
    /// A keyframe to seek to before reading on, when it skips at least a few frames.
    var pendingSeek: Int? = nil

    func planSeek() {
      guard let keyframes, delivered < indices.count,
        let k = keyframes.keyframe(atOrBefore: indices[delivered]), k > nextNumber + 2
      else { return }
      pendingSeek = k
    }

    /// Receives every frame the decoder has ready; returns false when all indices are delivered.
    func drain() throws(MediaError) -> Bool {
      while true {
        let received = avcodec_receive_frame(decoder.context, frame)
        if received == FF.again || received == FF.endOfFile { return true }
        if received < 0 {
          decodeError = received
          return true
        }
        defer { av_frame_unref(frame) }
        var number = nextNumber
        if let keyframes {
          guard let n = keyframes.frameNumber(timestamp: frame.pointee.best_effort_timestamp) else {
            throw MediaError(.seekFallback, file: path, "frame timestamp not in the index")
          }
          number = n
        }
        nextNumber = number + 1
        framesSeen = max(framesSeen, number + 1)
        if delivered < indices.count && indices[delivered] < number {
          // A chosen frame was passed over: only possible when the index misled a seek.
          if keyframes != nil { throw MediaError(.seekFallback, file: path, "seek passed frame \(indices[delivered])") }
        }
        while delivered < indices.count && indices[delivered] == number {
          let (rgb, rowStride) = try converter.convert(frame, path: path)
          sink(delivered, rgb, rowStride)
          delivered += 1
          planSeek()
        }
        if delivered == indices.count { return false }
        if pendingSeek != nil { return true }
      }
    }

    planSeek()
    var reading = true
    while reading {
      if let k = pendingSeek, let keyframes {
        pendingSeek = nil
        guard av_seek_frame(demuxer.context, streamIndex, keyframes.timestamps[k], AVSEEK_FLAG_BACKWARD) >= 0 else {
          throw MediaError(.seekFallback, file: path, "seek failed")
        }
        avcodec_flush_buffers(decoder.context)
        nextNumber = k
      }
      let read = av_read_frame(demuxer.context, packet)
      if read < 0 {
        reading = false
        _ = avcodec_send_packet(decoder.context, nil)  // flush: the decoder's delayed frames
      } else {
        defer { av_packet_unref(packet) }
        guard packet.pointee.stream_index == streamIndex else { continue }
        var sent = avcodec_send_packet(decoder.context, packet)
        if sent == FF.again {
          // The decoder is full: take its frames, then hand the packet over again.
          if try !drain() { return (delivered, framesSeen) }
          sent = avcodec_send_packet(decoder.context, packet)
        }
        if sent < 0 && sent != FF.again {
          // A damaged packet: keep going (the decoder resynchronises at the next keyframe).
          decodeError = sent
        }
      }
      if try !drain() { return (delivered, framesSeen) }
    }
    if framesSeen == 0 && decodeError != 0 {
      throw MediaError(.corrupt, file: path, "cannot decode the video (\(FF.message(decodeError)))")
    }
    return (delivered, framesSeen)
  }
}

/// The frame-accurate keyframe map of a stream whose container indexes every frame (AVI, MP4),
/// usable only when frames are not reordered (no B-frames): then frame n is index entry n.
struct KeyframeIndex {
  /// Timestamp of frame n, strictly increasing, in the stream's time base.
  let timestamps: [Int64]
  /// Frame numbers of the keyframes, ascending.
  let keyframes: [Int]

  init?(stream: UnsafeMutablePointer<AVStream>) {
    let frames = Int(stream.pointee.nb_frames)
    guard frames > 0, let parameters = stream.pointee.codecpar, parameters.pointee.video_delay == 0,
      Int(avformat_index_get_entries_count(stream)) == frames
    else { return nil }
    var timestamps: [Int64] = []
    var keyframes: [Int] = []
    timestamps.reserveCapacity(frames)
    for i in 0..<frames {
      guard let entry = avformat_index_get_entry(stream, Int32(i)) else { return nil }
      let t = entry.pointee.timestamp
      if let last = timestamps.last, t <= last { return nil }
      timestamps.append(t)
      if (entry.pointee.flags & AVINDEX_KEYFRAME) != 0 { keyframes.append(i) }
    }
    guard keyframes.first == 0 else { return nil }
    self.timestamps = timestamps
    self.keyframes = keyframes
  }

  /// The index of the best video stream of `path`, if it has one (for tests and diagnostics).
  static func of(_ path: String) throws(MediaError) -> KeyframeIndex? {
    let demuxer = try Demuxer(path: path)
    guard let i = demuxer.bestStream(AVMEDIA_TYPE_VIDEO), let stream = demuxer.stream(i) else { return nil }
    return KeyframeIndex(stream: stream)
  }

  /// The frame whose timestamp is exactly `timestamp`, or nil.
  func frameNumber(timestamp: Int64) -> Int? {
    guard timestamp != FF.noTimestamp else { return nil }
    var lo = 0, hi = timestamps.count
    while lo < hi {
      let mid = (lo + hi) / 2
      if timestamps[mid] < timestamp { lo = mid + 1 } else { hi = mid }
    }
    return lo < timestamps.count && timestamps[lo] == timestamp ? lo : nil
  }

  /// The last keyframe at or before frame `n`.
  func keyframe(atOrBefore n: Int) -> Int? {
    var lo = 0, hi = keyframes.count
    while lo < hi {
      let mid = (lo + hi) / 2
      if keyframes[mid] <= n { lo = mid + 1 } else { hi = mid }
    }
    return lo > 0 ? keyframes[lo - 1] : nil
  }
}

/// swscale conversion of decoded frames to packed RGB24 of a fixed size, re-created when the
/// source size or pixel format changes mid-stream.
final class FrameConverter {
  let width: Int
  let height: Int
  private var context: OpaquePointer?
  private let buffer: UnsafeMutablePointer<UInt8>
  let rowStride: Int

  init(width: Int, height: Int, flags: Int32 = SWS_BILINEAR) {
    self.width = width
    self.height = height
    self.flags = flags
    // Rows padded to 64 bytes so swscale may use its aligned SIMD paths.
    rowStride = (width * 3 + 63) & ~63
    buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: rowStride * height + 64)
  }

  private let flags: Int32

  deinit {
    sws_freeContext(context)
    buffer.deallocate()
  }

  /// The frame as RGB24, valid until the next call.
  func convert(_ frame: UnsafeMutablePointer<AVFrame>, path: String) throws(MediaError) -> (UnsafePointer<UInt8>, Int) {
    let f = frame.pointee
    guard f.width > 0, f.height > 0, f.format >= 0 else {
      throw MediaError(.corrupt, file: path, "decoded a frame of \(f.width)×\(f.height) with no pixel format")
    }
    context = sws_getCachedContext(
      context, f.width, f.height, AVPixelFormat(rawValue: f.format),
      Int32(width), Int32(height), AV_PIX_FMT_RGB24, flags, nil, nil, nil)
    guard let context else {
      let name = av_get_pix_fmt_name(AVPixelFormat(rawValue: f.format)).map { String(cString: $0) } ?? "\(f.format)"
      throw MediaError(.corrupt, file: path, "cannot convert \(name) frames of \(f.width)×\(f.height) to RGB")
    }
    var destination: [UnsafeMutablePointer<UInt8>?] = [buffer, nil, nil, nil]
    var strides: [Int32] = [Int32(rowStride), 0, 0, 0]
    let sourceData = frame.pointer(to: \.data)!.withMemoryRebound(to: UnsafePointer<UInt8>?.self, capacity: 8) { $0 }
    let sourceStrides = frame.pointer(to: \.linesize)!.withMemoryRebound(to: Int32.self, capacity: 8) { $0 }
    let rows = sws_scale(context, sourceData, sourceStrides, 0, f.height, &destination, &strides)
    guard rows == Int32(height) else {
      throw MediaError(.corrupt, file: path, "frame conversion produced \(rows) of \(height) rows")
    }
    return (UnsafePointer(buffer), rowStride)
  }
}

/// Per-channel lookup tables from a byte to its normalised value `(v/255 − mean[c]) / std[c]`.
struct NormalisationTable {
  /// 3 × 256 values, channel-major.
  let table: [Float]

  init(mean: [Float], std: [Float]) {
    var t = [Float](repeating: 0, count: 768)
    for c in 0..<3 {
      for v in 0..<256 { t[c * 256 + v] = (Float(v) / 255 - mean[c]) / std[c] }
    }
    table = t
  }

  /// Packed RGB24 rows into planar `[3, height, width]` floats at `out`.
  func normalise(
    rgb: UnsafePointer<UInt8>, rowStride: Int, width: Int, height: Int, into out: UnsafeMutablePointer<Float>
  ) {
    let plane = width * height
    table.withUnsafeBufferPointer { t in
      let r = t.baseAddress!, g = r + 256, b = r + 512
      for y in 0..<height {
        let row = rgb + y * rowStride
        let o = y * width
        for x in 0..<width {
          out[o + x] = r[Int(row[3 * x])]
          out[plane + o + x] = g[Int(row[3 * x + 1])]
          out[2 * plane + o + x] = b[Int(row[3 * x + 2])]
        }
      }
    }
  }
}
