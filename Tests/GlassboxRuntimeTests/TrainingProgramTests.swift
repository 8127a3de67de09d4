import GlassboxIR
import GlassboxPasses
import GlassboxReference
@testable import GlassboxRuntime
import Testing

/// Training programs (forward, loss and every parameter gradient) compiled to f32 kernels
/// against the same graph on the Float64 reference interpreter, whose gradient rules the
/// finite-difference checks cover.
struct TrainingProgramTests {
  static let specs: [String: String] = [
    "bilstm_attention": """
    graph g(mfcc: f32[B, 5, 3]) -> (logits: f32[B, 4]) {
      lstm = lstm(mfcc, hidden: 2, bidirectional: true)
      attention = linear(tanh(lstm), out: 1)
      weights = softmax(reshape(attention, shape: [B, 5]), axis: 1)
      context = sum(mul(lstm, reshape(weights, shape: [B, 5, 1])), axes: [1])
      logits = linear(dropout(context, p: 0.5), out: 4)
    }
    """,
    "cnn": """
    graph g(image: f32[B, 3, 9, 8]) -> (logits: f32[B, 4]) {
      conv1 = conv2d(image, out: 6, kernel: 3, stride: 2, padding: 1, bias: false)
      bn1 = batch_norm(conv1)
      pool = max_pool2d(relu(bn1), kernel: 3, stride: 2, padding: 1)
      conv2 = conv2d(pool, out: 6, kernel: 3, padding: 1, groups: 2, bias: false)
      merged = relu(add(batch_norm(conv2) @bn2, pool))
      avg = avg_pool2d(merged, kernel: 2, stride: 1)
      features = flatten(global_avg_pool2d(avg))
      logits = linear(features, out: 4)
    }
    """,
    "layer_norm": """
    graph g(x: f32[B, 4, 6]) -> (logits: f32[B, 3]) {
      norm = layer_norm(x)
      logits = linear(sum(relu(layer_norm(linear(norm, out: 5), axis: -2, bias: false)), axes: [1]), out: 3)
    }
    """,
    "lrn": """
    graph g(image: f32[B, 3, 6, 5]) -> (logits: f32[B, 3]) {
      conv = relu(conv2d(image, out: 6, kernel: 3, padding: 1))
      norm = lrn(conv, size: 5, alpha: 0.5, beta: 0.75, bias: 2)
      logits = linear(flatten(global_avg_pool2d(lrn(norm, size: 2, alpha: 1, beta: 0.4))), out: 3)
    }
    """,
    "mlp": """
    graph g(x: f32[B, 6]) -> (logits: f32[B, 3]) {
      h = relu(linear(x, out: 5))
      s = sigmoid(linear(h, out: 5))
      logits = linear(add(mul(s, h), log_softmax(h, axis: 1)), out: 3)
    }
    """,
  ]

  static func inputs(_ program: TrainingProgram) -> [String: Tensor] {
    let g = program.graph
    var out: [String: Tensor] = [:]
    for id in g.inputs {
      let v = g[id]
      let shape = v.type.shape.map { $0.staticValue ?? 1 }
      let u = DeterministicTensors.values("input:" + v.name, count: shape.reduce(1, *))
      if v.type.dtype == .i64 {
        out[v.name] = Tensor(shape: shape, storage: .i64(u.map { Int64(($0 + 1) * 1.5) }))
      } else if program.dropoutMasks.contains(where: { $0.input == v.name }) {
        out[v.name] = Tensor(shape: shape, f32: u.map { $0 > 0 ? 2 : 0 })
      } else {
        out[v.name] = Tensor(shape: shape, f32: u)
      }
    }
    return out
  }

