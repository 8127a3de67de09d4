import GlassboxIR

/// The `audio` recipe with typed options: audio file → MFCC `[frames, nMFCC]` (f32).
///
/// The MFCC is librosa's `librosa.feature.mfcc(y, sr, n_mfcc, n_mels, n_fft, hop_length)`
/// computed on the whole clip (mixed to mono, resampled to `sampleRateHz`); then the **last**
/// `frames` frames are kept. A clip with fewer frames is padded with rows of literal zeros
/// (MFCC value 0, not the MFCC of silence, which depends on the clip's loudest frame through
/// `top_db`) before or after its frames, per `pad`.
public struct AudioRecipe: Sendable, Hashable {
  /// Rate the audio is resampled to (`sample_rate`).
  public var sampleRateHz: Int
  /// Coefficients per frame (`n_mfcc`).
  public var nMFCC: Int
  /// Mel bands (`n_mels`).
  public var nMels: Int
  /// FFT and window length in samples (`n_fft`).
  public var nFFT: Int
  /// Samples between frames (`hop`).
  public var hop: Int
  /// Frames kept, the last ones (`frames`).
  public var frames: Int
  /// Where short clips get their zero rows (`pad`).
  public var pad: PadRule

  /// A recipe; the defaults are the study's.
  public init(
    sampleRateHz: Int = 16000, nMFCC: Int = 128, nMels: Int = 128, nFFT: Int = 2048,
    hop: Int = 512, frames: Int = 768, pad: PadRule = .zerosBefore
  ) {
    self.sampleRateHz = sampleRateHz
    self.nMFCC = nMFCC
    self.nMels = nMels
    self.nFFT = nFFT
    self.hop = hop
    self.frames = frames
    self.pad = pad
  }

  /// The typed form of an `audio` input recipe; throws when its options are unusable.
  public init(_ recipe: InputRecipe) throws(MediaError) {
    guard recipe.kind == .audio else {
      throw MediaError(.invalidRecipe, file: recipe.input, "recipe is \(recipe.kind.rawValue), not audio")
    }
    let recipe = recipe.withDefaults
    try checkShape(recipe)
    let o = AudioRecipeOptions(verified: recipe.options)
    self.init(
      sampleRateHz: o.sampleRate, nMFCC: o.nMFCC, nMels: o.nMels, nFFT: o.nFFT, hop: o.hop, frames: o.frames,
      pad: o.pad)
    try validate(name: recipe.input)
  }

  /// Checks what the shape rule does not: sizes the FFT and the mel bank can carry out.
  public func validate(name: String = "audio recipe") throws(MediaError) {
    guard nFFT >= 16, nFFT <= 1 << 16, nFFT % 2 == 0 else {
      throw MediaError(
        .invalidRecipe, file: name, "recipe audio: n_fft must be even and between 16 and 65536, found \(nFFT)")
    }
    guard sampleRateHz >= 1000, sampleRateHz <= 384_000 else {
      throw MediaError(
        .invalidRecipe, file: name,
        "recipe audio: sample_rate must be between 1000 and 384000 Hz, found \(sampleRateHz)")
    }
    guard hop >= 1, nMels >= 1, nMFCC >= 1, nMFCC <= nMels, frames >= 1, frames <= 1 << 20 else {
      throw MediaError(
        .invalidRecipe, file: name,
        "recipe audio: hop, n_mels, n_mfcc and frames must be positive, n_mfcc ≤ n_mels, frames ≤ 1048576")
    }
  }

  /// The recipe in the IR's form (defaults filled), e.g. to key a cache.
  public var key: String {
    "audio(sample_rate:\(sampleRateHz),n_mfcc:\(nMFCC),n_mels:\(nMels),n_fft:\(nFFT),hop:\(hop),frames:\(frames),pad:\(pad.rawValue))"
  }
}

/// How the frames of a clip are chosen.
public enum FrameSampling: Sendable, Hashable {
  /// `count` frames spread evenly over the clip: of N frames, frame ⌊(2i + 1)·N / (2·count)⌋
  /// for i in 0..<count (the centre of each of `count` equal segments).
  case uniform
  /// Frames 0, k, 2k, …, (count − 1)·k from the start of the clip.
  case stride(Int)
}

/// The `video` recipe with typed options: video file → `[frames, 3, size, size]` (f32).
///
/// Each chosen frame is converted to RGB and resized to `size`×`size` (aspect ratio not kept)
/// by swscale's bilinear filter, scaled to [0, 1] and normalised per channel:
/// `(v − mean[c]) / std[c]`.
public struct VideoRecipe: Sendable, Hashable {
  /// Frames sampled per clip.
  public var frames: Int
  /// Side of the square frames after resizing.
  public var size: Int
  /// How the frames are chosen.
  public var sampling: FrameSampling
  /// Per channel R, G, B.
  public var mean: [Float]
  /// Per channel R, G, B; positive.
  public var std: [Float]

