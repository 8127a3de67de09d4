import Foundation
import GlassboxExplain
import GlassboxFormat
import GlassboxIR
import GlassboxMedia
import GlassboxPasses
import GlassboxRuntime

/// Measures a tap's explanations over a data set instead of trusting them: deletion and
/// insertion curves, attention faithfulness (uniform and permuted weights), the
/// model-randomisation sanity check, localisation on the boxes of generated action clips and
/// attention mass inside the speech of generated clips.
public struct ExplanationEvaluation: Sendable {
  /// Points of the deletion and insertion curves (besides the start).
  public var steps: Int
  /// Random permutations of the attention weights per example.
  public var permutations: Int
  /// Whether to run the sanity check (one model per re-initialised block).
  public var sanity: Bool
  /// Seed of the permutations and of the re-initialised weights.
  public var seed: UInt64
  /// At most this many examples, taken from each class in turn.
  public var limit: Int
  public var threads: Int

  public init(
    steps: Int = 16, permutations: Int = 10, sanity: Bool = true, seed: UInt64 = 0, limit: Int = Int.max,
    threads: Int = 2
  ) {
    self.steps = steps
    self.permutations = permutations
    self.sanity = sanity
    self.seed = seed
    self.limit = limit
    self.threads = threads
  }

  /// Every measure that applies to `tap` of `model` on the split, as the report's key–value
  /// pairs (printed as JSON or by `table`).
  public func measure(
    _ model: Model, tap: String, data: String, split: String,
    progress: ((Int) -> ProgressReporter)? = nil
  ) throws(GlassboxError) -> [(String, JSONValue)] {
    let part = try measureExamples(model, tap: tap, data: data, split: split, shard: nil, progress: progress)
    guard !part.measures.isEmpty else { throw GlassboxError(.input, file: data, "no \(split) examples") }
    return part.report(sanity: sanity)
  }

  /// One method's row of a comparison: the tap it ran as, its report and its cost.
  public struct MethodResult: Sendable {
    /// The method as it was asked for (`gradcam`, `layercam:cnn.layer3`, a tap's name).
    public var method: String
    /// The tap it ran as (added to the model when the model lacked it).
    public var tap: String
    /// `measure`'s report for the tap.
    public var report: [(String, JSONValue)]
    /// Median seconds of one example's explanation (the forward and whatever the tap adds).
    public var secondsPerExample: Double
  }

  /// Measures several explanation methods on the same examples. A method is a tap of `model`
  /// by name, a tap to add (`KIND:VALUE[:option=value…]`, `auto` for the value as `adding(tap:)`
  /// reads it), or a bare kind, which explains the value the model's first tap of a map kind
  /// (Grad-CAM's layer) explains, or `auto` when it has none. Every method is checked to apply
  /// before any is measured.
  public func compare(
    _ model: Model, methods: [String], data: String, split: String,
    progress: ((String, Int) -> ProgressReporter)? = nil
  ) throws(GlassboxError) -> [MethodResult] {
    guard !methods.isEmpty else { throw GlassboxError(.input, "give at least one method to compare") }
    var resolved: [(method: String, model: Model, tap: String)] = []
    for method in methods {
      let text = Self.tapText(for: method, in: model)
      let (m, tap) = try model.withTap(text)
      _ = try m.tap(named: tap)
      resolved.append((method, m, tap))
    }
    var results: [MethodResult] = []
    for (method, m, tap) in resolved {
      let part = try measureExamples(
        m, tap: tap, data: data, split: split, shard: nil,
        progress: progress.map { p in { p(method, $0) } })
      guard !part.measures.isEmpty else { throw GlassboxError(.input, file: data, "no \(split) examples") }
      results.append(
        MethodResult(
          method: method, tap: tap, report: part.report(sanity: sanity),
          secondsPerExample: Metrics.median(part.explainSeconds)))
    }
    return results
  }

