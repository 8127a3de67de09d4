// swift-tools-version: 6.2
import PackageDescription

/// Our own targets treat every warning as an error; system-library targets have no Swift code.
let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)]

let package = Package(
  name: "Glassbox",
  platforms: [.macOS(.v14)],
  products: [
    .executable(name: "glassbox", targets: ["glassbox"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
  ],
  targets: [
    // C libraries, each wrapped by exactly one Swift module (named in the comment).
    .systemLibrary(name: "CBLAS", providers: [.apt(["libopenblas-dev"])]),  // GlassboxRuntime (headers; dlopen)
    .systemLibrary(name: "CFFmpeg", pkgConfig: "libavformat",
                   providers: [.apt(["libavformat-dev", "libavcodec-dev", "libavutil-dev",
                                     "libswscale-dev", "libswresample-dev"])]),  // GlassboxMedia
    .systemLibrary(name: "CSndfile", pkgConfig: "sndfile",
                   providers: [.apt(["libsndfile1-dev"])]),             // GlassboxMedia
    .systemLibrary(name: "CGraphviz", pkgConfig: "libgvc",
                   providers: [.apt(["libgraphviz-dev"])]),             // GlassboxViz

    // The pipeline, bottom to top; imports point down only.
    .target(name: "GlassboxIR", swiftSettings: strict),
    .target(name: "GlassboxViz", dependencies: ["GlassboxIR", "CGraphviz"], swiftSettings: strict),
    .target(name: "GlassboxReference", dependencies: ["GlassboxIR"], swiftSettings: strict),
    .target(name: "GlassboxPasses", dependencies: ["GlassboxIR", "GlassboxReference"], swiftSettings: strict),
    // Kernels are compiled for AVX2 + FMA (any x86-64 since 2013); OpenBLAS picks its own.
    .target(name: "GlassboxRuntime", dependencies: ["GlassboxIR", "CBLAS"],
            swiftSettings: strict + [.unsafeFlags(["-target-cpu", "haswell", "-Ounchecked"])]),
    .target(name: "GlassboxMedia", dependencies: ["CFFmpeg", "CSndfile"], swiftSettings: strict),
    .target(name: "GlassboxCLI",
            dependencies: ["GlassboxIR", "GlassboxViz", "GlassboxReference", "GlassboxPasses", "GlassboxRuntime", "GlassboxMedia",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict),
    .executableTarget(name: "glassbox", dependencies: ["GlassboxCLI"], swiftSettings: strict),

    .testTarget(name: "GlassboxIRTests", dependencies: ["GlassboxIR"],
                exclude: ["Fixtures"], swiftSettings: strict),
    .testTarget(name: "GlassboxVizTests", dependencies: ["GlassboxViz", "GlassboxIR"], swiftSettings: strict),
    .testTarget(name: "GlassboxRuntimeTests", dependencies: ["GlassboxRuntime", "GlassboxReference", "GlassboxIR"],
                exclude: ["Fixtures"], swiftSettings: strict),
    .testTarget(name: "GlassboxPassesTests", dependencies: ["GlassboxPasses", "GlassboxReference", "GlassboxIR"],
                swiftSettings: strict),
    .testTarget(name: "GlassboxCLITests", dependencies: ["GlassboxCLI", "GlassboxIR"], swiftSettings: strict),
  ]
)