  /// ImageNet's channel means, torchvision's default normalisation.
  public static let imagenetMean: [Float] = [0.485, 0.456, 0.406]
  /// ImageNet's channel standard deviations.
  public static let imagenetStd: [Float] = [0.229, 0.224, 0.225]

  /// A recipe; the defaults are the study's (16 frames, 112×112, ImageNet statistics).
  public init(
    frames: Int = 16, size: Int = 112, sampling: FrameSampling = .uniform,
    mean: [Float] = VideoRecipe.imagenetMean, std: [Float] = VideoRecipe.imagenetStd
  ) {
    self.frames = frames
    self.size = size
    self.sampling = sampling
    self.mean = mean
    self.std = std
  }

  /// The typed form of a `video` input recipe; throws when its options are unusable.
  public init(_ recipe: InputRecipe) throws(MediaError) {
    guard recipe.kind == .video else {
      throw MediaError(.invalidRecipe, file: recipe.input, "recipe is \(recipe.kind.rawValue), not video")
    }
    let recipe = recipe.withDefaults
    try checkShape(recipe)
    let o = VideoRecipeOptions(verified: recipe.options)
    let sampling: FrameSampling =
      switch o.sampling {
      case .uniform: .uniform
      case .stride: .stride(o.stride)
      }
    // An unbound symbol (`frames: T`) decodes with the default count.
    self.init(
      frames: o.frames.staticValue ?? 16, size: o.size.staticValue ?? 112, sampling: sampling,
      mean: o.mean.map(Float.init), std: o.std.map(Float.init))
    try validate(name: recipe.input)
  }

  /// Checks sizes and statistics; `name` names the recipe in the error.
  public func validate(name: String = "video recipe") throws(MediaError) {
    guard frames >= 1, frames <= 4096, size >= 1, size <= 4096 else {
      throw MediaError(
        .invalidRecipe, file: name,
        "recipe video: frames and size must be between 1 and 4096, found \(frames) and \(size)")
    }
    if case .stride(let k) = sampling, k < 1 {
      throw MediaError(.invalidRecipe, file: name, "recipe video: stride must be at least 1, found \(k)")
    }
    guard mean.count == 3, std.count == 3, std.allSatisfy({ $0 > 0 }) else {
      throw MediaError(.invalidRecipe, file: name, "recipe video: mean and std need 3 values each, std positive")
    }
  }

  /// The recipe with every option, as text (part of the feature cache key).
  public var key: String {
    let s: String
    switch sampling {
    case .uniform: s = "uniform"
    case .stride(let k): s = "stride\(k)"
    }
    return "video(frames:\(frames),size:\(size),sampling:\(s),mean:\(mean),std:\(std))"
  }
}

/// The `image` recipe with typed options: image file → `[3, size, size]` (f32), converted and
/// normalised like one video frame.
public struct ImageRecipe: Sendable, Hashable {
  /// Side of the square picture after resizing.
  public var size: Int
  /// Per channel R, G, B.
  public var mean: [Float]
  /// Per channel R, G, B; positive.
  public var std: [Float]

  /// A recipe; the defaults are torchvision's ImageNet ones (224×224).
  public init(size: Int = 224, mean: [Float] = VideoRecipe.imagenetMean, std: [Float] = VideoRecipe.imagenetStd) {
    self.size = size
    self.mean = mean
    self.std = std
  }

  /// The typed form of an `image` input recipe; throws when its options are unusable.
  public init(_ recipe: InputRecipe) throws(MediaError) {
    guard recipe.kind == .image else {
      throw MediaError(.invalidRecipe, file: recipe.input, "recipe is \(recipe.kind.rawValue), not image")
    }
    let recipe = recipe.withDefaults
    try checkShape(recipe)
    let o = ImageRecipeOptions(verified: recipe.options)
    self.init(size: o.size.staticValue ?? 224, mean: o.mean.map(Float.init), std: o.std.map(Float.init))
    guard size <= 8192 else {
      throw MediaError(.invalidRecipe, file: recipe.input, "recipe image: size must be at most 8192, found \(size)")
    }
  }

  /// The recipe with every option, as text (part of the feature cache key).
  public var key: String { "image(size:\(size),mean:\(mean),std:\(std))" }
}

extension InputRecipe {
  /// The recipe with every option its kind defines: options left out take the kind's defaults
  /// (specs already carry them; this covers recipes built in code).
  public var withDefaults: InputRecipe {
    var values = options.values
    for spec in kind.options where values[spec.name] == nil {
      if let d = spec.defaultValue { values[spec.name] = d }
    }
    return InputRecipe(input: input, kind: kind, options: Attributes(values))
  }
}

/// Runs the IR's own option check so a recipe is refused with the same words as `glassbox check`.
private func checkShape(_ recipe: InputRecipe) throws(MediaError) {
  do {
    _ = try recipe.kind.exampleShape(recipe.options)
  } catch {
    throw MediaError(.invalidRecipe, file: recipe.input, error.message)
  }
}
