import GlassboxIR

/// A training step compiled from a model graph: forward in training mode (batch norm on batch
/// statistics, dropout as a multiplication by a mask input), mean cross-entropy loss against
/// an i64[B] input named `target`, and the gradient of the loss for every trainable parameter.
///
/// ```
/// graph m(x) -> (logits) {            graph m.train(x, dropout.d.mask, target) -> (loss, logits, grad.w…, bn stats…) {
///   d = dropout(h, p: 0.5)      →       d = mul(h, dropout.d.mask)            # mask: Bernoulli(1−p)/(1−p), fed by the trainer
///   bn = batch_norm(x, …)               bn, bn.batch_mean, bn.batch_var = batch_norm_train(x, w, b)
///   lstm = lstm(x, …)                   lstm.proj = linear(x, w_ih, …); lstm.h0, lstm.c0 = lstm_cell(…) …
/// }                                     loss = cross_entropy(logits, target); grad.* = …
/// ```
/// LSTMs are narrowed to the last step where only it is read and unrolled (backpropagation
/// through time over fused cells, the input projection one GEMM over all steps); a ReLU that
/// reads a batch norm joins it (`FuseBatchNormReLU`); taps are dropped (a training step
/// computes none).
public struct TrainingProgram {
  /// Outputs: "loss" f32[], the model's outputs, then gradients and batch statistics.
  public var graph: Graph
  /// Parameter name → output name (`grad.<param>`).
  public var gradients: [(parameter: String, output: String)]
  /// Mask inputs the trainer feeds with Bernoulli(1 − p)/(1 − p) samples of `shape`.
  public var dropoutMasks: [(input: String, shape: TensorType, p: Double)]
  /// Buffer names and the outputs holding this batch's per-channel mean and *biased* variance;
  /// `count` is the number of elements each statistic averaged (N·H·W), so the trainer can
  /// apply PyTorch's momentum-0.1 update with the unbiased variance `var·count/(count − 1)`.
  public var batchNormUpdates:
    [(
      runningMean: String, runningVar: String, batchesTracked: String,
      batchMean: String, batchVar: String, count: Int?
    )]

  /// Why a graph cannot become a training program.
  public struct BuildError: Error, CustomStringConvertible {
    public var description: String
  }

