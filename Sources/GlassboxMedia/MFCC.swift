import Foundation

/// Mel-frequency cepstral coefficients equal to librosa 0.10/0.11's
/// `librosa.feature.mfcc(y=y, sr=sr, n_mfcc=nMFCC, n_mels=nMels, n_fft=nFFT, hop_length=hop)`.
///
/// The steps, each as librosa does them:
/// 1. **STFT**, centred: the signal gets `nFFT/2` zeros on each side (`pad_mode="constant"`,
///    librosa ≥ 0.10's default), and frame t covers padded samples `[t·hop, t·hop + nFFT)`, so
///    a clip of n samples gives `1 + n / hop` frames (integer division). Each frame is multiplied
///    by the periodic Hann window `w[i] = 0.5 − 0.5·cos(2πi / nFFT)` and transformed by
///    `av_tx`'s real FFT.
/// 2. **Power spectrum** `|X[k]|²` for k in 0…nFFT/2.
/// 3. **Mel filter bank**: `nMels` triangles on the Slaney mel scale (linear below 1 kHz,
///    logarithmic above) from 0 Hz to sr/2, each scaled by `2 / (f[m+2] − f[m])` (Slaney area
///    normalisation); weights rounded to Float like librosa's float32 bank.
/// 4. **power_to_db**: `10·log10(max(1e-10, S))` (ref 1.0), then floored at the clip's global
///    maximum minus 80 dB (`top_db`). The floor uses the whole clip, so the MFCC of a frame
///    depends on the loudest frame anywhere in the clip.
/// 5. **DCT-II, orthonormal** over the mel axis, keeping the first `nMFCC` coefficients:
///    `c[j] = s_j · Σₘ db[m]·cos(πj(2m + 1) / (2·nMels))`, `s₀ = √(1/nMels)`, `s_j = √(2/nMels)`.
///
/// Layout: `compute` returns frames × coefficients row-major, `[T, nMFCC]` — the transpose of
/// librosa's `(n_mfcc, T)`, and the layout the study's models read (`mfcc: f32[B, 768, 128]`).
///
/// Not thread-safe (it owns FFT buffers); build one per thread. Construction precomputes the
/// window, the sparse mel bank and the DCT matrix, so reuse one for many clips.
public final class MFCC {
  /// Rate of the samples `compute` expects.
  public let sampleRateHz: Int
  /// FFT and window length in samples.
  public let nFFT: Int
  /// Samples between frame starts.
  public let hop: Int
  /// Mel bands.
  public let nMels: Int
  /// Coefficients kept per frame.
  public let nMFCC: Int

  /// Number of FFT bins, nFFT/2 + 1.
  let bins: Int
  /// Periodic Hann window, nFFT values.
  let window: [Float]
  /// Mel filter m has weights `melWeights[melOffset[m] ..< melOffset[m + 1]]` on the bins
  /// `melFirstBin[m] ..< melFirstBin[m] + (its weight count)`; all other weights are zero.
  let melFirstBin: [Int]
  let melOffset: [Int]
  let melWeights: [Float]
  /// DCT matrix, `[nMFCC, nMels]` row-major, in Double: the direct form.
  let dct: [Double]
  /// The DCT by FFT: a real FFT of length nMels (nil when nMels is odd) and, per coefficient j,
  /// s_j·cos(πj / 2nMels) and s_j·sin(πj / 2nMels) interleaved.
  private let dctFFT: RealFFT<Double>?
  private let dctTwiddle: [Double]
  private let fft: RealFFT<Float>

  /// librosa's `amin` and `top_db` for `power_to_db`.
  public static let amin: Float = 1e-10
  /// Dynamic range kept below the clip's loudest mel energy, in dB.
  public static let topDB: Float = 80

