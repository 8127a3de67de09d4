import CFFmpeg
import CSndfile
import Foundation

/// Mono audio samples in [-1, 1] at a known rate.
public struct AudioClip: Sendable, Equatable {
  /// One sample per tick, channels already mixed (their mean, as librosa's `to_mono`).
  public var samples: [Float]
  /// Samples per second.
  public var sampleRateHz: Int

  /// A clip of mono samples at `sampleRateHz`.
  public init(samples: [Float], sampleRateHz: Int) {
    self.samples = samples
    self.sampleRateHz = sampleRateHz
  }

  /// Length in seconds.
  public var durationSeconds: Double { Double(samples.count) / Double(max(sampleRateHz, 1)) }

  /// The largest absolute sample value.
  public var peak: Float { samples.reduce(0) { max($0, abs($1)) } }
}

/// What libsndfile says about an audio file before decoding it.
public struct AudioFileInfo: Sendable, Equatable {
  /// Samples per second per channel, as the header states.
  public var sampleRateHz: Int
  /// Interleaved channels in the file (mixed to one by `decode`).
  public var channels: Int
  /// Frames (one sample per channel) the header announces; a truncated file may hold fewer.
  public var frames: Int
  /// Container (libsndfile's extension for it: `WAV`, `FLAC`, `OGG`, `MP3`, …) and encoding
  /// as libsndfile describes it (`Signed 16 bit PCM`, `Unsigned 8 bit PCM`, `Vorbis`, …).
  public var container: String
  /// The sample encoding, e.g. `Signed 16 bit PCM`.
  public var encoding: String
}

/// Reads audio files through libsndfile: WAV (8/16/24/32-bit integer and float PCM), FLAC,
/// Ogg Vorbis/Opus, MP3, and whatever else this libsndfile was built with.
public enum AudioDecoder {
  /// Longest clip accepted, in mono samples after mixing (2²⁷ ≈ 46 minutes at 48 kHz, 512 MiB):
  /// a hostile header cannot make the decoder allocate more.
  public static let maxSamples = 1 << 27

  /// The header of `path`, without decoding samples.
  public static func info(_ path: String) throws(MediaError) -> AudioFileInfo {
    let file = try SoundFile(path: path)
    return file.info
  }

  /// Decodes `path`, mixes its channels to mono (their mean) and keeps the file's rate.
  ///
  /// Integer PCM is scaled to [-1, 1) (libsndfile's normalisation: 16-bit divides by 32768,
  /// unsigned 8-bit is centred first). Throws `.empty` when no samples can be read.
  public static func decode(_ path: String) throws(MediaError) -> AudioClip {
    let file = try SoundFile(path: path)
    let channels = file.info.channels
    let chunkFrames = 1 << 15
    var interleaved = [Float](repeating: 0, count: chunkFrames * channels)
    var mono: [Float] = []
    if file.info.frames > 0 { mono.reserveCapacity(min(file.info.frames, maxSamples)) }
    let scale = 1 / Float(channels)
    while true {
      let read = interleaved.withUnsafeMutableBufferPointer { buffer in
        Int(sf_readf_float(file.handle, buffer.baseAddress, sf_count_t(chunkFrames)))
      }
      if read <= 0 { break }
      guard mono.count + read <= maxSamples else {
        throw MediaError(
          .tooLarge, file: path, "audio is longer than \(maxSamples) samples; split it into shorter clips")
      }
      if channels == 1 {
        mono.append(contentsOf: interleaved[0..<read])
      } else {
        interleaved.withUnsafeBufferPointer { p in
          for f in 0..<read {
            var sum: Float = 0
            for c in 0..<channels { sum += p[f * channels + c] }
            mono.append(sum * scale)
          }
        }
      }
    }
    let status = sf_error(file.handle)
    if status != 0 && mono.isEmpty {
      throw MediaError(.corrupt, file: path, "cannot decode the audio (\(String(cString: sf_error_number(status))))")
    }
    guard !mono.isEmpty else { throw MediaError(.empty, file: path, "contains no audio samples") }
    return AudioClip(samples: mono, sampleRateHz: file.info.sampleRateHz)
  }

  /// Decodes `path` and resamples it to `sampleRateHz` (when the rates differ).
  public static func decode(_ path: String, sampleRateHz: Int) throws(MediaError) -> AudioClip {
    let clip = try decode(path)
    guard clip.sampleRateHz != sampleRateHz else { return clip }
    let samples = try Resampler.resample(clip.samples, from: clip.sampleRateHz, to: sampleRateHz, file: path)
    return AudioClip(samples: samples, sampleRateHz: sampleRateHz)
  }
}

/// An open libsndfile handle; closes on deinit.
private final class SoundFile {
  let handle: OpaquePointer
  let info: AudioFileInfo