  /// The tap text a method names: itself when the model has a tap of that name or it already
  /// says `KIND:VALUE`; for a bare kind of the CAM family, the layer of the model's first tap of
  /// that family, or `auto`. Other bare kinds name their value (`ig:frames`).
  static func tapText(for method: String, in model: Model) -> String {
    if method.contains(":") || model.graph.taps.contains(where: { $0.name == method }) { return method }
    guard let kind = TapKind(rawValue: method), kind.operandCount == 1, kind.mapsFeatures else { return method }
    let layer = model.graph.taps.first { $0.kind.mapsFeatures }?.operands.first
    return "\(method):" + (layer.map { model.graph[$0].name } ?? "auto")
  }

  /// The comparison's columns: a title and where each method's report holds the number.
  static let comparisonColumns: [(title: String, key: String, paths: [[String]])] = [
    ("deletion AUC ↓", "deletion_auc", [["deletion", "auc"]]),
    ("insertion AUC ↑", "insertion_auc", [["insertion", "auc"]]),
    ("pointing (peak, correct) ↑", "pointing_peak_correct", [["localisation", "pointing_clip_peak_correct"]]),
    ("pointing (frames) ↑", "pointing_frames", [["localisation", "pointing_per_frame"]]),
    ("energy in box ↑", "energy_in_box", [["localisation", "energy_per_frame"]]),
    (
      "mass in speech ↑", "mass_in_speech",
      [["speech", "attention_mass_in_speech"], ["speech", "relevance_mass_in_speech"]]
    ),
    ("sanity ρ ↓", "sanity_spearman", [["sanity", "last", "spearman"]]),
  ]

  /// The number at the first of `paths` that `report` has (`last` picks an array's last item).
  static func number(_ report: [(String, JSONValue)], _ paths: [[String]]) -> Double? {
    paths.lazy.compactMap { path -> Double? in
      var current: JSONValue = .object(report)
      for key in path {
        switch current {
        case .object(let pairs):
          guard let next = pairs.first(where: { $0.0 == key })?.1 else { return nil }
          current = next
        case .array(let items) where key == "last":
          guard let last = items.last else { return nil }
          current = last
        default: return nil
        }
      }
      if case .number(let x) = current { return x }
      return nil
    }.first
  }

  /// One line per method, one column per measure some method has (deletion and insertion
  /// AUC, localisation, speech mass, the sanity check's correlation once every block is
  /// re-initialised) and seconds per example.
  public static func comparisonTable(_ results: [MethodResult]) -> String {
    let shown = comparisonColumns.filter { c in results.contains { number($0.report, c.paths) != nil } }
    let header = ["method"] + shown.map(\.title) + ["s/example"]
    var rows = [header]
    for r in results {
      let cells = shown.map { c in number(r.report, c.paths).map { String(format: "%.4f", $0) } ?? "–" }
      rows.append([r.method] + cells + [String(format: "%.4f", r.secondsPerExample)])
    }
    let widths = header.indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
    return rows.map { row in
      row.enumerated().map { i, cell in
        i == 0
          ? cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
          : String(repeating: " ", count: widths[i] - cell.count) + cell
      }.joined(separator: "  ")
    }.joined(separator: "\n")
  }

  /// The table's numbers as an object of objects (method → column → number), which the
  /// study's report shows as one table.
  public static func comparisonRows(_ results: [MethodResult]) -> JSONValue {
    .object(
      results.map { r in
        (
          r.method,
          .object(
            comparisonColumns.compactMap { c in number(r.report, c.paths).map { (c.key, .number($0)) } }
              + [("seconds_per_example", .number(r.secondsPerExample))])
        )
      })
  }

  /// The comparison as JSON: per method its tap, seconds per example and report.
  public static func comparisonJSON(_ results: [MethodResult]) -> JSONValue {
    .array(
      results.map { r in
        .object([
          ("method", .string(r.method)), ("tap", .string(r.tap)),
          ("seconds_per_example", .number(r.secondsPerExample)), ("report", .object(r.report)),
        ])
      })
  }

