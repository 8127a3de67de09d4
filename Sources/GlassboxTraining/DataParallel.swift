import CMPILoader
import Foundation
import GlassboxFormat
import GlassboxRuntime

/// The processes of a data-parallel run: Open MPI's `MPI_COMM_WORLD`, the library opened with
/// `dlopen` when a run first needs it (a single-process run maps no MPI). Only this module
/// sees MPI.
///
/// Every collective here must be called by every process, in the same order; a failed call
/// ends the job (MPI's default error handler), so the calls do not throw.
public final class Communicator: @unchecked Sendable {
  /// This process's rank, `0 ..< size`.
  public let rank: Int
  /// Processes in the run.
  public let size: Int
  /// Whether any thread may call MPI (one at a time): what a progress thread needs.
  public let isSerialized: Bool

  private init(rank: Int, size: Int, isSerialized: Bool) {
    self.rank = rank
    self.size = size
    self.isSerialized = isSerialized
  }

  nonisolated(unsafe) private static var joined: Communicator?
  private static let lock = NSLock()

  /// Joins the run (loads Open MPI and initialises it, once per process).
  public static func world() throws(TrainingError) -> Communicator {
    lock.lock()
    defer { lock.unlock() }
    if let joined { return joined }
    if let why = glassbox_mpi_load() { throw TrainingError(String(cString: why), kind: .runtime) }
    var rank: Int32 = 0, size: Int32 = 0, serialized: Int32 = 0
    guard glassbox_mpi_init(&rank, &size, &serialized) == 0 else {
      throw TrainingError("MPI_Init failed", kind: .runtime)
    }
    let c = Communicator(rank: Int(rank), size: Int(size), isSerialized: serialized != 0)
    joined = c
    return c
  }

  /// Open MPI's version line, once loaded.
  public static var libraryVersion: String { String(cString: glassbox_mpi_library_version()) }

  /// How many processes the launcher started, and the variable that says so: `mpirun`'s
  /// `OMPI_COMM_WORLD_SIZE`, or an `srun` step's `SLURM_STEP_NUM_TASKS`. Nil for one process
  /// (a plain `glassbox train`, or a batch script's own step).
  public static func launched(
    _ environment: [String: String] = ProcessInfo.processInfo.environment
  )
    -> (count: Int, source: String)?
  {
    if let text = environment["OMPI_COMM_WORLD_SIZE"], let n = Int(text) {
      return (n, "OMPI_COMM_WORLD_SIZE=\(text)")
    }
    if let text = environment["SLURM_STEP_NUM_TASKS"], let n = Int(text), n > 1, environment["SLURM_PROCID"] != nil {
      return (n, "SLURM_STEP_NUM_TASKS=\(text)")
    }
    return nil
  }

  /// Sums `values` over the processes, in place.
  public func sum(_ values: inout [Double]) {
    guard size > 1, !values.isEmpty else { return }
    let status = values.withUnsafeMutableBufferPointer { glassbox_mpi_allreduce_f64($0.baseAddress, Int32($0.count)) }
    check(status, "MPI_Allreduce")
  }

  /// Sums `values` over the processes, in place.
  public func sum(_ values: UnsafeMutableBufferPointer<Double>) {
    guard size > 1, let base = values.baseAddress, values.count > 0 else { return }
    check(glassbox_mpi_allreduce_f64(base, Int32(values.count)), "MPI_Allreduce")
  }

  /// Sums `count` floats at `values` over the processes, in place.
  public func sum(_ values: UnsafeMutablePointer<Float>, count: Int) {
    guard size > 1, count > 0 else { return }
    check(glassbox_mpi_allreduce_f32(values, Int32(count)), "MPI_Allreduce")
  }

  /// A sum started by `startSum`.
  public struct PendingSum {
    fileprivate var request: UnsafeMutableRawPointer?
    /// Whether it has finished (and released its request).
    public var isDone: Bool { request == nil }
  }

