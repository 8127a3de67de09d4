"""Every bad input the package can be given: each raises glassbox.Error of the right kind
with a message naming the problem, and the process (and the model) go on working."""
import os

import numpy as np
import pytest

import glassbox
from conftest import ROOT, images

X = images(2)


@pytest.fixture(scope="module")
def tiny(models):
    with glassbox.load(models.tiny) as m:
        yield m, m.run({"image": X})["logits"].copy()


def still_runs(model, expected):
    assert np.array_equal(model.run({"image": X})["logits"], expected)


# (what, feeds, kind, words the message must hold)
BAD_FEEDS = [
    ("int64 for float32", {"image": X.astype(np.int64)}, "input", "input 'image' is i64 but the graph expects f32"),
    ("bool for float32", {"image": X > 0}, "input", "input 'image' is bool but the graph expects f32"),
    ("float16", {"image": X.astype(np.float16)}, "input", "input 'image' is float16"),
    ("big-endian float32", {"image": X.astype(">f4")}, "input", "input 'image' is >f4"),
    ("strings", {"image": np.array(["a", "b"])}, "input", "input 'image' is <U1"),
    ("rank 3", {"image": X[0]}, "input", "input 'image' has 3 axes [3, 32, 32] but the graph expects 4"),
    ("rank 9", {"image": X.reshape(1, 1, 1, 1, 1, 2, 3, 32, 32)}, "input", "input 'image' has 9 axes"),
    ("wrong size", {"image": np.ascontiguousarray(X[:, :, :31])}, "input",
     "input 'image' has size 31 on axis 2 but the graph expects 32"),
    ("wrong channels", {"image": np.zeros((2, 4, 32, 32), np.float32)}, "input", "size 4 on axis 1"),
    ("non-contiguous (a slice)", {"image": images(2)[:, :, :, ::-1]}, "input", "input 'image' is not C-contiguous"),
    ("non-contiguous (Fortran order)", {"image": np.asfortranarray(X)}, "input", "is not C-contiguous"),
    ("missing input", {}, "input", "input 'image' is missing (image f32[B, 3, 32, 32])"),
    ("unknown input", {"image": X, "mask": X}, "input", "tiny_cnn has no input 'mask' (inputs: image)"),
    ("misspelled input", {"img": X}, "input", "has no input 'img'"),
    ("a name that is not a string", {1: X}, "input", "input names must be strings, found 1"),
    ("a list, not a dict", [X], "input", "must be a dict of input name to numpy array, found list"),
    ("a ragged list", {"image": [[1.0, 2.0], [3.0]]}, "input", "input 'image' is not an array"),
]


@pytest.mark.parametrize("what, feeds, kind, words", BAD_FEEDS, ids=[b[0] for b in BAD_FEEDS])
def test_bad_feeds(tiny, what, feeds, kind, words):
    m, expected = tiny
    for call in (lambda: m.run(feeds), lambda: m.explain("gradcam", feeds)):
        with pytest.raises(glassbox.Error) as e:
            call()
        assert e.value.kind == kind, (what, str(e.value))
        assert words in str(e.value), what
    still_runs(m, expected)


BAD_EXPLANATIONS = [
    ("a tap the model lacks", "attention", {}, "input", "no tap 'attention'; taps: gradcam (gradcam), cam (cam), act"),
    ("a class out of range", "gradcam", {"target": 4}, "input",
     "target class 4 is out of range: tiny_cnn has 4 classes (0…3; -1 = predicted)"),
    ("a negative class", "gradcam", {"target": [0, -2]}, "input", "target class -2 is out of range"),
    ("too few targets", "gradcam", {"target": [1]}, "input", "1 targets for 2 examples"),
    ("too many targets", "gradcam", {"target": [1, 2, 3]}, "input", "3 targets for 2 examples"),
    ("a fractional target", "gradcam", {"target": 1.5}, "input", "target must be a class index or one per example"),
    ("a target of a tap that explains no class", "act", {"target": 1}, "input", "it explains no class"),
    ("an unknown scope", "gradcam", {"scope": "video"}, "input", "scope must be frame or clip, found 'video'"),
    ("a tap that is not a string", 3, {}, "input", "tap must be a tap name, found 3"),
]


@pytest.mark.parametrize("what, tap, options, kind, words", BAD_EXPLANATIONS, ids=[b[0] for b in BAD_EXPLANATIONS])
def test_bad_explanations(tiny, what, tap, options, kind, words):
    m, expected = tiny
    with pytest.raises(glassbox.Error) as e:
        m.explanation(tap, {"image": X}, **options)
    assert e.value.kind == kind and words in str(e.value), str(e.value)
    still_runs(m, expected)


def corrupt(path, tmp_path, edit):
    data = bytearray(open(path, "rb").read())
    data = edit(data)
    out = tmp_path / "corrupt.model"
    out.write_bytes(bytes(data))
    return out


def flip(offset):
    def edit(data):
        data[offset] ^= 0x20
        return data
    return edit


