import Foundation
import GlassboxIR
@testable import GlassboxRuntime
import Testing

/// The two implementations of the kernels that have an AVX-512 version (the LSTM's projection,
/// recurrence and cell, sigmoid and tanh, max pooling): the AVX2 Swift code every x86-64 CPU
/// since 2013 runs, and the C kernels of CKernels where the CPU has AVX-512F. A program run on
/// each must give the same bits, and each must match the fixtures.
enum KernelPath: String, CaseIterable, Sendable {
  case avx2, avx512

  /// The paths this machine can run: both where the CPU has AVX-512F.
  static var available: [KernelPath] { AVX512.supported ? [.avx2, .avx512] : [.avx2] }

  /// Why a test of the AVX-512 kernels does not run here.
  static let noAVX512: Comment =
    "this CPU has no AVX-512F: the CKernels AVX-512 kernels cannot run (the AVX2 Swift code is tested)"

  private static let lock = NSLock()

  /// Runs `body` with the kernels of this path (compiling and running a program inside it);
  /// one path at a time in the process.
  func run<T>(_ body: () throws -> T) rethrows -> T {
    Self.lock.lock()
    defer {
      AVX512.forced = nil
      Self.lock.unlock()
    }
    AVX512.forced = self == .avx512
    return try body()
  }
}

/// Whether two runs' outputs have the same names, shapes and bits.
func sameBits(_ a: [String: Tensor], _ b: [String: Tensor]) -> [String] {
  var problems: [String] = []
  for (name, t) in a.sorted(by: { $0.key < $1.key }) {
    guard let u = b[name] else { problems.append("\(name): missing"); continue }
    let x = t.floats.map(\.bitPattern), y = u.floats.map(\.bitPattern)
    if t.shape != u.shape || x != y {
      let first = zip(x, y).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1
      let at = max(first, 0)
      problems.append("\(name): differs (first at element \(first): \(t.floats[at]) vs \(u.floats[at]))")
    }
  }
  return problems
}
