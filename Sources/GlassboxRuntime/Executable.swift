import Foundation
import GlassboxIR

/// A graph compiled for fixed input shapes: a linear program of kernels (OpenBLAS GEMMs and
/// Swift SIMD loops) over one arena planned by liveness, where independent chains of LSTM
/// cells run side by side as two lanes of one step (`Schedule`). Running it allocates nothing
/// but the result tensors it hands back.
///
/// Arena layout: `[parameters and constants | inputs | planned intermediates]`, all f32;
/// outputs and taps are pinned (their buffers are never reused).
public final class Executable: @unchecked Sendable {
  /// The bound graph this program computes.
  public let graph: Graph
  /// Cores the kernels split their work over.
  public let threads: Int
  let kernels: [any Kernel]
  let arena: UnsafeMutablePointer<Float>
  /// Floats in the arena.
  public let arenaCount: Int
  /// Sum of all buffers' sizes before sharing (floats), for `--stats`.
  public let unsharedCount: Int
  /// Where each value lives (offset in floats); aliases share their source's offset.
  let offsets: [Int]
  /// Value indices of the named results: outputs, then activation-like taps.
  let results: [(name: String, value: ValueID)]
  /// The run order and the groups of nodes that run side by side.
  let schedule: Schedule
  /// Per node: its scratch in the arena (floats; empty if it needs none).
  let scratchRanges: [Range<Int>]
  /// Per named result (`results` order): how many kernels run before its value is final.
  /// Outputs and taps are pinned, so no later kernel writes them.
  let readyAfter: [Int]

  /// Errors in what was given to compile or run: names the tensor and what is wrong.
  public struct InputError: Error, CustomStringConvertible {
    public var description: String
  }

