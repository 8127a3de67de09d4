import Foundation
import GlassboxMedia
import Testing

/// `ProgressReporter` driven by a fake clock: a bar redrawn in place on a terminal, plain
/// lines every few seconds (and at the end) otherwise.
struct ProgressReporterTests {
  /// What the reporter wrote, and a clock the test moves.
  final class Capture: @unchecked Sendable {
    private let lock = NSLock()
    private var parts: [String] = []
    private var seconds = 100.0

    var text: String { lock.withLock { parts.joined() } }
    func write(_ s: String) { lock.withLock { parts.append(s) } }
    func now() -> Double { lock.withLock { seconds } }
    func advance(_ s: Double) { lock.withLock { seconds += s } }
  }

  @Test func plainLinesEveryIntervalAndAtTheEnd() {
    let c = Capture()
    let p = ProgressReporter(
      label: "tap", total: 20, isTerminal: false, intervalSeconds: 5, clock: c.now, write: c.write)
    for i in 1...20 {
      c.advance(1)  // one item a second: lines at 5, 10, 15 and 20 s
      p.update(done: i, note: "clip\(i)")
      if i == 7 { p.log("clip7.wav: cannot decode") }
    }
    p.finish()
    #expect(!c.text.contains("\r"), "carriage returns in a log: \(c.text)")
    #expect(
      c.text == """
        tap: 5/20 (25%)  clip5
        clip7.wav: cannot decode
        tap: 10/20 (50%)  clip10
        tap: 15/20 (75%)  clip15
        tap: 20/20 (100%)  clip20

        """)
  }

  @Test func fastJobsGetOneLine() {
    let c = Capture()
    let p = ProgressReporter(
      label: "embed", total: 3, isTerminal: false, intervalSeconds: 5, clock: c.now, write: c.write)
    for i in 1...3 { p.update(done: i) }
    p.update(done: 3)  // the end is written once
    #expect(c.text == "embed: 3/3 (100%)\n")
  }

  @Test func terminalRedrawsOneLine() {
    let c = Capture()
    let p = ProgressReporter(
      label: "features", total: 4, isTerminal: true, intervalSeconds: 5, clock: c.now, write: c.write)
    p.update(done: 1, note: "a")
    p.log("skipped b")
    p.update(done: 4)
    p.finish()
    let bar = { (filled: Int) in String(repeating: "#", count: filled) + String(repeating: " ", count: 24 - filled) }
    #expect(
      c.text == "\rfeatures [\(bar(6))] 1/4  a\u{1B}[K" + "\r\u{1B}[Kskipped b\n"
        + "\rfeatures [\(bar(24))] 4/4\u{1B}[K" + "\n")
  }
}
