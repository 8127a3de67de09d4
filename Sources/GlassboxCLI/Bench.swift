import ArgumentParser
import Foundation
import Glassbox
import GlassboxFormat
import GlassboxIR
import GlassboxPasses
import GlassboxReference
import GlassboxRuntime
import GlassboxTraining

/// `glassbox bench SPEC`: time one forward pass of the compiled program, or with `--train`
/// one training step (forward and backward, then SGD-with-momentum updates of every parameter).
struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Time forward passes: median, min and max per run after warm-up, and peak memory.")

  @OptionGroup var options: SpecOptions

  @Option(help: "Cores to use (OpenBLAS's threads and Glassbox's own).")
  var threads = 2

  @Option(help: "Timed runs after warm-up.")
  var iterations = 50

  @Option(help: "Untimed runs first: at least this many, for at least --warmup-ms.")
  var warmup = 5

  /// A VM's cores can take a hundred milliseconds of load to reach full speed, so a short
  /// benchmark of a sub-millisecond program would measure the ramp, not the program.
  @Option(name: .customLong("warmup-ms"), help: "Keep warming up until this many milliseconds have passed.")
  var warmupMilliseconds = 250.0

  @Flag(help: "Print one JSON object.")
  var json = false

  @Flag(help: "Also print each kernel's mean time.")
  var profile = false

  @Flag(help: "Unroll LSTMs into per-step fused cells (the form training differentiates).")
  var unrollLSTM = false

  @Option(
    help: ArgumentHelp(
      "Time the forward together with this tap (lowered into outputs, its backward slice included).",
      valueName: "NAME"))
  var tap: String?

  @Option(name: .customLong("class"), help: "The class a class-seeded tap explains (default: the predicted one).")
  var classIndex: Int?

  @Flag(help: "Time one training step (forward, backward, SGD-with-momentum update) instead of a forward pass.")
  var train = false

  @Option(help: ArgumentHelp("--train under MPI: megabytes of gradients per all-reduce bucket.", valueName: "MB"))
  var bucketMb = 8.0

  @Flag(help: "--train under MPI: sum the gradients after the backward pass instead of during it.")
  var noOverlap = false

  @Option(
    help: ArgumentHelp(
      "--train under MPI: microseconds between a progress thread's MPI calls (0: none).",
      valueName: "US"))
  var progressUs = 100

  @Flag(help: "--train under MPI: batch norms normalise with the global batch's statistics (SyncBatchNorm).")
  var syncBatchNorm = false

  @Option(
    help: ArgumentHelp(
      "--train under MPI: each timed step's timeline as JSON lines (rank 0).",
      valueName: "FILE.jsonl"))
  var trace: String?

  func run() throws {
    guard iterations >= 1, warmup >= 0, threads >= 1, warmupMilliseconds >= 0 else {
      throw ValidationError("--iterations and --threads must be at least 1, --warmup and --warmup-ms at least 0")
    }
    let compileStart = DispatchTime.now().uptimeNanoseconds
    // Under mpirun, --train times a data-parallel step: --bind B=… is the global batch, of
    // which each process compiles and runs its share.
    var parallel: DataParallel?
    var options = options
    if train, let launched = Communicator.launched() {
      let communicator = try Communicator.world()
      guard communicator.size == launched.count else {
        throw ValidationError("\(launched.source) but Open MPI sees \(communicator.size) processes")
      }
      guard let global = options.bindingMap["B"], global % communicator.size == 0 else {
        throw ValidationError("under MPI, --bind B=… gives the global batch, a multiple of \(communicator.size)")
      }
      let local = global / communicator.size
      options.bindings = options.bindings.map { b in b.name == "B" ? Binding(argument: "B=\(local)") ?? b : b }
      parallel = DataParallel(
        communicator: communicator,
        settings: DataParallelSettings(
          bucketBytes: Int(bucketMb * 1_048_576), overlap: !noOverlap, syncBatchNorm: syncBatchNorm,
          progressMicroseconds: Swift.max(progressUs, 0)))
    }
    defer { parallel?.communicator.finalize() }
    let compiled = try loadGraph(options, checkingWeights: true, bindingModels: true)
    guard let graph = compiled.result.graph else {
      printDiagnostics(compiled.result.diagnostics, source: compiled.source)
      throw ExitCode(1)
    }
    let unbound = graph.symbols.filter { s in
      graph.values.contains { v in v.type.shape.contains { $0.symbols.contains(s) } }
    }
    guard unbound.isEmpty else {
      throw ValidationError(
        "bind every symbol to benchmark: --bind \(unbound.map { "\($0)=…" }.joined(separator: " --bind "))")
    }
    if train {
      try benchTrainingStep(graph, compileStart: compileStart, parallel: parallel)
      return
    }
    // A plain forward: taps are compiled only when asked for, so they pin nothing here.
    var forward = graph
    forward.taps = []
    // A model (or an ONNX model) runs with its own weights; a spec with deterministic ones
    // (timing does not depend on their values).
    let module = Module(graph: forward, weights: compiled.weights ?? DeterministicTensors.parameters(of: graph))
    if let tap {
      guard graph.taps.contains(where: { $0.name == tap }) else {
        throw ValidationError(
          "\(graph.name) has no tap '\(tap)' (taps: \(graph.taps.map(\.name).joined(separator: ", ")))")
      }
    }
    // Taps that run copies of their input graft the graph bound at a multiple of its batch.
    let symbolic = compiled.model?.graph ?? compiled.source.flatMap { Spec.compile($0).graph }
    let rebatch = symbolic.map { LowerTaps.rebatcher(unbound: $0, bindings: options.bindingMap) }
    let program = try Model.compileInference(
      tap == nil ? forward : graph, parameters: module.weights,
      taps: tap.map { .fixedClass($0, classIndex: classIndex) } ?? .none,
      threads: threads, unrollLSTM: unrollLSTM, rebatch: rebatch
    ).executable
    let compileMs = Double(DispatchTime.now().uptimeNanoseconds - compileStart) / 1e6
    var inputs: [String: Tensor] = [:]
    for id in graph.inputs {
      let shape = graph[id].type.shape.map { $0.staticValue ?? 1 }
      inputs[graph[id].name] = DeterministicTensors.tensor("input:" + graph[id].name, shape: shape)
    }
    try program.load(inputs: inputs)
    warmUp { program.runKernels() }
    var samples: [Double] = []
    samples.reserveCapacity(iterations)
    for _ in 0..<iterations {
      let start = DispatchTime.now().uptimeNanoseconds
      program.runKernels()
      samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
    }
    if profile {
      for (label, ms) in program.profile(runs: iterations) where ms >= 0.001 {
        print(String(format: "%10.3f ms  %@", ms, label))
      }
      printGEMMEfficiency(program.gemmEfficiency(runs: iterations))
    }
    samples.sort()
    let median =
      samples.count % 2 == 1
      ? samples[samples.count / 2]
      : (samples[samples.count / 2 - 1] + samples[samples.count / 2]) / 2
    let peak = peakResidentBytes()
    if json {
      print(
        "{\"medianMs\":\(median),\"minMs\":\(samples[0]),\"maxMs\":\(samples[samples.count - 1]),\"peakRSSBytes\":\(peak),\"threads\":\(threads),\"iterations\":\(iterations),\"compileMs\":\(compileMs),\"kernels\":\(program.program.count),\"tap\":\(tap.map { "\"\($0)\"" } ?? "null")}"
      )
    } else {
      print(
        String(
          format:
            "%@: median %.3f ms, min %.3f ms, max %.3f ms over %d runs (%d threads); peak RSS %.1f MiB; arena %.1f MiB (%.1f MiB unshared); compiled in %.0f ms to %d kernels",
          graph.name + (tap.map { " + tap \($0)" } ?? ""), median, samples[0], samples[samples.count - 1], iterations,
          threads,
          Double(peak) / 1_048_576, Double(program.arenaCount * 4) / 1_048_576,
          Double(program.unsharedCount * 4) / 1_048_576, compileMs, program.program.count))
    }
  }
}

