import GlassboxIR

/// NumPy's `.npy` format, as `numpy.save` writes it and `numpy.load` reads it.
///
/// ```
/// offset 0   6 bytes  magic "\x93NUMPY"
///        6   1 byte   major version (1, 2 or 3)      7  1 byte  minor version (0)
///        8   2 bytes  header length (v1, u16 LE)  or  4 bytes (v2 and v3, u32 LE)
///        10 or 12     header: a Python dict literal, ASCII (v3: UTF-8), padded with spaces and
///                     ended by "\n" so that the data starts at a multiple of 64
///                     {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
///        then         the elements, C (row-major) order, little-endian
/// ```
/// Supported element types: `<f4`, `<f8`, `<i8` and `|b1` (also spelled `?`); Fortran order,
/// big-endian, object and every other type are refused with a message naming the file.
public enum NPY {
  static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
  /// Headers longer than this are refused (numpy itself refuses more than 10 000 bytes by default).
  static let maxHeaderBytes = 1 << 20

  /// Reads a `.npy` file.
  public static func read(_ path: String) throws(TensorFileError) -> Tensor {
    let bytes: [UInt8]
    do {
      bytes = try FileIO.readWhole(path)
    } catch {
      throw TensorFileError(path: path, error.message)
    }
    return try decode(bytes, fileName: path)
  }

  /// Decodes the bytes of a `.npy` file; `fileName` names it in errors.
  public static func decode(_ bytes: [UInt8], fileName: String) throws(TensorFileError) -> Tensor {
    func fail(_ message: String, at offset: Int? = nil) -> TensorFileError {
      TensorFileError(path: fileName, message, offsetInBytes: offset)
    }
    guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
      throw fail(
        bytes.isEmpty
          ? "file is empty; an .npy file starts with \"\\x93NUMPY\""
          : "not an .npy file: it does not start with \"\\x93NUMPY\"")
    }
    let major = bytes[6], minor = bytes[7]
    guard (1...3).contains(major), minor == 0 else {
      throw fail("unsupported .npy version \(major).\(minor) (supported: 1.0, 2.0, 3.0)", at: 6)
    }
    let headerStart = major == 1 ? 10 : 12
    guard bytes.count >= headerStart else { throw fail("file ends inside the .npy preamble", at: bytes.count) }
    let headerLength = bytes.withUnsafeBytes { b in
      major == 1 ? Int(b.loadLE(UInt16.self, at: 8)) : Int(b.loadLE(UInt32.self, at: 8))
    }
    guard headerLength <= maxHeaderBytes else {
      throw fail("header claims \(headerLength) bytes; the limit is \(maxHeaderBytes)", at: 8)
    }
    guard let dataStart = Checked.add(headerStart, headerLength), dataStart <= bytes.count else {
      throw fail(
        "header claims \(headerLength) bytes but the file has \(bytes.count - headerStart) after the preamble", at: 8)
    }
    let headerBytes = bytes[headerStart..<dataStart]
    if major < 3, let bad = headerBytes.firstIndex(where: { $0 >= 0x80 }) {
      throw fail("header of a version \(major) file must be ASCII", at: bad)
    }
    guard let text = String(validating: headerBytes, as: UTF8.self) else {
      throw fail("header is not valid UTF-8", at: headerStart)
    }
    let header: NPYHeader
    do {
      header = try NPYHeader(parsing: text)
    } catch {
      throw fail("bad header: \(error.message)", at: headerStart)
    }
    guard !header.fortranOrder else {
      throw fail(
        "Fortran-order arrays are not supported; save a C-order array (numpy.ascontiguousarray)", at: headerStart)
    }
    let dtype: DType
    switch header.descr {
    case "<f4": dtype = .f32
    case "<f8": dtype = .f64
    case "<i8": dtype = .i64
    case "|b1", "?", "<b1", "b1": dtype = .bool
    case ">f4", ">f8", ">i8":
      throw fail(
        "big-endian element type '\(header.descr)' is not supported; save little-endian (array.astype('<\(header.descr.dropFirst())'))",
        at: headerStart)
    case "|O", "O", "<O":
      throw fail("object arrays are not supported (they hold pickled Python objects)", at: headerStart)
    default:
      throw fail("element type '\(header.descr)' is not supported (supported: <f4, <f8, <i8, |b1)", at: headerStart)
    }
    guard let count = Checked.product(header.shape), let size = Checked.multiply(count, dtype.byteSize) else {
      throw fail("shape \(header.shape) has too many elements", at: headerStart)
    }
    let available = bytes.count - dataStart
    guard size == available else {
      let kind = size > available ? "truncated" : "longer than its header says"
      throw fail(
        "data is \(kind): shape \(header.shape) of \(header.descr) needs \(size) bytes, the file has \(available)",
        at: dataStart)
    }
    let result = bytes.withUnsafeBytes { b in
      Result { () throws(TensorBytesError) in
        try Tensor(
          dtype: dtype, shape: header.shape, littleEndianBytes: UnsafeRawBufferPointer(rebasing: b[dataStart...]))
      }
    }
    switch result {
    case .success(let t): return t
    case .failure(let error): throw fail(error.message, at: error.offsetInBytes.map { dataStart + $0 })
    }
  }

  /// The bytes of a `.npy` file holding `tensor`: version 1.0 unless the header needs more
  /// than 65 535 bytes, data starting at a multiple of 64, as numpy writes it.
  public static func encode(_ tensor: Tensor) -> [UInt8] {
    let descr =
      switch tensor.dtype {
      case .f32: "<f4"
      case .f64: "<f8"
      case .i64: "<i8"
      case .bool: "|b1"
      }
    let shape =
      tensor.shape.count == 1
      ? "(\(tensor.shape[0]),)"
      : "(" + tensor.shape.map(String.init).joined(separator: ", ") + ")"
    var dict = Array("{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }".utf8)
    var preamble = 10
    var total = (preamble + dict.count + 1 + 63) / 64 * 64
    if total - preamble > 65_535 {
      preamble = 12
      total = (preamble + dict.count + 1 + 63) / 64 * 64
    }
    dict += [UInt8](repeating: 0x20, count: total - preamble - dict.count - 1) + [0x0A]
    var out = magic + [preamble == 10 ? 1 : 2, 0]
    if preamble == 10 { out.appendLE(UInt16(dict.count)) } else { out.appendLE(UInt32(dict.count)) }
    out += dict
    tensor.withLittleEndianBytes { out.append(contentsOf: $0) }
    return out
  }

  /// Writes `tensor` to `path` through a temporary file and a rename.
  public static func write(_ tensor: Tensor, to path: String) throws(TensorFileError) {
    guard tensor.isConsistent else {
      throw TensorFileError(path: path, "tensor has \(tensor.count) elements but shape \(tensor.shape)")
    }
    do {
      try FileIO.writeAtomically(path, bytes: encode(tensor))
    } catch {
      throw TensorFileError(path: path, error.message)
    }
  }
}