  /// What one example contributes to the report: every per-example number the aggregates are
  /// computed from, so that shards' records give the unsharded report bit for bit.
  public struct ExampleMeasures: Sendable, Equatable {
    /// The example's position in the split (unsharded).
    public var position: Int
    /// Whether the model predicted the example's class.
    public var correct: Bool
    /// The deletion and insertion curves and what they remove (nil: no perturbation units).
    public var deletion: [Double]?
    public var insertion: [Double]?
    public var units: String?
    /// Attention faithfulness: prediction with uniform weights, and each permutation's total
    /// variation distance and whether it flipped the prediction.
    public var uniformCorrect = false
    public var permutationTVD: [Double] = []
    public var flips = 0
    /// Localisation per sampled frame (nil when the clip has no boxes), and the frame whose raw
    /// map peaks (an index into `hits`).
    public var hits: [Double]?
    public var energies: [Double]?
    public var peak: Int?
    /// Attention mass inside the speech intervals and their share of frames.
    public var speechMass: Double?
    public var speechChance: Double?
    /// Spearman correlation with the original map after each cumulative re-initialisation
    /// (`Part.blocks` order); nil where it is undefined.
    public var sanity: [Double?] = []
  }

  /// The measures of one shard of a split (or of all of it).
  public struct Part: Sendable {
    public var tap: String
    public var kind: TapKind
    /// Blocks re-initialised by the sanity check, from the output end.
    public var blocks: [String]
    /// The whole split and the positions measured.
    public var listing: SplitListing
    public var positions: [Int]
    /// One per example, in position order.
    public var measures: [ExampleMeasures]
    /// Seconds each example's explanation took (`Session.explain`, not the measures), in
    /// `measures` order; not part of the report, which is the same bytes on every run.
    public var explainSeconds: [Double] = []

    public init(
      tap: String, kind: TapKind, blocks: [String], listing: SplitListing, positions: [Int],
      measures: [ExampleMeasures]
    ) {
      self.tap = tap
      self.kind = kind
      self.blocks = blocks
      self.listing = listing
      self.positions = positions
      self.measures = measures
    }

    /// The report over `measures` (every example of the split, in order).
    public func report(sanity: Bool) -> [(String, JSONValue)] {
      ExplanationEvaluation.report(tap: tap, kind: kind, blocks: sanity ? blocks : [], measures: measures)
    }
  }

