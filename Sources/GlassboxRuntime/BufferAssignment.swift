import GlassboxIR

/// Where every value of a bound graph lives in the program's arena, and the scratch and
/// derived-weight regions of its nodes: the memory half of lowering, before any kernel is built.
///
/// Arena layout, in floats, every region 16-float (64-byte) aligned:
/// ```
/// [ parameters the program reads | inputs | derived weights | planned buffers … ]
///   0 ..< staticCount                                        staticCount ..< count
/// ```
/// A parameter that kernels only read to derive their own copy (a direct or Winograd
/// convolution's weights, packed or transformed) has no slot (`Storage.derivedOnly`): the
/// derived weights are its only copy.
/// Planned buffers are placed by liveness (`MemoryPlan`) at the schedule's positions; outputs
/// and taps are pinned (never reused). Many values get no buffer of their own (`Storage`):
/// - an alias (`reshape`, `flatten`, inference `dropout`) is its operand's bytes;
/// - a step view (a `select` of one time step of an unrolled LSTM's projection that only
///   cells read) is a strided view of the projection's rows (`stepViews`);
/// - a piece of a placed concatenation is written where the concatenation keeps it
///   (`concatViews`), and the concatenation then copies nothing;
/// - a stack of gate gradients may take its projection's storage (`stacksOverProjections`);
/// - an elementwise result may overwrite an operand nothing reads after, and a blocked
///   convolution its residual (`inPlace`);
/// - a blocked convolution's result that only a max pooling reads is computed inside the
///   pooling's kernel, a few rows at a time in its scratch (`Lowering.pooledConvolution`);
/// - an elementwise function's result that only a linear layer reads is computed inside the
///   layer's kernel, a chunk of rows at a time in its scratch (`Lowering.functionOfInput`).
struct BufferAssignment {
  /// How a value got its storage.
  enum Storage: Equatable {
    /// A parameter or buffer of the graph, in the static region.
    case parameter
    /// A parameter that only kernels deriving their own copy of it read (`Lowering.derivesWeight`:
    /// a direct or Winograd convolution's weights): no slot. `Executable.setParameters` hands
    /// the caller's tensor to those kernels' `prepare`, so the weights live once, as that copy.
    case derivedOnly
    /// A graph input, in the static region.
    case input
    /// A planned buffer of its own.
    case buffer
    /// Nothing reads or exports it: no storage.
    case unused
    /// The bytes of `value` (an aliasing op's operand).
    case alias(of: Int)
    /// Time step `start / rowStride`'s rows of `value`, read at `rowStride` floats apart.
    case stepView(of: Int, start: Int, rowStride: Int)
    /// A piece of the concatenation `value`, from float `start` on (rows `rowStride` apart
    /// when they are not contiguous there).
    case piece(of: Int, start: Int, rowStride: Int?)
    /// A stack of gate gradients in the storage of the projection `value`.
    case stack(over: Int)
    /// An elementwise result written over its operand `value`.
    case inPlace(over: Int)
    /// A convolution's result computed row by row inside the kernel of the max pooling that
    /// reads it, whose result is `value`: no storage.
    case pooled(into: Int)
    /// An elementwise function's result computed a chunk of rows at a time inside the kernel
    /// of the linear layer that reads it, whose result is `value`: no storage.
    case mappedInput(into: Int)

    /// Whether another node's kernel computes the value (no storage of its own).
    var isComputedInside: Bool {
      switch self {
      case .pooled, .mappedInput: true
      default: false
      }
    }
  }

  /// Per value: its offset in floats (-1: no storage).
  let offsets: [Int]
  /// Per value: how it got its storage.
  let storage: [Storage]
  /// Per node: its scratch region (empty when it needs none).
  let scratch: [Range<Int>]
  /// Per node: the offset of what it derives from parameters (`Lowering.persistent`), 0 when
  /// nothing; with `sharesForward`, a forward convolution's region it reads.
  let persistent: [Int]
  /// Per node: whether `persistent` is another node's (an input gradient reading the
  /// transformed weights of the forward convolution by the same weights).
  let sharesForward: [Bool]
  /// Row strides of values whose rows are not contiguous (step views, placed pieces), by
  /// value index; the kernels that read or write them take the stride.
  let rowStrides: [Int: Int]
  /// Nodes that lower to no kernel: their result is already where it belongs (step views,
  /// placed concatenations), or another node's kernel computes it (pooled convolutions, mapped
  /// inputs).
  let needsNoKernel: Set<Int>
  /// Floats of parameters, inputs and derived weights.
  let staticCount: Int
  /// Floats in the arena.
  let count: Int
  /// Floats if no planned buffer shared memory with another (`--stats`).
  let unsharedCount: Int

