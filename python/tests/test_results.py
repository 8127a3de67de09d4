"""The package's signatures and results against the glassbox command's: `info --json` for
signatures, `run` and `tap` (their .npy files) for numbers, compared bit for bit."""
import os

import numpy as np
import pytest

import glassbox
from conftest import LABELS, ROOT, clips, cli, features, images, info


def shape_of(entry):
    return tuple(entry["shape"])


@pytest.mark.parametrize("name", ["tiny", "video", "lid"])
def test_signature_matches_glassbox_info(models, name):
    path = getattr(models, name)
    expected = info(path)
    with glassbox.load(path) as m:
        assert m.name == expected["name"]
        assert [(i.name, i.dtype, i.shape) for i in m.inputs] == \
            [(i["name"], np.dtype(np.float32), shape_of(i)) for i in expected["inputs"]]
        assert [(o.name, o.shape) for o in m.outputs] == [(o["name"], shape_of(o)) for o in expected["outputs"]]
        assert [(t.name, t.kind) for t in m.taps] == [(t["name"], t["kind"]) for t in expected["taps"]]
        assert m.labels == expected.get("labels", [])


def test_signature_details(models):
    with glassbox.load(models.tiny) as m:
        assert m.inputs == [glassbox.TensorInfo("image", np.dtype(np.float32), ("B", 3, 32, 32))]
        assert [(t.name, t.needs_class) for t in m.taps] == [("gradcam", True), ("cam", True), ("act", False)]
        assert m.labels == LABELS
        assert repr(m) == "<glassbox.Model tiny_cnn: image -> logits; taps gradcam, cam, act>"
    with glassbox.load(models.lid) as m:
        assert m.inputs[0].shape == ("B", "T", 8)
    assert glassbox.version() == cli("version").split()[1]


@pytest.mark.parametrize("name, make, input_name", [
    ("tiny", lambda: images(3), "image"),
    ("video", lambda: clips(2), "frames"),
    ("lid", lambda: features(2), "mfcc"),
])
def test_run_equals_glassbox_run(models, oracle, name, make, input_name):
    path, x = getattr(models, name), make()
    expected = oracle("run", path, input_name, x)
    with glassbox.load(path) as m:
        out = m.run({input_name: x})
    assert sorted(out) == sorted(expected)  # outputs and the value taps (act, hidden, attention)
    for key, value in expected.items():
        assert out[key].dtype == value.dtype and np.array_equal(out[key], value), key


# (model, input, tap, CLI flags, explain's target)
EXPLAINED = [
    ("tiny", "image", "gradcam", (), None),
    ("tiny", "image", "cam", ("--class", "2"), 2),
    ("tiny", "image", "gradcam", ("--scope", "frame"), None),
    ("video", "frames", "gradcam", (), None),
    ("lid", "mfcc", "saliency", ("--class", "1"), 1),
    ("lid", "mfcc", "attention", (), None),
]


@pytest.mark.parametrize("name, input_name, tap, flags, target", EXPLAINED)
def test_explain_equals_glassbox_tap(models, oracle, name, input_name, tap, flags, target):
    path = getattr(models, name)
    x = {"tiny": images(3), "video": clips(2), "lid": features(2)}[name]
    expected = oracle("tap", path, tap, x, *flags)
    scope = flags[1] if flags[:1] == ("--scope",) else None
    with glassbox.load(path) as m:
        e = m.explanation(tap, {input_name: x}, target=target, scope=scope)
        raw = m.explain(tap, {input_name: x}, target=target, scope=scope)
    roles = {tap: "raw", f"{tap}.normalized": "normalized", f"{tap}.upsampled": "upsampled",
             f"{tap}.relevance": "relevance"}
    assert sorted(roles[k] for k in expected) == sorted(e.maps)
    for key, value in expected.items():
        assert np.array_equal(e.maps[roles[key]], value), key
    assert np.array_equal(raw, e.maps["raw"])


def test_resnet18_equals_the_command(tmp_path, oracle):
    """A real network (ResNet-18 at 64 x 64, 11 M parameters): run and Grad-CAM."""
    path = tmp_path / "resnet18.model"
    cli("compile", os.path.join(ROOT, "graphs", "resnet18.graph"), "--bind", "C=10", "--bind", "H=64", "--bind", "W=64",
        "-o", path)
    x = np.sin(np.arange(2 * 3 * 64 * 64) * 0.37).astype(np.float32).reshape(2, 3, 64, 64)
    with glassbox.load(path) as m:
        out = m.run({"image": x})
        e = m.explanation("gradcam", {"image": x})
    assert np.array_equal(out["logits"], oracle("run", str(path), "image", x)["logits"])
    expected = oracle("tap", str(path), "gradcam", x)
    assert np.array_equal(e.maps["raw"], expected["gradcam"])
    assert np.array_equal(e.maps["upsampled"], expected["gradcam.upsampled"])
    assert list(e.classes) == list(out["logits"].argmax(axis=1))