  @Test(arguments: specs.keys.sorted())
  func compiledMatchesReference(_ name: String) throws {
    let graph = try Spec.checkedGraph(
      SourceText(fileName: "\(name).graph", text: try #require(Self.specs[name])),
      bindings: ["B": 3])
    let program = try TrainingProgram.make(from: graph, logits: "logits")
    #expect(Verifier.verify(program.graph).isEmpty)
    #expect(program.graph.outputs.first?.name == "loss")
    let parameters = DeterministicTensors.parameters(of: program.graph)
    let inputs = Self.inputs(program)
    var reference = ReferenceInterpreter(graph: program.graph)
    let expected = try reference.run(inputs: inputs, parameters: parameters)
    let executable = try Executable(graph: program.graph, parameters: parameters, threads: 1)
    let actual = try executable.run(inputs: inputs)
    for (output, value) in program.graph.outputs {
      let e = try #require(expected[program.graph[value].name])
      let a = try #require(actual[output])
      let scale = e.doubles.reduce(1e-3) { max($0, abs($1)) }
      let diff = zip(a.doubles, e.doubles).reduce(0.0) { max($0, abs($1.0 - $1.1)) }
      #expect(a.shape == e.shape && diff <= 1e-4 * scale, "\(name).\(output): max difference \(diff) (scale \(scale))")
    }
    #expect(program.gradients.count == graph.parameters.filter { $0.role == .trainable }.count)
    #expect(program.batchNormUpdates.count == graph.nodes.filter { $0.op == .batchNorm }.count)
  }

  /// The gate gradients of an unrolled LSTM's steps are stacked once per direction, for the
  /// projection's weight gradient and the recurrent weight's alike, and the backward cells
  /// write them where the stack keeps them (`BufferAssignment.concatViews`): the stack copies
  /// nothing, its rows T·4H apart for several sequences, one after another for one; and the
  /// stack lives where the projection the cells read does (`stacksOverProjections`). The
  /// gradients still match the Float64 reference.
  @Test(arguments: [1, 3]) func gateGradientsStackInPlace(batch: Int) throws {
    let graph = try Spec.checkedGraph(
      SourceText(fileName: "bilstm_attention.graph", text: try #require(Self.specs["bilstm_attention"])),
      bindings: ["B": batch])
    let program = try TrainingProgram.make(from: graph, logits: "logits")
    let g = program.graph
    let gates = 8, steps = 5  // 4 × hidden 2
    var readers = [[Op]](repeating: [], count: g.values.count)
    for node in g.nodes { for o in node.operands { readers[o.index].append(node.op) } }
    let stacks = g.nodes.indices.filter { i in
      g.nodes[i].op == .concat && g[g.nodes[i].results[0]].type.shape.map(\.staticValue) == [batch, steps, gates]
    }
    #expect(stacks.count == 2)
    let parameters = DeterministicTensors.parameters(of: g)
    let executable = try Executable(graph: g, parameters: parameters, threads: 1)
    for s in stacks {
      let result = g.nodes[s].results[0]
      // Read by the input weight's and the recurrent weight's gradients (and the bias's sum).
      #expect(readers[result.index].filter { $0 == .linearBackwardWeight }.count == 2)
      #expect(!executable.program.contains("concat \(g[result].name)"))
      for (t, piece) in g.nodes[s].operands.enumerated() {
        let reshape = try #require(g.producer(of: piece).map { g.nodes[$0.index] })
        let cell = try #require(g.producer(of: reshape.operands[0]).map { g.nodes[$0.index] })
        #expect(reshape.op == .reshape && cell.op == .lstmCellBackward)
        #expect(executable.offsets[reshape.operands[0].index] == executable.offsets[result.index] + t * gates)
        // Backward cell t reads step t of the projection: the floats it overwrites.
        let select = try #require(g.producer(of: cell.operands[2]).map { g.nodes[$0.index] })
        #expect(select.op == .select && SelectAttributes(of: select).index == t)
        #expect(executable.offsets[select.operands[0].index] == executable.offsets[result.index])
      }
    }
    let inputs = Self.inputs(program)
    var reference = ReferenceInterpreter(graph: g)
    let expected = try reference.run(inputs: inputs, parameters: parameters)
    let actual = try executable.run(inputs: inputs)
    for (output, value) in g.outputs {
      let e = try #require(expected[g[value].name]), a = try #require(actual[output])
      let scale = e.doubles.reduce(1e-3) { max($0, abs($1)) }
      let diff = zip(a.doubles, e.doubles).reduce(0.0) { max($0, abs($1.0 - $1.1)) }
      #expect(
        a.shape == e.shape && diff <= 1e-4 * scale, "B=\(batch) \(output): max difference \(diff) (scale \(scale))")
    }
  }

  /// Two backward passes through the same unrolled LSTM (two seeds, differentiated one after
  /// the other, as two taps would be): the first pass's stacks of gate gradients must not take
  /// the projection's place while the second still reads its gates there.
  @Test(arguments: [1, 3]) func twoBackwardPassesReadTheirGates(batch: Int) throws {
    let spec = """
      graph g(mfcc: f32[B, 5, 3]) -> (logits: f32[B, 4]) {
        lstm = lstm(mfcc, hidden: 2, bidirectional: true)
        logits = linear(sum(lstm, axes: [1]), out: 4)
      }
      """
    var module = Module(
      graph: try Spec.checkedGraph(SourceText(fileName: "two.graph", text: spec), bindings: ["B": batch]))
    #expect(UnrollLSTM().run(&module))
    var g = module.graph
    let logits = try #require(g.outputs.first?.value), x = try #require(g.inputs.first)
    var gradients: [ValueID] = []
    for k in 0..<2 {
      let seed = g.addInput(name: "seed\(k)", type: g[logits].type)
      let (dg, grads) = try Differentiate.apply(to: g, seeds: [(logits, seed)], wrt: [x])
      g = dg
      gradients += grads
    }
    g.outputs += gradients.enumerated().map { ("dx\($0.offset)", $0.element) }
    let parameters = DeterministicTensors.parameters(of: g)
    var inputs: [String: Tensor] = [:]
    for id in g.inputs {
      let shape = g[id].type.shape.map { $0.staticValue ?? 1 }
      inputs[g[id].name] = DeterministicTensors.tensor("input:" + g[id].name, shape: shape)
    }
    var reference = ReferenceInterpreter(graph: g)
    let expected = try reference.run(inputs: inputs, parameters: parameters)
    for threads in [1, 2] {
      let actual = try Executable(graph: g, parameters: parameters, threads: threads).run(inputs: inputs)
      for (output, value) in g.outputs {
        let e = try #require(expected[g[value].name]), a = try #require(actual[output])
        let scale = e.doubles.reduce(1e-3) { max($0, abs($1)) }
        let diff = zip(a.doubles, e.doubles).reduce(0.0) { max($0, abs($1.0 - $1.1)) }
        #expect(
          diff <= 1e-4 * scale, "B=\(batch), \(threads) threads, \(output): max difference \(diff) (scale \(scale))")
      }
    }
  }

