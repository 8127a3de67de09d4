import Foundation
import Testing

/// FFmpeg and libsndfile are opened when a media function is first called (CMediaLoader), not
/// linked: a glassbox process that touches no media never maps them (about 24 MiB of resident
/// memory and ~130 libraries fewer), one that does maps them on its first call.
struct LoaderTests {
  /// The debug `glassbox` built beside the test runner (`swift build --build-tests` builds it).
  static let glassbox = Bundle.main.executableURL!.deletingLastPathComponent().appendingPathComponent("glassbox").path

  /// stdout and the dynamic loader's trace of the libraries it opened (`LD_DEBUG=libs`, to a
  /// file: the trace can outgrow a pipe's buffer).
  static func run(_ arguments: [String]) throws -> (output: String, trace: String) {
    let folder = try TemporaryDirectory()
    let process = Process()
    process.executableURL = URL(fileURLWithPath: glassbox)
    process.arguments = arguments
    process.currentDirectoryURL = Repo.root
    process.environment = ProcessInfo.processInfo.environment.merging(["LD_DEBUG": "libs"]) { $1 }
    let out = Pipe()
    try #require(FileManager.default.createFile(atPath: folder.path("trace"), contents: nil))
    process.standardOutput = out
    process.standardError = try FileHandle(forWritingTo: folder.url.appendingPathComponent("trace"))
    try process.run()
    let output = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "glassbox \(arguments.joined(separator: " ")) failed")
    return (String(decoding: output, as: UTF8.self), try String(contentsOfFile: folder.path("trace"), encoding: .utf8))
  }

  @Test func mediaLibrariesOpenOnFirstUse() throws {
    try #require(FileManager.default.isExecutableFile(atPath: Self.glassbox), "no \(Self.glassbox)")
    let check = try Self.run(["check", "graphs/bilstm.graph", "--bind", "C=5"])
    #expect(check.output.contains("bilstm"))
    #expect(check.trace.contains("libopenblas") || check.trace.contains("libswiftCore"), "no loader trace")
    for library in ["libavformat", "libavcodec", "libsndfile", "libx265"] {
      #expect(!check.trace.contains(library), "glassbox check loaded \(library)")
    }
    let version = try Self.run(["version"])
    // Whichever FFmpeg the system has: the version printed is the one of the library opened
    // (its soname's major number), not one this test was written on.
    for (library, soname) in [("libavformat", "libavformat.so."), ("libavcodec", "libavcodec.so.")] {
      let after = try #require(version.trace.range(of: soname), "glassbox version did not open \(library)").upperBound
      let loaded = String(version.trace[after...].prefix { $0.isNumber })
      #expect(!loaded.isEmpty, "\(soname) without a major version in the loader's trace")
      let printed = version.output.split(separator: "\n").first { $0.hasPrefix(library + " ") }
      #expect(
        printed?.hasPrefix("\(library) \(loaded).") == true,
        "printed \(printed ?? "nothing"), opened \(soname)\(loaded)")
    }
    #expect(version.output.contains("libsndfile libsndfile-1."))
    for library in ["libavformat.so", "libavcodec.so", "libswscale.so", "libsndfile.so"] {
      #expect(
        version.trace.contains("calling init: ") && version.trace.contains(library),
        "glassbox version did not load \(library)")
    }
  }
}
