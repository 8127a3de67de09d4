import Foundation
import GlassboxAnalysis
import GlassboxFormat
import GlassboxIR
import GlassboxMedia

/// An explanation as files a person opens: the tap's tensors as `.npy`, a `summary.json`
/// (prediction, class explained, probabilities) and pictures drawn over the input — Grad-CAM
/// over each frame (PNG strip, MP4 and GIF for a clip, with the object's box where a generated
/// clip's sidecar gives one; relevance per frame as SVG), attention beside the MFCC image with
/// the speech intervals marked.
public enum ExplanationFiles {
  /// Writes the explanation of `example` of the batch (every example when nil) into `directory`
  /// (made when missing): `TAP.npy`, `TAP.normalized.npy`, …, `summary.json` and, unless
  /// `pictures` is false, the pictures (of the first example written). `input` is the batch
  /// that was explained; `mediaPath` the file it came from (recorded, and read for sidecar
  /// speech intervals); `label` the true class if known. For several examples, `summary.json`
  /// holds a list per example where it holds a number for one. A model with several inputs
  /// passes its first input as `input` (the one pictures are drawn over) and every input's file
  /// by name in `inputFiles`, which `summary.json` records as `inputs`.
  public static func write(
    _ explanation: Explanation, example: Int? = nil, input: Tensor, model: Model,
    mediaPath: String, inputFiles: [(input: String, path: String)] = [], label: Int? = nil,
    classNames: [String]? = nil, pictures: Bool = true, to directory: String
  ) throws(GlassboxError) {
    try withGlassboxErrors(file: directory) {
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      func path(_ file: String) -> String { (directory as NSString).appendingPathComponent(file) }
      let tap = explanation.tap
      func written(_ t: Tensor) -> Tensor { example.map { t.example($0) } ?? t }
      for (role, t) in explanation.maps.sorted(by: { $0.key < $1.key }) {
        try NPY.write(written(t), to: path(role == "raw" ? "\(tap).npy" : "\(tap).\(role).npy"))
      }
      let names = classNames ?? model.labels
      let scores = explanation.outputs[model.outputs[0].name].map(written)
      let rows = scores?.shape.first ?? 0, width = rows > 0 ? (scores?.count ?? 0) / rows : 0
      let values = scores?.floats ?? []
      let logits = (0..<rows).map { r in Array(values[(r * width)..<((r + 1) * width)]) }
      let probabilities = logits.map(Self.softmax)
      let predicted = logits.map { l in l.indices.max { l[$0] < l[$1] } ?? 0 }
      let classes = explanation.classes.map { c in example.map { [c[$0]] } ?? c }
      func one<T>(_ items: [T], _ json: (T) -> JSONValue) -> JSONValue {
        items.count == 1 ? json(items[0]) : .array(items.map(json))
      }
      var summary: [(String, JSONValue)] = [
        ("tap", .string(tap)), ("kind", .string(explanation.kind.rawValue)), ("predicted", one(predicted) { .int($0) }),
      ]
      if predicted.allSatisfy({ $0 < names.count }) {
        summary.append(("predicted_label", one(predicted) { .string(names[$0]) }))
      }
      if let label { summary.append(("label", .int(label))) }
      summary.append(("class", classes.map { one($0) { .int($0) } } ?? .null))
      summary.append(("scope", explanation.scope.map { .string($0) } ?? .null))
      summary.append(("probabilities", one(probabilities) { .array($0.map { .number(Double($0)) }) }))
      summary.append(
        (
          "outputs",
          .object(
            explanation.maps.keys.sorted().map { role in
              (role, .string(role == "raw" ? tap : "\(tap).\(role)"))
            })
        ))
      summary.append(("input", .string(mediaPath)))
      if inputFiles.count > 1 { summary.append(("inputs", .object(inputFiles.map { ($0.input, .string($0.path)) }))) }
      summary.append(("model_crc32", model.path.flatMap(Self.crc32).map { .string($0) } ?? .null))
      if explanation.perStep {
        summary.append(("relevance_definition", .string("m_t / (sum_t m_t + 1e-7), m_t = mean of frame t's raw map")))
      }
      try writeAtomically(Data((JSONValue.object(summary).text + "\n").utf8), to: path("summary.json"))
      guard pictures, let recipe = model.recipes.first(where: { $0.input == model.inputs.first?.name }) else { return }
      try drawPictures(
        explanation, example: example ?? 0, input: input.example(example ?? 0), recipe: recipe,
        mediaPath: mediaPath, into: directory)
    }
  }

