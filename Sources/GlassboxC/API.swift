import CGlassboxAPI
import Foundation
import Glassbox
import GlassboxRuntime

// The functions of include/glassbox.h. Each one catches everything: a failure becomes a status
// and a message in the calling thread's `gbx_last_error`, never a Swift error or a trap across
// the boundary.

// MARK: Errors and versions

/// The calling thread's last message, in memory the thread owns (freed when the thread ends).
private let errorKey: pthread_key_t = {
  var key = pthread_key_t()
  pthread_key_create(&key) { free($0) }
  return key
}()

private nonisolated(unsafe) let emptyMessage: UnsafeMutablePointer<CChar> = strdup("")!

private func setLastError(_ message: String) {
  if let old = pthread_getspecific(errorKey) { free(old) }
  pthread_setspecific(errorKey, strdup(message))
}

/// Runs `body` and turns what it throws into a status and a message.
private func calling(_ body: () throws -> Void) -> gbx_status {
  do {
    try body()
    return GBX_OK
  } catch let e as CAPIError {
    setLastError(e.message)
    return e.status
  } catch let e as GlassboxError {
    let c = CAPIError(e)
    setLastError(c.message)
    return c.status
  } catch {
    setLastError(String(describing: error))
    return GBX_ERROR_RUNTIME
  }
}

private nonisolated(unsafe) let versionString: UnsafeMutablePointer<CChar> = strdup(glassboxVersion)!

@_cdecl("gbx_version")
public func cVersion() -> UnsafePointer<CChar> { UnsafePointer(versionString) }

@_cdecl("gbx_abi_version")
public func cABIVersion() -> Int32 { Int32(GBX_ABI_VERSION) }

@_cdecl("gbx_last_error")
public func cLastError() -> UnsafePointer<CChar> {
  UnsafePointer(pthread_getspecific(errorKey)?.assumingMemoryBound(to: CChar.self) ?? emptyMessage)
}

// MARK: Arguments

private func string(_ p: UnsafePointer<CChar>?, _ what: String) throws(CAPIError) -> String {
  guard let p else { throw CAPIError(GBX_ERROR_NULL, "\(what) is NULL") }
  return String(cString: p)
}

private func output<T>(_ p: UnsafeMutablePointer<T>?, _ what: String) throws(CAPIError) -> UnsafeMutablePointer<T> {
  guard let p else { throw CAPIError(GBX_ERROR_NULL, "\(what) is NULL") }
  return p
}

/// The `count` strings of a C array; `what` and `countName` name the parameters in errors.
private func strings(
  _ items: UnsafePointer<UnsafePointer<CChar>?>?, _ count: Int, _ what: String, countName: String
) throws(CAPIError) -> [String] {
  guard count == 0 || items != nil else {
    throw CAPIError(GBX_ERROR_NULL, "\(what) is NULL but \(countName) is \(count)")
  }
  return try (0..<count).map { i throws(CAPIError) in try string(items?[i], "\(what)[\(i)]") }
}

/// `count` name–value pairs as bindings.
private func bindings(
  _ names: UnsafePointer<UnsafePointer<CChar>?>?, _ values: UnsafePointer<Int64>?,
  _ count: Int
) throws(CAPIError) -> [String: Int] {
  guard count > 0 else { return [:] }
  guard let names else { throw CAPIError(GBX_ERROR_NULL, "binding_names is NULL but binding_count is \(count)") }
  guard let values else { throw CAPIError(GBX_ERROR_NULL, "binding_values is NULL but binding_count is \(count)") }
  var out: [String: Int] = [:]
  for i in 0..<count {
    let name = try string(names[i], "binding_names[\(i)]")
    guard values[i] >= 1, values[i] <= Int64(Int32.max) else {
      throw CAPIError(GBX_ERROR_INPUT, "binding \(name) = \(values[i]): sizes must be between 1 and \(Int32.max)")
    }
    out[name] = Int(values[i])
  }
  return out
}

