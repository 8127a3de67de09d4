import CFFmpeg
import Foundation
import GlassboxIR

/// Extracted features on disk, keyed by the SHA-256 of the media file's bytes and the recipe,
/// so a renamed or copied clip hits the cache and an edited one (or a changed recipe) misses.
///
/// Layout: `DIR/ab/abcdef….f32`, where the name is the hex SHA-256 of
/// `"glassbox-features v<version>\n" + recipeKey + "\n" + SHA-256(file bytes)`. Each entry:
///
/// ```
/// offset 0  4 bytes  magic "GBFC"        4  u32 LE  format version (1)
///        8  u32 LE   rank r              12 r × u64 LE  shape
///        …  r·8+12   f32 LE elements, row-major
/// ```
///
/// Entries are written to a temporary file and renamed into place, so concurrent writers and
/// interrupted runs never leave a partial entry. An entry that does not parse, or whose shape is
/// not the expected one, is ignored (and rewritten).
public struct FeatureCache: Sendable {
  /// The cache folder.
  public let directory: String
  /// Bumped whenever feature extraction changes its numbers, so old entries stop matching.
  public static let version = 1

  /// A cache in `directory`, created when missing.
  public init(directory: String) throws(MediaError) {
    do {
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    } catch {
      throw MediaError(.write, file: directory, "cannot create the feature cache folder: \(error.localizedDescription)")
    }
    self.directory = directory
  }

  /// The cache key of a media file under a recipe.
  public static func key(file: String, recipeKey: String) throws(MediaError) -> String {
    let contentHash = try sha256(file: file)
    return sha256(bytes: Array("glassbox-features v\(version)\n\(recipeKey)\n\(contentHash)".utf8))
  }

  func path(forKey key: String) -> String {
    (directory as NSString).appendingPathComponent(String(key.prefix(2)) + "/" + key + ".f32")
  }

  /// The cached tensor for `key`, if present, intact and of `shape`.
  public func load(key: String, shape: [Int]) -> Tensor? {
    guard let data = FileManager.default.contents(atPath: path(forKey: key)) else { return nil }
    let bytes = [UInt8](data)
    let rank = shape.count
    let headerSize = 12 + 8 * rank
    let count = shape.reduce(1, *)
    guard bytes.count == headerSize + 4 * count, bytes.starts(with: Array("GBFC".utf8)) else { return nil }
    return bytes.withUnsafeBytes { raw -> Tensor? in
      guard UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)) == 1,
        Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self))) == rank
      else { return nil }
      for (i, d) in shape.enumerated() {
        guard UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 12 + 8 * i, as: UInt64.self)) == UInt64(d) else {
          return nil
        }
      }
      let values = (0..<count).map { i in
        Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: headerSize + 4 * i, as: UInt32.self)))
      }
      return Tensor(shape: shape, f32: values)
    }
  }

  /// Stores an f32 tensor under `key`.
  public func store(_ tensor: Tensor, key: String) throws(MediaError) {
    let values = tensor.floats
    var bytes = Array("GBFC".utf8)
    func append<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    append(UInt32(1))
    append(UInt32(tensor.shape.count))
    for d in tensor.shape { append(UInt64(d)) }
    bytes.reserveCapacity(bytes.count + 4 * values.count)
    for v in values { append(v.bitPattern) }
    let file = path(forKey: key)
    let folder = (file as NSString).deletingLastPathComponent
    do {
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    } catch {
      throw MediaError(.write, file: folder, "cannot create a cache folder: \(error.localizedDescription)")
    }
    try writeFileAtomically(file, bytes: bytes)
  }

  /// The features of `file` from the cache, or extracted (and stored) when missing.
  public func features(
    _ file: String, extractor: FeatureExtractor, threads: Int = 0
  ) throws(MediaError) -> (tensor: Tensor, hit: Bool) {
    let key = try FeatureCache.key(file: file, recipeKey: extractor.recipeKey)
    if let cached = load(key: key, shape: extractor.exampleShape) { return (cached, true) }
    let tensor = try extractor.extract(file, threads: threads)
    try store(tensor, key: key)
    return (tensor, false)
  }
}

/// Hex SHA-256 of a file's bytes (libavutil's hash), read in 1 MiB pieces.
func sha256(file: String) throws(MediaError) -> String {
  try checkReadableFile(file)
  guard let handle = FileHandle(forReadingAtPath: file) else {
    throw MediaError(.unreadable, file: file, "cannot be read")
  }
  defer { try? handle.close() }
  let hash = Hash()
  while true {
    let chunk: Data
    do {
      chunk = try handle.read(upToCount: 1 << 20) ?? Data()
    } catch {
      throw MediaError(.unreadable, file: file, "read failed: \(error.localizedDescription)")
    }
    if chunk.isEmpty { break }
    chunk.withUnsafeBytes { hash.update($0) }
  }
  return hash.hex()
}

func sha256(bytes: [UInt8]) -> String {
  let hash = Hash()
  bytes.withUnsafeBytes { hash.update($0) }
  return hash.hex()
}

/// libavutil's SHA-256 context.
private final class Hash {
  private var context: OpaquePointer?

  init() {
    // "SHA256" is compiled into every libavutil; failure is a broken installation.
    guard av_hash_alloc(&context, "SHA256") >= 0, context != nil else {
      preconditionFailure("libavutil has no SHA256")
    }
    av_hash_init(context)
  }

  deinit { av_hash_freep(&context) }

  func update(_ bytes: UnsafeRawBufferPointer) {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return }
    av_hash_update(context, base.assumingMemoryBound(to: UInt8.self), bytes.count)
  }

  func hex() -> String {
    var out = [UInt8](repeating: 0, count: 2 * 64 + 1)
    av_hash_final_hex(context, &out, Int32(out.count))
    return String(decoding: out.prefix { $0 != 0 }, as: UTF8.self)
  }
}
