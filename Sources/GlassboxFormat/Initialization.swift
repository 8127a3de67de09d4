import GlassboxIR

/// Weights drawn from each parameter's `ParameterInit` (PyTorch's default initialisation,
/// whose bounds the elaborator has already computed), reproducibly from one seed.
///
/// Each parameter gets its own SplitMix64 stream seeded from the seed and the FNV-1a hash of
/// its name, so adding a layer does not change the weights of the others. Uniform values are
/// `−b + 2b·u` with `u` the top 53 bits of a draw; normal values use Box–Muller.
public enum Initialization {
  /// Why a graph cannot be given weights (a parameter's shape is still symbolic).
  public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
  }

  /// One tensor per parameter, in `graph.parameters` order.
  public static func weights(for graph: Graph, seed: UInt64) throws(Failure) -> [Tensor] {
    var out: [Tensor] = []
    for p in graph.parameters {
      let sizes = p.type.shape.compactMap(\.staticValue)
      guard sizes.count == p.type.rank else {
        let symbols = Set(p.type.shape.flatMap(\.symbols)).sorted()
        throw Failure(
          description:
            "parameter '\(p.name)' has symbolic shape \(p.type.shapeDescription); bind \(symbols.map { "\($0) (--bind \($0)=N)" }.joined(separator: ", "))"
        )
      }
      guard let count = Checked.product(sizes), Checked.multiply(count, p.type.dtype.byteSize) != nil else {
        throw Failure(description: "parameter '\(p.name)' of type \(p.type) is too large")
      }
      out.append(tensor(p, shape: sizes, count: count, seed: seed))
    }
    return out
  }

  static func tensor(_ p: Parameter, shape: [Int], count: Int, seed: UInt64) -> Tensor {
    var rng = SplitMix64(seed: seed, name: p.name)
    let values: [Double]
    switch p.initializer {
    case .zeros: values = [Double](repeating: 0, count: count)
    case .ones: values = [Double](repeating: 1, count: count)
    case .uniform(let b): values = (0..<count).map { _ in -b + 2 * b * rng.unit() }
    case .normal(let std): values = (0..<count).map { _ in std * rng.normal() }
    }
    switch p.type.dtype {
    case .f32: return Tensor(shape: shape, f32: values.map { Float($0) })
    case .f64: return Tensor(shape: shape, f64: values)
    case .i64: return Tensor(shape: shape, storage: .i64(values.map { Int64(exactly: $0.rounded()) ?? 0 }))
    case .bool: return Tensor(shape: shape, storage: .bool(values.map { $0 != 0 }))
    }
  }
}

extension SplitMix64 {
  /// Uniform on [0, 1): the top 53 bits of a draw.
  mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

  /// Standard normal (Box–Muller).
  mutating func normal() -> Double {
    let u1 = 1 - unit()  // (0, 1]
    let u2 = unit()
    return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
  }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Initialization.Failure: KindedError {
  public var errorKind: ErrorKind { .input }
}
