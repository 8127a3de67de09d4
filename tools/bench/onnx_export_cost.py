#!/usr/bin/env python3
"""What the Grad-CAM tap costs inside ONNX Runtime, against ONNX Runtime's own forward pass on
the same file without taps and against Grad-CAM in PyTorch on the same model.

The model is the PyTorch twin of graphs/resnet18.graph (tools/reference/models.py's ResNet-18,
PyTorch's initialisation from seed 0, batch norm statistics drawn as tools/onnx_twins.py draws
them); its state_dict is compiled into a .model (`glassbox compile --weights`) and exported
twice: `--taps none` and `--taps gradcam`. Timed at batch 1 on one 224×224 image, every
method once per round, alternating, after two warm-up rounds; the median of each, in ms:

- ORT forward: the file without taps (logits);
- ORT + Grad-CAM: the file with the gradcam tap (logits, raw, normalised and upsampled maps,
  the class predicted in the graph);
- pytorch-grad-cam: `GradCAM(model, [model.layer4])(x, targets=None)` (hooks, autograd, min-max scaling and
  the resize to 224×224 with OpenCV — the same outputs);
- PyTorch by hand: the hooks and backward of Grad-CAM written out, no scaling or resize;
- PyTorch forward: the twin's forward pass under `torch.no_grad()`, for scale.

ONNX Runtime and PyTorch use the same number of threads (--threads, default 2). The upsampled
map of the export is compared with pytorch-grad-cam's (the largest difference is printed).

    /work/venv/bin/python tools/bench/onnx_export_cost.py [--glassbox .build/release/glassbox]
        [--rounds 20] [--threads 2] [--model resnet18|resnet18_lstm]

For resnet18_lstm (T=16, 112×112) there is no pytorch-grad-cam form (it has no per-frame target
through an LSTM); the hand-written PyTorch Grad-CAM takes the gradient at the CNN's layer4
output of every frame.
"""
import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import types

import numpy as np
import onnxruntime as ort
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
from models import CNNLSTM, ResNet18  # noqa: E402

# pytorch-grad-cam imports torchvision's transforms for helpers this script does not use, and
# torchvision from PyPI does not match the local torch wheel.
try:
    import torchvision  # noqa: F401
except ImportError:
    transforms = types.ModuleType("torchvision.transforms")
    transforms.__path__ = []
    transforms.Compose = transforms.Normalize = transforms.ToTensor = object
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.resize = None
    sys.modules["torchvision"] = types.ModuleType("torchvision")
    sys.modules["torchvision.transforms"] = transforms
    sys.modules["torchvision.transforms.functional"] = functional
from pytorch_grad_cam import GradCAM  # noqa: E402


def write_safetensors(path, state):
    """A state_dict as safetensors (F32 and I64), without the safetensors package."""
    header, blobs, offset = {}, [], 0
    for name, t in state.items():
        a = t.detach().cpu().numpy()
        a = a.astype(np.int64 if a.dtype.kind == "i" else np.float32)
        data = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": "I64" if a.dtype == np.int64 else "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def randomize_batch_norm(model, g):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                n = m.num_features
                m.running_mean.copy_(torch.from_numpy(g.normal(0, 0.1, n)).float())
                m.running_var.copy_(torch.from_numpy(g.uniform(0.5, 1.5, n)).float())
                m.weight.copy_(torch.from_numpy(g.uniform(0.5, 1.5, n)).float())
                m.bias.copy_(torch.from_numpy(g.normal(0, 0.1, n)).float())


def hand_grad_cam(model, target, x):
    """Grad-CAM by hand: the target's output and its gradient for the predicted class."""
    kept = {}

    def hook(_, __, output):
        output.retain_grad()
        kept["map"] = output

    handle = target.register_forward_hook(hook)
    logits = model(x)
    handle.remove()
    logits.gather(1, logits.argmax(dim=1)[:, None]).sum().backward()
    maps = kept["map"]
    weights = maps.grad.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * maps).sum(dim=1)).detach()


