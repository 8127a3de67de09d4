"""ONNX fixtures for Tests/GlassboxONNXTests: small models, their inputs and ONNX Runtime's outputs.

    /work/venv/bin/python tools/reference/onnx_fixtures.py Tests/GlassboxONNXTests/Fixtures

Writes into FOLDER/
  cases/NAME.onnx, NAME.input<i>.npy, NAME.output<i>.npy   a model, seeded inputs (float32) and
      ONNX Runtime's outputs on them (all graph optimisations off). Models exported from PyTorch
      by torch.onnx.export (the TorchScript exporter, dynamo=False: the venv has no onnxscript)
      are also checked against PyTorch's own outputs here (1e-5); the others are written with
      onnx.helper to reach each opset's attribute-or-input form of an operator. (ONNX Runtime runs
      no batch-first LSTM, so lstm_reverse's outputs are onnx's reference evaluator's; it runs no
      LRN of an even size, so lrn_even's is ONNX's formula in float64.)
  cases/NAME.gradcam.npy   for tiny_resnet: Grad-CAM of each example's predicted class at the
      last residual block (the map `gradcam:auto` picks), computed by PyTorch in float64 by hand
      as pytorch-grad-cam's GradCAM does before resizing: the class score's gradient with respect
      to the map, averaged over the map's positions as channel weights, the weighted channel
      sum, ReLU. (pytorch-grad-cam itself imports torchvision and cv2, which the venv lacks.)
  bad/NAME.onnx            malformed or hostile files, each refused with the message in
      NAME.expected (written by GLASSBOX_RECORD=1 swift test --filter BadONNXTests).
Every tensor here is drawn from numpy's default_rng with a fixed seed, so a rerun rewrites the
same models; ONNX Runtime's outputs may differ from an earlier run in the last bits.
"""
import os
import sys
import warnings

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

warnings.filterwarnings("ignore")
torch.manual_seed(0)


def ort_outputs(path, inputs):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))


def save_case(folder, name, path, inputs):
    try:
        outputs = ort_outputs(path, inputs)
    except Exception:  # ONNX Runtime runs no batch-first (layout 1) LSTM: onnx's reference evaluator
        from onnx.reference import ReferenceEvaluator
        model = onnx.load(path)
        outputs = ReferenceEvaluator(model).run(None, dict(zip([i.name for i in model.graph.input], inputs)))
    for i, x in enumerate(inputs):
        np.save(os.path.join(folder, f"{name}.input{i}.npy"), x)
    for i, y in enumerate(outputs):
        np.save(os.path.join(folder, f"{name}.output{i}.npy"), np.asarray(y, dtype=np.float32))
    return outputs



# MARK: PyTorch models

class Block(nn.Module):
    """torchvision's BasicBlock, narrow."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class TinyResNet(nn.Module):
    """A ResNet-18 in miniature: stem, max pooling, two residual stages, global pooling, fc."""

    def __init__(self, classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = Block(8, 8)
        self.layer2 = Block(8, 16, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, classes)

    def features(self, x):
        return self.layer2(self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x))))))

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


class TinyMobile(nn.Module):
    """MobileNet-V2 and EfficientNet pieces: ReLU6, a depthwise and a dilated convolution,
    SiLU, squeeze-and-excitation, Hardswish, LeakyReLU, dropout."""

    def __init__(self, classes=4):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.bn = nn.BatchNorm2d(8)
        self.relu6 = nn.ReLU6()
        self.depthwise = nn.Conv2d(8, 8, 3, 1, 1, groups=8)
        self.dilated = nn.Conv2d(8, 12, 3, 1, 2, dilation=2)
        self.silu = nn.SiLU()
        self.squeeze = nn.Conv2d(12, 3, 1)
        self.excite = nn.Conv2d(3, 12, 1)
        self.hardswish = nn.Hardswish()
        self.leaky = nn.LeakyReLU(0.1)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(12, classes)

    def forward(self, x):
        x = self.relu6(self.bn(self.stem(x)))
        x = self.silu(self.dilated(self.depthwise(x)))
        scale = torch.sigmoid(self.excite(self.silu(self.squeeze(x.mean((2, 3), keepdim=True)))))
        x = self.leaky(self.hardswish(x * scale))
        return self.fc(self.dropout(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)))


class TinyBiLSTMAttention(nn.Module):
    """The study's BiLSTM with 1-D attention (tools/reference/models.py), small."""

    def __init__(self, features=8, hidden=4, classes=3):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True, bidirectional=True)
        self.attention = nn.Linear(2 * hidden, 1)
        self.classifier = nn.Linear(2 * hidden, classes)

    def forward(self, x):
        h, _ = self.lstm(x)
        weights = torch.softmax(self.attention(torch.tanh(h)), dim=1)
        return self.classifier((weights * h).sum(dim=1))


