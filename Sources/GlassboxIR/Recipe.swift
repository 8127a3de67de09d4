/// How a raw media file becomes the tensor an input expects. Stored with the graph (and in a
/// `.model`), so `run` and `tap` accept raw video and audio; GlassboxMedia carries it out.
///
/// In a spec: `recipe mfcc = audio(sample_rate: 16000, frames: 768)`; options left out take
/// the defaults below (the seed study's).
public enum RecipeKind: String, CaseIterable, Sendable, Hashable {
  /// Audio → MFCC `[frames, n_mfcc]`, as `librosa.feature.mfcc(y, sr, n_mfcc, n_mels)` with
  /// librosa's defaults (n_fft 2048, hop 512, centred, Slaney mel, power_to_db with top_db 80,
  /// orthonormal DCT-II); the last `frames` frames are kept, shorter clips padded per `pad`.
  case audio
  /// Video → `[frames, 3, size, size]` RGB, `frames` sampled uniformly over the clip (or every
  /// `stride`-th frame), resized, scaled to [0, 1] and normalised by `mean` and `std` per channel.
  /// `frames` and `size` may name symbols (`frames: T`): bound, they give the count; while
  /// unbound, media decoding takes the default (16 frames).
  case video
  /// Image → `[3, size, size]` RGB, resized, scaled to [0, 1], normalised by `mean` and `std`.
  case image

  /// The struct this kind's options are read through.
  public var optionSet: any AttributeSet.Type {
    switch self {
    case .audio: AudioRecipeOptions.self
    case .video: VideoRecipeOptions.self
    case .image: ImageRecipeOptions.self
    }
  }

  /// Options with their defaults.
  public var options: [Op.AttrSpec] { optionSet.schema }

  /// The shape of one example (no batch axis), or why the options are not usable.
  public func exampleShape(_ options: Attributes) throws(ShapeError) -> [Dim] {
    func positive(_ name: String, _ v: Int) throws(ShapeError) {
      guard v >= 1 else { throw ShapeError("recipe \(rawValue): \(name) must be at least 1, found \(v)") }
    }
    /// A size that may be a symbol.
    func dimension(_ name: String, _ d: Dim) throws(ShapeError) -> Dim {
      guard d.coefficient >= 1 else { throw ShapeError("recipe \(rawValue): \(name) must be at least 1, found \(d)") }
      return d
    }
    func channels(_ name: String, _ values: [Double]) throws(ShapeError) {
      guard values.count == 3 else {
        throw ShapeError("recipe \(rawValue): \(name) needs 3 values (R, G, B), found \(values.count)")
      }
      if name == "std", values.contains(where: { $0 <= 0 }) {
        let list = values.map(AttrValue.formatFloat).joined(separator: ", ")
        throw ShapeError("recipe \(rawValue): std values must be positive, found [\(list)]")
      }
    }
    func decode<T: AttributeSet>(_: T.Type) throws(ShapeError) -> T {
      do { return try T(decoding: options) } catch { throw ShapeError("recipe \(rawValue): \(error.message)") }
    }
    switch self {
    case .audio:
      let o = try decode(AudioRecipeOptions.self)
      for (name, v) in [("sample_rate", o.sampleRate), ("n_mels", o.nMels), ("n_fft", o.nFFT), ("hop", o.hop)] {
        try positive(name, v)
      }
      try positive("n_mfcc", o.nMFCC)
      guard o.nMFCC <= o.nMels else {
        throw ShapeError("recipe audio: n_mfcc (\(o.nMFCC)) cannot exceed n_mels (\(o.nMels))")
      }
      try positive("frames", o.frames)
      return [Dim(o.frames), Dim(o.nMFCC)]
    case .video:
      let o = try decode(VideoRecipeOptions.self)
      try positive("stride", o.stride)
      try channels("mean", o.mean)
      try channels("std", o.std)
      let side = try dimension("size", o.size)
      return [try dimension("frames", o.frames), 3, side, side]
    case .image:
      let o = try decode(ImageRecipeOptions.self)
      try channels("mean", o.mean)
      try channels("std", o.std)
      let side = try dimension("size", o.size)
      return [3, side, side]
    }
  }
}

/// ImageNet's channel means and standard deviations, torchvision's default normalisation.
let imagenetMean = [0.485, 0.456, 0.406], imagenetStd = [0.229, 0.224, 0.225]

/// Where padding goes when an audio clip has fewer MFCC frames than the recipe asks for.
public enum PadRule: String, Sendable, Hashable, AttributeChoice {
  /// Zero rows before the clip's frames, so its last frame is the tensor's last row.
  case zerosBefore = "zeros_before"
  /// Zero rows after the clip's frames, so its first frame is the tensor's first row.
  case zerosAfter = "zeros_after"
}

/// The options of `audio` recipes.
public struct AudioRecipeOptions: AttributeSet {
  /// `sample_rate` in Hz.
  public var sampleRate = 16000
  /// `n_mfcc`: coefficients per frame.
  public var nMFCC = 128
  /// `n_mels`: mel bands.
  public var nMels = 128
  /// `n_fft`: FFT and window length in samples.
  public var nFFT = 2048
  /// `hop`: samples between frames.
  public var hop = 512
  /// `frames`: how many of the last frames are kept.
  public var frames = 768
  /// `pad`: where a short clip's zero rows go.
  public var pad = PadRule.zerosBefore

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.defaulted("sample_rate", &sampleRate)
    v.defaulted("n_mfcc", &nMFCC)
    v.defaulted("n_mels", &nMels)
    v.defaulted("n_fft", &nFFT)
    v.defaulted("hop", &hop)
    v.defaulted("frames", &frames)
    v.defaulted("pad", &pad)
  }
}

/// How a video recipe picks its frames.
public enum FrameSamplingRule: String, AttributeChoice {
  /// Spread evenly over the clip.
  case uniform
  /// Every `stride`-th frame from the start.
  case stride
}

/// The options of `video` recipes.
public struct VideoRecipeOptions: AttributeSet {
  /// May name a symbol (`frames: T`).
  public var frames = Dim(16)
  /// May name a symbol.
  public var size = Dim(112)
  /// `sampling`: how frames are chosen.
  public var sampling = FrameSamplingRule.uniform
  /// `stride`: every how many frames, with `sampling: stride`.
  public var stride = 1
  /// `mean`: per channel R, G, B.
  public var mean = imagenetMean
  /// `std`: per channel R, G, B, positive.
  public var std = imagenetStd

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.defaulted("frames", &frames)
    v.defaulted("size", &size)
    v.defaulted("sampling", &sampling)
    v.defaulted("stride", &stride)
    v.defaulted("mean", &mean)
    v.defaulted("std", &std)
  }
}

/// The options of `image` recipes.
public struct ImageRecipeOptions: AttributeSet {
  /// May name a symbol.
  public var size = Dim(224)
  /// `mean`: per channel R, G, B.
  public var mean = imagenetMean
  /// `std`: per channel R, G, B, positive.
  public var std = imagenetStd

  public init(defaults: AttributeDefaults) {}
  public mutating func visit<V: AttributeVisitor>(_ v: inout V) {
    v.defaulted("size", &size)
    v.defaulted("mean", &mean)
    v.defaulted("std", &std)
  }
}

/// The recipe of one graph input.
public struct InputRecipe: Sendable, Hashable {
  /// The graph input it feeds.
  public var input: String
  public var kind: RecipeKind
  /// Every option of `kind`, defaults filled in.
  public var options: Attributes

  /// Every option given.
  public init(input: String, kind: RecipeKind, options: Attributes) {
    self.input = input
    self.kind = kind
    self.options = options
  }
}
