import ArgumentParser

/// `glassbox dot SPEC -o FILE`: a picture of the graph (placeholder until the renderer lands).
struct Dot: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Draw the graph with graphviz.")
  @OptionGroup var options: SpecOptions
  func run() throws { throw ExitCode(1) }
}
