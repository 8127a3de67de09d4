// The in-process timer of tools/bench/model_load.sh: ten loads of the .model given, with and
// without the weights' CRC-32s, in milliseconds.
import GlassboxFormat
import Foundation
let path = CommandLine.arguments[1]
var times: [Double] = []
for _ in 0..<10 {
  let t0 = DispatchTime.now().uptimeNanoseconds
  let m = try ModelFile.load(path, checkingWeights: true)
  let t1 = DispatchTime.now().uptimeNanoseconds
  precondition(m.graph.parameters.count > 0)
  times.append(Double(t1 - t0) / 1e6)
}
var t2 = [Double]()
for _ in 0..<10 {
  let t0 = DispatchTime.now().uptimeNanoseconds
  _ = try ModelFile.load(path, checkingWeights: false)
  t2.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
}
print("load+verify+checksums (ms):", times.map { String(format: "%.1f", $0) }.joined(separator: " "))
print("load+verify, no weight checksums (ms):", t2.map { String(format: "%.1f", $0) }.joined(separator: " "))
