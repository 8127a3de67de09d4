import GlassboxIR

/// A problem with a `.model` file: one line naming the file, the problem and, where it has a
/// place, the byte offset.
public struct ModelFileError: Error, Sendable, Equatable, CustomStringConvertible {
  public var path: String
  public var message: String
  public var offsetInBytes: Int?

  public init(path: String, _ message: String, offsetInBytes: Int? = nil) {
    self.path = path
    self.message = message
    self.offsetInBytes = offsetInBytes
  }

  /// `lid.model: tensor 'fc.weight' fails its checksum … (at byte offset 4096)`.
  public var description: String {
    "\(path): \(message)" + (offsetInBytes.map { " (at byte offset \($0))" } ?? "")
  }
}

/// Where a model came from: the program, the spec's hash, the bindings, how its weights were
/// made, and training settings and results. No file paths.
public struct Provenance: Sendable, Equatable {
  /// How the weights were made.
  public enum Weights: Sendable, Equatable {
    case unknown
    /// Drawn from the parameters' initialisers with this seed.
    case initialized(seed: UInt64)
    /// Imported from a safetensors file with this SHA-256 (lowercase hex).
    case imported(sha256: String)
  }

  public var producer = "glassbox"
  public var producerVersion = ""
  /// SHA-256 of the spec text, lowercase hex.
  public var specSHA256 = ""
  /// Symbol bindings given at compile time.
  public var bindings: [String: Int] = [:]
  public var weights = Weights.unknown
  public var training: Training?

  public init() {}

  /// The version of Glassbox that writes models (`glassbox version` prints it too).
  public static let currentProducerVersion = "0.2.0"

  /// Records this program as the producer and, when the model came from a spec, the SHA-256
  /// of the spec's text (`nil` keeps the hash already recorded, for a model re-written from a
  /// model). Every writer of a `.model` calls it; bindings, weights and training are its own.
  public mutating func stamp(specText: [UInt8]?) {
    producer = "glassbox"
    producerVersion = Self.currentProducerVersion
    if let specText { specSHA256 = SHA256.hex(specText) }
  }
}

/// Training settings and final metrics.
public struct Training: Sendable, Equatable {
  public var optimizer = ""
  public var learningRate = 0.0
  public var epochs = 0
  public var batchSize = 0
  public var seed: UInt64 = 0
  /// Training examples per epoch.
  public var examples = 0
  /// Final metrics in the order reported (`train_loss`, `test_accuracy`).
  public var metrics: [(name: String, value: Double)] = []

  public init() {}

  public static func == (a: Training, b: Training) -> Bool {
    a.optimizer == b.optimizer && a.learningRate == b.learningRate && a.epochs == b.epochs
      && a.batchSize == b.batchSize && a.seed == b.seed && a.examples == b.examples
      && a.metrics.elementsEqual(b.metrics) { $0.name == $1.name && $0.value == $1.value }
  }
}

/// Everything a `.model` file holds, in memory: what `ModelFile.write` takes.
public struct ModelContents: Sendable {
  /// A verified graph whose parameters all have static types.
  public var graph: Graph
  /// One tensor per `graph.parameters` entry, in the same order, of the parameter's type.
  public var weights: [Tensor]
  /// Class names, in logit order; empty or as many as the logits output has classes.
  public var labels: [String]
  public var provenance: Provenance

  public init(graph: Graph, weights: [Tensor], labels: [String] = [], provenance: Provenance = Provenance()) {
    self.graph = graph
    self.weights = weights
    self.labels = labels
    self.provenance = provenance
  }
}

extension Graph {
  /// The class count that labels must match: the last axis of the first output when the
  /// graph's first output is `[…, classes]` with a static class axis; nil otherwise.
  public var labelCount: Int? {
    guard let first = outputs.first, let last = self[first.value].type.shape.last else { return nil }
    return last.staticValue
  }
}

extension ModelFileError: KindedError {
  public var errorKind: ErrorKind { .model }
  public var errorFile: String? { path }
}
