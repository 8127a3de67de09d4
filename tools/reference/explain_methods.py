"""Expected maps of the explanation methods beyond Grad-CAM — LayerCAM, XGrad-CAM, HiRes-CAM,
Score-CAM and Eigen-CAM from pytorch-grad-cam 1.5.7; Integrated Gradients, SmoothGrad, VarGrad
and Occlusion from Captum 0.9 — computed by the peer libraries themselves on small PyTorch twins
of two specs written here (a tiny CNN and a tiny CNN-LSTM), with deterministic weights and inputs
(detrand.py ≡ GlassboxReference.DeterministicTensors), in float64.

    /work/venv/bin/python tools/reference/explain_methods.py Tests/GlassboxExplainTests/Fixtures

A fixture holds the spec's source (`source`), its bindings, the class explained and the
expected tensors, by the names `LowerTaps` gives its outputs (`layercam`, `layercam.upsampled`,
`ig`, …). Library versions are written into the fixture.

pytorch-grad-cam imports torchvision (for image utilities and a box-IoU target) and scikit-learn
(for methods not used here) at import time; neither matches the local torch here, so both are
stubbed as empty modules before the import. The methods' own code runs unchanged. Its raw maps
(after the ReLU, before `scale_cam_image` normalises and resizes them with OpenCV) are captured
by wrapping `scale_cam_image`; the final output is compared as well, with `.upsampled`.

SmoothGrad and VarGrad use Glassbox's noise: Captum's NoiseTunnel draws its noise with
`torch.normal`, which is replaced during the call by the samples `LowerTaps` makes
(SplitMix64 seeded with `seed ^ fnv1a("smoothgrad")`, Box–Muller, the same sample `s` for every
example), laid out as NoiseTunnel lays out its copies (example-major, `repeat_interleave`).
"""
import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import detrand

torch.set_default_dtype(torch.float64)


