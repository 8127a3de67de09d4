import Foundation
@testable import GlassboxMedia
import GlassboxIR
import Testing

/// MFCC against librosa's numbers (fixtures by tools/reference/mfcc_fixtures.py) and its parts
/// against independent formulas.
struct MFCCTests {
  static let clips = ["speech16k", "chirp22k", "short16k", "burst16k"]

  @Test(arguments: clips)
  func matchesLibrosa(_ name: String) throws {
    let clip = try AudioDecoder.decode(Repo.fixture("mfcc/\(name).wav"))
    let expected = try readNPY(Repo.fixture("mfcc/\(name).mfcc.npy"))
    let mfcc = try MFCC(sampleRateHz: clip.sampleRateHz)
    let frames = mfcc.frameCount(sampleCount: clip.samples.count)
    #expect(expected.shape == [128, frames])
    // librosa's layout is (n_mfcc, frames); ours is [frames, n_mfcc].
    let reference = expected.floats
    var transposed = [Float](repeating: 0, count: reference.count)
    for j in 0..<128 { for t in 0..<frames { transposed[t * 128 + j] = reference[j * frames + t] } }
    let error = maxAbsDifference(mfcc.compute(clip.samples), transposed)
    #expect(error < 1e-3, "max |MFCC − librosa| = \(error) for \(name)")
  }

  @Test func realFFTMatchesTheDefinition() throws {
    let n = 64
    let fft = try #require(RealFFT<Float>(length: n))
    let x: [Float] = (0..<n).map { i in
      let d = Double(i)
      return Float(sin(0.3 * d) + 0.25 * cos(1.7 * d * d / 64))
    }
    for i in 0..<n { fft.input[i] = x[i] }
    fft.transform()
    for k in 0...(n / 2) {
      var re = 0.0, im = 0.0
      for (i, v) in x.enumerated() {
        let angle: Double = 2 * Double.pi * Double(k * i) / Double(n)
        re += Double(v) * cos(angle)
        im -= Double(v) * sin(angle)
      }
      #expect(abs(Double(fft.output[2 * k]) - re) < 1e-4, "re[\(k)]")
      #expect(abs(Double(fft.output[2 * k + 1]) - im) < 1e-4, "im[\(k)]")
    }
    #expect(fft.input[5] == x[5], "the forward transform leaves its input alone")
  }

  /// The DCT through av_tx's FFT equals the DCT matrix, for even mel counts (the FFT path)
  /// and odd ones (the matrix path), with fewer coefficients than bands.
  @Test(arguments: [(128, 128), (40, 13), (39, 20), (2, 2)])
  func dctByFFTMatchesTheMatrix(_ sizes: (Int, Int)) throws {
    let (nMels, nMFCC) = sizes
    let mfcc = try MFCC(sampleRateHz: 16000, nFFT: 512, hop: 160, nMels: nMels, nMFCC: nMFCC)
    let samples: [Float] = (0..<4000).map { i in Float(sin(Double(i) * 0.031) * 0.4 + sin(Double(i * i) * 1e-4) * 0.1) }
    let db = mfcc.melPowerDB(samples)
    let frames = mfcc.frameCount(sampleCount: samples.count)
    var expected = [Float](repeating: 0, count: frames * nMFCC)
    db.withUnsafeBufferPointer { x in
      mfcc.dct.withUnsafeBufferPointer { d in
        expected.withUnsafeMutableBufferPointer { e in
          for t in 0..<frames {
            mfcc.directDCT(x.baseAddress! + t * nMels, matrix: d.baseAddress!, into: e.baseAddress! + t * nMFCC)
          }
        }
      }
    }
    let error = maxAbsDifference(mfcc.compute(samples), expected)
    #expect(error < 2e-5, "\(nMels) bands, \(nMFCC) coefficients: \(error)")
  }

  @Test func slaneyMelScale() {
    #expect(abs(MFCC.hzToMel(1000) - 15) < 1e-12)
    #expect(abs(MFCC.hzToMel(500) - 7.5) < 1e-12)
    for f in [0.0, 300, 999, 1000, 4321, 8000] {
      #expect(abs(MFCC.melToHz(MFCC.hzToMel(f)) - f) < 1e-9)
    }
  }

  /// Each Slaney-normalised triangle has area 1 in Hz·(1/Hz) terms: Σ w·Δf ≈ 1 for wide bands.
  @Test func melTrianglesHaveUnitArea() {
    let bank = MFCC.melBank(sampleRateHz: 16000, nFFT: 2048, nMels: 40)
    let binHz = 16000.0 / 2048
    for m in 20..<40 {
      let area = bank.weights[bank.offset[m]..<bank.offset[m + 1]].reduce(0.0) { $0 + Double($1) } * binHz
      #expect(abs(area - 1) < 0.02, "band \(m): area \(area)")
    }
  }

  @Test func frameCountIsCentred() throws {
    let mfcc = try MFCC(sampleRateHz: 16000)
    #expect(mfcc.frameCount(sampleCount: 160_000) == 313)
    #expect(mfcc.frameCount(sampleCount: 511) == 1)
    #expect(mfcc.frameCount(sampleCount: 512) == 2)
  }

  @Test func badSizesAreRefused() {
    #expect(throws: MediaError.self) { try MFCC(sampleRateHz: 16000, nFFT: 2047) }
    #expect(throws: MediaError.self) { try MFCC(sampleRateHz: 16000, nMels: 20, nMFCC: 40) }
  }
}