class TinyGRU(nn.Module):
    """A GRU classifier over the last step."""

    def __init__(self, features=8, hidden=6, classes=3):
        super().__init__()
        self.gru = nn.GRU(features, hidden, batch_first=True)
        self.classifier = nn.Linear(hidden, classes)

    def forward(self, x):
        h, _ = self.gru(x)
        return self.classifier(h[:, -1])


class TinyLSTMState(nn.Module):
    """An LSTM given its initial states, returning its sequence and final states."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(5, 3, num_layers=2)

    def forward(self, x, h0, c0):
        y, (h, c) = self.lstm(x, (h0, c0))
        return y, h, c


class TinyMix(nn.Module):
    """(Opset 17, where LayerNorm is one operator.) Upsampling, asymmetric zero padding, a
    strided and a transposed convolution, average pooling with ceil_mode, layer norm, a batched
    matmul, softmax over channels, chunk/cat, permute and x.view(x.size(0), -1) (shape
    arithmetic on a dynamic batch)."""

    def __init__(self):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.pad = nn.ZeroPad2d((1, 0, 2, 1))
        self.conv = nn.Conv2d(4, 6, 3, 2)
        self.deconv = nn.ConvTranspose2d(6, 4, 3, 2, 1, output_padding=1)
        self.pool = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
        self.norm = nn.LayerNorm([6])
        self.fc = nn.Linear(20, 3)

    def forward(self, x):
        y = self.conv(self.pad(self.up(x)))
        y = self.pool(torch.relu(self.deconv(y)))
        a, b = torch.chunk(y, 2, dim=1)
        y = torch.cat([b, a], dim=1)
        y = self.norm(y)
        flat = y.reshape(y.size(0), y.size(1), -1)
        attention = torch.softmax(torch.bmm(flat, flat.transpose(1, 2)), dim=1)
        y = torch.bmm(attention, flat).permute(0, 2, 1)
        return self.fc(y.reshape(y.size(0), -1)[:, :20])


def export(model, inputs, path, opset, names, dynamic=True, fold=True):
    model.eval()
    tensors = tuple(torch.from_numpy(x) for x in inputs)
    axes = {n: {0: "batch"} for n in names} if dynamic else None
    if dynamic:
        axes["output"] = {0: "batch"}
    torch.onnx.export(model, tensors, path, opset_version=opset, dynamo=False, input_names=names,
                      output_names=["output"], dynamic_axes=axes, do_constant_folding=fold)
    with torch.no_grad():
        expected = model(*tensors)
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = ort_outputs(path, inputs)
    for e, g in zip(expected, got):
        assert np.allclose(e.numpy(), g, rtol=1e-5, atol=1e-5), f"{path}: ONNX Runtime and PyTorch differ"


def randomize_batch_norm(model, generator):
    """Running statistics and affine parameters away from 0 and 1, so folding them matters."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.from_numpy(generator.normal(0, 0.3, m.num_features)).float())
                m.running_var.copy_(torch.from_numpy(generator.uniform(0.5, 1.5, m.num_features)).float())
                m.weight.copy_(torch.from_numpy(generator.uniform(0.5, 1.5, m.num_features)).float())
                m.bias.copy_(torch.from_numpy(generator.normal(0, 0.2, m.num_features)).float())


def grad_cam(model, x):
    """Grad-CAM of each example's predicted class at `model.features`' output, float64."""
    m = TinyResNet()
    m.load_state_dict(model.state_dict())
    m = m.double().eval()
    xs = torch.from_numpy(x).double()
    maps = m.features(xs)
    maps.retain_grad()
    logits = m.fc(torch.flatten(m.avgpool(maps), 1))
    classes = logits.argmax(dim=1)
    logits.gather(1, classes[:, None]).sum().backward()
    weights = maps.grad.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * maps).sum(dim=1)).detach().numpy().astype(np.float32)