  /// An extractor; throws for sizes the FFT or the mel bank cannot carry out.
  public init(
    sampleRateHz: Int, nFFT: Int = 2048, hop: Int = 512, nMels: Int = 128, nMFCC: Int = 128
  ) throws(MediaError) {
    let recipe = AudioRecipe(sampleRateHz: sampleRateHz, nMFCC: nMFCC, nMels: nMels, nFFT: nFFT, hop: hop)
    try recipe.validate(name: "mfcc")
    guard let fft = RealFFT<Float>(length: nFFT) else {
      throw MediaError(.invalidRecipe, file: "mfcc", "av_tx has no real FFT of length \(nFFT)")
    }
    self.sampleRateHz = sampleRateHz
    self.nFFT = nFFT
    self.hop = hop
    self.nMels = nMels
    self.nMFCC = nMFCC
    self.fft = fft
    bins = nFFT / 2 + 1
    window = (0..<nFFT).map { i in Float(0.5 - 0.5 * cos(2 * Double.pi * Double(i) / Double(nFFT))) }
    let bank = MFCC.melBank(sampleRateHz: sampleRateHz, nFFT: nFFT, nMels: nMels)
    melFirstBin = bank.firstBin
    melOffset = bank.offset
    melWeights = bank.weights
    var d = [Double](repeating: 0, count: nMFCC * nMels)
    for j in 0..<nMFCC {
      let s = j == 0 ? (1 / Double(nMels)).squareRoot() : (2 / Double(nMels)).squareRoot()
      for m in 0..<nMels {
        d[j * nMels + m] = s * cos(Double.pi * Double(j) * Double(2 * m + 1) / Double(2 * nMels))
      }
    }
    dct = d
    dctFFT = nMels % 2 == 0 ? RealFFT<Double>(length: nMels) : nil
    dctTwiddle = (0..<nMFCC).flatMap { j -> [Double] in
      let s = j == 0 ? (1 / Double(nMels)).squareRoot() : (2 / Double(nMels)).squareRoot()
      let angle = Double.pi * Double(j) / Double(2 * nMels)
      return [s * cos(angle), s * sin(angle)]
    }
  }

  /// An extractor for the recipe's sizes.
  public convenience init(_ recipe: AudioRecipe) throws(MediaError) {
    try self.init(
      sampleRateHz: recipe.sampleRateHz, nFFT: recipe.nFFT, hop: recipe.hop,
      nMels: recipe.nMels, nMFCC: recipe.nMFCC)
  }

  /// Frames the centred STFT gives for `sampleCount` samples: `1 + sampleCount / hop`.
  public func frameCount(sampleCount: Int) -> Int { 1 + sampleCount / hop }

  /// The MFCC of the whole of `samples` (mono, at `sampleRateHz`): `[T, nMFCC]` row-major,
  /// T = `frameCount(sampleCount: samples.count)`.
  public func compute(_ samples: [Float]) -> [Float] {
    let frames = frameCount(sampleCount: samples.count)
    var db = melPowerDB(samples)
    var out = [Float](repeating: 0, count: frames * nMFCC)
    db.withUnsafeMutableBufferPointer { dbBuffer in
      out.withUnsafeMutableBufferPointer { outBuffer in
        applyDCT(db: dbBuffer.baseAddress!, frames: frames, out: outBuffer.baseAddress!)
      }
    }
    return out
  }

  /// The log-mel spectrogram after `power_to_db` (with the top_db floor): `[T, nMels]`.
  public func melPowerDB(_ samples: [Float]) -> [Float] {
    let frames = frameCount(sampleCount: samples.count)
    var mel = [Float](repeating: 0, count: frames * nMels)
    var power = [Float](repeating: 0, count: bins)
    samples.withUnsafeBufferPointer { signal in
      window.withUnsafeBufferPointer { win in
        mel.withUnsafeMutableBufferPointer { melBuffer in
          power.withUnsafeMutableBufferPointer { powerBuffer in
            for t in 0..<frames {
              loadFrame(t, signal: signal, window: win.baseAddress!)
              fft.transform()
              powerSpectrum(into: powerBuffer.baseAddress!)
              applyMelBank(power: powerBuffer.baseAddress!, into: melBuffer.baseAddress! + t * nMels)
            }
          }
        }
      }
    }
    powerToDB(&mel)
    return mel
  }

