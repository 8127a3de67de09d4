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
  /// Where the CPU has it, unless `GLASSBOX_AVX2_ONLY` is set in the environment (to measure
  /// one against the other in one binary).
  static let enabled = supported && getenv("GLASSBOX_AVX2_ONLY") == nil
}
