#!/usr/bin/env python3
"""How long `glassbox.load` takes on the study's largest model, resnet18_lstm (ResNet-18 per
frame, an LSTM over 16 frames, 51 classes; 45 MB of weights).

    make lib && swift build -c release --product glassbox
    python3 tools/bench/load_time.py [--runs 10]

Compiles graphs/resnet18_lstm.graph --bind C=51 --bind T=16, then times in this process, each
the median of RUNS after one untimed load (the file is in the page cache: the compile wrote it):
  gbx_model_load          the file memory-mapped, its header, message and graph checked, and
                          every weight's CRC-32 (the C call alone, through ctypes)
  load                    glassbox.load(path): that, and a session; the batch B is unbound, so
                          the program is compiled at the first run, for that run's shapes
  load, bindings B=1      glassbox.load(path, bindings={"B": 1}): every symbol bound, so the
                          session compiles its program now (passes, lowering, memory plan)
  first run after load    the first m.run of a [1, 16, 3, 112, 112] clip after `load`
                          (compiling for its shape, then running)
"""
import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RELEASE = os.path.join(ROOT, ".build", "release")
os.environ.setdefault("GLASSBOX_LIBRARY", os.path.join(RELEASE, "libglassbox.so"))
sys.path.insert(0, os.path.join(ROOT, "python"))

import glassbox  # noqa: E402
from glassbox import _lib  # noqa: E402


def cpu_name():
    """lscpu's model name, family and model, and CPU count (`AMD EPYC, family 26 model 2, 2 CPUs`)."""
    fields = {}
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return (f"{fields.get('Model name', 'unknown CPU')}, family {fields.get('CPU family', '?')} "
            f"model {fields.get('Model', '?')}, {fields.get('CPU(s)', '?')} CPUs")


def median_ms(call, runs):
    call()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times), max(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=10)
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="glassbox-load-bench-")
    path = os.path.join(work, "resnet18_lstm.model")
    subprocess.run([os.path.join(RELEASE, "glassbox"), "compile", os.path.join(ROOT, "graphs", "resnet18_lstm.graph"),
                    "--bind", "C=51", "--bind", "T=16", "-o", path], check=True, capture_output=True)
    print(f"CPU: {cpu_name()}; {os.path.getsize(path) / 2**20:.1f} MiB .model; glassbox {glassbox.version()} "
          f"(release); median of {a.runs} (min, max) in ms")

    def c_load():
        handle = ctypes.c_void_p()
        assert _lib.gbx_model_load(path.encode(), ctypes.byref(handle)) == 0, _lib.gbx_last_error()
        _lib.gbx_model_free(handle)

    def load():
        glassbox.load(path).close()

    def load_bound():
        glassbox.load(path, bindings={"B": 1}).close()

    clip = np.sin(np.arange(16 * 3 * 112 * 112) * 0.37).astype(np.float32).reshape(1, 16, 3, 112, 112)

    def first_run():
        with glassbox.load(path) as m:
            m.run({"frames": clip})

    for name, call in [("gbx_model_load", c_load), ("load", load), ("load, bindings B=1", load_bound),
                       ("load + first run", first_run)]:
        median, low, high = median_ms(call, a.runs)
        print(f"  {name:<22} {median:8.1f}  ({low:.1f}, {high:.1f})")


if __name__ == "__main__":
    main()
