import Foundation
import Dispatch

/// A whole (bi)directional LSTM layer, PyTorch's semantics (batch first, gates i, f, g, o).
///
/// Per direction: one GEMM projects every time step's input at once,
/// `proj[B·T, 4H] = x[B·T, F] · W_ihᵀ + (b_ih + b_hh)`; then each step adds `h · W_hhᵀ`
/// (with `W_hh` transposed to `[H, 4H]` so the update is a run of vector FMAs over the gate
/// axis), applies the four gate activations and updates `c` and `h` in one pass — the fused
/// cell. The two directions are independent and run on two threads.
///
/// Scratch, per direction: `proj[B·T·4H]`, `wt[H·4H]`, `h[B·H]`, `c[B·H]`, `gates[B·4H]`.
struct LSTMLayer: Kernel {
  var label: String
  var batch: Int, steps: Int, features: Int, hidden: Int, directions: Int
  var x: Int, out: Int
  /// Per direction: weight_ih, weight_hh, bias_ih, bias_hh.
  var weights: [(Int, Int, Int, Int)]
  var scratch: Int

  /// Floats of scratch one direction needs.
  static func scratchCount(batch: Int, steps: Int, hidden: Int) -> Int {
    let g = 4 * hidden
    return batch * steps * g + hidden * g + 2 * batch * hidden + batch * g
  }

  func run(_ a: UnsafeMutablePointer<Float>) {
    let g = 4 * hidden
    let per = LSTMLayer.scratchCount(batch: batch, steps: steps, hidden: hidden)
    // Input projections first, on BLAS's threads.
    for d in 0..<directions {
      let (wih, _, bih, bhh) = weights[d]
      let proj = a + scratch + d * per
      for r in 0..<(batch * steps) {
        let row = proj + r * g
        for j in 0..<g { row[j] = a[bih + j] + a[bhh + j] }
      }
      BLAS.sgemm(transB: true, m: batch * steps, n: g, k: features, a: a + x, lda: features,
                 b: a + wih, ldb: features, beta: 1, c: proj, ldc: g)
    }
    // Recurrences: independent per direction.
    let base = UnsafeSendable(a)
    if directions == 2 {
      DispatchQueue.concurrentPerform(iterations: 2) { d in recur(base.pointer, direction: d) }
    } else {
      recur(a, direction: 0)
    }
  }

  @inline(__always)
  func recur(_ a: UnsafeMutablePointer<Float>, direction d: Int) {
    let g = 4 * hidden, h = hidden
    let per = LSTMLayer.scratchCount(batch: batch, steps: steps, hidden: hidden)
    let proj = a + scratch + d * per
    let wt = proj + batch * steps * g
    let hs = wt + h * g, cs = hs + batch * h, gates = cs + batch * h
    let whh = a + weights[d].1
    for k in 0..<h { for j in 0..<g { wt[k * g + j] = whh[j * h + k] } }
    hs.update(repeating: 0, count: batch * h)
    cs.update(repeating: 0, count: batch * h)
    let vectors = g / 8, vectorized = g % 8 == 0 && h % 8 == 0
    let outStride = directions * h
    for s in 0..<steps {
      let t = d == 0 ? s : steps - 1 - s
      for b in 0..<batch {
        let gate = gates + b * g
        gate.update(from: proj + (b * steps + t) * g, count: g)
        let hb = hs + b * h
        if vectorized {
          let gv = UnsafeMutableRawPointer(gate)
          for k in 0..<h {
            let hk = SIMD8<Float>(repeating: hb[k])
            let wrow = UnsafeRawPointer(wt + k * g)
            for v in 0..<vectors {
              let w = wrow.loadUnaligned(fromByteOffset: v * 32, as: SIMD8<Float>.self)
              let acc = gv.loadUnaligned(fromByteOffset: v * 32, as: SIMD8<Float>.self)
              gv.storeBytes(of: acc.addingProduct(hk, w), toByteOffset: v * 32, as: SIMD8<Float>.self)
            }
          }
          let cb = UnsafeMutableRawPointer(cs + b * h), hbr = UnsafeMutableRawPointer(hb)
          let dst = a + out + (b * steps + t) * outStride + d * h
          for v in 0..<(h / 8) {
            let o8 = v * 32
            let i = FastMath.sigmoid(gv.loadUnaligned(fromByteOffset: o8, as: SIMD8<Float>.self))
            let f = FastMath.sigmoid(gv.loadUnaligned(fromByteOffset: h * 4 + o8, as: SIMD8<Float>.self))
            let gg = FastMath.tanh(gv.loadUnaligned(fromByteOffset: 2 * h * 4 + o8, as: SIMD8<Float>.self))
            let o = FastMath.sigmoid(gv.loadUnaligned(fromByteOffset: 3 * h * 4 + o8, as: SIMD8<Float>.self))
            let c = f * cb.loadUnaligned(fromByteOffset: o8, as: SIMD8<Float>.self) + i * gg
            let hv = o * FastMath.tanh(c)
            cb.storeBytes(of: c, toByteOffset: o8, as: SIMD8<Float>.self)
            hbr.storeBytes(of: hv, toByteOffset: o8, as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(dst).storeBytes(of: hv, toByteOffset: o8, as: SIMD8<Float>.self)
          }
        } else {
          for k in 0..<h {
            let hk = hb[k], wrow = wt + k * g
            for j in 0..<g { gate[j] += hk * wrow[j] }
          }
          let cb = cs + b * h
          let dst = a + out + (b * steps + t) * outStride + d * h
          for j in 0..<h {
            let i = 1 / (1 + expf(-gate[j])), f = 1 / (1 + expf(-gate[h + j]))
            let gg = tanhf(gate[2 * h + j]), o = 1 / (1 + expf(-gate[3 * h + j]))
            cb[j] = f * cb[j] + i * gg
            hb[j] = o * tanhf(cb[j])
            dst[j] = hb[j]
          }
        }
      }
    }
  }
}

/// A pointer handed to worker threads that write disjoint parts of the arena.
struct UnsafeSendable: @unchecked Sendable {
  let pointer: UnsafeMutablePointer<Float>
  init(_ p: UnsafeMutablePointer<Float>) { pointer = p }
}