  init(path: String) throws(MediaError) {
    try checkReadableFile(path)
    var raw = SF_INFO()
    guard let handle = sf_open(path, Int32(SFM_READ), &raw) else {
      let reason = String(cString: sf_strerror(nil))
      throw MediaError(.corrupt, file: path, "not an audio file libsndfile can read (\(reason))")
    }
    guard raw.channels >= 1, raw.channels <= 256 else {
      sf_close(handle)
      throw MediaError(.corrupt, file: path, "header declares \(raw.channels) channels")
    }
    guard raw.samplerate >= 1 else {
      sf_close(handle)
      throw MediaError(.corrupt, file: path, "header declares a sample rate of \(raw.samplerate) Hz")
    }
    /// libsndfile's description of a major or sub format code (SFC_GET_FORMAT_INFO).
    func describe(_ format: Int32) -> SF_FORMAT_INFO? {
      var f = SF_FORMAT_INFO()
      f.format = format
      guard sf_command(nil, Int32(SFC_GET_FORMAT_INFO), &f, Int32(MemoryLayout<SF_FORMAT_INFO>.size)) == 0 else {
        return nil
      }
      return f
    }
    let major = raw.format & Int32(SF_FORMAT_TYPEMASK), sub = raw.format & Int32(SF_FORMAT_SUBMASK)
    let container =
      describe(major).flatMap { $0.extension }.map { String(cString: $0).uppercased() } ?? String(major, radix: 16)
    let encoding = describe(sub).flatMap { $0.name }.map { String(cString: $0) } ?? String(sub, radix: 16)
    // Stored properties last: from here on the handle belongs to deinit.
    self.handle = handle
    info = AudioFileInfo(
      sampleRateHz: Int(raw.samplerate), channels: Int(raw.channels), frames: Int(max(raw.frames, 0)),
      container: container, encoding: encoding)
  }

  deinit { sf_close(handle) }
}

/// Band-limited sample-rate conversion by libswresample (a windowed-sinc polyphase filter,
/// 32 taps per phase, Kaiser window, cut-off at 97% of the lower Nyquist frequency).
public enum Resampler {
  /// `samples` at `from` Hz resampled to `to` Hz; output sample i is at time i / `to`, aligned
  /// with the input (the filter's delay is compensated), and the output holds
  /// ⌈count · to / from⌉ samples.
  public static func resample(
    _ samples: [Float], from: Int, to: Int, file: String = "audio"
  ) throws(MediaError) -> [Float] {
    guard from != to else { return samples }
    guard from >= 1, to >= 1, from <= Int(Int32.max), to <= Int(Int32.max) else {
      throw MediaError(.invalidRecipe, file: file, "cannot resample from \(from) Hz to \(to) Hz")
    }
    _ = FF.quiet
    var inLayout = AVChannelLayout()
    var outLayout = AVChannelLayout()
    av_channel_layout_default(&inLayout, 1)
    av_channel_layout_default(&outLayout, 1)
    defer {
      av_channel_layout_uninit(&inLayout)
      av_channel_layout_uninit(&outLayout)
    }
    var swr: OpaquePointer? = nil
    let allocated = swr_alloc_set_opts2(
      &swr, &outLayout, AV_SAMPLE_FMT_FLT, Int32(to),
      &inLayout, AV_SAMPLE_FMT_FLT, Int32(from), 0, nil)
    defer { swr_free(&swr) }
    guard allocated >= 0, let swr else {
      throw MediaError(
        .invalidRecipe, file: file, "cannot set up resampling from \(from) Hz to \(to) Hz (\(FF.message(allocated)))")
    }
    let initialised = swr_init(swr)
    guard initialised >= 0 else {
      throw MediaError(
        .invalidRecipe, file: file, "cannot set up resampling from \(from) Hz to \(to) Hz (\(FF.message(initialised)))")
    }
    let expected = Int((Int64(samples.count) * Int64(to) + Int64(from) - 1) / Int64(from))
    guard expected <= AudioDecoder.maxSamples else {
      throw MediaError(
        .tooLarge, file: file,
        "audio resampled from \(from) Hz to \(to) Hz would hold \(expected) samples; the limit is \(AudioDecoder.maxSamples)"
      )
    }
    // Room for the converted input plus the filter's tail, flushed at the end.
    let capacity = expected + 4096
    var out = [Float](repeating: 0, count: capacity)
    var written = 0
    let status: Int32 = out.withUnsafeMutableBufferPointer { outBuffer in
      samples.withUnsafeBufferPointer { inBuffer in
        var outPointer: UnsafeMutablePointer<UInt8>? = UnsafeMutableRawPointer(outBuffer.baseAddress!)
          .assumingMemoryBound(to: UInt8.self)
        var inPointer: UnsafePointer<UInt8>? = inBuffer.baseAddress.map {
          UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self)
        }
        let n = swr_convert(swr, &outPointer, Int32(capacity), &inPointer, Int32(samples.count))
        if n < 0 { return n }
        written = Int(n)
        // Drain the samples still inside the filter.
        while written < capacity {
          var tail: UnsafeMutablePointer<UInt8>? = UnsafeMutableRawPointer(outBuffer.baseAddress! + written)
            .assumingMemoryBound(to: UInt8.self)
          let m = swr_convert(swr, &tail, Int32(capacity - written), nil, 0)
          if m < 0 { return m }
          if m == 0 { break }
          written += Int(m)
        }
        return 0
      }
    }
    guard status >= 0 else {
      throw MediaError(.corrupt, file: file, "resampling failed (\(FF.message(status)))")
    }
    out.removeLast(capacity - min(written, expected))
    if out.count < expected { out.append(contentsOf: repeatElement(0, count: expected - out.count)) }
    return out
  }
}