/// The inputs as views of the caller's memory, each checked for what a pointer cannot say.
private func rawInputs(
  _ inputs: UnsafePointer<gbx_tensor>?, _ count: Int
) throws(CAPIError)
  -> [String: Executable.RawInput]
{
  guard count > 0 else { return [:] }
  guard let inputs else { throw CAPIError(GBX_ERROR_NULL, "inputs is NULL but input_count is \(count)") }
  var out: [String: Executable.RawInput] = [:]
  for i in 0..<count {
    let t = inputs[i]
    let name = try string(t.name, "inputs[\(i)].name")
    guard out[name] == nil else { throw CAPIError(GBX_ERROR_INPUT, "input '\(name)' is given twice") }
    guard let dtype = swiftDType(t.dtype) else {
      throw CAPIError(GBX_ERROR_INPUT, "input '\(name)': unknown dtype \(t.dtype.rawValue)")
    }
    guard t.rank >= 0, t.rank <= GBX_MAX_RANK else {
      throw CAPIError(GBX_ERROR_INPUT, "input '\(name)': rank \(t.rank) is outside 0…\(GBX_MAX_RANK)")
    }
    guard t.rank == 0 || t.shape != nil else { throw CAPIError(GBX_ERROR_NULL, "input '\(name)': shape is NULL") }
    var shape: [Int] = []
    var elements = 1
    for axis in 0..<Int(t.rank) {
      let n = t.shape[axis]
      guard n >= 0, n <= Int64(Int32.max) else {
        throw CAPIError(GBX_ERROR_INPUT, "input '\(name)': size \(n) on axis \(axis) is not a valid size")
      }
      shape.append(Int(n))
      let (product, overflow) = elements.multipliedReportingOverflow(by: Int(n))
      guard !overflow, product <= 1 << 40 else {
        throw CAPIError(GBX_ERROR_INPUT, "input '\(name)': too many elements")
      }
      elements = product
    }
    guard let data = t.data else {
      if elements == 0 {
        out[name] = Executable.RawInput(dtype: dtype, shape: shape, data: UnsafeRawPointer(emptyMessage))
        continue
      }
      throw CAPIError(GBX_ERROR_NULL, "input '\(name)': data is NULL")
    }
    out[name] = Executable.RawInput(dtype: dtype, shape: shape, data: data)
  }
  return out
}

// MARK: Models