  /// Compiles a graph whose every dimension is bound; `parameters` are copied in (missing
  /// ones are an error). `threads` is how many cores the program may use: kernels split their
  /// work over them (large products, images of a convolution, the two LSTM directions), each
  /// part calling a single-threaded OpenBLAS.
  public init(graph: Graph, parameters: [String: Tensor], threads: Int = 2) throws {
    try BLAS.ensureLoaded()
    self.graph = graph
    self.threads = Swift.max(threads, 1)
    for v in graph.values where !v.type.shape.allSatisfy(\.isStatic) {
      throw InputError(description: "value '\(v.name)' has symbolic shape \(v.type.shapeDescription); bind the symbols first")
    }
    let n = graph.values.count
    func count(_ v: ValueID) -> Int { Self.elementCount(graph[v].type) }

    // Aliases: ops that keep the bytes (reshape, flatten, dropout in inference) share storage.
    var root = Array(0..<n)
    for node in graph.nodes where [.reshape, .flatten, .dropout].contains(node.op) {
      root[node.results[0].index] = root[node.operands[0].index]
    }
    // A step of an LSTM's projection that only cells read is a view of the projection's rows.
    let views = Self.stepViews(graph)
    for i in views.keys { root[graph.nodes[i].results[0].index] = root[graph.nodes[i].operands[0].index] }
    // Pieces of a concatenation that are written where it keeps them: each piece, with its
    // aliases, lives in the concatenation's buffer from its start on.
    let placed = Self.concatViews(graph, root: root)
    var shift = [Int](repeating: 0, count: n)
    if !placed.pieces.isEmpty {
      var members = [[Int]](repeating: [], count: n)
      for i in 0..<n { members[root[i]].append(i) }
      for (piece, p) in placed.pieces {
        for i in members[piece] { (root[i], shift[i]) = (p.target, shift[i] + p.start) }
      }
    }
    let schedule = Schedule.make(graph, threads: self.threads)
    // A stack of gate gradients that can take its projection's place does.
    for (stack, projection) in Self.stacksOverProjections(graph, root: root, placed: placed, views: views,
                                                          position: schedule.position) {
      for i in 0..<n where root[i] == stack { root[i] = projection }
    }
    // Elementwise results written over an operand of their shape that nothing reads after.
    root = Self.inPlace(graph, root: root, shift: shift, views: views, schedule: schedule)

    // Static region: parameters this program reads (a folded batch norm's originals are
    // not), then inputs.
    var used = [Bool](repeating: false, count: n)
    for node in graph.nodes { for o in node.operands { used[o.index] = true } }
    for o in graph.outputs { used[o.value.index] = true }
    for t in graph.taps { for o in t.operands { used[o.index] = true } }
    var offsets = [Int](repeating: -1, count: n)
    var staticSize = 0
    for p in graph.parameters where used[p.value.index] {
      offsets[p.value.index] = staticSize
      staticSize += MemoryPlan.round(count(p.value))
    }
    for id in graph.inputs {
      offsets[id.index] = staticSize
      staticSize += MemoryPlan.round(count(id))
    }
    // What kernels derive from parameters (Winograd's transformed weights, an LSTM layer's
    // packed input weights) stays too. An input
    // gradient reads the transformed weights of a forward convolution by the same weights.
    var persistent = [Int](repeating: 0, count: graph.nodes.count)
    var sharesForward = [Bool](repeating: false, count: graph.nodes.count)
    var transformed: [Int: Int] = [:]  // weight value index → its forward transform's offset
    for (i, node) in graph.nodes.enumerated() {
      let need = Lowering.persistent(node, graph)
      guard need > 0 else { continue }
      let weight = node.operands[1].index
      if node.op == .conv2dBackwardInput, let forward = transformed[weight] {
        (persistent[i], sharesForward[i]) = (forward, true)
        continue
      }
      persistent[i] = staticSize
      if node.op == .conv2d { transformed[weight] = staticSize }
      staticSize += MemoryPlan.round(need)
    }

    // Lifetimes of node results (by root) at the schedule's positions, pinned for outputs and
    // taps; a buffer of one lane of a group is tagged with it, one that crosses a group's
    // boundary is live over the whole group.
    let end = schedule.positions
    var first = [Int](repeating: Int.max, count: n), last = [Int](repeating: -1, count: n)
    var laneOf = [Schedule.Lane?](repeating: nil, count: n), mixed = [Bool](repeating: false, count: n)
    var groupsOf = [Set<Int>](repeating: [], count: n)
    for (i, node) in graph.nodes.enumerated() {
      let p = schedule.position[i], lane = schedule.lane[i]
      for r in node.results { first[root[r.index]] = Swift.min(first[root[r.index]], p) }
      for o in node.operands + node.results {
        let r = root[o.index]
        // Touched by two lanes, or by a lane and a node outside the group: mixed.
        if last[r] < 0 { laneOf[r] = lane } else if laneOf[r] != lane { mixed[r] = true }
        last[r] = Swift.max(last[r], p)
        if let g = lane?.group { groupsOf[r].insert(g) }
      }
    }
    for r in 0..<n where mixed[r] {
      laneOf[r] = nil
      for g in groupsOf[r] {
        first[r] = Swift.min(first[r], schedule.spans[g].lowerBound)
        last[r] = Swift.max(last[r], schedule.spans[g].upperBound)
      }
    }
    var pinned = Set(graph.outputs.map { root[$0.value.index] })
    for t in graph.taps { for o in t.operands { pinned.insert(root[o.index]) } }
    var buffers: [MemoryPlan.Buffer] = []
    var owner: [Int] = []  // value index, or -(node index + 1) for a node's scratch
    for i in 0..<n where root[i] == i && offsets[i] < 0 && first[i] != Int.max {
      buffers.append(.init(count: count(ValueID(i)), first: first[i], last: pinned.contains(i) ? end : last[i], lane: laneOf[i]))
      owner.append(i)
    }
    // A node in a lane runs on one core.
    func threadsOf(_ i: Int) -> Int { schedule.lane[i] == nil ? threads : 1 }
    var scratchNeed = [Int](repeating: 0, count: graph.nodes.count)
    for (i, node) in graph.nodes.enumerated() {
      scratchNeed[i] = Lowering.scratch(node, graph, threads: threadsOf(i))
      if scratchNeed[i] > 0 {
        let p = schedule.position[i]
        buffers.append(.init(count: scratchNeed[i], first: p, last: p, lane: schedule.lane[i]))
        owner.append(-(i + 1))
      }
    }
    let plan = MemoryPlan.place(buffers)
    var scratch = [Int](repeating: 0, count: graph.nodes.count)
    for (b, o) in owner.enumerated() {
      if o >= 0 { offsets[o] = staticSize + plan.offsets[b] } else { scratch[-o - 1] = staticSize + plan.offsets[b] }
    }
    for i in 0..<n where offsets[i] < 0 { offsets[i] = offsets[root[i]] + shift[i] }
    var rowStrides: [Int: Int] = [:]
    for (piece, p) in placed.pieces { if let stride = p.rowStride { rowStrides[piece] = stride } }
    for (i, v) in views {
      let r = graph.nodes[i].results[0].index
      offsets[r] += v.start
      rowStrides[r] = v.rowStride
    }
    self.offsets = offsets
    self.schedule = schedule
    scratchRanges = (0..<graph.nodes.count).map { scratch[$0]..<(scratch[$0] + scratchNeed[$0]) }
    arenaCount = staticSize + plan.size
    unsharedCount = staticSize + buffers.reduce(0) { $0 + MemoryPlan.round($1.count) }
    arena = .allocate(capacity: Swift.max(arenaCount, 1))
    arena.initialize(repeating: 0, count: Swift.max(arenaCount, 1))

    func lowered(_ i: Int) throws -> [any Kernel] {
      if views[i] != nil || placed.concats.contains(i) { return [] }
      return try Lowering.kernels(graph.nodes[i], graph, offsets, scratch: scratch[i], persistent: persistent[i],
                                  sharesForward: sharesForward[i], rowStrides: rowStrides, threads: threadsOf(i))
    }
    var kernels: [any Kernel] = []
    var doneAfter = [Int](repeating: 0, count: graph.nodes.count)
    for step in schedule.steps {
      switch step {
      case .node(let i):
        kernels += try lowered(i)
        doneAfter[i] = kernels.count
      case .group(let g):
        kernels.append(LaneGroup(lanes: try schedule.groups[g].map { try $0.flatMap(lowered) }))
        for lane in schedule.groups[g] { for i in lane { doneAfter[i] = kernels.count } }
      }
    }
    self.kernels = kernels
    var results = graph.outputs.map { ($0.name, $0.value) }
    for t in graph.taps where t.kind.isValue {
      results.append((t.name, t.operands[0]))
    }
    self.results = results
    readyAfter = results.map { r in
      if case .node(let producer, _) = graph[r.1].origin { return doneAfter[producer.index] }
      return 0
    }
    try setParameters(parameters)
  }

