import Foundation
import GlassboxIR

/// A graph compiled for fixed input shapes: a linear program of kernels (OpenBLAS GEMMs and
/// Swift SIMD loops) over one arena planned by liveness, where independent chains of LSTM
/// cells run side by side as two lanes of one step (`Schedule`). Running it allocates nothing
/// but the result tensors it hands back.
///
/// Where values live is `BufferAssignment`'s (all f32, outputs and taps pinned); how long
/// each kernel takes, `Profiler`'s; `loweredDescription` prints the program.
public final class Executable: @unchecked Sendable {
  /// The bound graph this program computes.
  public let graph: Graph
  /// Cores the kernels split their work over.
  public let threads: Int
  let kernels: [any Kernel]
  let arena: UnsafeMutablePointer<Float>
  /// Where every value lives in the arena.
  let buffers: BufferAssignment
  /// Per node: the labels of the kernels it lowered to, for the printer.
  let kernelLabels: [[String]]
  /// Value indices of the named results: outputs, then activation-like taps.
  let results: [(name: String, value: ValueID)]
  /// The run order and the groups of nodes that run side by side.
  let schedule: Schedule
  /// The cross-process sum the kernels that can take one share (training batch norms).
  let processes: CrossProcessReduction

  /// Sums per-channel statistics over the processes of a data-parallel run (SyncBatchNorm):
  /// set by the caller that runs this program in every process, each on its slice of the
  /// global batch. While set, every training batch norm normalises with the statistics of
  /// the whole global batch and its backward takes the global sums; nil (the default): this
  /// process's batch alone. The program calls it on the thread that runs it, in the same
  /// order in every process.
  public var crossProcessSum: CrossProcessSum? {
    get { processes.sum }
    set { processes.sum = newValue }
  }

  /// Floats in the arena.
  public var arenaCount: Int { buffers.count }
  /// Sum of all buffers' sizes before sharing (floats), for `--stats`.
  public var unsharedCount: Int { buffers.unsharedCount }
  /// Where each value lives (offset in floats); aliases share their source's offset.
  var offsets: [Int] { buffers.offsets }
  /// Per node: its scratch in the arena (floats; empty if it needs none).
  var scratchRanges: [Range<Int>] { buffers.scratch }
  /// Per named result (`results` order): how many kernels run before its value is final.
  /// Outputs and taps are pinned, so no later kernel writes them.
  let readyAfter: [Int]

  /// Errors in what was given to compile or run: names the tensor and what is wrong.
  public struct InputError: Error, CustomStringConvertible {
    public var description: String
  }

  /// Compiles a graph whose every dimension is bound; `parameters` are copied in, or only
  /// derived from (`setParameters`; missing ones are an error). `threads` is how many cores the
  /// program may use: kernels split their work over them (large products, images of a
  /// convolution, the two LSTM directions), each part calling a single-threaded OpenBLAS.
  public init(graph: Graph, parameters: [String: Tensor], threads: Int = 2) throws {
    try BLAS.ensureLoaded()
    let threadCount = Swift.max(threads, 1)
    self.graph = graph
    self.threads = threadCount
    for v in graph.values where !v.type.shape.allSatisfy(\.isStatic) {
      throw InputError(
        description: "value '\(v.name)' has symbolic shape \(v.type.shapeDescription); bind the symbols first")
    }
    let schedule = Schedule.make(graph, threads: threadCount)
    let buffers = BufferAssignment(graph: graph, schedule: schedule, threads: threadCount)
    self.schedule = schedule
    self.buffers = buffers
    // On a cache line, as the memory plan's 64-byte offsets assume (`allocate(capacity:)`
    // gave malloc's 16-byte alignment, so every "aligned" vector straddled two lines).
    arena = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(buffers.count, 1) * 4, alignment: 64)
      .bindMemory(to: Float.self, capacity: Swift.max(buffers.count, 1))
    arena.initialize(repeating: 0, count: Swift.max(buffers.count, 1))