  // MARK: Steps

  /// Windowed frame t of the zero-padded signal into the FFT's input.
  private func loadFrame(_ t: Int, signal: UnsafeBufferPointer<Float>, window: UnsafePointer<Float>) {
    let input = fft.input
    let start = t * hop - nFFT / 2
    let n = signal.count
    if start >= 0 && start + nFFT <= n, let base = signal.baseAddress {
      let src = base + start
      for i in 0..<nFFT { input[i] = src[i] * window[i] }
    } else {
      for i in 0..<nFFT {
        let j = start + i
        input[i] = (j >= 0 && j < n) ? signal[j] * window[i] : 0
      }
    }
  }

  /// |X[k]|² from the FFT's interleaved output.
  private func powerSpectrum(into power: UnsafeMutablePointer<Float>) {
    let x = fft.output
    for k in 0..<bins {
      let re = x[2 * k], im = x[2 * k + 1]
      power[k] = re * re + im * im
    }
  }

  /// The mel energies of one frame (sparse rows of the bank).
  private func applyMelBank(power: UnsafePointer<Float>, into mel: UnsafeMutablePointer<Float>) {
    melWeights.withUnsafeBufferPointer { w in
      melOffset.withUnsafeBufferPointer { offsets in
        melFirstBin.withUnsafeBufferPointer { firstBins in
          for m in 0..<nMels {
            let lo = offsets[m], count = offsets[m + 1] - lo
            let weights = UnsafeRawPointer(w.baseAddress! + lo)
            let bins = UnsafeRawPointer(power + firstBins[m])
            // Eight independent partial sums: a single running sum would wait on each add.
            var acc = SIMD8<Float>()
            var i = 0
            while i + 8 <= count {
              acc +=
                weights.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
                * bins.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
              i += 8
            }
            var sum = acc.sum()
            while i < count {
              sum +=
                weights.load(fromByteOffset: 4 * i, as: Float.self) * bins.load(fromByteOffset: 4 * i, as: Float.self)
              i += 1
            }
            mel[m] = sum
          }
        }
      }
    }
  }

  /// `power_to_db(S, ref=1.0, amin=1e-10, top_db=80.0)` in place.
  private func powerToDB(_ mel: inout [Float]) {
    var peak = -Float.infinity
    mel.withUnsafeMutableBufferPointer { m in
      for i in 0..<m.count {
        let v = 10 * log10f(max(MFCC.amin, m[i]))
        m[i] = v
        peak = max(peak, v)
      }
      let floor = peak - MFCC.topDB
      for i in 0..<m.count where m[i] < floor { m[i] = floor }
    }
  }

  /// out[t, j] = Σₘ dct[j, m] · db[t, m] for every frame.
  ///
  /// With an even `nMels` this is Makhoul's DCT-through-FFT in Double (`av_tx`'s real FFT of
  /// length nMels): v = (x₀, x₂, x₄, …, x₅, x₃, x₁), V = DFT(v), and
  /// c[j] = s_j · Re(V[j]·e^(−iπj / (2·nMels))) — O(n log n) per frame instead of the
  /// matrix's n², and exact to Double rounding. Odd `nMels` use the matrix directly.
  private func applyDCT(db: UnsafeMutablePointer<Float>, frames: Int, out: UnsafeMutablePointer<Float>) {
    guard let fft = dctFFT else {
      dct.withUnsafeBufferPointer { d in
        for t in 0..<frames { directDCT(db + t * nMels, matrix: d.baseAddress!, into: out + t * nMFCC) }
      }
      return
    }
    let n = nMels, half = nMels / 2
    let v = fft.input, spectrum = fft.output
    dctTwiddle.withUnsafeBufferPointer { tw in
      for t in 0..<frames {
        let x = db + t * n
        for i in 0..<half {
          v[i] = Double(x[2 * i])
          v[n - 1 - i] = Double(x[2 * i + 1])
        }
        fft.transform()
        let row = out + t * nMFCC
        for j in 0..<nMFCC {
          // Bins past n/2 are the conjugates of their mirror images.
          let re = j <= half ? spectrum[2 * j] : spectrum[2 * (n - j)]
          let im = j <= half ? spectrum[2 * j + 1] : -spectrum[2 * (n - j) + 1]
          row[j] = Float(re * tw[2 * j] + im * tw[2 * j + 1])
        }
      }
    }
  }