  /// Measures the examples at `shard`'s positions of the split (every example when nil), one
  /// at a time. The permutations of attention weights draw from one generator in the split's
  /// order; a shard replays the draws of the positions other shards measure, so each example
  /// gets the permutations the unsharded run gives it.
  public func measureExamples(
    _ model: Model, tap: String, data: String, split: String, shard: Shard?,
    progress: ((Int) -> ProgressReporter)? = nil
  ) throws(GlassboxError) -> Part {
    guard steps >= 1, permutations >= 0, threads >= 1 else {
      throw GlassboxError(.input, "steps and threads must be at least 1, permutations at least 0")
    }
    let info = try model.tap(named: tap)
    guard model.inputs.count == 1, let inputName = model.inputs.first?.name,
      let recipe = model.recipes.first(where: { $0.input == inputName })
    else {
      throw GlassboxError(
        .unsupported, file: model.path, "evaluating explanations needs a model with one input that has a recipe")
    }
    let set = try Datasets.media(root: data, kind: recipe.kind, split: split, seed: model.splitSeed)
    let listing = SplitListing(set, limit: limit)
    guard !listing.files.isEmpty else { throw GlassboxError(.input, file: data, "no \(split) examples") }
    let positions = listing.positions(for: shard)
    let examples = positions.map { listing.files[$0] }
    var part = Part(
      tap: tap, kind: info.kind, blocks: Self.blocksTopDown(model.graph), listing: listing,
      positions: positions, measures: [])
    guard !examples.isEmpty else { return part }
    let extractor = try withGlassboxErrors { try FeatureExtractor(recipe) }
    func tensor(_ path: String) throws(GlassboxError) -> Tensor {
      try withGlassboxErrors {
        let t = try extractor.extract(path)
        return Tensor(shape: [1] + t.shape, storage: t.storage)
      }
    }

    let first = try tensor(examples[0].path)
    let explainer = try model.session(SessionOptions(threads: threads, taps: []))
    let logitsName = model.outputs[0].name
    func probability(of k: Int, _ input: Tensor) throws(GlassboxError) -> Double {
      let p = Metrics.softmax((try explainer.run([inputName: input])[logitsName]?.doubles) ?? [])
      return k < p.count ? p[k] : 0
    }
    let bound = try withGlassboxErrors {
      try model.graph.bound(try model.graph.inferBindings(inputShapes: [inputName: first.shape]))
    }
    let isAttention = info.kind == .attention

    // Attention faithfulness: the weights become an input the experiment feeds.
    var override: Executable?
    if isAttention, let tapDecl = bound.taps.first(where: { $0.name == tap }) {
      let parameters = try model.parameterValues(for: bound)
      let overridden = OverrideValue.apply(to: bound, value: tapDecl.operands[0], inputName: "attention.override")
      override = try Model.compileInference(overridden, parameters: parameters, taps: .none, threads: threads)
        .executable
    }

    var rng = SplitMix64(seed: seed)
    var lastPosition = -1
    var originalMaps: [[Double]] = [], explained: [Int] = []
    var inputs: [Tensor] = []
    let reporter = progress?(examples.count)
    for (n, example) in examples.enumerated() {
      defer { reporter?.update(done: n + 1, note: (example.path as NSString).lastPathComponent) }
      let position = positions[n]
      defer { lastPosition = position }
      let x = n == 0 ? first : try tensor(example.path)
      guard x.shape == first.shape else {
        throw GlassboxError(.input, file: example.path, "shape \(x.shape) differs from \(first.shape)")
      }
      inputs.append(x)
      let start = DispatchTime.now().uptimeNanoseconds
      let e = try explainer.explain(tap, [inputName: x])
      part.explainSeconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
      let probabilities = Metrics.softmax(e.outputs[logitsName]?.doubles ?? [])
      let predicted = probabilities.indices.max { probabilities[$0] < probabilities[$1] } ?? 0
      let k = e.classes?.first ?? predicted
      var m = ExampleMeasures(position: position, correct: predicted == example.label)
      let raw = e.maps["raw"]
      originalMaps.append(raw?.doubles ?? [])
      explained.append(k)

      // Importance of each perturbation unit and how to remove a unit from the input.
      if let units = Self.units(e, inputShape: x.shape) {
        m.units = units.name
        let order = Metrics.order(byDescending: units.scores)
        let schedule = Metrics.schedule(units: order.count, steps: steps)
        var del: [Double] = [], ins: [Double] = []
        for count in schedule {
          let chosen = Set(order.prefix(count))
          del.append(try probability(of: k, units.apply(x, chosen.contains)))
          ins.append(try probability(of: k, units.apply(x) { !chosen.contains($0) }))
        }
        m.deletion = del
        m.insertion = ins
      }

      if isAttention, let override, let weights = raw {
        let time = weights.shape[1]
        // Every example draws `permutations` shuffles of `time` frames: the draws of the
        // positions other shards measure come first.
        for _ in 0..<((position - lastPosition - 1) * permutations) {
          var perm = Array(0..<time)
          perm.shuffle(using: &rng)
        }
        let uniform = Tensor(shape: weights.shape, f32: [Float](repeating: 1 / Float(time), count: weights.count))
        let u = try withGlassboxErrors { try override.run(inputs: [inputName: x, "attention.override": uniform]) }
        let uLogits = u[logitsName]?.doubles ?? []
        m.uniformCorrect = (uLogits.indices.max { uLogits[$0] < uLogits[$1] }) == example.label
        for _ in 0..<permutations {
          var perm = Array(0..<time)
          perm.shuffle(using: &rng)
          let per = weights.count / time, w = weights.floats
          var shuffled = w
          for t in 0..<time { for j in 0..<per { shuffled[t * per + j] = w[perm[t] * per + j] } }
          let out = try withGlassboxErrors {
            try override.run(inputs: [inputName: x, "attention.override": Tensor(shape: weights.shape, f32: shuffled)])
          }
          let q = Metrics.softmax(out[logitsName]?.doubles ?? [])
          m.permutationTVD.append(Metrics.totalVariation(probabilities, q))
          if (q.indices.max { q[$0] < q[$1] }) != predicted { m.flips += 1 }
        }
      }

      // Localisation on the boxes of the generated action clips.
      if let (up, peakSource) = Self.frameMaps(e, inputShape: x.shape),
        let boxes = Self.boxes(example.path, recipe: recipe)
      {
        let s = up.shape, (t, h, w) = (s[1], s[2], s[3])
        var hits: [Double] = [], energies: [Double] = []
        let values = up.floats
        let size = Self.sidecarSize(example.path)
        for f in 0..<min(t, boxes.count) {
          let map = Array(values[(f * h * w)..<((f + 1) * h * w)])
          let box = boxes[f].scaled(from: size.0, size.1, to: w, h)
          hits.append(Metrics.pointingHit(map, width: w, height: h, box: box) ? 1 : 0)
          energies.append(Metrics.energyInBox(map, width: w, height: h, box: box))
        }
        m.hits = hits
        m.energies = energies
        // The clip as one trial, as an image is in Zhang et al.'s game: the maximum of its
        // space-time map (the frame whose raw map peaks highest, then that frame's peak).
        m.peak = Metrics.peakFrame(peakSource.floats, frames: peakSource.shape[1]).flatMap {
          $0 < hits.count ? $0 : nil
        }
      }
      // Attention (or relevance: a map over the input's frames, by magnitude) inside the speech
      // intervals of the generated clips.
      if recipe.kind == .audio, x.shape.count == 3, let perFrame = Self.frameWeights(e, inputShape: x.shape),
        let speech = ExplanationFiles.speechIntervals(mediaPath: example.path, recipe: recipe, frames: x.shape[1])
      {
        let r = Metrics.massInIntervals(perFrame, speech)
        m.speechMass = r.mass
        m.speechChance = r.chance
      }
      part.measures.append(m)
    }
    reporter?.finish()

    // Sanity check: re-initialise blocks top-down, cumulatively; rank correlation of the maps.
    if sanity {
      let fresh = try withGlassboxErrors { try Initialization.weights(for: bound, seed: seed &+ 1) }
      var changed = try model.parameterTensors(for: bound)
      for block in part.blocks {
        for (i, p) in bound.parameters.enumerated()
        where Self.block(of: p.name, in: bound) == block && p.role == .trainable {
          changed[i] = fresh[i]
        }
        let session = try model.with(values: changed).session(SessionOptions(threads: threads, taps: []))
        for (n, (x, original)) in zip(inputs, originalMaps).enumerated() {
          let e = try session.explain(tap, [inputName: x], target: info.needsClass ? .fixed(explained[n]) : .predicted)
          part.measures[n].sanity.append(Metrics.spearman(original, e.map.doubles))
        }
      }
    }
    return part
  }