extension Bench {
  /// Times `Trainer.step` on one fixed batch of deterministic examples: the training program
  /// (forward and backward), reading the gradients, and the optimizer's updates.
  func benchTrainingStep(_ graph: Graph, compileStart: UInt64, parallel: DataParallel? = nil) throws {
    guard graph.inputs.count == 1, let input = graph.inputs.first, let logits = graph.outputs.first,
      let classes = graph.labelCount
    else {
      throw ValidationError("--train needs a one-input graph whose first output is [B, classes]")
    }
    var model = graph
    model.taps = []
    let shape = graph[input].type.shape.map { $0.staticValue ?? 1 }
    let batchSize = shape[0], perExample = Array(shape.dropFirst())
    let weights = DeterministicTensors.parameters(of: model)
    let step = try TrainingStepGraph.make(from: model, logits: logits.name)
    let backend = try ProgramBackend(
      step: step, model: model, bindings: [:], batchSize: batchSize, weights: weights,
      threads: threads)
    // One batch, as a data loader hands it over, and a data set of one example for the
    // trainer's checks (not the batch again: the resident memory is the step's).
    let batch = Batch(
      inputs: DeterministicTensors.tensor("input:" + graph[input].name, shape: shape),
      labels: Tensor(shape: [batchSize], storage: .i64((0..<batchSize).map { Int64($0 % classes) })),
      count: batchSize)
    let n = perExample.reduce(1, *)
    let examples = InMemoryExamples(
      root: "bench", classes: (0..<classes).map { "c\($0)" }, exampleShape: perExample,
      values: [Array(batch.inputs.floats[..<n])], labels: [0])
    let contents = ModelContents(
      graph: model, weights: model.parameters.map { weights[$0.name] ?? Tensor(zeros: $0.type.dtype, shape: []) })
    let processes = parallel?.size ?? 1
    let trainer = try Trainer(
      model: contents, backend: backend, data: TrainingData(train: examples),
      settings: TrainingSettings(
        epochs: 1, batchSize: batchSize * processes,
        learningRate: 1e-3,
        optimizer: OptimizerSettings(kind: .sgd, momentum: 0.9)),
      parallel: parallel)
    let compileMs = Double(DispatchTime.now().uptimeNanoseconds - compileStart) / 1e6
    var steps = 0
    if let parallel {
      // Every process runs as many warm-up steps as rank 0 does (each step is a collective).
      let start = DispatchTime.now().uptimeNanoseconds
      var more = [1.0]
      while more[0] > 0 {
        try trainer.step(batch, epoch: 0, step: steps, learningRate: 1e-3)
        steps += 1
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        more = [parallel.rank == 0 && (steps < warmup || elapsed < warmupMilliseconds) ? 1 : 0]
        parallel.communicator.sum(&more)
      }
      (parallel.communicationSeconds, parallel.waitSeconds, parallel.batchNormSeconds) = (0, 0, 0)
    } else {
      try warmUp {
        try trainer.step(batch, epoch: 0, step: steps, learningRate: 1e-3)
        steps += 1
      }
    }
    var samples: [Double] = [], timelines: [String] = []
    for _ in 0..<iterations {
      let start = DispatchTime.now().uptimeNanoseconds
      try trainer.step(batch, epoch: 0, step: steps, learningRate: 1e-3)
      steps += 1
      samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
      if let t = parallel?.lastStep {
        let buckets = zip(t.bucketBytes, t.bucketComplete).map { "{\"bytes\":\($0),\"completeMs\":\($1)}" }
        let gradients = t.gradientComplete.map { "[\($0.milliseconds),\($0.bytes)]" }
        timelines.append(
          "{\"stepMs\":\(samples[samples.count - 1]),\"backwardEndMs\":\(t.backwardEnd),"
            + "\"waitEndMs\":\(t.waitEnd),\"gradients\":[\(gradients.joined(separator: ","))],"
            + "\"buckets\":[\(buckets.joined(separator: ","))]}")
      }
    }
    // The all-reduce alone, every process starting together: its time without the waiting
    // for a slower process that a step's share includes.
    var alone: Double?
    if let parallel, let bytes = parallel.lastStep?.bucketBytes.reduce(0, +) {
      var gradients = [Float](repeating: 1, count: bytes / 4)
      var times: [Double] = []
      for _ in 0..<10 {
        parallel.communicator.barrier()
        let start = DispatchTime.now().uptimeNanoseconds
        gradients.withUnsafeMutableBufferPointer { parallel.communicator.sum($0.baseAddress!, count: $0.count) }
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
      }
      alone = times.sorted()[times.count / 2]
    }
    if let trace, parallel?.rank ?? 0 == 0 {
      try writeText(timelines.joined(separator: "\n") + "\n", to: trace)
    }
    // Rank 0 speaks for the run; the all-reduce's share is of the timed steps.
    let allReduce = parallel.map { p in
      (
        1000 * p.communicationSeconds / Double(iterations), 1000 * p.waitSeconds / Double(iterations),
        1000 * p.batchNormSeconds / Double(iterations)
      )
    }
    guard parallel?.rank ?? 0 == 0 else { return }
    if profile {
      // The training program's kernels (forward and backward), by kind, then the slowest.
      let kernels = backend.profile(runs: iterations)
      var byKind: [String: (count: Int, ms: Double)] = [:]
      for (label, ms) in kernels {
        let kind = String(label.split(separator: " ").first ?? "")
        byKind[kind, default: (0, 0)].count += 1
        byKind[kind, default: (0, 0)].ms += ms
      }
      for (kind, v) in byKind.sorted(by: { $0.value.ms > $1.value.ms }) {
        print(String(format: "%10.3f ms  %5d × %@", v.ms, v.count, kind))
      }
      for (label, ms) in kernels.sorted(by: { $0.milliseconds > $1.milliseconds }).prefix(10) {
        print(String(format: "%10.3f ms  %@", ms, label))
      }
      printGEMMEfficiency(backend.gemmEfficiency(runs: iterations))
    }
    samples.sort()
    let median =
      samples.count % 2 == 1
      ? samples[samples.count / 2]
      : (samples[samples.count / 2 - 1] + samples[samples.count / 2]) / 2
    let peak = peakResidentBytes()
    if json {
      let mpi =
        allReduce.map {
          ",\"processes\":\(processes),\"allReduceMs\":\($0.0),\"allReduceWaitMs\":\($0.1),"
            + "\"batchNormSumMs\":\($0.2),\"allReduceAloneMs\":\(alone ?? 0)"
        } ?? ""
      print(
        "{\"medianMs\":\(median),\"minMs\":\(samples[0]),\"maxMs\":\(samples[samples.count - 1]),"
          + "\"peakRSSBytes\":\(peak),\"threads\":\(threads),\"iterations\":\(iterations),\"compileMs\":\(compileMs),"
          + "\"train\":true\(mpi)}")
    } else {
      print(
        String(
          format:
            "%@ training step: median %.3f ms, min %.3f ms, max %.3f ms over %d runs (%d threads); peak RSS %.1f MiB; arena %.1f MiB; compiled in %.0f ms",
          graph.name, median, samples[0], samples[samples.count - 1], iterations, threads,
          Double(peak) / 1_048_576, Double(backend.arenaBytes) / 1_048_576, compileMs))
      if let (total, wait, batchNorm) = allReduce {
        let bucketBytes = parallel?.lastStep?.bucketBytes ?? []
        print(
          String(
            format: "%d processes × B=%d: all-reduce %.3f ms per step (%.1f%% of the mean step), %.3f ms of "
              + "it waiting after the backward pass; %.1f MiB of gradients in %d buckets",
            processes, batchSize, total, 100 * total / (samples.reduce(0, +) / Double(samples.count)), wait,
            Double(bucketBytes.reduce(0, +)) / 1_048_576, bucketBytes.count))
        if syncBatchNorm {
          print(
            String(
              format: "of the all-reduce, the batch norms' sums (--sync-batch-norm): %.3f ms per step",
              batchNorm))
        }
        print(
          String(
            format: "the same all-reduce alone (one call, every process starting together): median %.3f ms",
            alone ?? 0))
      }
    }
  }
}