def _stub(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


if importlib.util.find_spec("torchvision") is None:
    for _name in ["torchvision", "torchvision.transforms", "torchvision.transforms.functional", "torchvision.ops"]:
        _stub(_name, Compose=None, Normalize=None, ToTensor=None, resize=None, box_iou=None)
if importlib.util.find_spec("sklearn") is None:
    _stub("sklearn")
    _stub("sklearn.decomposition", NMF=None, KernelPCA=None)

import captum  # noqa: E402
import pytorch_grad_cam  # noqa: E402
from captum.attr import IntegratedGradients, NoiseTunnel, Occlusion, Saliency  # noqa: E402
from pytorch_grad_cam import EigenCAM, HiResCAM, LayerCAM, ScoreCAM, XGradCAM  # noqa: E402
from pytorch_grad_cam import base_cam  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

SIZE, CLASSES = 16, 5

TINY_CNN = """graph tiny_cnn(image: f32[B, 3, 16, 16]) -> (logits: f32[B, 5]) {
  conv1 = conv2d(image, out: 8, kernel: 3, padding: 1)
  relu1 = relu(conv1)
  conv2 = conv2d(relu1, out: 16, kernel: 3, stride: 2, padding: 1)
  features = relu(conv2)
  conv3 = conv2d(features, out: 16, kernel: 3, padding: 1)
  pooled = global_avg_pool2d(relu(conv3))
  fc = linear(flatten(pooled), out: 5)
  logits = fc
}
"""

TINY_CNN_LSTM = """graph tiny_cnn_lstm(frames: f32[B, T, 3, 16, 16]) -> (logits: f32[B, 5]) {
  cnn = each_step(trunk, frames)
  lstm = lstm(cnn, hidden: 8)
  last = select(lstm, axis: 1, index: -1)
  classifier = linear(last, out: 5)
  logits = classifier
}

block trunk(image) {
  conv1 = conv2d(image, out: 8, kernel: 3, padding: 1)
  relu1 = relu(conv1)
  conv2 = conv2d(relu1, out: 16, kernel: 3, stride: 2, padding: 1)
  features = relu(conv2)
  conv3 = conv2d(features, out: 16, kernel: 3, padding: 1)
  return flatten(global_avg_pool2d(relu(conv3)))
}
"""


class Trunk(nn.Module):
    """The spec's convolutions; `features` is the ReLU module whose output the CAMs map (a
    convolution follows it, so the class score's gradient varies over its positions and the
    CAM methods differ)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.features = nn.ReLU()
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1)

    def forward(self, x):
        return F.relu(self.conv3(self.features(self.conv2(self.relu1(self.conv1(x))))))


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = Trunk()
        self.fc = nn.Linear(16, CLASSES)

    def forward(self, x):
        return self.fc(self.trunk(x).mean(dim=(2, 3)))


class TinyCNNLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.cnn = Trunk()
        self.lstm = nn.LSTM(16, 8, batch_first=True)
        self.classifier = nn.Linear(8, CLASSES)

    def forward(self, frames):
        b, t = frames.shape[:2]
        x = self.cnn(frames.reshape(b * t, *frames.shape[2:])).mean(dim=(2, 3))
        h, _ = self.lstm(x.reshape(b, t, -1))
        return self.classifier(h[:, -1])


class Unfolding(nn.Module):
    """pytorch-grad-cam takes a 5-axis input for a volume; a clip is handed to it as
    [B, T·3, H, W] with this model unfolding it."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x.reshape(x.shape[0], -1, 3, *x.shape[2:]))


def load(model, prefix_map):
    """Deterministic weights by the spec's parameter names (`prefix_map`: PyTorch → spec)."""
    def spec_name(k):
        for a, b in prefix_map.items():
            if k.startswith(a):
                return b + k[len(a):]
        return k
    shapes = {spec_name(k): (list(v.shape), "f32") for k, v in model.state_dict().items()}
    values = detrand.parameters(shapes)
    model.load_state_dict({k: torch.from_numpy(values[spec_name(k)].astype(np.float64))
                           for k in model.state_dict()})
    return model.double().eval()


def inp(name, shape):
    return torch.from_numpy(detrand.tensor("input:" + name, shape).astype(np.float64))


def tensor_json(t):
    t = t.detach() if isinstance(t, torch.Tensor) else torch.as_tensor(np.asarray(t))
    return {"shape": list(t.shape), "data": [float(v) for v in t.reshape(-1).tolist()]}


@contextlib.contextmanager
def raw_cams(store):
    """Records the maps pytorch-grad-cam hands to `scale_cam_image` (its raw, ReLU'd maps)."""
    original = base_cam.scale_cam_image

    def recording(cam, target_size=None):
        store.append(np.array(cam, dtype=np.float64))
        return original(cam, target_size)
    base_cam.scale_cam_image = recording
    try:
        yield
    finally:
        base_cam.scale_cam_image = original


def grad_cam_library(method, model, layer, x, klass, **extra):
    """(raw maps [N, h, w], the library's output [N, H, W]) of a pytorch-grad-cam method."""
    store = []
    with raw_cams(store), method(model=model, target_layers=[layer]) as cam:
        for k, v in extra.items():
            setattr(cam, k, v)
        out = cam(input_tensor=x, targets=[ClassifierOutputTarget(klass)] * x.shape[0])
    return store[0], out


# SplitMix64 and Box–Muller as LowerTaps draws SmoothGrad's noise.
MASK = (1 << 64) - 1


def fnv1a(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def splitmix_normals(seed, count):
    state = seed & MASK
    out = np.empty(count, dtype=np.float64)

    def draw():
        nonlocal state
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)
    for i in range(count):
        u1 = 1 - (draw() >> 11) * 2.0 ** -53
        u2 = (draw() >> 11) * 2.0 ** -53
        out[i] = math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
    return out


def glassbox_noise(seed, samples, shape, stdev):
    """[samples, *shape] (one example's axes), Float32 as the program holds it."""
    n = splitmix_normals(seed ^ fnv1a("smoothgrad"), samples * int(np.prod(shape)))
    return torch.from_numpy((n * stdev).astype(np.float32).astype(np.float64).reshape(samples, *shape))


@contextlib.contextmanager
def fixed_normal(noise, batch):
    """`torch.normal(0, std)` returns NoiseTunnel's copies' noise from `noise` [S, …]: copy
    `i·S + s` (example i, sample s) gets sample s."""
    original = torch.normal

    def fixed(mean, std, *args, **kwargs):
        return noise.repeat(batch, *[1] * (noise.dim() - 1)).reshape(std.shape)
    torch.normal = fixed
    try:
        yield
    finally:
        torch.normal = original


def per_example_noise(noise, batch):
    """NoiseTunnel's copy order is example-major: [N·S, …] with copy i·S + s = noise[s]."""
    return noise[None].expand(batch, *noise.shape).reshape(batch * noise.shape[0], *noise.shape[1:])


def best_class(model, x, features_of):
    """The class whose LayerCAM map has the most positive mass (a random model leaves some
    classes with all-zero maps, which would test nothing)."""
    masses = []
    for k in range(CLASSES):
        raw, _ = grad_cam_library(LayerCAM, model, features_of(model), x, k)
        masses.append(float(raw.sum()))
    return int(np.argmax(masses))


def image_fixture():
    model = load(TinyCNN(), {"trunk.": ""})
    batch = 2
    x = inp("image", [batch, 3, SIZE, SIZE])
    logits = model(x)
    klass = best_class(model, x, lambda m: m.trunk.features)
    out = {"logits": tensor_json(logits)}
    for name, method in [("layercam", LayerCAM), ("xgradcam", XGradCAM), ("hirescam", HiResCAM),
                         ("scorecam", ScoreCAM), ("eigencam", EigenCAM)]:
        extra = {"batch_size": 4} if method is ScoreCAM else {}
        raw, final = grad_cam_library(method, model, model.trunk.features, x, klass, **extra)
        if method is EigenCAM:
            raw_eigen = raw
        out[name] = tensor_json(raw)
        out[name + ".upsampled"] = tensor_json(final)
    # Eigen-CAM's projection before the ReLU, with the library's SVD sign (arbitrary), for
    # comparing up to the sign convention.
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection
    features = model.trunk.features
    acts = []
    handle = features.register_forward_hook(lambda m, i, o: acts.append(o.detach()))
    model(x)
    handle.remove()
    projection = get_2d_projection(acts[0].numpy()).astype(np.float64)
    out["eigencam.projection"] = tensor_json(projection)
    # Glassbox's sign: the projection that correlates positively with the mean activation.
    sign = np.sign((projection * acts[0].numpy().mean(axis=1)).sum(axis=(1, 2)))
    out["eigencam.signed"] = tensor_json(np.maximum(sign[:, None, None] * projection, 0))
    out["eigencam.library_sign_agrees"] = tensor_json(
        np.array([float(np.allclose(np.maximum(sign[i] * projection[i], 0), raw_eigen[i], atol=1e-6))
                  for i in range(batch)]))
    # Captum.
    target = torch.full([batch], klass)
    ig = IntegratedGradients(model)
    for steps, method in [(32, "gausslegendre"), (7, "riemann_trapezoid")]:
        attr = ig.attribute(x, baselines=0.25, target=target, n_steps=steps, method=method, internal_batch_size=64)
        out[f"ig.{steps}.{method}"] = tensor_json(attr)
    samples, stdev, seed = 8, 0.3, 7
    noise = glassbox_noise(seed, samples, [3, SIZE, SIZE], stdev)
    nt = NoiseTunnel(Saliency(model))
    for kind in ["smoothgrad", "vargrad"]:
        with fixed_normal(noise, batch):
            attr = nt.attribute(x, nt_type=kind, nt_samples=samples, stdevs=stdev, target=target, abs=False)
        out[kind] = tensor_json(attr)
    occlusion = Occlusion(model)
    attr = occlusion.attribute(x, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2), baselines=0.0, target=target,
                               perturbations_per_eval=16)
    out["occlusion"] = tensor_json(attr)
    # Each expected tensor's tap options, as a spec writes them.
    options = {"ig.32.gausslegendre": "baseline: 0.25, steps: 32",
               "ig.7.riemann_trapezoid": "baseline: 0.25, steps: 7, method: riemann_trapezoid",
               "smoothgrad": f"samples: {samples}, stdev: {stdev}, seed: {seed}",
               "vargrad": f"samples: {samples}, stdev: {stdev}, seed: {seed}",
               "occlusion": "window: 4, stride: 2", "scorecam": "batch: 4"}
    return {"source": TINY_CNN, "bindings": {"B": batch}, "class": klass, "value": "features", "input": "image",
            "options": options, "outputs": out, "versions": versions()}