  /// Where the files of `tap`'s explanation of one example go when `taps` were explained
  /// together: `root/example` for one tap (the layout of a single tap), `root/TAP/example` for
  /// several, so that each `root/TAP` holds what explaining with that tap alone writes. An
  /// empty `example` is the root (one example).
  public static func directory(root: String, tap: String, of taps: [String], example: String) -> String {
    let base = taps.count > 1 ? (root as NSString).appendingPathComponent(tap) : root
    return example.isEmpty ? base : (base as NSString).appendingPathComponent(example)
  }

  /// The CRC-32 of a model file, as `summary.json` records it (which model explained).
  static func crc32(_ path: String) -> String? {
    guard Model.isModelFile(path), let data = FileManager.default.contents(atPath: path) else { return nil }
    return String(format: "%08x", CRC32.checksum(Array(data)))
  }

  static func drawPictures(
    _ e: Explanation, example index: Int, input: Tensor, recipe: InputRecipe, mediaPath: String,
    into dir: String
  ) throws {
    func path(_ file: String) -> String { (dir as NSString).appendingPathComponent(file) }
    let name = e.tap
    switch recipe.kind {
    case .video, .image:
      let s = input.shape
      let (h, w) = (s[s.count - 2], s[s.count - 1])
      let frames = s.count == 5 ? s[1] : 1
      let heat: [Float]
      if let maps = e.upsampled {
        heat = maps.example(index).floats
      } else if let raw = e.maps["raw"]?.example(index), raw.shape == s {
        heat = Self.pixelMagnitudes(raw.floats, frames: frames, height: h, width: w)
      } else {
        return
      }
      let values = input.floats
      // A generated action clip's boxes (its sidecar), drawn on the frames they belong to.
      let boxes = recipe.kind == .video ? ExplanationEvaluation.boxes(mediaPath, recipe: recipe) ?? [] : []
      let size = boxes.isEmpty ? (1, 1) : ExplanationEvaluation.sidecarSize(mediaPath)
      var overlays: [RGBImage] = []
      for t in 0..<frames {
        let frame = ExplanationPictures.denormalized(
          values[(t * 3 * h * w)..<((t + 1) * 3 * h * w)], width: w, height: h,
          mean: VideoRecipe.imagenetMean, std: VideoRecipe.imagenetStd)
        var overlay = Heatmap.overlay(Array(heat[(t * h * w)..<((t + 1) * h * w)]), width: w, height: h, on: frame)
        if t < boxes.count {
          let b = boxes[t].scaled(from: size.0, size.1, to: w, h)
          ExplanationPictures.outline(&overlay, x0: b.x0, y0: b.y0, x1: b.x1, y1: b.y1)
        }
        overlays.append(overlay)
      }
      try ImageWriter.writePNG(ExplanationPictures.strip(overlays), to: path("\(name).png"))
      if frames > 1 {
        for ext in ["mp4", "gif"] {
          let writer = try VideoWriter(path: path("\(name).\(ext)"), width: w, height: h, framesPerSecond: 4)
          for o in overlays { try writer.append(o) }
          try writer.finish()
        }
      }
      if let relevance = e.relevance?.example(index) {
        let r = Array(relevance.floats.prefix(frames))
        try writeAtomically(
          Data(ExplanationPictures.relevanceSVG(r, title: "\(name): relevance per frame").utf8),
          to: path("\(name).relevance.svg"))
      }
    case .audio:
      guard let raw = e.maps["raw"]?.example(index) else { return }
      try ImageWriter.writePNG(
        Self.audioPicture(input: input, map: raw, mediaPath: mediaPath, recipe: recipe),
        to: path("\(name).png"))
    }
  }

