import CKernels
import Dispatch
import Foundation

/// A whole (bi)directional LSTM layer, PyTorch's semantics (batch first, gates i, f, g, o).
///
/// Per direction: GEMMs project the input of a chunk of time steps at once,
/// `proj[L, B, 4H] = x[:, t₀..<t₀+L] · W_ihᵀ + (b_ih + b_hh)` — the whole sequence where it fits
/// in `chunkFloats`, else chunks of `L` steps projected as the recurrence reaches them (at
/// B = 32, T = 768 one projection of every step would be 12 MiB per direction); then each step
/// adds `h · W_hhᵀ` (below 8 batch rows with `W_hh` transposed to `[H, 4H]`, so the update is a
/// run of vector FMAs over the gate axis; from 8 on, six rows at a time against `W_hh` packed
/// for `PackedGEMM`; either made once, in `prepare`), applies the four gate activations and
/// updates `c` and `h` in one pass — the fused cell. Each step's gates are summed in place in
/// its slice of the projection, which no later step reads. The two directions are independent
/// and run on two threads — unless only the last step is read (the reverse direction is then
/// one step): then one after the other, the projection and the recurrence split over the
/// cores by batch rows.
///
/// Scratch, per direction: `proj[L·B·4H]`, `h[B·H]`, `c[B·H]`.
struct LSTMLayer: Kernel {
  var label: String
  var batch: Int, steps: Int, features: Int, hidden: Int, directions: Int
  var x: Int, out: Int
  /// Per direction: weight_ih, weight_hh, bias_ih, bias_hh.
  var weights: [(Int, Int, Int, Int)]
  var scratch: Int
  /// Per direction, made from the parameters once (`prepare`): `W_ih` packed for
  /// `PackedGEMM`, the summed biases `b_ih + b_hh` padded to whole panels, and `W_hh` packed
  /// (`packsRecurrent`) or transposed to `[H, 4H]`.
  var persistent: Int
  /// Whether the two directions may run on two threads (they do unless `lastOnly`).
  var parallel: Bool
  /// Cores the projection and the recurrence are split over when the directions run one
  /// after the other.
  var threads: Int
  /// Only the outputs at the last time step, `out[B, directions·H]`: the reverse direction
  /// then needs one step (its first) and one row of projection per batch element.
  var lastOnly: Bool

  /// The most floats of projection a direction holds at once (1 MiB: a chunk stays in cache
  /// between its GEMM and its steps).
  static let chunkFloats = 1 << 18

  /// Time steps projected at once.
  static func chunkSteps(batch: Int, steps: Int, hidden: Int) -> Int {
    Swift.max(1, Swift.min(steps, chunkFloats / Swift.max(1, batch * 4 * hidden)))
  }

  /// Floats of scratch one direction needs.
  static func scratchCount(batch: Int, steps: Int, hidden: Int) -> Int {
    let g = 4 * hidden
    return chunkSteps(batch: batch, steps: steps, hidden: hidden) * batch * g + 2 * batch * hidden
  }

  /// Whether the recurrence runs six rows at a time against packed `W_hh` (from 8 batch rows
  /// on; split over cores, each part still has 8, see `run`), else a row at a time.
  var packsRecurrent: Bool { batch >= 8 }

  /// Floats one direction keeps from its parameters: packed `W_ih`, the padded bias and `W_hh`
  /// (packed, the larger of its two forms).
  static func persistentCount(features: Int, hidden: Int) -> Int {
    let g = 4 * hidden
    return PackedGEMM.packedCount(n: g, k: features) + PackedGEMM.packedCount(n: g, k: 1)
      + PackedGEMM.packedCount(n: g, k: hidden)
  }

  /// Direction `d`'s packed `W_ih`, bias and `W_hh` (packed or transposed).
  func packedOf(
    _ a: UnsafeMutablePointer<Float>, direction d: Int
  )
    -> (weight: UnsafeMutablePointer<Float>, bias: UnsafeMutablePointer<Float>, recurrent: UnsafeMutablePointer<Float>)
  {
    let g = 4 * hidden
    let weight = a + persistent + d * LSTMLayer.persistentCount(features: features, hidden: hidden)
    let bias = weight + PackedGEMM.packedCount(n: g, k: features)
    return (weight, bias, bias + PackedGEMM.packedCount(n: g, k: 1))
  }

