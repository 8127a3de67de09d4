import Foundation
import Testing

@testable import GlassboxRuntime

/// OpenBLAS is configured through environment variables read when it loads; Glassbox sets them
/// for the load only, so a host process keeps the environment it had.
struct BLASEnvironmentTests {
  @Test func variablesAreSetForTheCallOnlyAndRestored() {
    let unset = "GLASSBOX_TEST_UNSET_\(UUID().uuidString.prefix(8))"
    let preset = "GLASSBOX_TEST_PRESET_\(UUID().uuidString.prefix(8))"
    setenv(preset, "host value", 1)
    defer { unsetenv(preset) }
    let inside = BLAS.withEnvironment([unset: "1", preset: "SkylakeX"]) {
      (getenv(unset).map { String(cString: $0) }, getenv(preset).map { String(cString: $0) })
    }
    #expect(inside.0 == "1" && inside.1 == "SkylakeX")
    #expect(getenv(unset) == nil)
    #expect(getenv(preset).map { String(cString: $0) } == "host value")
  }
}
