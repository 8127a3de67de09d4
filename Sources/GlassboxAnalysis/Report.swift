import Foundation

/// One self-contained HTML page from a study folder (layout in `StudyRecord`'s comment):
/// every image embedded as a `data:` URI, inline CSS, no script and no network access, laid
/// out for a laptop screen. It renders whatever is present — a folder without `study.json`
/// still shows its figures — and says what is missing rather than failing.
///
/// Sections: the run (machine, mode, total time); a gallery of what each model looked at (its
/// correctly and wrongly classified examples explained); the speech models' accuracy and
/// cross-entropy beside the seed study's (labelled as measured on the real data); the video
/// models against the seed's HMDB-51 numbers; confusion matrices; each model's figures with the
/// command that produced each; the explanation metrics (`metrics.json`); the stages with their
/// times and commands.
public struct Report {
  /// The study folder.
  public var directory: String
  /// Page title.
  public var title = "Glassbox study report"

  /// A report of `directory`.
  public init(directory: String) { self.directory = directory }

  /// Image files larger than this are left out with a note (a page stays loadable).
  public static let maxImageBytes = 8 << 20

  /// The HTML page.
  public func html() throws(AnalysisError) -> String {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw AnalysisError("\(directory): no such study folder")
    }
    let recordPath = path("study.json")
    let record: StudyRecord? =
      FileManager.default.fileExists(atPath: recordPath) ? try StudyRecord.read(recordPath) : nil