  /// The two directions of a bidirectional LSTM, forward and backward through time, run side
  /// by side (`Schedule`): the same bits as one after the other, and no lane writes memory
  /// the other lane touches. Hidden 9 and batch 3 leave vector tails in the cells.
  @Test func directionsRunSideBySide() throws {
    let spec = """
      graph g(mfcc: f32[B, 6, 3]) -> (logits: f32[B, 4]) {
        lstm = lstm(mfcc, hidden: 9, bidirectional: true)
        attention = linear(tanh(lstm), out: 1)
        weights = softmax(reshape(attention, shape: [B, 6]), axis: 1)
        context = sum(mul(lstm, reshape(weights, shape: [B, 6, 1])), axes: [1])
        logits = linear(context, out: 4)
      }
      """
    let graph = try Spec.checkedGraph(SourceText(fileName: "lanes.graph", text: spec), bindings: ["B": 3])
    let program = try TrainingProgram.make(from: graph, logits: "logits")
    let g = program.graph
    let parameters = DeterministicTensors.parameters(of: g)
    let inputs = Self.inputs(program)
    let one = try Executable(graph: g, parameters: parameters, threads: 1)
    let two = try Executable(graph: g, parameters: parameters, threads: 2)
    #expect(one.schedule.groups.isEmpty)
    // Forward cells of each direction, then their backward cells: two groups, each lane a
    // direction's six cells and what feeds and reads only them.
    let groups = two.schedule.groups
    #expect(groups.count == 2)
    for lanes in groups {
      for l in lanes {
        let ops = l.map { g.nodes[$0].op }
        #expect(ops.filter { $0 == .lstmCell || $0 == .lstmCellBackward }.count == 6)
        #expect(ops.contains(.concat) && (ops.contains(.select) || ops.contains(.slice)))
      }
    }
    #expect(two.program.filter { $0.hasPrefix("lanes ") }.count == 2)

    // Memory: what a lane writes (results, scratch) is disjoint from all the other touches.
    func count(_ v: ValueID) -> Int { g[v].type.shape.reduce(1) { $0 * ($1.staticValue ?? 1) } }
    for lanes in groups {
      func ranges(_ nodes: [Int], written: Bool) -> [Range<Int>] {
        nodes.flatMap { i -> [Range<Int>] in
          let node = g.nodes[i]
          let values = written ? node.results : node.operands + node.results
          return values.map { two.offsets[$0.index]..<(two.offsets[$0.index] + count($0)) } + [two.scratchRanges[i]]
        }.filter { !$0.isEmpty }
      }
      for (l, m) in [(0, 1), (1, 0)] {
        for w in ranges(lanes[l], written: true) {
          for t in ranges(lanes[m], written: false) {
            #expect(!w.overlaps(t), "lane \(l) writes \(w), lane \(m) touches \(t)")
          }
        }
      }
    }

    let a = try one.run(inputs: inputs), b = try two.run(inputs: inputs)
    var reference = ReferenceInterpreter(graph: g)
    let expected = try reference.run(inputs: inputs, parameters: parameters)
    for (output, value) in g.outputs {
      let x = try #require(a[output]), y = try #require(b[output]), e = try #require(expected[g[value].name])
      let same = x.floats == y.floats
      #expect(same, "\(output) differs between one core and two")
      let scale = e.doubles.reduce(1e-3) { max($0, abs($1)) }
      let diff = zip(y.doubles, e.doubles).reduce(0.0) { max($0, abs($1.0 - $1.1)) }
      #expect(diff <= 1e-4 * scale, "\(output): max difference \(diff) (scale \(scale))")
    }
  }
}
