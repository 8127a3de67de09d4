import Foundation

/// Progress of a long job over a known number of items (clips, examples, steps), for a person
/// watching or for a log: on a terminal, one line redrawn in place with a bar
/// (`label [######      ] 12/40  note`); otherwise a plain line (`label: 12/40 (30%)  note`)
/// every `intervalSeconds` and one when the last item is done, so logs get no carriage returns
/// and no flood. Messages (`log`) get lines of their own either way.
///
/// The clock, the terminal test and the writer are injectable so that a test can drive it.
/// Safe to use from several threads.
public final class ProgressReporter: @unchecked Sendable {
  public let label: String
  public let total: Int
  /// Whether lines are redrawn in place (`\r`) rather than appended.
  public let isTerminal: Bool
  /// Seconds between plain lines when not on a terminal.
  public let intervalSeconds: Double
  private let clock: @Sendable () -> Double
  private let write: @Sendable (String) -> Void
  private let lock = NSLock()
  /// When the last plain line was written (the start, before the first).
  private var lastLineSeconds: Double
  /// Whether the last item's line has been written (plain lines).
  private var wroteLast = false
  /// Whether the terminal's current line holds the bar.
  private var barOpen = false

  /// - Parameters:
  ///   - total: items in all (at least 1 is assumed).
  ///   - isTerminal: redraw in place; by default, whether standard error is a terminal.
  ///   - intervalSeconds: the least time between two plain lines.
  ///   - clock: seconds on a monotonic clock.
  ///   - write: where the text goes; standard error by default.
  public init(
    label: String, total: Int, isTerminal: Bool = ProgressReporter.standardErrorIsTerminal,
    intervalSeconds: Double = 5, clock: @escaping @Sendable () -> Double = ProgressReporter.monotonicSeconds,
    write: @escaping @Sendable (String) -> Void = ProgressReporter.writeToStandardError
  ) {
    self.label = label
    self.total = max(total, 1)
    self.isTerminal = isTerminal
    self.intervalSeconds = intervalSeconds
    self.clock = clock
    self.write = write
    lastLineSeconds = clock()
  }

  /// Whether this process's standard error is a terminal.
  public static var standardErrorIsTerminal: Bool { isatty(STDERR_FILENO) != 0 }

  /// Seconds since boot, from a clock that never goes back.
  @Sendable public static func monotonicSeconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

  @Sendable public static func writeToStandardError(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }

  /// Reports `done` items finished of `total`, with a note (the current file, a running loss).
  public func update(done: Int, note: String = "") {
    lock.lock()
    defer { lock.unlock() }
    let done = min(max(done, 0), total)
    let suffix = note.isEmpty ? "" : "  " + note
    if isTerminal {
      let width = 24, filled = width * done / total
      let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
      write("\r\(label) [\(bar)] \(done)/\(total)\(suffix)\u{1B}[K")
      barOpen = true
      return
    }
    let now = clock()
    let last = done == total && !wroteLast
    guard last || now - lastLineSeconds >= intervalSeconds else { return }
    write("\(label): \(done)/\(total) (\(100 * done / total)%)\(suffix)\n")
    lastLineSeconds = now
    if last { wroteLast = true }
  }

  /// A message on a line of its own; on a terminal the bar is cleared first (the next
  /// `update` draws it again).
  public func log(_ message: String) {
    lock.lock()
    defer { lock.unlock() }
    write((barOpen ? "\r\u{1B}[K" : "") + message + "\n")
    barOpen = false
  }

  /// Ends the bar's line on a terminal, so that what follows starts on a new one.
  public func finish() {
    lock.lock()
    defer { lock.unlock() }
    if barOpen { write("\n") }
    barOpen = false
  }
}
