import Foundation
@testable import GlassboxFormat
import GlassboxIR
import Testing

/// `.npy` and safetensors: files written by numpy and the reference safetensors writer read
/// back exactly; ours are byte-identical to theirs; bad files are one-line errors.
struct NPYTests {
  @Test(arguments: [
    ("f32_2x3.npy", Tensor(shape: [2, 3], f32: FixtureValues.f32(6))),
    ("f64_4_v2.npy", Tensor(shape: [4], f64: FixtureValues.f64(4))),
    ("i64_scalar_v3.npy", Tensor(shape: [], storage: .i64(FixtureValues.i64(1)))),
    ("bool_2x2x2.npy", Tensor(shape: [2, 2, 2], storage: .bool(FixtureValues.bool(8)))),
    ("f32_empty_0x3.npy", Tensor(shape: [0, 3], f32: [])),
  ])
  func readsNumpyFiles(file: String, expected: Tensor) throws {
    let t = try NPY.read(Repo.fixture("tensors/" + file))
    #expect(t == expected)
  }

  /// Version 1 files from numpy come back byte for byte from our writer.
  @Test(arguments: ["f32_2x3.npy", "bool_2x2x2.npy", "f32_empty_0x3.npy"])
  func writesWhatNumpyWrites(file: String) throws {
    let path = Repo.fixture("tensors/" + file)
    let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    #expect(NPY.encode(try NPY.read(path)) == original)
  }

  @Test func roundTripThroughAFile() throws {
    let dir = try ScratchDirectory()
    defer { dir.cleanUp() }
    for t in [
      Tensor(shape: [3, 1, 2], f64: FixtureValues.f64(6)), Tensor(shape: [], f32: [2.5]),
      Tensor(shape: [5], storage: .i64(FixtureValues.i64(5))),
      Tensor(shape: [1, 4], storage: .bool(FixtureValues.bool(4))),
    ] {
      try NPY.write(t, to: dir.path("t.npy"))
      #expect(try NPY.read(dir.path("t.npy")) == t)
    }
    #expect(dir.files == ["t.npy"])
  }

  @Test(arguments: [
    (
      "fortran_order.npy",
      "fortran_order.npy: Fortran-order arrays are not supported; save a C-order array (numpy.ascontiguousarray) (at byte offset 10)"
    ),
    (
      "big_endian.npy",
      "big_endian.npy: big-endian element type '>f4' is not supported; save little-endian (array.astype('<f4')) (at byte offset 10)"
    ),
    (
      "object.npy", "object.npy: object arrays are not supported (they hold pickled Python objects) (at byte offset 10)"
    ),
    ("f16.npy", "f16.npy: element type '<f2' is not supported (supported: <f4, <f8, <i8, |b1) (at byte offset 10)"),
  ])
  func refusesUnsupportedFiles(file: String, message: String) throws {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Repo.fixture("tensors/" + file))))
    #expect(throws: TensorFileError.self) { try NPY.decode(bytes, fileName: file) }
    do {
      _ = try NPY.decode(bytes, fileName: file)
    } catch {
      #expect(error.description == message)
    }
  }

  static func errorText(_ bytes: [UInt8]) -> String {
    do {
      _ = try NPY.decode(bytes, fileName: "x.npy")
      return "no error"
    } catch {
      return error.description
    }
  }

  @Test func refusesBrokenFiles() throws {
    let good = NPY.encode(Tensor(shape: [2, 3], f32: FixtureValues.f32(6)))
    #expect(Self.errorText([]) == "x.npy: file is empty; an .npy file starts with \"\\x93NUMPY\"")
    #expect(
      Self.errorText(Array("hello world".utf8)) == "x.npy: not an .npy file: it does not start with \"\\x93NUMPY\"")
    #expect(
      Self.errorText(Array(good.dropLast(4)))
        == "x.npy: data is truncated: shape [2, 3] of <f4 needs 24 bytes, the file has 20 (at byte offset 128)")
    #expect(
      Self.errorText(good + [0])
        == "x.npy: data is longer than its header says: shape [2, 3] of <f4 needs 24 bytes, the file has 25 (at byte offset 128)"
    )
    var lying = good
    lying[8] = 0xFF  // header length 65535: past the end
    lying[9] = 0xFF
    #expect(
      Self.errorText(lying)
        == "x.npy: header claims 65535 bytes but the file has 142 after the preamble (at byte offset 8)")
    let huge = Array("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }".utf8)
    var hugeFile = NPY.magic + [1, 0]
    hugeFile.appendLE(UInt16(huge.count))
    hugeFile += huge
    #expect(
      Self.errorText(hugeFile)
        == "x.npy: data is truncated: shape [1000000, 1000000] of <f4 needs 4000000000000 bytes, the file has 0 (at byte offset \(hugeFile.count))"
    )
    let overflow = Array(
      "{'descr': '<f8', 'fortran_order': False, 'shape': (999999999999999999, 999999999999999999), }".utf8)
    var overflowFile = NPY.magic + [1, 0]
    overflowFile.appendLE(UInt16(overflow.count))
    overflowFile += overflow
    #expect(
      Self.errorText(overflowFile)
        == "x.npy: shape [999999999999999999, 999999999999999999] has too many elements (at byte offset 10)")
    var badBool = NPY.encode(Tensor(shape: [2], storage: .bool([true, false])))
    badBool[badBool.count - 1] = 7
    #expect(Self.errorText(badBool) == "x.npy: bool element 1 is 0x7, not 0 or 1 (at byte offset 129)")
    var v9 = good
    v9[6] = 9
    #expect(Self.errorText(v9) == "x.npy: unsupported .npy version 9.0 (supported: 1.0, 2.0, 3.0) (at byte offset 6)")
  }

  @Test func headerParserRefusesMalformedDicts() {
    for text in [
      "{'descr': '<f4', 'shape': (2,), }", "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", "{'descr': '<f4', 'descr': '<f4'}",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", "", "{", "{'descr'",
    ] {
      #expect(throws: NPYHeader.ParseError.self) { try NPYHeader(parsing: text) }
    }
  }

  @Test func missingFileNamesIt() {
    #expect(throws: TensorFileError(path: "/nonexistent/a.npy", "cannot open: No such file or directory")) {
      try NPY.read("/nonexistent/a.npy")
    }
  }
}

