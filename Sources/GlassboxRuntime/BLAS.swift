import CBLAS
import Foundation

/// OpenBLAS, loaded on first use. Only this module sees it.
///
/// Debian's OpenBLAS 0.3.21 picks its AVX2 "Haswell" kernels on AVX-512 CPUs unless
/// `OPENBLAS_CORETYPE=SkylakeX` is set when the library initialises (about 2× on SGEMM), so
/// the library is opened with `dlopen` after that variable is arranged — never linked.
/// `GLASSBOX_OPENBLAS_CORETYPE=Haswell` (any OpenBLAS core name) chooses other kernels.
public enum BLAS {
  typealias Sgemm = @convention(c) (CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, blasint, blasint, blasint,
                                    Float, UnsafePointer<Float>?, blasint, UnsafePointer<Float>?, blasint,
                                    Float, UnsafeMutablePointer<Float>?, blasint) -> Void
  typealias SetThreads = @convention(c) (Int32) -> Void
  typealias GetString = @convention(c) () -> UnsafeMutablePointer<CChar>?

  struct Library: @unchecked Sendable {
    let sgemm: Sgemm
    let setThreads: SetThreads?
    let config: GetString?
    let corename: GetString?
  }

  /// Why OpenBLAS could not be loaded, when it could not.
  public struct LoadError: Error, CustomStringConvertible {
    public var description: String
  }

  static let library: Result<Library, LoadError> = load()

  /// Whether the CPU has the AVX-512 subsets OpenBLAS's SkylakeX kernels use.
  static var hasAVX512: Bool {
    // procfs reports a size of 0, so read to the end rather than by the file's size.
    guard let handle = FileHandle(forReadingAtPath: "/proc/cpuinfo") else { return false }
    defer { try? handle.close() }
    let info = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
    guard let flags = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
    let set = Set(flags.split(separator: " ").map(String.init))
    return ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(set.contains)
  }

  static func load() -> Result<Library, LoadError> {
    // Glassbox chooses the kernels itself: an inherited OPENBLAS_CORETYPE (this machine's
    // environment sets Haswell) is overridden; GLASSBOX_OPENBLAS_CORETYPE overrides the choice.
    if let chosen = getenv("GLASSBOX_OPENBLAS_CORETYPE") {
      setenv("OPENBLAS_CORETYPE", chosen, 1)
    } else if hasAVX512 {
      setenv("OPENBLAS_CORETYPE", "SkylakeX", 1)
    }
    var handle: UnsafeMutableRawPointer?
    for name in ["libopenblas.so.0", "libopenblas.so", "libopenblasp-r0.3.21.so"] {
      handle = dlopen(name, RTLD_NOW | RTLD_LOCAL)
      if handle != nil { break }
    }
    guard let handle else {
      let reason = dlerror().map { String(cString: $0) } ?? "not found"
      return .failure(LoadError(description: "cannot load OpenBLAS (\(reason)); install libopenblas-dev (tools/setup)"))
    }
    guard let sgemm = dlsym(handle, "cblas_sgemm") else {
      return .failure(LoadError(description: "OpenBLAS has no cblas_sgemm"))
    }
    func symbol<T>(_ name: String, _ type: T.Type) -> T? {
      dlsym(handle, name).map { unsafeBitCast($0, to: type) }
    }
    return .success(Library(sgemm: unsafeBitCast(sgemm, to: Sgemm.self),
                            setThreads: symbol("openblas_set_num_threads", SetThreads.self),
                            config: symbol("openblas_get_config", GetString.self),
                            corename: symbol("openblas_get_corename", GetString.self)))
  }

  /// Loads OpenBLAS now (a no-op after the first call); throws when it is not installed.
  public static func ensureLoaded() throws(LoadError) {
    if case .failure(let e) = library { throw e }
  }

  /// `OpenBLAS 0.3.21 … core=SkylakeX`.
  public static var configuration: String {
    switch library {
    case .failure(let e): return e.description
    case .success(let lib):
      let config = lib.config?().map { String(cString: $0) } ?? "OpenBLAS"
      let core = lib.corename?().map { String(cString: $0) } ?? "unknown"
      return "\(config) core=\(core)"
    }
  }

  /// OpenBLAS's own thread count (its pool is separate from ours).
  public static func setThreads(_ n: Int) {
    if case .success(let lib) = library { lib.setThreads?(Int32(n)) }
  }

  /// Row-major `C = alpha·op(A)·op(B) + beta·C`, `op(A): [m, k]`, `op(B): [k, n]`, with
  /// leading dimensions `lda`, `ldb`, `ldc` (elements between rows as stored).
  @inline(__always)
  static func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    guard case .success(let lib) = library else { return }
    lib.sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
              blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
  }

  /// Contiguous row-major `C = A·B` with `A: [m, k]`, `B: [k, n]` (for tests and tools).
  public static func sgemm(m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>,
                           b: UnsafePointer<Float>, beta: Float = 0, c: UnsafeMutablePointer<Float>) {
    sgemm(m: m, n: n, k: k, alpha: alpha, a: a, lda: k, b: b, ldb: n, beta: beta, c: c, ldc: n)
  }
}