  func prepare(_ a: UnsafeMutablePointer<Float>, callers: CallerParameters) {
    let g = 4 * hidden
    for d in 0..<directions {
      let (wih, whh, bih, bhh) = weights[d]
      let (weight, bias, recurrent) = packedOf(a, direction: d)
      PackedGEMM.pack(a + wih, n: g, k: features, into: weight)
      if packsRecurrent {
        PackedGEMM.pack(a + whh, n: g, k: hidden, into: recurrent)
      } else {
        for k in 0..<hidden { for j in 0..<g { recurrent[k * g + j] = a[whh + j * hidden + k] } }
      }
      for j in 0..<PackedGEMM.packedCount(n: g, k: 1) { bias[j] = j < g ? a[bih + j] + a[bhh + j] : 0 }
    }
  }

  /// Direction `d`'s scratch: the projected chunk, h and c.
  func scratchOf(
    _ a: UnsafeMutablePointer<Float>, direction d: Int
  )
    -> (proj: UnsafeMutablePointer<Float>, h: UnsafeMutablePointer<Float>, c: UnsafeMutablePointer<Float>)
  {
    let g = 4 * hidden
    let proj = a + scratch + d * LSTMLayer.scratchCount(batch: batch, steps: steps, hidden: hidden)
    let h = proj + LSTMLayer.chunkSteps(batch: batch, steps: steps, hidden: hidden) * batch * g
    return (proj, h, h + batch * hidden)
  }

  func run(_ a: UnsafeMutablePointer<Float>) {
    // With `lastOnly` the reverse direction is one step: side by side, one core would run
    // all T steps of the forward direction alone while the other idles. One direction after
    // the other instead, the batch rows split over the cores (independent sequences, each
    // core projects and runs its rows of h, c and the projection).
    if directions == 2 && parallel && !lastOnly {
      // One direction per core, each with a single-threaded BLAS, so nothing is oversubscribed.
      let base = UnsafeSendable(a)
      parallelFor(2) { d in
        recur(base.pointer, direction: d, rows: 0..<batch, threads: 1)
      }
    } else {
      let parts = Swift.max(1, Swift.min(threads, batch / 8))
      for d in 0..<directions {
        let stepCount = lastOnly && d == 1 ? 1 : steps
        guard parts > 1 && stepCount > 1 else { recur(a, direction: d, rows: 0..<batch, threads: threads); continue }
        let base = UnsafeSendable(a), kernel = self
        parallelFor(parts) { part in
          kernel.recur(
            base.pointer, direction: d, rows: (kernel.batch * part / parts)..<(kernel.batch * (part + 1) / parts),
            threads: 1)
        }
      }
    }
  }

  /// `proj[t − t₀, b] = x[b, t] · W_ihᵀ + b_ih + b_hh` for the steps `t₀..<t₀+length` and the
  /// batch rows `rows`, six (b, t) rows at a time against the packed `W_ih` (`PackedGEMM`),
  /// split over `threads` cores where there are enough rows.
  func project(
    _ a: UnsafeMutablePointer<Float>, direction d: Int, rows: Range<Int>, from t0: Int, length: Int,
    threads: Int
  ) {
    let g = 4 * hidden, f = features, count = rows.count * length
    let kernel = self, base = UnsafeSendable(a)
    @Sendable func part(_ p: Int, of parts: Int) {
      let a = base.pointer, x = a + kernel.x
      let (weight, bias, _) = kernel.packedOf(a, direction: d), proj = kernel.scratchOf(a, direction: d).proj
      var r = count * p / parts
      let end = count * (p + 1) / parts
      while r < end {
        let n = Swift.min(6, end - r), first = r
        PackedGEMM.rows(n, n: g, k: f, packed: weight) { q in
          let b = rows.lowerBound + (first + q) / length, t = (first + q) % length
          return (
            UnsafePointer(x + (b * kernel.steps + t0 + t) * f), UnsafePointer(bias), proj + (t * kernel.batch + b) * g
          )
        }
        r += n
      }
    }
    // A few rows stay on one core (64: a guess, not tuned).
    let parts = threads > 1 && count >= 64 ? threads : 1
    if parts == 1 { part(0, of: 1) } else { parallelFor(parts) { part($0, of: parts) } }
  }