struct SafeTensorsTests {
  static let mixed = Repo.fixture("tensors/mixed.safetensors")

  @Test func readsTheReferenceWritersFile() throws {
    let file = try SafeTensors.read(Self.mixed)
    #expect(file.metadata == ["format": "pt"])
    #expect(file.tensors.map(\.name) == ["bn.num_batches_tracked", "x64", "fc.bias", "fc.weight", "mask"])
    #expect(file["fc.weight"] == Tensor(shape: [2, 3], f32: FixtureValues.f32(6)))
    #expect(file["fc.bias"] == Tensor(shape: [2], f32: FixtureValues.f32(2)))
    #expect(file["bn.num_batches_tracked"] == Tensor(shape: [], storage: .i64(FixtureValues.i64(1))))
    #expect(file["mask"] == Tensor(shape: [3], storage: .bool(FixtureValues.bool(3))))
    #expect(file["x64"] == Tensor(shape: [2, 2], f64: FixtureValues.f64(4)))
  }

  /// Our writer lays a file out exactly as the reference writer does (order, padding, offsets).
  @Test func writesWhatTheReferenceWrites() throws {
    let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.mixed)))
    var file = try SafeTensors.read(Self.mixed)
    file.tensors.reverse()
    #expect(try SafeTensors.encode(file) == original)
  }

  @Test func dataIsAlignedAfterThePaddedHeader() throws {
    let bytes = try SafeTensors.encode(
      SafeTensorsFile(tensors: [
        NamedTensor("a", Tensor(shape: [3], storage: .bool([true, false, true]))),
        NamedTensor("b", Tensor(shape: [1], f64: [1])),
        NamedTensor("c", Tensor(shape: [1], f32: [2])),
      ]))
    let n = bytes.withUnsafeBytes { Int($0.loadLE(UInt64.self, at: 0)) }
    #expect(n % 8 == 0)
    #expect(try SafeTensors.decode(bytes, fileName: "x").tensors.map(\.name) == ["b", "c", "a"])
  }

  @Test func roundTripThroughAFile() throws {
    let dir = try ScratchDirectory()
    defer { dir.cleanUp() }
    let file = SafeTensorsFile(
      tensors: [
        NamedTensor("w", Tensor(shape: [2, 2], f32: [1, 2, 3, 4])),
        NamedTensor("empty", Tensor(shape: [0], f32: [])),
        NamedTensor("n", Tensor(shape: [], storage: .i64([42]))),
      ],
      metadata: ["format": "pt"])
    try SafeTensors.write(file, to: dir.path("w.safetensors"))
    let back = try SafeTensors.read(dir.path("w.safetensors"))
    #expect(back.metadata == file.metadata)
    for t in file.tensors { #expect(back[t.name] == t.tensor) }
    #expect(dir.files == ["w.safetensors"])
  }

  /// A header plus data bytes, for hand-made broken files.
  static func file(_ json: String, data: Int) -> [UInt8] {
    var out: [UInt8] = []
    out.appendLE(UInt64(json.utf8.count))
    return out + Array(json.utf8) + [UInt8](repeating: 0, count: data)
  }

  static func errorText(_ bytes: [UInt8]) -> String {
    do {
      _ = try SafeTensors.decode(bytes, fileName: "w.safetensors")
      return "no error"
    } catch {
      return error.description
    }
  }

  /// F16 and BF16 weights (PyTorch's `half()` and `bfloat16()` state_dicts) become F32, exactly:
  /// PyTorch's own F16 file, and bit patterns of IEEE binary16 and bfloat16 values.
  @Test func halfPrecisionTensorsAreReadAsFloat() throws {
    let f16 = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Repo.fixture("tensors/f16.safetensors"))))
    let h = try #require(try SafeTensors.decode(f16, fileName: "w.safetensors")["h"])
    #expect(h == Tensor(shape: [2], f32: [0, 0]))
    // F16: 1, −2, 0.5, 65504 (the largest), 2^−24 (the smallest subnormal), −0, ∞.
    let halves: [UInt16] = [0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x8000, 0x7C00]
    // BF16: 1, −3, 2^−126 (the smallest normal), 3.3895314e38 (the largest).
    let brains: [UInt16] = [0x3F80, 0xC040, 0x0080, 0x7F7F]
    let header =
      #"{"a":{"dtype":"F16","shape":[7],"data_offsets":[0,14]},"#
      + #""b":{"dtype":"BF16","shape":[2,2],"data_offsets":[14,22]}}"#
    var bytes = Self.file(header, data: 0)
    for v in halves + brains { bytes.appendLE(v) }
    let file = try SafeTensors.decode(bytes, fileName: "w.safetensors")
    let tiny = Float(sign: .plus, exponent: -24, significand: 1)
    #expect(file["a"]?.floats == [1, -2, 0.5, 65504, tiny, -0.0, .infinity])
    #expect(file["a"]?.floats[5].sign == .minus)
    #expect(file["b"] == Tensor(shape: [2, 2], f32: [1, -3, .leastNormalMagnitude, 3.3895314e38]))
  }

  @Test func refusesBrokenFiles() throws {
    let f8 = #"{"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}"#
    #expect(
      Self.errorText(Self.file(f8, data: 2)) == "w.safetensors: tensor 'a': dtype F8_E4M3 is not supported "
        + "(supported: F32, F64, I64, BOOL, and F16 and BF16 as F32) (at byte offset 8)")
    #expect(
      Self.errorText([]) == "w.safetensors: file is empty; a safetensors file starts with an 8-byte header length")
    #expect(Self.errorText([1, 2, 3]) == "w.safetensors: file is 3 bytes, too short for the 8-byte header length")
    #expect(
      Self.errorText([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        == "w.safetensors: header length 18446744073709551615 exceeds the limit of 100000000 bytes (at byte offset 0)")
    #expect(
      Self.errorText([100, 0, 0, 0, 0, 0, 0, 0, 0x7B, 0x7D])
        == "w.safetensors: header length 100 runs past the end of the file (2 bytes follow) (at byte offset 0)")
    let one = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
    let mixed = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.mixed)))
    #expect(
      Self.errorText(Array(mixed.dropLast()))
        == "w.safetensors: tensor 'mask': data_offsets [72, 75] lie outside the 74 data bytes (at byte offset 8)")
    #expect(
      Self.errorText(Self.file(one, data: 9))
        == "w.safetensors: data has 9 bytes but the tensors cover 8 (at byte offset 70)")
    #expect(
      Self.errorText(Self.file(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: 8))
        == "w.safetensors: tensor 'a': shape [3] of F32 needs 12 bytes but data_offsets [0, 8] hold 8 (at byte offset 8)"
    )
    let overlap =
      #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
    #expect(
      Self.errorText(Self.file(overlap, data: 12)).contains(
        "tensor 'b' at data_offsets [4, 12] overlaps the tensor before it (which ends at 8)"))
    let gap =
      #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
    #expect(Self.errorText(Self.file(gap, data: 12)).contains("data bytes [4, 8) belong to no tensor (before 'b')"))
    let huge = #"{"a":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4000000000000]}}"#
    #expect(
      Self.errorText(Self.file(huge, data: 0))
        == "w.safetensors: tensor 'a': data_offsets [0, 4000000000000] lie outside the 0 data bytes (at byte offset 8)")
    let overflow = #"{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#
    #expect(
      Self.errorText(Self.file(overflow, data: 8))
        == "w.safetensors: tensor 'a': shape [4294967296, 4294967296] has too many elements (at byte offset 8)")
    let offsetOverflow =
      #"{"a":{"dtype":"F64","shape":[1],"data_offsets":[18446744073709551615,18446744073709551616]}}"#
    #expect(
      Self.errorText(Self.file(offsetOverflow, data: 8)).contains(
        "data_offsets is not [begin, end] of non-negative integers"))
    #expect(
      Self.errorText(Self.file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{}}"#, data: 4)).contains(
        "key \"a\" appears twice"))
    #expect(
      Self.errorText(Self.file("[1,2]", data: 0)) == "w.safetensors: header is not a JSON object (at byte offset 8)")
    #expect(
      Self.errorText(Self.file(String(repeating: "{\"a\":", count: 100), data: 0)).contains(
        "JSON nested deeper than 64"))
    #expect(
      Self.errorText(Self.file(#"{"a":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}}"#, data: 0) + [2])
        == "w.safetensors: tensor 'a': bool element 0 is 0x2, not 0 or 1 (at byte offset 63)")
  }

  @Test func writerRefusesDuplicateNames() {
    let t = Tensor(shape: [1], f32: [1])
    #expect(throws: TensorFileError.self) {
      try SafeTensors.encode(SafeTensorsFile(tensors: [NamedTensor("a", t), NamedTensor("a", t)]))
    }
  }
}

