// Media benchmarks: MFCC of a 10 s clip and video frame sampling, timed in-process.
//
//   swift build -c release --product glassbox-media-bench
//   .build/release/glassbox-media-bench [mfcc|video|all] [FILE…]
//
// tools/bench/media.sh runs it beside librosa's own timing (tools/bench/mfcc_librosa.py).
import Foundation
import GlassboxMedia

/// CPU time of the calling thread, in milliseconds: less disturbed than wall time when other
/// processes share the cores (the work measured here runs on the calling thread).
func threadCPUTime() -> Double {
  var t = timespec()
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
  return Double(t.tv_sec) * 1e3 + Double(t.tv_nsec) / 1e6
}

struct Timing {
  var wallMedian: Double
  var wallMin: Double
  var cpuMedian: Double
}

/// Wall and thread-CPU times of `body` over `repeats` runs after `warmup` runs, in milliseconds.
func time(repeats: Int = 50, warmup: Int = 5, _ body: () throws -> Void) rethrows -> Timing {
  for _ in 0..<warmup { try body() }
  var wall: [Double] = [], cpu: [Double] = []
  for _ in 0..<repeats {
    let start = DispatchTime.now().uptimeNanoseconds
    let cpuStart = threadCPUTime()
    try body()
    cpu.append(threadCPUTime() - cpuStart)
    wall.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
  }
  wall.sort()
  cpu.sort()
  return Timing(wallMedian: wall[wall.count / 2], wallMin: wall[0], cpuMedian: cpu[cpu.count / 2])
}

func format(_ t: Timing) -> String {
  String(format: "wall median %.3f ms, min %.3f ms; thread CPU median %.3f ms", t.wallMedian, t.wallMin, t.cpuMedian)
}

func benchMFCC() throws {
  // 10 s at 16 kHz of deterministic noise plus tones (the content does not change the work).
  var state: UInt64 = 0x9E37_79B9_7F4A_7C15
  let samples: [Float] = (0..<160_000).map { i in
    state = state &* 6364136223846793005 &+ 1442695040888963407
    let noise = Float(Int64(bitPattern: state >> 11) % 1000) / 10000
    return 0.3 * sinf(Float(i) * 0.05) + noise
  }
  let mfcc = try MFCC(sampleRateHz: 16000)
  var sink: Float = 0
  let t = time { sink += mfcc.compute(samples)[0] }
  print("mfcc 10 s 16 kHz -> [313, 128] (extractor reused): \(format(t))")
  let cold = try time(repeats: 20) { sink += try MFCC(sampleRateHz: 16000).compute(samples)[0] }
  print("mfcc 10 s 16 kHz including extractor set-up:       \(format(cold))")
  if sink.isNaN { print("") }
}

func benchVideo(_ path: String) throws {
  let recipe = VideoRecipe(frames: 16, size: 112)
  let info = try VideoDecoder.info(path)
  print(
    "video \((path as NSString).lastPathComponent): \(info.codec) \(info.width)×\(info.height), \(info.frameCount) frames, \(String(format: "%.1f", info.durationSeconds)) s"
  )
  let open = try time(repeats: 30, warmup: 3) { _ = try VideoDecoder.info(path) }
  print("  opening and probing alone (VideoDecoder.info): \(format(open))")
  var sink: Float = 0
  for threads in [1, 0] {
    let t = try time(repeats: 30, warmup: 3) {
      sink += try VideoDecoder.frames(path, recipe: recipe, threads: threads).floats[0]
    }
    print("  -> [16, 3, 112, 112], \(threads == 0 ? "decoder threads auto" : "1 decoder thread"): \(format(t))")
  }
  if sink.isNaN { print("") }
}

let arguments = Array(CommandLine.arguments.dropFirst())
let what = arguments.first ?? "all"
do {
  if what == "mfcc" || what == "all" { try benchMFCC() }
  if what == "video" || what == "all" {
    for path in arguments.dropFirst() { try benchVideo(path) }
  }
} catch {
  FileHandle.standardError.write(Data("glassbox-media-bench: \(error)\n".utf8))
  exit(1)
}