  /// Builds the training step of `graph`, whose output (or value) named `logits` is `[B, C]`.
  /// With `inputGradients`, the loss's gradients for the floating-point model inputs follow the
  /// parameter gradients as outputs `grad.<input>` (saliency; gradient checks).
  public static func make(from graph: Graph, logits: String, inputGradients: Bool = false) throws -> TrainingProgram {
    guard let logitsValue = graph.outputs.first(where: { $0.name == logits })?.value ?? graph.value(named: logits)
    else {
      throw BuildError(description: "training: the graph has no output or value named '\(logits)'")
    }
    let lt = graph[logitsValue].type
    guard lt.rank == 2, lt.dtype.isFloatingPoint else {
      throw BuildError(description: "training: logits '\(logits)' must be floating point [B, C], found \(lt)")
    }

    // 1. Training-mode forward, with the mask and target inputs first.
    var g = Graph(name: "\(graph.name).train")
    g.scopes = graph.scopes
    g.recipes = graph.recipes
    var map = [Int](repeating: -1, count: graph.values.count)
    for id in graph.inputs { map[id.index] = g.addInput(name: graph[id].name, type: graph[id].type).index }
    var masks: [(input: String, shape: TensorType, p: Double)] = []
    var maskOf: [Int: ValueID] = [:]
    var names = FreshNames(graph)
    func fresh(_ base: String) -> String { names.make(base) }
    for (i, node) in graph.nodes.enumerated() where node.op == .dropout && DropoutAttributes(of: node).p > 0 {
      let name = fresh("\(graph[node.results[0]].name).mask")
      let type = graph[node.operands[0]].type
      maskOf[i] = g.addInput(name: name, type: type)
      masks.append((name, type, DropoutAttributes(of: node).p))
    }
    let target = g.addInput(name: fresh("target"), type: TensorType(.i64, [lt.shape[0]]))
    var seen = Set<Int>()
    var statistics: [(ValueID, ValueID)] = []
    var updates:
      [(
        runningMean: String, runningVar: String, batchesTracked: String,
        batchMean: String, batchVar: String, count: Int?
      )] = []
    for (i, v) in graph.values.enumerated() {
      switch v.origin {
      case .input: continue
      case .parameter(let p):
        let param = graph.parameters[p]
        map[i] =
          g.addParameter(name: param.name, type: param.type, role: param.role, initializer: param.initializer).index
      case .node(let n, _):
        guard seen.insert(n.index).inserted else { continue }
        let node = graph.nodes[n.index]
        let operands = node.operands.map { ValueID(map[$0.index]) }
        let results = node.results.map { (graph[$0].name, graph[$0].type) }
        var ids: [ValueID]
        switch node.op {
        case .dropout:
          if let mask = maskOf[n.index] {
            ids = g.addNode(
              .mul, operands: [operands[0], mask], attributes: NoAttributes(), results: results,
              location: node.location)
          } else {
            ids = [operands[0]]
          }
        case .batchNorm:
          // Batch statistics; the buffers are only updated by the trainer, from the outputs.
          let name = graph[node.results[0]].name
          let xt = graph[node.operands[0]].type
          let channel = TensorType(xt.dtype, [xt.shape[1]])
          let meanName = fresh("\(name).batch_mean"), varName = fresh("\(name).batch_var")
          let r = g.addNode(
            .batchNormTrain, operands: Array(operands[0..<3]),
            attributes: BatchNormTrainAttributes(
              eps: BatchNormAttributes(of: node).eps,
              activation: .none),
            results: results + [(meanName, channel), (varName, channel)], location: node.location)
          ids = [r[0]]
          statistics.append((r[1], r[2]))
          let perChannel = xt.elementCount.flatMap { $0.divided(by: xt.shape[1]) }?.staticValue
          updates.append(
            (
              graph[node.operands[3]].name, graph[node.operands[4]].name, graph[node.operands[5]].name,
              meanName, varName, perChannel
            ))
        // The same in training as in inference.
        case .conv2d, .maxPool2d, .avgPool2d, .globalAvgPool2d, .linear, .matmul, .batchMatmul, .add, .sub, .mul,
          .div, .relu, .sigmoid, .tanh, .softmax, .logSoftmax, .sum, .mean, .max, .reshape, .flatten, .transpose,
          .concat, .slice, .select, .split, .pad, .lstm, .lstmCell, .crossEntropy, .constant, .fusedElementwise,
          .classSeed, .reluBackward, .linearBackwardWeight, .sliceBackward, .maxBackward, .lstmCellBackward,
          .crossEntropyBackward, .conv2dBackwardInput, .conv2dBackwardWeight, .maxPool2dBackward,
          .avgPool2dBackward, .batchNormTrain, .batchNormTrainBackward, .layerNorm, .layerNormBackward, .lrn,
          .lrnBackward,
          .exp, .log, .sqrt, .abs, .erf, .pow, .maximum, .minimum, .toBlocked, .fromBlocked:
          ids = g.addNode(
            node.op, operands: operands, attributes: node.attributes, results: results,
            location: node.location)
        }
        for (old, new) in zip(node.results, ids) { map[old.index] = new.index }
      }
    }
    let loss = g.addNode(
      .crossEntropy, operands: [ValueID(map[logitsValue.index]), target], attributes: NoAttributes(),
      results: [(fresh("loss"), TensorType(lt.dtype, []))])[0]
    g.outputs = [("loss", loss)] + graph.outputs.map { ($0.name, ValueID(map[$0.value.index])) }
    for (mean, variance) in statistics { g.outputs += [(g[mean].name, mean), (g[variance].name, variance)] }

    // 2. LSTMs: last step only where that is all that is read, then unrolled; ReLUs after
    // batch norms folded into them (their gradient then needs no pass of its own).
    var module = Module(graph: g)
    Pipeline.run([NarrowLSTMToLastStep(), UnrollLSTM(), FuseBatchNormReLU(), EliminateDeadCode()], on: &module)
    g = module.graph
    guard let lossID = g.outputs.first?.value else { throw BuildError(description: "training: lost the loss") }

    // 3. Gradients of the loss for every trainable parameter.
    let trainable = g.parameters.filter { $0.role == .trainable }
    let one = g.addNode(
      .constant, operands: [], attributes: ConstantAttributes(value: 1, shape: [], dtype: lt.dtype),
      results: [(fresh("loss.seed"), TensorType(lt.dtype, []))])[0]
    let modelInputs =
      inputGradients
      ? graph.inputs.filter { graph[$0].type.dtype.isFloatingPoint }.compactMap { g.value(named: graph[$0].name) } : []
    let (dg, grads) = try Differentiate.apply(to: g, seeds: [(lossID, one)], wrt: trainable.map(\.value) + modelInputs)
    g = dg
    var gradients: [(parameter: String, output: String)] = []
    let statisticOutputs = g.outputs.count - statistics.count * 2
    var ordered = Array(g.outputs[..<statisticOutputs])
    for (p, grad) in zip(trainable, grads) {
      let name = "grad.\(p.name)"
      ordered.append((name, grad))
      gradients.append((p.name, name))
    }
    for (input, grad) in zip(modelInputs, grads.dropFirst(trainable.count)) {
      ordered.append(("grad.\(g[input].name)", grad))
    }
    g.outputs = ordered + g.outputs[statisticOutputs...]

    // 4. Broadcasts of gradients (a sum's backward adds zeros) folded into the products that
    // read them, then the backward's elementwise chains (tanh′ = dy·(1 − t²), the softmax
    // gradient's products) in one pass over memory each instead of one per op, each made
    // just before it is read.
    module = Module(graph: g)
    Pipeline.run([SimplifyAlgebra(), FuseElementwise(), EliminateDeadCode(), SinkElementwise()], on: &module)
    g = module.graph
    let problems = Verifier.verify(g)
    guard problems.isEmpty else {
      throw BuildError(
        description: "training: the training graph does not verify:\n"
          + problems.map(\.description).joined(separator: "\n"))
    }
    return TrainingProgram(graph: g, gradients: gradients, dropoutMasks: masks, batchNormUpdates: updates)
  }
}

extension TrainingProgram.BuildError: KindedError {
  public var errorKind: ErrorKind { .unsupported }
}
