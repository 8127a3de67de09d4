@_spi(Fuzzing) import GlassboxFormat

/// libFuzzer entry point for the `.model` loader (and the `.npy` and safetensors readers). The first byte picks how the rest is used:
///
/// - bit 0 clear: the rest is a whole file, as read from disk;
/// - bit 0 set: the rest is `u32 M` + M message bytes + the weight section, wrapped in a header
///   with correct lengths and message CRC, so mutations reach the message decoder and the
///   graph checks instead of stopping at the checksum;
/// - bit 1 set: tensor checksums are not checked, so mutated weights reach the later checks;
/// - bit 2 set: the rest is an `.npy` file instead; bit 3 set: a safetensors file.
///
/// Any input must load or throw `ModelFileError`; a crash, trap or sanitizer report is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzModelLoader(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let input = Array(UnsafeBufferPointer(start: data, count: size))
  guard let mode = input.first else { return 0 }
  let rest = Array(input.dropFirst())
  if mode & 4 != 0 {
    if let t = try? NPY.decode(rest, fileName: "fuzz.npy") { _ = NPY.encode(t) }
    return 0
  }
  if mode & 8 != 0 {
    if let f = try? SafeTensors.decode(rest, fileName: "fuzz.safetensors") { _ = try? SafeTensors.encode(f) }
    return 0
  }
  let bytes: [UInt8]
  if mode & 1 == 0 {
    bytes = rest
  } else {
    guard rest.count >= 4 else { return 0 }
    let m = min(Int(rest[0]) | Int(rest[1]) << 8 | Int(rest[2]) << 16 | Int(rest[3]) << 24, rest.count - 4)
    bytes = ModelFile.assembleForFuzzing(message: Array(rest[4..<(4 + m)]), weightSection: Array(rest[(4 + m)...]))
  }
  if let model = try? ModelFile.decode(bytes, fileName: "fuzz.model", checkingWeights: mode & 2 == 0) {
    // Touch what a command would: every weight, the contents, re-encoding.
    _ = model.namedWeights()
    _ = try? ModelFile.encode(model.contents)
  }
  return 0
}
