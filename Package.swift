// swift-tools-version: 6.2
import PackageDescription

/// Our own targets treat every warning as an error; system-library targets have no Swift code.
let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)]

/// SwiftPM refuses unsafe flags in a package that another depends on by version (not by path
/// or branch), so a checkout of a tagged version under the depending package's build folder
/// goes without them: the runtime's Swift kernels then compile for baseline x86-64 instead of
/// Haswell (AVX2, FMA) and with bounds checks, and CKernels at the build's own optimisation
/// (its AVX-512 kernels carry their target attributes and their no-contraction pragma). The
/// README gives the cost. `GLASSBOX_PORTABLE=1` builds this package that way too.
let portable =
  (Context.packageDirectory.contains("/checkouts/") && Context.gitInformation?.currentTag != nil)
  || Context.environment["GLASSBOX_PORTABLE"] == "1"
/// Kernels are compiled for AVX2 + FMA (any x86-64 since 2013); OpenBLAS picks its own.
let runtimeFlags: [SwiftSetting] =
  portable
  ? [.define("GLASSBOX_PORTABLE")]
  : [.unsafeFlags(["-target-cpu", "haswell", "-Ounchecked"])]
/// Optimised in debug builds too (the tests run the kernels on large products).
let kernelFlags: [CSetting] = portable ? [] : [.unsafeFlags(["-O2", "-ffp-contract=off"])]

