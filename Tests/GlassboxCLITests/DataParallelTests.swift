import Foundation
@testable import GlassboxCLI
import GlassboxFormat
import GlassboxIR
import Testing

/// `mpirun -np N glassbox train`, as a user runs it (the built binary, Open MPI from
/// tools/setup, shared memory on this machine): bit-identical weights for the same N, the
/// one-process weights within 1e-5 for the same global batch, resuming with the same or
/// another N, a killed process leaving its checkpoint whole, and processes that disagree
/// refused at the start.
struct DataParallelTests {
  static let mpirun = "/usr/bin/mpirun"

  /// Runs `glassbox ARGUMENTS` as `n` processes (or one plain process when `n` is nil).
  static func run(
    _ n: Int?, _ arguments: [String], in dir: URL, extra: [String] = []
  ) throws
    -> ExitStatusTests.Outcome
  {
    guard let n else { return try ShardCommandTests.run(arguments, in: dir) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: mpirun)
    // Loopback only: shared memory between the processes, the launcher on lo; root needs the
    // flag, and two cores the oversubscription.
    process.arguments =
      [
        "--allow-run-as-root", "--oversubscribe", "--mca", "btl", "self,vader",
        "--mca", "oob_tcp_if_include", "lo", "-np", "\(n)", ExitStatusTests.binary,
      ] + arguments + extra
    process.currentDirectoryURL = dir
    var env = ProcessInfo.processInfo.environment
    for key in env.keys where ["OMPI_", "PMIX_", "SLURM_"].contains(where: key.hasPrefix) { env[key] = nil }
    process.environment = env
    let out = dir.appendingPathComponent("mpirun-\(UUID().uuidString).out")
    try #require(FileManager.default.createFile(atPath: out.path, contents: nil))
    defer { try? FileManager.default.removeItem(at: out) }
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = process.standardOutput
    process.standardInput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    let text = try String(contentsOf: out, encoding: .utf8)
    return .init(status: process.terminationStatus, output: text, errors: text)
  }

  @discardableResult
  static func succeed(_ n: Int?, _ arguments: [String], in dir: URL) throws -> ExitStatusTests.Outcome {
    let r = try run(n, arguments, in: dir)
    let command = (n.map { "mpirun -np \($0) " } ?? "") + "glassbox " + arguments.joined(separator: " ")
    try #require(r.status == 0, "\(command): status \(r.status)\n\(r.output)")
    return r
  }

  /// tools/setup (run by make test) installs Open MPI: without it the setup is broken, and
  /// these tests fail rather than skip.
  static func requireMPI() throws {
    try #require(FileManager.default.isExecutableFile(atPath: mpirun), "no \(mpirun): tools/setup installs openmpi-bin")
  }

  /// Every trainable tensor of a model, by name.
  static func weights(_ path: String) throws -> [String: [Float]] {
    let file = try ModelFile.load(path, checkingWeights: true)
    var out: [String: [Float]] = [:]
    for (i, p) in file.graph.parameters.enumerated() where p.role == .trainable {
      out[p.name] = file.weight(ofParameter: i).floats
    }
    return out
  }

  /// The largest over tensors of ‖a − b‖ / ‖b‖.
  static func relativeDistance(_ a: [String: [Float]], _ b: [String: [Float]]) -> Double {
    var worst = 0.0
    for (name, y) in b {
      let x = a[name] ?? []
      let d = zip(x, y).reduce(0.0) { $0 + pow(Double($1.0) - Double($1.1), 2) }.squareRoot()
      let n = y.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
      worst = max(worst, x.count == y.count ? d / max(n, 1e-30) : .infinity)
    }
    return worst
  }

  static func bytes(_ dir: URL, _ name: String) throws -> Data {
    try Data(contentsOf: dir.appendingPathComponent(name))
  }

  /// An LSTM classifier with dropout (the masks are drawn for the global batch and sliced).
  static func prepare(_ dir: URL) throws {
    try TrainCommandTests.writeData(
      dir.path + "/data", classes: 3, shape: [4, 6], band: 2,
      perClass: ["train": 8, "val": 2, "test": 2])
    try TrainCommandTests.tinySpec.write(
      to: dir.appendingPathComponent("tiny.graph"), atomically: true,
      encoding: .utf8)
  }