def clip_fixture():
    model = load(TinyCNNLSTM(), {})
    frames = 3
    x = inp("frames", [1, frames, 3, SIZE, SIZE])
    logits = model(x)
    klass = best_class(Unfolding(model), x.reshape(1, frames * 3, SIZE, SIZE), lambda m: m.inner.cnn.features)
    out = {"logits": tensor_json(logits)}
    # The CAM methods hook the trunk's ReLU, whose output holds every frame ([T, 16, 8, 8]):
    # the library's maps are then per frame, normalised per frame.
    folded = x.reshape(1, frames * 3, SIZE, SIZE)
    for name, method in [("layercam", LayerCAM), ("xgradcam", XGradCAM), ("hirescam", HiResCAM)]:
        raw, final = grad_cam_library(method, Unfolding(model), model.cnn.features, folded, klass)
        out[name] = tensor_json(raw.reshape(1, frames, *raw.shape[1:]))
        out[name + ".upsampled.frame"] = tensor_json(final.reshape(1, frames, *final.shape[1:]))
    target = torch.tensor([klass])
    attr = IntegratedGradients(model).attribute(x, baselines=0.0, target=target, n_steps=16, internal_batch_size=16)
    out["ig"] = tensor_json(attr)
    # Occlusion of each frame on its own: a window over the frame's channels, one frame deep.
    attr = Occlusion(model).attribute(x, sliding_window_shapes=(1, 3, 4, 4), strides=(1, 3, 4, 4), baselines=0.0,
                                      target=target, perturbations_per_eval=16)
    out["occlusion"] = tensor_json(attr)
    return {"source": TINY_CNN_LSTM, "bindings": {"B": 1, "T": frames}, "class": klass, "value": "cnn.features",
            "input": "frames", "options": {"ig": "steps: 16", "occlusion": "window: 4"}, "outputs": out, "versions": versions()}


def versions():
    return {"torch": torch.__version__, "captum": captum.__version__,
            "grad-cam": importlib.metadata.version("grad-cam")}


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name, fixture in [("explain_methods_image", image_fixture()), ("explain_methods_clip", clip_fixture())]:
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump(fixture, f)
        print(name, "class", fixture["class"], {k: v["shape"] for k, v in fixture["outputs"].items()})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Tests/GlassboxExplainTests/Fixtures")