  /// The report over every example's measures (in the split's order): the means, medians and
  /// rates of the per-example numbers. `blocks` empty: no sanity rows.
  public static func report(
    tap: String, kind: TapKind, blocks: [String], measures: [ExampleMeasures]
  )
    -> [(String, JSONValue)]
  {
    let count = measures.count
    let isAttention = kind == .attention
    let correct = measures.filter(\.correct).count
    let deletion = measures.compactMap(\.deletion), insertion = measures.compactMap(\.insertion)
    let unitName = measures.last { $0.units != nil }?.units ?? "units"
    let tvd = measures.flatMap(\.permutationTVD)
    let flips = measures.reduce(0) { $0 + $1.flips }
    let localised = measures.filter { $0.hits != nil }
    let pointingFrames = localised.flatMap { $0.hits ?? [] }, energyFrames = localised.flatMap { $0.energies ?? [] }
    let pointingClips = localised.map { Metrics.mean($0.hits ?? []) }
    let energyClips = localised.map { Metrics.mean($0.energies ?? []) }
    let pointingFramesCorrect = localised.filter(\.correct).flatMap { $0.hits ?? [] }
    let energyFramesCorrect = localised.filter(\.correct).flatMap { $0.energies ?? [] }
    let pointingPeak = localised.compactMap { m in m.peak.map { m.hits?[$0] ?? 0 } }
    let pointingPeakCorrect = localised.filter(\.correct).compactMap { m in m.peak.map { m.hits?[$0] ?? 0 } }
    let speechMass = measures.compactMap(\.speechMass), speechChance = measures.compactMap(\.speechChance)

    var report: [(String, JSONValue)] = [
      ("tap", .string(tap)), ("kind", .string(kind.rawValue)),
      ("examples", .int(count)),
      ("accuracy", .number(Double(correct) / Double(count))),
    ]
    if !deletion.isEmpty {
      let meanCurve = { (curves: [[Double]]) in (0..<curves[0].count).map { i in Metrics.mean(curves.map { $0[i] }) } }
      let d = meanCurve(deletion), ins = meanCurve(insertion)
      report.append(("units", .string(unitName)))
      report.append(
        (
          "deletion",
          .object([
            ("auc", .number(Metrics.mean(deletion.map(Metrics.area)))),
            ("curve", .array(d.map { .number($0) })),
          ])
        ))
      report.append(
        (
          "insertion",
          .object([
            ("auc", .number(Metrics.mean(insertion.map(Metrics.area)))),
            ("curve", .array(ins.map { .number($0) })),
          ])
        ))
    }
    if isAttention {
      report.append(
        (
          "attention_faithfulness",
          .object([
            ("uniform_accuracy", .number(Double(measures.filter(\.uniformCorrect).count) / Double(count))),
            ("permutation_tvd_mean", .number(Metrics.mean(tvd))),
            ("permutation_tvd_median", .number(Metrics.median(tvd))),
            ("permutation_flip_rate", .number(tvd.count > 0 ? Double(flips) / Double(tvd.count) : 0)),
          ])
        ))
    }
    if !blocks.isEmpty && count > 0 {
      report.append(
        (
          "sanity",
          .array(
            blocks.indices.map { b in
              let rhos = measures.compactMap { b < $0.sanity.count ? $0.sanity[b] : nil }
              return .object([("reinitialised_through", .string(blocks[b])), ("spearman", .number(Metrics.mean(rhos)))])
            })
        ))
    }
    if !pointingFrames.isEmpty {
      report.append(
        (
          "localisation",
          .object([
            ("pointing_per_frame", .number(Metrics.mean(pointingFrames))),
            ("energy_per_frame", .number(Metrics.mean(energyFrames))),
            ("pointing_per_clip", .number(Metrics.mean(pointingClips))),
            ("energy_per_clip", .number(Metrics.mean(energyClips))),
            (
              "pointing_per_frame_correct",
              pointingFramesCorrect.isEmpty ? .null : .number(Metrics.mean(pointingFramesCorrect))
            ),
            (
              "energy_per_frame_correct",
              energyFramesCorrect.isEmpty ? .null : .number(Metrics.mean(energyFramesCorrect))
            ),
            ("pointing_clip_peak", pointingPeak.isEmpty ? .null : .number(Metrics.mean(pointingPeak))),
            (
              "pointing_clip_peak_correct",
              pointingPeakCorrect.isEmpty ? .null : .number(Metrics.mean(pointingPeakCorrect))
            ),
          ])
        ))
    }
    if !speechMass.isEmpty {
      report.append(
        (
          "speech",
          .object([
            (
              isAttention ? "attention_mass_in_speech" : "relevance_mass_in_speech",
              .number(Metrics.mean(speechMass))
            ),
            ("speech_frame_share", .number(Metrics.mean(speechChance))),
          ])
        ))
    }
    return report
  }

