// swift-tools-version: 6.2
// libFuzzer targets for the .model loader, the spec compiler and the ONNX importer. A separate package, because
// these executables have no `main` of their own (libFuzzer supplies it): build and run them
// with `make fuzz` (Swift's -sanitize=fuzzer), never with the main package's `swift build`.
import Foundation
import PackageDescription

/// The main package's identity is its directory's name, whatever the clone is called.
let glassbox = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
  name: "GlassboxFuzz",
  platforms: [.macOS(.v14)],
  dependencies: [.package(path: "..")],
  targets: [
    .executableTarget(name: "FuzzModelLoader", dependencies: [.product(name: "GlassboxFormat", package: glassbox)]),
    .executableTarget(name: "FuzzSpecParser", dependencies: [.product(name: "GlassboxIR", package: glassbox)]),
    .executableTarget(
      name: "FuzzONNXImporter",
      dependencies: [
        .product(name: "GlassboxONNX", package: glassbox),
        .product(name: "GlassboxIR", package: glassbox),
      ]),
  ]
)
