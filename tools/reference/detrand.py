"""Deterministic tensors, bit-identical to GlassboxReference.DeterministicTensors in Swift:
a 64-bit LCG seeded from FNV-1a of a name; elements u * 2^-k with u uniform on [-1, 1) in
steps of 2^-23. Fixtures then hold only expected outputs."""
import numpy as np

MASK = (1 << 64) - 1


def seed(name):
    h = 0xCBF29CE484222325
    for b in name.encode():
        h ^= b
        h = (h * 0x100000001B3) & MASK
    return h


A, C = 6364136223846793005, 1442695040888963407
BLOCK = 4096


def _jump(n):
    """(A^n, C·(A^(n-1) + … + 1)) mod 2^64: n steps of the LCG as one affine map."""
    a, c = 1, 0
    for _ in range(n):
        a, c = (a * A) & MASK, (c * A + C) & MASK
    return a, c


_BLOCK_A, _BLOCK_C = _jump(BLOCK)


def values(name, count, log2_scale=0):
    # The first BLOCK states step by step, then whole blocks at once (uint64 arithmetic wraps).
    states = np.empty(BLOCK, dtype=np.uint64)
    state = seed(name)
    for i in range(BLOCK):
        state = (state * A + C) & MASK
        states[i] = state
    chunks, done = [], 0
    with np.errstate(over="ignore"):
        while done < count:
            chunks.append(states[: count - done])
            done += len(chunks[-1])
            states = states * np.uint64(_BLOCK_A) + np.uint64(_BLOCK_C)
    s = np.concatenate(chunks) if chunks else np.empty(0, dtype=np.uint64)
    u = ((s >> np.uint64(40)).astype(np.int64) - (1 << 23)).astype(np.float32) / np.float32(1 << 23)
    return u * np.float32(2.0 ** -log2_scale)


def tensor(name, shape, log2_scale=0):
    return values(name, int(np.prod(shape, dtype=np.int64)), log2_scale).reshape(shape)


def log2_scale_for(shape):
    if len(shape) < 2:
        return 3
    fan_in = int(np.prod(shape[1:]))
    k = 0
    while (1 << (2 * k)) < fan_in:
        k += 1
    return k


def parameters(state_dict_shapes):
    """{name: shape, dtype} → {name: numpy array}, as DeterministicTensors.parameters does."""
    out = {}
    for name, (shape, dtype) in state_dict_shapes.items():
        n = int(np.prod(shape, dtype=np.int64))
        if dtype == "i64":
            out[name] = np.zeros(shape, dtype=np.int64)
        elif name.endswith("running_var"):
            out[name] = (np.float32(1) + values(name, n, 1)).reshape(shape)
        else:
            out[name] = tensor(name, shape, log2_scale_for(list(shape)))
    return out