@_cdecl("gbx_model_load")
public func cModelLoad(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> gbx_status {
  calling {
    let out = try output(out, "out")
    out.pointee = nil
    let model = try Model(contentsOf: try string(path, "path"))
    out.pointee = Handles.shared.add(ModelBox(model))
  }
}

@_cdecl("gbx_model_load_bytes")
public func cModelLoadBytes(
  _ bytes: UnsafeRawPointer?, _ count: Int, _ out: UnsafeMutablePointer<OpaquePointer?>?
)
  -> gbx_status
{
  calling {
    let out = try output(out, "out")
    out.pointee = nil
    guard let bytes else { throw CAPIError(GBX_ERROR_NULL, "bytes is NULL") }
    let model = try Model(bytes: Array(UnsafeRawBufferPointer(start: bytes, count: count)), name: "model bytes")
    out.pointee = Handles.shared.add(ModelBox(model))
  }
}

@_cdecl("gbx_model_compile_spec")
public func cModelCompileSpec(
  _ path: UnsafePointer<CChar>?, _ names: UnsafePointer<UnsafePointer<CChar>?>?,
  _ values: UnsafePointer<Int64>?, _ count: Int, _ weights: UnsafePointer<CChar>?,
  _ seed: UInt64, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> gbx_status {
  calling {
    let out = try output(out, "out")
    out.pointee = nil
    let spec = try string(path, "spec_path")
    let options = Model.WeightOptions(file: weights.map { String(cString: $0) }, seed: seed)
    let model = try Model(contentsOf: spec, bindings: try bindings(names, values, count), weights: options)
    out.pointee = Handles.shared.add(ModelBox(model))
  }
}

@_cdecl("gbx_model_add_tap")
public func cModelAddTap(
  _ model: OpaquePointer?, _ tap: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?
)
  -> gbx_status
{
  calling {
    let out = try output(out, "out")
    out.pointee = nil
    let box = try Handles.shared.get(model, ModelBox.self, "model")
    out.pointee = Handles.shared.add(ModelBox(try box.model.adding(tap: try string(tap, "tap"))))
  }
}

@_cdecl("gbx_model_set_labels")
public func cModelSetLabels(
  _ model: OpaquePointer?, _ labels: UnsafePointer<UnsafePointer<CChar>?>?, _ count: Int,
  _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> gbx_status {
  calling {
    let out = try output(out, "out")
    out.pointee = nil
    let box = try Handles.shared.get(model, ModelBox.self, "model")
    let names = try strings(labels, count, "labels", countName: "label_count")
    out.pointee = Handles.shared.add(ModelBox(try box.model.with(labels: names)))
  }
}

@_cdecl("gbx_model_save")
public func cModelSave(_ model: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> gbx_status {
  calling {
    let box = try Handles.shared.get(model, ModelBox.self, "model")
    try box.model.write(to: try string(path, "path"))
  }
}

@_cdecl("gbx_model_free")
public func cModelFree(_ model: OpaquePointer?) -> gbx_status {
  calling { try Handles.shared.remove(model, ModelBox.self, "model") }
}

@_cdecl("gbx_model_name")
public func cModelName(_ model: OpaquePointer?, _ name: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> gbx_status {
  calling {
    let out = try output(name, "name")
    out.pointee = try Handles.shared.get(model, ModelBox.self, "model").name
  }
}

/// `list[index]` into `out`, with a message naming the list's length.
private func element<T>(_ list: [T], _ index: Int, _ what: String, into out: UnsafeMutablePointer<T>?) throws(CAPIError)
{
  let out = try output(out, "info")
  guard index >= 0, index < list.count else {
    throw CAPIError(GBX_ERROR_INPUT, "\(what) index \(index) is out of range (the model has \(list.count))")
  }
  out.pointee = list[index]
}

@_cdecl("gbx_model_input_count")
public func cModelInputCount(_ model: OpaquePointer?, _ count: UnsafeMutablePointer<Int>?) -> gbx_status {
  calling { try output(count, "count").pointee = try Handles.shared.get(model, ModelBox.self, "model").inputs.count }
}

@_cdecl("gbx_model_input")
public func cModelInput(
  _ model: OpaquePointer?, _ index: Int, _ info: UnsafeMutablePointer<gbx_tensor_info>?
) -> gbx_status {
  calling { try element(try Handles.shared.get(model, ModelBox.self, "model").inputs, index, "input", into: info) }
}

@_cdecl("gbx_model_output_count")
public func cModelOutputCount(_ model: OpaquePointer?, _ count: UnsafeMutablePointer<Int>?) -> gbx_status {
  calling { try output(count, "count").pointee = try Handles.shared.get(model, ModelBox.self, "model").outputs.count }
}

@_cdecl("gbx_model_output")
public func cModelOutput(
  _ model: OpaquePointer?, _ index: Int, _ info: UnsafeMutablePointer<gbx_tensor_info>?
) -> gbx_status {
  calling { try element(try Handles.shared.get(model, ModelBox.self, "model").outputs, index, "output", into: info) }
}

@_cdecl("gbx_model_tap_count")
public func cModelTapCount(_ model: OpaquePointer?, _ count: UnsafeMutablePointer<Int>?) -> gbx_status {
  calling { try output(count, "count").pointee = try Handles.shared.get(model, ModelBox.self, "model").taps.count }
}

@_cdecl("gbx_model_tap")
public func cModelTap(_ model: OpaquePointer?, _ index: Int, _ info: UnsafeMutablePointer<gbx_tap_info>?) -> gbx_status
{
  calling { try element(try Handles.shared.get(model, ModelBox.self, "model").taps, index, "tap", into: info) }
}

@_cdecl("gbx_model_label_count")
public func cModelLabelCount(_ model: OpaquePointer?, _ count: UnsafeMutablePointer<Int>?) -> gbx_status {
  calling { try output(count, "count").pointee = try Handles.shared.get(model, ModelBox.self, "model").labels.count }
}

@_cdecl("gbx_model_label")
public func cModelLabel(
  _ model: OpaquePointer?, _ index: Int, _ label: UnsafeMutablePointer<UnsafePointer<CChar>?>?
)
  -> gbx_status
{
  calling {
    let labels = try Handles.shared.get(model, ModelBox.self, "model").labels
    let out = try output(label, "label")
    guard index >= 0, index < labels.count else {
      throw CAPIError(GBX_ERROR_INPUT, "label index \(index) is out of range (the model has \(labels.count))")
    }
    out.pointee = labels[index]
  }
}

// MARK: Sessions

@_cdecl("gbx_session_create")
public func cSessionCreate(
  _ model: OpaquePointer?, _ threads: Int32, _ names: UnsafePointer<UnsafePointer<CChar>?>?,
  _ values: UnsafePointer<Int64>?, _ count: Int, _ taps: UnsafePointer<UnsafePointer<CChar>?>?,
  _ tapCount: Int, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> gbx_status {
  calling {
    let out = try output(out, "out")
    out.pointee = nil
    let box = try Handles.shared.get(model, ModelBox.self, "model")
    // NULL taps: the session's default; a non-NULL array of none: no taps.
    let selected = taps == nil && tapCount == 0 ? nil : try strings(taps, tapCount, "taps", countName: "tap_count")
    let options = SessionOptions(threads: Int(threads), bindings: try bindings(names, values, count), taps: selected)
    out.pointee = Handles.shared.add(SessionBox(try box.model.session(options)))
  }
}

@_cdecl("gbx_session_free")
public func cSessionFree(_ session: OpaquePointer?) -> gbx_status {
  calling { try Handles.shared.remove(session, SessionBox.self, "session") }
}

@_cdecl("gbx_session_run")
public func cSessionRun(
  _ session: OpaquePointer?, _ inputs: UnsafePointer<gbx_tensor>?, _ count: Int,
  _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> gbx_status {
  calling {
    let out = try output(out, "out")
    out.pointee = nil
    let box = try Handles.shared.get(session, SessionBox.self, "session")
    let result = ResultBox()
    try box.session.run(rawInputs: try rawInputs(inputs, count)) { name, shape, values in
      result.add(name: name, shape: shape, floats: values)
    }
    out.pointee = Handles.shared.add(result)
  }
}

@_cdecl("gbx_session_explain")
public func cSessionExplain(
  _ session: OpaquePointer?, _ tap: UnsafePointer<CChar>?, _ inputs: UnsafePointer<gbx_tensor>?,
  _ count: Int, _ targets: UnsafePointer<Int64>?, _ targetCount: Int,
  _ scope: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> gbx_status {
  calling {
    let out = try output(out, "out")
    out.pointee = nil
    let box = try Handles.shared.get(session, SessionBox.self, "session")
    out.pointee = try explained(
      box, taps: [try string(tap, "tap")], inputs, count, targets, targetCount, scope)
  }
}

@_cdecl("gbx_session_explain_taps")
public func cSessionExplainTaps(
  _ session: OpaquePointer?, _ taps: UnsafePointer<UnsafePointer<CChar>?>?, _ tapCount: Int,
  _ inputs: UnsafePointer<gbx_tensor>?, _ count: Int, _ targets: UnsafePointer<Int64>?,
  _ targetCount: Int, _ scope: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> gbx_status {
  calling {
    let out = try output(out, "out")
    out.pointee = nil
    let box = try Handles.shared.get(session, SessionBox.self, "session")
    let names = try strings(taps, tapCount, "taps", countName: "tap_count")
    out.pointee = try explained(box, taps: names, inputs, count, targets, targetCount, scope)
  }
}

/// The explanations of `taps` in one run as a result: the model's outputs, each tap's maps
/// (`TAP`, `TAP.normalized`, …) in `taps` order, then `target` when a tap explains a class.
private func explained(
  _ box: SessionBox, taps: [String], _ inputs: UnsafePointer<gbx_tensor>?, _ count: Int,
  _ targets: UnsafePointer<Int64>?, _ targetCount: Int, _ scope: UnsafePointer<CChar>?
) throws -> OpaquePointer {
  let target: Target
  if let targets {
    target = .each((0..<targetCount).map { Int(clamping: targets[$0]) })
  } else if targetCount > 0 {
    throw CAPIError(GBX_ERROR_NULL, "targets is NULL but target_count is \(targetCount)")
  } else {
    target = .predicted
  }
  let explanations = try box.session.explain(
    taps: taps, rawInputs: try rawInputs(inputs, count), target: target,
    scope: scope.map { String(cString: $0) })
  let result = ResultBox()
  // The model's outputs are the same in every explanation of the run: added once, first.
  let outputs = (explanations.first?.outputs ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
  for (name, t) in outputs + explanations.flatMap(\.mapTensors) {
    t.floats.withUnsafeBufferPointer { result.add(name: name, shape: t.shape, floats: $0) }
  }
  if let classes = explanations.lazy.compactMap(\.classes).first {
    result.add(name: "target", integers: classes.map(Int64.init))
  }
  return Handles.shared.add(result)
}

// MARK: Results

@_cdecl("gbx_result_count")
public func cResultCount(_ result: OpaquePointer?, _ count: UnsafeMutablePointer<Int>?) -> gbx_status {
  calling {
    try output(count, "count").pointee = try Handles.shared.get(result, ResultBox.self, "result").outputs.count
  }
}

@_cdecl("gbx_result_get")
public func cResultGet(_ result: OpaquePointer?, _ index: Int, _ out: UnsafeMutablePointer<gbx_output>?) -> gbx_status {
  calling {
    let outputs = try Handles.shared.get(result, ResultBox.self, "result").outputs
    let out = try output(out, "output")
    guard index >= 0, index < outputs.count else {
      throw CAPIError(GBX_ERROR_INPUT, "result index \(index) is out of range (the result has \(outputs.count))")
    }
    out.pointee = outputs[index]
  }
}

@_cdecl("gbx_result_find")
public func cResultFind(
  _ result: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<gbx_output>?
)
  -> gbx_status
{
  calling {
    let outputs = try Handles.shared.get(result, ResultBox.self, "result").outputs
    let wanted = try string(name, "name")
    let out = try output(out, "output")
    guard let o = outputs.first(where: { String(cString: $0.name) == wanted }) else {
      let names = outputs.map { String(cString: $0.name) }.joined(separator: ", ")
      throw CAPIError(GBX_ERROR_INPUT, "the result has no tensor '\(wanted)' (it has \(names))")
    }
    out.pointee = o
  }
}

@_cdecl("gbx_result_free")
public func cResultFree(_ result: OpaquePointer?) -> gbx_status {
  calling { try Handles.shared.remove(result, ResultBox.self, "result") }
}
