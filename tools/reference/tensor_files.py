"""Writes the .npy and safetensors fixtures of Tests/GlassboxFormatTests with numpy and the
reference safetensors writer (through torch), so the Swift readers are checked against files
the reference tools made, and the Swift writers against their exact bytes.

    /tmp/refvenv/bin/python tools/reference/tensor_files.py Tests/GlassboxFormatTests/Fixtures/tensors

Values are small and follow a formula the tests repeat: element k of an f32 or f64 tensor is
k * 0.5 - 1, of an i64 tensor k * 3 - 7, of a bool tensor k % 3 == 0.
"""
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file


def values(dtype, shape):
    n = int(np.prod(shape, dtype=np.int64))
    k = np.arange(n)
    if dtype == np.bool_:
        v = k % 3 == 0
    elif dtype == np.int64:
        v = k * 3 - 7
    else:
        v = k * 0.5 - 1
    return v.astype(dtype).reshape(shape)


def write_npy(path, array, version):
    with open(path, "wb") as f:
        np.lib.format.write_array(f, array, version=version)


def main(out):
    os.makedirs(out, exist_ok=True)
    j = lambda name: os.path.join(out, name)
    # Readable files, one per element type and header version.
    np.save(j("f32_2x3.npy"), values(np.float32, (2, 3)))               # version 1.0
    write_npy(j("f64_4_v2.npy"), values(np.float64, (4,)), (2, 0))
    write_npy(j("i64_scalar_v3.npy"), values(np.int64, ()), (3, 0))
    np.save(j("bool_2x2x2.npy"), values(np.bool_, (2, 2, 2)))
    np.save(j("f32_empty_0x3.npy"), values(np.float32, (0, 3)))
    # Files the reader refuses.
    np.save(j("fortran_order.npy"), np.asfortranarray(values(np.float32, (2, 3))))
    np.save(j("big_endian.npy"), values(np.float32, (3,)).astype(">f4"))
    np.save(j("object.npy"), np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.save(j("f16.npy"), values(np.float16, (2,)))

    tensors = {
        "fc.weight": torch.from_numpy(values(np.float32, (2, 3))),
        "fc.bias": torch.from_numpy(values(np.float32, (2,))),
        "bn.num_batches_tracked": torch.from_numpy(values(np.int64, ())),
        "mask": torch.from_numpy(values(np.bool_, (3,))),
        "x64": torch.from_numpy(values(np.float64, (2, 2))),
    }
    save_file(tensors, j("mixed.safetensors"), metadata={"format": "pt"})
    save_file({"h": torch.zeros(2, dtype=torch.float16)}, j("f16.safetensors"))
    print(f"wrote fixtures to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Tests/GlassboxFormatTests/Fixtures/tensors")