  /// Starts summing `count` floats at `values` over the processes in place (MPI_Iallreduce);
  /// the memory must stay put until `wait` (or a `test` that reports it done).
  public func startSum(_ values: UnsafeMutablePointer<Float>, count: Int) -> PendingSum {
    var request: UnsafeMutableRawPointer?
    check(glassbox_mpi_iallreduce_f32(values, Int32(count), &request), "MPI_Iallreduce")
    return PendingSum(request: request)
  }

  /// Lets MPI advance `sum` (Open MPI moves non-blocking collectives on inside MPI calls);
  /// true when it has finished.
  @discardableResult
  public func test(_ sum: inout PendingSum) -> Bool {
    guard sum.request != nil else { return true }
    var done: Int32 = 0
    check(glassbox_mpi_test(&sum.request, &done), "MPI_Test")
    if done != 0 { sum.request = nil }
    return done != 0
  }

  /// Waits for `sum` to finish.
  public func wait(_ sum: inout PendingSum) {
    guard sum.request != nil else { return }
    check(glassbox_mpi_wait(&sum.request), "MPI_Wait")
    sum.request = nil
  }

  /// Every process's `bytes` (all of one length), in rank order.
  public func allGather(_ bytes: [UInt8]) -> [[UInt8]] {
    guard size > 1 else { return [bytes] }
    var all = [UInt8](repeating: 0, count: bytes.count * size)
    let status = bytes.withUnsafeBytes { mine in
      all.withUnsafeMutableBytes { glassbox_mpi_allgather(mine.baseAddress, Int32(bytes.count), $0.baseAddress) }
    }
    check(status, "MPI_Allgather")
    return (0..<size).map { Array(all[($0 * bytes.count)..<(($0 + 1) * bytes.count)]) }
  }

  public func barrier() { check(glassbox_mpi_barrier(), "MPI_Barrier") }

  /// Ends every process of the run with `code` (a process that stopped on its own error, so
  /// that the others do not wait for it forever).
  public func abort(code: Int32) -> Never {
    _ = glassbox_mpi_abort(code)
    exit(code)
  }

  /// Leaves the run (MPI_Finalize); every process calls it once, at the end.
  public func finalize() { _ = glassbox_mpi_finalize() }

  private func check(_ status: Int32, _ call: String) {
    guard status != 0 else { return }
    FileHandle.standardError.write(Data("glassbox: \(call) failed with MPI error \(status) on rank \(rank)\n".utf8))
    abort(code: 1)
  }
}

/// How the processes of a data-parallel run share a step.
public struct DataParallelSettings: Sendable, Equatable {
  /// Bytes of gradients per all-reduce bucket: parameters, in the order the backward pass
  /// completes their gradients, fill a bucket up to this size.
  public var bucketBytes: Int
  /// Start each bucket's sum as soon as its gradients are complete, during the backward pass;
  /// otherwise after it. The buckets and their order are the same, and so are the results.
  public var overlap: Bool
  /// SyncBatchNorm: every training batch norm normalises with the mean and variance of the
  /// global batch (its per-channel sums summed over the processes during the forward pass),
  /// its backward takes the global sums of dy and dy·x̂, and the running statistics are the
  /// global batch's; otherwise each process normalises by its own slice and keeps its own
  /// running statistics (as DDP without SyncBatchNorm), and rank 0's are the ones saved.
  public var syncBatchNorm: Bool
  /// With `overlap`: microseconds between a progress thread's calls into MPI while sums are in
  /// flight (Open MPI moves a non-blocking all-reduce only inside MPI calls); 0: no thread, MPI
  /// is called only as each gradient completes.
  public var progressMicroseconds: Int

  public init(
    bucketBytes: Int = 8 << 20, overlap: Bool = true, syncBatchNorm: Bool = false,
    progressMicroseconds: Int = 100
  ) {
    self.bucketBytes = bucketBytes
    self.overlap = overlap
    self.syncBatchNorm = syncBatchNorm
    self.progressMicroseconds = progressMicroseconds
  }
}