  /// The recurrence of direction `d` for the batch rows `rows` (their rows of h, c and the
  /// projection in scratch are theirs alone).
  @inline(__always)
  func recur(_ a: UnsafeMutablePointer<Float>, direction d: Int, rows: Range<Int>, threads: Int) {
    let g = 4 * hidden, h = hidden
    let chunk = LSTMLayer.chunkSteps(batch: batch, steps: steps, hidden: hidden)
    let (proj, hs, cs) = scratchOf(a, direction: d)
    // Packed for `PackedGEMM.rows`, or `W_hhᵀ`: which one, `packsRecurrent` says.
    let recurrent = packedOf(a, direction: d).recurrent
    (hs + rows.lowerBound * h).update(repeating: 0, count: rows.count * h)
    (cs + rows.lowerBound * h).update(repeating: 0, count: rows.count * h)
    let vectorized = g % 8 == 0 && h % 8 == 0
    let outStride = directions * h
    // From 8 rows on, six rows at a time against packed `W_hh` beat a row at a time.
    let useGEMM = packsRecurrent
    let stepCount = lastOnly && d == 1 ? 1 : steps
    var projected = 0..<0  // the steps `proj` holds
    for s in 0..<stepCount {
      let t = d == 0 ? s : steps - 1 - s
      if !projected.contains(t) {
        // The chunk holding t (just t where it is the only step), projected on entering it.
        let t0 = stepCount == 1 ? t : t - t % chunk
        projected = t0..<Swift.min(steps, t0 + (stepCount == 1 ? 1 : chunk))
        project(a, direction: d, rows: rows, from: t0, length: projected.count, threads: threads)
      }
      let stepGates = proj + (t - projected.lowerBound) * batch * g
      // With `lastOnly`, only the last time step writes its outputs, into row b of
      // `out[B, directions·H]`; earlier steps just carry h and c.
      let writes = !lastOnly || t == steps - 1
      if useGEMM {
        // gates += h · W_hhᵀ, in place.
        for first in Swift.stride(from: rows.lowerBound, to: rows.upperBound, by: 6) {
          PackedGEMM.rows(Swift.min(6, rows.upperBound - first), n: g, k: h, packed: recurrent) { q in
            let gate = stepGates + (first + q) * g
            return (UnsafePointer(hs + (first + q) * h), UnsafePointer(gate), gate)
          }
        }
      }
      if vectorized {
        if !useGEMM {
          LSTMLayer.accumulateRows(
            rows.count, n: g, k: h, w: recurrent, h: hs + rows.lowerBound * h, hStride: h,
            acc: stepGates + rows.lowerBound * g, accStride: g)
        }
        let first = rows.lowerBound
        let dst = lastOnly ? a + out + first * outStride + d * h : a + out + (first * steps + t) * outStride + d * h
        LSTMLayer.cells(
          rows.count, hidden: h, gates: stepGates + first * g, gateStride: g, c: cs + first * h,
          h: hs + first * h, stateStride: h, out: writes ? dst : nil,
          outStride: lastOnly ? outStride : steps * outStride)
        continue
      }
      for b in rows {
        let gate = stepGates + b * g, hb = hs + b * h
        for k in 0..<h where !useGEMM {
          let hk = hb[k], wrow = recurrent + k * g
          for j in 0..<g { gate[j] += hk * wrow[j] }
        }
        let cb = cs + b * h
        let dst = lastOnly ? a + out + b * outStride + d * h : a + out + (b * steps + t) * outStride + d * h
        for j in 0..<h {
          let i = 1 / (1 + expf(-gate[j])), f = 1 / (1 + expf(-gate[h + j]))
          let gg = tanhf(gate[2 * h + j]), o = 1 / (1 + expf(-gate[3 * h + j]))
          cb[j] = f * cb[j] + i * gg
          hb[j] = o * tanhf(cb[j])
          if writes { dst[j] = hb[j] }
        }
      }
    }
  }

