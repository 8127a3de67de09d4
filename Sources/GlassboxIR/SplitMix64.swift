/// SplitMix64 (Steele, Lea and Flood 2014, with Vigna's constants): a small seeded generator
/// whose sequence is fixed by its definition, so initial weights, data splits, shuffles,
/// dropout masks and t-SNE starts reproduce on every platform and Swift release. The one
/// generator of the project; each user turns its 64-bit draws into the numbers it needs.
public struct SplitMix64: RandomNumberGenerator, Sendable, Hashable {
  /// The generator's whole state (a training checkpoint stores it).
  public var state: UInt64

  /// A generator whose sequence is fixed by `seed`.
  public init(seed: UInt64) { state = seed }

  /// A generator for one named stream of a seed (`seed` mixed with the FNV-1a hash of `name`):
  /// a parameter's initial weights, a language's shuffle. Adding a stream changes no other.
  public init(seed: UInt64, name: String) { self.init(seed: seed ^ Self.fnv1a(name)) }

  /// The next 64 random bits.
  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// FNV-1a of a string's UTF-8 bytes: a stable hash (Swift's `hashValue` changes per process).
  public static func fnv1a(_ s: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in s.utf8 {
      h ^= UInt64(b)
      h = h &* 0x100_0000_01B3
    }
    return h
  }
}
