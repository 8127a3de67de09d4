"""Copies libglassbox.so (built by `make lib`) into the package, so an installed package
needs no path to the source tree: `pip install ./python` after `make lib`.

The library is looked for in $GLASSBOX_LIBRARY, then ../.build/release/libglassbox.so.
It links the Swift runtime of the toolchain that built it (its RUNPATH), OpenBLAS and
FFmpeg from Debian: the package runs on the machine that built it, or one set up alike.
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildWithLibrary(build_py):
    def run(self):
        source = os.environ.get("GLASSBOX_LIBRARY") or os.path.join(HERE, "..", ".build", "release", "libglassbox.so")
        if not os.path.isfile(source):
            raise SystemExit(f"glassbox: {source} not found; run `make lib` in the repository first "
                             "(or set GLASSBOX_LIBRARY to a built libglassbox.so)")
        super().run()
        target = os.path.join(self.build_lib, "glassbox", "libglassbox.so")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(source, target)


setup(cmdclass={"build_py": BuildWithLibrary})