  /// Two columns, one line per number; curves are left to the JSON.
  public static func table(_ report: [(String, JSONValue)]) -> String {
    var lines: [String] = []
    func add(_ key: String, _ value: JSONValue) {
      switch value {
      case .object(let pairs): for (k, v) in pairs where k != "curve" { add(key + "." + k, v) }
      case .array(let items):
        for (i, item) in items.enumerated() {
          if case .object(let pairs) = item, pairs.count == 2 {
            lines.append(Classification.row("\(key)[\(i)] \(pairs[0].1.plain)", pairs[1].1.plain))
          } else {
            add("\(key)[\(i)]", item)
          }
        }
      default: lines.append(Classification.row(key, value.plain))
      }
    }
    for (k, v) in report { add(k, v) }
    return lines.joined(separator: "\n")
  }

  /// What a deletion/insertion curve removes: frames of a clip, pixels of an image, time
  /// frames of an MFCC image; their importance from the tap's outputs.
  struct Units {
    var name: String
    var scores: [Double]
    /// The input with the units for which `remove` is true set to 0 (the recipe's mean).
    var apply: (Tensor, (Int) -> Bool) -> Tensor
  }

  static func units(_ e: Explanation, inputShape s: [Int]) -> Units? {
    func zeroing(_ unitOf: @escaping (Int) -> Int) -> (Tensor, (Int) -> Bool) -> Tensor {
      { x, remove in
        var v = x.floats
        for i in v.indices where remove(unitOf(i)) { v[i] = 0 }
        return Tensor(shape: x.shape, f32: v)
      }
    }
    if e.perStep, let r = e.relevance, s.count == 5 {
      let frame = s[2] * s[3] * s[4]
      return Units(name: "frames", scores: Array(r.doubles.prefix(s[1])), apply: zeroing { $0 / frame })
    }
    if s.count == 5, let raw = e.maps["raw"], raw.shape == s {
      // A map of the clip itself (saliency, a gradient at the input): each frame's magnitude.
      let frame = s[2] * s[3] * s[4], v = raw.doubles
      let scores = (0..<s[1]).map { t in (0..<frame).reduce(0.0) { $0 + abs(v[t * frame + $1]) } }
      return Units(name: "frames", scores: scores, apply: zeroing { $0 / frame })
    }
    if !e.perStep, let up = e.upsampled, s.count == 4 {
      let plane = s[2] * s[3]
      return Units(name: "pixels", scores: Array(up.doubles.prefix(plane)), apply: zeroing { $0 % plane })
    }
    if s.count == 3, let scores = Self.frameWeights(e, inputShape: s) {
      let time = s[1], width = s[2]
      return Units(name: "time frames", scores: scores, apply: zeroing { ($0 / width) % time })
    }
    return nil
  }

