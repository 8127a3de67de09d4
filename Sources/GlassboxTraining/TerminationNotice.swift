import Foundation

/// What a process of a data-parallel run says when its launcher ends it, and the guard that
/// lets a checkpoint being written finish first.
///
/// When one process of an `mpirun` (or `srun`) job dies or fails, the launcher ends the others
/// with SIGTERM (then SIGKILL); they are waiting inside an all-reduce for the one that is
/// gone. Each says which rank it is and why it stops; rank 0, the one that writes, names the
/// last checkpoint, which is whole: files are replaced by rename, and a SIGTERM that comes while
/// a checkpoint is being written is held until the write is done.
enum TerminationNotice {
  /// The message the handler writes; fixed before any signal can come (a handler may only
  /// write bytes that are already there).
  nonisolated(unsafe) static let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: 1024)
  nonisolated(unsafe) static var length = 0
  nonisolated(unsafe) static var writing: Int32 = 0
  nonisolated(unsafe) static var held: Int32 = 0
  nonisolated(unsafe) static var installed = false
  nonisolated(unsafe) static var context = (rank: 0, size: 1, output: "")

  /// Installs the SIGTERM handler for rank `rank` of `size`, writing checkpoints to `output`
  /// (`epochsDone` of them so far).
  static func install(rank: Int, size: Int, output: String, epochsDone: Int) {
    context = (rank, size, output)
    compose(epochsDone: epochsDone)
    guard !installed else { return }
    installed = true
    signal(SIGTERM) { sig in
      if TerminationNotice.writing != 0 {
        TerminationNotice.held = sig
        return
      }
      TerminationNotice.say(sig)
    }
  }

  /// Runs `body` (a checkpoint's writes) with SIGTERM held until it returns; then the message
  /// names the checkpoint it wrote.
  static func whileWriting<T>(epochsDone: Int, _ body: () throws -> T) rethrows -> T {
    guard installed else { return try body() }
    writing = 1
    let result: T
    do {
      result = try body()
    } catch {
      writing = 0
      if held != 0 { say(held) }
      throw error
    }
    compose(epochsDone: epochsDone)
    writing = 0
    if held != 0 { say(held) }
    return result
  }

  static func compose(epochsDone: Int) {
    let (rank, size, output) = context
    var text = "glassbox train (rank \(rank) of \(size)): stopped: another process of this run ended"
    if rank == 0 {
      text +=
        epochsDone > 0
        ? ". The last checkpoint (epoch \(epochsDone)) is whole in \(output); continue with --resume"
        : ". No checkpoint was written yet"
    }
    let bytes = Array((text + "\n").utf8.prefix(1023))
    for (i, b) in bytes.enumerated() { buffer[i] = CChar(bitPattern: b) }
    length = bytes.count
  }

  /// Writes the message and ends the process as the signal would (status 128 + signal).
  static func say(_ sig: Int32) {
    _ = write(2, buffer, length)
    _exit(128 + sig)
  }
}