def torch_cases(folder):
    g = np.random.default_rng(1)
    resnet = TinyResNet()
    randomize_batch_norm(resnet, g)
    x = g.standard_normal((2, 3, 16, 16)).astype(np.float32)
    path = os.path.join(folder, "tiny_resnet.onnx")
    export(resnet, [x], path, 17, ["image"])
    save_case(folder, "tiny_resnet", path, [x])
    np.save(os.path.join(folder, "tiny_resnet.gradcam.npy"), grad_cam(resnet, x))

    mobile = TinyMobile()
    randomize_batch_norm(mobile, g)
    x = g.standard_normal((2, 3, 12, 12)).astype(np.float32)
    path = os.path.join(folder, "tiny_mobile.onnx")
    export(mobile, [x], path, 11, ["image"], fold=False)
    save_case(folder, "tiny_mobile", path, [x])

    for name, model, shape, opset in [("tiny_bilstm_attention", TinyBiLSTMAttention(), (2, 6, 8), 17),
                                      ("tiny_gru", TinyGRU(), (2, 5, 8), 14)]:
        x = g.standard_normal(shape).astype(np.float32)
        path = os.path.join(folder, name + ".onnx")
        export(model, [x], path, opset, ["sequence"])
        save_case(folder, name, path, [x])

    state = TinyLSTMState()
    inputs = [g.standard_normal(s).astype(np.float32) for s in [(4, 2, 5), (2, 2, 3), (2, 2, 3)]]
    path = os.path.join(folder, "tiny_lstm_state.onnx")
    state.eval()
    torch.onnx.export(state, tuple(torch.from_numpy(i) for i in inputs), path, opset_version=13, dynamo=False,
                      input_names=["x", "h0", "c0"], output_names=["y", "h", "c"])
    save_case(folder, "tiny_lstm_state", path, inputs)

    mix = TinyMix()
    x = g.standard_normal((2, 4, 5, 5)).astype(np.float32)
    path = os.path.join(folder, "tiny_mix.onnx")
    export(mix, [x], path, 17, ["x"])
    save_case(folder, "tiny_mix", path, [x])


# MARK: Models written with onnx.helper

def model_of(nodes, inputs, outputs, initializers, opset, name):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="onnx_fixtures.py")


