"""Glassbox in a host process changes nothing the host did not ask for: numpy's OpenBLAS (the
same library, loaded first) keeps its thread count and kernels, and the environment keeps its
OpenBLAS variables, while Glassbox's own results stay those of the glassbox command."""
import ctypes
import os

import numpy as np

import glassbox
from conftest import images


def host_openblas():
    lib = ctypes.CDLL("libopenblas.so.0")  # the copy numpy loaded (Debian's numpy links it)
    lib.openblas_get_num_threads.restype = ctypes.c_int
    lib.openblas_get_corename.restype = ctypes.c_char_p
    return lib


def test_the_hosts_openblas_and_environment_are_left_alone(models, oracle):
    np.dot(np.ones((64, 64)), np.ones((64, 64)))  # numpy's OpenBLAS set up, as a host's would be
    lib = host_openblas()
    before = (lib.openblas_get_num_threads(), lib.openblas_get_corename())
    variables = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE")}
    getenv = ctypes.CDLL(None).getenv
    getenv.restype = ctypes.c_char_p
    process = {k: getenv(k.encode()) for k in variables}
    x = images(2)
    with glassbox.load(models.tiny) as m:
        out = m.run({"image": x})
    assert (lib.openblas_get_num_threads(), lib.openblas_get_corename()) == before
    assert {k: getenv(k.encode()) for k in variables} == process
    assert np.array_equal(out["logits"], oracle("run", models.tiny, "image", x)["logits"])