    // A node in a lane runs on one core.
    let processes = CrossProcessReduction()
    self.processes = processes
    func lowered(_ i: Int) throws -> [any Kernel] {
      if buffers.needsNoKernel.contains(i) { return [] }
      let kernels = try Lowering.kernels(
        graph.nodes[i], graph, buffers.offsets, scratch: buffers.scratch[i].lowerBound,
        persistent: buffers.persistent[i], sharesForward: buffers.sharesForward[i],
        rowStrides: buffers.rowStrides,
        threads: schedule.lane[i] == nil ? threadCount : 1)
      return kernels.map { kernel in
        guard var k = kernel as? any SumsAcrossProcesses else { return kernel }
        // Lanes run on two threads at once, and the sum must be called from the running
        // thread in one order: only ops that never join a lane (`Op.isLight`) may sum.
        precondition(schedule.lane[i] == nil, "\(k.label): a kernel that sums across processes in a lane")
        k.processes = processes
        processes.reserve(k.crossProcessValues)
        return k
      }
    }
    var kernels: [any Kernel] = []
    var labels = [[String]](repeating: [], count: graph.nodes.count)
    var doneAfter = [Int](repeating: 0, count: graph.nodes.count)
    func lane(_ nodes: [Int]) throws -> [any Kernel] {
      try nodes.flatMap { i in
        let k = try lowered(i)
        labels[i] = k.map(\.label)
        return k
      }
    }
    for step in schedule.steps {
      switch step {
      case .node(let i):
        kernels += try lane([i])
        doneAfter[i] = kernels.count
      case .group(let g):
        kernels.append(LaneGroup(lanes: try schedule.groups[g].map(lane)))
        for nodes in schedule.groups[g] { for i in nodes { doneAfter[i] = kernels.count } }
      }
    }
    self.kernels = kernels
    kernelLabels = labels
    var results = graph.outputs.map { ($0.name, $0.value) }
    for t in graph.taps where t.kind.isValue {
      results.append((t.name, t.operands[0]))
    }
    self.results = results
    readyAfter = results.map { r in
      if case .node(let producer, _) = graph[r.1].origin { return doneAfter[producer.index] }
      return 0
    }
    try setParameters(parameters)
  }

  deinit { UnsafeMutableRawPointer(arena).deallocate() }

  /// Copies parameter values into the arena, checking names and shapes, then has every kernel
  /// derive what it keeps from them (`Kernel.prepare`: packed and transformed weights). A
  /// parameter that only such kernels read has no slot (`BufferAssignment.Storage.derivedOnly`):
  /// they read it from `parameters` during the call, and nothing keeps it after. Setting
  /// parameters again derives everything again.
  public func setParameters(_ parameters: [String: Tensor]) throws {
    var problems: [String] = []
    var callers: [(value: Int, tensor: Tensor)] = []
    for p in graph.parameters where buffers.storage[p.value.index] != .unused {
      guard let t = parameters[p.name] else { problems.append("missing parameter '\(p.name)'"); continue }
      let shape = p.type.shape.map { $0.staticValue ?? 0 }
      guard t.shape == shape else {
        problems.append("parameter '\(p.name)' has shape \(t.shape) but the graph expects \(shape)")
        continue
      }
      if offsets[p.value.index] >= 0 {
        write(t, at: offsets[p.value.index])
      } else {
        callers.append((p.value.index, t))
      }
    }
    guard problems.isEmpty else { throw InputError(description: problems.joined(separator: "\n")) }
    Self.withFloats(of: callers[...]) { callers in for k in kernels { k.prepare(arena, callers: callers) } }
  }

  /// Calls `body` with the f32 data of `tensors` by value index (added to `pointers`), valid
  /// during the call: an f32 tensor's own array, another type converted.
  static func withFloats(
    of tensors: ArraySlice<(value: Int, tensor: Tensor)>, _ pointers: CallerParameters = [:],
    _ body: (CallerParameters) -> Void
  ) {
    guard let (value, t) = tensors.first else { return body(pointers) }
    var floats: [Float]
    if case .f32(let f) = t.storage { floats = f } else { floats = t.floats }
    if floats.isEmpty { floats = [0] }  // a pointer all the same
    floats.withUnsafeBufferPointer { buffer in
      var pointers = pointers
      pointers[value] = buffer.baseAddress
      withFloats(of: tensors.dropFirst(), pointers, body)
    }
  }

  func write(_ t: Tensor, at offset: Int) {
    let v: [Float]
    if case .f32(let f) = t.storage { v = f } else { v = t.floats }
    v.withUnsafeBufferPointer { buffer in
      if let base = buffer.baseAddress { (arena + offset).update(from: base, count: buffer.count) }
    }
  }

  /// Runs the program on `inputs` (by input name) and returns outputs and activation-like taps
  /// by name.
  public func run(inputs: [String: Tensor]) throws -> [String: Tensor] {
    try write(inputs: inputs)
    runKernels()
    var out: [String: Tensor] = [:]
    for (name, id) in results {
      let shape = graph[id].type.shape.map { $0.staticValue ?? 0 }
      let values = UnsafeBufferPointer(start: arena + offsets[id.index], count: Self.elementCount(graph[id].type))
      out[name] = Tensor(shape: shape, f32: Array(values))
    }
    return out
  }

  /// Runs the program on `inputs` and copies each output and tap into `outputs[name]`,
  /// reusing the array already there when it has the size and no other owner: a loop that
  /// lets go of the previous run's values allocates nothing (a training step's gradients are
  /// the size of the model; fresh arrays every step cost page faults, clearing and unmapping).
  public func run(inputs: [String: Tensor], into outputs: inout [String: [Float]]) throws {
    try write(inputs: inputs)
    runKernels()
    for (name, id) in results {
      let source = UnsafeBufferPointer(start: arena + offsets[id.index], count: Self.elementCount(graph[id].type))
      var values = outputs.removeValue(forKey: name) ?? []
      if values.count == source.count {
        values.withUnsafeMutableBufferPointer { v in _ = v.update(fromContentsOf: source) }
      } else {
        values = Array(source)
      }
      outputs[name] = values
    }
  }

  /// `run(inputs:into:)` that also hands each output and tap to `ready` as soon as the kernel
  /// that completes it has run, as a view of the arena valid during the call (no later kernel
  /// writes it), in the order they complete: a training step's gradients reach `ready` during
  /// the backward pass, so a data-parallel run can start summing them across processes.
  public func run(
    inputs: [String: Tensor], into outputs: inout [String: [Float]],
    ready: (_ name: String, _ values: UnsafeBufferPointer<Float>) -> Void
  ) throws {
    try write(inputs: inputs)
    let order = readinessOrder
    var next = 0
    func announce(upTo done: Int) {
      while next < order.count, readyAfter[order[next]] <= done {
        let (name, id) = results[order[next]]
        ready(name, UnsafeBufferPointer(start: arena + offsets[id.index], count: Self.elementCount(graph[id].type)))
        next += 1
      }
    }
    announce(upTo: 0)
    for (i, k) in kernels.enumerated() {
      k.run(arena)
      announce(upTo: i + 1)
    }
    for (name, id) in results {
      let source = UnsafeBufferPointer(start: arena + offsets[id.index], count: Self.elementCount(graph[id].type))
      var values = outputs.removeValue(forKey: name) ?? []
      if values.count == source.count {
        values.withUnsafeMutableBufferPointer { v in _ = v.update(fromContentsOf: source) }
      } else {
        values = Array(source)
      }
      outputs[name] = values
    }
  }

  /// Indices into `results` in the order `run(inputs:into:ready:)` announces them.
  var readinessOrder: [Int] { results.indices.sorted { (readyAfter[$0], $0) < (readyAfter[$1], $1) } }

  /// The names of the outputs and taps in the order the program completes them (the order
  /// `run(inputs:into:ready:)` hands them over in): fixed by the graph and the thread count.
  public var completionOrder: [String] { readinessOrder.map { results[$0].name } }

  /// An input handed over as memory the caller owns: row-major elements of `dtype`.
  public struct RawInput {
    public var dtype: DType
    public var shape: [Int]
    public var data: UnsafeRawPointer

    public init(dtype: DType, shape: [Int], data: UnsafeRawPointer) {
      self.dtype = dtype
      self.shape = shape
      self.data = data
    }
  }

  /// Runs the program on inputs read straight from the caller's memory (f32 copied once into
  /// the arena; other types converted on the way), then hands each output and tap to `body`
  /// as a view of the arena, valid only during the call. Checks names, shapes and types as
  /// `run(inputs:)` does.
  public func run(
    rawInputs: [String: RawInput],
    results body: (_ name: String, _ shape: [Int], _ values: UnsafeBufferPointer<Float>) throws -> Void
  ) throws {
    for id in graph.inputs {
      let v = graph[id]
      guard let t = rawInputs[v.name] else { throw InputError(description: "input '\(v.name)' is missing") }
      let shape = v.type.shape.map { $0.staticValue ?? 0 }
      guard t.shape == shape else {
        throw InputError(description: "input '\(v.name)' has shape \(t.shape) but the program expects \(shape)")
      }
      guard t.dtype == v.type.dtype || (t.dtype.isFloatingPoint && v.type.dtype.isFloatingPoint) else {
        throw InputError(
          description: "input '\(v.name)' is \(t.dtype.rawValue) but the program expects \(v.type.dtype.rawValue)")
      }
      let n = Self.elementCount(v.type), dst = arena + offsets[id.index]
      switch t.dtype {
      case .f32: dst.update(from: t.data.assumingMemoryBound(to: Float.self), count: n)
      case .f64:
        let src = t.data.assumingMemoryBound(to: Double.self)
        for i in 0..<n { dst[i] = Float(src[i]) }
      case .i64:
        let src = t.data.assumingMemoryBound(to: Int64.self)
        for i in 0..<n { dst[i] = Float(src[i]) }
      case .bool:
        let src = t.data.assumingMemoryBound(to: UInt8.self)  // any non-zero byte is true
        for i in 0..<n { dst[i] = src[i] != 0 ? 1 : 0 }
      }
    }
    runKernels()
    for (name, id) in results {
      let shape = graph[id].type.shape.map { $0.staticValue ?? 0 }
      try body(
        name, shape, UnsafeBufferPointer(start: arena + offsets[id.index], count: Self.elementCount(graph[id].type)))
    }
  }

  /// Names and shapes of what `run` returns: outputs, then activation-like taps.
  public var resultShapes: [(name: String, shape: [Int])] {
    results.map { ($0.name, graph[$0.value].type.shape.map { $0.staticValue ?? 0 }) }
  }

  /// Elements of a value of a bound type.
  static func elementCount(_ t: TensorType) -> Int { BufferAssignment.elementCount(t) }

  /// Checks `inputs` against the program's inputs (name, shape, dtype) and writes them.
  func write(inputs: [String: Tensor]) throws {
    for id in graph.inputs {
      let v = graph[id]
      guard let t = inputs[v.name] else { throw InputError(description: "input '\(v.name)' is missing") }
      let shape = v.type.shape.map { $0.staticValue ?? 0 }
      guard t.shape == shape else {
        throw InputError(description: "input '\(v.name)' has shape \(t.shape) but the program expects \(shape)")
      }
      guard t.dtype == v.type.dtype || (t.dtype.isFloatingPoint && v.type.dtype.isFloatingPoint) else {
        throw InputError(
          description: "input '\(v.name)' is \(t.dtype.rawValue) but the program expects \(v.type.dtype.rawValue)")
      }
      write(t, at: offsets[id.index])
    }
  }

  /// Runs every kernel once on whatever the arena holds (for benchmarks).
  public func runKernels() {
    for k in kernels { k.run(arena) }
  }

  /// Writes inputs without running (for benchmarks that time `runKernels` alone).
  public func load(inputs: [String: Tensor]) throws {
    for id in graph.inputs {
      guard let t = inputs[graph[id].name] else {
        throw InputError(description: "input '\(graph[id].name)' is missing")
      }
      write(t, at: offsets[id.index])
    }
  }

  /// Kernel labels in program order.
  public var program: [String] { kernels.map(\.label) }
}

extension Executable.InputError: KindedError {
  public var errorKind: ErrorKind { .input }
}
