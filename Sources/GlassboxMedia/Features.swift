import GlassboxIR

/// Turns raw media files into exactly the tensor a graph input's recipe describes.
///
/// | recipe | file | tensor |
/// |---|---|---|
/// | `audio` | WAV, FLAC, Ogg, MP3 (libsndfile) | `[frames, n_mfcc]` f32, see `AudioRecipe` |
/// | `video` | any container/codec FFmpeg decodes | `[frames, 3, size, size]` f32, see `VideoRecipe` |
/// | `image` | PNG, JPEG, BMP, … (FFmpeg) | `[3, size, size]` f32, see `ImageRecipe` |
///
/// One extractor per thread: the audio path owns FFT buffers. Construction checks the recipe
/// once; `extract` then only fails on the file.
public final class FeatureExtractor {
  /// The recipe carried out.
  public let recipe: InputRecipe
  private let plan: Plan

  private enum Plan {
    case audio(AudioRecipe, MFCC)
    case video(VideoRecipe)
    case image(ImageRecipe)
  }

  /// An extractor for `recipe`; throws when its options cannot be carried out.
  public init(_ recipe: InputRecipe) throws(MediaError) {
    self.recipe = recipe
    switch recipe.kind {
    case .audio:
      let a = try AudioRecipe(recipe)
      plan = .audio(a, try MFCC(a))
    case .video: plan = .video(try VideoRecipe(recipe))
    case .image: plan = .image(try ImageRecipe(recipe))
    }
  }

  /// The shape of every tensor `extract` returns.
  public var exampleShape: [Int] {
    switch plan {
    case .audio(let a, _): [a.frames, a.nMFCC]
    case .video(let v): [v.frames, 3, v.size, v.size]
    case .image(let i): [3, i.size, i.size]
    }
  }

  /// The recipe with every option, as text: part of the feature cache's key.
  public var recipeKey: String {
    switch plan {
    case .audio(let a, _): a.key
    case .video(let v): v.key
    case .image(let i): i.key
    }
  }

  /// The recipe's tensor for the file at `path`. `threads` is the video decoder's thread count
  /// (0: FFmpeg chooses).
  public func extract(_ path: String, threads: Int = 0) throws(MediaError) -> Tensor {
    switch plan {
    case .audio(let a, let mfcc): try AudioFeatures.mfcc(path, recipe: a, extractor: mfcc)
    case .video(let v): try VideoDecoder.frames(path, recipe: v, threads: threads)
    case .image(let i): try VideoDecoder.image(path, recipe: i, threads: threads)
    }
  }
}

/// The audio recipe carried out: decode, mix, resample, MFCC, keep the last frames, pad.
public enum AudioFeatures {
  /// Peak amplitude below which a clip counts as digital silence: half a 16-bit step.
  public static let silencePeak: Float = 1.0 / 65536

  /// The recipe's `[frames, nMFCC]` MFCC tensor for `path`.
  ///
  /// Throws `.tooShort` for a clip shorter than one analysis window (`nFFT` samples after
  /// resampling) and `.silent` for one whose peak is below `silencePeak`: neither has speech
  /// to describe, and librosa would return a constant.
  public static func mfcc(_ path: String, recipe: AudioRecipe, extractor: MFCC? = nil) throws(MediaError) -> Tensor {
    let clip = try AudioDecoder.decode(path, sampleRateHz: recipe.sampleRateHz)
    return try mfcc(clip, recipe: recipe, extractor: extractor, file: path)
  }

  /// The same from decoded samples (already at the recipe's rate).
  public static func mfcc(
    _ clip: AudioClip, recipe: AudioRecipe, extractor: MFCC? = nil, file: String = "audio"
  ) throws(MediaError) -> Tensor {
    guard clip.sampleRateHz == recipe.sampleRateHz else {
      throw MediaError(
        .invalidRecipe, file: file, "audio is at \(clip.sampleRateHz) Hz; the recipe needs \(recipe.sampleRateHz) Hz")
    }
    let n = clip.samples.count
    guard n >= recipe.nFFT else {
      let seconds = Double(n) / Double(recipe.sampleRateHz)
      let needed = Double(recipe.nFFT) / Double(recipe.sampleRateHz)
      throw MediaError(
        .tooShort, file: file,
        "audio lasts \(format(seconds)) s (\(n) samples at \(recipe.sampleRateHz) Hz); one analysis window needs \(recipe.nFFT) samples (\(format(needed)) s)"
      )
    }
    let peak = clip.peak
    guard peak >= silencePeak else {
      throw MediaError(.silent, file: file, "audio is silent (peak amplitude \(peak)); there is nothing to describe")
    }
    let mfcc: MFCC
    if let extractor { mfcc = extractor } else { mfcc = try MFCC(recipe) }
    let all = mfcc.compute(clip.samples)
    let frames = mfcc.frameCount(sampleCount: n)
    return Tensor(
      shape: [recipe.frames, recipe.nMFCC],
      f32: keepLast(all, frames: frames, width: recipe.nMFCC, keep: recipe.frames, pad: recipe.pad))
  }

  /// The last `keep` rows of a `[frames, width]` matrix; fewer rows are padded with zero rows
  /// before (`zerosBefore`) or after (`zerosAfter`) them.
  public static func keepLast(_ matrix: [Float], frames: Int, width: Int, keep: Int, pad: PadRule) -> [Float] {
    if frames >= keep { return Array(matrix[((frames - keep) * width)...]) }
    let zeros = [Float](repeating: 0, count: (keep - frames) * width)
    switch pad {
    case .zerosBefore: return zeros + matrix
    case .zerosAfter: return matrix + zeros
    }
  }

  private static func format(_ seconds: Double) -> String {
    let ms = (seconds * 1000).rounded()
    return String(Double(ms) / 1000)
  }
}
