import Dispatch

/// Times a compiled program kernel by kernel, beside the executor rather than inside it: it
/// runs the same kernels over the same arena, one at a time with a clock around each.
public struct Profiler {
  /// The program it times.
  public let program: Executable

  /// A profiler of `program`.
  public init(_ program: Executable) { self.program = program }

  /// Runs the program `runs` times and returns each kernel's label and median time in
  /// milliseconds, in program order: the median, not the mean, so that a moment when another
  /// process holds the core does not land on whichever kernel it interrupted.
  public func kernelTimes(runs: Int) -> [(label: String, milliseconds: Double)] {
    let kernels = program.kernels, arena = program.arena
    var samples = [[UInt64]](repeating: [], count: kernels.count)
    for _ in 0..<Swift.max(runs, 1) {
      for (i, k) in kernels.enumerated() {
        let start = DispatchTime.now().uptimeNanoseconds
        k.run(arena)
        samples[i].append(DispatchTime.now().uptimeNanoseconds - start)
      }
    }
    return zip(kernels, samples).map { kernel, times in
      let sorted = times.sorted(), middle = sorted.count / 2
      let median = sorted.count % 2 == 1 ? Double(sorted[middle]) : Double(sorted[middle - 1] + sorted[middle]) / 2
      return (kernel.label, median / 1e6)
    }
  }

  /// For each kernel built on SGEMM: its median time against OpenBLAS alone doing the same
  /// GEMMs (same shapes, its own buffers, same threads), both over `runs` runs. The ratio
  /// says how much of the GEMM rate the kernel keeps after im2col, transforms and epilogues.
  /// `flops` are the GEMMs' (a convolution's as im2col would run it), `executedFlops` what the
  /// kernel's own multiply-adds perform (`Kernel.executedFlops`).
  public func gemmEfficiency(
    runs: Int
  )
    -> [(label: String, flops: Double, executedFlops: Double, kernelMs: Double, sgemmMs: Double)]
  {
    let times = kernelTimes(runs: runs)
    var rows: [(String, Double, Double, Double, Double)] = []
    for (i, k) in program.kernels.enumerated() where !k.gemms.isEmpty {
      var sgemmNs = [UInt64](repeating: 0, count: Swift.max(runs, 1))
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
        for run in sgemmNs.indices {
          let start = DispatchTime.now().uptimeNanoseconds
          once()
          sgemmNs[run] += DispatchTime.now().uptimeNanoseconds - start
        }
      }
      let sorted = sgemmNs.sorted(), middle = sorted.count / 2
      let median = sorted.count % 2 == 1 ? Double(sorted[middle]) : Double(sorted[middle - 1] + sorted[middle]) / 2
      rows.append((k.label, k.gemms.reduce(0) { $0 + $1.flops }, k.executedFlops, times[i].milliseconds, median / 1e6))
    }
    return rows
  }
}

extension Executable {
  /// `Profiler(self).kernelTimes(runs:)`.
  public func profile(runs: Int) -> [(label: String, milliseconds: Double)] { Profiler(self).kernelTimes(runs: runs) }

  /// `Profiler(self).gemmEfficiency(runs:)`.
  public func gemmEfficiency(
    runs: Int
  )
    -> [(label: String, flops: Double, executedFlops: Double, kernelMs: Double, sgemmMs: Double)]
  {
    Profiler(self).gemmEfficiency(runs: runs)
  }
}