  deinit { arena.deallocate() }

  /// Selects of one time step from `[B, T, G]` (an unrolled LSTM's projection) that only LSTM
  /// cells read, as their gate inputs: by node index, where the step starts in the projection
  /// and the stride of its rows (T·G). They need no copy and no buffer of their own; the
  /// cells read the projection's rows (each copies its gates into scratch first anyway).
  static func stepViews(_ g: Graph) -> [Int: (start: Int, rowStride: Int)] {
    var readers = [[(node: Int, operand: Int)]](repeating: [], count: g.values.count)
    for (i, node) in g.nodes.enumerated() { for (k, o) in node.operands.enumerated() { readers[o.index].append((i, k)) } }
    var exported = Set(g.outputs.map(\.value.index))
    for t in g.taps { for o in t.operands { exported.insert(o.index) } }
    var views: [Int: (start: Int, rowStride: Int)] = [:]
    for (i, node) in g.nodes.enumerated() where node.op == .select {
      let x = Lowering.shape(g, node.operands[0]), r = node.results[0].index
      guard x.count == 3, !exported.contains(r), !readers[r].isEmpty else { continue }
      let axis = node.attributes.int("axis") < 0 ? node.attributes.int("axis") + 3 : node.attributes.int("axis")
      let index = node.attributes.int("index") < 0 ? node.attributes.int("index") + x[1] : node.attributes.int("index")
      guard axis == 1, index >= 0, index < x[1], readers[r].allSatisfy({ reader in
        let op = g.nodes[reader.node].op
        return (op == .lstmCell && reader.operand == 0) || (op == .lstmCellBackward && reader.operand == 2)
      }) else { continue }
      views[i] = (index * x[2], x[1] * x[2])
    }
    return views
  }

