import CBLAS

/// The BLAS the runtime calls. Only this module sees OpenBLAS.
public enum BLAS {
  /// OpenBLAS's build and kernel description (`OpenBLAS 0.3.21 DYNAMIC_ARCH … SkylakeX MAX_THREADS=64`).
  public static var configuration: String {
    guard let config = openblas_get_config() else { return "unknown" }
    return String(cString: config) + " core=" + (openblas_get_corename().map { String(cString: $0) } ?? "unknown")
  }

  /// Single-precision `C = alpha·A·B + beta·C` for row-major matrices:
  /// `A: [m, k]`, `B: [k, n]`, `C: [m, n]`, each contiguous.
  public static func sgemm(m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>,
                           b: UnsafePointer<Float>, beta: Float = 0, c: UnsafeMutablePointer<Float>) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(m), blasint(n), blasint(k), alpha,
                a, blasint(k), b, blasint(n), beta, c, blasint(n))
  }
}