extension Bench {
  /// Runs `body` untimed `warmup` times, and on until `warmupMilliseconds` have passed.
  func warmUp(_ body: () throws -> Void) rethrows {
    let start = DispatchTime.now().uptimeNanoseconds
    var runs = 0
    while runs < warmup || Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 < warmupMilliseconds {
      try body()
      runs += 1
    }
  }

  /// The `--profile` table of GEMM-bound kernels against OpenBLAS SGEMM alone, and their total.
  func printGEMMEfficiency(
    _ gemm: [(label: String, flops: Double, executedFlops: Double, kernelMs: Double, sgemmMs: Double)]
  ) {
    guard !gemm.isEmpty else { return }
    print("GEMM-bound kernels against OpenBLAS SGEMM alone on the same shapes (effective: the GEMM's work;")
    print("executed: the kernel's own multiply-adds, fewer for Winograd, more for padded lanes):")
    for r in gemm {
      print(
        String(
          format: "%8.1f GFLOP/s effective, %6.1f executed (SGEMM alone %6.1f): %5.1f%%  %@",
          r.flops / r.kernelMs / 1e6, r.executedFlops / r.kernelMs / 1e6, r.flops / r.sgemmMs / 1e6,
          100 * r.sgemmMs / r.kernelMs, r.label))
    }
    let kernelMs = gemm.reduce(0) { $0 + $1.kernelMs }, sgemmMs = gemm.reduce(0) { $0 + $1.sgemmMs }
    let flops = gemm.reduce(0) { $0 + $1.flops }
    print(
      String(
        format: "all GEMM-bound kernels: %.1f%% of SGEMM's rate (%.3f ms against %.3f ms), %.1f GFLOP/s effective",
        100 * sgemmMs / kernelMs, kernelMs, sgemmMs, flops / kernelMs / 1e6))
  }
}

/// Peak resident set size of this process, in bytes.
func peakResidentBytes() -> Int {
  var usage = rusage()
  getrusage(RUSAGE_SELF.rawValue, &usage)
  return usage.ru_maxrss * 1024
}