  /// Concatenations whose pieces are written in place, so that they copy nothing: the
  /// concatenations (by node index) and, by piece (a root value index), the concatenation's
  /// result, where the piece starts in it (floats) and the stride of the piece's rows there
  /// when they are not contiguous. `root` maps each value to the one whose storage it shares.
  ///
  /// A piece qualifies when a node computes it, nothing exports it, it is a piece of no other
  /// such concatenation and no such concatenation's result, and either its rows follow one
  /// another in the result (nothing outside the axis but the axis itself: one sequence's
  /// steps), or it is the gate gradient of an `lstm_cell_backward` (which writes its rows at
  /// any stride) that only the concatenation reads — a backward LSTM's steps stacked for
  /// the weight gradients. A concatenation is placed whole or not at all.
  static func concatViews(_ g: Graph, root: [Int]) -> (concats: Set<Int>, pieces: [Int: (target: Int, start: Int, rowStride: Int?)]) {
    var exported = Set(g.outputs.map { root[$0.value.index] })
    for t in g.taps { for o in t.operands { exported.insert(root[o.index]) } }
    // Nodes that read a value through its storage (aliasing ops only pass it on).
    var readers = [[Int]](repeating: [], count: g.values.count)
    for (i, node) in g.nodes.enumerated() {
      if [.reshape, .flatten, .dropout].contains(node.op), root[node.results[0].index] == root[node.operands[0].index] { continue }
      for o in node.operands where readers[root[o.index]].last != i { readers[root[o.index]].append(i) }
    }
    var concats = Set<Int>(), pieces: [Int: (target: Int, start: Int, rowStride: Int?)] = [:], targets = Set<Int>()
    for (i, node) in g.nodes.enumerated() where node.op == .concat && node.operands.count > 1 {
      let r = node.results[0].index
      let out = Lowering.shape(g, node.results[0])
      let rank = out.count, raw = node.attributes.int("axis"), axis = raw < 0 ? raw + rank : raw
      guard root[r] == r, !pieces.keys.contains(r), axis >= 0, axis < rank else { continue }
      let outer = out[..<axis].reduce(1, *), inner = out[(axis + 1)...].reduce(1, *)
      var found: [Int: (target: Int, start: Int, rowStride: Int?)] = [:]
      var position = 0, ok = true
      for operand in node.operands {
        let v = root[operand.index], width = Lowering.shape(g, operand)[axis]
        defer { position += width }
        guard case .node(let producer, let result) = g[ValueID(v)].origin, !exported.contains(v), pieces[v] == nil,
              found[v] == nil, !targets.contains(v) else { ok = false; break }
        let start = position * inner
        if outer == 1 {
          found[v] = (r, start, nil)
          continue
        }
        let p = g.nodes[producer.index]
        guard p.op == .lstmCellBackward, result == 0, readers[v] == [i], Lowering.shape(g, ValueID(v)) == [outer, width * inner]
        else { ok = false; break }
        found[v] = (r, start, out[axis] * inner)
      }
      guard ok else { continue }
      concats.insert(i)
      targets.insert(r)
      pieces.merge(found) { a, _ in a }
    }
    return (concats, pieces)
  }

