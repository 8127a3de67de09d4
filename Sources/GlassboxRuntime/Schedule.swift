import Dispatch
import GlassboxIR

/// The order a program's nodes run in, and which of them run side by side on two cores.
///
/// An unrolled bidirectional LSTM is two chains of small cells (B = 32, H = 32: a 32×128×32
/// product and a few hundred floats of state each, too small to split over cores) that do
/// not read each other — forward and reverse direction, and again in backpropagation through
/// time. Run one after the other they leave a core idle for a third of a training step. The
/// schedule finds such chains and runs each pair as one *group* of two *lanes*, one per core:
///
/// ```
/// proj, proj_r, [x0, h0, x1, h1, …, seq pieces  ‖  x767_r, h767_r, …, seq_r pieces], lstm = concat(seq, seq_r), …
/// ```
/// A chain is the cells linked by their state (directly, or through one light node such as
/// the add that accumulates `dh`), plus light nodes that feed only the chain (the per-step
/// select of the projection, the slices of the output gradient) and light nodes that read
/// only the chain and what runs before the group (the concat of the chain's outputs). Two
/// chains pair when neither reaches the other and nothing outside them is both upstream and
/// downstream of the pair; the group then runs after everything it reads, and the rest keeps
/// its order. Each lane is the same kernels in the same order on one core, so the results are
/// the same bits as running them one after the other.
///
/// Liveness (`positions`): a group spans as many positions as its longer lane, each lane's
/// nodes at the group's start plus their index in the lane. A buffer used by one lane only
/// is live over its lane positions and never shares memory with the other lane's buffers
/// (`MemoryPlan.Buffer.lane`); a buffer that crosses the group's boundary is live over the
/// whole group.
struct Schedule {
  /// A lane of a group.
  struct Lane: Hashable {
    var group: Int, index: Int
  }
  /// One step of the program: a node on its own, or a group (its lanes side by side).
  enum Step: Equatable {
    case node(Int), group(Int)
  }

  /// The program in run order.
  var steps: [Step]
  /// Per node: its lane, if it runs in one.
  var lane: [Lane?]
  /// Per group: the node indices of each lane, in run order.
  var groups: [[[Int]]]
  /// Per node: its liveness position.
  var position: [Int]
  /// Per group: its first position and its last (inclusive).
  var spans: [ClosedRange<Int>]
  /// Positions in all.
  var positions: Int

  /// The program order with nothing side by side.
  static func sequential(_ count: Int) -> Schedule {
    Schedule(
      steps: (0..<count).map(Step.node), lane: Array(repeating: nil, count: count), groups: [],
      position: Array(0..<count), spans: [], positions: count)
  }

