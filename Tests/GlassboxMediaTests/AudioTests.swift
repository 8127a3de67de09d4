import Foundation
@testable import GlassboxMedia
import GlassboxIR
import Testing

/// Audio decoding (libsndfile), mixing, band-limited resampling, the recipe's MFCC tensor, and
/// every kind of bad audio file.
struct AudioTests {
  /// Amplitude of frequency `hz` in `x` (a single-bin DFT, normalised so a sine of amplitude a
  /// gives a).
  static func amplitude(_ x: [Float], hz: Double, sampleRateHz: Int) -> Double {
    var re = 0.0, im = 0.0
    for (i, v) in x.enumerated() {
      let angle = 2 * Double.pi * hz * Double(i) / Double(sampleRateHz)
      re += Double(v) * cos(angle)
      im += Double(v) * sin(angle)
    }
    return 2 * (re * re + im * im).squareRoot() / Double(x.count)
  }

  @Test(arguments: ["flac", "ogg", "mp3"])
  func compressedFormatsDecode(_ ext: String) throws {
    let directory = try TemporaryDirectory()
    let wav = directory.path("tone.wav")
    try writeWAV(
      wav, interleaved: sine(hz: 440, sampleRateHz: 16000, seconds: 1), channels: 1, sampleRateHz: 16000, bits: 16)
    let path = directory.path("tone.\(ext)")
    let codec = ["flac": "flac", "ogg": "libvorbis", "mp3": "libmp3lame"][ext]!
    try ffmpeg("-i", wav, "-c:a", codec, path)
    let reference = try AudioDecoder.decode(wav)
    let clip = try AudioDecoder.decode(path)
    #expect(clip.sampleRateHz == 16000)
    if ext == "flac" {
      #expect(clip == reference, "FLAC is lossless")
    } else {
      #expect(abs(clip.samples.count - 16000) < 2000, "\(ext): \(clip.samples.count) samples")
      let middle = Array(clip.samples[2000..<12000])
      #expect(abs(Self.amplitude(middle, hz: 440, sampleRateHz: 16000) - 0.5) < 0.05, "\(ext): the tone survives")
    }
    #expect(try AudioDecoder.info(path).channels == 1)
  }

  @Test func channelsAreAveraged() throws {
    let directory = try TemporaryDirectory()
    let path = directory.path("six.wav")
    let left = sine(hz: 300, sampleRateHz: 16000, seconds: 0.5, level: 0.6)
    var interleaved: [Double] = []
    for v in left { interleaved += [v, v / 2, 0, 0, 0, -v / 10] }
    try writeWAV(path, interleaved: interleaved, channels: 6, sampleRateHz: 16000, bits: 16)
    let info = try AudioDecoder.info(path)
    #expect(info.channels == 6 && info.container == "WAV" && info.encoding == "Signed 16 bit PCM")
    let clip = try AudioDecoder.decode(path)
    for i in stride(from: 0, to: left.count, by: 97) {
      #expect(abs(Double(clip.samples[i]) - left[i] * (1 + 0.5 - 0.1) / 6) < 1e-4)
    }
  }