  /// `acc[b][0..<n] += h[b][0..<k] · w` for `rows` rows, `w` `[k, n]` row-major (`W_hhᵀ`) and
  /// `n` a multiple of 8 (h and acc rows `hStride` and `accStride` apart): below 8 batch rows,
  /// the recurrence row by row. Each row's 64 columns at a time are kept in eight registers
  /// over k, the rest a vector at a time. `wide`: 128 columns at a time in CKernels, the same
  /// sums in the same order, so the same bits (tests run both).
  static func accumulateRows(
    _ rows: Int, n: Int, k: Int, w: UnsafePointer<Float>, h: UnsafeMutablePointer<Float>,
    hStride: Int, acc: UnsafeMutablePointer<Float>, accStride: Int,
    wide: Bool = AVX512.enabled
  ) {
    if wide {
      glassbox_accumulate_rows_avx512(Int32(rows), Int32(n), Int32(k), w, h, hStride, acc, accStride)
      return
    }
    let vectors = n / 8
    for b in 0..<rows {
      let gv = UnsafeMutableRawPointer(acc + b * accStride), hb = h + b * hStride
      var v = 0
      while v + 8 <= vectors {
        accumulate8(gv + v * 32, UnsafeRawPointer(w + v * 8), rowBytes: n * 4, hb, k)
        v += 8
      }
      while v < vectors {
        var sum = gv.loadUnaligned(fromByteOffset: v * 32, as: SIMD8<Float>.self)
        for i in 0..<k {
          sum = sum.plusProduct(SIMD8(repeating: hb[i]), load8(w + i * n + v * 8))
        }
        gv.storeBytes(of: sum, toByteOffset: v * 32, as: SIMD8<Float>.self)
        v += 1
      }
    }
  }

  /// The fused cell of `rows` batch rows, `hidden` a multiple of 8: from each row's summed
  /// gate pre-activations (i, f, g, o; rows `gateStride` apart), `c = σ(f)·c + σ(i)·tanh(g)`
  /// and `h = σ(o)·tanh(c)` (rows `stateStride` apart), `h` also written to `out` (rows
  /// `outStride` apart) where given. `wide`: sixteen lanes at a time in CKernels, the same
  /// bits (tests run both).
  static func cells(
    _ rows: Int, hidden: Int, gates: UnsafeMutablePointer<Float>, gateStride: Int,
    c: UnsafeMutablePointer<Float>, h: UnsafeMutablePointer<Float>, stateStride: Int,
    out: UnsafeMutablePointer<Float>?, outStride: Int, wide: Bool = AVX512.enabled
  ) {
    if wide {
      glassbox_lstm_cells_avx512(Int32(rows), Int32(hidden), gates, gateStride, c, h, stateStride, out, outStride)
      return
    }
    for b in 0..<rows {
      let gate = gates + b * gateStride, cb = c + b * stateStride, hb = h + b * stateStride
      for j in Swift.stride(from: 0, to: hidden, by: 8) {
        let i = FastMath.sigmoid(load8(gate + j)), f = FastMath.sigmoid(load8(gate + hidden + j))
        let gg = FastMath.tanh(load8(gate + 2 * hidden + j)), o = FastMath.sigmoid(load8(gate + 3 * hidden + j))
        let cv = f * load8(cb + j) + i * gg
        let hv = o * FastMath.tanh(cv)
        store8(cv, cb + j)
        store8(hv, hb + j)
        if let out { store8(hv, out + b * outStride + j) }
      }
    }
  }
}

