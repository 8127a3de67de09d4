"""Fixtures of the Python package's tests (`make python-test`, part of `make test`).

The package is imported from this source tree; the library and the glassbox command come from
one build folder, GLASSBOX_BUILD (default .build/debug; GLASSBOX_LIBRARY may name another
library). Models are compiled by the command, and the command's outputs (`glassbox run` and
`glassbox tap`, written as .npy) are the oracle that the package's results must equal bit for
bit.

Both sides choose the same OpenBLAS kernels: a process that imported Debian's numpy has
OpenBLAS loaded and set up already (libblas.so.3 links libopenblas.so.0), and Glassbox then
opens a private copy of its own (test_host.py checks that the host's copy is left as it was).
"""
import ctypes
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get("GLASSBOX_BUILD", os.path.join(ROOT, ".build", "debug")))
GLASSBOX = os.path.join(BUILD, "glassbox")
os.environ.setdefault("GLASSBOX_LIBRARY", os.path.join(BUILD, "libGlassboxC.so"))
sys.path.insert(0, os.path.join(ROOT, "python"))
TESTS = os.path.dirname(os.path.abspath(__file__))

import glassbox  # noqa: E402

LABELS = ["cat", "dog", "bird", "fish"]


def cli(*args, env=None, check=True):
    """Runs the glassbox command; its stdout."""
    out = subprocess.run([GLASSBOX, *map(str, args)], capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        raise AssertionError(f"glassbox {' '.join(map(str, args))} failed ({out.returncode}):\n{out.stderr}")
    return out.stdout


def images(n, salt=0):
    """n deterministic images [n, 3, 32, 32], each different."""
    i = np.arange(n * 3 * 32 * 32, dtype=np.float64).reshape(n, -1)
    return np.sin(i * 0.37 + (np.arange(n)[:, None] + salt) * 1.7).astype(np.float32).reshape(n, 3, 32, 32)


def clips(n, frames=3):
    """n deterministic clips [n, frames, 3, 24, 24]."""
    return np.cos(np.arange(n * frames * 3 * 24 * 24) * 0.11).astype(np.float32).reshape(n, frames, 3, 24, 24)


def features(n, frames=20):
    """n deterministic MFCC-like inputs [n, frames, 8]."""
    return np.sin(np.arange(n * frames * 8) * 0.23 + 0.5).astype(np.float32).reshape(n, frames, 8)


def read_npy_dir(path):
    """Every .npy of a folder by name without the extension."""
    return {f[:-4]: np.load(os.path.join(path, f)) for f in sorted(os.listdir(path)) if f.endswith(".npy")}


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """Small models compiled by the glassbox command: tiny (examples/tiny_cnn.graph, four
    labels), video (examples/tiny_video.graph) and lid (a BiLSTM with attention over 8
    features, tests/tiny_lid.graph)."""
    d = tmp_path_factory.mktemp("models")
    (d / "labels.txt").write_text("\n".join(LABELS) + "\n")
    cli("compile", os.path.join(ROOT, "examples", "tiny_cnn.graph"), "--labels", d / "labels.txt",
        "-o", d / "tiny.model")
    cli("compile", os.path.join(ROOT, "examples", "tiny_video.graph"), "-o", d / "video.model")
    cli("compile", os.path.join(TESTS, "tiny_lid.graph"), "-o", d / "lid.model")
    return SimpleNamespace(dir=d, tiny=str(d / "tiny.model"), video=str(d / "video.model"), lid=str(d / "lid.model"))


@pytest.fixture(scope="session")
def oracle(tmp_path_factory):
    """`oracle("run", model, input_name, array)` or `oracle("tap", model, tap, array, *flags)`:
    what the glassbox command writes for that input, as arrays by file name (cached)."""
    env = dict(os.environ)
    root = tmp_path_factory.mktemp("oracle")
    cache = {}

    def run(command, model, name, array, *flags):
        key = (command, model, name, array.tobytes(), array.shape, flags)
        if key not in cache:
            d = root / str(len(cache))
            d.mkdir()
            np.save(d / "input.npy", array)
            if command == "run":
                cli("run", model, "--input", f"{name}={d / 'input.npy'}", "-o", d / "out", *flags, env=env)
            else:
                cli("tap", model, name, d / "input.npy", "--no-pictures", "-o", d / "out", *flags, env=env)
            cache[key] = read_npy_dir(d / "out")
        return cache[key]

    return run


def info(model):
    """`glassbox info --json` of a model."""
    return json.loads(cli("info", model, "--json"))