  @Test func eightBitPCMIsScaled() throws {
    let directory = try TemporaryDirectory()
    let path = directory.path("u8.wav")
    let x = sine(hz: 200, sampleRateHz: 8000, seconds: 0.5, level: 0.8)
    try writeWAV(path, interleaved: x, channels: 1, sampleRateHz: 8000, bits: 8)
    #expect(try AudioDecoder.info(path).encoding == "Unsigned 8 bit PCM")
    let clip = try AudioDecoder.decode(path)
    for i in stride(from: 0, to: x.count, by: 13) { #expect(abs(Double(clip.samples[i]) - x[i]) < 0.02) }
  }

  /// Any rate comes to the recipe's 16 kHz: the length is ⌈n·16000/rate⌉, a 1 kHz tone keeps
  /// its frequency and phase (the filter delay is compensated).
  @Test(arguments: [8000, 11025, 12345, 22050, 44100, 48000])
  func oddRatesResampleInTime(_ rate: Int) throws {
    let n = rate  // one second
    let x = (0..<n).map { Float(0.5 * sin(2 * Double.pi * 1000 * Double($0) / Double(rate))) }
    let y = try Resampler.resample(x, from: rate, to: 16000)
    #expect(y.count == (n * 16000 + rate - 1) / rate)
    var worst: Float = 0
    for i in 400..<(y.count - 400) {
      let ideal = Float(0.5 * sin(2 * Double.pi * 1000 * Double(i) / 16000))
      worst = max(worst, abs(y[i] - ideal))
    }
    #expect(worst < 0.01, "\(rate) Hz: off by \(worst)")
  }

  /// A 12 kHz tone at 44.1 kHz lies above the new Nyquist frequency (8 kHz): a band-limited
  /// resampler removes it, where linear interpolation would fold it to 4 kHz at near full level.
  @Test func resamplingIsBandLimited() throws {
    let x = (0..<44100).map { Float(0.5 * sin(2 * Double.pi * 12000 * Double($0) / 44100)) }
    let y = try Resampler.resample(x, from: 44100, to: 16000)
    let alias = Self.amplitude(Array(y[1000..<15000]), hz: 4000, sampleRateHz: 16000)
    #expect(alias < 0.005, "aliased 4 kHz at amplitude \(alias)")
  }

  // MARK: The recipe's tensor

  @Test func longClipsKeepTheLastFrames() throws {
    let directory = try TemporaryDirectory()
    let path = directory.path("long.wav")
    // 30 s at 22.05 kHz: resampled to 16 kHz, 938 frames; the recipe keeps the last 768.
    let samples: [Double] = (0..<(30 * 22050)).map { i in
      let t = Double(i)
      let wobble: Double = sin(t * 1e-4)
      return 0.3 * sin(t * 0.05) + 0.1 * sin(t * 0.31 + wobble)
    }
    try writeWAV(path, interleaved: samples, channels: 1, sampleRateHz: 22050, bits: 16)
    let recipe = AudioRecipe()
    let tensor = try AudioFeatures.mfcc(path, recipe: recipe)
    #expect(tensor.shape == [768, 128])
    let clip = try AudioDecoder.decode(path, sampleRateHz: 16000)
    let mfcc = try MFCC(recipe)
    let full = mfcc.compute(clip.samples)
    let frames = mfcc.frameCount(sampleCount: clip.samples.count)
    #expect(frames == 938)
    #expect(tensor.floats == Array(full[((frames - 768) * 128)...]))
  }

  @Test(arguments: PadRule.allCases)
  func shortClipsArePaddedWithZeroRows(_ pad: PadRule) throws {
    let clip = try AudioDecoder.decode(Repo.fixture("mfcc/speech16k.wav"))
    let recipe = AudioRecipe(frames: 40, pad: pad)
    let tensor = try AudioFeatures.mfcc(clip, recipe: recipe)
    let full = try MFCC(recipe).compute(clip.samples)  // 32 frames
    #expect(tensor.shape == [40, 128])
    let values = tensor.floats
    switch pad {
    case .zerosBefore:
      #expect(values[..<(8 * 128)].allSatisfy { $0 == 0 })
      #expect(Array(values[(8 * 128)...]) == full)
    case .zerosAfter:
      #expect(Array(values[..<(32 * 128)]) == full)
      #expect(values[(32 * 128)...].allSatisfy { $0 == 0 })
    }
  }

  @Test func recipeFromTheSpecLanguage() throws {
    let recipe = InputRecipe(
      input: "mfcc", kind: .audio,
      options: Attributes([
        "sample_rate": .int(22050), "n_mfcc": .int(20), "n_mels": .int(40), "n_fft": .int(1024),
        "hop": .int(256), "frames": .int(10), "pad": .string("zeros_after"),
      ]))
    let extractor = try FeatureExtractor(recipe)
    #expect(extractor.exampleShape == [10, 20])
    let tensor = try extractor.extract(Repo.fixture("mfcc/chirp22k.wav"))
    #expect(tensor.shape == [10, 20])
    let bad = InputRecipe(input: "mfcc", kind: .audio, options: Attributes(["n_mfcc": .int(50), "n_mels": .int(40)]))
    #expect(throws: MediaError.self) { try FeatureExtractor(bad) }
  }

  // MARK: Bad audio

  @Test func badAudioFilesGetClearErrors() throws {
    let directory = try TemporaryDirectory()
    let recipe = AudioRecipe()

    let missing = directory.path("missing.wav")
    #expect(throws: MediaError(.unreadable, file: missing, "no such file")) {
      try AudioFeatures.mfcc(missing, recipe: recipe)
    }

    let empty = directory.path("empty.wav")
    _ = FileManager.default.createFile(atPath: empty, contents: Data())
    #expect(throws: MediaError(.empty, file: empty, "file is empty (0 bytes)")) {
      try AudioFeatures.mfcc(empty, recipe: recipe)
    }