  static func make(_ g: Graph, threads: Int) -> Schedule {
    let count = g.nodes.count
    guard threads >= 2 else { return sequential(count) }
    let cells = (0..<count).filter { [.lstmCell, .lstmCellBackward].contains(g.nodes[$0].op) }
    guard cells.count >= 2 else { return sequential(count) }

    var producer = [Int](repeating: -1, count: g.values.count)
    for (i, node) in g.nodes.enumerated() { for r in node.results { producer[r.index] = i } }
    var consumers = [[Int]](repeating: [], count: count)
    for (i, node) in g.nodes.enumerated() {
      for o in node.operands where producer[o.index] >= 0 { consumers[producer[o.index]].append(i) }
    }
    var exported = [Bool](repeating: false, count: count)  // results read by the caller
    for o in g.outputs where producer[o.value.index] >= 0 { exported[producer[o.value.index]] = true }
    for t in g.taps { for o in t.operands where producer[o.index] >= 0 { exported[producer[o.index]] = true } }
    func producers(_ n: Int) -> [Int] { g.nodes[n].operands.map { producer[$0.index] }.filter { $0 >= 0 } }
    func isLight(_ n: Int) -> Bool { g.nodes[n].op.isLight }

    // Chains: cells linked by their state, directly or through one light node.
    var parent = Array(0..<count)
    func find(_ x: Int) -> Int {
      var x = x
      while parent[x] != x { parent[x] = parent[parent[x]]; x = parent[x] }
      return x
    }
    // The state a cell reads: `h`, `c` of a forward cell; `dh`, `dc` of a backward one (a
    // backward cell also reads the forward cell's saved state, which does not link them).
    for c in cells {
      let op = g.nodes[c].op, state = op == .lstmCell ? [1, 2] : [0, 1]
      for o in state {
        let p = producer[g.nodes[c].operands[o].index]
        guard p >= 0 else { continue }
        if g.nodes[p].op == op { parent[find(c)] = find(p); continue }
        guard isLight(p) else { continue }
        for q in producers(p) where g.nodes[q].op == op { parent[find(c)] = find(q) }
      }
    }
    var chains: [Int: [Int]] = [:]
    for c in cells { chains[find(c), default: []].append(c) }

    // Each chain with the light nodes that feed only it.
    var segments: [Set<Int>] = []
    for members in chains.values where members.count >= 2 {
      var segment = Set(members)
      var work = members
      while let n = work.popLast() {
        for p in producers(n)
        where !segment.contains(p) && isLight(p) && !exported[p]
          && consumers[p].allSatisfy({ segment.contains($0) })
        {
          segment.insert(p)
          work.append(p)
        }
      }
      segments.append(segment)
    }

    var order = Array(0..<count)
    var lane = [Lane?](repeating: nil, count: count)
    var groups: [[[Int]]] = []
    var rank = [Int](repeating: 0, count: count)  // position in `order`
    func rerank() { for (r, n) in order.enumerated() { rank[n] = r } }
    rerank()
    segments.sort { $0.map { rank[$0] }.min()! < $1.map { rank[$0] }.min()! }

    func reach(from start: Set<Int>, _ next: (Int) -> [Int]) -> Set<Int> {
      var seen = Set<Int>(), work = Array(start)
      while let n = work.popLast() {
        for m in next(n) where !start.contains(m) && seen.insert(m).inserted { work.append(m) }
      }
      return seen
    }

    var s = 0
    while s + 1 < segments.count {
      var a = segments[s], b = segments[s + 1]
      let both = a.union(b)
      let down = reach(from: both, { consumers[$0] }), up = reach(from: both, producers)
      guard down.isDisjoint(with: up), reach(from: a, { consumers[$0] }).isDisjoint(with: b),
        reach(from: b, { consumers[$0] }).isDisjoint(with: a),
        both.allSatisfy({ lane[$0] == nil })
      else { s += 1; continue }
      // Light nodes that feed one lane and otherwise only what runs after the group join it
      // (the per-step selects of the projection, which backpropagation reads again later).
      for (l, members) in [a, b].enumerated() {
        var segment = members, work = Array(members)
        while let n = work.popLast() {
          for p in producers(n)
          where !segment.contains(p) && !both.contains(p) && isLight(p) && up.contains(p)
            && consumers[p].allSatisfy({ segment.contains($0) || down.contains($0) })
          {
            segment.insert(p)
            work.append(p)
          }
        }
        if l == 0 { a = segment } else { b = segment }
      }
      // What runs before the group: everything it reads, and what came before its last node
      // and does not read it.
      let last = both.map { rank[$0] }.max()!
      let before = Set(order.filter { !both.contains($0) && !down.contains($0) && rank[$0] < last }).union(up)
        .subtracting(a.union(b))
      // Light nodes that read only one lane and what runs before join that lane, in order.
      for n in order where down.contains(n) && isLight(n) && lane[n] == nil {
        let from = producers(n)
        if from.allSatisfy({ a.contains($0) || before.contains($0) }) && from.contains(where: { a.contains($0) }) {
          a.insert(n)
        } else if from.allSatisfy({ b.contains($0) || before.contains($0) }) && from.contains(where: { b.contains($0) })
        {
          b.insert(n)
        }
      }
      let group = groups.count
      let lanes = [order.filter { a.contains($0) }, order.filter { b.contains($0) }]
      for (l, nodes) in lanes.enumerated() { for n in nodes { lane[n] = Lane(group: group, index: l) } }
      groups.append(lanes)
      let inGroup = a.union(b)
      order =
        order.filter { before.contains($0) } + lanes[0] + lanes[1]
        + order.filter { !before.contains($0) && !inGroup.contains($0) }
      rerank()
      s += 2
    }
    guard !groups.isEmpty else { return sequential(count) }

    // The steps (a group where its first node was) and the liveness positions.
    var steps: [Step] = [], position = [Int](repeating: 0, count: count)
    var spans = [ClosedRange<Int>](repeating: 0...0, count: groups.count)
    var p = 0
    for n in order {
      guard let l = lane[n] else { steps.append(.node(n)); position[n] = p; p += 1; continue }
      guard steps.last != .group(l.group) else { continue }
      steps.append(.group(l.group))
      for nodes in groups[l.group] { for (k, m) in nodes.enumerated() { position[m] = p + k } }
      let span = groups[l.group].map(\.count).max()!
      spans[l.group] = p...(p + span - 1)
      p += span
    }
    return Schedule(steps: steps, lane: lane, groups: groups, position: position, spans: spans, positions: p)
  }
}

extension Op {
  /// Whether a chain of LSTM cells may take the op in besides its cells (`Schedule`): a copy
  /// or small arithmetic whose kernel does not split its work over cores, so it can run in a
  /// lane on one core.
  var isLight: Bool {
    switch self {
    case .select, .slice, .add, .constant, .concat, .reshape: true
    case .conv2d, .maxPool2d, .avgPool2d, .globalAvgPool2d, .batchNorm, .linear, .matmul, .batchMatmul, .sub,
      .mul, .div, .relu, .sigmoid, .tanh, .softmax, .logSoftmax, .sum, .mean, .max, .flatten, .transpose,
      .split, .pad, .lstm, .lstmCell, .dropout, .crossEntropy, .fusedElementwise, .classSeed, .reluBackward,
      .linearBackwardWeight, .sliceBackward, .maxBackward, .lstmCellBackward, .crossEntropyBackward,
      .conv2dBackwardInput, .conv2dBackwardWeight, .maxPool2dBackward, .avgPool2dBackward, .batchNormTrain,
      .batchNormTrainBackward, .layerNorm, .layerNormBackward, .lrn, .lrnBackward,
      .exp, .log, .sqrt, .abs, .erf, .pow, .maximum, .minimum, .toBlocked, .fromBlocked:
      false
    }
  }
}

/// A group of the schedule: each lane's kernels in order, the two lanes on two cores.
struct LaneGroup: Kernel {
  var lanes: [[any Kernel]]

  var label: String {
    "lanes " + lanes.map { l in l.first.map { "\($0.label) …(\(l.count))" } ?? "(empty)" }.joined(separator: " ‖ ")
  }

  func run(_ a: UnsafeMutablePointer<Float>) {
    let base = UnsafeSendable(a)
    parallelFor(lanes.count) { l in
      for k in lanes[l] { k.run(base.pointer) }
    }
  }

  func prepare(_ a: UnsafeMutablePointer<Float>, callers: CallerParameters) {
    for l in lanes { for k in l { k.prepare(a, callers: callers) } }
  }
  var gemms: [GEMMShape] { lanes.flatMap { $0.flatMap(\.gemms) } }
}
