import ArgumentParser
import Foundation
import Glassbox
import GlassboxAnalysis
import GlassboxFormat
import GlassboxIR
import GlassboxMedia

/// `glassbox study [--quick] -o DIR`: the whole study as a list of stages — generate the data,
/// then per model train, evaluate, explain and embed, then the report.
///
/// Each stage records its outcome and time in DIR/study.json (written atomically after every
/// stage), so an interrupted run continues where it stopped: stages recorded `done` are not run
/// again (`--redo NAME` forces one). DIR must not exist, be empty, or be a study folder being
/// continued; `--force` starts over in any folder (the record is reset; files are overwritten
/// as stages rewrite them).
///
/// The model stages go through `StudyModelSteps` (`CommandModelSteps` in StudySteps.swift):
/// training, evaluation and the explanation taps come from the `train`, `evaluate` and `tap`
/// commands, each recorded with the command line that does the same by hand. Embedding (t-SNE)
/// and the report run here whenever a trained model is present (`--model NAME=FILE.model`
/// supplies one).
struct Study: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Run the study end to end: data, training, evaluation, explanations, t-SNE, report.",
    discussion: """
      Writes DIR/study.json (stages, times, results), DIR/<model>/ (model, figures) and
      DIR/report.html. Re-running continues an interrupted run. Data sets are generated with
      tools/gen_speech.py and tools/gen_actions.py (as `make data` does) into DIR/data unless
      --data names a folder that already has them (ROOT/lid, ROOT/actions).
      """)

  @Flag(help: "Small data and short training (minutes).")
  var quick = false

  @Option(name: .shortAndLong, help: ArgumentHelp("The study folder.", valueName: "DIR"))
  var output: String

  @Flag(help: "Start over in a folder that exists, whatever it holds.")
  var force = false

  @Option(
    help: ArgumentHelp(
      "Where the data sets are (or go): ROOT/lid and ROOT/actions. Default DIR/data.", valueName: "ROOT"))
  var data: String?

  @Option(
    name: .customLong("model"),
    help: ArgumentHelp("Use a trained model for a study model (skips its training).", valueName: "NAME=FILE.model"))
  var models: [NamedPath] = []

  @Option(name: .customLong("only"), help: ArgumentHelp("Study only these models (repeatable).", valueName: "NAME"))
  var only: [String] = []

  @Option(
    name: .customLong("redo"),
    help: ArgumentHelp("Run this stage again even if recorded done (repeatable).", valueName: "STAGE"))
  var redo: [String] = []

  @Option(help: "Seed of data generation, splits and initialisation.")
  var seed: UInt64 = 0

  @Option(help: "Cores to use.")
  var threads = 2

  @Option(
    help: ArgumentHelp(
      "The repository's tools/ folder (found beside the binary or in the working folder by default).", valueName: "DIR")
  )
  var tools: String?

  func validate() throws {
    for name in only + models.map(\.name) where StudyPlan.model(named: name) == nil {
      throw ValidationError(
        "unknown study model '\(name)'; the study models are \(StudyPlan.models.map(\.name).joined(separator: ", "))")
    }
    guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
  }

  func run() throws {
    let plan = StudyPlan(quick: quick, seed: seed)
    // Its stages read audio and video: missing media libraries are said now, not mid-run.
    if let why = MediaLibraries.loadError { throw ValidationError("glassbox study reads audio and video: \(why)") }
    let folder = try StudyFolder.prepare(output, force: force, quick: quick)
    let context = StudyContext(
      directory: output, dataRoot: data ?? (output as NSString).appendingPathComponent("data"),
      tools: try tools ?? StudyContext.findTools(), plan: plan, threads: threads,
      givenModels: Dictionary(models.map { ($0.name, $0.path) }, uniquingKeysWith: { _, b in b }))
    var runner = StudyRunner(folder: folder, redo: Set(redo))
    let chosen = StudyPlan.models.filter { only.isEmpty || only.contains($0.name) }
    try runner.run(stages: StudyStages.all(context: context, models: chosen, steps: StudyStages.steps))
    say("study: \(output)/study.json, report \(output)/report.html (\(runner.summary))")
  }
}

