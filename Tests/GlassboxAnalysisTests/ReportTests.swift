import Foundation
import GlassboxAnalysis
import GlassboxMedia
import Testing

/// `Report` on a small synthetic study folder with real PNG and SVG files, checked in headless
/// Chromium: the page loads and every image decodes.
@Suite struct ReportTests {
  /// A study folder: study.json, metrics.json, a t-SNE SVG, PNG strips and attention maps.
  /// Returns how many images the page should show.
  static func makeStudy(_ dir: URL) throws -> Int {
    var record = StudyRecord(
      quick: true, machine: "synthetic test folder (numbers are made up)", started: "2026-11-22T07:00:00Z")
    let languages = ["Bengali", "Hindi", "Tamil"]
    for (i, name) in ["bilstm", "bilstm_attention1d", "bilstm_attention2d"].enumerated() {
      record.record(
        StudyRecord.ModelResult(
          name: name, dataset: "speech", classes: languages, accuracy: 0.5 + 0.1 * Double(i),
          loss: 0.9 - 0.2 * Double(i),
          confusion: [[5, 1, 0], [1, 4, 1], [0, 2, 4]], trainExamples: 48, testExamples: 18,
          commands: [
            "train": "glassbox train \(name).model --data data/lid -o \(name).model",
            "evaluate": "glassbox evaluate \(name).model --data data/lid",
          ]))
    }
    record.record(
      StudyRecord.ModelResult(
        name: "resnet18_lstm", dataset: "actions", classes: ["grow", "shrink"], accuracy: 0.75,
        loss: 0.6, confusion: [[3, 1], [1, 3]], testExamples: 8))
    record.record(
      StudyRecord.Stage(
        name: "data.speech", state: "done", seconds: 12.5, command: "tools/gen_speech.py --out data/lid"))
    record.record(
      StudyRecord.Stage(name: "train.vgg19_lstm", state: "failed", seconds: 0.1, note: "out of <memory> & time"))

    // A t-SNE map from real t-SNE on clustered points.
    var rows: [[Double]] = []
    for i in 0..<30 {
      rows.append([Double(i % 3) * 4 + Double(i) * 0.01, Double(i % 3) - Double(i) * 0.02, Double(i % 2)])
    }
    var tsne = TSNE()
    tsne.perplexity = 5
    tsne.iterations = 300
    let map = try EmbeddingMap.make(
      features: try Points(rows: rows), labels: (0..<30).map { $0 % 3 },
      files: (0..<30).map { "clip\($0).wav" }, classes: languages, source: "test", tsne: tsne)
    let bilstm = dir.appendingPathComponent("bilstm")
    try FileManager.default.createDirectory(at: bilstm, withIntermediateDirectories: true)
    try map.svg(title: "bilstm: hidden over train").write(
      to: bilstm.appendingPathComponent("tsne.svg"), atomically: true, encoding: .utf8)
    record.record(
      StudyRecord.Figure(
        path: "bilstm/tsne.svg", caption: "t-SNE of the BiLSTM's outputs",
        command: "glassbox embed bilstm/bilstm.model --data data/lid -o bilstm/tsne.svg"))

    // PNG strips through the project's writer.
    let ramp = (0..<(64 * 16)).map { Float($0 % 64) / 63 }
    for (folder, name) in [
      ("resnet18_lstm/gradcam", "correct_grow"), ("resnet18_lstm/gradcam", "wrong_shrink"),
      ("bilstm_attention1d/attention", "clip0"),
    ] {
      let d = dir.appendingPathComponent(folder)
      try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
      try ImageWriter.writePNG(
        ColorMap.allCases[0].image(ramp, width: 64, height: 16), to: d.appendingPathComponent(name + ".png").path)
    }
    let metrics =
      #"{"resnet18_lstm": {"pointing_game": 0.83, "energy_in_box": 0.61}, "vgg19_lstm": {"pointing_game": 0.5}, "note": "synthetic"}"#
    try metrics.write(to: dir.appendingPathComponent("metrics.json"), atomically: true, encoding: .utf8)
    try record.write(to: dir.appendingPathComponent("study.json").path)
    return 4
  }

