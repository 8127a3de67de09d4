import CFFmpeg

/// A real-to-complex DFT of a fixed length by libavutil's `av_tx` (`AV_TX_FLOAT_RDFT` for
/// `Float`, `AV_TX_DOUBLE_RDFT` for `Double`).
///
/// Not thread-safe: it owns its input and output buffers (aligned by `av_malloc` for FFmpeg's
/// SIMD code). Give each thread its own.
///
/// Layout: `input` holds `length` floats; after `transform()`, `output` holds `length / 2 + 1`
/// complex values as interleaved floats `re₀ im₀ re₁ im₁ …`, unnormalised:
/// X[k] = Σₙ x[n]·e^(−2πi·kn/N).
final class RealFFT<Element: BinaryFloatingPoint> {
  let length: Int
  /// `length` values, written by the caller before `transform()`.
  let input: UnsafeMutablePointer<Element>
  /// `length + 2` values: `length / 2 + 1` complex bins.
  let output: UnsafeMutablePointer<Element>
  private var context: OpaquePointer?
  private let function: av_tx_fn

  /// Sets up a transform of `length` samples (even, at least 4).
  init?(length: Int) {
    guard length >= 4, length % 2 == 0, length <= 1 << 24 else { return nil }
    var ctx: OpaquePointer? = nil
    var fn: av_tx_fn? = nil
    var floatScale: Float = 1
    var doubleScale: Double = 1
    let status: Int32
    if Element.self == Float.self {
      status = av_tx_init(&ctx, &fn, AV_TX_FLOAT_RDFT, 0, Int32(length), &floatScale, 0)
    } else if Element.self == Double.self {
      status = av_tx_init(&ctx, &fn, AV_TX_DOUBLE_RDFT, 0, Int32(length), &doubleScale, 0)
    } else {
      return nil
    }
    guard status >= 0, let ctx, let fn else { return nil }
    let size = MemoryLayout<Element>.stride
    guard let inRaw = av_malloc(length * size), let outRaw = av_malloc((length + 2) * size) else {
      var owned: OpaquePointer? = ctx
      av_tx_uninit(&owned)
      return nil
    }
    self.length = length
    context = ctx
    function = fn
    input = inRaw.bindMemory(to: Element.self, capacity: length)
    output = outRaw.bindMemory(to: Element.self, capacity: length + 2)
    input.initialize(repeating: 0, count: length)
    output.initialize(repeating: 0, count: length + 2)
  }

  deinit {
    av_tx_uninit(&context)
    av_free(input)
    av_free(output)
  }

  /// DFT of `input` into `output`; `input` is left unchanged.
  func transform() {
    function(context, output, input, MemoryLayout<Element>.stride)
  }
}
