import GlassboxIR
import Testing

@testable import Glassbox

/// A map with the clip's own shape (saliency, a gradient at the input) is measured per frame:
/// each frame's magnitude orders the deletion curve's frames, and the magnitude summed over the
/// colour channels is the frame's map for the pointing game.
struct InputMapMeasureTests {
  @Test func aMapOfTheClipIsMeasuredFrameByFrame() throws {
    // [1, T=2, C=2, H=2, W=3]: frame 1 holds more magnitude; its channels peak at (1, 2).
    let shape = [1, 2, 2, 2, 3]
    var v = [Float](repeating: 0.01, count: shape.reduce(1, *))
    v[6 + 0] = -0.5  // frame 0, channel 1, (0, 0)
    v[12 + 5] = 2  // frame 1, channel 0, (1, 2)
    v[18 + 5] = -1  // frame 1, channel 1, (1, 2)
    let raw = Tensor(shape: shape, f32: v)
    let e = Explanation(
      tap: "saliency", kind: .saliency, scope: nil, perStep: false, classes: [0],
      maps: ["raw": raw], outputs: [:])
    let units = try #require(ExplanationEvaluation.units(e, inputShape: shape))
    #expect(units.name == "frames")
    #expect(units.scores[1] > units.scores[0])
    let (maps, peak) = try #require(ExplanationEvaluation.frameMaps(e, inputShape: shape))
    #expect(maps.shape == [1, 2, 2, 3])
    #expect(maps.floats[6 + 5] == 3)  // |2| + |−1|
    #expect(maps.floats[0] == 0.51)
    #expect(peak.shape == maps.shape)
    // Removing frame 1 zeroes exactly its elements.
    let removed = units.apply(raw) { $0 == 1 }
    #expect(removed.floats[..<12].elementsEqual(v[..<12]))
    #expect(removed.floats[12...].allSatisfy { $0 == 0 })
    // A map of another shape is not one of the clip.
    let other = Explanation(
      tap: "g", kind: .gradient, scope: nil, perStep: false, classes: [0],
      maps: ["raw": Tensor(shape: [1, 2, 4], f32: [Float](repeating: 1, count: 8))], outputs: [:])
    #expect(ExplanationEvaluation.frameMaps(other, inputShape: shape) == nil)
  }
}
