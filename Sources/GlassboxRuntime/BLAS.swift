import CBLAS
import Foundation
import GlassboxIR

/// OpenBLAS, loaded on first use. Only this module sees it.
///
/// Debian's OpenBLAS 0.3.21 picks its AVX2 "Haswell" kernels on AVX-512 CPUs unless
/// `OPENBLAS_CORETYPE=SkylakeX` is set when the library initialises (about 2× on SGEMM), and
/// it has no call to choose them later, so the library is opened with `dlopen` (never linked)
/// with that variable set for the call only: the process's environment is restored right
/// after, so a host that embeds Glassbox sees no variable it did not set. A host that loaded
/// OpenBLAS before keeps its own copy as it set it up; Glassbox opens a private one beside it.
/// `GLASSBOX_OPENBLAS_CORETYPE=Haswell` (any OpenBLAS core name) chooses other kernels.
///
/// OpenBLAS runs on one thread, always (`OPENBLAS_NUM_THREADS=1` while it loads, then
/// `openblas_set_num_threads(1)`): the cores are
/// ours to share out. Its own pool's workers spin for a while after each threaded call, so they
/// compete with every kernel that splits its own work over the cores (frames split over the
/// cores then run slower, and less steadily, than one threaded GEMM at a time);
/// `sgemm(threads:…)` splits a large product over the cores instead.
public enum BLAS {
  typealias Sgemm =
    @convention(c) (
      CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, blasint, blasint, blasint,
      Float, UnsafePointer<Float>?, blasint, UnsafePointer<Float>?, blasint,
      Float, UnsafeMutablePointer<Float>?, blasint
    ) -> Void
  typealias SetThreads = @convention(c) (Int32) -> Void
  typealias GetString = @convention(c) () -> UnsafeMutablePointer<CChar>?

  struct Library: @unchecked Sendable {
    let sgemm: Sgemm
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
    var settings = ["OPENBLAS_NUM_THREADS": "1"]
    if let chosen = getenv("GLASSBOX_OPENBLAS_CORETYPE") {
      settings["OPENBLAS_CORETYPE"] = String(cString: chosen)
    } else if hasAVX512 {
      settings["OPENBLAS_CORETYPE"] = "SkylakeX"
    }
    let handle = withEnvironment(settings) { () -> UnsafeMutableRawPointer? in
      for name in ["libopenblas.so.0", "libopenblas.so", "libopenblasp-r0.3.21.so"] {
        // A host that loaded OpenBLAS already (numpy does) set it up with its own kernels and
        // threads: Glassbox takes a private copy in a link-map namespace of its own, so that
        // neither its choice nor its one thread reaches the host's copy.
        if let shared = dlopen(name, RTLD_NOW | RTLD_NOLOAD) {
          dlclose(shared)
          if let h = privateCopy(name) { return h }
        }
        if let h = dlopen(name, RTLD_NOW | RTLD_LOCAL) { return h }
      }
      return nil
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
    let setThreads = symbol("openblas_set_num_threads", SetThreads.self)
    setThreads?(1)
    return .success(
      Library(
        sgemm: unsafeBitCast(sgemm, to: Sgemm.self),
        config: symbol("openblas_get_config", GetString.self),
        corename: symbol("openblas_get_corename", GetString.self)))
  }

  typealias DLMOpen = @convention(c) (Int, UnsafePointer<CChar>?, Int32) -> UnsafeMutableRawPointer?

  /// `name` opened in a new link-map namespace (glibc's `dlmopen(LM_ID_NEWLM, …)`), which
  /// initialises a second copy of the library and its dependencies; nil where the C library
  /// has no `dlmopen` or the namespaces are used up (then the host's copy is shared).
  static func privateCopy(_ name: String) -> UnsafeMutableRawPointer? {
    guard let main = dlopen(nil, RTLD_NOW), let f = dlsym(main, "dlmopen") else { return nil }
    let dlmopen = unsafeBitCast(f, to: DLMOpen.self)
    let newNamespace = -1  // LM_ID_NEWLM
    return dlmopen(newNamespace, name, RTLD_NOW | RTLD_LOCAL)
  }

