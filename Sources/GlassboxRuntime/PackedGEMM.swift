import CKernels

/// Products with a weight matrix packed once: `c[r] = initial[r] + a[r] · Wᵀ` for rows that
/// need not be evenly spaced (an LSTM's projection reads x's rows by batch row and step and
/// writes them step by step), `W` being `[n, k]` as PyTorch stores a linear layer's weight.
///
/// `W` is packed into panels of 16 of its rows (output columns), each panel `k` runs of 16
/// floats, the last panel padded with zeros. Six rows at a time run against one panel with
/// twelve 8-float accumulators, started from the initial values: per step of `k`, two loads of
/// the panel, six broadcasts and twelve FMAs. Where the CPU has AVX-512 the same loop runs in C
/// (CKernels) over four panels at a time with 24 16-float accumulators: fewer instructions
/// per FMA, and twice the FMA width on cores with two 512-bit FMA units (Intel Xeon, Zen 5;
/// Zen 4 splits them in two). It exists for the narrow products of an LSTM's projection
/// (n = 4H = 128, k = 128, a few thousand rows a chunk), where OpenBLAS repacks `W` on every
/// call; packed once, `W` serves every chunk.
enum PackedGEMM {
  static let panel = 16

  /// Floats of `W` packed: whole panels of 16 columns over `k`.
  static func packedCount(n: Int, k: Int) -> Int { (n + panel - 1) / panel * panel * k }

  /// Packs `w[n, k]` (row-major) into `packed` (`packedCount` floats).
  static func pack(_ w: UnsafePointer<Float>, n: Int, k: Int, into packed: UnsafeMutablePointer<Float>) {
    let panels = (n + panel - 1) / panel
    for j in 0..<panels {
      let p = packed + j * k * panel
      for q in 0..<panel {
        let column = j * panel + q
        if column < n {
          for i in 0..<k { p[i * panel + q] = w[column * k + i] }
        } else {
          for i in 0..<k { p[i * panel + q] = 0 }
        }
      }
    }
  }

  /// `c[r][0..<n] = initial[r][0..<n] + a[r][0..<k] · Wᵀ` for `count` rows (1…6); `row(r)`
  /// gives row r's pointers into a, the initial values (a bias, or a row of its own) and c.
  /// `initial` and `c` are read and written in `n` floats only, and `c` may be `initial` (each
  /// panel's initial values are read before its results are stored). `wide`: the AVX-512 kernel,
  /// which computes the same bits (tests run both).
  @inline(__always)
  static func rows(
    _ count: Int, n: Int, k: Int, packed: UnsafePointer<Float>, wide: Bool = AVX512.enabled,
    row: (Int) -> (a: UnsafePointer<Float>, initial: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>)
  ) {
    // Missing rows repeat the last one; only rows below `count` are stored.
    let r0 = row(0), r1 = row(Swift.min(1, count - 1)), r2 = row(Swift.min(2, count - 1))
    let r3 = row(Swift.min(3, count - 1)), r4 = row(Swift.min(4, count - 1)), r5 = row(Swift.min(5, count - 1))
    if wide {
      var pointers = glassbox_packed_rows(
        a: (r0.a, r1.a, r2.a, r3.a, r4.a, r5.a),
        init: (r0.initial, r1.initial, r2.initial, r3.initial, r4.initial, r5.initial),
        c: (r0.c, r1.c, r2.c, r3.c, r4.c, r5.c))
      glassbox_packed_rows_avx512(Int32(count), Int32(n), Int32(k), packed, &pointers)
      return
    }
    typealias V8 = SIMD8<Float>
    let (a0, a1, a2, a3, a4, a5) = (r0.a, r1.a, r2.a, r3.a, r4.a, r5.a)
    // `j` is a constant in each pass (stride): the nested functions capture it by value, so
    // nothing is boxed on the heap.
    for j in Swift.stride(from: 0, to: n, by: panel) {
      let b = packed + j * k
      let width = Swift.min(panel, n - j)
      func start(_ p: UnsafePointer<Float>) -> (V8, V8) {
        (load8(p + j, count: width), width > 8 ? load8(p + j + 8, count: width - 8) : V8())
      }
      var (c00, c01) = start(r0.initial), (c10, c11) = start(r1.initial), (c20, c21) = start(r2.initial)
      var (c30, c31) = start(r3.initial), (c40, c41) = start(r4.initial), (c50, c51) = start(r5.initial)
      for i in 0..<k {
        let b0 = load8(b + i * panel), b1 = load8(b + i * panel + 8)
        var s = V8(repeating: a0[i]); c00.addProduct(s, b0); c01.addProduct(s, b1)
        s = V8(repeating: a1[i]); c10.addProduct(s, b0); c11.addProduct(s, b1)
        s = V8(repeating: a2[i]); c20.addProduct(s, b0); c21.addProduct(s, b1)
        s = V8(repeating: a3[i]); c30.addProduct(s, b0); c31.addProduct(s, b1)
        s = V8(repeating: a4[i]); c40.addProduct(s, b0); c41.addProduct(s, b1)
        s = V8(repeating: a5[i]); c50.addProduct(s, b0); c51.addProduct(s, b1)
      }
      func store(_ lo: V8, _ hi: V8, _ c: UnsafeMutablePointer<Float>, _ r: Int) {
        guard r < count else { return }
        store8(lo, c + j, count: width)
        if width > 8 { store8(hi, c + j + 8, count: width - 8) }
      }
      store(c00, c01, r0.c, 0); store(c10, c11, r1.c, 1); store(c20, c21, r2.c, 2)
      store(c30, c31, r3.c, 3); store(c40, c41, r4.c, 4); store(c50, c51, r5.c, 5)
    }
  }
}
