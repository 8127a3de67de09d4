#!/usr/bin/env python3
"""What one call costs through each way into Glassbox, against ONNX Runtime's
`InferenceSession.run` on the same model with the same weights.

    make lib && swift build -c release --product glassbox
    /work/venv/bin/python tools/bench/api_overhead.py [--calls 5000] [--threads 1] [--study]

The model is tools/bench/tiny_bilstm.graph (16 frames of 8 features, a BiLSTM of 8 units per
direction, 5 classes: its compute is a few microseconds, so the times are mostly the calls);
`--study` adds the study's bilstm (graphs/bilstm.graph, 768 x 128, B = 1). The PyTorch twin
(seed 0) gives the weights: saved as safetensors for `glassbox compile --weights`, and exported
to ONNX (torch.onnx.export, opset 17). The outputs of the three are checked to agree first.

Rows, each the median over CALLS calls after at least 250 ms of warm-up (with the 10th and
90th percentiles), the input a [1, ...] float32 array:
  swift   Session.run(["mfcc": tensor]) from Swift (tools/bench/api_overhead.swift, -O)
  c       gbx_session_run + gbx_result_free from C (tools/bench/api_overhead.c, -O2)
  python  m.run({"mfcc": x}) from Python (ctypes; numpy in and out)
  ort     InferenceSession.run(None, {"mfcc": x}), intra_op_num_threads = --threads
Needs a Python with torch, onnx, onnxruntime and numpy; run it on an idle machine.
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
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RELEASE = os.path.join(ROOT, ".build", "release")
os.environ.setdefault("GLASSBOX_LIBRARY", os.path.join(RELEASE, "libglassbox.so"))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))

import glassbox  # noqa: E402


def cpu_name():
    """lscpu's model name, family and model, and CPU count (`AMD EPYC, family 26 model 2, 2 CPUs`)."""
    fields = {}
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return (f"{fields.get('Model name', 'unknown CPU')}, family {fields.get('CPU family', '?')} "
            f"model {fields.get('Model', '?')}, {fields.get('CPU(s)', '?')} CPUs")