  static let common = [
    "train", "tiny.graph", "--data", "data", "--batch", "6", "--lr", "0.05", "--optimizer", "sgd",
    "--seed", "3", "--threads", "1",
  ]

  /// Two processes twice give the same file; smaller buckets summed after the backward pass,
  /// or advanced without a progress thread, give it too; one process with the same global
  /// batch of 6 gives weights within 1e-5 (relative, per tensor) after 12 steps, weights that
  /// moved far more than that.
  @Test func twoProcessesAreBitIdenticalAndMatchOneProcess() throws {
    try Self.requireMPI()
    try ModelCommandTests.withTemporaryDirectory { dir in
      try Self.prepare(dir)
      let train = Self.common + ["--epochs", "3"]
      try Self.succeed(2, train + ["-o", "a.model"], in: dir)
      try Self.succeed(2, train + ["-o", "b.model"], in: dir)
      try Self.succeed(2, train + ["-o", "c.model", "--no-overlap", "--bucket-mb", "0.0005"], in: dir)
      try Self.succeed(2, train + ["-o", "d.model", "--progress-us", "0", "--bucket-mb", "0.001"], in: dir)
      try Self.succeed(nil, train + ["-o", "one.model"], in: dir)
      let frozen = Self.common.map { $0 == "0.05" ? "1e-30" : $0 } + ["--epochs", "1", "-o", "start.model"]
      try Self.succeed(nil, frozen, in: dir)
      let a = try Self.bytes(dir, "a.model")
      #expect(a == (try Self.bytes(dir, "b.model")))
      #expect(a == (try Self.bytes(dir, "c.model")))
      #expect(a == (try Self.bytes(dir, "d.model")))
      let parallel = try Self.weights(dir.path + "/a.model"), one = try Self.weights(dir.path + "/one.model")
      let distance = Self.relativeDistance(parallel, one)
      #expect(distance <= 1e-5, "2 processes against 1: \(distance)")
      #expect(Self.relativeDistance(one, try Self.weights(dir.path + "/start.model")) > 1e-2)
    }
  }

  /// A run of 2 processes stopped after an epoch continues with 2 to the uninterrupted run's
  /// bytes, and with 1 to within 1e-5 of them.
  @Test func resumesWithTheSameOrAnotherNumberOfProcesses() throws {
    try Self.requireMPI()
    try ModelCommandTests.withTemporaryDirectory { dir in
      try Self.prepare(dir)
      try Self.succeed(2, Self.common + ["--epochs", "3", "-o", "full.model"], in: dir)
      try Self.succeed(2, Self.common + ["--epochs", "1", "-o", "same.model"], in: dir)
      try Self.succeed(2, Self.common + ["--epochs", "3", "-o", "same.model", "--resume"], in: dir)
      #expect(try Self.bytes(dir, "same.model") == Self.bytes(dir, "full.model"))
      try Self.succeed(2, Self.common + ["--epochs", "1", "-o", "other.model"], in: dir)
      let resumed = try Self.succeed(nil, Self.common + ["--epochs", "3", "-o", "other.model", "--resume"], in: dir)
      #expect(resumed.output.contains("resuming after epoch 1"))
      let distance = Self.relativeDistance(
        try Self.weights(dir.path + "/other.model"),
        try Self.weights(dir.path + "/full.model"))
      #expect(distance <= 1e-5, "resumed with 1 process: \(distance)")
    }
  }

  /// A CNN with two batch norms, the second normalising what the first's ReLU made (so a
  /// gradient reaches the first convolution through both backwards).
  static let batchNormSpec = """
    graph bn(image: f32[B, 3, 6, 6]) -> (logits: f32[B, C]) {
      conv = conv2d(image, out: 4, kernel: 3, padding: 1)
      norm = batch_norm(conv)
      conv2 = conv2d(relu(norm), out: 4, kernel: 3, padding: 1)
      norm2 = batch_norm(conv2)
      pooled = global_avg_pool2d(relu(norm2))
      fc = linear(flatten(pooled), out: C)
      logits = fc
    }
    """

