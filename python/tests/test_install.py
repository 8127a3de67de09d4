"""`pip install ./python` into a fresh venv, as the README says to do after `make lib`: the
package installs without a network, carries its own copy of the library, and runs a model.

The install runs on a copy of python/ (so the source tree gets no build/ or egg-info) beside a
.build/release/libglassbox.so that links to this build's library, which is where setup.py looks
without GLASSBOX_LIBRARY. About 10 s (the venv 5 s, pip 4 s)."""
import os
import shutil
import subprocess
import sys

import numpy as np

import glassbox
from conftest import ROOT, images


def test_pip_install_into_a_fresh_venv(tmp_path, models):
    source = tmp_path / "checkout"
    shutil.copytree(os.path.join(ROOT, "python"), source / "python",
                    ignore=shutil.ignore_patterns("tests", "__pycache__", "build", "*.egg-info"))
    (source / ".build" / "release").mkdir(parents=True)
    library = os.environ["GLASSBOX_LIBRARY"]
    os.symlink(library, source / ".build" / "release" / "libglassbox.so")
    env = {k: v for k, v in os.environ.items() if k not in ("GLASSBOX_LIBRARY", "PYTHONPATH")}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "--no-build-isolation", "--no-index", "-q", source / "python"],
                   check=True, env=env, cwd=tmp_path)

    x = images(2)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import glassbox, numpy as np, sys\n"
        "print(glassbox.library_path())\n"
        "m = glassbox.load(sys.argv[1])\n"
        "np.save(sys.argv[2], m.run({'image': np.load(sys.argv[3])})['logits'])\n")
    out = subprocess.run([python, "-c", script, models.tiny, tmp_path / "logits.npy", tmp_path / "x.npy"],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    installed = out.stdout.strip()
    # The package's own copy of the library, not the build's.
    assert installed.startswith(str(venv)) and installed.endswith("glassbox/libglassbox.so"), installed
    assert not os.path.islink(installed) and os.path.getsize(installed) == os.path.getsize(library)
    with glassbox.load(models.tiny) as m:
        assert np.array_equal(np.load(tmp_path / "logits.npy"), m.run({"image": x})["logits"])