def test_a_batch_is_explained_at_once_with_a_class_per_example(models, oracle):
    """Targets 0, 2 and -1 (predicted) in one call: each row equals the command's explanation
    of the whole batch for that row's class."""
    x = images(3, salt=4)
    per_class = {k: oracle("tap", models.tiny, "gradcam", x, "--class", str(k)) for k in (0, 2)}
    predicted = oracle("tap", models.tiny, "gradcam", x)
    with glassbox.load(models.tiny) as m:
        logits = m.run({"image": x})["logits"]
        e = m.explanation("gradcam", {"image": x}, target=[0, 2, -1])
        fixed = m.explanation("gradcam", {"image": x}, target=np.int64(2))
        default = m.explanation("gradcam", {"image": x})
    assert e.classes.tolist() == [0, 2, int(logits[2].argmax())]
    for role, suffix in [("raw", ""), ("normalized", ".normalized"), ("upsampled", ".upsampled")]:
        rows = [per_class[0]["gradcam" + suffix][0], per_class[2]["gradcam" + suffix][1],
                predicted["gradcam" + suffix][2]]
        assert np.array_equal(e.maps[role], np.stack(rows)), role
        assert np.array_equal(fixed.maps[role], per_class[2]["gradcam" + suffix]), role
    assert fixed.classes.tolist() == [2, 2, 2]
    assert default.classes.tolist() == logits.argmax(axis=1).tolist()
    assert np.array_equal(e.outputs["logits"], logits)


def test_outputs_are_read_only_views_that_outlive_the_model(models):
    with glassbox.load(models.tiny) as m:
        out = m.run({"image": images(2)})
        expected = out["logits"].copy()
    assert not out["logits"].flags.writeable
    with pytest.raises(ValueError):
        out["logits"][0, 0] = 1
    assert np.array_equal(out["logits"], expected)  # the result's memory lives as long as its arrays


def test_inputs_that_numpy_converts_give_the_same_numbers(models):
    """float64 (converted by the library), an unaligned float32 array (copied first) and a
    bool input all run; float64 and unaligned give float32's numbers exactly."""
    x = images(2)
    with glassbox.load(models.tiny) as m:
        expected = m.run({"image": x})["logits"]
        assert np.array_equal(m.run({"image": x.astype(np.float64)})["logits"], expected)
        raw = bytearray(1 + x.nbytes)
        raw[1:] = x.tobytes()
        unaligned = np.frombuffer(raw, dtype=np.float32, offset=1).reshape(x.shape)
        assert not unaligned.flags.aligned
        assert np.array_equal(m.run({"image": unaligned})["logits"], expected)


def test_compile_writes_a_model_the_command_reads(tmp_path, models, oracle):
    """glassbox.compile with an extra tap and labels: the file it writes has them, and runs as
    the command's compile of the same spec and seed."""
    path = tmp_path / "compiled.model"
    spec = os.path.join(ROOT, "examples", "tiny_cnn.graph")
    with glassbox.compile(spec, path, taps=["gradcam:relu1:name=early"], labels=LABELS) as m:
        assert [t.name for t in m.taps] == ["gradcam", "cam", "act", "early"]
        x = images(2)
        out = m.run({"image": x})
        early = m.explain("early", {"image": x})
    described = info(path)
    assert [t["name"] for t in described["taps"]] == ["gradcam", "cam", "act", "early"]
    assert described["labels"] == LABELS
    assert np.array_equal(out["logits"], oracle("run", models.tiny, "image", x)["logits"])
    assert early.shape == (2, 32, 32)
    with glassbox.compile(spec, bindings={"C": 3}) as three:
        assert three.outputs[0].shape == ("B", 3) and three.run({"image": x})["logits"].shape == (2, 3)
    with glassbox.load(path, taps=["early"]) as m:
        # A tap that explains a class runs for the predicted one, with its derived maps.
        assert sorted(m.run({"image": x})) == ["early", "early.normalized", "early.upsampled", "logits"]


def test_bindings_fix_symbols(models):
    with glassbox.load(models.lid, bindings={"T": 20}) as m:
        assert m.run({"mfcc": features(3, frames=20)})["logits"].shape == (3, 3)
        with pytest.raises(glassbox.Error) as e:
            m.run({"mfcc": features(1, frames=21)})
        assert e.value.kind == "input" and "21" in str(e.value)