struct JSONValueTests {
  static func parse(_ s: String) throws -> JSONValue {
    try Array(s.utf8).withUnsafeBytes { b in Result { () throws(JSONValue.ParseError) in try JSONValue.parse(b) } }
      .get()
  }

  @Test func keepsIntegersExact() throws {
    #expect(
      try Self.parse("[18446744073709551615, -3, 1.5, \"\\u00e9\\ud83d\\ude00\"]")
        == .array([
          .integer(negative: false, magnitude: .max), .integer(negative: true, magnitude: 3), .number(1.5),
          .string("é😀"),
        ]))
  }

  @Test func refusesBadText() {
    for s in ["", "{", "[1,]", "{\"a\" 1}", "\"\\ud800\"", "tru", "1 2", "\"a\u{1}\"", "-", "[1.5e]x"] {
      #expect(throws: JSONValue.ParseError.self, "\(s)") { try Self.parse(s) }
    }
  }
}

/// A PyTorch state_dict without the batch norms' `num_batches_tracked` counters loads, as in
/// PyTorch (the counters start at 0); every other parameter is still required.
struct BatchNormCounterTests {
  static let spec = """
    graph net(x: f32[1, 3, 8, 8]) -> (y: f32[1, 4, 8, 8]) {
      conv = conv2d(x, out: 4, kernel: 3, padding: 1, bias: false)
      bn = batch_norm(conv)
      y = relu(bn)
    }
    """

  @Test func aStateDictWithoutCountersLoads() throws {
    let graph = try Spec.checkedGraph(SourceText(fileName: "net.graph", text: Self.spec))
    let tensors = graph.parameters.filter { !$0.name.hasSuffix("num_batches_tracked") }.map { p in
      NamedTensor(
        p.name,
        Tensor(
          shape: p.type.shape.map { $0.staticValue ?? 0 },
          f32: [Float](repeating: 0.5, count: p.type.elementCount?.staticValue ?? 0)))
    }
    #expect(tensors.count == graph.parameters.count - 1)
    let match = WeightImport(graph: graph, file: SafeTensorsFile(tensors: tensors))
    #expect(match.isComplete && match.problems.isEmpty)
    let counter = try #require(graph.parameters.firstIndex { $0.name == "bn.num_batches_tracked" })
    #expect(match.weights?[counter] == Tensor(shape: [], storage: .i64([0])))
    let partial = WeightImport(graph: graph, file: SafeTensorsFile(tensors: Array(tensors.dropFirst())))
    #expect(partial.missing == ["conv.weight"])
  }
}
