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

  static let imagenetMean: AttrValue = .list([.float(0.485), .float(0.456), .float(0.406)])
  static let imagenetStd: AttrValue = .list([.float(0.229), .float(0.224), .float(0.225)])

  /// Options with their defaults.
  public var options: [Op.AttrSpec] {
    switch self {
    case .audio:
      [Op.AttrSpec("sample_rate", .int, .int(16000)), Op.AttrSpec("n_mfcc", .int, .int(128)),
       Op.AttrSpec("n_mels", .int, .int(128)), Op.AttrSpec("n_fft", .int, .int(2048)),
       Op.AttrSpec("hop", .int, .int(512)), Op.AttrSpec("frames", .int, .int(768)),
       Op.AttrSpec("pad", .choice(["zeros_before", "zeros_after"]), .string("zeros_before"))]
    case .video:
      [Op.AttrSpec("frames", .dim, .int(16)), Op.AttrSpec("size", .dim, .int(112)),
       Op.AttrSpec("sampling", .choice(["uniform", "stride"]), .string("uniform")),
       Op.AttrSpec("stride", .int, .int(1)),
       Op.AttrSpec("mean", .floats, RecipeKind.imagenetMean), Op.AttrSpec("std", .floats, RecipeKind.imagenetStd)]
    case .image:
      [Op.AttrSpec("size", .dim, .int(224)),
       Op.AttrSpec("mean", .floats, RecipeKind.imagenetMean), Op.AttrSpec("std", .floats, RecipeKind.imagenetStd)]
    }
  }

  /// The shape of one example (no batch axis), or why the options are not usable.
  public func exampleShape(_ o: Attributes) throws(ShapeError) -> [Dim] {
    func positive(_ name: String) throws(ShapeError) -> Int {
      let v = o.int(name)
      guard v >= 1 else { throw ShapeError("recipe \(rawValue): \(name) must be at least 1, found \(v)") }
      return v
    }
    /// A size that may be a symbol.
    func dimension(_ name: String) throws(ShapeError) -> Dim {
      let d = o.dim(name) ?? Dim(0)
      guard d.coefficient >= 1 else { throw ShapeError("recipe \(rawValue): \(name) must be at least 1, found \(d)") }
      return d
    }
    func channels(_ name: String) throws(ShapeError) {
      let count = o.floats(name).count
      guard count == 3 else { throw ShapeError("recipe \(rawValue): \(name) needs 3 values (R, G, B), found \(count)") }
      if name == "std", o.floats(name).contains(where: { $0 <= 0 }) {
        throw ShapeError("recipe \(rawValue): std values must be positive, found [\(o.floats(name).map(AttrValue.formatFloat).joined(separator: ", "))]")
      }
    }
    switch self {
    case .audio:
      for name in ["sample_rate", "n_mels", "n_fft", "hop"] { _ = try positive(name) }
      let nMFCC = try positive("n_mfcc")
      guard nMFCC <= o.int("n_mels") else {
        throw ShapeError("recipe audio: n_mfcc (\(nMFCC)) cannot exceed n_mels (\(o.int("n_mels")))")
      }
      return [Dim(try positive("frames")), Dim(nMFCC)]
    case .video:
      _ = try positive("stride")
      try channels("mean")
      try channels("std")
      let side = try dimension("size")
      return [try dimension("frames"), 3, side, side]
    case .image:
      try channels("mean")
      try channels("std")
      let side = try dimension("size")
      return [3, side, side]
    }
  }
}

/// The recipe of one graph input.
public struct InputRecipe: Sendable, Hashable {
  /// The graph input it feeds.
  public var input: String
  public var kind: RecipeKind
  /// Every option of `kind`, defaults filled in.
  public var options: Attributes

  public init(input: String, kind: RecipeKind, options: Attributes) {
    self.input = input
    self.kind = kind
    self.options = options
  }
}