def torch_forward(model, x):
    with torch.no_grad():
        return model(x)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--glassbox", default=os.path.join(ROOT, ".build", "release", "glassbox"))
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", default="resnet18", choices=["resnet18", "resnet18_lstm"])
    p.add_argument("--keep", help="keep the files in this folder")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    folder = a.keep or tempfile.mkdtemp(prefix="onnx_export_cost.")
    os.makedirs(folder, exist_ok=True)

    torch.manual_seed(0)
    if a.model == "resnet18":
        model, shape, bind = ResNet18(1000), (1, 3, 224, 224), []
        target_layer = model.layer4
    else:
        model, shape, bind = CNNLSTM(ResNet18(classes=None), 51), (1, 16, 3, 112, 112), ["--bind", "T=16"]
        target_layer = model.cnn.layer4
    randomize_batch_norm(model, np.random.default_rng(0))
    model.eval()
    weights = os.path.join(folder, a.model + ".safetensors")
    write_safetensors(weights, model.state_dict())
    compiled = os.path.join(folder, a.model + ".model")
    subprocess.run([a.glassbox, "compile", os.path.join(ROOT, "graphs", a.model + ".graph"), "--weights", weights,
                    "-o", compiled], check=True, capture_output=True)
    files = {}
    for taps in ["none", "gradcam"]:
        files[taps] = os.path.join(folder, f"{a.model}.{taps}.onnx")
        subprocess.run([a.glassbox, "export", compiled, "-o", files[taps], "--taps", taps] + bind, check=True,
                       capture_output=True)

    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    sessions = {k: ort.InferenceSession(v, options, providers=["CPUExecutionProvider"]) for k, v in files.items()}
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    xt = torch.from_numpy(x)
    feeds = {"none": {sessions["none"].get_inputs()[0].name: x},
             "gradcam": {sessions["gradcam"].get_inputs()[0].name: x, "target": np.array([-1], np.int64)}}

    methods = {
        "ORT forward (no taps)": lambda: sessions["none"].run(None, feeds["none"]),
        "ORT + Grad-CAM tap": lambda: sessions["gradcam"].run(None, feeds["gradcam"]),
        "PyTorch Grad-CAM by hand": lambda: hand_grad_cam(model, target_layer, xt),
        "PyTorch forward (no_grad)": lambda: torch_forward(model, xt),
    }
    cam = None
    if a.model == "resnet18":
        cam = GradCAM(model=model, target_layers=[model.layer4])
        methods["pytorch-grad-cam GradCAM"] = lambda: cam(input_tensor=xt, targets=None)
    times = {k: [] for k in methods}
    for r in range(a.rounds + 2):
        for name, f in methods.items():
            start = time.perf_counter()
            f()
            if r >= 2:
                times[name].append((time.perf_counter() - start) * 1000)

    gradcam = sessions["gradcam"]
    out = dict(zip([o.name for o in gradcam.get_outputs()], gradcam.run(None, feeds["gradcam"])))
    raw = hand_grad_cam(model, target_layer, xt).numpy()
    raw_onnx = out["gradcam"].reshape(raw.shape)
    print(f"{a.model}, batch {shape[0]}, {a.threads} threads, {a.rounds} rounds alternating; medians:")
    forward = statistics.median(times["ORT forward (no taps)"])
    for name, t in times.items():
        m = statistics.median(t)
        print(f"  {name:28} {m:9.2f} ms   ({m / forward:.2f}× ORT forward)")
    print(f"  export's raw map vs PyTorch's: {np.max(np.abs(raw_onnx - raw)) / max(np.max(np.abs(raw)), 1e-12):.2e} "
          "relative")
    if cam is not None:
        peer = cam(input_tensor=xt, targets=None)
        print(f"  export's upsampled map vs pytorch-grad-cam's: {np.max(np.abs(out['gradcam.upsampled'] - peer)):.2e}")
    sizes = {k: os.path.getsize(v) for k, v in files.items()}
    print(f"  files: {sizes['none']:,} bytes without taps, {sizes['gradcam']:,} with gradcam")


if __name__ == "__main__":
    main()
