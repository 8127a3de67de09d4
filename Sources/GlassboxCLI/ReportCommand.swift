import ArgumentParser
import Foundation
import GlassboxAnalysis

/// `glassbox report DIR -o report.html`: the study folder as one self-contained page.
struct ReportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "report",
    abstract: "Write one self-contained HTML page (images embedded, no network) from a study folder.",
    discussion: """
      DIR is what `glassbox study -o DIR` writes: DIR/study.json (stages, per-model accuracy,
      cross-entropy, confusion matrices, commands), DIR/metrics.json (explanation metrics) and a
      folder per model with its figures (curves.svg, tsne.svg, gradcam/*.png, attention/*.png).
      Whatever is present is shown; the seed study's published numbers stand beside ours,
      labelled as measured on the real data sets.
      """)

  @Argument(help: "The study folder.")
  var directory: String

  @Option(name: .shortAndLong, help: ArgumentHelp("The HTML file to write.", valueName: "FILE.html"))
  var output: String

  func validate() throws {
    guard output.hasSuffix(".html") || output.hasSuffix(".htm") else {
      throw ValidationError("-o \(output): the report is an .html file")
    }
  }

  func run() throws {
    try Report(directory: directory).write(to: output)
    let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
    print("wrote \(output) (\(size / 1024) KiB)")
  }
}
