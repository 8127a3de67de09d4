import CKernels
import Foundation

/// Whether the kernels that have an AVX-512 version in CKernels (`PackedGEMM.rows`, the LSTM
/// cell) run it. Swift compiles the runtime for AVX2 + FMA only; each C kernel does the same
/// operations in the same order as the Swift code it stands in for, so a machine's choice
/// does not change results.
enum AVX512 {
  /// Whether this CPU (and its OS) runs AVX-512F code, whatever the environment says: tests
  /// run the AVX-512 kernels only where this holds.
  static let supported = glassbox_cpu_has_avx512() != 0
  /// What the environment asks for: the CPU's kernels, unless `GLASSBOX_AVX2_ONLY` is set (to
  /// measure one against the other in one binary). Read once.
  static let requested = supported && getenv("GLASSBOX_AVX2_ONLY") == nil
  /// A choice made in-process, for tests that run the same program on both paths: false runs
  /// the AVX2 Swift code, true the AVX-512 kernels (where `supported`), nil follows the
  /// environment. Whoever sets it holds it for the whole run it chooses for (tests take a lock).
  nonisolated(unsafe) static var forced: Bool?
  /// Whether the AVX-512 kernels run: read by every kernel call that has both versions.
  static var enabled: Bool { forced.map { $0 && supported } ?? requested }
}

extension Executable {
  /// Whether the inference pipeline should put convolutions on the channel-blocked layout
  /// (`choose-layouts`): where the AVX-512 kernels run. On AVX2 alone the plain kernels ran
  /// ResNet-18 faster than the blocked ones (one block by six pixels there).
  public static var blockedLayouts: Bool { AVX512.enabled }
}