/// Sizes of a run: `make data`'s defaults for `--quick`, bigger for the full run.
struct StudyPlan {
  /// A study model: its spec and the data set it learns.
  struct Model {
    /// The spec's name, `graphs/NAME.graph`; also its folder under the study folder.
    var name: String
    /// `speech` or `actions`.
    var dataset: String
  }

  /// The five models of the seed study.
  static let models = [
    Model(name: "bilstm", dataset: "speech"), Model(name: "bilstm_attention1d", dataset: "speech"),
    Model(name: "bilstm_attention2d", dataset: "speech"), Model(name: "resnet18_lstm", dataset: "actions"),
    Model(name: "vgg19_lstm", dataset: "actions"),
  ]

  static func model(named name: String) -> Model? { models.first { $0.name == name } }

  var quick: Bool
  var seed: UInt64
  /// Languages spoken (espeak-ng codes): the seed study's five.
  var languages = "hi,ta,te,bn,mr"
  var speechClips: Int { quick ? 60 : 150 }
  var actionClips: Int { quick ? 24 : 48 }
  /// Generated action clips are the same size in both runs; the quick run has fewer.
  var actionSize: String { "160x120" }
  var actionFrames: Int { 48 }
}

/// Everything a stage may need.
struct StudyContext {
  var directory: String
  var dataRoot: String
  var tools: String
  var plan: StudyPlan
  var threads: Int
  var givenModels: [String: String]

  var speechData: String { (dataRoot as NSString).appendingPathComponent("lid") }
  var actionData: String { (dataRoot as NSString).appendingPathComponent("actions") }
  func modelFolder(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
  /// The trained model of `name`: the one given with --model, else DIR/NAME/NAME.model.
  func modelFile(_ name: String) -> String {
    givenModels[name] ?? (modelFolder(name) as NSString).appendingPathComponent(name + ".model")
  }
  func data(for model: StudyPlan.Model) -> String { model.dataset == "speech" ? speechData : actionData }
  /// The spec of a study model.
  var graphs: String { ((tools as NSString).deletingLastPathComponent as NSString).appendingPathComponent("graphs") }

  /// `tools/` of the repository: beside the working folder, or three levels above the binary
  /// (`.build/release/glassbox`).
  static func findTools() throws -> String {
    let fm = FileManager.default
    var candidates = [(fm.currentDirectoryPath as NSString).appendingPathComponent("tools")]
    let binary = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
    candidates.append(
      binary.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("tools").path)
    for c in candidates where fm.fileExists(atPath: (c as NSString).appendingPathComponent("gen_speech.py")) {
      return c
    }
    throw ValidationError(
      "cannot find the repository's tools/ (gen_speech.py); run from the repository root or give --tools DIR")
  }
}

/// What a stage reports.
enum StageOutcome {
  /// Done; with a note for the record.
  case done(String?)
  /// Not run, and why (nothing to do, or a command missing from this build).
  case skipped(String)
}

/// One step of the study: a unique name, the command a person would type, and the work.
struct StudyStage {
  var name: String
  var command: String?
  /// Runs on every invocation, even when recorded done (the report).
  var always = false
  var run: (inout StudyRecord) throws -> StageOutcome
}

/// The study folder and its record.
struct StudyFolder {
  var directory: String
  var record: StudyRecord
  var recordPath: String { (directory as NSString).appendingPathComponent("study.json") }

  /// Creates or reopens the folder: a new or empty folder starts a record; a folder holding
  /// study.json continues it (same mode only); anything else needs `force`.
  static func prepare(_ directory: String, force: Bool, quick: Bool) throws -> StudyFolder {
    let fm = FileManager.default
    let recordPath = (directory as NSString).appendingPathComponent("study.json")
    var isDirectory: ObjCBool = false
    let fresh = StudyRecord(quick: quick, machine: machineDescription(), started: timestamp())
    if fm.fileExists(atPath: directory, isDirectory: &isDirectory) {
      guard isDirectory.boolValue else { throw ValidationError("-o \(directory): exists and is not a folder") }
      let entries = ((try? fm.contentsOfDirectory(atPath: directory)) ?? []).filter { !$0.hasPrefix(".") }
      if force { return StudyFolder(directory: directory, record: fresh) }
      if entries.isEmpty { return StudyFolder(directory: directory, record: fresh) }
      guard entries.contains("study.json") else {
        throw ValidationError(
          "-o \(directory): the folder exists and is not a study folder (no study.json); choose another or give --force"
        )
      }
      let record = try StudyRecord.read(recordPath)
      guard record.quick == quick else {
        throw ValidationError(
          "-o \(directory): holds a \(record.quick ? "--quick" : "full") study; run it the same way to continue, or give --force to start over"
        )
      }
      say("study: continuing \(directory) (\(record.stages.filter { $0.state == "done" }.count) stages done)")
      return StudyFolder(directory: directory, record: record)
    }
    do {
      try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
    } catch {
      throw ValidationError("-o \(directory): cannot create the folder: \(error.localizedDescription)")
    }
    return StudyFolder(directory: directory, record: fresh)
  }

