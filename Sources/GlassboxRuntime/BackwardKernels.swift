import Foundation

// Kernels of the backward ops that `Differentiate` adds (see GlassboxIR/Gradients.swift).
// Like every kernel they hold arena offsets fixed at compile time and allocate nothing.

/// One-hot rows: `out[n, c] = 1` at `class`, or at each row's argmax (first on ties).
struct ClassSeed: Kernel {
  var label = "class_seed"
  var n: Int, c: Int, fixedClass: Int
  var logits: Int, out: Int

  func run(_ a: UnsafeMutablePointer<Float>) {
    (a + out).update(repeating: 0, count: n * c)
    for i in 0..<n {
      let row = a + logits + i * c
      var best = 0
      if fixedClass >= 0 { best = fixedClass } else {
        for j in 1..<Swift.max(c, 1) where row[j] > row[best] { best = j }
      }
      a[out + i * c + best] = 1
    }
  }
}

/// `dx = x > 0 ? dy : 0`.
struct ReluBackward: Kernel {
  var label: String
  var dy: Int, x: Int, dx: Int, count: Int

  func run(_ a: UnsafeMutablePointer<Float>) {
    let g = a + dy, s = a + x, d = a + dx
    for i in 0..<count { d[i] = s[i] > 0 ? g[i] : 0 }
  }
}

/// `dW[out, in] = dyᵀ[out, rows] · x[rows, in]`: one GEMM over every row.
struct LinearBackwardWeight: Kernel {
  var label: String
  var rows: Int, outFeatures: Int, inFeatures: Int
  var dy: Int, x: Int, dw: Int

  func run(_ a: UnsafeMutablePointer<Float>) {
    BLAS.sgemm(transA: true, m: outFeatures, n: inFeatures, k: rows, a: a + dy, lda: outFeatures,
               b: a + x, ldb: inFeatures, c: a + dw, ldc: inFeatures)
  }
}

/// The gradient of `max` over some axes: `dy` shared evenly among the elements equal to their
/// lane's maximum. `outStrides` view the reduced `dy`/`y` with stride 0 on reduced axes;
/// scratch holds the tie counts.
struct MaxBackward: Kernel {
  var label: String
  var shape: [Int], outStrides: [Int], outCount: Int
  var dy: Int, x: Int, y: Int, dx: Int, scratch: Int

  func run(_ a: UnsafeMutablePointer<Float>) {
    let ties = a + scratch
    ties.update(repeating: 0, count: outCount)
    let n = shape.last ?? 1, os = outStrides.last ?? 0
    let inStrides = rowMajorStrides(shape)
    let full = shape.isEmpty ? [1] : shape, ins = inStrides.isEmpty ? [1] : inStrides
    let outs = outStrides.isEmpty ? [0] : outStrides
    forEachRun(full, ins, outs, outs) { o0, o1, _ in
      for i in 0..<n where a[x + o0 + i] == a[y + o1 + i * os] { ties[o1 + i * os] += 1 }
    }
    forEachRun(full, ins, outs, outs) { o0, o1, _ in
      for i in 0..<n {
        let t = o1 + i * os
        a[dx + o0 + i] = a[x + o0 + i] == a[y + t] ? a[dy + t] / ties[t] : 0
      }
    }
  }
}

/// One LSTM step backwards. Recomputes the gate pre-activations `gates_x + h·W_hhᵀ` into
/// scratch `[B, 4H]` (one GEMM), turns them into `d gates` in place of `dgates`, then
/// `dh_prev = d gates · W_hh` (one GEMM). Gate order i, f, g, o.
struct LSTMCellBackward: Kernel {
  var label: String
  var batch: Int, hidden: Int
  var dh: Int, dc: Int, gates: Int, h: Int, c: Int, weight: Int
  var dGates: Int, dhPrev: Int, dcPrev: Int, scratch: Int

  func run(_ a: UnsafeMutablePointer<Float>) {
    let n = hidden, g4 = 4 * hidden
    let pre = a + scratch
    pre.update(from: a + gates, count: batch * g4)
    BLAS.sgemm(transB: true, m: batch, n: g4, k: n, a: a + h, lda: n, b: a + weight, ldb: n, beta: 1, c: pre, ldc: g4)
    for b in 0..<batch {
      let p = pre + b * g4, dg = a + dGates + b * g4
      let cv = a + c + b * n, dhv = a + dh + b * n, dcv = a + dc + b * n, dcp = a + dcPrev + b * n
      for j in 0..<n {
        let i = 1 / (1 + expf(-p[j])), f = 1 / (1 + expf(-p[n + j])), g = tanhf(p[2 * n + j]), o = 1 / (1 + expf(-p[3 * n + j]))
        let cNew = f * cv[j] + i * g, tc = tanhf(cNew)
        let dhj = dhv[j]
        let dct = dcv[j] + dhj * o * (1 - tc * tc)
        dg[j] = dct * g * i * (1 - i)
        dg[n + j] = dct * cv[j] * f * (1 - f)
        dg[2 * n + j] = dct * i * (1 - g * g)
        dg[3 * n + j] = dhj * tc * o * (1 - o)
        dcp[j] = dct * f
      }
    }
    BLAS.sgemm(m: batch, n: n, k: g4, a: a + dGates, lda: g4, b: a + weight, ldb: n, c: a + dhPrev, ldc: n)
  }
}

/// `dlogits = dloss·(softmax(logits) − onehot(target))/N`, targets stored as floats.
struct CrossEntropyBackward: Kernel {
  var label = "cross_entropy_backward"
  var n: Int, c: Int, dloss: Int, logits: Int, target: Int, out: Int

  func run(_ a: UnsafeMutablePointer<Float>) {
    let scale = a[dloss] / Float(n)
    for i in 0..<n {
      let row = a + logits + i * c, d = a + out + i * c
      var m = -Float.infinity
      for j in 0..<c { m = Swift.max(m, row[j]) }
      var sum: Float = 0
      for j in 0..<c {
        let e = Foundation.exp(row[j] - m)
        d[j] = e
        sum += e
      }
      let inv = scale / sum
      for j in 0..<c { d[j] *= inv }
      let t = Swift.min(Swift.max(Int(a[target + i]), 0), c - 1)
      d[t] -= scale
    }
  }
}
