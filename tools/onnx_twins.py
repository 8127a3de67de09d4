#!/usr/bin/env python3
"""PyTorch twins exported with torch.onnx.export and run by the glassbox command.

For each twin (tools/reference/models.py's ResNet-18 and the study's three BiLSTMs, and here
MobileNet-V2, EfficientNet-B0, a GRU classifier and DenseNet-121 written out as torchvision and
the study define them; PyTorch's default initialisation from seed 0, batch norm statistics drawn
so that folding them matters) it exports the model (opset 17, the TorchScript exporter, a dynamic
batch), runs ONNX Runtime and `glassbox run` on the same seeded input and prints the largest
difference relative to the largest output magnitude (within 1e-4 passes). For the CNNs it also
computes Grad-CAM in PyTorch (float64, by hand as pytorch-grad-cam's GradCAM does before resizing:
the predicted class's gradient with respect to the target layer's output, averaged over
positions as channel weights, the weighted channel sum, ReLU) at pytorch-grad-cam's usual target
layer (ResNet's layer4, MobileNet's and EfficientNet's last features block; DenseNet's last ReLU,
the map its global pooling reads, where pytorch-grad-cam's examples take norm5 just before it)
and compares it with `glassbox tap MODEL.onnx gradcam:auto x.npy` (within 1e-3 passes).

    /work/venv/bin/python tools/onnx_twins.py [--glassbox .build/release/glassbox] [--only NAME]
        [--keep DIR]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import warnings
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
from models import BiLSTM, ResNet18  # noqa: E402

warnings.filterwarnings("ignore")


# MARK: torchvision's MobileNet-V2 and EfficientNet-B0, written out (no torchvision in the venv)

class ConvBN(nn.Sequential):
    def __init__(self, cin, cout, kernel=3, stride=1, groups=1, activation=nn.ReLU6):
        layers = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout)]
        if activation is not None:
            layers.append(activation(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        layers = [ConvBN(cin, hidden, 1)] if expand != 1 else []
        layers += [ConvBN(hidden, hidden, 3, stride, groups=hidden), nn.Conv2d(hidden, cout, 1, bias=False),
                   nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision.models.mobilenet_v2 (width 1.0)."""

    def __init__(self, classes=1000):
        super().__init__()
        features = [ConvBN(3, 32, stride=2)]
        cin = 32
        for t, c, n, s in [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
                           [6, 160, 3, 2], [6, 320, 1, 1]]:
            for i in range(n):
                features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        features.append(ConvBN(cin, 1280, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


class SqueezeExcitation(nn.Module):
    def __init__(self, channels, squeezed):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x):
        scale = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(nn.functional.silu(self.fc1(scale))))


