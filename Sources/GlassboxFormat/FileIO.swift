#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GlassboxIR

#if !_endian(little)
#error("GlassboxFormat stores tensors as little-endian bytes and copies them in place; port the byte copies first")
#endif

/// A problem with a tensor file (`.npy`, safetensors): one line naming the file and, where it
/// helps, the byte offset where the problem was found.
public struct TensorFileError: Error, Sendable, Equatable, CustomStringConvertible {
  public var path: String
  public var message: String
  /// Offset in bytes from the start of the file, when the problem has a place.
  public var offsetInBytes: Int?

  public init(path: String, _ message: String, offsetInBytes: Int? = nil) {
    self.path = path
    self.message = message
    self.offsetInBytes = offsetInBytes
  }

  /// `weights.safetensors: tensor 'fc.weight' ends at byte 400 past the data (at byte offset 8)`.
  public var description: String {
    "\(path): \(message)" + (offsetInBytes.map { " (at byte offset \($0))" } ?? "")
  }
}

/// Whole-file reads and atomic writes, in POSIX calls so that the fuzz builds and the loader
/// do not depend on Foundation's file handling.
enum FileIO {
  /// Reads a regular file whole; files larger than `limit` bytes are refused before reading.
  static func readWhole(_ path: String, limit: Int = Int.max) throws(FileProblem) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw FileProblem(errnoMessage("cannot open")) }
    defer { close(fd) }
    let size = try regularFileSize(fd)
    guard size <= limit else { throw FileProblem("file is \(size) bytes; the limit is \(limit)") }
    var bytes = [UInt8](repeating: 0, count: size)
    var done = 0
    while done < size {
      let n = bytes.withUnsafeMutableBytes { buffer in
        read(fd, buffer.baseAddress! + done, size - done)
      }
      if n < 0 {
        if errno == EINTR { continue }
        throw FileProblem(errnoMessage("cannot read"))
      }
      if n == 0 { throw FileProblem("file shrank while being read (\(done) of \(size) bytes)") }
      done += n
    }
    return bytes
  }

  /// The size of an open regular file; directories and devices are refused.
  static func regularFileSize(_ fd: Int32) throws(FileProblem) -> Int {
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw FileProblem(errnoMessage("cannot stat")) }
    if (st.st_mode & S_IFMT) == S_IFDIR { throw FileProblem("is a directory, not a file") }
    guard (st.st_mode & S_IFMT) == S_IFREG else { throw FileProblem("is not a regular file") }
    return Int(st.st_size)
  }

  /// Writes `parts` in order to a temporary file beside `path`, then renames it over `path`:
  /// a failure (or a crash) leaves no half-written file, and an existing file is replaced only
  /// by a complete one.
  static func writeAtomically(_ path: String, parts: [UnsafeRawBufferPointer]) throws(FileProblem) {
    let slash = path.lastIndex(of: "/")
    let dir = slash.map { String(path[..<$0]) } ?? "."
    let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
    var template = Array("\(dir.isEmpty ? "/" : dir)/.\(base).XXXXXX.tmp".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemps($0.baseAddress!, 4) }
    guard fd >= 0 else { throw FileProblem(errnoMessage("cannot create a temporary file in '\(dir)'")) }
    let temporary = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var ok = false
    defer {
      if !ok { unlink(temporary) }
    }
    do {
      defer { close(fd) }
      for part in parts {
        var done = 0
        while done < part.count {
          let n = write(fd, part.baseAddress! + done, part.count - done)
          if n < 0 {
            if errno == EINTR { continue }
            throw FileProblem(errnoMessage("cannot write"))
          }
          done += n
        }
      }
      guard fsync(fd) == 0 else { throw FileProblem(errnoMessage("cannot write")) }
    }
    // mkstemp makes the file 0600; give it the usual permissions of a new file.
    let mask = umask(0)
    umask(mask)
    chmod(temporary, 0o666 & ~mask)
    guard rename(temporary, path) == 0 else { throw FileProblem(errnoMessage("cannot write")) }
    ok = true
  }

  static func writeAtomically(_ path: String, bytes: [UInt8]) throws(FileProblem) {
    let result = bytes.withUnsafeBytes { buffer in
      Result { () throws(FileProblem) in try writeAtomically(path, parts: [buffer]) }
    }
    try result.get()
  }

  static func errnoMessage(_ what: String) -> String {
    "\(what): \(String(cString: strerror(errno)))"
  }
}

/// A file-system problem before any format is involved; the caller adds the path.
struct FileProblem: Error {
  var message: String
  init(_ message: String) { self.message = message }
}

/// Overflow-checked arithmetic on untrusted counts and offsets: nil instead of a trap.
enum Checked {
  static func add(_ a: Int, _ b: Int) -> Int? {
    let (r, o) = a.addingReportingOverflow(b)
    return o ? nil : r
  }

  static func multiply(_ a: Int, _ b: Int) -> Int? {
    let (r, o) = a.multipliedReportingOverflow(by: b)
    return o ? nil : r
  }

  /// The product of sizes, or nil when one is negative or the product overflows.
  static func product(_ sizes: [Int]) -> Int? {
    var n = 1
    for s in sizes {
      guard s >= 0, let m = multiply(n, s) else { return nil }
      n = m
    }
    return n
  }

  /// `value` rounded up to a multiple of `alignment` (a power of two), or nil on overflow.
  static func alignUp(_ value: Int, to alignment: Int) -> Int? {
    guard let v = add(value, alignment - 1) else { return nil }
    return v & ~(alignment - 1)
  }

  /// A `UInt64` from a file as an `Int`, or nil when it does not fit.
  static func int(_ v: UInt64) -> Int? { v <= UInt64(Int.max) ? Int(v) : nil }
}

extension UnsafeRawBufferPointer {
  /// Little-endian integer at `offset`; the caller has checked the bounds.
  func loadLE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
    T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
  }
}

extension Array where Element == UInt8 {
  mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
    Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
  }
}

extension TensorFileError: KindedError {
  public var errorKind: ErrorKind { .file }
  public var errorFile: String? { path }
}
