"""ONNX models through the package: the library imports an .onnx file wherever it takes a
model (glassbox.load, glassbox.compile), so an exported PyTorch model runs and explains itself.
The oracles are the fixtures of Tests/GlassboxONNXTests (tools/reference/onnx_fixtures.py):
ONNX Runtime's outputs and PyTorch's Grad-CAM."""
import os

import numpy as np

import glassbox
from conftest import ROOT

CASES = os.path.join(ROOT, "Tests", "GlassboxONNXTests", "Fixtures", "cases")


def fixture(name):
    return np.load(os.path.join(CASES, name))


def within(actual, expected, tolerance):
    return np.max(np.abs(actual - expected)) <= tolerance * np.max(np.abs(expected))


def test_an_onnx_model_runs_as_onnx_runtime_does():
    m = glassbox.load(os.path.join(CASES, "tiny_resnet.onnx"), threads=2)
    assert [i.name for i in m.inputs] == ["image"] and m.inputs[0].shape == ("B", 3, 16, 16)
    x = fixture("tiny_resnet.input0.npy")
    assert within(m.run({"image": x})["output"], fixture("tiny_resnet.output0.npy"), 1e-4)
    m.close()


def test_gradcam_auto_on_an_onnx_model(tmp_path):
    path = tmp_path / "tiny_resnet.model"
    m = glassbox.compile(os.path.join(CASES, "tiny_resnet.onnx"), path, taps=["gradcam:auto"])
    assert [t.name for t in m.taps] == ["gradcam"] and os.path.isfile(path)
    cams = m.explain("gradcam", {"image": fixture("tiny_resnet.input0.npy")})
    assert cams.shape == (2, 4, 4) and within(cams, fixture("tiny_resnet.gradcam.npy"), 1e-3)
    m.close()


def test_an_unsupported_model_is_an_error(tmp_path):
    bad = os.path.join(ROOT, "Tests", "GlassboxONNXTests", "Fixtures", "bad", "unsupported_ops.onnx")
    try:
        glassbox.load(bad)
    except glassbox.Error as e:
        assert e.kind == "unsupported" and "Floor (2 nodes: floor1, floor2)" in str(e)
    else:
        raise AssertionError("an ONNX model with Floor loaded")
