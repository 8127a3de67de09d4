import CFFmpeg
import Foundation

/// Small pieces of FFmpeg's C API that Swift cannot import directly (function-like macros), and
/// the one place that sets FFmpeg's logging. Internal: nothing outside this module sees FFmpeg.
enum FF {
  /// `AVERROR(EAGAIN)`: the decoder wants more input, or the encoder more frames.
  static let again: Int32 = -EAGAIN
  /// `AVERROR_EOF` = `FFERRTAG('E','O','F',' ')`.
  static let endOfFile: Int32 = -Int32(
    bitPattern: UInt32(0x45) | UInt32(0x4F) << 8 | UInt32(0x46) << 16 | UInt32(0x20) << 24)
  /// `AVERROR_INVALIDDATA` = `FFERRTAG('I','N','D','A')`.
  static let invalidData: Int32 = -Int32(
    bitPattern: UInt32(0x49) | UInt32(0x4E) << 8 | UInt32(0x44) << 16 | UInt32(0x41) << 24)
  /// `AV_NOPTS_VALUE`.
  static let noTimestamp: Int64 = Int64(bitPattern: 0x8000_0000_0000_0000)

  /// FFmpeg's text for an error code (`Invalid data found when processing input`).
  static func message(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    _ = av_strerror(code, &buffer, buffer.count)
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
  }

  /// Silences FFmpeg's own console messages once per process: every failure reaches the user
  /// as a `MediaError` naming the file, and a corrupt clip in a data set of thousands should
  /// not flood the terminal. Set `GLASSBOX_FFMPEG_LOG=1` to see them when debugging.
  static let quiet: Void = {
    if ProcessInfo.processInfo.environment["GLASSBOX_FFMPEG_LOG"] == "1" {
      av_log_set_level(AV_LOG_WARNING)
    } else {
      av_log_set_level(AV_LOG_QUIET)
    }
  }()
}

/// An input file opened by libavformat, with its streams probed. Frees everything on deinit.
final class Demuxer {
  let path: String
  private(set) var context: UnsafeMutablePointer<AVFormatContext>?

  /// Opens `path` and reads enough of it to know its streams.
  init(path: String) throws(MediaError) {
    _ = FF.quiet
    self.path = path
    try checkReadableFile(path)
    var ctx: UnsafeMutablePointer<AVFormatContext>? = nil
    let opened = avformat_open_input(&ctx, path, nil, nil)
    guard opened >= 0, let ctx else {
      throw MediaError(.corrupt, file: path, "not a media file FFmpeg can read (\(FF.message(opened)))")
    }
    context = ctx
    let probed = avformat_find_stream_info(ctx, nil)
    guard probed >= 0 else {
      throw MediaError(.corrupt, file: path, "cannot read the stream information (\(FF.message(probed)))")
    }
  }

  deinit { avformat_close_input(&context) }

  /// The best stream of `type`, or nil.
  func bestStream(_ type: AVMediaType) -> Int32? {
    let index = av_find_best_stream(context, type, -1, -1, nil, 0)
    return index >= 0 ? index : nil
  }

  func stream(_ index: Int32) -> UnsafeMutablePointer<AVStream>? {
    guard let context, index >= 0, UInt32(index) < context.pointee.nb_streams else { return nil }
    return context.pointee.streams[Int(index)]
  }
}

/// A decoder for one stream. Frees itself on deinit.
final class StreamDecoder {
  private(set) var context: UnsafeMutablePointer<AVCodecContext>?

  /// Opens the decoder of `stream`; `threads` 0 lets FFmpeg pick.
  init(stream: UnsafeMutablePointer<AVStream>, path: String, threads: Int32 = 0) throws(MediaError) {
    guard let parameters = stream.pointee.codecpar else {
      throw MediaError(.corrupt, file: path, "stream has no codec parameters")
    }
    guard let codec = avcodec_find_decoder(parameters.pointee.codec_id) else {
      let name = String(cString: avcodec_get_name(parameters.pointee.codec_id))
      throw MediaError(.corrupt, file: path, "no decoder for codec '\(name)' in this FFmpeg")
    }
    guard let ctx = avcodec_alloc_context3(codec) else {
      throw MediaError(.corrupt, file: path, "cannot allocate a decoder")
    }
    context = ctx
    let copied = avcodec_parameters_to_context(ctx, parameters)
    guard copied >= 0 else {
      throw MediaError(.corrupt, file: path, "bad codec parameters (\(FF.message(copied)))")
    }
    ctx.pointee.thread_count = threads
    ctx.pointee.pkt_timebase = stream.pointee.time_base
    let opened = avcodec_open2(ctx, codec, nil)
    guard opened >= 0 else {
      throw MediaError(
        .corrupt, file: path, "cannot open the \(String(cString: codec.pointee.name)) decoder (\(FF.message(opened)))")
    }
  }

  deinit { avcodec_free_context(&context) }
}

/// Throws `.unreadable` or `.empty` for paths that are not a non-empty regular file, so these
/// cases get a plain message rather than a library's guess.
func checkReadableFile(_ path: String) throws(MediaError) {
  var isDirectory: ObjCBool = false
  guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
    throw MediaError(.unreadable, file: path, "no such file")
  }
  guard !isDirectory.boolValue else { throw MediaError(.unreadable, file: path, "is a directory, not a media file") }
  guard FileManager.default.isReadableFile(atPath: path) else {
    throw MediaError(.unreadable, file: path, "cannot be read (permission denied)")
  }
  let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
  guard size > 0 else { throw MediaError(.empty, file: path, "file is empty (0 bytes)") }
}
