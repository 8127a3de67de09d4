import GlassboxIR
/// A problem with one media file or data set: what kind, which file, and what was found.
///
/// Every error names the file so that a data set with thousands of clips says which one is bad;
/// `description` reads `path: message`.
public struct MediaError: Error, CustomStringConvertible, Equatable, Sendable {
  /// What went wrong, for callers that react differently (a data set skips, a CLI exits).
  public enum Kind: String, Sendable, Equatable {
    /// The file does not exist, is a directory, or cannot be opened.
    case unreadable
    /// The file has zero bytes, or its streams hold no samples or frames.
    case empty
    /// Longer or larger than the decoder accepts (a bound that keeps memory in check).
    case tooLarge
    /// The bytes are not a format the libraries recognise, or decoding failed part-way.
    case corrupt
    /// A container without the stream the recipe needs (no video stream, no audio).
    case noStream
    /// Fewer frames or samples than the recipe needs.
    case tooShort
    /// Audio whose every sample is zero: its MFCC would be a constant, not speech.
    case silent
    /// The recipe's options cannot be carried out (a non-power-of-two `n_fft`, bad sizes).
    case invalidRecipe
    /// A data-set layout problem: missing split file, a split naming missing clips, no classes.
    case layout
    /// Writing an image, video or cache file failed.
    case write
    /// Internal: a keyframe seek went wrong and decoding starts over without seeking. Never
    /// reaches a caller.
    case seekFallback
  }

  /// What went wrong.
  public var kind: Kind
  /// The file (or data-set folder) the error is about.
  public var file: String
  /// What was found, without the file name.
  public var message: String

  /// An error about `file`.
  public init(_ kind: Kind, file: String, _ message: String) {
    self.kind = kind
    self.file = file
    self.message = message
  }

  /// `file: message`.
  public var description: String { "\(file): \(message)" }
}

extension MediaError: KindedError {
  public var errorKind: ErrorKind { .media }
  public var errorFile: String? { file }
}
