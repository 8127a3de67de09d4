import ArgumentParser
import GlassboxFormat
import GlassboxMedia
import GlassboxRuntime

/// `glassbox version`: this build and the system libraries it runs on, for bug reports.
struct Version: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Print the versions of Glassbox and its libraries.")

  func run() {
    print("glassbox \(Provenance.currentProducerVersion)")
    print("openblas \(BLAS.configuration)")
    for (name, version) in MediaLibraries.versions { print("\(name) \(version)") }
  }
}