def value(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def weight(g, name, shape, scale=0.5):
    return numpy_helper.from_array((g.standard_normal(shape) * scale).astype(np.float32), name)


def ints(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def floats(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.float32), name)


def helper_cases(folder):
    g = np.random.default_rng(2)
    N = helper.make_node

    # Opset 9: operators whose arguments are attributes here and inputs later.
    nodes = [
        N("Slice", ["x"], ["s"], starts=[1, 0], ends=[4, 100], axes=[2, 3]),
        N("Unsqueeze", ["s"], ["u"], axes=[0]),
        N("Squeeze", ["u"], ["q"], axes=[0]),
        N("Split", ["q"], ["a", "b"], axis=1, split=[1, 2]),
        N("Clip", ["a"], ["ca"], min=-0.5, max=0.7),
        N("Softmax", ["b"], ["sb"], axis=1),  # flattened from axis 1 before opset 13
        N("Upsample", ["ca", "scales"], ["up"], mode="nearest"),
        N("Pad", ["up"], ["padded"], pads=[0, 0, 1, 0, 0, 0, 0, 2], value=0.25),
        N("MaxPool", ["padded"], ["mp"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        N("AveragePool", ["sb"], ["ap"], kernel_shape=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
        N("ReduceMean", ["ap"], ["rm"], axes=[2, 3], keepdims=0),
        N("Flatten", ["mp"], ["fl"], axis=1),
        N("Gemm", ["fl", "w", "c"], ["gemm"], alpha=0.5, beta=2.0, transB=1),
        N("Gemm", ["rm", "w2", "c2"], ["gemm2"], transA=0, transB=0),
        N("Sum", ["gemm", "gemm2", "gemm"], ["sum"]),
        N("Mean", ["gemm", "gemm2"], ["mean"]),
        N("Max", ["sum", "mean", "gemm2"], ["max"]),
        N("Min", ["max", "gemm"], ["y"]),
    ]
    x = g.standard_normal((2, 3, 5, 4)).astype(np.float32)
    # Shapes: s [2,3,3,4]; a [2,1,3,4] → up [2,1,6,8] → padded [2,1,7,10] → mp [2,1,4,5] → fl [2,20]
    initializers = [floats("scales", [1, 1, 2, 2]), weight(g, "w", (3, 20)), weight(g, "c", (3,)),
                    weight(g, "w2", (2, 3)), weight(g, "c2", (1, 3))]
    m = model_of(nodes, [value("x", [2, 3, 5, 4])], [value("y", None)], initializers, 9, "opset9_ops")
    write_helper_case(folder, "opset9_ops", m, [x])

    # Opset 13: the same arguments as inputs, and more composed operators.
    nodes = [
        N("Slice", ["x", "starts", "ends", "axes", "steps"], ["s"]),
        N("Unsqueeze", ["s", "ax0"], ["u"]),
        N("Squeeze", ["u", "ax0"], ["q"]),
        N("Split", ["q", "sizes"], ["a", "b"], axis=1),
        N("Clip", ["a", "lo", "hi"], ["ca"]),
        N("Softmax", ["b"], ["sb"], axis=1),
        N("Resize", ["ca", "", "", "size"], ["up"], mode="nearest", coordinate_transformation_mode="asymmetric",
          nearest_mode="floor"),
        N("Conv", ["up", "cw", "cb"], ["conv"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
        N("MaxPool", ["conv"], ["mp"], kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_LOWER", ceil_mode=1),
        N("PRelu", ["mp", "slope"], ["pr"]),
        N("HardSigmoid", ["pr"], ["hs"], alpha=0.3, beta=0.4),
        N("Reciprocal", ["hs"], ["rc"]),
        N("Neg", ["rc"], ["ng"]),
        N("Abs", ["sb"], ["ab"]),
        N("Pow", ["ab", "two"], ["sq"]),
        N("ReduceSum", ["sq", "ax23"], ["rs"], keepdims=1),
        N("ReduceMin", ["ng"], ["rmin"], axes=[2, 3], keepdims=1),
        N("ReduceSumSquare", ["ng"], ["rss"], axes=[1], keepdims=0),
        N("ReduceL1", ["ng"], ["rl1"], axes=[2, 3], keepdims=1),
        N("Expand", ["rmin", "expand_to"], ["ex"]),
        N("Tile", ["rl1", "repeats"], ["tl"]),
        N("Add", ["ex", "tl"], ["sum1"]),
        N("Gather", ["sum1", "index"], ["gathered"], axis=1),
        N("Gather", ["x", "picks"], ["picked"], axis=3),
        N("ReduceMean", ["picked"], ["pm"], axes=[1, 2, 3], keepdims=0),
        N("Transpose", ["gathered"], ["t"], perm=[0, 2, 1]),
        N("Flatten", ["t"], ["ft"], axis=1),
        N("MatMul", ["ft", "mw"], ["mm"]),
        N("Unsqueeze", ["pm", "ax1"], ["pm2"]),
        N("Mul", ["mm", "pm2"], ["mp2"]),
        N("Flatten", ["rs"], ["frs"], axis=1),
        N("Flatten", ["rss"], ["frss"], axis=1),
        N("Concat", ["mp2", "frs", "frss"], ["y"], axis=1),
    ]
    x = g.standard_normal((2, 3, 6, 5)).astype(np.float32)
    initializers = [
        ints("starts", [0, -5]), ints("ends", [100, 6]), ints("axes", [2, 3]), ints("steps", [2, 1]),
        ints("ax0", [0]), ints("sizes", [2, 1]), floats("lo", 0.0), floats("hi", 0.8),
        ints("size", [2, 2, 6, 10]), weight(g, "cw", (4, 2, 3, 3)), weight(g, "cb", (4,)),
        weight(g, "slope", (4, 1, 1)), floats("two", 2.0), ints("ax23", [2, 3]), ints("expand_to", [2, 4, 2, 3]),
        ints("repeats", [1, 1, 2, 3]), ints("index", 1), ints("picks", [4, 0, 2]), weight(g, "mw", (6, 5)),
        ints("ax1", [1]),
    ]
    # s [2,3,3,5]; a [2,2,3,5] → up [2,2,6,10] → conv [2,4,3,5] → mp [2,4,2,3]; gathered [2,2,3] → ft [2,6]
    m = model_of(nodes, [value("x", [2, 3, 6, 5])], [value("y", None)], initializers, 13, "opset13_ops")
    write_helper_case(folder, "opset13_ops", m, [x])

    # Opset 18: Split's num_outputs, ReduceMean's axes input, Pad's axes; LayerNormalization (17).
    nodes = [
        N("Split", ["x"], ["a", "b", "c"], axis=2, num_outputs=3),
        N("ReduceMean", ["a", "ax"], ["ra"], keepdims=1),
        N("Pad", ["b", "pads", "pv", "pad_axes"], ["pb"]),
        N("LayerNormalization", ["c", "scale", "bias"], ["lc"], axis=-1, epsilon=1e-3),
        N("Concat", ["ra", "pb", "lc"], ["y"], axis=2),
    ]
    x = g.standard_normal((2, 3, 7, 4)).astype(np.float32)
    initializers = [ints("ax", [2]), ints("pads", [1, 0]), floats("pv", -1.0), ints("pad_axes", [2]),
                    weight(g, "scale", (4,)), weight(g, "bias", (4,))]
    m = model_of(nodes, [value("x", [2, 3, 7, 4])], [value("y", None)], initializers, 18, "opset18_ops")
    write_helper_case(folder, "opset18_ops", m, [x])

    # A reverse LSTM, batch first (layout 1, opset 14), initial states given, its cell state read.
    h = 3
    nodes = [N("LSTM", ["x", "W", "R", "B", "", "h0", "c0"], ["y", "yh", "yc"], hidden_size=h,
               direction="reverse", layout=1)]
    x = g.standard_normal((2, 4, 5)).astype(np.float32)
    h0 = g.standard_normal((2, 1, h)).astype(np.float32)
    c0 = g.standard_normal((2, 1, h)).astype(np.float32)
    initializers = [weight(g, "W", (1, 4 * h, 5)), weight(g, "R", (1, 4 * h, h)), weight(g, "B", (1, 8 * h))]
    m = model_of(nodes, [value("x", [2, 4, 5]), value("h0", [2, 1, h]), value("c0", [2, 1, h])],
                 [value("y", None), value("yh", None), value("yc", None)], initializers, 14, "lstm_reverse")
    write_helper_case(folder, "lstm_reverse", m, [x, h0, c0])

    # GRU without linear_before_reset (ONNX's default), both directions; and an RNN.
    nodes = [N("GRU", ["x", "W", "R", "B"], ["y", "yh"], hidden_size=h, direction="bidirectional"),
             N("RNN", ["x", "Wr", "Rr", "Br"], ["ry", "ryh"], hidden_size=2, activations=["Relu"])]
    x = g.standard_normal((4, 2, 5)).astype(np.float32)
    initializers = [weight(g, "W", (2, 3 * h, 5)), weight(g, "R", (2, 3 * h, h)), weight(g, "B", (2, 6 * h)),
                    weight(g, "Wr", (1, 2, 5)), weight(g, "Rr", (1, 2, 2)), weight(g, "Br", (1, 4))]
    m = model_of(nodes, [value("x", [4, 2, 5])], [value("y", None), value("yh", None), value("ry", None)],
                 initializers, 14, "gru_rnn")
    write_helper_case(folder, "gru_rnn", m, [x])

    # Elementwise math as ops: Exp, Log, Sqrt, Erf, Abs; Pow with a run-time exponent, a
    # broadcast constant one, 0.5 and an integer one; Max and Min of three broadcast inputs.
    nodes = [
        N("Abs", ["x"], ["ab"]),
        N("Add", ["ab", "half"], ["pos"]),
        N("Log", ["pos"], ["lg"]),
        N("Sqrt", ["pos"], ["sq"]),
        N("Exp", ["x"], ["ex"]),
        N("Erf", ["x"], ["er"]),
        N("Pow", ["pos", "e"], ["pw"]),
        N("Pow", ["pos", "exponents"], ["pc"]),
        N("Pow", ["pos", "half"], ["ph"]),
        N("Pow", ["x", "three"], ["pi"]),
        N("Max", ["lg", "er", "row"], ["mx"]),
        N("Min", ["sq", "ex", "row", "pw"], ["mn"]),
        N("Neg", ["mn"], ["ng"]),
        N("Reciprocal", ["pos"], ["rc"]),
        N("Concat", ["mx", "ng", "rc", "pc", "ph", "pi"], ["y"], axis=1),
    ]
    x = g.standard_normal((2, 3, 4)).astype(np.float32)
    e = g.standard_normal((2, 3, 4)).astype(np.float32)
    initializers = [floats("half", 0.5), weight(g, "row", (4,)), floats("exponents", [[-1.5], [0.5], [2.0]]),
                    ints("three", 3)]
    m = model_of(nodes, [value("x", [2, 3, 4]), value("e", [2, 3, 4])], [value("y", None)], initializers, 13,
                 "math_ops")
    write_helper_case(folder, "math_ops", m, [x, e])

    # Activations the spec language has as composites (LeakyRelu, Clip with one bound and with
    # both, HardSigmoid at ONNX's defaults, HardSwish, Gelu in both forms), and those composed at
    # import (Elu, Selu, Celu, Softplus, Softsign); opset 20 for Gelu.
    nodes = [
        N("LeakyRelu", ["x"], ["lr"], alpha=0.2),
        N("Clip", ["x", "lo"], ["c1"]),
        N("Clip", ["x", "", "hi"], ["c2"]),
        N("Clip", ["x", "lo", "hi"], ["c3"]),
        N("HardSigmoid", ["x"], ["hs"]),
        N("HardSwish", ["x"], ["hw"]),
        N("Gelu", ["x"], ["ge"]),
        N("Gelu", ["x"], ["gt"], approximate="tanh"),
        N("Elu", ["x"], ["el"], alpha=0.7),
        N("Selu", ["x"], ["se"]),
        N("Celu", ["x"], ["ce"], alpha=1.5),
        N("Softplus", ["big"], ["sp"]),
        N("Softsign", ["x"], ["ss"]),
        N("Concat", ["lr", "c1", "c2", "c3", "hs", "hw", "ge", "gt", "el", "se", "ce", "sp", "ss"], ["y"], axis=1),
    ]
    x = (g.standard_normal((2, 3, 5)) * 3).astype(np.float32)
    initializers = [floats("lo", -0.5), floats("hi", 1.25), floats("scale", 40.0)]
    nodes.insert(0, N("Mul", ["x", "scale"], ["big"]))
    m = model_of(nodes, [value("x", [2, 3, 5])], [value("y", None)], initializers, 20, "activation_ops")
    write_helper_case(folder, "activation_ops", m, [x])

    # LRN; Pad in reflect and edge mode, constant with a crop, and reflect on chosen axes
    # (opset 18).
    nodes = [
        N("LRN", ["x"], ["l5"], size=5, alpha=0.5, beta=0.75, bias=2.0),
        N("LRN", ["x"], ["l3"], size=3, alpha=1.5, beta=0.6),
        N("Pad", ["x", "reflect_pads"], ["pr"], mode="reflect"),
        N("Pad", ["x", "edge_pads"], ["pe"], mode="edge"),
        N("Pad", ["x", "crop_pads", "pv"], ["pc"]),
        N("Pad", ["x", "axis_pads", "", "pad_axes"], ["pa"], mode="reflect"),
        N("ReduceMean", ["pr", "ax23"], ["mr"], keepdims=0),
        N("ReduceMean", ["pe", "ax23"], ["me"], keepdims=0),
        N("ReduceMean", ["pc", "ax23"], ["mc"], keepdims=0),
        N("ReduceMean", ["pa", "ax23"], ["ma"], keepdims=0),
        N("Flatten", ["l5"], ["f5"], axis=1),
        N("Flatten", ["l3"], ["f3"], axis=1),
        N("Concat", ["f5", "f3", "mr", "me", "mc", "ma"], ["y"], axis=1),
    ]
    x = (g.standard_normal((2, 6, 4, 5)) * 2).astype(np.float32)
    initializers = [ints("reflect_pads", [0, 0, 2, 1, 0, 0, 1, 3]), ints("edge_pads", [0, 0, 3, 0, 0, 0, 1, 2]),
                    ints("crop_pads", [0, 0, -1, 2, 0, 0, 1, -2]), floats("pv", 0.75), ints("axis_pads", [2, 3, 1, 1]),
                    ints("pad_axes", [3, 2]), ints("ax23", [2, 3])]
    m = model_of(nodes, [value("x", [2, 6, 4, 5])], [value("y", None)], initializers, 18, "lrn_pad_ops")
    write_helper_case(folder, "lrn_pad_ops", m, [x])

    # LRN with an even window, ONNX's (the larger half after the channel), which ONNX Runtime
    # refuses: the output is ONNX's formula in float64 here (onnx's reference evaluator sums
    # over the wrong channels, looping over the batch axis).
    nodes = [N("LRN", ["x"], ["y"], size=4, alpha=1.5, beta=0.6, bias=0.5)]
    x = (g.standard_normal((2, 7, 3, 2)) * 2).astype(np.float32)
    m = model_of(nodes, [value("x", [2, 7, 3, 2])], [value("y", [2, 7, 3, 2])], [], 13, "lrn_even")
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(folder, "lrn_even.onnx"))
    np.save(os.path.join(folder, "lrn_even.input0.npy"), x)
    np.save(os.path.join(folder, "lrn_even.output0.npy"), onnx_lrn(x, size=4, alpha=1.5, beta=0.6, bias=0.5))

    # Opset 9's forms: Pad's pads and mode as attributes (reflect), LRN, Max of two.
    nodes = [
        N("Pad", ["x"], ["p"], pads=[0, 0, 1, 2, 0, 0, 2, 1], mode="reflect"),
        N("LRN", ["p"], ["l"], size=3),
        N("Max", ["l", "row"], ["y"]),
    ]
    x = g.standard_normal((1, 4, 3, 4)).astype(np.float32)
    m = model_of(nodes, [value("x", [1, 4, 3, 4])], [value("y", None)], [weight(g, "row", (7,))], 9, "opset9_pad_lrn")
    write_helper_case(folder, "opset9_pad_lrn", m, [x])

    # InstanceNormalization over two spatial axes and over one.
    nodes = [N("InstanceNormalization", ["x", "scale", "bias"], ["y"], epsilon=0.01),
             N("InstanceNormalization", ["v", "scale", "bias"], ["z"])]
    x = (g.standard_normal((2, 3, 4, 5)) * 2 + 1).astype(np.float32)
    v = g.standard_normal((2, 3, 7)).astype(np.float32)
    m = model_of(nodes, [value("x", [2, 3, 4, 5]), value("v", [2, 3, 7])], [value("y", None), value("z", None)],
                 [weight(g, "scale", (3,)), weight(g, "bias", (3,))], 6, "instance_norm")
    write_helper_case(folder, "instance_norm", m, [x, v])


def onnx_lrn(x, size, alpha, beta, bias):
    """ONNX's LRN in float64: each element over (bias + alpha/size · Σ x²)^beta, the sum over
    channels c − ⌊(size−1)/2⌋ … c + ⌈(size−1)/2⌉ that exist."""
    x = x.astype(np.float64)
    before, after = (size - 1) // 2, size // 2
    square = np.zeros_like(x)
    for c in range(x.shape[1]):
        square[:, c] = (x[:, max(0, c - before):min(x.shape[1], c + after + 1)] ** 2).sum(axis=1)
    return (x / (bias + alpha / size * square) ** beta).astype(np.float32)


def write_helper_case(folder, name, model, inputs):
    # (ONNX Runtime checks the model when it runs it below.)
    path = os.path.join(folder, name + ".onnx")
    onnx.save(model, path)
    save_case(folder, name, path, inputs)


# MARK: Bad files

def bad_files(folder, good):
    N = helper.make_node
    g = np.random.default_rng(3)
    with open(good, "rb") as f:
        data = f.read()
    with open(os.path.join(folder, "truncated.onnx"), "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    with open(os.path.join(folder, "not_onnx.onnx"), "wb") as f:
        f.write(b"This is a text file, not a model.\n")
    with open(os.path.join(folder, "empty.onnx"), "wb") as f:
        pass

    def save(model, name):
        onnx.save(model, os.path.join(folder, name + ".onnx"))

    x = [value("x", [1, 4])]
    save(model_of([N("Relu", ["x", ], ["a"], name="first"), N("Add", ["a", "c"], ["b"], name="second"),
                   N("Relu", ["b"], ["c"], name="third")], x, [value("c", None)], [], 13, "cycle"), "cycle")

    wrong = numpy_helper.from_array(np.zeros((2, 3), dtype=np.float32), "w")
    wrong.raw_data = wrong.raw_data[:20]
    save(model_of([N("MatMul", ["x", "w"], ["y"], name="product")], x, [value("y", None)], [wrong], 13,
                  "size"), "initializer_size")

    for name, location in [("external_outside", "../outside.bin"), ("external_absolute", "/etc/passwd"),
                           ("external_missing", "weights/missing.bin")]:
        t = numpy_helper.from_array(np.zeros((4, 2), dtype=np.float32), "w")
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        t.external_data.add(key="location", value=location)
        save(model_of([N("MatMul", ["x", "w"], ["y"], name="product")], x, [value("y", None)], [t], 13, name), name)

    t = numpy_helper.from_array(np.ones((4, 2), dtype=np.float32), "w")
    raw = t.raw_data
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value="external_ok.bin")
    t.external_data.add(key="offset", value="0")
    t.external_data.add(key="length", value=str(len(raw)))
    save(model_of([N("MatMul", ["x", "w"], ["y"], name="product")], x, [value("y", None)], [t], 13, "ok"),
         "external_ok")
    with open(os.path.join(folder, "external_ok.bin"), "wb") as f:
        f.write(raw)

    huge = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[65536, 65536])
    huge.raw_data = b""
    save(model_of([N("MatMul", ["x", "w"], ["y"], name="product")], x, [value("y", None)], [huge], 13, "huge"),
         "huge_tensor")

    unknown = model_of([N("FusedConv", ["x"], ["y"], name="fused", domain="com.microsoft")], x, [value("y", None)],
                       [], 13, "domain")
    unknown.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    save(unknown, "unknown_domain")

    xs = [value("x", [1, 3, 4, 4]), value("x5", [1, 3, 2, 4, 4])]
    nodes = [N("Floor", ["x"], ["n1"], name="floor1"), N("Sign", ["n1"], ["e"], name="sign"),
             N("Floor", ["e"], ["n2"], name="floor2"), N("Shrink", ["n2"], ["y"], name="shrink"),
             N("Conv", ["x5", "w5"], ["c5"], name="conv3d")]
    outputs = [value("y", None), value("c5", None)]
    save(model_of(nodes, xs, outputs, [weight(g, "w5", (2, 3, 1, 1, 1))], 20, "unsupported"), "unsupported_ops")

    save(model_of([N("Relu", ["x"], ["y"])], x, [value("y", None)], [], 5, "old"), "old_opset")
    save(model_of([N("Relu", ["missing"], ["y"], name="reads_nothing")], x, [value("y", None)], [], 13, "undefined"),
         "undefined_input")

    # Forms of the new operators that do not import: an LRN without its size, a Pad in wrap
    # mode (opset 19), a Gelu with an unknown approximation.
    nodes = [N("LRN", ["x"], ["n"], name="sizeless"), N("Pad", ["x", "pads"], ["p"], mode="wrap", name="wrapped"),
             N("Gelu", ["x"], ["e"], approximate="erf", name="gelu")]
    outputs = [value("n", None), value("p", None), value("e", None)]
    save(model_of(nodes, x, outputs, [ints("pads", [0, 1, 0, 1])], 20, "forms"), "unsupported_forms")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    cases_folder, bad_folder = os.path.join(root, "cases"), os.path.join(root, "bad")
    os.makedirs(cases_folder, exist_ok=True)
    os.makedirs(bad_folder, exist_ok=True)
    torch_cases(cases_folder)
    helper_cases(cases_folder)
    bad_files(bad_folder, os.path.join(cases_folder, "tiny_resnet.onnx"))
    sizes = sum(os.path.getsize(os.path.join(d, f)) for d in (cases_folder, bad_folder) for f in os.listdir(d))
    print(f"wrote {root}: {sizes} bytes")


if __name__ == "__main__":
    main()
