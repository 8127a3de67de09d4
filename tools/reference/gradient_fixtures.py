"""Expected training-step results of the study models, computed by PyTorch in float64 on
deterministic inputs and weights (detrand.py ≡ GlassboxReference.DeterministicTensors): the
mean cross-entropy loss against `target`, and the gradients of that loss for every parameter
and for the input, in training mode (batch norm on batch statistics).

    /tmp/torchvenv/bin/python tools/reference/gradient_fixtures.py Tests/GlassboxRuntimeTests/Fixtures/gradient

Inputs are as in forward_fixtures.py; `target` is the i64 input `input:target`, floor((u + 1)·2).
To keep fixtures small, each gradient of a study model is summarised by its sum, its L2 norm,
its largest magnitude and 24 sampled elements (at ⌊i·n/24⌋ of the flattened tensor).

Small models of the same layers (FULL: a spec each, written beside its fixture) get every
element of every gradient instead, into OUT_DIR/../gradient_full/NAME.{graph,json}: the Float64
reference interpreter is compared with them to ~1e-9, as with the forward fixtures.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

import detrand
from forward_fixtures import inp
from models import BiLSTM, CNNLSTM, ResNet18, vgg19_features

torch.set_default_dtype(torch.float64)

STUDY = {
    "bilstm": ({"B": 2, "C": 5}, lambda: BiLSTM(5), ("mfcc", [2, 768, 128])),
    "bilstm_attention1d": ({"B": 2, "C": 5}, lambda: BiLSTM(5, attention=1), ("mfcc", [2, 768, 128])),
    "bilstm_attention2d": ({"B": 2, "C": 5}, lambda: BiLSTM(5, attention=64), ("mfcc", [2, 768, 128])),
    "resnet18": ({"B": 2, "C": 10, "H": 32, "W": 32}, lambda: ResNet18(10), ("image", [2, 3, 32, 32])),
    "resnet18_lstm": ({"B": 2, "T": 3, "C": 7, "H": 32, "W": 32}, lambda: CNNLSTM(ResNet18(classes=None), 7),
                      ("frames", [2, 3, 3, 32, 32])),
    "vgg19_lstm": ({"B": 1, "T": 2, "C": 7, "H": 32, "W": 32}, lambda: CNNLSTM(vgg19_features(), 7),
                   ("frames", [1, 2, 3, 32, 32])),
}

SAMPLES = 24


def summary(t):
    v = t.detach().reshape(-1)
    n = v.numel()
    idx = sorted({int(i * n / SAMPLES) for i in range(min(SAMPLES, n))})
    return {"shape": list(t.shape), "sum": float(v.sum()), "norm": float(v.norm()), "absmax": float(v.abs().max()),
            "indices": idx, "values": [float(v[i]) for i in idx]}


def par(name, shape):
    p = torch.from_numpy(detrand.parameters({name: (shape, "f32")})[name].astype(np.float64))
    return p.requires_grad_(True)


def lstm_module(name, features, hidden):
    m = torch.nn.LSTM(features, hidden, batch_first=True, bidirectional=True)
    m.load_state_dict({n: par(f"{name}.{n}", list(p.shape)).detach() for n, p in m.named_parameters()})
    return m, {f"{name}.{n}": p for n, p in m.named_parameters()}


# name: (spec, function returning (logits, {parameter: tensor}, {input: tensor}))
FULL = {}


def full(name, spec):
    def register(fn):
        FULL[name] = (spec, fn)
        return fn
    return register


@full("bilstm_last_small", """graph bilstm_last_small(mfcc: f32[2, 5, 4]) -> (logits: f32[2, 4]) {
  lstm = lstm(mfcc, hidden: 3, bidirectional: true)
  last = select(lstm, axis: 1, index: -1)
  classifier = linear(last, out: 4)
  logits = classifier
}""")
def _():
    x = inp("mfcc", [2, 5, 4]).requires_grad_(True)
    lstm, params = lstm_module("lstm", 4, 3)
    params.update({k: par(k, s) for k, s in [("classifier.weight", [4, 6]), ("classifier.bias", [4])]})
    h, _ = lstm(x)
    return F.linear(h[:, -1], params["classifier.weight"], params["classifier.bias"]), params, {"mfcc": x}


@full("bilstm_attention_small", """graph bilstm_attention_small(mfcc: f32[2, 5, 4]) -> (logits: f32[2, 4]) {
  lstm = lstm(mfcc, hidden: 3, bidirectional: true)
  attention = linear(tanh(lstm), out: 6)
  weights = softmax(attention, axis: 1)
  context = sum(mul(lstm, weights), axes: [1])
  frame_scores = linear(tanh(lstm), out: 1)
  frames = softmax(reshape(frame_scores, shape: [2, 5]), axis: 1)
  pooled = sum(mul(lstm, reshape(frames, shape: [2, 5, 1])), axes: [1])
  classifier = linear(add(context, pooled), out: 4)
  logits = classifier
}""")
def _():
    x = inp("mfcc", [2, 5, 4]).requires_grad_(True)
    lstm, params = lstm_module("lstm", 4, 3)
    for k, s in [("attention.weight", [6, 6]), ("attention.bias", [6]), ("frame_scores.weight", [1, 6]),
                 ("frame_scores.bias", [1]), ("classifier.weight", [4, 6]), ("classifier.bias", [4])]:
        params[k] = par(k, s)
    h, _ = lstm(x)
    weights = torch.softmax(F.linear(torch.tanh(h), params["attention.weight"], params["attention.bias"]), dim=1)
    frames = torch.softmax(F.linear(torch.tanh(h), params["frame_scores.weight"], params["frame_scores.bias"])
                           .reshape(2, 5), dim=1)
    context = (h * weights).sum(1) + (h * frames.reshape(2, 5, 1)).sum(1)
    return F.linear(context, params["classifier.weight"], params["classifier.bias"]), params, {"mfcc": x}


@full("cnn_small", """graph cnn_small(image: f32[2, 3, 6, 6]) -> (logits: f32[2, 4]) {
  conv1 = conv2d(image, out: 4, kernel: 3, padding: 1, bias: false)
  bn1 = batch_norm(conv1)
  relu1 = relu(bn1)
  pool = max_pool2d(relu1, kernel: 2, stride: 2)
  conv2 = conv2d(pool, out: 4, kernel: 3, padding: 1)
  relu2 = relu(add(conv2, pool))
  avgpool = global_avg_pool2d(relu2)
  fc = linear(flatten(avgpool), out: 4)
  logits = fc
}""")
def _():
    x = inp("image", [2, 3, 6, 6]).requires_grad_(True)
    params = {k: par(k, s) for k, s in [("conv1.weight", [4, 3, 3, 3]), ("bn1.weight", [4]), ("bn1.bias", [4]),
                                        ("conv2.weight", [4, 4, 3, 3]), ("conv2.bias", [4]),
                                        ("fc.weight", [4, 4]), ("fc.bias", [4])]}
    y = F.conv2d(x, params["conv1.weight"], padding=1)
    y = F.relu(F.batch_norm(y, None, None, params["bn1.weight"], params["bn1.bias"], True, 0.1, 1e-5))
    pool = F.max_pool2d(y, 2, 2)
    y = F.relu(F.conv2d(pool, params["conv2.weight"], params["conv2.bias"], padding=1) + pool)
    y = F.adaptive_avg_pool2d(y, 1).flatten(1)
    return F.linear(y, params["fc.weight"], params["fc.bias"]), params, {"image": x}


def full_tensor(t):
    return {"shape": list(t.shape), "data": [float(v) for v in t.detach().reshape(-1).tolist()]}


def write_full(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name, (spec, fn) in FULL.items():
        logits, params, inputs = fn()
        loss = F.cross_entropy(logits, inp("target", [logits.shape[0]], "i64"))
        loss.backward()
        with open(os.path.join(out_dir, name + ".graph"), "w") as f:
            f.write(spec + "\n")
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump({"loss": float(loss.detach()), "gradients": {k: full_tensor(p.grad) for k, p in params.items()},
                       "input_gradients": {k: full_tensor(v.grad) for k, v in inputs.items()}}, f)
        print(name, float(loss), len(params))


def main(out_dir):
    write_full(os.path.join(os.path.dirname(os.path.abspath(out_dir)), "gradient_full"))
    os.makedirs(out_dir, exist_ok=True)
    for name, (bindings, make, (input_name, shape)) in STUDY.items():
        torch.manual_seed(0)
        model = make().double().train()
        shapes = {k: (list(v.shape), "i64" if v.dtype == torch.int64 else "f32") for k, v in model.state_dict().items()}
        state = {k: torch.from_numpy(v if v.dtype == np.int64 else v.astype(np.float64))
                 for k, v in detrand.parameters(shapes).items()}
        model.load_state_dict(state)
        x = inp(input_name, shape).requires_grad_(True)
        target = inp("target", [shape[0]], "i64")
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        gradients = {k: summary(p.grad) for k, p in model.named_parameters()}
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump({"spec": name, "bindings": bindings, "loss": float(loss.detach()), "gradients": gradients,
                       "input_gradients": {input_name: summary(x.grad)}}, f)
        print(name, float(loss), len(gradients))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Tests/GlassboxRuntimeTests/Fixtures/gradient")