  /// Stacks of gate gradients (placed concatenations, `concatViews`) that can live in the
  /// storage of the projection their cells read, by the stack's value index: the projection's
  /// root. Backward cell t reads step t of the projection (a step view) and writes its gate
  /// gradients to step t of the stack — the same floats when the two share storage, and the
  /// cell reads its gates before it writes their gradients. So the stack qualifies when every
  /// piece t is the gate gradient of a backward cell whose gates are step t of one projection
  /// that only step views read, laid out as the stack is, nothing exports the projection, and
  /// every other reader of step t is a forward cell that runs before (by `position`, the
  /// schedule's) — not a second backward pass through the same steps (a program with two
  /// seeds), which would read gradients where it expects gates.
  static func stacksOverProjections(_ g: Graph, root: [Int], placed: (concats: Set<Int>, pieces: [Int: (target: Int, start: Int, rowStride: Int?)]),
                                    views: [Int: (start: Int, rowStride: Int)], position: [Int]) -> [(stack: Int, projection: Int)] {
    var exported = Set(g.outputs.map { root[$0.value.index] })
    for t in g.taps { for o in t.operands { exported.insert(root[o.index]) } }
    // Values read other than through a step view (by root).
    var readElsewhere = Set<Int>()
    for (i, node) in g.nodes.enumerated() where views[i] == nil {
      for o in node.operands where !(g.producer(of: o).map { views[$0.index] != nil } ?? false) { readElsewhere.insert(root[o.index]) }
    }
    // Readers of each step view.
    var viewReaders: [Int: [Int]] = [:]
    for (i, node) in g.nodes.enumerated() {
      for o in node.operands { if let p = g.producer(of: o), views[p.index] != nil { viewReaders[p.index, default: []].append(i) } }
    }
    var piecesOf: [Int: [(piece: Int, start: Int)]] = [:]
    for (piece, p) in placed.pieces { piecesOf[p.target, default: []].append((piece, p.start)) }
    var shared: [(stack: Int, projection: Int)] = [], taken = Set<Int>()
    for s in placed.concats.sorted() {
      let stack = g.nodes[s].results[0].index
      var sources = Set<Int>()
      let fits = (piecesOf[stack] ?? []).allSatisfy { piece, start in
        guard let c = g.producer(of: ValueID(piece)), g.nodes[c.index].op == .lstmCellBackward,
              g.nodes[c.index].results[0].index == piece, let select = g.producer(of: g.nodes[c.index].operands[2]),
              let view = views[select.index], view.start == start,
              (viewReaders[select.index] ?? []).allSatisfy({ r in
                r == c.index || (g.nodes[r].op == .lstmCell && position[r] < position[c.index])
              }) else { return false }
        sources.insert(root[g.nodes[select.index].operands[0].index])
        return true
      }
      guard fits, sources.count == 1, let p = sources.first, !exported.contains(p), !readElsewhere.contains(p), !taken.contains(p),
            Lowering.shape(g, ValueID(p)) == Lowering.shape(g, ValueID(stack)) else { continue }
      taken.insert(p)
      shared.append((stack, p))
    }
    return shared
  }

  /// `root` with the results of elementwise nodes that can take the storage of an operand
  /// mapped to that operand's root. Each output element depends only on the same element of
  /// such an operand (the kernels — `Binary`, `Unary`, `FusedElementwise`, `ReluBackward` —
  /// read it before they write it), so the result may overwrite an operand of its own shape
  /// that no node reads after this one and nothing exports: a backward pass's chains of
  /// products and sums then reuse one buffer instead of holding each input and output at once. Nodes in a lane group
  /// are left alone (their order against the other lane is not fixed), as are operands and
  /// results that are views (of a step, of a concatenation).
  static func inPlace(_ g: Graph, root: [Int], shift: [Int], views: [Int: (start: Int, rowStride: Int)],
                      schedule: Schedule) -> [Int] {
    let n = g.values.count
    var root = root
    var exported = Set(g.outputs.map { root[$0.value.index] })
    for t in g.taps { for o in t.operands { exported.insert(root[o.index]) } }
    let isView = (0..<n).map { i in shift[i] != 0 || (g.producer(of: ValueID(i)).map { views[$0.index] != nil } ?? false) }
    var lastRead = [Int](repeating: -1, count: n)
    for (i, node) in g.nodes.enumerated() {
      for o in node.operands { lastRead[root[o.index]] = Swift.max(lastRead[root[o.index]], schedule.position[i]) }
    }
    var members = [[Int]](repeating: [], count: n)
    for i in 0..<n { members[root[i]].append(i) }
    let elementwise: Set<Op> = [.add, .sub, .mul, .div, .relu, .sigmoid, .tanh, .fusedElementwise, .reluBackward]
    for i in g.nodes.indices.sorted(by: { schedule.position[$0] < schedule.position[$1] }) {
      let node = g.nodes[i], r = node.results[0].index
      // A result that is a view already shares another value's storage: root[r] ≠ r.
      guard elementwise.contains(node.op), schedule.lane[i] == nil, root[r] == r, !exported.contains(r),
            g[node.results[0]].type.dtype == .f32 else { continue }
      let p = schedule.position[i]
      for o in node.operands {
        let v = root[o.index]
        guard g[o].type == g[node.results[0]].type, v != r, !isView[o.index], !exported.contains(v), lastRead[v] == p,
              case .node = g[ValueID(v)].origin else { continue }
        // Nothing else of this node reads that storage under another shape (a broadcast).
        guard node.operands.allSatisfy({ root[$0.index] != v || g[$0].type == g[o].type }) else { continue }
        for m in members[r] { root[m] = v }
        members[v] += members[r]
        members[r] = []
        lastRead[v] = Swift.max(lastRead[v], lastRead[r])
        break
      }
    }
    return root
  }