    let garbage = directory.path("garbage.wav")
    try Data((0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }).write(to: URL(fileURLWithPath: garbage))
    let corrupt = try #require(throws: MediaError.self) { try AudioFeatures.mfcc(garbage, recipe: recipe) }
    #expect(corrupt.kind == .corrupt && corrupt.file == garbage)
    #expect(corrupt.message.hasPrefix("not an audio file libsndfile can read"))

    let silent = directory.path("silent.wav")
    try writeWAV(silent, interleaved: [Double](repeating: 0, count: 16000), channels: 1, sampleRateHz: 16000, bits: 16)
    #expect(
      throws: MediaError(.silent, file: silent, "audio is silent (peak amplitude 0.0); there is nothing to describe")
    ) {
      try AudioFeatures.mfcc(silent, recipe: recipe)
    }

    let short = directory.path("short.wav")
    try writeWAV(
      short, interleaved: sine(hz: 440, sampleRateHz: 16000, seconds: 0.05), channels: 1, sampleRateHz: 16000, bits: 16)
    #expect(
      throws: MediaError(
        .tooShort, file: short,
        "audio lasts 0.05 s (800 samples at 16000 Hz); one analysis window needs 2048 samples (0.128 s)")
    ) {
      try AudioFeatures.mfcc(short, recipe: recipe)
    }

    // A header with no samples after it, and a file cut in the middle of its samples.
    let whole = directory.path("whole.wav")
    try writeWAV(
      whole, interleaved: sine(hz: 440, sampleRateHz: 16000, seconds: 1), channels: 1, sampleRateHz: 16000, bits: 16)
    let bytes = try Data(contentsOf: URL(fileURLWithPath: whole))
    let headerOnly = directory.path("header.wav")
    try bytes.prefix(44).write(to: URL(fileURLWithPath: headerOnly))
    let noSamples = try #require(throws: MediaError.self) { try AudioFeatures.mfcc(headerOnly, recipe: recipe) }
    #expect([.empty, .corrupt].contains(noSamples.kind) && noSamples.file == headerOnly, "\(noSamples)")
    let cut = directory.path("cut.wav")
    try bytes.prefix(44 + 16000).write(to: URL(fileURLWithPath: cut))
    #expect(try AudioDecoder.decode(cut).samples.count == 8000, "a truncated file yields the samples it has")

    let video = directory.path("picture.png")
    try ffmpeg("-f", "lavfi", "-i", "color=c=red:s=16x16", "-frames:v", "1", video)
    let notAudio = try #require(throws: MediaError.self) { try AudioFeatures.mfcc(video, recipe: recipe) }
    #expect(notAudio.kind == .corrupt && notAudio.file == video)
  }
}
