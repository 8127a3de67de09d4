"""Several taps in one run (`Model.explanations`, over gbx_session_explain_taps) and a model
with two inputs (examples/two_inputs.graph): each tap's maps equal its own `explanation`'s bit
for bit, and the two-input model's equal what `glassbox tap` writes with NAME=FILE per input."""
import os

import numpy as np
import pytest

import glassbox
from conftest import ROOT, cli, images, read_npy_dir

TWO_TAPS = ["gradcam", "image_saliency", "vector_saliency", "vector_gradient"]


def two_inputs(n):
    image = np.sin(np.arange(n * 3 * 16 * 16) * 0.29).astype(np.float32).reshape(n, 3, 16, 16)
    vector = np.cos(np.arange(n * 5) * 0.9).astype(np.float32).reshape(n, 5)
    return {"image": image, "vector": vector}


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    d = tmp_path_factory.mktemp("two")
    cli("compile", os.path.join(ROOT, "examples", "two_inputs.graph"), "-o", d / "two.model")
    return d


@pytest.mark.parametrize("target", [None, 2, [0, 2, -1]])
def test_several_taps_equal_each_alone(models, target):
    x = {"image": images(3, salt=3)}
    taps = ["gradcam", "cam", "act"]
    with glassbox.load(models.tiny) as m:
        together = m.explanations(taps, x, target=target)
        assert list(together) == taps
        for tap in taps:
            alone = m.explanation(tap, x, target=None if tap == "act" else target)
            e = together[tap]
            assert e.tap == tap and sorted(e.maps) == sorted(alone.maps), tap
            for role, value in alone.maps.items():
                assert np.array_equal(e.maps[role], value), (tap, role)
            assert np.array_equal(e.outputs["logits"], alone.outputs["logits"])
            assert sorted(e.outputs) == ["logits"]
            if tap == "act":
                assert e.classes is None
            else:
                assert np.array_equal(e.classes, alone.classes), tap


BAD = [
    ("a lone string", "gradcam", "input", "taps must be a list of strings, found 'gradcam'"),
    ("no taps", [], "input", "give at least one tap to explain"),
    ("a tap the model lacks", ["gradcam", "attention"], "input", "no tap 'attention'; taps: gradcam (gradcam)"),
    ("a tap twice", ["cam", "gradcam", "cam"], "input", "tap cam is asked for twice"),
    ("a tap that is not a string", ["gradcam", 3], "input", "taps must be a list of strings"),
]


@pytest.mark.parametrize("what, taps, kind, words", BAD, ids=[b[0] for b in BAD])
def test_bad_tap_lists(models, what, taps, kind, words):
    with glassbox.load(models.tiny) as m:
        with pytest.raises(glassbox.Error) as e:
            m.explanations(taps, {"image": images(2)})
        assert e.value.kind == kind and words in str(e.value), str(e.value)
        with pytest.raises(glassbox.Error) as e:
            m.explanations(["gradcam", "cam"], {"image": images(2)}, target=[1])
        assert e.value.kind == "input" and "1 targets for 2 examples" in str(e.value)
        assert m.explanations(["gradcam"], {"image": images(2)})["gradcam"].maps["raw"].shape == (2, 16, 16)


def test_a_model_with_two_inputs_equals_glassbox_tap(two):
    feeds = two_inputs(2)
    np.save(two / "image.npy", feeds["image"])
    np.save(two / "vector.npy", feeds["vector"])
    cli("tap", two / "two.model", ",".join(TWO_TAPS), f"image={two / 'image.npy'}", f"vector={two / 'vector.npy'}",
        "--class", "1", "--no-pictures", "-o", two / "out")
    with glassbox.load(two / "two.model") as m:
        assert [i.name for i in m.inputs] == ["image", "vector"]
        together = m.explanations(TWO_TAPS, feeds, target=1)
        for tap in TWO_TAPS:
            expected = read_npy_dir(two / "out" / tap)
            e = together[tap]
            assert sorted(expected) == sorted(tap if r == "raw" else f"{tap}.{r}" for r in e.maps), tap
            for key, value in expected.items():
                role = "raw" if key == tap else key.split(".", 1)[1]
                assert np.array_equal(e.maps[role], value), key
            assert np.array_equal(e.maps["raw"], m.explain(tap, feeds, target=1)), tap
        assert together["gradcam"].maps["raw"].shape == (2, 8, 8)
        assert together["vector_gradient"].maps["raw"].shape == (2, 5)
        assert together["vector_saliency"].classes.tolist() == [1, 1]


@pytest.mark.parametrize("feeds, words", [
    (lambda f: {"image": f["image"]}, "input 'vector' is missing (vector f32[B, 5])"),
    (lambda f: {"image": f["image"], "vector": f["vector"][:, :4].copy()},
     "input 'vector' has size 4 on axis 1 but the graph expects 5"),
    (lambda f: {"image": f["image"], "vector": f["vector"], "mask": f["vector"]},
     "two_inputs has no input 'mask' (inputs: image, vector)"),
])
def test_a_missing_or_misshapen_input_is_named(two, feeds, words):
    with glassbox.load(two / "two.model") as m:
        with pytest.raises(glassbox.Error) as e:
            m.explanations(TWO_TAPS, feeds(two_inputs(2)))
        assert e.value.kind == "input" and words in str(e.value), str(e.value)