/// The dict literal of an `.npy` header: exactly the keys `descr`, `fortran_order`, `shape`.
struct NPYHeader {
  var descr = ""
  var fortranOrder = false
  var shape: [Int] = []

  struct ParseError: Error { var message: String }

  init(parsing text: String) throws(ParseError) {
    var s = Substring(text)
    func skipSpace() { s = s.drop { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" } }
    func expect(_ c: Character) throws(ParseError) {
      skipSpace()
      guard s.first == c else {
        throw ParseError(message: "expected '\(c)', found \(s.first.map { "'\($0)'" } ?? "the end")")
      }
      s = s.dropFirst()
    }
    func string() throws(ParseError) -> String {
      skipSpace()
      guard let q = s.first, q == "'" || q == "\"" else { throw ParseError(message: "expected a quoted string") }
      s = s.dropFirst()
      guard let end = s.firstIndex(of: q) else { throw ParseError(message: "unterminated string") }
      let v = String(s[..<end])
      s = s[s.index(after: end)...]
      return v
    }
    func integer() throws(ParseError) -> Int {
      skipSpace()
      let digits = s.prefix { $0.isASCII && $0.isNumber }
      guard !digits.isEmpty, digits.count <= 18, let v = Int(digits) else {
        throw ParseError(message: "expected a dimension (a non-negative integer)")
      }
      s = s.dropFirst(digits.count)
      if s.first == "L" { s = s.dropFirst() }  // Python 2's long suffix
      return v
    }
    try expect("{")
    var seen = Set<String>()
    while true {
      skipSpace()
      if s.first == "}" { s = s.dropFirst(); break }
      let key = try string()
      guard seen.insert(key).inserted else { throw ParseError(message: "key '\(key)' appears twice") }
      try expect(":")
      skipSpace()
      switch key {
      case "descr":
        descr = try string()
      case "fortran_order":
        if s.hasPrefix("True") {
          fortranOrder = true; s = s.dropFirst(4)
        } else if s.hasPrefix("False") {
          fortranOrder = false; s = s.dropFirst(5)
        } else {
          throw ParseError(message: "fortran_order must be True or False")
        }
      case "shape":
        try expect("(")
        var dims: [Int] = []
        while true {
          skipSpace()
          if s.first == ")" { s = s.dropFirst(); break }
          guard dims.count < 64 else { throw ParseError(message: "shape has more than 64 axes") }
          dims.append(try integer())
          skipSpace()
          if s.first == "," {
            s = s.dropFirst()
          } else if s.first != ")" {
            throw ParseError(message: "expected ',' or ')' in the shape")
          }
        }
        shape = dims
      default:
        throw ParseError(message: "unexpected key '\(key)' (expected descr, fortran_order, shape)")
      }
      skipSpace()
      if s.first == "," {
        s = s.dropFirst()
      } else if s.first != "}" {
        throw ParseError(message: "expected ',' or '}' after '\(key)'")
      }
    }
    skipSpace()
    guard s.isEmpty else { throw ParseError(message: "unexpected text after the dict") }
    for key in ["descr", "fortran_order", "shape"] where !seen.contains(key) {
      throw ParseError(message: "missing key '\(key)'")
    }
  }
}
