import Foundation

/// A t-SNE map of a data set's feature vectors with its quality, as `glassbox embed` writes it
/// (`plot.json`; `plot.csv` holds the same points as `x,y,label,class,file` rows).
public struct EmbeddingMap: Codable, Sendable, Equatable {
  /// One embedded example.
  public struct Point: Codable, Sendable, Equatable {
    /// Embedded coordinates.
    public var x: Double
    /// Embedded coordinates.
    public var y: Double
    /// Class index into `classes`.
    public var label: Int
    /// The example's file.
    public var file: String
  }

  /// Where the features came from (`glassbox embed lid.model --tap hidden`).
  public var source: String
  /// Class names; `Point.label` indexes them.
  public var classes: [String]
  /// Dimensions of each feature vector before embedding.
  public var featureDimensions: Int
  /// The perplexity used.
  public var perplexity: Double
  /// Trustworthiness T(5) of the map (nil with 10 points or fewer).
  public var trustworthiness: Double?
  /// KL(P‖Q) at the end of the optimisation.
  public var klDivergence: Double
  /// Gradient-descent iterations run.
  public var iterations: Int
  /// Seconds the t-SNE took.
  public var seconds: Double
  /// The points, in data-set order.
  public var points: [Point]

  /// Embeds `features` (`[n, d]`, one row per example) with t-SNE and scores the map.
  /// The perplexity is lowered to (n − 1) / 3 when n is too small for it (as a t-SNE with
  /// n ≤ 3·perplexity would make every point a neighbour of every other).
  public static func make(
    features: Points, labels: [Int], files: [String], classes: [String], source: String,
    tsne: TSNE = TSNE()
  ) throws(AnalysisError) -> EmbeddingMap {
    guard labels.count == features.count, files.count == features.count else {
      throw AnalysisError(
        "embedding: \(features.count) feature vectors but \(labels.count) labels and \(files.count) files")
    }
    guard features.count >= 4 else {
      throw AnalysisError("embedding: t-SNE needs at least 4 examples; found \(features.count)")
    }
    var tsne = tsne
    tsne.perplexity = min(tsne.perplexity, Double(features.count - 1) / 3)
    let start = Date()
    let result = try tsne.embed(features)
    let seconds = Date().timeIntervalSince(start)
    let trust =
      features.count > 10 ? try Trustworthiness.score(input: features, embedding: result.embedding, neighbors: 5) : nil
    let points = (0..<features.count).map {
      Point(x: result.embedding[$0, 0], y: result.embedding[$0, 1], label: labels[$0], file: files[$0])
    }
    return EmbeddingMap(
      source: source, classes: classes, featureDimensions: features.dimensions, perplexity: tsne.perplexity,
      trustworthiness: trust, klDivergence: result.klDivergence, iterations: result.iterations,
      seconds: seconds, points: points)
  }

  /// The scatter plot of the map.
  public func svg(title: String) throws(AnalysisError) -> String {
    let embedded = try Points(count: points.count, dimensions: 2, values: points.flatMap { [$0.x, $0.y] })
    var subtitle =
      "t-SNE of \(points.count) examples (\(featureDimensions)-D features), perplexity \(String(format: "%.3g", perplexity))"
    if let trustworthiness { subtitle += String(format: ", trustworthiness T(5) = %.3f", trustworthiness) }
    return try ScatterPlot(title: title, subtitle: subtitle).svg(
      points: embedded, labels: points.map(\.label), classes: classes)
  }

  /// `x,y,label,class,file` rows under a header; fields with commas or quotes are quoted.
  public var csv: String {
    func field(_ s: String) -> String {
      s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" })
        ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }
    var out = "x,y,label,class,file\n"
    for p in points {
      out += "\(p.x),\(p.y),\(p.label),\(field(classes[p.label])),\(field(p.file))\n"
    }
    return out
  }

  /// Pretty JSON with sorted keys.
  public func json() throws(AnalysisError) -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    do { return try encoder.encode(self) } catch { throw AnalysisError("embedding: cannot encode JSON: \(error)") }
  }
}

/// Writes `data` to `path` through a temporary file in the same folder and a rename, so a
/// reader never sees half a file and a failed write leaves the old one.
public func writeAtomically(_ data: Data, to path: String) throws(AnalysisError) {
  let url = URL(fileURLWithPath: path)
  let folder = url.deletingLastPathComponent()
  let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
  do {
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try data.write(to: temporary)
    if rename(temporary.path, url.path) != 0 {
      let reason = String(cString: strerror(errno))
      try? FileManager.default.removeItem(at: temporary)
      throw AnalysisError("\(path): cannot move the finished file into place: \(reason)")
    }
  } catch let error as AnalysisError {
    throw error
  } catch {
    try? FileManager.default.removeItem(at: temporary)
    throw AnalysisError("\(path): cannot write: \(error.localizedDescription)")
  }
}
