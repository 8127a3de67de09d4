import Foundation
import GlassboxIR

/// Paths of the repository and the test fixtures, found from this file's location.
enum Repo {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

  static func fixture(_ relative: String) -> String { fixtures.appendingPathComponent(relative).path }
}

/// A fresh temporary directory, removed when the value is released.
final class TemporaryDirectory {
  let url: URL

  init() throws {
    url = FileManager.default.temporaryDirectory.appendingPathComponent("glassbox-media-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(at: url) }

  func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}

struct ToolError: Error, CustomStringConvertible {
  var description: String
}

/// Runs a command-line tool (ffmpeg) and throws with its error output when it fails.
func runTool(_ arguments: [String]) throws {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
  process.arguments = arguments
  let errors = Pipe()
  process.standardError = errors
  process.standardOutput = FileHandle.nullDevice
  try process.run()
  let data = errors.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  guard process.terminationStatus == 0 else {
    throw ToolError(description: "\(arguments.joined(separator: " ")) failed: \(String(decoding: data, as: UTF8.self))")
  }
}

/// `ffmpeg -v error -y ARGS…`.
func ffmpeg(_ arguments: String...) throws {
  try runTool(["ffmpeg", "-nostdin", "-v", "error", "-y"] + arguments)
}

/// A RIFF/WAVE file with integer PCM samples, written by hand so tests can make formats
/// (8-bit, many channels, odd rates) independently of the decoder under test.
func writeWAV(_ path: String, interleaved: [Double], channels: Int, sampleRateHz: Int, bits: Int) throws {
  var data: [UInt8] = []
  for v in interleaved {
    let x = max(-1, min(1, v))
    switch bits {
    case 8: data.append(UInt8(clamping: Int((x * 127).rounded()) + 128))
    case 16:
      let s = Int16(clamping: Int((x * 32767).rounded()))
      data += [UInt8(truncatingIfNeeded: s), UInt8(truncatingIfNeeded: s >> 8)]
    default: fatalError("test helper: bits \(bits)")
    }
  }
  func le32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
  func le16(_ v: Int) -> [UInt8] { (0..<2).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
  let blockAlign = channels * bits / 8
  var bytes = Array("RIFF".utf8) + le32(36 + data.count) + Array("WAVE".utf8)
  bytes += Array("fmt ".utf8) + le32(16) + le16(1) + le16(channels) + le32(sampleRateHz)
  bytes += le32(sampleRateHz * blockAlign) + le16(blockAlign) + le16(bits)
  bytes += Array("data".utf8) + le32(data.count) + data
  try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// A sine of `hz` at `sampleRateHz`, `seconds` long, amplitude `level`.
func sine(hz: Double, sampleRateHz: Int, seconds: Double, level: Double = 0.5) -> [Double] {
  (0..<Int(seconds * Double(sampleRateHz))).map { level * sin(2 * .pi * hz * Double($0) / Double(sampleRateHz)) }
}

/// Reads a little-endian float32, C-order `.npy` fixture (the only kind the reference scripts
/// write). Kept here rather than using GlassboxFormat so these tests need only GlassboxMedia.
func readNPY(_ path: String) throws -> Tensor {
  let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
  guard bytes.count > 10, bytes[0] == 0x93, bytes[6] == 1 else {
    throw ToolError(description: "\(path): not an .npy v1 file")
  }
  let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
  let header = String(decoding: bytes[10..<(10 + headerLength)], as: UTF8.self)
  guard header.contains("'descr': '<f4'"), header.contains("'fortran_order': False"),
    let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")")
  else {
    throw ToolError(description: "\(path): expected a C-order <f4 array, found \(header)")
  }
  let shape = header[open.upperBound..<close].split(separator: ",").compactMap {
    Int($0.trimmingCharacters(in: .whitespaces))
  }
  let data = bytes[(10 + headerLength)...]
  let values = stride(from: data.startIndex, to: data.endIndex, by: 4).map { i in
    Float(
      bitPattern: UInt32(data[i]) | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2]) << 16 | UInt32(data[i + 3]) << 24)
  }
  guard values.count == shape.reduce(1, *) else {
    throw ToolError(description: "\(path): \(values.count) values for shape \(shape)")
  }
  return Tensor(shape: shape, f32: values)
}

/// The largest absolute difference between two equally long arrays.
func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
  precondition(a.count == b.count, "lengths \(a.count) and \(b.count)")
  return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
