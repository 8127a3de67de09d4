#!/usr/bin/env python3
"""ONNX conformance of `glassbox run` on the test models the onnx PyPI package ships.

For each case of onnx/backend/test/data/{light,pytorch-converted,pytorch-operator,simple} it
imports and runs the model with the glassbox command and prints one line: PASS (with the
largest relative difference), FAIL (with the error or the difference) or UNSUPPORTED (with the
operators Glassbox lacks). The oracle is the case's recorded output (test_data_set_0); where a
case has none, ONNX Runtime on the same seeded inputs (onnx's reference evaluator where ONNX
Runtime has no kernel for a case's old opset). The nine `light` models hold every weight
as a ConstantOfShape of 0.02 (so a softmax output is uniform): each is checked twice, as stored
against its recorded output (onnx's dummy input, arange(n)/n), and with its weights redrawn from a
seeded generator against ONNX Runtime; it passes when both do. A difference
is relative to the largest magnitude of the expected output: max|glassbox - expected| /
max|expected| <= 1e-4, over the finite expected elements (NaN and infinities must match where
the expected output has them, as in ONNX's backend tests). The summary at the end is the table
in the README.

    /work/venv/bin/python tools/onnx_conformance.py [--glassbox .build/release/glassbox]
        [--suites light,pytorch-converted,pytorch-operator,simple] [--only NAME] [--threads 2]

Needs numpy, onnx and onnxruntime (the venv of tools/reference/requirements.txt).
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-4


def data_root():
    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")


def cases(suites):
    """(suite, name, model path, inputs or None, expected outputs or None), sorted."""
    out = []
    root = data_root()
    for suite in suites:
        if suite == "light":
            for path in sorted(glob.glob(os.path.join(root, "light", "*.onnx"))):
                name = os.path.basename(path)[:-len(".onnx")]
                out.append((suite, name, path, None, None))
            continue
        for folder in sorted(glob.glob(os.path.join(root, suite, "*"))):
            model = os.path.join(folder, "model.onnx")
            data = os.path.join(folder, "test_data_set_0")
            if not os.path.exists(model):
                continue
            inputs = [read_pb(p) for p in sorted(glob.glob(os.path.join(data, "input_*.pb")), key=pb_index)]
            outputs = [read_pb(p) for p in sorted(glob.glob(os.path.join(data, "output_*.pb")), key=pb_index)]
            out.append((suite, os.path.basename(folder), model, inputs, outputs or None))
    return out


def pb_index(path):
    return int(os.path.basename(path).split("_")[1].split(".")[0])


def read_pb(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def graph_inputs(model):
    """The inputs that are not initializers, in order."""
    initializers = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def dummy_inputs(model):
    """The input the onnx backend test recorded the light models' outputs on: arange(n)/n."""
    feeds = []
    for i in graph_inputs(model):
        shape = [d.dim_value if d.dim_value > 0 else 1 for d in i.type.tensor_type.shape.dim]
        n = int(np.prod(shape))
        feeds.append((np.arange(n).reshape(shape) / n).astype(np.float32))
    return feeds


def redrawn_weights(model, seed=0):
    """A copy whose ConstantOfShape weights are seeded random initializers of the same shapes:
    normal(0, 1/fan_in) for weights of rank >= 2, uniform [0.5, 1.5) for vectors (batch-norm
    scales, variances, biases)."""
    rng = np.random.default_rng(seed)
    shapes = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    kept = []
    for node in copy.graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in shapes:
            shape = [int(d) for d in shapes[node.input[0]]]
            if len(shape) >= 2:
                fan_in = int(np.prod(shape[1:]))
                value = rng.standard_normal(shape) / np.sqrt(fan_in)
            else:
                value = rng.uniform(0.5, 1.5, shape)
            copy.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), node.output[0]))
        else:
            kept.append(node)
    del copy.graph.node[:]
    copy.graph.node.extend(kept)
    return copy