  /// A clip's map per frame at the input's resolution, `[1, T, H, W]`, and the map whose
  /// highest value picks the clip's peak frame: a per-step map's upsampled and raw maps, or
  /// for a map of the clip itself (saliency, a gradient at the input) its magnitude summed over
  /// the colour channels, for both.
  static func frameMaps(_ e: Explanation, inputShape s: [Int]) -> (maps: Tensor, peak: Tensor)? {
    if e.perStep, let up = e.upsampled, let raw = e.maps["raw"] { return (up, raw) }
    guard s.count == 5, s[0] == 1, let raw = e.maps["raw"], raw.shape == s else { return nil }
    let (t, c, plane) = (s[1], s[2], s[3] * s[4]), v = raw.floats
    var maps = [Float](repeating: 0, count: t * plane)
    for f in 0..<t {
      for k in 0..<c {
        for i in 0..<plane { maps[f * plane + i] += abs(v[(f * c + k) * plane + i]) }
      }
    }
    let map = Tensor(shape: [1, t, s[3], s[4]], f32: maps)
    return (map, map)
  }

  /// The weight of each of the input's time frames (axis 1) in the first example's map, by
  /// magnitude, when the map weighs them: attention over the frames, or a map of the input
  /// itself (saliency, a gradient at the input, Integrated Gradients, …); nil otherwise.
  static func frameWeights(_ e: Explanation, inputShape s: [Int]) -> [Double]? {
    guard s.count >= 2, let raw = e.maps["raw"], raw.shape.count >= 2, raw.shape[1] == s[1],
      weighsInputFrames(e.kind) || raw.shape == s
    else { return nil }
    let time = s[1], per = raw.count / (raw.shape[0] * time), v = raw.doubles
    return (0..<time).map { t in (0..<per).reduce(0.0) { $0 + abs(v[t * per + $1]) } }
  }

