import ArgumentParser

/// The `glassbox` command: a static-graph compiler whose models explain themselves.
public struct GlassboxCommand: ParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "glassbox",
    abstract: "Compile, run and explain static-graph models.",
    subcommands: [Check.self, Dot.self, Compile.self, Import.self, Info.self, Export.self, Features.self, Run.self, Train.self,
                  TapCommand.self, Evaluate.self, Bench.self, Embed.self, ReportCommand.self, Study.self, Version.self])

  public init() {}
}