let package = Package(
  name: "Glassbox",
  platforms: [.macOS(.v14)],
  products: [
    .executable(name: "glassbox", targets: ["glassbox"]),
    // The library: load, compile, run, explain, evaluate and train models from Swift.
    .library(name: "Glassbox", targets: ["Glassbox"]),
    // The C API (include/glassbox.h) as libglassbox.so.
    .library(name: "GlassboxC", type: .dynamic, targets: ["GlassboxC"]),
    // Libraries for the fuzz package in Fuzz/ (and anyone embedding the model format).
    .library(name: "GlassboxIR", targets: ["GlassboxIR"]),
    .library(name: "GlassboxFormat", targets: ["GlassboxFormat"]),
    .library(name: "GlassboxONNX", targets: ["GlassboxONNX"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
  ],
  targets: [
    // C libraries, each wrapped by exactly one Swift module (named in the comment).
    .systemLibrary(name: "CBLAS", providers: [.apt(["libopenblas-dev"])]),  // GlassboxRuntime (headers; dlopen)
    .systemLibrary(name: "CPrefetch"),  // GlassboxRuntime (one inline function)
    // AVX-512 microkernels, each behind a target attribute and a CPU check. No contraction of
    // a·b + c into one FMA: each kernel gives the same bits as the Swift code it stands in for.
    .target(name: "CKernels", cSettings: kernelFlags),  // GlassboxRuntime
    // FFmpeg and libsndfile: headers only; CMediaLoader opens the libraries when first used.
    .systemLibrary(
      name: "CFFmpeg",
      providers: [
        .apt([
          "libavformat-dev", "libavcodec-dev", "libavutil-dev",
          "libswscale-dev", "libswresample-dev",
        ])
      ]),  // GlassboxMedia
    .systemLibrary(name: "CSndfile", providers: [.apt(["libsndfile1-dev"])]),  // GlassboxMedia
    .target(name: "CMediaLoader", linkerSettings: [.linkedLibrary("dl")]),  // GlassboxMedia
    // Open MPI (libmpi.so.40): opened by CMPILoader when a data-parallel run starts, not linked.
    .target(name: "CMPILoader", linkerSettings: [.linkedLibrary("dl")]),  // GlassboxTraining
    .systemLibrary(
      name: "CGraphviz", pkgConfig: "libgvc",
      providers: [.apt(["libgraphviz-dev"])]),  // GlassboxViz

    // The pipeline, bottom to top; imports point down only.
    .target(name: "GlassboxIR", swiftSettings: strict),
    .target(name: "GlassboxViz", dependencies: ["GlassboxIR", "CGraphviz"], swiftSettings: strict),
    .target(name: "GlassboxReference", dependencies: ["GlassboxIR"], swiftSettings: strict),
    .target(name: "GlassboxPasses", dependencies: ["GlassboxIR", "GlassboxReference"], swiftSettings: strict),
    .target(
      name: "GlassboxRuntime", dependencies: ["GlassboxIR", "CBLAS", "CPrefetch", "CKernels"],
      swiftSettings: strict + runtimeFlags),
    // .model files, .npy and safetensors; with GlassboxONNX, the only modules that import SwiftProtobuf.
    .target(
      name: "GlassboxFormat",
      dependencies: ["GlassboxIR", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
      swiftSettings: strict),
    // ONNX models (Formats/onnx.proto) imported as a graph and its weights.
    .target(
      name: "GlassboxONNX",
      dependencies: ["GlassboxIR", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
      swiftSettings: strict),
    // Measures of explanations (pure math over maps and outputs).
    .target(name: "GlassboxExplain", swiftSettings: strict),
    .target(
      name: "GlassboxMedia", dependencies: ["GlassboxIR", "CFFmpeg", "CSndfile", "CMediaLoader"], swiftSettings: strict),
    // t-SNE, trustworthiness, SVG scatter plots and the study report (BLAS through the runtime).
    .target(name: "GlassboxAnalysis", dependencies: ["GlassboxIR", "GlassboxRuntime"], swiftSettings: strict),
    // Optimizers, schedules, data sets and the training loop over a compiled training step.
    .target(
      name: "GlassboxTraining",
      dependencies: [
        "GlassboxIR", "GlassboxPasses", "GlassboxRuntime", "GlassboxFormat", "GlassboxMedia",
        "CMPILoader",
      ],
      swiftSettings: strict),
    // The front door: what the CLI, the C API and the Python package call.
    .target(
      name: "Glassbox",
      dependencies: [
        "GlassboxIR", "GlassboxReference", "GlassboxPasses", "GlassboxRuntime", "GlassboxMedia",
        "GlassboxFormat", "GlassboxONNX", "GlassboxAnalysis", "GlassboxExplain", "GlassboxTraining",
      ],
      swiftSettings: strict),
    // include/glassbox.h, imported by the Swift module that implements it.
    .systemLibrary(name: "CGlassboxAPI", path: "include"),  // GlassboxC
    .target(name: "GlassboxC", dependencies: ["Glassbox", "GlassboxRuntime", "CGlassboxAPI"], swiftSettings: strict),
    .target(
      name: "GlassboxCLI",
      dependencies: [
        "Glassbox", "GlassboxIR", "GlassboxViz", "GlassboxReference", "GlassboxPasses", "GlassboxRuntime",
        "GlassboxMedia", "GlassboxFormat", "GlassboxONNX", "GlassboxAnalysis", "GlassboxExplain",
        "GlassboxTraining", .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      swiftSettings: strict),
    .executableTarget(name: "glassbox", dependencies: ["GlassboxCLI"], swiftSettings: strict),
    // tools/bench/media.sh: MFCC and video-decoding timings (run in release).
    .executableTarget(
      name: "glassbox-media-bench", dependencies: ["GlassboxMedia"],
      path: "tools/bench/MediaBench", swiftSettings: strict),

    .testTarget(
      name: "GlassboxIRTests", dependencies: ["GlassboxIR"],
      exclude: ["Fixtures"], swiftSettings: strict),
    .testTarget(name: "GlassboxVizTests", dependencies: ["GlassboxViz", "GlassboxIR"], swiftSettings: strict),
    .testTarget(
      name: "GlassboxRuntimeTests",
      dependencies: ["GlassboxRuntime", "GlassboxReference", "GlassboxIR", "GlassboxPasses"],
      exclude: ["Fixtures"], swiftSettings: strict),
    .testTarget(
      name: "GlassboxFormatTests", dependencies: ["GlassboxFormat", "GlassboxIR"],
      exclude: ["Fixtures"], swiftSettings: strict),
    .testTarget(
      name: "GlassboxMediaTests", dependencies: ["GlassboxMedia", "GlassboxIR"],
      exclude: ["Fixtures"], swiftSettings: strict),
    .testTarget(
      name: "GlassboxPassesTests", dependencies: ["GlassboxPasses", "GlassboxReference", "GlassboxIR"],
      swiftSettings: strict),
    .testTarget(
      name: "GlassboxExplainTests",
      dependencies: [
        "GlassboxPasses", "GlassboxRuntime", "GlassboxReference", "GlassboxIR", "GlassboxMedia",
        "GlassboxExplain",
      ],
      exclude: ["Fixtures"], swiftSettings: strict),
    .testTarget(
      name: "GlassboxTrainingTests",
      dependencies: ["GlassboxTraining", "GlassboxFormat", "GlassboxIR", "GlassboxReference", "GlassboxMedia"],
      exclude: ["Fixtures"], swiftSettings: strict),
    .testTarget(
      name: "GlassboxCLITests",
      dependencies: [
        "Glassbox", "GlassboxCLI", "GlassboxIR", "GlassboxFormat", "GlassboxMedia", "GlassboxAnalysis",
        "GlassboxReference",
      ],
      swiftSettings: strict),
    .testTarget(
      name: "GlassboxTests",
      dependencies: [
        "Glassbox", "GlassboxIR", "GlassboxPasses", "GlassboxReference",
        "GlassboxFormat", "GlassboxMedia", "GlassboxRuntime", "GlassboxTraining",
        "GlassboxAnalysis", "GlassboxViz", "GlassboxONNX",
      ],
      swiftSettings: strict),
    .testTarget(
      name: "GlassboxONNXTests",
      dependencies: [
        "GlassboxONNX", "Glassbox", "GlassboxIR", "GlassboxReference", "GlassboxPasses",
        "GlassboxFormat",
      ],
      exclude: ["Fixtures"], swiftSettings: strict),
    .testTarget(
      name: "GlassboxAnalysisTests",
      dependencies: ["GlassboxAnalysis", "GlassboxReference", "GlassboxMedia", "GlassboxIR"],
      exclude: ["Fixtures"], swiftSettings: strict),
  ]
)