    var body = "<h1>\(escapeXML(title))</h1>\n"
    body += runSection(record)
    body += gallerySection(record)
    body += resultTables(record)
    body += confusionSection(record)
    body += figureSections(record)
    body += metricsSection()
    body += stageSection(record)
    body +=
      "<footer>Written by <code>glassbox report \(escapeXML(directory))</code>. Seed numbers are those published by the seed study on the real data sets; ours are measured on the generated data sets described in docs/study/RESULTS.md.</footer>\n"
    return """
      <!DOCTYPE html>
      <html lang="en"><head><meta charset="utf-8">
      <meta name="viewport" content="width=device-width, initial-scale=1">
      <title>\(escapeXML(title))</title>
      <style>\(Report.css)</style>
      </head><body><main>
      \(body)</main></body></html>

      """
  }

  /// Writes the page to `output` atomically.
  public func write(to output: String) throws(AnalysisError) {
    try writeAtomically(Data(try html().utf8), to: output)
  }

  static let css = """
    body{font:15px/1.45 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;background:#fafafa;margin:0}
    main{max-width:1180px;margin:0 auto;padding:16px 24px 40px;background:white}
    h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
    h3{font-size:16px;margin:18px 0 6px}
    table{border-collapse:collapse;margin:6px 0 12px;font-variant-numeric:tabular-nums}
    th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}td{white-space:nowrap}td.l{white-space:normal}th{background:#f3f3f3}td.l,th.l{text-align:left}
    td.seed,th.seed{color:#666;background:#fbf8ef}
    .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:14px}
    figure{margin:0;border:1px solid #e4e4e4;padding:8px;background:white}
    figure img{max-width:100%;height:auto;display:block;margin:0 auto;image-rendering:auto}
    figcaption{font-size:13px;color:#444;margin-top:4px}
    code{font:12px/1.3 Menlo,Consolas,monospace;background:#f4f4f4;padding:1px 3px;word-break:break-all}
    .note{color:#8a5a00;background:#fff6e0;padding:6px 10px;border-left:3px solid #e0a000}
    .confusion td{min-width:28px;text-align:center}.confusion th{font-size:12px}
    footer{margin-top:30px;font-size:12px;color:#666}
    """

  func path(_ relative: String) -> String { (directory as NSString).appendingPathComponent(relative) }

  static func percent(_ x: Double?) -> String { x.map { String(format: "%.1f%%", 100 * $0) } ?? "—" }
  static func number(_ x: Double?, _ format: String = "%.3f") -> String { x.map { String(format: format, $0) } ?? "—" }
  static func seconds(_ s: Double) -> String {
    s >= 90 ? String(format: "%.1f min", s / 60) : String(format: "%.1f s", s)
  }

  func runSection(_ record: StudyRecord?) -> String {
    guard let record else {
      return
        "<p class=\"note\">No <code>study.json</code> in \(escapeXML(directory)): showing the figures present only.</p>\n"
    }
    let total = record.stages.reduce(0) { $0 + $1.seconds }
    let failed = record.stages.filter { $0.state == "failed" }
    var s =
      "<p>\(record.quick ? "Quick run (<code>--quick</code>)" : "Full run") started \(escapeXML(record.started)) on \(escapeXML(record.machine)); "
    s +=
      "\(record.stages.filter { $0.state == "done" }.count) of \(record.stages.count) stages done in \(Report.seconds(total)).</p>\n"
    if !failed.isEmpty {
      s +=
        "<p class=\"note\">Failed: "
        + failed.map { "<code>\(escapeXML($0.name))</code>: \(escapeXML($0.note ?? ""))" }.joined(separator: "; ")
        + "</p>\n"
    }
    return s
  }

  func resultTables(_ record: StudyRecord?) -> String {
    let models = record?.models ?? []
    var s = ""
    for (dataset, heading, seedData) in [
      ("speech", "Spoken language identification", "real Indian-language speech"),
      ("actions", "Action recognition", "HMDB-51"),
    ] {
      let names = SeedStudy.order.filter { n in
        SeedStudy.results[n]?.dataset.contains(dataset == "speech" ? "speech" : "HMDB") == true
      }
      let ours = Dictionary(
        models.filter { $0.dataset == dataset }.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
      let extra = models.filter { $0.dataset == dataset && !names.contains($0.name) }.map(\.name)
      s +=
        "<h2>\(heading)</h2>\n<table><tr><th class=\"l\">model</th><th>test accuracy (ours)</th><th>cross-entropy (ours)</th>"
      s +=
        "<th>test examples</th><th class=\"seed\">seed accuracy<br>(\(seedData))</th><th class=\"seed\">seed cross-entropy</th></tr>\n"
      for name in names + extra {
        let m = ours[name], seed = SeedStudy.results[name]
        s += "<tr><td class=\"l\">\(escapeXML(seed?.title ?? name)) <code>\(escapeXML(name))</code></td>"
        s +=
          "<td>\(Report.percent(m?.accuracy))</td><td>\(Report.number(m?.loss))</td><td>\(m?.testExamples.map(String.init) ?? "—")</td>"
        s +=
          "<td class=\"seed\">\(Report.percent(seed?.accuracy))</td><td class=\"seed\">\(Report.number(seed?.loss))</td></tr>\n"
      }
      s += "</table>\n"
      if ours.isEmpty { s += "<p class=\"note\">No \(dataset) model results in this folder yet.</p>\n" }
    }
    return s
  }

  func confusionSection(_ record: StudyRecord?) -> String {
    let models = (record?.models ?? []).filter { $0.confusion != nil }
    guard !models.isEmpty else { return "" }
    var s = "<h2>Confusion matrices (test split; rows true, columns predicted)</h2>\n<div class=\"grid\">\n"
    for m in models {
      guard let matrix = m.confusion else { continue }
      let peak = max(1, matrix.flatMap { $0 }.max() ?? 1)
      s += "<figure><table class=\"confusion\"><tr><th></th>"
      for (j, _) in matrix.enumerated() {
        s += "<th title=\"\(escapeXML(label(m, j)))\">\(escapeXML(short(label(m, j))))</th>"
      }
      s += "</tr>\n"
      for (i, row) in matrix.enumerated() {
        s += "<tr><th class=\"l\">\(escapeXML(label(m, i)))</th>"
        for (j, v) in row.enumerated() {
          let strength = Double(v) / Double(peak)
          let colour =
            i == j
            ? "rgba(46,125,50,\(String(format: "%.2f", 0.12 + 0.75 * strength)))"
            : "rgba(198,40,40,\(String(format: "%.2f", v == 0 ? 0 : 0.12 + 0.75 * strength)))"
          s += "<td style=\"background:\(colour)\">\(v)</td>"
        }
        s += "</tr>\n"
      }
      s += "</table><figcaption><b>\(escapeXML(m.name))</b>, accuracy \(Report.percent(m.accuracy))"
      if let c = m.commands["evaluate"] { s += "<br><code>\(escapeXML(c))</code>" }
      s += "</figcaption></figure>\n"
    }
    return s + "</div>\n"
  }

  func label(_ m: StudyRecord.ModelResult, _ i: Int) -> String { i < m.classes.count ? m.classes[i] : String(i) }
  func short(_ s: String) -> String { s.count <= 4 ? s : String(s.prefix(3)) + "." }

  /// Per model folder (study models first, then any other folder with images): its figures.
  /// What each model looked at, first: the explanation pictures (`.png`) of its correctly and
  /// wrongly classified examples (`MODEL/<tap>/correct/`, `…/wrong/`), side by side.
  func gallerySection(_ record: StudyRecord?) -> String {
    var rows = ""
    for folder in modelFolders() {
      let pictures = imageFiles(in: folder).filter { f in
        f.hasSuffix(".png") && (f.contains("/correct/") || f.contains("/wrong/"))
      }
      guard !pictures.isEmpty else { continue }
      let model = record?.models.first { $0.name == folder }
      rows +=
        "<h3>\(escapeXML(SeedStudy.results[folder]?.title ?? folder)) <code>\(escapeXML(folder))</code></h3>\n"
        + "<div class=\"grid\">\n" + pictures.map { figure($0, record: record, model: model) }.joined() + "</div>\n"
    }
    guard !rows.isEmpty else { return "" }
    return "<h2>What the models looked at</h2>\n<p>Each model's explanation of a correctly and a wrongly classified "
      + "test example (details and metrics below).</p>\n" + rows
  }

  /// The study folder's model folders, the seed study's order first.
  func modelFolders() -> [String] {
    let fm = FileManager.default
    let folders = ((try? fm.contentsOfDirectory(atPath: directory)) ?? []).filter { name in
      var isDirectory: ObjCBool = false
      return !name.hasPrefix(".") && name != "data" && fm.fileExists(atPath: path(name), isDirectory: &isDirectory)
        && isDirectory.boolValue
    }
    return SeedStudy.order.filter(folders.contains) + folders.filter { !SeedStudy.order.contains($0) }.sorted()
  }

  func figureSections(_ record: StudyRecord?) -> String {
    var s = ""
    for folder in modelFolders() {
      let images = imageFiles(in: folder)
      guard !images.isEmpty else { continue }
      let model = record?.models.first { $0.name == folder }
      s += "<h2>\(escapeXML(SeedStudy.results[folder]?.title ?? folder)) <code>\(escapeXML(folder))</code></h2>\n"
      if let t = model?.trustworthiness { s += "<p>t-SNE trustworthiness T(5) = \(String(format: "%.3f", t)).</p>\n" }
      var groups: [(String, [String])] = []
      for relative in images {
        let g = (relative as NSString).deletingLastPathComponent
        if groups.last?.0 == g { groups[groups.count - 1].1.append(relative) } else { groups.append((g, [relative])) }
      }
      for (g, files) in groups {
        if g != folder { s += "<h3>\(escapeXML((g as NSString).lastPathComponent))</h3>\n" }
        s += "<div class=\"grid\">\n" + files.map { figure($0, record: record, model: model) }.joined() + "</div>\n"
      }
    }
    return s
  }

  /// Image files under `folder` (relative to the study folder): the folder's own, then each
  /// sub-folder's, sorted by name.
  func imageFiles(in folder: String) -> [String] {
    let kinds: Set<String> = ["png", "svg", "gif", "jpg", "jpeg"]
    guard let all = FileManager.default.enumerator(atPath: path(folder))?.allObjects as? [String] else { return [] }
    let images = all.filter { kinds.contains(($0 as NSString).pathExtension.lowercased()) && !$0.hasPrefix(".") }
      .map { folder + "/" + $0 }
    return images.sorted { a, b in
      let da = (a as NSString).deletingLastPathComponent, db = (b as NSString).deletingLastPathComponent
      return da == db ? a < b : (da == folder ? true : db == folder ? false : da < db)
    }
  }

  func figure(_ relative: String, record: StudyRecord?, model: StudyRecord.ModelResult?) -> String {
    let recorded = record?.figures.first { $0.path == relative }
    let name = ((relative as NSString).lastPathComponent as NSString).deletingPathExtension
    let kind = ["layercam", "gradcam", "attention"].first { relative.contains("/\($0)/") } ?? name
    let caption = recorded?.caption ?? Report.defaultCaption(kind: kind, name: name)
    let command = recorded?.command ?? model?.commands[kind]
    var s = "<figure>"
    if let uri = dataURI(relative) {
      s += "<img src=\"\(uri)\" alt=\"\(escapeXML(caption))\">"
    } else {
      s +=
        "<p class=\"note\">\(escapeXML(relative)) could not be embedded (unreadable or over \(Report.maxImageBytes >> 20) MiB).</p>"
    }
    s += "<figcaption>\(escapeXML(caption)) <span style=\"color:#888\">(\(escapeXML(relative)))</span>"
    if let command { s += "<br><code>\(escapeXML(command))</code>" }
    return s + "</figcaption></figure>\n"
  }

  static func defaultCaption(kind: String, name: String) -> String {
    switch kind {
    case "curves": "Training curves: loss and accuracy per epoch"
    case "tsne": "t-SNE of the time-averaged LSTM outputs over the training set, coloured by class"
    case "layercam": "LayerCAM through the LSTM: \(name.replacingOccurrences(of: "_", with: " "))"
    case "gradcam": "Grad-CAM through the LSTM: \(name.replacingOccurrences(of: "_", with: " "))"
    case "attention": "Attention over the MFCC image: \(name.replacingOccurrences(of: "_", with: " "))"
    default: name.replacingOccurrences(of: "_", with: " ")
    }
  }

  func dataURI(_ relative: String) -> String? {
    let file = path(relative)
    guard let attributes = try? FileManager.default.attributesOfItem(atPath: file),
      let size = attributes[.size] as? Int, size <= Report.maxImageBytes,
      let data = FileManager.default.contents(atPath: file)
    else { return nil }
    let mime: String
    switch (relative as NSString).pathExtension.lowercased() {
    case "png": mime = "image/png"
    case "svg": mime = "image/svg+xml"
    case "gif": mime = "image/gif"
    default: mime = "image/jpeg"
    }
    return "data:\(mime);base64,\(data.base64EncodedString())"
  }

  /// `metrics.json` as tables: an object of objects is one table (rows × columns); other
  /// values are listed.
  func metricsSection() -> String {
    let file = path("metrics.json")
    guard let data = FileManager.default.contents(atPath: file) else { return "" }
    guard let value = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else {
      return "<h2>Explanation metrics</h2>\n<p class=\"note\">metrics.json is not valid JSON.</p>\n"
    }
    return "<h2>Explanation metrics</h2>\n" + Report.render(value, heading: nil, depth: 0)
  }

  static func scalar(_ v: Any) -> String? {
    if let n = v as? NSNumber {
      let d = n.doubleValue
      return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(format: "%.4g", d)
    }
    if let s = v as? String { return escapeXML(s) }
    if v is NSNull { return "—" }
    return nil
  }

  static func render(_ value: Any, heading: String?, depth: Int) -> String {
    var s = heading.map { "<h3>\(escapeXML($0))</h3>\n" } ?? ""
    if let text = scalar(value) { return s + "<p>\(text)</p>\n" }
    if let object = value as? [String: Any] {
      let keys = object.keys.sorted()
      // Scalars: a two-column table. Objects of scalars: one table, a row each. Others: nested.
      let scalars = keys.filter { scalar(object[$0] as Any) != nil }
      let rows = keys.compactMap { k -> (String, [String: Any])? in
        guard let r = object[k] as? [String: Any], !r.isEmpty, r.values.allSatisfy({ scalar($0) != nil }) else {
          return nil
        }
        return (k, r)
      }
      if !scalars.isEmpty {
        s +=
          "<table>"
          + scalars.map { "<tr><td class=\"l\">\(escapeXML($0))</td><td>\(scalar(object[$0] as Any) ?? "")</td></tr>" }
          .joined() + "</table>\n"
      }
      if !rows.isEmpty {
        var columns: [String] = []
        for (_, r) in rows { for c in r.keys.sorted() where !columns.contains(c) { columns.append(c) } }
        s += "<table><tr><th class=\"l\"></th>" + columns.map { "<th>\(escapeXML($0))</th>" }.joined() + "</tr>\n"
        for (k, r) in rows {
          s +=
            "<tr><td class=\"l\">\(escapeXML(k))</td>"
            + columns.map { c in "<td>\(r[c].flatMap(scalar) ?? "—")</td>" }.joined() + "</tr>\n"
        }
        s += "</table>\n"
      }
      guard depth < 6 else { return s }
      let done = Set(scalars + rows.map(\.0))
      for k in keys where !done.contains(k) { s += render(object[k] as Any, heading: k, depth: depth + 1) }
      return s
    }
    if let array = value as? [Any] {
      let items = array.map { scalar($0) ?? "…" }
      return s + "<p>" + items.joined(separator: ", ") + "</p>\n"
    }
    return s
  }

  func stageSection(_ record: StudyRecord?) -> String {
    guard let record, !record.stages.isEmpty else { return "" }
    var s =
      "<h2>Stages</h2>\n<table><tr><th class=\"l\">stage</th><th class=\"l\">state</th><th>time</th><th class=\"l\">command</th><th class=\"l\">note</th></tr>\n"
    for st in record.stages {
      s +=
        "<tr><td class=\"l\">\(escapeXML(st.name))</td><td class=\"l\">\(escapeXML(st.state))</td><td>\(Report.seconds(st.seconds))</td>"
      s +=
        "<td class=\"l\">\(st.command.map { "<code>\(escapeXML($0))</code>" } ?? "")</td><td class=\"l\">\(escapeXML(st.note ?? ""))</td></tr>\n"
    }
    return s + "</table>\n"
  }
}
