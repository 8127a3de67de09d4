"""Expected outputs of single ops and of the study models, computed by PyTorch in float64 on
deterministic inputs and weights (detrand.py ≡ GlassboxReference.DeterministicTensors), so
a fixture is only a spec (or a spec name with bindings) and its expected outputs.

    .venv/bin/python tools/reference/forward_fixtures.py Tests/GlassboxRuntimeTests/Fixtures/forward

Input NAME of shape S is `detrand.tensor("input:NAME", S)` (f32 values, computed in f64);
an i64 input holds floor((u + 1) * 2) ∈ {0, 1, 2, 3}. Parameters are `detrand.parameters`.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

import detrand
from models import BiLSTM, CNNLSTM, ResNet18, vgg19_features

torch.set_default_dtype(torch.float64)


def inp(name, shape, dtype="f32"):
    u = detrand.tensor("input:" + name, shape)
    if dtype == "i64":
        return torch.from_numpy(np.floor((u.astype(np.float64) + 1) * 2).astype(np.int64))
    return torch.from_numpy(u.astype(np.float64))


def par(name, shape):
    return torch.from_numpy(detrand.parameters({name: (shape, "f32")})[name].astype(np.float64))


# name: (spec, function of the inputs and parameters returning {output: tensor})
OPS = {}


def case(name, spec):
    def register(fn):
        OPS[name] = (spec, fn)
        return fn
    return register


@case("conv2d_grouped", """graph g(x: f32[2, 4, 9, 8]) -> (y: f32[2, 6, 5, 4]) {
  param w: f32[6, 2, 3, 3]
  param b: f32[6]
  y = conv2d(x, w, b, stride: 2, padding: 1, groups: 2)
}""")
def _(): return {"y": F.conv2d(inp("x", [2, 4, 9, 8]), par("w", [6, 2, 3, 3]), par("b", [6]), stride=2, padding=1, groups=2)}


@case("conv2d_dilated", """graph g(x: f32[1, 3, 10, 11]) -> (y: f32[1, 5, 10, 7]) {
  param w: f32[5, 3, 3, 3]
  y = conv2d(x, w, padding: [2, 0], dilation: 2)
}""")
def _(): return {"y": F.conv2d(inp("x", [1, 3, 10, 11]), par("w", [5, 3, 3, 3]), padding=(2, 0), dilation=2)}


@case("max_pool2d", """graph g(x: f32[2, 3, 9, 9]) -> (y: f32[2, 3, 5, 5], z: f32[2, 3, 4, 4], d: f32[2, 3, 4, 4]) {
  y = max_pool2d(x, kernel: 3, stride: 2, padding: 1)
  z = max_pool2d(x, kernel: 3, stride: 2, ceil_mode: true)
  d = max_pool2d(x, kernel: 2, stride: 2, dilation: 2)
}""")
def _():
    x = inp("x", [2, 3, 9, 9])
    return {"y": F.max_pool2d(x, 3, 2, 1), "z": F.max_pool2d(x, 3, 2, ceil_mode=True),
            "d": F.max_pool2d(x, 2, 2, dilation=2)}


@case("avg_pool2d", """graph g(x: f32[2, 3, 8, 7]) -> (y: f32[2, 3, 4, 4], z: f32[2, 3, 4, 4], e: f32[2, 3, 4, 4]) {
  y = avg_pool2d(x, kernel: 3, stride: 2, padding: 1)
  z = avg_pool2d(x, kernel: 2, stride: 2, ceil_mode: true)
  e = avg_pool2d(x, kernel: 3, stride: 2, padding: 1, count_include_pad: false)
}""")
def _():
    x = inp("x", [2, 3, 8, 7])
    return {"y": F.avg_pool2d(x, 3, 2, 1), "z": F.avg_pool2d(x, 2, 2, ceil_mode=True),
            "e": F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)}


@case("global_avg_pool2d_batch_norm", """graph g(x: f32[2, 4, 5, 3]) -> (y: f32[2, 4, 1, 1], n: f32[2, 4, 5, 3]) {
  y = global_avg_pool2d(x)
  n = batch_norm(x)
}""")
def _():
    x = inp("x", [2, 4, 5, 3])
    p = detrand.parameters({k: ([4], "f32") for k in ["n.weight", "n.bias", "n.running_mean", "n.running_var"]})
    t = {k: torch.from_numpy(v.astype(np.float64)) for k, v in p.items()}
    return {"y": F.adaptive_avg_pool2d(x, 1),
            "n": F.batch_norm(x, t["n.running_mean"], t["n.running_var"], t["n.weight"], t["n.bias"], False, 0.1, 1e-5)}


@case("linear_matmul", """graph g(x: f32[2, 3, 5], a: f32[4, 6], b: f32[6, 2], p: f32[3, 2, 4], q: f32[3, 4, 5]) -> (y: f32[2, 3, 7], m: f32[4, 2], bm: f32[3, 2, 5]) {
  y = linear(x, out: 7)
  m = matmul(a, b)
  bm = batch_matmul(p, q)
}""")
def _():
    return {"y": F.linear(inp("x", [2, 3, 5]), par("y.weight", [7, 5]), par("y.bias", [7])),
            "m": inp("a", [4, 6]) @ inp("b", [6, 2]), "bm": torch.bmm(inp("p", [3, 2, 4]), inp("q", [3, 4, 5]))}


@case("elementwise", """graph g(a: f32[2, 1, 4], b: f32[3, 1]) -> (s: f32[2, 3, 4], d: f32[2, 3, 4], m: f32[2, 3, 4], q: f32[2, 3, 4], r: f32[2, 1, 4], g: f32[2, 1, 4], t: f32[2, 1, 4], o: f32[2, 1, 4]) {
  s = add(a, b)
  d = sub(a, b)
  m = mul(a, b)
  q = div(a, add(b, constant(value: 3.0)))
  r = relu(a)
  g = sigmoid(a)
  t = tanh(a)
  o = dropout(a, p: 0.3)
}""")
def _():
    a, b = inp("a", [2, 1, 4]), inp("b", [3, 1])
    return {"s": a + b, "d": a - b, "m": a * b, "q": a / (b + 3), "r": F.relu(a), "g": torch.sigmoid(a),
            "t": torch.tanh(a), "o": a}


@case("math", """graph g(x: f32[2, 3, 5], e: f32[5]) -> (
    ex: f32[2, 3, 5], lg: f32[2, 3, 5], sq: f32[2, 3, 5], ab: f32[2, 3, 5], er: f32[2, 3, 5],
    pw: f32[2, 3, 5], p3: f32[2, 3, 5], mx: f32[2, 3, 5], mn: f32[2, 3, 5]) {
  ex = exp(x)
  lg = log(abs(x))
  sq = sqrt(abs(x))
  ab = abs(x)
  er = erf(x)
  pw = pow(abs(x), e)
  p3 = pow(x, constant(value: 3.0))
  mx = maximum(x, e)
  mn = minimum(e, x)
}""")
def _():
    x, e = inp("x", [2, 3, 5]), inp("e", [5])
    return {"ex": torch.exp(x), "lg": torch.log(x.abs()), "sq": torch.sqrt(x.abs()), "ab": x.abs(),
            "er": torch.erf(x), "pw": torch.pow(x.abs(), e), "p3": torch.pow(x, 3.0),
            "mx": torch.maximum(x, e), "mn": torch.minimum(e, x)}


@case("composites", """graph g(x: f32[2, 3, 4, 5]) -> (
    lr: f32[2, 3, 4, 5], lr2: f32[2, 3, 4, 5], cl: f32[2, 3, 4, 5], cm: f32[2, 3, 4, 5], r6: f32[2, 3, 4, 5],
    hs: f32[2, 3, 4, 5], ho: f32[2, 3, 4, 5], hw: f32[2, 3, 4, 5], si: f32[2, 3, 4, 5], ge: f32[2, 3, 4, 5],
    gt: f32[2, 3, 4, 5], ng: f32[2, 3, 4, 5], rc: f32[2, 3, 4, 5], gm: f32[2, 3, 1, 1]) {
  big = mul(x, constant(value: 8.0))
  lr = leaky_relu(x, alpha: 0.1)
  lr2 = leaky_relu(x, alpha: 1.5)
  cl = clip(x, min: -0.5, max: 0.25)
  cm = clip(x, min: -0.5)
  r6 = relu6(big)
  hs = hard_sigmoid(big)
  ho = hard_sigmoid(big, alpha: 0.2, beta: 0.5)
  hw = hard_swish(big)
  si = silu(big)
  ge = gelu(big)
  gt = gelu(big, approximate: tanh)
  ng = neg(x)
  rc = reciprocal(x)
  gm = global_max_pool2d(x)
}""")
def _():
    x = inp("x", [2, 3, 4, 5])
    big = x * 8.0
    return {"lr": F.leaky_relu(x, 0.1), "lr2": F.leaky_relu(x, 1.5), "cl": torch.clamp(x, -0.5, 0.25),
            "cm": torch.clamp(x, min=-0.5), "r6": F.relu6(big), "hs": F.hardsigmoid(big),
            "ho": torch.clamp(0.2 * big + 0.5, 0, 1), "hw": F.hardswish(big), "si": F.silu(big), "ge": F.gelu(big),
            "gt": F.gelu(big, approximate="tanh"), "ng": -x, "rc": torch.reciprocal(x),
            "gm": F.adaptive_max_pool2d(x, 1)}


@case("pad", """graph g(x: f32[2, 3, 5, 6]) -> (c: f32[2, 6, 8, 9], r: f32[2, 3, 11, 10], e: f32[2, 3, 8, 11]) {
  c = pad(x, pads: [0, 1, 2, 0, 0, 2, 1, 3], value: -1.5)
  r = pad(x, pads: [0, 0, 2, 3, 0, 0, 4, 1], mode: reflect)
  e = pad(x, pads: [0, 0, 3, 1, 0, 0, 0, 4], mode: edge)
}""")
def _():
    x = inp("x", [2, 3, 5, 6])
    return {"c": F.pad(x, (0, 3, 2, 1, 1, 2), value=-1.5), "r": F.pad(x, (3, 1, 2, 4), mode="reflect"),
            "e": F.pad(x, (1, 4, 3, 0), mode="replicate")}


def onnx_lrn(x, size, alpha, beta, bias):
    """ONNX LRN: channels c − ⌊(size−1)/2⌋ … c + ⌈(size−1)/2⌉ (F.local_response_norm agrees for
    an odd size; for an even one its larger half is before c)."""
    sq = F.pad(x * x, (0, 0) * (x.dim() - 2) + ((size - 1) // 2, size // 2))
    window = sum(sq[:, j:j + x.shape[1]] for j in range(size))
    return x * (bias + alpha / size * window) ** -beta


@case("lrn", """graph g(x: f32[2, 7, 5, 4], v: f32[3, 6, 5]) -> (a: f32[2, 7, 5, 4], b: f32[2, 7, 5, 4], c: f32[3, 6, 5]) {
  a = lrn(x, size: 5, alpha: 0.5, beta: 0.75, bias: 2)
  b = lrn(x, size: 4, alpha: 1.5, beta: 0.6)
  c = lrn(v, size: 3, alpha: 0.75, beta: 1, bias: 0.5)
}""")
def _():
    x, v = inp("x", [2, 7, 5, 4]), inp("v", [3, 6, 5])
    return {"a": F.local_response_norm(x, 5, alpha=0.5, beta=0.75, k=2.0), "b": onnx_lrn(x, 4, 1.5, 0.6, 1.0),
            "c": F.local_response_norm(v, 3, alpha=0.75, beta=1.0, k=0.5)}


@case("softmax_reductions", """graph g(x: f32[2, 3, 4]) -> (s: f32[2, 3, 4], l: f32[2, 3, 4], su: f32[1, 3, 1], me: f32[2, 4], mx: f32[3], all: f32[]) {
  s = softmax(x, axis: 1)
  l = log_softmax(x)
  su = sum(x, axes: [0, 2], keepdims: true)
  me = mean(x, axes: [1])
  mx = max(x, axes: [0, -1])
  all = sum(x)
}""")
def _():
    x = inp("x", [2, 3, 4])
    return {"s": torch.softmax(x, 1), "l": torch.log_softmax(x, -1), "su": x.sum(dim=(0, 2), keepdim=True),
            "me": x.mean(dim=1), "mx": x.amax(dim=(0, 2)), "all": x.sum()}


@case("shapes", """graph g(x: f32[2, 3, 4], y: f32[2, 2, 4]) -> (r: f32[4, 6], f: f32[2, 12], t: f32[4, 2, 3], c: f32[2, 5, 4], sl: f32[2, 3, 2], se: f32[2, 4], p0: f32[2, 1, 4], p1: f32[2, 2, 4]) {
  r = reshape(x, shape: [4, -1])
  f = flatten(x)
  t = transpose(x, perm: [2, 0, 1])
  c = concat(x, y, axis: 1)
  sl = slice(x, axis: 2, start: -3, step: 2)
  se = select(x, axis: 1, index: -1)
  p0, p1 = split(x, axis: 1, sizes: [1, 2])
}""")
def _():
    x, y = inp("x", [2, 3, 4]), inp("y", [2, 2, 4])
    p0, p1 = torch.split(x, [1, 2], dim=1)
    return {"r": x.reshape(4, -1), "f": torch.flatten(x, 1), "t": x.permute(2, 0, 1), "c": torch.cat([x, y], 1),
            "sl": x[:, :, -3::2], "se": x[:, -1], "p0": p0, "p1": p1}


@case("lstm", """graph g(x: f32[2, 4, 3]) -> (u: f32[2, 4, 5], b: f32[2, 4, 10]) {
  u = lstm(x, hidden: 5)
  b = lstm(x, hidden: 5, bidirectional: true)
}""")
def _():
    x = inp("x", [2, 4, 3])
    out = {}
    for name, bi in [("u", False), ("b", True)]:
        m = torch.nn.LSTM(3, 5, batch_first=True, bidirectional=bi)
        # The spec's layer `u = lstm(…)` names its parameters `u.weight_ih_l0`, ….
        m.load_state_dict({n: par(f"{name}.{n}", list(p.shape)) for n, p in m.named_parameters()})
        out[name] = m(x)[0]
    return out


@case("layer_norm", """graph g(x: f32[2, 3, 5]) -> (y: f32[2, 3, 5], z: f32[2, 3, 5]) {
  param w: f32[5]
  param b: f32[5]
  param w2: f32[3, 5]
  y = layer_norm(x, w, b)
  z = layer_norm(x, w2, axis: -2, eps: 0.001)
}""")
def _():
    x = inp("x", [2, 3, 5])
    return {"y": F.layer_norm(x, [5], par("w", [5]), par("b", [5])),
            "z": F.layer_norm(x, [3, 5], par("w2", [3, 5]), None, eps=0.001)}


@case("cross_entropy", """graph g(logits: f32[5, 4], target: i64[5]) -> (loss: f32[]) {
  loss = cross_entropy(logits, target)
}""")
def _(): return {"loss": F.cross_entropy(inp("logits", [5, 4]), inp("target", [5], "i64"))}


STUDY = {
    "bilstm": ({"B": 2, "C": 5}, lambda: BiLSTM(5), [("mfcc", [2, 768, 128])]),
    "bilstm_attention1d": ({"B": 2, "C": 5}, lambda: BiLSTM(5, attention=1), [("mfcc", [2, 768, 128])]),
    "bilstm_attention2d": ({"B": 2, "C": 5}, lambda: BiLSTM(5, attention=64), [("mfcc", [2, 768, 128])]),
    "resnet18": ({"B": 2, "C": 10, "H": 32, "W": 32}, lambda: ResNet18(10), [("image", [2, 3, 32, 32])]),
    "resnet18_lstm": ({"B": 2, "T": 3, "C": 7, "H": 32, "W": 32}, lambda: CNNLSTM(ResNet18(classes=None), 7),
                      [("frames", [2, 3, 3, 32, 32])]),
    "vgg19_lstm": ({"B": 1, "T": 2, "C": 7, "H": 32, "W": 32}, lambda: CNNLSTM(vgg19_features(), 7),
                   [("frames", [1, 2, 3, 32, 32])]),
}


def as_json(t):
    t = t.detach()
    return {"shape": list(t.shape), "data": [float(v) for v in t.reshape(-1).tolist()]}


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name, (spec, fn) in OPS.items():
        outputs = fn()
        with open(os.path.join(out_dir, name + ".graph"), "w") as f:
            f.write(spec + "\n")
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump({"outputs": {k: as_json(v) for k, v in outputs.items()}}, f)
        print(name, {k: list(v.shape) for k, v in outputs.items()})
    for name, (bindings, make, inputs) in STUDY.items():
        torch.manual_seed(0)
        model = make().double().eval()
        shapes = {k: (list(v.shape), "i64" if v.dtype == torch.int64 else "f32") for k, v in model.state_dict().items()}
        state = {k: torch.from_numpy(v if v.dtype == np.int64 else v.astype(np.float64))
                 for k, v in detrand.parameters(shapes).items()}
        model.load_state_dict(state)
        with torch.no_grad():
            logits = model(*[inp(n, s) for n, s in inputs])
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump({"spec": name, "bindings": bindings, "outputs": {"logits": as_json(logits)}}, f)
        print(name, list(logits.shape), float(logits.abs().max()))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Tests/GlassboxRuntimeTests/Fixtures/forward")