  /// Copies parameter values into the arena, checking names, shapes and types.
  public func setParameters(_ parameters: [String: Tensor]) throws {
    var problems: [String] = []
    for p in graph.parameters where offsets[p.value.index] >= 0 {
      guard let t = parameters[p.name] else { problems.append("missing parameter '\(p.name)'"); continue }
      let shape = p.type.shape.map { $0.staticValue ?? 0 }
      guard t.shape == shape else {
        problems.append("parameter '\(p.name)' has shape \(t.shape) but the graph expects \(shape)")
        continue
      }
      write(t, at: offsets[p.value.index])
    }
    guard problems.isEmpty else { throw InputError(description: problems.joined(separator: "\n")) }
    for k in kernels { k.prepare(arena) }
  }

  func write(_ t: Tensor, at offset: Int) {
    let v: [Float]
    if case .f32(let f) = t.storage { v = f } else { v = t.floats }
    v.withUnsafeBufferPointer { buffer in
      if let base = buffer.baseAddress { (arena + offset).update(from: base, count: buffer.count) }
    }
  }

  /// Runs the program on `inputs` (by input name) and returns outputs and activation-like taps
  /// by name.
  public func run(inputs: [String: Tensor]) throws -> [String: Tensor] {
    try write(inputs: inputs)
    runKernels()
    var out: [String: Tensor] = [:]
    for (name, id) in results {
      let shape = graph[id].type.shape.map { $0.staticValue ?? 0 }
      let values = UnsafeBufferPointer(start: arena + offsets[id.index], count: Self.elementCount(graph[id].type))
      out[name] = Tensor(shape: shape, f32: Array(values))
    }
    return out
  }

  /// Runs the program on `inputs` and copies each output and tap into `outputs[name]`,
  /// reusing the array already there when it has the size and no other owner: a loop that
  /// lets go of the previous run's values allocates nothing (a training step's gradients are
  /// the size of the model; fresh arrays every step cost page faults, clearing and unmapping).
  public func run(inputs: [String: Tensor], into outputs: inout [String: [Float]]) throws {
    try write(inputs: inputs)
    runKernels()
    for (name, id) in results {
      let source = UnsafeBufferPointer(start: arena + offsets[id.index], count: Self.elementCount(graph[id].type))
      var values = outputs.removeValue(forKey: name) ?? []
      if values.count == source.count {
        values.withUnsafeMutableBufferPointer { v in _ = v.update(fromContentsOf: source) }
      } else {
        values = Array(source)
      }
      outputs[name] = values
    }
  }

