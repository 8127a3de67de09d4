#!/usr/bin/env python3
"""Reads a Glassbox .model file without Glassbox: Python's protobuf package, with code
generated at run time by protoc from Formats/glassbox.proto, and the layout documented there.

    tools/read_model.py lid.model            # graph signature, then every tensor
    tools/read_model.py lid.model --values 4 # …with its first 4 values

Checks the header, the message and every tensor's CRC-32 (zlib's) as the Swift loader does.
Needs protoc (Debian protobuf-compiler) and the protobuf package (Debian python3-protobuf).
"""
import argparse
import atexit
import importlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTO_DIR = os.path.join(ROOT, "Formats")
HEADER = struct.Struct("<8sIIQQQ24s")  # magic, version, message crc, M, W, L, reserved
DTYPES = {1: ("f32", "<f", 4), 2: ("f64", "<d", 8), 3: ("i64", "<q", 8), 4: ("bool", "<?", 1)}


def load_schema():
    """Generates glassbox_pb2 from the .proto into a temporary directory and imports it."""
    out = tempfile.mkdtemp(prefix="glassbox-proto-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    subprocess.run(["protoc", f"--python_out={out}", f"-I{PROTO_DIR}", os.path.join(PROTO_DIR, "glassbox.proto")],
                   check=True)
    sys.path.insert(0, out)
    return importlib.import_module("glassbox_pb2")


def dim_text(d):
    if not d.symbols:
        return str(d.coefficient)
    product = "*".join(d.symbols)
    return product if d.coefficient == 1 else f"{d.coefficient}*{product}"


def type_text(t):
    return f"{DTYPES.get(t.dtype, ('?',))[0]}[{', '.join(dim_text(d) for d in t.shape)}]"


def read(path, values):
    pb = load_schema()
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < HEADER.size:
        sys.exit(f"{path}: file is {len(data)} bytes, shorter than the 64-byte header")
    magic, version, crc, m, w, l, _ = HEADER.unpack_from(data)
    if magic != b"GBXMODEL":
        sys.exit(f"{path}: not a Glassbox model")
    if version != 1:
        sys.exit(f"{path}: format version {version}; this reader knows version 1")
    if 64 + m > len(data) or w != (64 + m + 63) // 64 * 64 or w + l != len(data):
        sys.exit(f"{path}: header lengths do not match the file's size")
    message = data[64:64 + m]
    if zlib.crc32(message) != crc:
        sys.exit(f"{path}: message checksum mismatch")
    model = pb.Model()
    model.ParseFromString(message)
    g = model.graph
    print(f"graph {g.name} (format version {model.format_version}, {len(data)} bytes)")
    for i in g.inputs:
        print(f"  input   {g.values[i].name}: {type_text(g.values[i].type)}")
    for o in g.outputs:
        print(f"  output  {o.name}: {type_text(g.values[o.value].type)}")
    for t in g.taps:
        print(f"  tap     {t.name} = {t.kind}({', '.join(g.values[v].name for v in t.operands)}): {type_text(t.type)}")
    if model.labels:
        print(f"  labels  {', '.join(model.labels)}")
    total = 0
    for p in g.parameters:
        name, fmt, size = DTYPES[p.type.dtype]
        start = w + p.data.offset
        raw = data[start:start + p.data.length]
        if len(raw) != p.data.length or zlib.crc32(raw) != p.data.crc32:
            sys.exit(f"{path}: tensor '{p.name}' fails its checksum")
        count = p.data.length // size
        line = f"{p.name} {type_text(p.type)} {'param' if p.role == pb.TRAINABLE else 'buffer'} offset {p.data.offset} crc32 {p.data.crc32:08x}"
        if values:
            shown = [struct.unpack_from(fmt, raw, k * size)[0] for k in range(min(values, count))]
            line += " [" + ", ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in shown) + \
                    (", …]" if count > values else "]")
        print(line)
        total += p.data.length
    print(f"{len(g.parameters)} tensors, {total} bytes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--values", type=int, default=0, help="print the first N values of each tensor")
    args = parser.parse_args()
    read(args.model, args.values)


if __name__ == "__main__":
    main()
