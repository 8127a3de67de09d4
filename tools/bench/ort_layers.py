#!/usr/bin/env python3
"""Per-layer times of ONNX Runtime on a twin (tools/bench/ort_peer.py exports it), to set beside
`glassbox bench --profile`: ONNX Runtime's own profiler (SessionOptions.enable_profiling) over
`--iterations` runs after a warm-up, each node's median time (robust to a busy machine), and for
convolutions their effective GFLOP/s (2·Cout·Cin/groups·kh·kw·OH·OW·N over the node's time).

    /work/venv/bin/python tools/bench/ort_layers.py resnet18 --bind B=1 --bind C=1000 --threads 2

An `.onnx` file is run as it is (its dynamic dimensions as 1), beside `glassbox bench FILE.onnx
--profile`, whose kernels carry the ONNX node names (`conv2d r41` is ONNX Runtime's `r41_nchwc`):

    /work/venv/bin/python tools/bench/ort_layers.py .../onnx/backend/test/data/light/light_resnet50.onnx --threads 2
"""
import argparse
import json
import statistics
import os
import subprocess
import sys
import tempfile
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(ROOT, ".build-bench", "onnx")
ORT_PEER = os.path.join(ROOT, "tools", "bench", "ort_peer.py")


def conv_flops(model):
    """Each Conv node's multiply-adds ×2, in graph order, from the model's inferred shapes: the
    optimised graph renames and fuses nodes but keeps the convolutions in this order."""
    import onnx
    from onnx import shape_inference

    model = shape_inference.infer_shapes(model)
    shapes = {}
    for v in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input):
        shapes[v.name] = [d.dim_value for d in v.type.tensor_type.shape.dim]
    for t in model.graph.initializer:
        shapes[t.name] = list(t.dims)
    flops = []
    for n in model.graph.node:
        if n.op_type != "Conv":
            continue
        w, y = shapes.get(n.input[1]), shapes.get(n.output[0])
        flops.append(2.0 * w[0] * w[1] * w[2] * w[3] * y[0] * y[2] * y[3] if w and y else None)
    return flops


def main():
    p = argparse.ArgumentParser()
    p.add_argument("spec")
    p.add_argument("--bind", action="append", default=[])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iterations", type=int, default=50)
    a = p.parse_args()
    name = os.path.basename(a.spec).removesuffix(".graph")
    bindings = {k: int(v) for k, v in (x.split("=") for x in a.bind)}
    key = name + "".join(f"_{k}{v}" for k, v in sorted(bindings.items()))
    path = a.spec if a.spec.endswith(".onnx") else os.path.join(CACHE, key + ".onnx")
    if not os.path.exists(path):
        subprocess.run([sys.executable, ORT_PEER, a.spec, *sum((["--bind", b] for b in a.bind), []),
                        "--export-only", path], check=True, stdout=subprocess.DEVNULL)

    import numpy as np
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    optimized = tempfile.mktemp(suffix=".onnx")
    options.optimized_model_filepath = optimized
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
             for i in session.get_inputs()}
    for _ in range(10):
        session.run(None, feeds)
    # A second session with the profiler: the first wrote the optimised graph (fused names).
    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.gettempdir(), "ort_layers")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    for _ in range(10):
        session.run(None, feeds)
    for _ in range(a.iterations):
        session.run(None, feeds)
    trace = session.end_profiling()
    with open(trace) as f:
        events = json.load(f)
    os.remove(trace)
    flops = conv_flops(onnx.load(path))
    times = defaultdict(list)
    ops = {}
    order = []
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        node = e["name"].removesuffix("_kernel_time")
        if node not in times:
            order.append(node)
        times[node].append(e["dur"] / 1e3)
        ops[node] = e.get("args", {}).get("op_name", "")
    summed = 0.0
    convs = iter(flops)
    for node in order:
        ms = statistics.median(times[node])
        summed += ms
        f = next(convs, None) if ops[node] in ("Conv", "FusedConv") else None
        rate = f"{f / ms / 1e6:8.1f} GFLOP/s" if f else ""
        print(f"{ms:9.3f} ms  {ops[node]:24} {node:40} {rate}")
    print(f"{summed:9.3f} ms  summed over {len(order)} nodes ({a.threads} threads)")
    os.remove(optimized)


if __name__ == "__main__":
    main()