/// `acc[0..<64] += Σ_k h[k] · w[k][0..<64]` with the 64 accumulators in eight registers;
/// `w` rows are `rowBytes` apart.
@inline(__always)
func accumulate8(
  _ acc: UnsafeMutableRawPointer, _ w: UnsafeRawPointer, rowBytes: Int,
  _ h: UnsafeMutablePointer<Float>, _ count: Int
) {
  typealias V = SIMD8<Float>
  var a0 = acc.loadUnaligned(fromByteOffset: 0, as: V.self), a1 = acc.loadUnaligned(fromByteOffset: 32, as: V.self)
  var a2 = acc.loadUnaligned(fromByteOffset: 64, as: V.self), a3 = acc.loadUnaligned(fromByteOffset: 96, as: V.self)
  var a4 = acc.loadUnaligned(fromByteOffset: 128, as: V.self), a5 = acc.loadUnaligned(fromByteOffset: 160, as: V.self)
  var a6 = acc.loadUnaligned(fromByteOffset: 192, as: V.self), a7 = acc.loadUnaligned(fromByteOffset: 224, as: V.self)
  var row = w
  for k in 0..<count {
    let hk = V(repeating: h[k])
    a0 = a0.plusProduct(hk, row.loadUnaligned(fromByteOffset: 0, as: V.self))
    a1 = a1.plusProduct(hk, row.loadUnaligned(fromByteOffset: 32, as: V.self))
    a2 = a2.plusProduct(hk, row.loadUnaligned(fromByteOffset: 64, as: V.self))
    a3 = a3.plusProduct(hk, row.loadUnaligned(fromByteOffset: 96, as: V.self))
    a4 = a4.plusProduct(hk, row.loadUnaligned(fromByteOffset: 128, as: V.self))
    a5 = a5.plusProduct(hk, row.loadUnaligned(fromByteOffset: 160, as: V.self))
    a6 = a6.plusProduct(hk, row.loadUnaligned(fromByteOffset: 192, as: V.self))
    a7 = a7.plusProduct(hk, row.loadUnaligned(fromByteOffset: 224, as: V.self))
    row += rowBytes
  }
  acc.storeBytes(of: a0, toByteOffset: 0, as: V.self); acc.storeBytes(of: a1, toByteOffset: 32, as: V.self)
  acc.storeBytes(of: a2, toByteOffset: 64, as: V.self); acc.storeBytes(of: a3, toByteOffset: 96, as: V.self)
  acc.storeBytes(of: a4, toByteOffset: 128, as: V.self); acc.storeBytes(of: a5, toByteOffset: 160, as: V.self)
  acc.storeBytes(of: a6, toByteOffset: 192, as: V.self); acc.storeBytes(of: a7, toByteOffset: 224, as: V.self)
}

/// A pointer handed to worker threads that write disjoint parts of the arena.
struct UnsafeSendable: @unchecked Sendable {
  let pointer: UnsafeMutablePointer<Float>
  init(_ p: UnsafeMutablePointer<Float>) { pointer = p }
}

/// One fused LSTM step of an unrolled LSTM: `gates = gates_x + h·W_hhᵀ` (one GEMM into
/// scratch `[B, 4H]`), the four activations and the state update, writing `h'` and `c'`.
/// `gates_x` may be a view of the step in the whole projection `[B, T, 4H]` (`gatesStride`).
struct LSTMCell: Kernel {
  var label: String
  var batch: Int, hidden: Int
  var gates: Int, h: Int, c: Int, weight: Int, hOut: Int, cOut: Int, scratch: Int
  var threads = 1
  /// Floats between the batch rows of `gates` (4H, or T·4H where it is a step of the projection).
  var gatesStride: Int

  func run(_ a: UnsafeMutablePointer<Float>) {
    let n = hidden, g4 = 4 * hidden
    let pre = a + scratch
    for b in 0..<batch { (pre + b * g4).update(from: a + gates + b * gatesStride, count: g4) }
    BLAS.sgemm(
      threads: threads, transB: true, m: batch, n: g4, k: n, a: a + h, lda: n, b: a + weight, ldb: n, beta: 1, c: pre,
      ldc: g4)
    for b in 0..<batch {
      let p = pre + b * g4, cv = a + c + b * n, ho = a + hOut + b * n, co = a + cOut + b * n
      // Activations in place, each gate's block contiguous: σ(i), σ(f) | tanh(g) | σ(o).
      mapSIMD(p, p, 2 * n, FastMath.sigmoid)
      mapSIMD(p + 2 * n, p + 2 * n, n, FastMath.tanh)
      mapSIMD(p + 3 * n, p + 3 * n, n, FastMath.sigmoid)
      var j = 0
      while j + 8 <= n {
        store8(load8(p + n + j) * load8(cv + j) + load8(p + j) * load8(p + 2 * n + j), co + j); j += 8
      }
      while j < n { co[j] = p[n + j] * cv[j] + p[j] * p[2 * n + j]; j += 1 }
      mapSIMD(co, ho, n, FastMath.tanh)
      j = 0
      while j + 8 <= n { store8(load8(ho + j) * load8(p + 3 * n + j), ho + j); j += 8 }
      while j < n { ho[j] *= p[3 * n + j]; j += 1 }
    }
  }
}
