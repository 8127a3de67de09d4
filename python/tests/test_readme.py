"""The README's "Three ways in" section: its Python runs as written (from a folder holding the
repository's examples/), and its C is an excerpt of examples/c/explain.c."""
import contextlib
import io
import os
import re

import numpy as np

import glassbox
from conftest import ROOT


def section_blocks(language):
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = readme.split("## Three ways in: Swift, C, Python\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def test_the_python_snippet_runs(tmp_path, monkeypatch):
    blocks = section_blocks("python")
    assert len(blocks) == 1
    os.symlink(os.path.join(ROOT, "examples"), tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    scope = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(blocks[0], "README.md", "exec"), scope)
    m, x, logits, cams = scope["m"], scope["x"], scope["logits"], scope["cams"]
    assert os.path.isfile(tmp_path / "tiny.model")
    assert m.labels == ["cat", "dog", "bird", "fish"]
    assert logits.shape == (2, 4) and cams.shape == (2, 16, 16)
    # What the comments promise: each row explains its own class.
    e = m.explanation("gradcam", {"image": x}, target=[0, 3])
    assert e.classes.tolist() == [0, 3] and np.array_equal(e.maps["raw"], cams)
    assert f"{logits.argmax(axis=1)} (2, 16, 16)" in printed.getvalue()
    m.close()


def test_the_c_snippet_is_an_excerpt_of_explain_c():
    blocks = section_blocks("c")
    assert len(blocks) == 1
    program = [line.strip() for line in open(os.path.join(ROOT, "examples", "c", "explain.c"), encoding="utf-8")]
    position = 0
    for line in blocks[0].strip().splitlines():
        assert line.strip() in program[position:], f"not in examples/c/explain.c (in this order): {line}"
        position = program.index(line.strip(), position) + 1