  /// One frame's DCT by the matrix, accumulated in Double (the fallback, and the tests' oracle).
  func directDCT(_ x: UnsafePointer<Float>, matrix: UnsafePointer<Double>, into out: UnsafeMutablePointer<Float>) {
    for j in 0..<nMFCC {
      var sum = 0.0
      for m in 0..<nMels { sum += matrix[j * nMels + m] * Double(x[m]) }
      out[j] = Float(sum)
    }
  }

  // MARK: The mel filter bank

  /// librosa's `hz_to_mel(f, htk=False)`: 3f/200 below 1 kHz, 15 + 27·ln(f/1000)/ln(6.4) above.
  static func hzToMel(_ f: Double) -> Double {
    let fSp = 200.0 / 3, minLogHz = 1000.0, minLogMel = minLogHz / fSp, logStep = log(6.4) / 27
    return f >= minLogHz ? minLogMel + log(f / minLogHz) / logStep : f / fSp
  }

  /// librosa's `mel_to_hz(m, htk=False)`, the inverse of `hzToMel`.
  static func melToHz(_ m: Double) -> Double {
    let fSp = 200.0 / 3, minLogHz = 1000.0, minLogMel = minLogHz / fSp, logStep = log(6.4) / 27
    return m >= minLogMel ? minLogHz * exp(logStep * (m - minLogMel)) : fSp * m
  }

  /// librosa's `filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2, htk=False, norm="slaney")`,
  /// stored sparsely. Follows librosa's arithmetic: triangles in Double rounded to Float, then
  /// multiplied in Double by the Slaney factor and rounded to Float again.
  static func melBank(sampleRateHz: Int, nFFT: Int, nMels: Int) -> (firstBin: [Int], offset: [Int], weights: [Float]) {
    let bins = nFFT / 2 + 1
    let sr = Double(sampleRateHz)
    let binStep = 1.0 / (Double(nFFT) * (1.0 / sr))  // numpy.fft.rfftfreq
    let fftFreqs = (0..<bins).map { Double($0) * binStep }
    // numpy.linspace(min_mel, max_mel, n_mels + 2), the last point exactly max_mel.
    let count = nMels + 2
    let minMel = hzToMel(0), maxMel = hzToMel(sr / 2)
    let step = (maxMel - minMel) / Double(count - 1)
    var mels = (0..<count).map { Double($0) * step + minMel }
    mels[count - 1] = maxMel
    let melF = mels.map(melToHz)
    var firstBin: [Int] = [], offset: [Int] = [0], weights: [Float] = []
    for m in 0..<nMels {
      let lowerWidth = melF[m + 1] - melF[m], upperWidth = melF[m + 2] - melF[m + 1]
      let enorm = 2.0 / (melF[m + 2] - melF[m])
      var row: [Float] = []
      var first = -1
      for k in 0..<bins {
        let lower = -(melF[m] - fftFreqs[k]) / lowerWidth
        let upper = (melF[m + 2] - fftFreqs[k]) / upperWidth
        let w = Float(max(0, min(lower, upper)))  // the float32 bank
        let scaled = Float(Double(w) * enorm)
        if scaled != 0 {
          if first < 0 { first = k }
          // Fill zeros between non-zero weights (none occur for a triangle, kept for safety).
          while first + row.count < k { row.append(0) }
          row.append(scaled)
        }
      }
      firstBin.append(max(first, 0))
      weights += row
      offset.append(weights.count)
    }
    return (firstBin, offset, weights)
  }
}
