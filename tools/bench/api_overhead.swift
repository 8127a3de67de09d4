// The Swift side of tools/bench/api_overhead.py: the time of one `Session.run` (tensors in,
// tensors out) on a model with one float32 input, called in a loop.
//
//   api_overhead_swift MODEL THREADS CALLS D0 D1 ...      (the input's shape)
//
// Warms up for at least 250 ms, then prints one JSON object: the median and the 10th and 90th
// percentiles in microseconds.
import Foundation
import Glassbox

let arguments = CommandLine.arguments
guard arguments.count >= 5, let threads = Int(arguments[2]), let calls = Int(arguments[3]), calls > 0 else {
  FileHandle.standardError.write(Data("usage: api_overhead_swift MODEL THREADS CALLS D0 [D1 ...]\n".utf8))
  exit(2)
}
let shape = arguments[4...].compactMap { Int($0) }
let count = shape.reduce(1, *)
let x = Tensor(shape: shape, f32: (0..<count).map { Float(sin(Double($0) * 0.37)) })

func microseconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e3 }

do {
  let model = try Model(contentsOf: arguments[1])
  let session = try model.session(SessionOptions(threads: threads))
  let feeds = [model.inputs[0].name: x]
  let start = microseconds()
  var warmups = 0
  while warmups < 10 || microseconds() - start < 250e3 {
    _ = try session.run(feeds)
    warmups += 1
  }
  var times: [Double] = []
  for _ in 0..<calls {
    let t0 = microseconds()
    _ = try session.run(feeds)
    times.append(microseconds() - t0)
  }
  times.sort()
  print(
    String(
      format: "{\"median_us\": %.3f, \"p10_us\": %.3f, \"p90_us\": %.3f, \"calls\": %d}", times[calls / 2],
      times[calls / 10], times[calls * 9 / 10], calls))
} catch {
  FileHandle.standardError.write(Data("api_overhead_swift: \(error)\n".utf8))
  exit(1)
}