  static func timestamp() -> String { ISO8601DateFormatter().string(from: Date()) }

  /// `Intel Xeon … (2 cores), Debian GNU/Linux 12 (bookworm)`.
  static func machineDescription() -> String {
    let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let model =
      cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
      .flatMap { $0.split(separator: ":", maxSplits: 1).last }.map { $0.trimmingCharacters(in: .whitespaces) }
      ?? "unknown CPU"
    let release = (try? String(contentsOfFile: "/etc/os-release", encoding: .utf8)) ?? ""
    let os =
      release.split(separator: "\n").first { $0.hasPrefix("PRETTY_NAME=") }
      .map { $0.dropFirst("PRETTY_NAME=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
      ?? "unknown OS"
    return "\(model) (\(ProcessInfo.processInfo.activeProcessorCount) cores), \(os)"
  }
}

/// Runs stages in order, skipping those recorded done, timing the rest and saving the record
/// after each. A failed stage is recorded and the run goes on with the stages that do not
/// need it (each stage checks its inputs); the command exits non-zero at the end.
struct StudyRunner {
  var folder: StudyFolder
  var redo: Set<String>
  var counts = (done: 0, reused: 0, skipped: 0, failed: 0)

  init(folder: StudyFolder, redo: Set<String>) {
    self.folder = folder
    self.redo = redo
  }

  var summary: String {
    "\(counts.done) run, \(counts.reused) reused, \(counts.skipped) skipped, \(counts.failed) failed"
  }

  mutating func run(stages: [StudyStage]) throws {
    try folder.record.write(to: folder.recordPath)
    for stage in stages {
      if folder.record.stage(stage.name)?.state == "done", !stage.always, !redo.contains(stage.name) {
        say("study: \(stage.name): done before, reused")
        counts.reused += 1
        continue
      }
      say("study: \(stage.name) …")
      let start = Date()
      var record = folder.record
      let entry: StudyRecord.Stage
      do {
        let outcome = try stage.run(&record)
        let seconds = Date().timeIntervalSince(start)
        switch outcome {
        case .done(let note):
          entry = .init(
            name: stage.name, state: "done", seconds: seconds, command: stage.command, note: note,
            finished: StudyFolder.timestamp())
          counts.done += 1
          say("study: \(stage.name): done in \(String(format: "%.1f", seconds)) s\(note.map { " — " + $0 } ?? "")")
        case .skipped(let why):
          entry = .init(
            name: stage.name, state: "skipped", seconds: 0, command: stage.command, note: why,
            finished: StudyFolder.timestamp())
          counts.skipped += 1
          say("study: \(stage.name): skipped — \(why)")
        }
        folder.record = record
      } catch {
        let message = GlassboxCommand.message(for: error)
        entry = .init(
          name: stage.name, state: "failed", seconds: Date().timeIntervalSince(start), command: stage.command,
          note: message, finished: StudyFolder.timestamp())
        counts.failed += 1
        FileHandle.standardError.write(Data("study: \(stage.name) failed: \(message)\n".utf8))
      }
      folder.record.record(entry)
      try folder.record.write(to: folder.recordPath)
    }
    if counts.failed > 0 { throw ExitCode(1) }
  }
}

/// The model stages that come from other commands.
enum StudyModelStep: String, CaseIterable, Sendable {
  /// Train the model and write `context.modelFile(name)` (`glassbox train`).
  case train
  /// Test accuracy, cross-entropy and confusion matrix into the record (`glassbox evaluate`).
  case evaluate
  /// Class-activation strips (LayerCAM or Grad-CAM), attention maps and explanation metrics
  /// (`glassbox tap`).
  case explain
}

/// What the study needs from training, evaluation and the explanation taps, one model at a
/// time. `run` records results into the study record (`ModelResult`, `Figure`, metrics under
/// the model folder), writes files under `context.modelFolder(name)`, and returns `.skipped`
/// with the reason when it cannot run.
protocol StudyModelSteps: Sendable {
  /// The command a person would type for `step` (shown in the record and the report).
  func command(_ step: StudyModelStep, model: StudyPlan.Model, context: StudyContext) -> String?
  /// Does `step` for `model`.
  func run(
    _ step: StudyModelStep, model: StudyPlan.Model, context: StudyContext, record: inout StudyRecord
  ) throws -> StageOutcome
}

/// The stage list.
enum StudyStages {
  /// The model steps this build uses: the one place where train/evaluate/tap plug in.
  static let steps: any StudyModelSteps = CommandModelSteps()

  static func all(context: StudyContext, models: [StudyPlan.Model], steps: any StudyModelSteps) throws -> [StudyStage] {
    var stages: [StudyStage] = []
    if models.contains(where: { $0.dataset == "speech" }) { stages.append(speechData(context)) }
    if models.contains(where: { $0.dataset == "actions" }) { stages.append(actionData(context)) }
    for model in models {
      for step in StudyModelStep.allCases {
        stages.append(
          StudyStage(
            name: "\(step.rawValue).\(model.name)", command: steps.command(step, model: model, context: context)
          ) { record in
            try steps.run(step, model: model, context: context, record: &record)
          })
      }
      stages.append(embed(model, context))
    }
    stages.append(report(context))
    return stages
  }

  /// tools/gen_speech.py into DATA/lid, unless it already holds language folders.
  static func speechData(_ c: StudyContext) -> StudyStage {
    let arguments = [
      ((c.tools as NSString).appendingPathComponent("gen_speech.py")), "--out", c.speechData,
      "--clips", String(c.plan.speechClips), "--languages", c.plan.languages, "--seed", String(c.plan.seed),
    ]
    return StudyStage(name: "data.speech", command: "python3 " + arguments.joined(separator: " ")) { _ in
      if hasSubfolders(c.speechData) { return .skipped("\(c.speechData) exists; reused") }
      try SystemPackages.require(["espeak-ng", "ffmpeg", "python3-numpy"], for: "generating the speech data")
      try runProcess("/usr/bin/python3", arguments)
      return .done("\(c.plan.speechClips) clips per language (\(c.plan.languages)) in \(c.speechData)")
    }
  }

  /// tools/gen_actions.py into DATA/actions, unless it already holds class folders.
  static func actionData(_ c: StudyContext) -> StudyStage {
    let arguments = [
      ((c.tools as NSString).appendingPathComponent("gen_actions.py")), "--out", c.actionData,
      "--clips", String(c.plan.actionClips), "--size", c.plan.actionSize,
      "--frames", String(c.plan.actionFrames), "--seed", String(c.plan.seed),
    ]
    return StudyStage(name: "data.actions", command: "python3 " + arguments.joined(separator: " ")) { _ in
      if hasSubfolders(c.actionData) { return .skipped("\(c.actionData) exists; reused") }
      try SystemPackages.require(["ffmpeg", "python3-numpy"], for: "generating the action data")
      try runProcess("/usr/bin/python3", arguments)
      return .done("\(c.plan.actionClips) clips per class in \(c.actionData)")
    }
  }

  /// `glassbox embed` of the trained model over its training split into DIR/NAME/tsne.svg.
  static func embed(_ model: StudyPlan.Model, _ c: StudyContext) -> StudyStage {
    let file = c.modelFile(model.name)
    let plot = (c.modelFolder(model.name) as NSString).appendingPathComponent("tsne.svg")
    let cache = (c.dataRoot as NSString).appendingPathComponent("features-cache")
    let command =
      "glassbox embed \(file) --data \(c.data(for: model)) --split train --tap hidden --cache \(cache) -o \(plot)"
    return StudyStage(name: "embed.\(model.name)", command: command) { record in
      guard FileManager.default.fileExists(atPath: file) else { return .skipped("no trained model at \(file)") }
      let trained = try Model(contentsOf: file)
      let features = try trained.tapFeatures(
        "hidden", root: c.data(for: model), split: "train", batch: 16, limit: 20000,
        cache: cache, threads: c.threads
      ) { ProgressReporter(label: "embed", total: $0) }
      let map = try EmbeddingMap.make(
        features: try Points(rows: features.rows), labels: features.labels, files: features.files,
        classes: features.classes, source: command)
      let stem = (plot as NSString).deletingPathExtension
      try writeAtomically(
        Data(try map.svg(title: "\(model.name): LSTM outputs over the training set (time-averaged)").utf8), to: plot)
      try writeAtomically(try map.json(), to: stem + ".json")
      try writeAtomically(Data(map.csv.utf8), to: stem + ".csv")
      record.record(
        StudyRecord.Figure(
          path: "\(model.name)/tsne.svg",
          caption: "t-SNE of the time-averaged LSTM outputs over the training set, coloured by class",
          command: command))
      var result =
        record.models.first { $0.name == model.name }
        ?? StudyRecord.ModelResult(name: model.name, dataset: model.dataset)
      result.trustworthiness = map.trustworthiness
      result.commands["tsne"] = command
      record.record(result)
      return .done(
        map.trustworthiness.map { String(format: "trustworthiness %.3f over %d examples", $0, map.points.count) })
    }
  }

  /// `glassbox report DIR -o DIR/report.html`, every run.
  static func report(_ c: StudyContext) -> StudyStage {
    let output = (c.directory as NSString).appendingPathComponent("report.html")
    return StudyStage(name: "report", command: "glassbox report \(c.directory) -o \(output)", always: true) { record in
      // The report reads the record from disk: save what this run has so far first.
      try record.write(to: (c.directory as NSString).appendingPathComponent("study.json"))
      try Report(directory: c.directory).write(to: output)
      return .done(output)
    }
  }

  static func hasSubfolders(_ path: String) -> Bool {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
    return entries.contains { name in
      var isDirectory: ObjCBool = false
      return !name.hasPrefix(".")
        && FileManager.default.fileExists(
          atPath: (path as NSString).appendingPathComponent(name), isDirectory: &isDirectory)
        && isDirectory.boolValue
    }
  }
}

/// Debian packages the study's tools need, checked before they run.
enum SystemPackages {
  /// How each package is recognised: a program on PATH, or a Python module.
  static let probes: [String: @Sendable () -> Bool] = [
    "espeak-ng": { onPath("espeak-ng") },
    "ffmpeg": { onPath("ffmpeg") },
    "python3-numpy": { (try? runProcess("/usr/bin/python3", ["-c", "import numpy"], quiet: true)) != nil },
    "chromium": { onPath("chromium") },
  ]

  static func onPath(_ program: String) -> Bool {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    return path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(program)") }
  }

  /// Throws a message naming every missing package and `tools/setup`.
  static func require(_ packages: [String], for purpose: String) throws {
    let missing = packages.filter { !(probes[$0]?() ?? false) }
    guard missing.isEmpty else {
      throw ValidationError(
        "\(purpose) needs the Debian package\(missing.count == 1 ? "" : "s") \(missing.joined(separator: ", ")); install with tools/setup (or apt-get install \(missing.joined(separator: " ")))"
      )
    }
  }
}

/// Runs a program to completion (output passed through unless `quiet`); a non-zero exit is an
/// error naming the command.
@discardableResult
func runProcess(_ executable: String, _ arguments: [String], quiet: Bool = false) throws -> Int32 {
  guard FileManager.default.isExecutableFile(atPath: executable) else {
    throw ValidationError("\(executable) is missing; install with tools/setup")
  }
  let process = Process()
  process.executableURL = URL(fileURLWithPath: executable)
  process.arguments = arguments
  if quiet {
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
  }
  do { try process.run() } catch { throw ValidationError("cannot start \(executable): \(error.localizedDescription)") }
  process.waitUntilExit()
  guard process.terminationStatus == 0 else {
    throw ValidationError(
      "`\(([executable] + arguments).joined(separator: " "))` exited with status \(process.terminationStatus)")
  }
  return process.terminationStatus
}

/// Prints a progress line at once (standard output is block-buffered when piped, and the
/// generators' output interleaves with ours).
func say(_ line: String) {
  FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