def seeded_inputs(model, seed=0):
    """Standard-normal float inputs of the declared shapes (a dynamic size is 1)."""
    rng = np.random.default_rng(seed)
    feeds = []
    for i in graph_inputs(model):
        shape = [d.dim_value if d.dim_value > 0 else 1 for d in i.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
        feeds.append(rng.standard_normal(shape).astype(dtype))
    return feeds


def runtime_outputs(path, model, inputs):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in graph_inputs(model)]
    return session.run(None, dict(zip(names, inputs)))


def run_glassbox(binary, path, inputs, threads, scratch):
    """(outputs in order, None) or (None, error text)."""
    check = subprocess.run([binary, "check", path, "--json"], capture_output=True, text=True)
    if check.returncode != 0:
        return None, (check.stderr or check.stdout).strip()
    signature = json.loads(check.stdout)
    arguments = [binary, "run", path, "--threads", str(threads), "-o", scratch]
    for info, value in zip(signature["inputs"], inputs):
        file = os.path.join(scratch, "input_" + info["name"] + ".npy")
        np.save(file, np.ascontiguousarray(value))
        arguments += ["--input", f"{info['name']}={file}"]
    run = subprocess.run(arguments, capture_output=True, text=True)
    if run.returncode != 0:
        return None, (run.stderr or run.stdout).strip()
    return [np.load(os.path.join(scratch, o["name"] + ".npy")) for o in signature["outputs"]], None


def unsupported_operators(error):
    """What an import error says Glassbox lacks: operator types (the `OP (N nodes: …)` lines)
    and forms of known operators (`node 'x' (Conv): not supported: …` as `Conv: …`); None when
    the error is of another kind."""
    ops = []
    listing = "Glassbox cannot import yet" in error
    for line in error.splitlines():
        line = line.strip()
        if listing and "(" in line and " node" in line and ":" in line and not line.startswith("/"):
            op = line.split(" (", 1)[0]
            if op and " " not in op:
                ops.append(op)
        if "not supported: " in line:
            head, reason = line.split("not supported: ", 1)
            op = head.rsplit("(", 1)[-1].split(")", 1)[0] if "(" in head else "graph"
            ops.append(f"{op}: {reason[:90]}")
    return ops or None


def representable(arrays):
    """Whether float data fits float32 (some old pytorch-operator cases recorded uninitialised
    doubles: 1e-316 and 2e+198 do not survive the conversion)."""
    for a in arrays:
        if a.dtype.kind == "f" and a.size:
            m = np.abs(a[np.isfinite(a)])
            if m.size and (m.max() > 3e38 or (m[m > 0].size and m[m > 0].min() < 1e-30)):
                return False
    return True