  /// Whether a tap's map weighs the input's time frames (its second axis is the input's):
  /// attention over frames, and saliency, which has the input's shape.
  static func weighsInputFrames(_ kind: TapKind) -> Bool {
    switch kind {
    case .attention, .saliency: true
    case .activation, .gradient, .gradcam, .gradcampp, .cam, .hidden, .layercam, .xgradcam, .hirescam, .ig, .smoothgrad,
      .vargrad, .occlusion, .scorecam, .eigencam:
      false
    }
  }

  /// Boxes of the sampled frames from the clip's sidecar (tools/gen_actions.py), in the
  /// video's pixels.
  static func boxes(_ path: String, recipe: InputRecipe) -> [Metrics.Box]? {
    guard let object = sidecar(path), let all = object["boxes"] as? [[Double]], let frames = object["frames"] as? Int,
      let video = try? VideoRecipe(recipe),
      let indices = try? VideoDecoder.frameIndices(frameCount: frames, count: video.frames, sampling: video.sampling)
    else { return nil }
    return indices.compactMap { i in
      guard i < all.count, all[i].count == 4 else { return nil }
      return Metrics.Box(x0: all[i][0], y0: all[i][1], x1: all[i][2], y1: all[i][3])
    }
  }

  static func sidecarSize(_ path: String) -> (Int, Int) {
    let o = sidecar(path)
    return ((o?["width"] as? Int) ?? 1, (o?["height"] as? Int) ?? 1)
  }

  static func sidecar(_ path: String) -> [String: Any]? {
    let file = (path as NSString).deletingPathExtension + ".json"
    guard let data = FileManager.default.contents(atPath: file) else { return nil }
    return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
  }

  /// The block a parameter belongs to: its first name component, or the first two inside a
  /// per-step scope (`cnn.layer4`).
  static func block(of name: String, in graph: Graph) -> String {
    let parts = name.split(separator: ".").map(String.init)
    if parts.count > 2, graph.scopes.contains(where: { $0.path == parts[0] && $0.steps != nil }) {
      return parts[0] + "." + parts[1]
    }
    return parts.first ?? name
  }

  /// Blocks with trainable parameters, from the output end to the input end.
  static func blocksTopDown(_ graph: Graph) -> [String] {
    var seen: [String] = []
    for p in graph.parameters where p.role == .trainable {
      let b = block(of: p.name, in: graph)
      if !seen.contains(b) { seen.append(b) }
    }
    return seen.reversed()
  }
}

extension JSONValue {
  /// The value as table text (numbers to four decimals).
  public var plain: String {
    switch self {
    case .number(let v): String(format: "%.4f", v)
    case .string(let s): s
    default: text
    }
  }
}
