"""The ONNX Runtime peer of `glassbox bench`: the PyTorch twin (tools/reference/models.py)
exported with torch.onnx.export, run by onnxruntime's InferenceSession with the same shapes
and thread count. Prints one JSON object like `glassbox bench --json`.

    .venv/bin/python tools/bench/ort_peer.py resnet18 --bind B=1 --bind C=1000 --threads 2
    .venv/bin/python tools/bench/ort_peer.py path/to/model.onnx --threads 2   # an ONNX file as it is

The export runs in a child process and is cached under .build-bench/onnx/ (keyed by the
model and its bindings), so the timing process imports onnxruntime and numpy only: its peak
resident memory is what a program serving the model with ONNX Runtime would have. ONNX
Runtime runs at its best: graph optimisations on (ORT_ENABLE_ALL, which makes its NCHWc
layouts and fused Conv+activation kernels), `intra_op_num_threads` the thread count, one
inter-op thread, spinning allowed.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(ROOT, ".build-bench", "onnx")


def export(name, bindings, path):
    """Exports the twin of `name` at `bindings` to `path` (in this process: it imports torch)."""
    import warnings

    warnings.filterwarnings("ignore")  # the TorchScript exporter's deprecation and LSTM batch notes
    sys.path.insert(0, os.path.join(ROOT, "tools", "bench"))
    sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
    import torch
    from torch_peer import build

    model, shapes = build(name, bindings)
    model.eval()
    inputs = tuple(torch.randn(*s) for s in shapes)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = path + ".tmp"
    torch.onnx.export(model, inputs, temporary, opset_version=17, dynamo=False,
                      input_names=[f"input{i}" for i in range(len(inputs))], output_names=["logits"])
    os.replace(temporary, path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("spec")
    p.add_argument("--bind", action="append", default=[])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--warmup-ms", type=float, default=250.0)
    p.add_argument("--export-only", metavar="PATH", help="export the model to PATH and stop")
    a = p.parse_args()
    name = os.path.basename(a.spec).removesuffix(".graph")
    bindings = {k: int(v) for k, v in (x.split("=") for x in a.bind)}
    if a.export_only:
        export(name, bindings, a.export_only)
        return
    key = name + "".join(f"_{k}{v}" for k, v in sorted(bindings.items()))
    path = a.spec if a.spec.endswith(".onnx") else os.path.join(CACHE, key + ".onnx")
    if not os.path.exists(path):
        subprocess.run([sys.executable, __file__, a.spec, *sum((["--bind", b] for b in a.bind), []),
                        "--export-only", path], check=True, stdout=subprocess.DEVNULL)

    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
             for i in session.get_inputs()}
    start, runs = time.perf_counter(), 0
    while runs < a.warmup or (time.perf_counter() - start) * 1e3 < a.warmup_ms:
        session.run(None, feeds)
        runs += 1
    samples = []
    for _ in range(a.iterations):
        start = time.perf_counter()
        session.run(None, feeds)
        samples.append((time.perf_counter() - start) * 1e3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"medianMs": statistics.median(samples), "minMs": min(samples), "maxMs": max(samples),
                      "peakRSSBytes": peak, "threads": a.threads, "iterations": a.iterations,
                      "onnxruntime": ort.__version__}))


if __name__ == "__main__":
    main()
