"""Writes each study model's PyTorch state_dict layout (name, dtype, shape, parameter or
buffer, in state_dict order) and its trainable parameter count, as fixtures for the test that
the specs' parameters map one to one onto PyTorch's.

    .venv/bin/python tools/reference/state_dicts.py Tests/GlassboxIRTests/Fixtures/state_dicts
"""
import os
import sys

from models import study_models

DTYPES = {"torch.float32": "f32", "torch.int64": "i64"}


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name, (classes, model) in study_models().items():
        params = {n for n, _ in model.named_parameters()}
        count = sum(p.numel() for p in model.parameters())
        lines = [f"# {name} with C = {classes}: state_dict of the PyTorch module in tools/reference/models.py",
                 f"# parameters: {count}"]
        for key, tensor in model.state_dict().items():
            kind = "param" if key in params else "buffer"
            shape = "[" + ", ".join(str(d) for d in tensor.shape) + "]"
            lines.append(f"{key} {DTYPES[str(tensor.dtype)]}{shape} {kind}")
        with open(os.path.join(out_dir, name + ".txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"{name}: {count} parameters, {len(lines) - 2} tensors")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Tests/GlassboxIRTests/Fixtures/state_dicts")