def write_safetensors(path, tensors):
    """A safetensors file of float32 tensors (the format: an 8-byte header length, a JSON header
    of dtypes, shapes and offsets, then the raw little-endian data)."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = np.ascontiguousarray(t.detach().numpy(), dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def twin(case):
    """The PyTorch module of a case, its spec, its bindings and its input shape."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    if case == "tiny_bilstm":
        class TinyBiLSTM(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(8, 8, batch_first=True, bidirectional=True)
                self.classifier = nn.Linear(16, 5)

            def forward(self, mfcc):
                h, _ = self.lstm(mfcc)
                return self.classifier(h[:, -1])

        return TinyBiLSTM().eval(), os.path.join(ROOT, "tools", "bench", "tiny_bilstm.graph"), [], (1, 16, 8)
    from models import BiLSTM
    return BiLSTM(5).eval(), os.path.join(ROOT, "graphs", "bilstm.graph"), ["--bind", "C=5"], (1, 768, 128)


def timed(call, calls):
    """Median, 10th and 90th percentile of `call()` in microseconds, after >= 250 ms of warm-up."""
    start = time.perf_counter()
    n = 0
    while n < 10 or time.perf_counter() - start < 0.25:
        call()
        n += 1
    times = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        call()
        times.append((time.perf_counter_ns() - t0) / 1e3)
    times.sort()
    return {"median_us": statistics.median(times), "p10_us": times[calls // 10], "p90_us": times[calls * 9 // 10]}


def build_native(work):
    """The C and Swift timers, against the release build."""
    c = os.path.join(work, "api_overhead_c")
    subprocess.run(["cc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-I", os.path.join(ROOT, "include"),
                    os.path.join(ROOT, "tools", "bench", "api_overhead.c"), "-L", RELEASE, "-lglassbox",
                    f"-Wl,-rpath,{RELEASE}", "-lm", "-o", c], check=True)
    swift = os.path.join(work, "api_overhead_swift")
    # The Glassbox module's code lives in libGlassboxC.so (the C API's library links it whole);
    # the Swift timer imports the module and links that library. The C modules the runtime
    # imports are found by their module maps.
    maps = [f"-Xcc -fmodule-map-file={os.path.join(ROOT, 'Sources', m, 'module.modulemap')}"
            for m in ["CBLAS", "CPrefetch", "CFFmpeg", "CSndfile", "CGraphviz"]]
    maps += [f"-Xcc -fmodule-map-file={os.path.join(RELEASE, m + '.build', 'module.modulemap')}"
             for m in ["CKernels", "CMediaLoader"]]
    command = (f"swiftc -O -I {RELEASE}/Modules {' '.join(maps)} {ROOT}/tools/bench/api_overhead.swift "
               f"-L {RELEASE} -lGlassboxC -Xlinker -rpath -Xlinker {RELEASE} -o {swift}")
    subprocess.run(command, shell=True, check=True)
    return c, swift


def native(binary, model, threads, calls, shape):
    out = subprocess.run([binary, model, str(threads), str(calls), *map(str, shape)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{binary} failed:\n{out.stderr}")
    return json.loads(out.stdout)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--study", action="store_true", help="also the study's bilstm (768 x 128)")
    a = p.parse_args()
    import onnxruntime as ort
    import torch

    glassbox_cli = os.path.join(RELEASE, "glassbox")
    work = tempfile.mkdtemp(prefix="glassbox-api-bench-")
    c_timer, swift_timer = build_native(work)
    print(f"CPU: {cpu_name()}; threads {a.threads}; {a.calls} calls per row; glassbox {glassbox.version()} "
          f"(release), onnxruntime {ort.__version__}, torch {torch.__version__}")
    print(f"{'model':<14} {'way in':<8} {'median µs':>10} {'p10':>8} {'p90':>8}  vs ORT")
    for case in ["tiny_bilstm"] + (["bilstm"] if a.study else []):
        module, spec, binds, shape = twin(case)
        weights = os.path.join(work, f"{case}.safetensors")
        model = os.path.join(work, f"{case}.model")
        onnx_path = os.path.join(work, f"{case}.onnx")
        write_safetensors(weights, module.state_dict())
        subprocess.run([glassbox_cli, "compile", spec, *binds, "--weights", weights, "-o", model], check=True,
                       capture_output=True)
        x = np.sin(np.arange(int(np.prod(shape))) * 0.37).astype(np.float32).reshape(shape)
        with warnings.catch_warnings():  # the exporter's notes on LSTMs and batch sizes
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (torch.from_numpy(x),), onnx_path, input_names=["mfcc"],
                              output_names=["logits"], opset_version=17, dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = a.threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        m = glassbox.load(model, threads=a.threads)
        with torch.no_grad():
            expected = module(torch.from_numpy(x)).numpy()
        ours, theirs = m.run({"mfcc": x})["logits"], session.run(None, {"mfcc": x})[0]
        scale = float(np.abs(expected).max())
        assert np.abs(ours - expected).max() <= 1e-5 * scale and np.abs(theirs - expected).max() <= 1e-5 * scale, \
            (ours, theirs, expected)
        rows = {
            "swift": native(swift_timer, model, a.threads, a.calls, shape),
            "c": native(c_timer, model, a.threads, a.calls, shape),
            "python": timed(lambda: m.run({"mfcc": x}), a.calls),
            "ort": timed(lambda: session.run(None, {"mfcc": x}), a.calls),
        }
        for way, r in rows.items():
            print(f"{case:<14} {way:<8} {r['median_us']:>10.1f} {r['p10_us']:>8.1f} {r['p90_us']:>8.1f}  "
                  f"{r['median_us'] / rows['ort']['median_us']:.2f}x")
        m.close()


if __name__ == "__main__":
    main()