  /// An MFCC explanation on one time axis, cropped to the clip's frames (short clips are padded
  /// with zero rows) and widened so a short clip stays readable: the MFCC with each coefficient
  /// scaled on its own, the speech intervals of a generated clip's sidecar (green), the
  /// explanation's weight per frame as a curve (a 1-D attention's weights; the sum of a 2-D map's
  /// magnitudes over its features), and a 2-D map's magnitudes (each feature scaled on its own).
  static func audioPicture(input: Tensor, map raw: Tensor, mediaPath: String, recipe: InputRecipe) -> RGBImage {
    let s = input.shape
    let (frames, features) = (s[s.count - 2], s[s.count - 1])
    let mfcc = Array(input.floats.prefix(frames * features))
    let kept = ExplanationPictures.contentFrames(mfcc, frames: frames, features: features)
    let scale = max(1, min(4, 768 / max(kept.count, 1)))
    let width = kept.count * scale
    let cropped = Array(mfcc[(kept.lowerBound * features)..<(kept.upperBound * features)])
    var panels = [ExplanationPictures.perFeatureImage(cropped, frames: kept.count, features: features, scale: scale)]
    if let speech = speechIntervals(mediaPath: mediaPath, recipe: recipe, frames: frames) {
      let shifted = speech.map { r in
        max(r.lowerBound - kept.lowerBound, 0) * scale..<max(r.upperBound - kept.lowerBound, 0) * scale
      }
      panels.append(ExplanationPictures.intervalBand(width: width, height: 8, intervals: shifted))
    }
    let r = raw.shape, v = raw.floats
    if r.count >= 2, r[1] == frames {
      let per = r.count == 3 ? r[2] : 1
      let weights = kept.map { t in (0..<per).reduce(Float(0)) { $0 + abs(v[t * per + $1]) } }
      panels.append(ExplanationPictures.widened(ExplanationPictures.curve(weights, height: 64), by: scale))
      if r.count == 3 {
        let map = v[(kept.lowerBound * per)..<(kept.upperBound * per)].map(abs)
        panels.append(
          ExplanationPictures.perFeatureImage(
            map, frames: kept.count, features: per, colorMap: .jet,
            scale: scale))
      }
    }
    return ExplanationPictures.column(panels)
  }

  /// A map in the input's own layout (saliency, a gradient of the input: `[B, (T,) 3, H, W]`)
  /// as one heat value per pixel of the first example: the magnitude summed over the colour
  /// channels, min-max normalised per frame. `[T·H·W]`.
  static func pixelMagnitudes(_ map: [Float], frames: Int, height h: Int, width w: Int) -> [Float] {
    var out = [Float](repeating: 0, count: frames * h * w)
    for t in 0..<frames {
      for c in 0..<3 { for p in 0..<(h * w) { out[t * h * w + p] += abs(map[(t * 3 + c) * h * w + p]) } }
      let frame = ExplanationPictures.normalized(Array(out[(t * h * w)..<((t + 1) * h * w)]))
      out.replaceSubrange((t * h * w)..<((t + 1) * h * w), with: frame)
    }
    return out
  }

  static func softmax(_ v: [Float]) -> [Float] {
    guard let m = v.max() else { return [] }
    let e = v.map { Foundation.exp(Double($0 - m)) }
    let s = e.reduce(0, +)
    return e.map { Float($0 / s) }
  }

  /// Speech intervals of the sidecar `<clip>.json` (seconds, from tools/gen_speech.py) as
  /// column ranges of the kept MFCC window: the clip has `1 + ⌊duration·rate/hop⌋` frames
  /// (librosa's centred framing) and the recipe keeps the last `frames` of them.
  public static func speechIntervals(mediaPath: String, recipe: InputRecipe, frames: Int) -> [Range<Int>]? {
    let sidecar = (mediaPath as NSString).deletingPathExtension + ".json"
    guard let data = FileManager.default.contents(atPath: sidecar),
      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let speech = object["speech"] as? [[Double]], let duration = object["duration"] as? Double,
      let audio = try? AudioRecipe(recipe)
    else { return nil }
    let perSecond = Double(audio.sampleRateHz) / Double(audio.hop)
    let total = 1 + Int(duration * perSecond)
    let offset = total - frames  // negative when the clip was padded at its start
    return speech.compactMap { pair in
      guard pair.count == 2 else { return nil }
      let lo = Int((pair[0] * perSecond).rounded(.down)) - offset, hi = Int((pair[1] * perSecond).rounded(.up)) - offset
      return hi > lo ? max(lo, 0)..<max(hi, 0) : nil
    }
  }
}

extension Tensor {
  /// Example `i` of a batch (the leading axis), keeping a leading axis of 1; the tensor itself
  /// when it has one example.
  public func example(_ i: Int) -> Tensor {
    guard let n = shape.first, n > 1, i >= 0, i < n else { return self }
    let per = count / n
    let range = (i * per)..<((i + 1) * per)
    let rest = [1] + shape.dropFirst()
    switch storage {
    case .f32(let v): return Tensor(shape: rest, storage: .f32(Array(v[range])))
    case .f64(let v): return Tensor(shape: rest, storage: .f64(Array(v[range])))
    case .i64(let v): return Tensor(shape: rest, storage: .i64(Array(v[range])))
    case .bool(let v): return Tensor(shape: rest, storage: .bool(Array(v[range])))
    }
  }
}