/// A training step shared by the processes of a data-parallel run: each takes its slice of
/// every global batch, and the gradients are summed over the processes (each scaled by 1/N
/// first, so the sum is the global batch's mean gradient) in fixed buckets, in a fixed order —
/// two runs with the same N give the same bits.
public final class DataParallel {
  public let communicator: Communicator
  public let settings: DataParallelSettings
  public var rank: Int { communicator.rank }
  public var size: Int { communicator.size }
  /// Seconds spent in MPI during steps (starting, advancing and waiting for sums), and of it
  /// waiting after the backward pass, and in the batch norms' sums (`syncBatchNorm`: the
  /// all-reduces inside the passes, each also waiting for the slowest process to get there);
  /// reset by the caller.
  public var communicationSeconds = 0.0
  public var waitSeconds = 0.0
  public var batchNormSeconds = 0.0
  /// Whether this process's slice of the current step has an example: one without adds
  /// nothing to the batch norms' sums.
  var stepHasExamples = true
  /// The last step's timeline (for measuring the overlap).
  public internal(set) var lastStep: StepTimeline?
  var buckets: GradientBuckets?

  public init(communicator: Communicator, settings: DataParallelSettings = DataParallelSettings()) {
    self.communicator = communicator
    self.settings = settings
  }

  /// The rows of a global batch (`indices`, in order) this process takes: a contiguous slice
  /// of `local` rows (fewer, or none, at the end of a short batch).
  public func slice<C: RandomAccessCollection>(_ indices: C, local: Int) -> C.SubSequence where C.Index == Int {
    let start = Swift.min(indices.startIndex + rank * local, indices.endIndex)
    return indices[start..<Swift.min(start + local, indices.endIndex)]
  }

  /// The one collective of a run's start: every process says how its setup went — its
  /// error, or the named values it runs with (model, data, settings, N …, the same names in
  /// the same order everywhere) — and every process learns all of it. A failure anywhere, or a
  /// value that differs from rank 0's, is thrown by every process alike as `RefusedRun`,
  /// naming the ranks and what differs.
  public func start(_ outcome: Result<[(name: String, value: String)], any Error>, names: [String]) throws {
    let messageBytes = 1024
    var record = [UInt8](repeating: 0, count: 1 + messageBytes + 32 * names.count)
    switch outcome {
    case .success(let items):
      record[0] = 1
      for (i, name) in names.enumerated() {
        let value = items.first { $0.name == name }?.value ?? ""
        let digest = Array(value.utf8).withUnsafeBytes { SHA256.digest($0) }
        record.replaceSubrange((1 + messageBytes + 32 * i)..<(1 + messageBytes + 32 * (i + 1)), with: digest)
      }
    case .failure(let error):
      let text = Array("\(error)".utf8.prefix(messageBytes))
      record.replaceSubrange(1..<(1 + text.count), with: text)
    }
    let all = communicator.allGather(record)
    var failures: [(rank: Int, message: String)] = []
    for (r, rec) in all.enumerated() where rec[0] == 0 {
      let text = rec[1..<(1 + messageBytes)].prefix { $0 != 0 }
      failures.append((r, String(decoding: text, as: UTF8.self)))
    }
    if !failures.isEmpty {
      let messages = Set(failures.map(\.message))
      if failures.count == size, messages.count == 1 {
        throw RefusedRun(description: failures[0].message)
      }
      throw RefusedRun(description: failures.map { "rank \($0.rank): \($0.message)" }.joined(separator: "\n"))
    }
    for (i, name) in names.enumerated() {
      let digest = { (r: Int) in Array(all[r][(1 + messageBytes + 32 * i)..<(1 + messageBytes + 32 * (i + 1))]) }
      let disagree = (1..<size).filter { digest($0) != digest(0) }
      if !disagree.isEmpty {
        var mine = ""
        if case .success(let items) = outcome, let v = items.first(where: { $0.name == name })?.value { mine = v }
        throw RefusedRun(
          description: "the \(size) processes of this run disagree on the \(name): rank"
            + (disagree.count > 1 ? "s " : " ") + disagree.map(String.init).joined(separator: ", ")
            + (disagree.count > 1 ? " differ" : " differs") + " from rank 0"
            + (rank == 0 && !mine.isEmpty ? " (rank 0: \(mine))" : "")
            + "; start every process with the same model, data and options")
      }
    }
  }