  /// `run(inputs:into:)` that also hands each output and tap to `ready` as soon as the kernel
  /// that completes it has run, as a view of the arena valid during the call (no later kernel
  /// writes it), in the order they complete: a training step's gradients reach `ready` during
  /// the backward pass, so a data-parallel run can start summing them across processes.
  public func run(inputs: [String: Tensor], into outputs: inout [String: [Float]],
                  ready: (_ name: String, _ values: UnsafeBufferPointer<Float>) -> Void) throws {
    try write(inputs: inputs)
    let order = readinessOrder
    var next = 0
    func announce(upTo done: Int) {
      while next < order.count, readyAfter[order[next]] <= done {
        let (name, id) = results[order[next]]
        ready(name, UnsafeBufferPointer(start: arena + offsets[id.index], count: Self.elementCount(graph[id].type)))
        next += 1
      }
    }
    announce(upTo: 0)
    for (i, k) in kernels.enumerated() {
      k.run(arena)
      announce(upTo: i + 1)
    }
    for (name, id) in results {
      let source = UnsafeBufferPointer(start: arena + offsets[id.index], count: Self.elementCount(graph[id].type))
      var values = outputs.removeValue(forKey: name) ?? []
      if values.count == source.count {
        values.withUnsafeMutableBufferPointer { v in _ = v.update(fromContentsOf: source) }
      } else {
        values = Array(source)
      }
      outputs[name] = values
    }
  }

  /// Indices into `results` in the order `run(inputs:into:ready:)` announces them.
  var readinessOrder: [Int] { results.indices.sorted { (readyAfter[$0], $0) < (readyAfter[$1], $1) } }

  /// The names of the outputs and taps in the order the program completes them (the order
  /// `run(inputs:into:ready:)` hands them over in): fixed by the graph and the thread count.
  public var completionOrder: [String] { readinessOrder.map { results[$0].name } }

  /// An input handed over as memory the caller owns: row-major elements of `dtype`.
  public struct RawInput {
    public var dtype: DType
    public var shape: [Int]
    public var data: UnsafeRawPointer

    public init(dtype: DType, shape: [Int], data: UnsafeRawPointer) {
      self.dtype = dtype
      self.shape = shape
      self.data = data
    }
  }

  /// Runs the program on inputs read straight from the caller's memory (f32 copied once into
  /// the arena; other types converted on the way), then hands each output and tap to `body`
  /// as a view of the arena, valid only during the call. Checks names, shapes and types as
  /// `run(inputs:)` does.
  public func run(rawInputs: [String: RawInput],
                  results body: (_ name: String, _ shape: [Int], _ values: UnsafeBufferPointer<Float>) throws -> Void) throws {
    for id in graph.inputs {
      let v = graph[id]
      guard let t = rawInputs[v.name] else { throw InputError(description: "input '\(v.name)' is missing") }
      let shape = v.type.shape.map { $0.staticValue ?? 0 }
      guard t.shape == shape else {
        throw InputError(description: "input '\(v.name)' has shape \(t.shape) but the program expects \(shape)")
      }
      guard t.dtype == v.type.dtype || (t.dtype.isFloatingPoint && v.type.dtype.isFloatingPoint) else {
        throw InputError(description: "input '\(v.name)' is \(t.dtype.rawValue) but the program expects \(v.type.dtype.rawValue)")
      }
      let n = Self.elementCount(v.type), dst = arena + offsets[id.index]
      switch t.dtype {
      case .f32: dst.update(from: t.data.assumingMemoryBound(to: Float.self), count: n)
      case .f64:
        let src = t.data.assumingMemoryBound(to: Double.self)
        for i in 0..<n { dst[i] = Float(src[i]) }
      case .i64:
        let src = t.data.assumingMemoryBound(to: Int64.self)
        for i in 0..<n { dst[i] = Float(src[i]) }
      case .bool:
        let src = t.data.assumingMemoryBound(to: UInt8.self)  // any non-zero byte is true
        for i in 0..<n { dst[i] = src[i] != 0 ? 1 : 0 }
      }
    }
    runKernels()
    for (name, id) in results {
      let shape = graph[id].type.shape.map { $0.staticValue ?? 0 }
      try body(name, shape, UnsafeBufferPointer(start: arena + offsets[id.index], count: Self.elementCount(graph[id].type)))
    }
  }

