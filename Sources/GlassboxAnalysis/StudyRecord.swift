import Foundation

/// `DIR/study.json`: what a study run did and measured. `glassbox study` writes it after every
/// stage (atomically), so an interrupted run knows where to continue; `glassbox report` reads it.
///
/// The study folder:
///
/// ```
/// DIR/study.json                 this record
/// DIR/metrics.json               explanation metrics (any JSON; objects render as tables)
/// DIR/data/lid/, DIR/data/actions/   generated data sets (unless --data points elsewhere)
/// DIR/<model>/                   one folder per model, named after its spec (bilstm, …)
///     <model>.model              the trained model
///     curves.svg                 training curves
///     tsne.svg (+ .json, .csv)   t-SNE of the time-averaged LSTM outputs (glassbox embed)
///     layercam/, gradcam/        frame strips and relevance curves of the method explaining it
///     attention/*.png            MFCC images with attention
///     *.png, *.svg               any other figure
/// ```
public struct StudyRecord: Codable, Sendable, Equatable {
  /// One stage of the run (data generation, training a model, …).
  public struct Stage: Codable, Sendable, Equatable {
    /// Unique name, e.g. `data.speech`, `train.bilstm`.
    public var name: String
    /// `done`, `failed` or `skipped` (nothing to do, or not available in this build).
    public var state: String
    /// Wall-clock seconds the stage took (0 when skipped).
    public var seconds: Double
    /// The command a person can run to do the same.
    public var command: String?
    /// What happened, in a sentence (the error of a failed stage).
    public var note: String?
    /// When it finished (ISO 8601).
    public var finished: String?

    /// A stage record.
    public init(
      name: String, state: String, seconds: Double, command: String? = nil, note: String? = nil,
      finished: String? = nil
    ) {
      self.name = name
      self.state = state
      self.seconds = seconds
      self.command = command
      self.note = note
      self.finished = finished
    }
  }

  /// What one model measured on its test split.
  public struct ModelResult: Codable, Sendable, Equatable {
    /// The spec's name (`bilstm`, `resnet18_lstm`, …); also its folder under DIR.
    public var name: String
    /// `speech` or `actions`.
    public var dataset: String
    /// Class names, in label order (rows and columns of `confusion`).
    public var classes: [String]
    /// Test accuracy in [0, 1].
    public var accuracy: Double?
    /// Mean test cross-entropy (nats).
    public var loss: Double?
    /// `confusion[true][predicted]` counts on the test split.
    public var confusion: [[Int]]?
    /// Training examples and test examples.
    public var trainExamples: Int?
    /// Test examples.
    public var testExamples: Int?
    /// Trustworthiness T(5) of the t-SNE map.
    public var trustworthiness: Double?
    /// Commands that produced this model's results, by what they made (`train`, `evaluate`,
    /// `tsne`, `layercam` or `gradcam`, `attention`, `curves`).
    public var commands: [String: String]

    /// A model's results.
    public init(
      name: String, dataset: String, classes: [String] = [], accuracy: Double? = nil, loss: Double? = nil,
      confusion: [[Int]]? = nil, trainExamples: Int? = nil, testExamples: Int? = nil,
      trustworthiness: Double? = nil, commands: [String: String] = [:]
    ) {
      self.name = name
      self.dataset = dataset
      self.classes = classes
      self.accuracy = accuracy
      self.loss = loss
      self.confusion = confusion
      self.trainExamples = trainExamples
      self.testExamples = testExamples
      self.trustworthiness = trustworthiness
      self.commands = commands
    }
  }

  /// A figure file and how it was made.
  public struct Figure: Codable, Sendable, Equatable {
    /// Path relative to the study folder.
    public var path: String
    /// One line saying what it shows.
    public var caption: String
    /// The command that wrote it.
    public var command: String?

    /// A figure record.
    public init(path: String, caption: String, command: String? = nil) {
      self.path = path
      self.caption = caption
      self.command = command
    }
  }

  /// Format version of this record.
  public var version = 1
  /// Whether the run was `--quick`.
  public var quick: Bool
  /// The machine, in words (CPU, cores, OS).
  public var machine: String
  /// When the run started (ISO 8601).
  public var started: String
  /// Stages in the order they ran.
  public var stages: [Stage]
  /// Results per model.
  public var models: [ModelResult]
  /// Figures with their commands.
  public var figures: [Figure]

  /// An empty record.
  public init(
    quick: Bool, machine: String, started: String, stages: [Stage] = [], models: [ModelResult] = [],
    figures: [Figure] = []
  ) {
    self.quick = quick
    self.machine = machine
    self.started = started
    self.stages = stages
    self.models = models
    self.figures = figures
  }

  /// The stage called `name`, if recorded.
  public func stage(_ name: String) -> Stage? { stages.first { $0.name == name } }

  /// Records `stage`, replacing an earlier record of the same name.
  public mutating func record(_ stage: Stage) {
    if let i = stages.firstIndex(where: { $0.name == stage.name }) { stages[i] = stage } else { stages.append(stage) }
  }

  /// Records `model`'s results, replacing earlier ones of the same name.
  public mutating func record(_ model: ModelResult) {
    if let i = models.firstIndex(where: { $0.name == model.name }) { models[i] = model } else { models.append(model) }
  }

  /// Records a figure, replacing an earlier one at the same path.
  public mutating func record(_ figure: Figure) {
    if let i = figures.firstIndex(where: { $0.path == figure.path }) {
      figures[i] = figure
    } else {
      figures.append(figure)
    }
  }

  /// Reads `path`; errors name the file.
  public static func read(_ path: String) throws(AnalysisError) -> StudyRecord {
    guard let data = FileManager.default.contents(atPath: path) else { throw AnalysisError("\(path): cannot be read") }
    do {
      return try JSONDecoder().decode(StudyRecord.self, from: data)
    } catch {
      throw AnalysisError("\(path): not a study record (\(error))")
    }
  }

  /// Writes the record to `path` atomically, as pretty JSON with sorted keys.
  public func write(to path: String) throws(AnalysisError) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let data: Data
    do { data = try encoder.encode(self) } catch {
      throw AnalysisError("\(path): cannot encode the study record: \(error)")
    }
    try writeAtomically(data, to: path)
  }
}

/// The seed study's published numbers (on the real data sets, not ours), shown beside ours.
public enum SeedStudy {
  /// A published result.
  public struct Result: Sendable {
    /// How the seed named the model.
    public var title: String
    /// Test accuracy in [0, 1].
    public var accuracy: Double
    /// Test cross-entropy, where reported.
    public var loss: Double?
    /// The data set it was measured on.
    public var dataset: String
  }

  /// By spec name.
  public static let results: [String: Result] = [
    "bilstm": Result(title: "BiLSTM", accuracy: 0.736, loss: 0.505, dataset: "Indian-language speech"),
    "bilstm_attention1d": Result(
      title: "BiLSTM-Attention-1D", accuracy: 0.861, loss: 0.257, dataset: "Indian-language speech"),
    "bilstm_attention2d": Result(
      title: "BiLSTM-Attention-2D", accuracy: 0.889, loss: 0.107, dataset: "Indian-language speech"),
    "resnet18_lstm": Result(title: "ResNet-LSTM", accuracy: 0.64, loss: nil, dataset: "HMDB-51"),
    "vgg19_lstm": Result(title: "VGG-LSTM", accuracy: 0.32, loss: nil, dataset: "HMDB-51"),
  ]

  /// The study's models in the order the report lists them.
  public static let order = ["bilstm", "bilstm_attention1d", "bilstm_attention2d", "resnet18_lstm", "vgg19_lstm"]
}
