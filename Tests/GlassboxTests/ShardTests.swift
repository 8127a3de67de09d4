import Foundation
import Glassbox
import Testing

/// Shards of a corpus job: which shard a process is (option or environment), and which
/// positions of a split each shard takes.
struct ShardTests {
  @Test func parsesAndRefusesShardSpecs() throws {
    #expect(try Shard.parse("2/4") == Shard(index: 2, count: 4))
    #expect(try Shard.parse("0/1").count == 1)
    for (text, message) in [
      ("4/4", "shard 4/4 is out of range: shards count from 0, so 4 shards are 0/4 … 3/4"),
      ("-1/4", "shard -1/4 is out of range"), ("1/0", "a job has at least 1 shard, found 0"),
      ("1", "expected I/N"), ("a/b", "expected I/N"), ("1/2/3", "expected I/N"),
    ] {
      let error = #expect(throws: GlassboxError.self) { try Shard.parse(text) }
      #expect(error?.description.contains(message) == true, "\(text): \(error?.description ?? "")")
    }
  }

  /// Slurm numbers a job array's tasks from its `--array` start, in its step; the shard index
  /// counts from 0 whatever the offset.
  @Test func slurmArraysAndOpenMPINameShards() throws {
    func shard(_ env: [String: String]) throws -> Shard? { try Shard.fromEnvironment(env)?.shard }
    #expect(try shard([:]) == nil)
    let offset = [
      "SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_MAX": "8",
      "SLURM_ARRAY_TASK_COUNT": "4",
    ]
    #expect(try shard(offset) == Shard(index: 2, count: 4))
    #expect(try shard(["SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "3"]) == Shard(index: 0, count: 3))
    let stepped = [
      "SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "14",
      "SLURM_ARRAY_TASK_STEP": "2", "SLURM_ARRAY_TASK_COUNT": "8",
    ]
    #expect(try shard(stepped) == Shard(index: 3, count: 8))
    #expect(try shard(["OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"]) == Shard(index: 1, count: 2))

    // --array=1,3,7: ids that no START-END:STEP range maps onto 0..<3.
    let list = [
      "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "7",
      "SLURM_ARRAY_TASK_COUNT": "3",
    ]
    let listError = #expect(throws: GlassboxError.self) { try shard(list) }
    #expect(listError?.description.contains("do not name a shard: the array must be one range") == true)
    let noCount = #expect(throws: GlassboxError.self) { try shard(["SLURM_ARRAY_TASK_ID": "3"]) }
    #expect(noCount?.description.contains("SLURM_ARRAY_TASK_COUNT is not") == true)
    let both = #expect(throws: GlassboxError.self) {
      try shard(offset.merging(["OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2"]) { a, _ in a })
    }
    #expect(both?.description.contains("both a Slurm job array") == true)
  }

  /// `--shard` wins only where it agrees with the environment; `all` ignores it.
  @Test func optionAndEnvironmentMustAgree() throws {
    let env = ["SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "4"]
    #expect(try Shard.resolve(option: nil, environment: env)?.shard == Shard(index: 2, count: 4))
    #expect(try Shard.resolve(option: "2/4", environment: env)?.shard == Shard(index: 2, count: 4))
    #expect(try Shard.resolve(option: "all", environment: env) == nil)
    #expect(try Shard.resolve(option: nil, environment: [:]) == nil)
    #expect(try Shard.resolve(option: "1/3", environment: [:])?.shard == Shard(index: 1, count: 3))
    let error = #expect(throws: GlassboxError.self) { try Shard.resolve(option: "1/4", environment: env) }
    #expect(error?.description.contains("--shard 1/4 disagrees with the environment") == true)
    #expect(error?.description.contains("shard 2/4") == true)
  }

  /// Every position goes to exactly one shard, whole blocks at a time, and shard sizes differ
  /// by at most one block.
  @Test(arguments: [(0, 1, 1), (1, 3, 1), (10, 3, 1), (10, 4, 3), (23, 5, 4), (7, 9, 2), (64, 8, 8)])
  func shardsPartitionTheSplitInBlocks(total: Int, count: Int, block: Int) throws {
    var owner = [Int](repeating: -1, count: total)
    var sizes: [Int] = []
    for i in 0..<count {
      let p = try Shard(index: i, count: count).positions(of: total, block: block)
      #expect(p == p.sorted())
      sizes.append(p.count)
      for x in p {
        #expect(owner[x] == -1, "position \(x) taken twice")
        owner[x] = i
      }
    }
    #expect(!owner.contains(-1))
    // Each block belongs to one shard: block k to shard k mod N.
    for (x, o) in owner.enumerated() { #expect(o == (x / block) % count) }
    #expect((sizes.max() ?? 0) - (sizes.min() ?? 0) <= block)
  }
}