  /// Runs `body` with the variables `settings` set in the environment, then restores each to
  /// what it was (unset when it was unset).
  static func withEnvironment<T>(_ settings: [String: String], _ body: () -> T) -> T {
    let saved = settings.keys.map { ($0, getenv($0).map { String(cString: $0) }) }
    for (name, value) in settings { setenv(name, value, 1) }
    defer {
      for (name, value) in saved {
        if let value { setenv(name, value, 1) } else { unsetenv(name) }
      }
    }
    return body()
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

  /// Cores a caller without a thread count of its own (t-SNE, tools) spreads a product over.
  public static var defaultThreads: Int { Swift.max(1, Swift.min(ProcessInfo.processInfo.activeProcessorCount, 8)) }

  /// Products smaller than this (`m·n·k`, about 20 µs on one core) stay on one thread: waking
  /// another costs more than it saves.
  static let parallelWork = 1 << 20

  /// Row-major `C = alpha·op(A)·op(B) + beta·C`, `op(A): [m, k]`, `op(B): [k, n]`, with
  /// leading dimensions `lda`, `ldb`, `ldc` (elements between rows as stored).
  @inline(__always)
  static func sgemm(
    transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    guard case .success(let lib) = library else { return }
    lib.sgemm(
      CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
      blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
  }

  /// `sgemm` with the product split over `threads` cores: the columns of `C` when it is wider
  /// than tall, else its rows, in blocks of whole cache lines; each part one single-threaded
  /// OpenBLAS call on disjoint parts of `C`.
  static func sgemm(
    threads: Int, transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    let byColumns = n >= m
    let extent = byColumns ? n : m, unit = byColumns ? 16 : 4
    let parts = Swift.min(threads, extent / unit)
    guard parts > 1, m * n * k >= parallelWork else {
      return sgemm(
        transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
        beta: beta, c: c, ldc: ldc)
    }
    let operands = GEMMOperands(a: a, b: b, c: c)
    parallelFor(parts) { part in
      // Part boundaries on multiples of `unit` (the last part takes the remainder).
      let blocks = extent / unit
      let lo = blocks * part / parts * unit, hi = part == parts - 1 ? extent : blocks * (part + 1) / parts * unit
      if byColumns {
        sgemm(
          transA: transA, transB: transB, m: m, n: hi - lo, k: k, alpha: alpha, a: operands.a, lda: lda,
          b: operands.b + (transB ? lo * ldb : lo), ldb: ldb, beta: beta, c: operands.c + lo, ldc: ldc)
      } else {
        sgemm(
          transA: transA, transB: transB, m: hi - lo, n: n, k: k, alpha: alpha,
          a: operands.a + (transA ? lo : lo * lda), lda: lda, b: operands.b, ldb: ldb, beta: beta,
          c: operands.c + lo * ldc, ldc: ldc)
      }
    }
  }

  /// Contiguous row-major `C = A·B` with `A: [m, k]`, `B: [k, n]` (for tests and tools), over
  /// `threads` cores.
  public static func sgemm(
    m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>,
    b: UnsafePointer<Float>, beta: Float = 0, c: UnsafeMutablePointer<Float>,
    threads: Int = defaultThreads
  ) {
    sgemm(threads: threads, m: m, n: n, k: k, alpha: alpha, a: a, lda: k, b: b, ldb: n, beta: beta, c: c, ldc: n)
  }
}

/// The three matrices of one product, handed to the threads that compute disjoint parts of `C`.
private struct GEMMOperands: @unchecked Sendable {
  let a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>
}

extension BLAS.LoadError: KindedError {
  public var errorKind: ErrorKind { .runtime }
}