  /// Names and shapes of what `run` returns: outputs, then activation-like taps.
  public var resultShapes: [(name: String, shape: [Int])] {
    results.map { ($0.name, graph[$0.value].type.shape.map { $0.staticValue ?? 0 }) }
  }

  /// Elements of a value of a bound type.
  static func elementCount(_ t: TensorType) -> Int { t.shape.reduce(1) { $0 * ($1.staticValue ?? 1) } }

  /// Checks `inputs` against the program's inputs (name, shape, dtype) and writes them.
  func write(inputs: [String: Tensor]) throws {
    for id in graph.inputs {
      let v = graph[id]
      guard let t = inputs[v.name] else { throw InputError(description: "input '\(v.name)' is missing") }
      let shape = v.type.shape.map { $0.staticValue ?? 0 }
      guard t.shape == shape else {
        throw InputError(description: "input '\(v.name)' has shape \(t.shape) but the program expects \(shape)")
      }
      guard t.dtype == v.type.dtype || (t.dtype.isFloatingPoint && v.type.dtype.isFloatingPoint) else {
        throw InputError(description: "input '\(v.name)' is \(t.dtype.rawValue) but the program expects \(v.type.dtype.rawValue)")
      }
      write(t, at: offsets[id.index])
    }
  }

  /// Runs every kernel once on whatever the arena holds (for benchmarks).
  public func runKernels() {
    for k in kernels { k.run(arena) }
  }

  /// Writes inputs without running (for benchmarks that time `runKernels` alone).
  public func load(inputs: [String: Tensor]) throws {
    for id in graph.inputs {
      guard let t = inputs[graph[id].name] else { throw InputError(description: "input '\(graph[id].name)' is missing") }
      write(t, at: offsets[id.index])
    }
  }

  /// Runs the program `runs` times and returns each kernel's label and mean time in
  /// milliseconds, in program order.
  public func profile(runs: Int) -> [(label: String, milliseconds: Double)] {
    var total = [UInt64](repeating: 0, count: kernels.count)
    for _ in 0..<Swift.max(runs, 1) {
      for (i, k) in kernels.enumerated() {
        let start = DispatchTime.now().uptimeNanoseconds
        k.run(arena)
        total[i] += DispatchTime.now().uptimeNanoseconds - start
      }
    }
    return zip(kernels, total).map { ($0.label, Double($1) / 1e6 / Double(Swift.max(runs, 1))) }
  }

  /// For each kernel built on SGEMM: its mean time against OpenBLAS alone doing the same
  /// GEMMs (same shapes, its own buffers, same threads), both over `runs` runs. The ratio
  /// says how much of the GEMM rate the kernel keeps after im2col, transforms and epilogues.
  public func gemmEfficiency(runs: Int) -> [(label: String, flops: Double, kernelMs: Double, sgemmMs: Double)] {
    let times = profile(runs: runs)
    var rows: [(String, Double, Double, Double)] = []
    for (i, k) in kernels.enumerated() where !k.gemms.isEmpty {
      var sgemmNs: UInt64 = 0
      for s in k.gemms {
        let a = [Float](repeating: 0.5, count: s.m * s.k), b = [Float](repeating: 0.25, count: s.k * s.n)
        var c = [Float](repeating: 0, count: s.m * s.n)
        func once() {
          for _ in 0..<s.count {
            BLAS.sgemm(threads: threads, transB: s.transB, m: s.m, n: s.n, k: s.k, a: a, lda: s.k, b: b, ldb: s.transB ? s.k : s.n,
                       c: &c, ldc: s.n)
          }
        }
        once()
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<Swift.max(runs, 1) { once() }
        sgemmNs += DispatchTime.now().uptimeNanoseconds - start
      }
      rows.append((k.label, k.gemms.reduce(0) { $0 + $1.flops }, times[i].milliseconds,
                   Double(sgemmNs) / 1e6 / Double(Swift.max(runs, 1))))
    }
    return rows
  }

  /// Kernel labels in program order.
  public var program: [String] { kernels.map(\.label) }
}