  /// Assigns storage for `graph` run in `schedule`'s order; `threads` is what each node not in
  /// a lane may use (it sizes scratch).
  init(graph: Graph, schedule: Schedule, threads: Int) {
    let n = graph.values.count
    func count(_ v: ValueID) -> Int { Self.elementCount(graph[v].type) }
    var storage = [Storage](repeating: .buffer, count: n)
    for p in graph.parameters { storage[p.value.index] = .parameter }
    for id in graph.inputs { storage[id.index] = .input }

    // Aliases: ops that keep the bytes (reshape, flatten, dropout in inference) share storage.
    var root = Array(0..<n)
    for node in graph.nodes where node.op.aliasesOperand {
      root[node.results[0].index] = root[node.operands[0].index]
      storage[node.results[0].index] = .alias(of: node.operands[0].index)
    }
    // A step of an LSTM's projection that only cells read is a view of the projection's rows.
    let views = Self.stepViews(graph)
    for (i, v) in views {
      let r = graph.nodes[i].results[0].index, source = graph.nodes[i].operands[0].index
      root[r] = root[source]
      storage[r] = .stepView(of: source, start: v.start, rowStride: v.rowStride)
    }
    // Pieces of a concatenation that are written where it keeps them: each piece, with its
    // aliases, lives in the concatenation's buffer from its start on.
    let placed = Self.concatViews(graph, root: root)
    var shift = [Int](repeating: 0, count: n)
    if !placed.pieces.isEmpty {
      var members = [[Int]](repeating: [], count: n)
      for i in 0..<n { members[root[i]].append(i) }
      for (piece, p) in placed.pieces {
        for i in members[piece] { (root[i], shift[i]) = (p.target, shift[i] + p.start) }
        storage[piece] = .piece(of: p.target, start: p.start, rowStride: p.rowStride)
      }
    }
    // A stack of gate gradients that can take its projection's place does.
    for (stack, projection) in Self.stacksOverProjections(
      graph, root: root, placed: placed, views: views,
      position: schedule.position)
    {
      for i in 0..<n where root[i] == stack { root[i] = projection }
      storage[stack] = .stack(over: projection)
    }
    // Elementwise results written over an operand of their shape that nothing reads after.
    let before = root
    root = Self.inPlace(graph, root: root, shift: shift, views: views, schedule: schedule)
    for node in graph.nodes {
      let r = node.results[0].index
      guard root[r] != before[r], storage[r] == .buffer else { continue }
      let over = node.operands.first { before[$0.index] == root[r] }
      storage[r] = .inPlace(over: over?.index ?? root[r])
    }

    // A convolution that a max pooling takes into its kernel, or an elementwise function a
    // linear layer does: no storage for its result, no kernel of its own; its operands live
    // until the node that takes it runs; a pooling's packed weights are its convolution's.
    var pooledBy: [Int: Int] = [:]  // pooling node index → convolution node index
    var inside: [Int: Int] = [:]  // node index → index of the node its kernel computes
    for (i, node) in graph.nodes.enumerated() {
      if let c = Lowering.pooledConvolution(node, graph) {
        (pooledBy[i], inside[i]) = (c, c)
        storage[graph.nodes[c].results[0].index] = .pooled(into: node.results[0].index)
      } else if let f = Lowering.functionOfInput(node, graph) {
        inside[i] = f
        storage[graph.nodes[f].results[0].index] = .mappedInput(into: node.results[0].index)
      }
    }

    // Static region: parameters this program reads (a folded batch norm's originals are
    // not) other than through a kernel's derived copy, then inputs. A parameter read only as
    // the weights of kernels that derive their own copy of it (`derivesWeight`), by no other
    // node, operand, output or tap, gets no slot: after `prepare` nothing would read it.
    var used = [Bool](repeating: false, count: n), readAsIs = [Bool](repeating: false, count: n)
    for node in graph.nodes {
      let derives = Lowering.derivesWeight(node, graph)
      for (k, o) in node.operands.enumerated() {
        used[o.index] = true
        if k != 1 || !derives { readAsIs[o.index] = true }
      }
    }
    for o in graph.outputs { (used[o.value.index], readAsIs[o.value.index]) = (true, true) }
    for t in graph.taps { for o in t.operands { (used[o.index], readAsIs[o.index]) = (true, true) } }
    var offsets = [Int](repeating: -1, count: n)
    var staticSize = 0
    for p in graph.parameters {
      guard used[p.value.index] else { storage[p.value.index] = .unused; continue }
      guard readAsIs[p.value.index] else { storage[p.value.index] = .derivedOnly; continue }
      offsets[p.value.index] = staticSize
      staticSize += MemoryPlan.round(count(p.value))
    }
    for id in graph.inputs {
      offsets[id.index] = staticSize
      staticSize += MemoryPlan.round(count(id))
    }
    // What kernels derive from parameters (Winograd's transformed weights, a direct
    // convolution's packed weights, an LSTM layer's packed input weights) stays too. An input
    // gradient reads the transformed weights of a Winograd forward convolution by the same weights
    // where both are F(2×2, 3×3) and the forward is plain (a blocked one packs its transform for
    // its own GEMMs: `WinogradConv3x3.packBlocked`; `WinogradConv3x3.Flipped.forward`).
    var persistent = [Int](repeating: 0, count: graph.nodes.count)
    var sharesForward = [Bool](repeating: false, count: graph.nodes.count)
    var transformed: [Int: Int] = [:]  // weight value index → its forward transform's offset
    for (i, node) in graph.nodes.enumerated() {
      let need = Lowering.persistent(node, graph)
      guard need > 0 else { continue }
      let weight = node.operands[1].index
      if node.op == .conv2dBackwardInput, Lowering.winogradTile(node, graph) == 2, let forward = transformed[weight] {
        (persistent[i], sharesForward[i]) = (forward, true)
        continue
      }
      persistent[i] = staticSize
      if node.op == .conv2d && Lowering.winograd(node, graph) && Lowering.winogradTile(node, graph) == 2
        && !Lowering.blocked(node)
      {
        transformed[weight] = staticSize
      }
      staticSize += MemoryPlan.round(need)
    }
    for (pooling, convolution) in pooledBy { persistent[pooling] = persistent[convolution] }

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
      for o in node.operands + node.results + (inside[i].map { graph.nodes[$0].operands } ?? []) {
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
      if storage[i].isComputedInside { continue }
      buffers.append(
        .init(
          count: count(ValueID(i)), first: first[i], last: pinned.contains(i) ? end : last[i],
          lane: laneOf[i]))
      owner.append(i)
    }
    // A node in a lane runs on one core.
    var scratchNeed = [Int](repeating: 0, count: graph.nodes.count)
    for (i, node) in graph.nodes.enumerated() {
      scratchNeed[i] = Lowering.scratch(node, graph, threads: schedule.lane[i] == nil ? threads : 1)
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
    for i in 0..<n where offsets[i] < 0 {
      offsets[i] = offsets[root[i]] < 0 ? -1 : offsets[root[i]] + shift[i]
      if offsets[i] < 0, storage[i] == .buffer { storage[i] = .unused }
    }
    var rowStrides: [Int: Int] = [:]
    for (piece, p) in placed.pieces { if let stride = p.rowStride { rowStrides[piece] = stride } }
    for (i, v) in views {
      let r = graph.nodes[i].results[0].index
      offsets[r] += v.start
      rowStrides[r] = v.rowStride
    }
    self.offsets = offsets
    self.storage = storage
    self.scratch = (0..<graph.nodes.count).map { scratch[$0]..<(scratch[$0] + scratchNeed[$0]) }
    self.persistent = persistent
    self.sharesForward = sharesForward
    self.rowStrides = rowStrides
    needsNoKernel = Set(views.keys).union(placed.concats).union(inside.values)
    staticCount = staticSize
    self.count = staticSize + plan.size
    unsharedCount = staticSize + buffers.reduce(0) { $0 + MemoryPlan.round($1.count) }
  }

  /// Elements of a value of a bound type.
  static func elementCount(_ t: TensorType) -> Int { t.shape.reduce(1) { $0 * ($1.staticValue ?? 1) } }
}

extension BufferAssignment {
  /// Where a step view starts in its projection (floats) and how far apart its rows are.
  typealias StepView = (start: Int, rowStride: Int)
  /// Where a placed piece lives: its concatenation's result (a value index), its start there
  /// (floats) and the stride of its rows when they are not contiguous.
  typealias Piece = (target: Int, start: Int, rowStride: Int?)
  /// Placed concatenations (node indices) and their pieces by root value index.
  typealias Placed = (concats: Set<Int>, pieces: [Int: Piece])

