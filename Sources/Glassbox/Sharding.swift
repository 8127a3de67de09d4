import Foundation
import GlassboxFormat

/// One of `count` parts of a corpus job (explaining, evaluating or embedding a split), so that
/// a Slurm job array or `mpirun` spreads the split over processes and `ShardSet` puts the
/// parts back together in the unsharded order.
///
/// `index` counts from 0, like MPI ranks: the shards of a job are `0/N … (N−1)/N`.
public struct Shard: Sendable, Equatable, Hashable, CustomStringConvertible {
  public let index: Int
  public let count: Int

  /// Shard `index` of `count`; `0 ≤ index < count`.
  public init(index: Int, count: Int) throws(GlassboxError) {
    guard count >= 1 else { throw GlassboxError(.input, "a job has at least 1 shard, found \(count)") }
    guard index >= 0, index < count else {
      throw GlassboxError(
        .input,
        "shard \(index)/\(count) is out of range: shards count from 0, so \(count) shards "
          + "are 0/\(count) … \(count - 1)/\(count)")
    }
    self.index = index
    self.count = count
  }

  /// `I/N`.
  public var description: String { "\(index)/\(count)" }

  /// `I/N` as written on a command line.
  public static func parse(_ text: String) throws(GlassboxError) -> Shard {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else {
      throw GlassboxError(.input, "--shard \(text): expected I/N (shard I of N, counting from 0), e.g. 0/4")
    }
    do {
      return try Shard(index: i, count: n)
    } catch {
      throw GlassboxError(.input, "--shard \(text): \(error.message)")
    }
  }

  /// The shard the environment names, and the variables it came from: a Slurm job array
  /// (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN`, over `SLURM_ARRAY_TASK_STEP`, of
  /// `SLURM_ARRAY_TASK_COUNT`: `--array=5-8` is shards 0/4 … 3/4) or Open MPI's
  /// `OMPI_COMM_WORLD_RANK` of `OMPI_COMM_WORLD_SIZE`. Nil when neither is set; an error when
  /// both are, or when the values do not make a shard.
  public static func fromEnvironment(
    _ environment: [String: String]
  ) throws(GlassboxError)
    -> (shard: Shard, source: String)?
  {
    func number(_ name: String) throws(GlassboxError) -> Int? {
      guard let text = environment[name], !text.isEmpty else { return nil }
      guard let n = Int(text.trimmingCharacters(in: .whitespaces)) else {
        throw GlassboxError(.input, "\(name)=\(text) is not a number")
      }
      return n
    }
    var slurm: (Shard, String)?
    if let id = try number("SLURM_ARRAY_TASK_ID") {
      guard let count = try number("SLURM_ARRAY_TASK_COUNT") else {
        throw GlassboxError(
          .input,
          "SLURM_ARRAY_TASK_ID=\(id) is set but SLURM_ARRAY_TASK_COUNT is not; "
            + "give --shard I/N")
      }
      let minimum = try number("SLURM_ARRAY_TASK_MIN") ?? 0, step = try number("SLURM_ARRAY_TASK_STEP") ?? 1
      let maximum = try number("SLURM_ARRAY_TASK_MAX")
      let offset = id - minimum
      let source =
        "SLURM_ARRAY_TASK_ID=\(id), SLURM_ARRAY_TASK_MIN=\(minimum)"
        + (maximum.map { ", SLURM_ARRAY_TASK_MAX=\($0)" } ?? "") + ", SLURM_ARRAY_TASK_COUNT=\(count)"
        + (step != 1 ? ", SLURM_ARRAY_TASK_STEP=\(step)" : "")
      // A list such as --array=1,3,7 has no step that maps its ids onto 0..<count.
      let isRange = maximum.map { $0 - minimum == (count - 1) * step } ?? true
      guard step >= 1, isRange, offset >= 0, offset % step == 0, offset / step < count else {
        throw GlassboxError(
          .input,
          "\(source) do not name a shard: the array must be one range of task ids "
            + "(--array=0-\(max(count - 1, 0)) or any START-END, with an optional :STEP); or give --shard I/N")
      }
      slurm = (try Shard(index: offset / step, count: count), source)
    }
    var mpi: (Shard, String)?
    if let rank = try number("OMPI_COMM_WORLD_RANK") {
      guard let size = try number("OMPI_COMM_WORLD_SIZE") else {
        throw GlassboxError(
          .input,
          "OMPI_COMM_WORLD_RANK=\(rank) is set but OMPI_COMM_WORLD_SIZE is not; "
            + "give --shard I/N")
      }
      let source = "OMPI_COMM_WORLD_RANK=\(rank), OMPI_COMM_WORLD_SIZE=\(size)"
      do {
        mpi = (try Shard(index: rank, count: size), source)
      } catch {
        throw GlassboxError(.input, "\(source) do not name a shard: \(error.message)")
      }
    }
    if let slurm, let mpi {
      throw GlassboxError(
        .input,
        "both a Slurm job array (\(slurm.1)) and Open MPI (\(mpi.1)) name a shard; "
          + "give --shard I/N, or --shard all for the whole split")
    }
    return slurm ?? mpi
  }

  /// The shard a command works on: `option` (`I/N`, or `all` for the whole split whatever the
  /// environment says), else the environment's (`fromEnvironment`), else nil (the whole
  /// split). An option that names another shard than the environment is an error.
  public static func resolve(
    option: String?, environment: [String: String] = ProcessInfo.processInfo.environment
  )
    throws(GlassboxError) -> (shard: Shard, source: String)?
  {
    if option == "all" { return nil }
    let fromEnvironment = try Shard.fromEnvironment(environment)
    guard let option else { return fromEnvironment }
    let shard = try Shard.parse(option)
    if let fromEnvironment, fromEnvironment.shard != shard {
      throw GlassboxError(
        .input,
        "--shard \(shard) disagrees with the environment (\(fromEnvironment.source): shard "
          + "\(fromEnvironment.shard)); drop --shard to take the environment's, or give --shard all for the whole split"
      )
    }
    return (shard, "--shard \(shard)")
  }

  /// The positions of a split of `total` examples (in its unsharded order) that this shard
  /// takes: the split cut into blocks of `block` consecutive positions, dealt to the shards in
  /// turn (block k to shard k mod N). Every position goes to exactly one shard, and shard sizes
  /// differ by at most one block. A block is a batch of the unsharded run, so each batch a
  /// shard runs holds the same examples, padded alike, as the unsharded run's.
  public func positions(of total: Int, block: Int = 1) -> [Int] {
    let block = max(block, 1)
    var out: [Int] = []
    var start = index * block
    while start < total {
      out += start..<min(start + block, total)
      start += count * block
    }
    return out
  }

  /// The folder a shard writes beside the unsharded output `path`: `path` without its
  /// extension (a file's) followed by `.shard-I-of-N`.
  public func folder(for path: String, isFile: Bool) -> String {
    (isFile ? (path as NSString).deletingPathExtension : path) + ".shard-\(index)-of-\(count)"
  }
}