BAD_FILES = [
    ("a flipped weight byte", flip(-3), "model", "fails its checksum"),
    ("a flipped message byte", flip(100), "model", "message checksum mismatch"),
    ("a truncated file", lambda d: d[:len(d) // 2], "model", "(truncated or padded)"),
    ("an empty file", lambda d: b"", "model", "file is empty (0 bytes)"),
    ("a file of zeros", lambda d: bytes(len(d)), "model", "not a Glassbox model"),
    ("a wrong format version", lambda d: d[:8] + b"\x63" + d[9:], "model", "format version 99"),
]


@pytest.mark.parametrize("what, edit, kind, words", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_corrupt_models(models, tiny, tmp_path, what, edit, kind, words):
    path = corrupt(models.tiny, tmp_path, edit)
    with pytest.raises(glassbox.Error) as e:
        glassbox.load(path)
    assert e.value.kind == kind and words in str(e.value) and str(path) in str(e.value), str(e.value)
    still_runs(*tiny)


def test_files_that_are_not_there(tmp_path, tiny):
    for path, words in [(tmp_path / "missing.model", "cannot open: No such file or directory"),
                        (tmp_path, "is a directory")]:
        with pytest.raises(glassbox.Error) as e:
            glassbox.load(path)
        assert e.value.kind == "file" and str(path) in str(e.value) and words in str(e.value), str(e.value)
    with pytest.raises(glassbox.Error) as e:
        tiny[0].save(tmp_path / "no" / "such" / "folder.model")
    assert e.value.kind == "file" and "no/such/folder.model" in str(e.value)


BAD_LOADS = [
    ("an unknown symbol", {"bindings": {"Q": 2}}, "input",
     "bindings name Q, not a symbol of the model (its symbols: B)"),
    ("a size of 0", {"bindings": {"B": 0}}, "input", "binding B = 0: sizes must be between 1 and 2147483647"),
    ("a size that is not an integer", {"bindings": {"B": 2.5}}, "input", "bindings must map symbol names to integers"),
    ("zero threads", {"threads": 0}, "input", "threads must be an integer from 1 to 2147483647, found 0"),
    ("2**40 threads", {"threads": 2**40}, "input", "found 1099511627776"),
    ("threads as a string", {"threads": "2"}, "input", "threads must be an integer from 1 to 2147483647, found '2'"),
    ("a size of 2**40", {"bindings": {"B": 2**40}}, "input", "binding B = 1099511627776: sizes must be between 1"),
    ("a tap the model lacks", {"taps": ["attention"]}, "input", "no tap 'attention'"),
    ("taps as one string", {"taps": "gradcam"}, "input", "taps must be a list of strings, found 'gradcam'"),
    ("taps as a number", {"taps": 3}, "input", "taps must be a list of strings, found 3"),
]


@pytest.mark.parametrize("what, options, kind, words", BAD_LOADS, ids=[b[0] for b in BAD_LOADS])
def test_bad_load_options(models, what, options, kind, words):
    with pytest.raises(glassbox.Error) as e:
        glassbox.load(models.tiny, **options)
    assert e.value.kind == kind and words in str(e.value), str(e.value)


def test_bad_compiles(tmp_path):
    spec = tmp_path / "bad.graph"
    spec.write_text("graph bad(x: f32[B, 4]) -> (y: f32[B, 2]) {\n  y = linear(x, out: 3)\n}\n")
    cases = [
        ((spec,), {}, "spec", f"{spec}:1:29: error: output 'y' is declared f32[B, 2] but computed f32[B, 3]"),
        ((tmp_path / "missing.graph",), {}, "file", "missing.graph: no such file"),
        ((os.path.join(ROOT, "examples", "tiny_cnn.graph"),), {"labels": ["a", "b"]}, "input",
         "2 labels but output 'logits' has 4 classes"),
        ((os.path.join(ROOT, "examples", "tiny_cnn.graph"),), {"labels": "abcd"}, "input",
         "labels must be a list of strings"),
        ((os.path.join(ROOT, "examples", "tiny_cnn.graph"),), {"taps": ["gradcam:nothing"]}, "input",
         "the graph has no value named 'nothing'"),
        ((os.path.join(ROOT, "examples", "tiny_cnn.graph"),), {"seed": -1}, "input", "seed must be an integer"),
        ((os.path.join(ROOT, "examples", "tiny_cnn.graph"),), {"weights": tmp_path / "w.safetensors"}, "file",
         "w.safetensors: cannot open"),
    ]
    for args, options, kind, words in cases:
        with pytest.raises(glassbox.Error) as e:
            glassbox.compile(*args, **options)
        assert e.value.kind == kind and words in str(e.value), str(e.value)


def test_a_closed_model(models):
    m = glassbox.load(models.tiny)
    m.close()
    m.close()  # closing twice is fine
    for call in (lambda: m.run({"image": X}), lambda: m.explain("gradcam", {"image": X}),
                 lambda: m.save("/tmp/never.model")):
        with pytest.raises(glassbox.Error) as e:
            call()
        assert e.value.kind == "unsupported" and "the model tiny_cnn was closed" in str(e.value)
    assert not os.path.exists("/tmp/never.model")
    with glassbox.load(models.tiny) as again:  # and the file loads again
        assert again.run({"image": X})["logits"].shape == (2, 4)