  /// Selects of one time step from `[B, T, G]` (an unrolled LSTM's projection) that only LSTM
  /// cells read, as their gate inputs: by node index, where the step starts in the projection
  /// and the stride of its rows (T·G). They need no copy and no buffer of their own; the
  /// cells read the projection's rows (each copies its gates into scratch first anyway).
  static func stepViews(_ g: Graph) -> [Int: StepView] {
    var readers = [[(node: Int, operand: Int)]](repeating: [], count: g.values.count)
    for (i, node) in g.nodes.enumerated() {
      for (k, o) in node.operands.enumerated() { readers[o.index].append((i, k)) }
    }
    var exported = Set(g.outputs.map(\.value.index))
    for t in g.taps { for o in t.operands { exported.insert(o.index) } }
    var views: [Int: StepView] = [:]
    for (i, node) in g.nodes.enumerated() where node.op == .select {
      let x = Lowering.shape(g, node.operands[0]), r = node.results[0].index
      guard x.count == 3, !exported.contains(r), !readers[r].isEmpty else { continue }
      let a = SelectAttributes(of: node)
      let axis = normalizedAxis(a.axis, rank: 3), index = a.position(size: x[1])
      guard axis == 1, index >= 0, index < x[1],
        readers[r].allSatisfy({ reader in
          let op = g.nodes[reader.node].op
          return (op == .lstmCell && reader.operand == 0) || (op == .lstmCellBackward && reader.operand == 2)
        })
      else { continue }
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
  static func concatViews(_ g: Graph, root: [Int]) -> Placed {
    var exported = Set(g.outputs.map { root[$0.value.index] })
    for t in g.taps { for o in t.operands { exported.insert(root[o.index]) } }
    // Nodes that read a value through its storage (aliasing ops only pass it on).
    var readers = [[Int]](repeating: [], count: g.values.count)
    for (i, node) in g.nodes.enumerated() {
      if node.op.aliasesOperand, root[node.results[0].index] == root[node.operands[0].index] { continue }
      for o in node.operands where readers[root[o.index]].last != i { readers[root[o.index]].append(i) }
    }
    var concats = Set<Int>(), pieces: [Int: Piece] = [:], targets = Set<Int>()
    for (i, node) in g.nodes.enumerated() where node.op == .concat && node.operands.count > 1 {
      let r = node.results[0].index
      let out = Lowering.shape(g, node.results[0])
      let rank = out.count, axis = normalizedAxis(ConcatAttributes(of: node).axis, rank: rank)
      guard root[r] == r, !pieces.keys.contains(r), axis >= 0, axis < rank else { continue }
      let outer = out[..<axis].reduce(1, *), inner = out[(axis + 1)...].reduce(1, *)
      var found: [Int: Piece] = [:]
      var position = 0, ok = true
      for operand in node.operands {
        let v = root[operand.index], width = Lowering.shape(g, operand)[axis]
        defer { position += width }
        guard case .node(let producer, let result) = g[ValueID(v)].origin, !exported.contains(v), pieces[v] == nil,
          found[v] == nil, !targets.contains(v)
        else { ok = false; break }
        let start = position * inner
        if outer == 1 {
          found[v] = (r, start, nil)
          continue
        }
        let p = g.nodes[producer.index]
        guard p.op == .lstmCellBackward, result == 0, readers[v] == [i],
          Lowering.shape(g, ValueID(v)) == [outer, width * inner]
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
  static func stacksOverProjections(
    _ g: Graph, root: [Int], placed: Placed, views: [Int: StepView],
    position: [Int]
  ) -> [(stack: Int, projection: Int)] {
    var exported = Set(g.outputs.map { root[$0.value.index] })
    for t in g.taps { for o in t.operands { exported.insert(root[o.index]) } }
    // Values read other than through a step view (by root).
    var readElsewhere = Set<Int>()
    for (i, node) in g.nodes.enumerated() where views[i] == nil {
      for o in node.operands where !(g.producer(of: o).map { views[$0.index] != nil } ?? false) {
        readElsewhere.insert(root[o.index])
      }
    }
    // Readers of each step view.
    var viewReaders: [Int: [Int]] = [:]
    for (i, node) in g.nodes.enumerated() {
      for o in node.operands {
        if let p = g.producer(of: o), views[p.index] != nil { viewReaders[p.index, default: []].append(i) }
      }
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
          })
        else { return false }
        sources.insert(root[g.nodes[select.index].operands[0].index])
        return true
      }
      guard fits, sources.count == 1, let p = sources.first, !exported.contains(p), !readElsewhere.contains(p),
        !taken.contains(p),
        Lowering.shape(g, ValueID(p)) == Lowering.shape(g, ValueID(stack))
      else { continue }
      taken.insert(p)
      shared.append((stack, p))
    }
    return shared
  }

  /// `root` with the results of elementwise nodes (and some blocked convolutions, over their
  /// residual: `Lowering.overwritableOperands`) that can take the storage of an operand mapped
  /// to that operand's root. Each output element depends only on the same element of such an
  /// operand (the kernels — `Binary`, `Unary`, `FusedElementwise`, `ReluBackward`, the blocked
  /// convolutions' epilogues — read it before they write it), so the result may overwrite an
  /// operand of its own shape that no node reads after this one and nothing exports: a backward
  /// pass's chains of products and sums then reuse one buffer instead of holding each input and
  /// output at once, and a ResNet block's last convolution adds its shortcut in place. Nodes in
  /// a lane group are left alone (their order against the other lane is not fixed), as are
  /// operands and results that are views (of a step, of a concatenation).
  static func inPlace(
    _ g: Graph, root: [Int], shift: [Int], views: [Int: StepView],
    schedule: Schedule
  ) -> [Int] {
    let n = g.values.count
    var root = root
    var exported = Set(g.outputs.map { root[$0.value.index] })
    for t in g.taps { for o in t.operands { exported.insert(root[o.index]) } }
    let isView = (0..<n).map { i in
      shift[i] != 0 || (g.producer(of: ValueID(i)).map { views[$0.index] != nil } ?? false)
    }
    var lastRead = [Int](repeating: -1, count: n)
    for (i, node) in g.nodes.enumerated() {
      for o in node.operands { lastRead[root[o.index]] = Swift.max(lastRead[root[o.index]], schedule.position[i]) }
    }
    var members = [[Int]](repeating: [], count: n)
    for i in 0..<n { members[root[i]].append(i) }
    for i in g.nodes.indices.sorted(by: { schedule.position[$0] < schedule.position[$1] }) {
      let node = g.nodes[i], r = node.results[0].index
      // A result that is a view already shares another value's storage: root[r] ≠ r.
      let candidates = Lowering.overwritableOperands(node, g)
      guard !candidates.isEmpty, schedule.lane[i] == nil, root[r] == r, !exported.contains(r),
        g[node.results[0]].type.dtype == .f32
      else { continue }
      let p = schedule.position[i]
      for k in candidates {
        let o = node.operands[k], v = root[o.index]
        guard g[o].type == g[node.results[0]].type, v != r, !isView[o.index], !exported.contains(v), lastRead[v] == p,
          case .node = g[ValueID(v)].origin
        else { continue }
        // Nothing else of this node reads that storage under another shape (a broadcast); a
        // convolution reads it as nothing but its residual (not also as its input).
        let elementwise = node.op.writesOverOperand
        guard
          node.operands.indices.allSatisfy({ j in
            j == k || root[node.operands[j].index] != v || (elementwise && g[node.operands[j]].type == g[o].type)
          })
        else { continue }
        for m in members[r] { root[m] = v }
        members[v] += members[r]
        members[r] = []
        lastRead[v] = Swift.max(lastRead[v], lastRead[r])
        break
      }
    }
    return root
  }
}