  static func temporaryDirectory() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glassbox-report-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
  }

  @Test func pageIsSelfContained() throws {
    let dir = try Self.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let images = try Self.makeStudy(dir)
    let html = try Report(directory: dir.path).html()
    #expect(html.components(separatedBy: "<img src=\"data:image/").count - 1 == images)
    #expect(
      !html.contains("http://")
        || html.components(separatedBy: "http://").count - 1 == html.components(
          separatedBy: "http://www.w3.org/2000/svg"
        ).count - 1)
    #expect(!html.contains("https://") && !html.contains("<script") && !html.contains("<link"))
    // Ours beside the seed's, labelled; escaped notes; metrics as a table; commands.
    #expect(html.contains("88.9%") && html.contains("0.107") && html.contains("70.0%"))
    #expect(html.contains("seed accuracy<br>(real Indian-language speech)") && html.contains("(HMDB-51)"))
    #expect(html.contains("out of &lt;memory&gt; &amp; time"))
    #expect(html.contains("<th>pointing_game</th>") && html.contains("<td>0.83</td>"))
    #expect(html.contains("glassbox embed bilstm/bilstm.model --data data/lid -o bilstm/tsne.svg"))
  }

  /// The page opens with what the models looked at: the correct and wrong examples' pictures
  /// of each model, before the result tables (and again in the model's own section).
  @Test func galleryOpensThePage() throws {
    let dir = try Self.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    _ = try Self.makeStudy(dir)
    for kind in ["correct", "wrong"] {
      let d = dir.appendingPathComponent("resnet18_lstm/gradcam/\(kind)")
      try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
      try ImageWriter.writePNG(
        RGBImage(width: 8, height: 8, fill: (kind == "correct" ? 10 : 200, 0, 0)),
        to: d.appendingPathComponent("gradcam.png").path)
    }
    let html = try Report(directory: dir.path).html()
    let gallery = try #require(html.range(of: "<h2>What the models looked at</h2>"))
    let results = try #require(html.range(of: "<h2>", range: gallery.upperBound..<html.endIndex))
    let section = html[gallery.upperBound..<results.lowerBound]
    #expect(section.components(separatedBy: "<img src=\"data:image/png").count - 1 == 2)
    #expect(section.contains("resnet18_lstm") && !section.contains("clip0"))
    #expect(html.components(separatedBy: "<img src=\"data:image/").count - 1 == 4 + 2 * 2)
  }

  @Test func missingFolderIsAnError() throws {
    #expect(throws: AnalysisError("/nonexistent/study: no such study folder")) {
      try Report(directory: "/nonexistent/study").html()
    }
  }

  /// Loads the page in headless Chromium with a checking script appended: every <img> must
  /// have decoded (naturalWidth > 0). With GLASSBOX_REPORT_SCREENSHOT=FILE.png also saves a
  /// screenshot there (docs/report.png is made this way). Chromium is required, not optional:
  /// tools/setup (run by `make test`) installs it, so its absence is a broken setup.
  @Test func everyImageDecodesInChromium() throws {
    let chromium = try #require(
      Self.chromiumPaths.first(where: FileManager.default.isExecutableFile),
      "chromium is not installed at \(Self.chromiumPaths.joined(separator: " or ")); run tools/setup")
    let dir = try Self.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let images = try Self.makeStudy(dir)
    let page = dir.appendingPathComponent("report.html")
    try Report(directory: dir.path).write(to: page.path)
    let check = """
      <script>window.addEventListener('load', () => { const im = [...document.images];
      const d = document.createElement('div'); d.id = 'image-check'; d.dataset.total = im.length;
      d.dataset.decoded = im.filter(i => i.complete && i.naturalWidth > 0).length; document.body.appendChild(d); });</script>
      """
    let checked = dir.appendingPathComponent("checked.html")
    try String(contentsOf: page, encoding: .utf8).replacingOccurrences(of: "</body>", with: check + "</body>")
      .write(to: checked, atomically: true, encoding: .utf8)
    let dom = try Self.chromium(
      chromium, ["--dump-dom", checked.absoluteString], profile: dir.appendingPathComponent("profile"))
    let marker = try #require(
      dom.range(of: #"<div id="image-check"[^>]*>"#, options: .regularExpression).map { String(dom[$0]) })
    #expect(marker == "<div id=\"image-check\" data-total=\"\(images)\" data-decoded=\"\(images)\">")
    if let shot = ProcessInfo.processInfo.environment["GLASSBOX_REPORT_SCREENSHOT"] {
      _ = try Self.chromium(
        chromium, ["--screenshot=\(shot)", "--window-size=1200,1500", "--hide-scrollbars", page.absoluteString],
        profile: dir.appendingPathComponent("profile"))
    }
  }

  /// Where Debian's chromium package puts the browser.
  static let chromiumPaths = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]

  static func chromium(_ path: String, _ arguments: [String], profile: URL) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments =
      [
        "--headless", "--disable-gpu", "--no-sandbox", "--user-data-dir=\(profile.path)",
        "--virtual-time-budget=5000",
      ] + arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
  }
}
