import ArgumentParser
import Foundation
import Glassbox

/// The `glassbox` command: a static-graph compiler whose models explain themselves.
public struct GlassboxCommand: ParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "glassbox",
    abstract: "Compile, run and explain static-graph models.",
    discussion: """
      Exit status: 0 when the command did what was asked; 1 when an input is wrong (a spec \
      that does not check, a corrupt model or media file, a tensor of the wrong shape, a tap \
      the model lacks, a file that cannot be read or written: the message names it); 64 when \
      the command line is wrong (an unknown option, a missing argument, a value out of range: the \
      usage follows the message).
      """,
    subcommands: [
      Check.self, Dot.self, Compile.self, Import.self,
      Info.self, Export.self, Features.self, Run.self, Train.self,
      TapCommand.self, Evaluate.self, Merge.self, Bench.self, Embed.self, ReportCommand.self, Study.self,
      Version.self,
    ])

  public init() {}

  /// Runs the command line. Every failure is printed one way: a spec's located diagnostics
  /// each with its source line and caret; any other error as `Error: message` (with the usage
  /// for a command-line mistake). The status is 1 for errors in the input, 64 for usage.
  public static func main() {
    do {
      var command = try parseAsRoot()
      try command.run()
    } catch let error as GlassboxError where !error.diagnostics.isEmpty {
      FileHandle.standardError.write(Data((error.description + "\n").utf8))
      Foundation.exit(1)
    } catch {
      exit(withError: error)
    }
  }
}