class MBConv(nn.Module):
    def __init__(self, cin, cout, kernel, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        layers = [ConvBN(cin, hidden, 1, activation=nn.SiLU)] if expand != 1 else []
        layers += [ConvBN(hidden, hidden, kernel, stride, groups=hidden, activation=nn.SiLU),
                   SqueezeExcitation(hidden, max(1, cin // 4)), ConvBN(hidden, cout, 1, activation=None)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.block(x) if self.use_residual else self.block(x)


class EfficientNetB0(nn.Module):
    """torchvision.models.efficientnet_b0 (stochastic depth is the identity in inference)."""

    def __init__(self, classes=1000):
        super().__init__()
        features = [ConvBN(3, 32, 3, 2, activation=nn.SiLU)]
        for expand, kernel, stride, cin, cout, layers in [[1, 3, 1, 32, 16, 1], [6, 3, 2, 16, 24, 2],
                                                          [6, 5, 2, 24, 40, 2], [6, 3, 2, 40, 80, 3],
                                                          [6, 5, 1, 80, 112, 3], [6, 5, 2, 112, 192, 4],
                                                          [6, 3, 1, 192, 320, 1]]:
            for i in range(layers):
                features.append(MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand))
        features.append(ConvBN(320, 1280, 1, activation=nn.SiLU))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


class DenseLayer(nn.Module):
    def __init__(self, cin, growth=32, size=4):
        super().__init__()
        self.norm1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, size * growth, 1, bias=False)
        self.norm2, self.relu2 = nn.BatchNorm2d(size * growth), nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(size * growth, growth, 3, padding=1, bias=False)

    def forward(self, features):
        x = torch.cat(features, 1)
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class DenseBlock(nn.ModuleDict):
    def __init__(self, layers, cin, growth=32):
        super().__init__({f"denselayer{i + 1}": DenseLayer(cin + i * growth, growth) for i in range(layers)})

    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm, self.relu = nn.BatchNorm2d(cin), nn.ReLU(inplace=True)
        self.conv, self.pool = nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2, 2)


class DenseNet121(nn.Module):
    """torchvision.models.densenet121; its last ReLU is a module here so that Grad-CAM can
    hook the map the global pooling reads."""

    def __init__(self, classes=1000):
        super().__init__()
        layers = [("conv0", nn.Conv2d(3, 64, 7, 2, 3, bias=False)), ("norm0", nn.BatchNorm2d(64)),
                  ("relu0", nn.ReLU(inplace=True)), ("pool0", nn.MaxPool2d(3, 2, 1))]
        channels = 64
        for i, count in enumerate([6, 12, 24, 16]):
            layers.append((f"denseblock{i + 1}", DenseBlock(count, channels)))
            channels += count * 32
            if i != 3:
                layers.append((f"transition{i + 1}", Transition(channels, channels // 2)))
                channels //= 2
        layers.append(("norm5", nn.BatchNorm2d(channels)))
        self.features = nn.Sequential(OrderedDict(layers))
        self.relu = nn.ReLU()
        self.classifier = nn.Linear(channels, classes)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.relu(self.features(x)), 1)
        return self.classifier(torch.flatten(x, 1))


class GRUClassifier(nn.Module):
    """The study's BiLSTM classifier with a GRU: MFCC frames in, the last step to the classes."""

    def __init__(self, classes=5):
        super().__init__()
        self.gru = nn.GRU(128, 32, batch_first=True)
        self.classifier = nn.Linear(32, classes)

    def forward(self, mfcc):
        h, _ = self.gru(mfcc)
        return self.classifier(h[:, -1])


def twins():
    """name: (model, input shape, Grad-CAM target module or None)."""
    torch.manual_seed(0)
    resnet = ResNet18(1000)
    mobilenet = MobileNetV2()
    efficientnet = EfficientNetB0()
    models = {
        "resnet18": (resnet, (1, 3, 224, 224), resnet.layer4),
        "mobilenet_v2": (mobilenet, (1, 3, 224, 224), mobilenet.features),
        "efficientnet_b0": (efficientnet, (1, 3, 224, 224), efficientnet.features),
        "bilstm": (BiLSTM(5), (2, 768, 128), None),
        "bilstm_attention1d": (BiLSTM(5, attention=1), (2, 768, 128), None),
        "bilstm_attention2d": (BiLSTM(5, attention=64), (2, 768, 128), None),
        "gru": (GRUClassifier(), (2, 100, 128), None),
    }
    densenet = DenseNet121()
    models["densenet121"] = (densenet, (1, 3, 224, 224), densenet.relu)
    return models


def randomize_batch_norm(model, g):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                n = m.num_features
                m.running_mean.copy_(torch.from_numpy(g.normal(0, 0.1, n)).float())
                m.running_var.copy_(torch.from_numpy(g.uniform(0.5, 1.5, n)).float())
                m.weight.copy_(torch.from_numpy(g.uniform(0.5, 1.5, n)).float())
                m.bias.copy_(torch.from_numpy(g.normal(0, 0.1, n)).float())


def grad_cam(model, target, x):
    """Grad-CAM at `target`'s output for the predicted class, in float64 (the hooks keep the
    target's output and its gradient, as pytorch-grad-cam's ActivationsAndGradients does)."""
    model = model.double()
    kept = {}

    def forward_hook(_, __, output):
        output.retain_grad()
        kept["map"] = output

    handle = target.register_forward_hook(forward_hook)
    logits = model(torch.from_numpy(x).double())
    handle.remove()
    classes = logits.argmax(dim=1)
    logits.gather(1, classes[:, None]).sum().backward()
    maps = kept["map"]
    weights = maps.grad.mean(dim=(2, 3), keepdim=True)
    model.float()
    return torch.relu((weights * maps).sum(dim=1)).detach().numpy()


def relative(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-6)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--glassbox", default=os.path.join(ROOT, ".build", "release", "glassbox"))
    p.add_argument("--only")
    p.add_argument("--keep", help="keep the exported models and inputs in this folder")
    a = p.parse_args()
    import onnxruntime as ort

    folder = a.keep or tempfile.mkdtemp()
    os.makedirs(folder, exist_ok=True)
    g = np.random.default_rng(0)
    for name, (model, shape, target) in twins().items():
        if a.only and a.only not in name:
            continue
        model.eval()
        randomize_batch_norm(model, g)
        x = g.standard_normal(shape).astype(np.float32)
        path = os.path.join(folder, name + ".onnx")
        torch.onnx.export(model, (torch.from_numpy(x),), path, opset_version=17, dynamo=False,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        expected = session.run(None, {"input": x})[0]
        with torch.no_grad():
            eager = model(torch.from_numpy(x)).numpy()
        np.save(os.path.join(folder, name + ".input.npy"), x)
        out = os.path.join(folder, name + ".out")
        run = subprocess.run([a.glassbox, "run", path, "--input", f"input={os.path.join(folder, name + '.input.npy')}",
                              "-o", out], capture_output=True, text=True)
        if run.returncode != 0:
            print(f"FAIL {name}: {run.stderr.strip()[:300]}")
            continue
        got = np.load(os.path.join(out, "logits.npy"))
        line = (f"{name}: output within {relative(got, expected):.2e} of ONNX Runtime "
                f"(ONNX Runtime within {relative(expected, eager):.2e} of PyTorch)")
        if target is not None:
            cam = grad_cam(model, target, x)
            explained = os.path.join(folder, name + ".gradcam")
            tap = subprocess.run([a.glassbox, "tap", path, "gradcam:auto", os.path.join(folder, name + ".input.npy"),
                                  "--no-pictures", "-o", explained], capture_output=True, text=True)
            if tap.returncode != 0:
                print(f"FAIL {name} Grad-CAM: {tap.stderr.strip()[:300]}")
                continue
            raw = np.load(os.path.join(explained, "gradcam.npy"))
            line += f"; Grad-CAM within {relative(raw, cam):.2e} of PyTorch's ({raw.shape[-2]}×{raw.shape[-1]})"
        print(line, flush=True)


if __name__ == "__main__":
    main()
