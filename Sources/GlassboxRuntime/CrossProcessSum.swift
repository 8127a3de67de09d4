/// Sums `values` elementwise over the processes of a data-parallel run, in place: every
/// process's program calls it at the same points with buffers of one length, and each gets
/// back the sum of all of them. The caller that runs one program per process supplies it
/// (GlassboxTraining's data-parallel step, over MPI); the runtime knows no processes.
///
/// A program calls it from the thread that runs the program, never from a kernel's parallel
/// parts, and at most a few times per kernel (a training batch norm: twice in the forward,
/// once in the backward), with a few numbers per channel.
public typealias CrossProcessSum = (_ values: UnsafeMutableBufferPointer<Double>) -> Void

/// A program's cross-process sum as its kernels see it: the closure set through
/// `Executable.crossProcessSum` (nil: this process alone, and the kernels take their
/// single-process path) and the buffer of Doubles they hand it. One buffer serves every kernel
/// of the program: they run one at a time and call the sum from the running thread.
final class CrossProcessReduction: @unchecked Sendable {
  var sum: CrossProcessSum?
  /// `capacity` Doubles, allocated once when the program is compiled.
  private(set) var values: UnsafeMutablePointer<Double>
  private(set) var capacity = 0

  init() { values = .allocate(capacity: 1) }

  deinit { values.deallocate() }

  /// Makes room for `count` Doubles (at compile time, before any kernel runs).
  func reserve(_ count: Int) {
    guard count > capacity else { return }
    values.deallocate()
    values = .allocate(capacity: count)
    values.initialize(repeating: 0, count: count)
    capacity = count
  }
}

/// A kernel that can sum its statistics over processes: the executable hands it the program's
/// `CrossProcessReduction` and reserves `crossProcessValues` Doubles of it.
protocol SumsAcrossProcesses: Kernel {
  /// The program's reduction; nil until the executable attaches it.
  var processes: CrossProcessReduction? { get set }
  /// Doubles the kernel hands the sum at once.
  var crossProcessValues: Int { get }
}