  /// The sum a step's training batch norms call under `syncBatchNorm`: one MPI_Allreduce of
  /// their per-channel numbers (and count), under the lock that keeps the progress thread's
  /// MPI calls apart. Every process calls it at the same kernels in the same order, between the
  /// gradient buckets it starts, so the collectives match. A process whose slice has no example
  /// this step adds zeros, its count included.
  func batchNormSum() -> CrossProcessSum {
    { values in
      let start = DispatchTime.now().uptimeNanoseconds
      if !self.stepHasExamples { values.update(repeating: 0) }
      let lock = self.buckets?.condition
      lock?.lock()
      self.communicator.sum(values)
      lock?.unlock()
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
      self.batchNormSeconds += seconds
      self.communicationSeconds += seconds
    }
  }

  /// Prepares the buckets for the gradients of `parameters` (name and element count, in the
  /// order the backward pass completes them).
  func prepare(parameters: [(name: String, count: Int)]) {
    guard buckets == nil else { return }
    let b = GradientBuckets(parameters: parameters, bucketBytes: settings.bucketBytes)
    if settings.overlap, settings.progressMicroseconds > 0, communicator.isSerialized, size > 1 {
      b.startProgressThread(communicator, every: settings.progressMicroseconds)
    }
    buckets = b
  }
}

/// When a data-parallel step's parts ended, in milliseconds from its start: the backward pass
/// (the backend's step), each gradient (in the order they came, each a chance for MPI to
/// advance the sums in flight), each bucket's gradients being complete (bucket order), and
/// the wait for the sums after the backward pass.
public struct StepTimeline: Sendable {
  public var backwardEnd: Double
  public var waitEnd: Double
  public var gradientComplete: [(milliseconds: Double, bytes: Int)]
  public var bucketBytes: [Int]
  public var bucketComplete: [Double]
}

/// A run every process refuses alike at its start: one failed to set up, or they disagree on
/// what they run. Rank 0 says why; every process ends with it.
public struct RefusedRun: Error, CustomStringConvertible {
  public var description: String
}

/// A step's gradients gathered into fixed buckets and summed over the processes.
///
/// Layout: parameters in the order given (the order the backward pass completes them) fill
/// buckets of at most `bucketBytes` (a parameter larger than that has a bucket of its own);
/// bucket k holds its parameters' gradients one after another. Buckets are started in order
/// 0, 1, … on every process (MPI requires collectives in one order everywhere): bucket k
/// starts once it is complete and every bucket before it has started.
final class GradientBuckets: @unchecked Sendable {
  struct Slot {
    var bucket: Int
    var offset: Int
    var count: Int
  }

  let slots: [String: Slot]
  let sizes: [Int]
  let storage: [UnsafeMutablePointer<Float>]
  var missing: [Int]
  var pending: [Communicator.PendingSum?]
  var started = 0
  var scale: Float = 1
  /// When each bucket's last gradient came in (uptime nanoseconds).
  var completed: [UInt64]
  /// Guards `pending` and every MPI call of a step while a progress thread runs; signalled
  /// when a sum starts.
  let condition = NSCondition()
  var progressThread: Thread?