  /// --sync-batch-norm is SyncBatchNorm: 2 processes, each normalising its half of every
  /// global batch of 4 with the whole batch's statistics, give the weights and running
  /// statistics of one process with the whole batch (within 1e-5 relative, per tensor, after
  /// 12 SGD steps), the same bytes run to run and with small buckets. Without it each process
  /// normalises its own half: weights and rank 0's running statistics far off.
  @Test func syncBatchNormTrainsAsOneProcessWithTheWholeBatch() throws {
    try Self.requireMPI()
    try ModelCommandTests.withTemporaryDirectory { dir in
      try TrainCommandTests.writeData(
        dir.path + "/data", classes: 2, shape: [3, 6, 6], band: 3, perClass: ["train": 8])
      try Self.batchNormSpec.write(to: dir.appendingPathComponent("bn.graph"), atomically: true, encoding: .utf8)
      let train = [
        "train", "bn.graph", "--data", "data", "--batch", "4", "--epochs", "3", "--lr", "0.05",
        "--optimizer", "sgd", "--seed", "5", "--threads", "1",
      ]
      try Self.succeed(nil, train + ["-o", "one.model"], in: dir)
      try Self.succeed(2, train + ["-o", "sync.model", "--sync-batch-norm"], in: dir)
      try Self.succeed(2, train + ["-o", "again.model", "--sync-batch-norm"], in: dir)
      // Buckets of a few gradients: sums in flight, advanced by the progress thread, while the
      // batch norms' backwards sum theirs.
      try Self.succeed(2, train + ["-o", "tiny.model", "--sync-batch-norm", "--bucket-mb", "0.0002"], in: dir)
      try Self.succeed(2, train + ["-o", "own.model"], in: dir)
      try Self.succeed(nil, train.map { $0 == "0.05" ? "1e-30" : $0 } + ["-o", "start.model"], in: dir)
      func statistics(_ name: String) throws -> [String: [Float]] {
        let file = try ModelFile.load(dir.path + "/" + name)
        var out: [String: [Float]] = [:]
        for (i, p) in file.graph.parameters.enumerated() where p.name.contains(".running_") {
          out[p.name] = file.weight(ofParameter: i).floats
        }
        return out
      }
      let one = try Self.weights(dir.path + "/one.model"), oneStatistics = try statistics("one.model")
      #expect(one.count == 10 && oneStatistics.count == 4, "\(one.keys.sorted()) \(oneStatistics.keys.sorted())")
      #expect(try Self.bytes(dir, "sync.model") == Self.bytes(dir, "again.model"))
      #expect(try Self.bytes(dir, "sync.model") == Self.bytes(dir, "tiny.model"))
      let weights = Self.relativeDistance(try Self.weights(dir.path + "/sync.model"), one)
      let synced = Self.relativeDistance(try statistics("sync.model"), oneStatistics)
      #expect(weights <= 1e-5, "synced weights against one process: \(weights)")
      #expect(synced <= 1e-5, "synced running statistics against one process: \(synced)")
      // Without it: far off, and training moved the weights far more than 1e-5.
      #expect(Self.relativeDistance(try Self.weights(dir.path + "/own.model"), one) > 1e-2)
      #expect(Self.relativeDistance(try statistics("own.model"), oneStatistics) > 1e-2)
      #expect(Self.relativeDistance(try Self.weights(dir.path + "/start.model"), one) > 1e-2)
    }
  }

