#!/usr/bin/env python3
"""ONNX Runtime on `glassbox export`'s files against Glassbox's own explanations.

For each study graph (graphs/*.graph, weights from seed 0; taps added so that every tap kind —
gradcam, gradcampp, cam, saliency, gradient, attention, hidden, activation — is exported by
some model) it compiles a .model, exports it (`glassbox export M.model -o M.onnx`, every tap,
opset 17), checks the file with `onnx.checker.check_model(full_check=True)`, runs ONNX Runtime
once on a seeded batch of two with `target = [-1, 3]` (the first example's predicted class,
chosen in the graph, and class 3), and compares every output with what the Python package
(`Session.explain` through libglassbox) gives for the same input and classes: the logits, and
each tap's raw, normalised, upsampled and relevance tensors. An error is the largest difference
divided by the largest magnitude of Glassbox's tensor; logits pass within 1e-4, taps within
1e-3. Prints one line per model, output and error, and the file's size and node count; exits 1
when anything fails.

    GLASSBOX_BUILD=.build/debug /work/venv/bin/python tools/reference/onnx_export_check.py \
        [--only resnet18,bilstm] [--keep DIR]

Needs the glassbox command and libGlassboxC.so of one build (`swift build --product glassbox`
and `--product GlassboxC`), and onnx, onnxruntime and numpy.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get("GLASSBOX_BUILD", os.path.join(ROOT, ".build", "debug")))
os.environ.setdefault("GLASSBOX_LIBRARY", os.path.join(BUILD, "libGlassboxC.so"))
sys.path.insert(0, os.path.join(ROOT, "python"))
import glassbox  # noqa: E402

LOGITS_LIMIT = 1e-4
TAP_LIMIT = 1e-3

# name: (compile bindings, export bindings, input shape of a batch of two, taps added to the spec)
CASES = {
    "resnet18": ({}, {}, (2, 3, 224, 224), [
        "tap gradcampp = gradcampp(layer4)", "tap saliency = saliency(image)",
        "tap gradient = gradient(layer3)", "tap features = activation(layer2)"]),
    "resnet18_lstm": ({}, {"T": 16}, (2, 16, 3, 112, 112), ["tap gradcampp = gradcampp(cnn.layer4)"]),
    "vgg19_lstm": ({}, {"T": 4}, (2, 4, 3, 112, 112), []),
    "bilstm": ({"C": 6}, {}, (2, 768, 128), []),
    "bilstm_attention1d": ({"C": 6}, {}, (2, 768, 128), []),
    "bilstm_attention2d": ({"C": 6}, {}, (2, 768, 128), ["tap gradient = gradient(context)"]),
}
ROLES = {"raw": "", "normalized": ".normalized", "upsampled": ".upsampled", "relevance": ".relevance"}


def glassbox_cli(*args):
    out = subprocess.run([os.path.join(BUILD, "glassbox"), *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"glassbox {' '.join(map(str, args))} failed:\n{out.stderr}")
    return out.stdout


def relative(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-12)


def with_taps(spec, taps):
    """The spec with `taps` added at the end of its graph (before the graph's closing brace)."""
    if not taps:
        return spec
    end = re.search(r"\n}\n", spec)
    return spec[:end.start()] + "\n" + "".join(f"  {t}\n" for t in taps) + spec[end.start():]


def check(name, folder):
    compile_bindings, export_bindings, shape, taps = CASES[name]
    spec = os.path.join(folder, name + ".graph")
    with open(os.path.join(ROOT, "graphs", name + ".graph")) as f:
        text = with_taps(f.read(), taps)
    with open(spec, "w") as f:
        f.write(text)
    model_path = os.path.join(folder, name + ".model")
    glassbox_cli("compile", spec, "-o", model_path, *[f"--bind={k}={v}" for k, v in compile_bindings.items()])
    onnx_path = os.path.join(folder, name + ".onnx")
    glassbox_cli("export", model_path, "-o", onnx_path, *[f"--bind={k}={v}" for k, v in export_bindings.items()])

    lines, ok = [], True
    proto = onnx.load(onnx_path)
    try:
        onnx.checker.check_model(proto, full_check=True)
        checker = "passes"
    except Exception as e:  # the checker's own exception types vary by version
        checker, ok = f"FAILS: {str(e).splitlines()[0][:200]}", False
    size = os.path.getsize(onnx_path)
    lines.append(f"{name}: {size:,} bytes, {len(proto.graph.node):,} nodes, "
                 f"check_model(full_check=True) {checker}")

    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    input_name = proto.graph.input[0].name
    target = np.array([-1, 3], np.int64)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    feeds = {input_name: x}
    if any(i.name == "target" for i in session.get_inputs()):
        feeds["target"] = target
    results = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))

    model = glassbox.load(model_path, bindings=export_bindings or None)
    logits_checked = False
    for tap in model.taps:
        e = model.explanation(tap.name, {input_name: x}, target=list(target) if tap.needs_class else None)
        if not logits_checked:
            err = relative(results["logits"], e.outputs["logits"])
            good = err <= LOGITS_LIMIT
            ok &= good
            lines.append(f"  logits                       {err:.2e}  {'ok' if good else 'FAIL'}")
            logits_checked = True
        for role, suffix in ROLES.items():
            if role not in e.maps:
                continue
            out = tap.name + suffix
            if out not in results:
                lines.append(f"  {out:28} missing from the ONNX outputs  FAIL")
                ok = False
                continue
            err = relative(results[out], e.maps[role])
            good = err <= TAP_LIMIT
            ok &= good
            lines.append(f"  {out:28} {err:.2e}  {'ok' if good else 'FAIL'}  ({tap.kind})")
    model.close()
    return ok, lines


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", help="comma-separated model names")
    p.add_argument("--keep", help="keep the specs, models and ONNX files in this folder")
    a = p.parse_args()
    names = a.only.split(",") if a.only else list(CASES)
    folder = a.keep or tempfile.mkdtemp(prefix="onnx_export_check.")
    os.makedirs(folder, exist_ok=True)
    all_ok = True
    for name in names:
        try:
            ok, lines = check(name, folder)
        except Exception as e:  # a failed command or session: reported, the other models still run
            ok, lines = False, [f"{name}: FAIL {str(e).strip()[:500]}"]
        all_ok &= ok
        print("\n".join(lines), flush=True)
    print("all outputs within limits" if all_ok else "FAILED")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