  init(parameters: [(name: String, count: Int)], bucketBytes: Int) {
    var slots: [String: Slot] = [:], sizes: [Int] = [], members: [Int] = []
    for p in parameters {
      if sizes.isEmpty || (sizes[sizes.count - 1] > 0 && (sizes[sizes.count - 1] + p.count) * 4 > bucketBytes) {
        sizes.append(0)
        members.append(0)
      }
      slots[p.name] = Slot(bucket: sizes.count - 1, offset: sizes[sizes.count - 1], count: p.count)
      sizes[sizes.count - 1] += p.count
      members[members.count - 1] += 1
    }
    self.slots = slots
    self.sizes = sizes
    storage = sizes.map { n in
      let p = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(n, 1))
      p.initialize(repeating: 0, count: Swift.max(n, 1))
      return p
    }
    missing = members
    pending = Array(repeating: nil, count: sizes.count)
    completed = Array(repeating: 0, count: sizes.count)
  }

  deinit { for p in storage { p.deallocate() } }

  /// Starts a thread that, while sums are in flight, calls MPI_Test on them every
  /// `microseconds` (with the lock held, so MPI is never called by two threads at once). It
  /// holds the buckets for as long as the process runs.
  func startProgressThread(_ communicator: Communicator, every microseconds: Int) {
    let thread = Thread {
      self.condition.lock()
      while true {
        if !self.pending.contains(where: { $0?.isDone == false }) {
          self.condition.wait()
          continue
        }
        self.testPending(communicator)
        self.condition.unlock()
        usleep(useconds_t(microseconds))
        self.condition.lock()
      }
    }
    thread.name = "glassbox-mpi-progress"
    thread.start()
    progressThread = thread
  }

  /// Bytes summed per step.
  var bytes: Int { sizes.reduce(0, +) * 4 }

  /// Starts a step whose gradients are multiplied by `scale` as they come in.
  func begin(scale: Float) {
    self.scale = scale
    started = 0
    var members = [Int](repeating: 0, count: sizes.count)
    for s in slots.values { members[s.bucket] += 1 }
    missing = members
    pending = Array(repeating: nil, count: sizes.count)
    completed = Array(repeating: 0, count: sizes.count)
  }

  /// Takes a parameter's finished gradient; starts every bucket that can start and lets MPI
  /// advance those in flight.
  func add(_ name: String, _ values: UnsafeBufferPointer<Float>, communicator: Communicator, start: Bool) {
    guard let s = slots[name], let source = values.baseAddress else { return }
    let destination = storage[s.bucket] + s.offset
    let scale = self.scale
    for i in 0..<Swift.min(s.count, values.count) { destination[i] = source[i] * scale }
    missing[s.bucket] -= 1
    if missing[s.bucket] == 0 { completed[s.bucket] = DispatchTime.now().uptimeNanoseconds }
    if start { startReady(communicator) }
  }

  func startReady(_ communicator: Communicator) {
    condition.lock()
    defer { condition.unlock() }
    var any = false
    while started < sizes.count, missing[started] == 0 {
      pending[started] = communicator.startSum(storage[started], count: sizes[started])
      started += 1
      any = true
    }
    if progressThread != nil {
      if any { condition.signal() }
      return
    }
    testPending(communicator)
  }

  /// MPI_Test on every sum in flight (the lock held).
  func testPending(_ communicator: Communicator) {
    for i in 0..<started where pending[i]?.isDone == false {
      if var p = pending[i] {
        communicator.test(&p)
        pending[i] = p
      }
    }
  }

  /// Starts what is left, waits for every bucket and writes the sums into `gradients`.
  func finish(into gradients: inout [String: [Float]], communicator: Communicator) throws {
    if let bucket = missing.firstIndex(where: { $0 != 0 }) {
      let names = slots.filter { $0.value.bucket == bucket }.map(\.key).sorted()
      throw TrainingError(
        "data-parallel step: a gradient of bucket \(bucket) "
          + "(\(names.prefix(3).joined(separator: ", "))) never came")
    }
    startReady(communicator)
    condition.lock()
    for i in pending.indices {
      if var p = pending[i] {
        communicator.wait(&p)
        pending[i] = p
      }
    }
    condition.unlock()
    for (name, s) in slots {
      let source = UnsafeBufferPointer(start: storage[s.bucket] + s.offset, count: s.count)
      var values = gradients.removeValue(forKey: name) ?? []
      if values.count == s.count {
        values.withUnsafeMutableBufferPointer { v in _ = v.update(fromContentsOf: source) }
      } else {
        values = Array(source)
      }
      gradients[name] = values
    }
  }
}
