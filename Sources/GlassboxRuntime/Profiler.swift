import Dispatch

/// Times a compiled program kernel by kernel, beside the executor rather than inside it: it
/// runs the same kernels over the same arena, one at a time with a clock around each.
public struct Profiler {
  /// The program it times.
  public let program: Executable

  /// A profiler of `program`.
  public init(_ program: Executable) { self.program = program }

  /// Runs the program `runs` times and returns each kernel's label and mean time in
  /// milliseconds, in program order.
  public func kernelTimes(runs: Int) -> [(label: String, milliseconds: Double)] {
    let kernels = program.kernels, arena = program.arena
    var total = [UInt64](repeating: 0, count: kernels.count)
    for _ in 0..<Swift.max(runs, 1) {
      for (i, k) in kernels.enumerated() {
        let start = DispatchTime.now().uptimeNanoseconds
        k.run(arena)
        total[i] += DispatchTime.now().uptimeNanoseconds - start
      }
    }
    return zip(kernels, total).map { ($0.label, Double($1) / 1e6 / Double(Swift.max(runs, 1))) }
  }

  /// For each kernel built on SGEMM: its mean time against OpenBLAS alone doing the same
  /// GEMMs (same shapes, its own buffers, same threads), both over `runs` runs. The ratio
  /// says how much of the GEMM rate the kernel keeps after im2col, transforms and epilogues.
  public func gemmEfficiency(runs: Int) -> [(label: String, flops: Double, kernelMs: Double, sgemmMs: Double)] {
    let times = kernelTimes(runs: runs)
    var rows: [(String, Double, Double, Double)] = []
    for (i, k) in program.kernels.enumerated() where !k.gemms.isEmpty {
      var sgemmNs: UInt64 = 0
      for s in k.gemms {
        let a = [Float](repeating: 0.5, count: s.m * s.k), b = [Float](repeating: 0.25, count: s.k * s.n)
        var c = [Float](repeating: 0, count: s.m * s.n)
        func once() {
          for _ in 0..<s.count {
            BLAS.sgemm(
              threads: program.threads, transB: s.transB, m: s.m, n: s.n, k: s.k, a: a, lda: s.k, b: b,
              ldb: s.transB ? s.k : s.n, c: &c, ldc: s.n)
          }
        }
        once()
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<Swift.max(runs, 1) { once() }
        sgemmNs += DispatchTime.now().uptimeNanoseconds - start
      }
      rows.append(
        (
          k.label, k.gemms.reduce(0) { $0 + $1.flops }, times[i].milliseconds,
          Double(sgemmNs) / 1e6 / Double(Swift.max(runs, 1))
        ))
    }
    return rows
  }
}

extension Executable {
  /// `Profiler(self).kernelTimes(runs:)`.
  public func profile(runs: Int) -> [(label: String, milliseconds: Double)] { Profiler(self).kernelTimes(runs: runs) }

  /// `Profiler(self).gemmEfficiency(runs:)`.
  public func gemmEfficiency(runs: Int) -> [(label: String, flops: Double, kernelMs: Double, sgemmMs: Double)] {
    Profiler(self).gemmEfficiency(runs: runs)
  }
}