def relative_difference(actual, expected):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        if actual.size == expected.size:
            actual = actual.reshape(expected.shape)
        else:
            return None
    # NaN and infinities must stand where the expected output has them (ONNX's backend tests
    # compare with assert_allclose, whose NaNs are equal); the rest is compared as numbers.
    special = ~np.isfinite(expected)
    if not np.array_equal(actual[special], expected[special], equal_nan=True) \
            or not np.all(np.isfinite(actual[~special])):
        return float("inf")
    actual, expected = actual[~special], expected[~special]
    scale = max(float(np.max(np.abs(expected))) if expected.size else 0.0, 1e-6)
    return float(np.max(np.abs(actual - expected))) / scale if expected.size else 0.0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--glassbox", default=os.path.join(ROOT, ".build", "release", "glassbox"))
    p.add_argument("--suites", default="light,pytorch-converted,pytorch-operator,simple")
    p.add_argument("--only", help="run the cases whose name contains this")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    if not os.path.exists(a.glassbox):
        sys.exit(f"{a.glassbox}: not built (swift build -c release --product glassbox, or --glassbox PATH)")
    suites = a.suites.split(",")
    summary = {s: {"pass": 0, "fail": 0, "unsupported": 0} for s in suites}
    missing_ops = {}
    start = time.time()
    for suite, name, path, inputs, expected in cases(suites):
        if a.only and a.only not in name:
            continue
        model = onnx.load(path)
        if suite == "light":
            recorded = path[:-len(".onnx")] + "_output_0.pb"
            if os.path.exists(recorded):
                inputs, expected = dummy_inputs(model), [read_pb(recorded)]
        oracle = "recorded output"
        if inputs is not None and not representable(inputs + (expected or [])):
            inputs, expected = None, None
            oracle = "recorded data outside float32; seeded inputs, "
        if inputs is None:
            inputs = seeded_inputs(model)
        if expected is None:
            oracle = ("" if oracle == "recorded output" else oracle) + "ONNX Runtime"
            try:
                expected = runtime_outputs(path, model, inputs)
            except Exception:  # ONNX Runtime lacks some old opsets' kernels: ONNX's own evaluator
                from onnx.reference import ReferenceEvaluator
                names = [i.name for i in graph_inputs(model)]
                expected = ReferenceEvaluator(model).run(None, dict(zip(names, inputs)))
                oracle = oracle.replace("ONNX Runtime", "ONNX's reference evaluator")
        with tempfile.TemporaryDirectory() as scratch:
            outputs, error = run_glassbox(a.glassbox, path, inputs, a.threads, scratch)
        if error is not None:
            ops = unsupported_operators(error)
            if ops:
                summary[suite]["unsupported"] += 1
                for op in ops:
                    missing_ops.setdefault(op, []).append(f"{suite}/{name}")
                print(f"UNSUPPORTED {suite}/{name}: {', '.join(ops)}")
            else:
                summary[suite]["fail"] += 1
                first = error.splitlines()
                text = " ".join(l.strip() for l in first[:3])
                print(f"FAIL        {suite}/{name}: {text[:300]}")
            continue
        differences = [relative_difference(o, e) for o, e in zip(outputs, expected)]
        if len(outputs) != len(expected) or any(d is None for d in differences):
            summary[suite]["fail"] += 1
            shapes = [np.shape(o) for o in outputs], [np.shape(e) for e in expected]
            print(f"FAIL        {suite}/{name}: output shapes {shapes[0]} against {shapes[1]}")
            continue
        worst = max(differences) if differences else 0.0
        if suite == "light" and worst <= TOLERANCE:
            # The same model with its weights redrawn, against ONNX Runtime.
            with tempfile.TemporaryDirectory() as scratch:
                variant = redrawn_weights(model)
                variant_path = os.path.join(scratch, name + ".onnx")
                onnx.save(variant, variant_path)
                feeds = seeded_inputs(variant)
                reference = runtime_outputs(variant_path, variant, feeds)
                outputs, error = run_glassbox(a.glassbox, variant_path, feeds, a.threads, scratch)
            if error is not None:
                summary[suite]["fail"] += 1
                print(f"FAIL        {suite}/{name}: with redrawn weights: {error.splitlines()[0][:300]}")
                continue
            redrawn = max(relative_difference(o, e) for o, e in zip(outputs, reference))
            oracle = f"recorded output; {redrawn:.2e} with redrawn weights against ONNX Runtime"
            worst = max(worst, redrawn)
        if worst <= TOLERANCE:
            summary[suite]["pass"] += 1
            print(f"PASS        {suite}/{name}: max relative difference {worst:.2e} ({oracle})")
        else:
            summary[suite]["fail"] += 1
            print(f"FAIL        {suite}/{name}: max relative difference {worst:.2e} > {TOLERANCE} ({oracle})")
    print()
    print("| suite | cases | pass | fail | unsupported operator |")
    print("|---|---|---|---|---|")
    total = {"pass": 0, "fail": 0, "unsupported": 0}
    for s in suites:
        c = summary[s]
        n = sum(c.values())
        for k in total:
            total[k] += c[k]
        print(f"| {s} | {n} | {c['pass']} | {c['fail']} | {c['unsupported']} |")
    n = sum(total.values())
    print(f"| all | {n} | {total['pass']} | {total['fail']} | {total['unsupported']} |")
    if missing_ops:
        print()
        print("Operators Glassbox lacks, with the cases that need them:")
        for op, where in sorted(missing_ops.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            print(f"  {op} ({len(where)}): {', '.join(where)}")
    print(f"\n{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