  /// Killing rank 1 mid-run ends the job; rank 0 says so and names its last checkpoint, which
  /// loads and resumes.
  @Test func aKilledProcessLeavesTheLastCheckpointWhole() throws {
    try Self.requireMPI()
    try ModelCommandTests.withTemporaryDirectory { dir in
      try Self.prepare(dir)
      let process = Process()
      process.executableURL = URL(fileURLWithPath: Self.mpirun)
      process.arguments =
        [
          "--allow-run-as-root", "--oversubscribe", "--mca", "btl", "self,vader", "--mca",
          "oob_tcp_if_include", "lo", "-np", "2", ExitStatusTests.binary,
        ]
        + Self.common + ["--epochs", "100000", "-o", "k.model"]
      process.currentDirectoryURL = dir
      let log = dir.appendingPathComponent("k.log")
      try #require(FileManager.default.createFile(atPath: log.path, contents: nil))
      process.standardOutput = try FileHandle(forWritingTo: log)
      process.standardError = process.standardOutput
      try process.run()
      defer { if process.isRunning { process.terminate() } }
      // Wait for a checkpoint, then for rank 1.
      let model = dir.appendingPathComponent("k.model").path
      var rank1: Int32?, waited = 0
      while (rank1 == nil || !FileManager.default.fileExists(atPath: model)) && waited < 600 && process.isRunning {
        Thread.sleep(forTimeInterval: 0.05)
        waited += 1
        rank1 = rank1 ?? Self.rank(1, of: process.processIdentifier)
      }
      let victim = try #require(rank1, "no rank 1 among mpirun's children")
      try #require(FileManager.default.fileExists(atPath: model))
      kill(victim, SIGKILL)
      process.waitUntilExit()
      let text = try String(contentsOf: log, encoding: .utf8)
      #expect(process.terminationStatus != 0)
      #expect(
        text.contains(
          "glassbox train (rank 0 of 2): stopped: another process of this run ended. "
            + "The last checkpoint (epoch "), "\(text.suffix(2000))")
      let file = try ModelFile.load(model, checkingWeights: true)
      let epochs = try #require(file.provenance.training?.epochs)
      try Self.succeed(nil, Self.common + ["--epochs", "\(epochs + 1)", "-o", "k.model", "--resume"], in: dir)
      #expect(try ModelFile.load(model).provenance.training?.epochs == epochs + 1)
    }
  }

  /// The process of `mpirun` (pid `parent`) whose environment says it is rank `rank`.
  static func rank(_ rank: Int, of parent: Int32) -> Int32? {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    for entry in entries {
      guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
      else { continue }
      let fields = stat[stat.index(after: close)...].split(separator: " ")
      guard fields.count > 2, Int32(fields[1]) == parent,
        let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ")
      else { continue }
      let variables = environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
      if variables.contains("OMPI_COMM_WORLD_RANK=\(rank)") { return pid }
    }
    return nil
  }

  /// Processes started with different settings or data, or with a batch they cannot split,
  /// are refused before training, rank 0 saying why once; nothing is written.
  @Test func processesThatDisagreeAreRefused() throws {
    try Self.requireMPI()
    try ModelCommandTests.withTemporaryDirectory { dir in
      try Self.prepare(dir)
      try FileManager.default.copyItem(at: dir.appendingPathComponent("data"), to: dir.appendingPathComponent("fewer"))
      try FileManager.default.removeItem(at: dir.appendingPathComponent("fewer/train/class0/0.npy"))
      let train = Self.common + ["--epochs", "1", "-o", "x.model"]
      func mpmd(_ second: [String]) throws -> ExitStatusTests.Outcome {
        try Self.run(1, train, in: dir, extra: [":", "-np", "1", ExitStatusTests.binary] + second)
      }
      let cases: [(ExitStatusTests.Outcome, String)] = [
        (
          try mpmd(train.map { $0 == "0.05" ? "0.01" : $0 }),
          "Error: the 2 processes of this run disagree on the training settings: rank 1 differs from rank 0"
        ),
        (
          try mpmd(train.map { $0 == "data" ? "fewer" : $0 }),
          "Error: the 2 processes of this run disagree on the data: rank 1 differs from rank 0"
        ),
        (
          try Self.run(2, train.map { $0 == "6" ? "5" : $0 }, in: dir),
          "Error: batch 5 does not split evenly over 2 processes: give a multiple of 2"
        ),
        (try mpmd(train.map { $0 == "data" ? "nowhere" : $0 }), "Error: rank 1: nowhere: no such data folder"),
      ]
      for (outcome, message) in cases {
        #expect(outcome.status != 0)
        #expect(outcome.output.components(separatedBy: message).count == 2, "\(outcome.output)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("x.model").path))
      }
    }
  }

  /// Without Open MPI's library, a process started as one of several names the Debian
  /// packages and tools/setup.
  @Test func aMissingLibraryNamesThePackage() throws {
    try ModelCommandTests.withTemporaryDirectory { dir in
      try Self.prepare(dir)
      let r = try ShardCommandTests.run(
        Self.common + ["--epochs", "1", "-o", "x.model"], in: dir,
        environment: [
          "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0",
          "GLASSBOX_MPI_LIBRARY": "/nonexistent/libmpi.so.40",
        ])
      #expect(r.status == 1)
      #expect(r.errors.contains("cannot load Open MPI's /nonexistent/libmpi.so.40"), "\(r.errors)")
      #expect(r.errors.contains("install libopenmpi-dev and openmpi-bin (tools/setup)"), "\(r.errors)")
    }
  }
}
