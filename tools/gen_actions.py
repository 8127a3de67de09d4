#!/usr/bin/env python3
"""Generates an action-video data set in the HMDB-51 layout: ROOT/<class>/<clip>.avi and split
files ROOT/testTrainMulti_7030_splits/<class>_test_split<1|2|3>.txt (lines `clip.avi 1|2|0`:
train, test, unused).

Eight classes that no single frame can tell apart — only what the acting object does over
time: rotate_cw, rotate_ccw, grow, shrink, brighten, darken, widen (stretches sideways while
it flattens), heighten (the reverse). In every clip an acting object (triangle, square,
pentagon, star, L or cross, in one of eight colours, at a random position, size and angle)
performs the class's change while it wanders a little, over a textured background that
drifts in a random direction, among 1–3 distractor objects (any shape, circles too) that
wander at random; a little sensor noise is added.

Every class is a change of the object itself, so its evidence is where the object is: a
CNN that pools globally (ResNet, VGG) cannot tell where a thing is except through the
zero padding at the frame's edges, so classes of translation (an earlier version had
move_left/right/up/down) are learnt from edge effects and their Grad-CAM maps point at the
borders. The acting object is large (its box about half the frame's height), as HMDB-51's
actors are, so that a stride-32 feature map (4×4 at the study's 112×112) can place it. Frames are encoded by
ffmpeg's MPEG-4 part 2 encoder with the XVID tag, as HMDB-51's clips are.

Beside each clip, <clip>.json records the class, the acting object, and its bounding box in
every frame as [x0, y0, x1, y1] pixels (inclusive, clipped to the frame), so localisation by
Grad-CAM can be scored.

    tools/gen_actions.py --out data/actions                  # small default: 8 × 12 clips
    tools/gen_actions.py --out data/actions --clips 100 --size 320x240 --frames 90

Needs python3 with numpy and ffmpeg. Deterministic for a given --seed.
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time

import numpy as np

CLASSES = ["rotate_cw", "rotate_ccw", "grow", "shrink", "brighten", "darken", "widen", "heighten"]
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 80, 230), "yellow": (240, 220, 40),
           "magenta": (210, 50, 200), "cyan": (40, 210, 220), "orange": (245, 140, 30), "white": (245, 245, 245)}
ACTOR_SHAPES = ["triangle", "square", "pentagon", "star", "ell", "cross"]
DISTRACTOR_SHAPES = ACTOR_SHAPES + ["circle"]


def polygon(shape):
    """Vertices of a shape about the origin, radius about 1 (y down)."""
    if shape == "triangle":
        a = np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        return np.stack([np.cos(a), -np.sin(a)], 1) * 1.1
    if shape == "square":
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * 0.8
    if shape == "pentagon":
        a = np.pi / 2 + np.arange(5) * 2 * np.pi / 5
        return np.stack([np.cos(a), -np.sin(a)], 1)
    if shape == "star":
        a = np.pi / 2 + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.1, 0.45)
        return np.stack([r * np.cos(a), -r * np.sin(a)], 1)
    if shape == "ell":
        return np.array([[-1, -1], [-0.3, -1], [-0.3, 0.4], [1, 0.4], [1, 1], [-1, 1]], float)
    if shape == "cross":
        w = 0.35
        return np.array([[-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1], [-w, 1],
                         [-w, w], [-1, w], [-1, -w], [-w, -w]], float)
    raise ValueError(shape)


def transform(vertices, cx, cy, scale, angle):
    c, s = np.cos(angle), np.sin(angle)
    x, y = vertices[:, 0] * scale, vertices[:, 1] * scale
    return np.stack([cx + x * c - y * s, cy + x * s + y * c], 1)


def fill_polygon(frame, pts, colour):
    """Even-odd fill of a polygon (pixel centres), over its bounding box only."""
    h, w, _ = frame.shape
    x0, y0 = max(int(np.floor(pts[:, 0].min())), 0), max(int(np.floor(pts[:, 1].min())), 0)
    x1, y1 = min(int(np.ceil(pts[:, 0].max())), w - 1), min(int(np.ceil(pts[:, 1].max())), h - 1)
    if x1 < x0 or y1 < y0:
        return
    ys, xs = np.mgrid[y0:y1 + 1, x0:x1 + 1] + 0.5
    inside = np.zeros(xs.shape, bool)
    for (ax, ay), (bx, by) in zip(pts, np.roll(pts, -1, 0)):
        crosses = (ay > ys) != (by > ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            xi = ax + (ys - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (xs < xi)
    frame[y0:y1 + 1, x0:x1 + 1][inside] = colour


def fill_circle(frame, cx, cy, r, colour):
    h, w, _ = frame.shape
    x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, w - 1)
    y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, h - 1)
    if x1 < x0 or y1 < y0:
        return
    ys, xs = np.mgrid[y0:y1 + 1, x0:x1 + 1] + 0.5
    frame[y0:y1 + 1, x0:x1 + 1][(xs - cx) ** 2 + (ys - cy) ** 2 <= r * r] = colour


def texture(rng, h, w):
    """A periodic texture tile (gratings plus filtered noise), tinted, values 0–255."""
    th, tw = 2 * h, 2 * w
    ys, xs = np.mgrid[0:th, 0:tw]
    t = np.zeros((th, tw))
    for _ in range(4):
        fx, fy = rng.integers(-6, 7), rng.integers(-6, 7)
        t += rng.uniform(0.2, 1) * np.sin(2 * np.pi * (fx * xs / tw + fy * ys / th) + rng.uniform(0, 6.3))
    spectrum = np.fft.fft2(rng.standard_normal((th, tw)))
    fy, fx = np.meshgrid(np.fft.fftfreq(th), np.fft.fftfreq(tw), indexing="ij")
    spectrum /= 1 + (np.hypot(fx, fy) * 40) ** 2
    noise = np.real(np.fft.ifft2(spectrum))
    t += 2 * noise / (noise.std() + 1e-9)
    t = (t - t.min()) / (t.max() - t.min() + 1e-9)
    base = rng.uniform(40, 150, 3)
    contrast = rng.uniform(30, 80, 3)
    return base + (t[..., None] - 0.5) * contrast


def actor_path(rng, cls, n, w, h):
    """Per-frame centre, scale (x and y), angle and brightness of the acting object for its
    class; the centre wanders slowly whatever the class."""
    u = np.linspace(0, 1, n)
    scale0 = rng.uniform(0.14, 0.19) * min(w, h) * 1.4
    angle0 = rng.uniform(0, 2 * np.pi)
    heading = rng.uniform(0, 2 * np.pi)
    reach = rng.uniform(0, 0.12) * min(w, h)
    cx = rng.uniform(0.3, 0.7) * w + np.cos(heading) * reach * u
    cy = rng.uniform(0.3, 0.7) * h + np.sin(heading) * reach * u
    sx = np.full(n, scale0)
    sy = np.full(n, scale0)
    angle = np.full(n, angle0)
    light = np.full(n, rng.uniform(0.75, 1.0))
    if cls in ("rotate_cw", "rotate_ccw"):
        # At most 150° over the clip: 8 frames sampled from it turn ≤ 21° a step, under half
        # the 72° symmetry of a star or pentagon, so the direction is not aliased.
        turn = np.radians(rng.uniform(90, 150))
        angle = angle0 + (turn if cls == "rotate_cw" else -turn) * u  # y points down: + is clockwise
    elif cls in ("grow", "shrink"):
        factor = rng.uniform(1.6, 2.0)
        small = scale0 * 0.75
        sx = sy = small * factor ** (u if cls == "grow" else 1 - u)
    elif cls in ("brighten", "darken"):
        dim, bright = rng.uniform(0.25, 0.4), rng.uniform(0.9, 1.0)
        light = dim + (bright - dim) * (u if cls == "brighten" else 1 - u)
    elif cls in ("widen", "heighten"):
        stretch = rng.uniform(2.2, 2.8) ** (u - 0.5)  # aspect from 1/s to s
        sx, sy = (scale0 * stretch, scale0 / stretch) if cls == "widen" else (scale0 / stretch, scale0 * stretch)
    jitter = rng.normal(0, 0.3, (2, n))
    return cx + jitter[0], cy + jitter[1], sx, sy, angle, light


def make_clip(job):
    cls, index, seed, root, (w, h), n, fps = job
    rng = np.random.default_rng([seed, CLASSES.index(cls), index])
    tile = texture(rng, h, w)
    drift = rng.uniform(0.3, 1.5) * np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
    shape = str(rng.choice(ACTOR_SHAPES))
    colour_name = str(rng.choice(list(COLOURS)))
    colour = np.array(COLOURS[colour_name], float)
    cx, cy, sx, sy, angle, light = actor_path(rng, cls, n, w, h)
    distractors = []
    for _ in range(rng.integers(1, 4)):
        distractors.append({
            "shape": str(rng.choice(DISTRACTOR_SHAPES)),
            "colour": rng.uniform(30, 240, 3),
            "pos": rng.uniform([0.1 * w, 0.1 * h], [0.9 * w, 0.9 * h]),
            "vel": rng.normal(0, 0.4, 2),
            "scale": rng.uniform(0.05, 0.1) * min(w, h) * 1.4,
            "angle": rng.uniform(0, 2 * np.pi),
        })
    vertices = polygon(shape)
    boxes = []
    frames = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        ox, oy = np.round(drift * t).astype(int)
        frame = np.roll(tile, (oy, ox), (0, 1))[:h, :w].copy()
        for d in distractors:
            d["vel"] = 0.9 * d["vel"] + rng.normal(0, 0.3, 2)
            d["pos"] = np.clip(d["pos"] + d["vel"], [0, 0], [w, h])
            if d["shape"] == "circle":
                fill_circle(frame, d["pos"][0], d["pos"][1], d["scale"] * 0.8, d["colour"])
            else:
                fill_polygon(frame, transform(polygon(d["shape"]), *d["pos"], d["scale"], d["angle"]), d["colour"])
        # The shape turned, then stretched along the frame's axes (widen/heighten stay so
        # whatever the angle).
        pts = transform(vertices, 0, 0, 1, angle[t]) * [sx[t], sy[t]] + [cx[t], cy[t]]
        fill_polygon(frame, pts, colour * light[t])
        x0, y0 = np.clip(pts.min(0), 0, [w - 1, h - 1])
        x1, y1 = np.clip(pts.max(0), 0, [w - 1, h - 1])
        boxes.append([round(float(x0), 1), round(float(y0), 1), round(float(x1), 1), round(float(y1), 1)])
        frame += rng.normal(0, 3, frame.shape)
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
    clip = f"{cls}_{shape}_{colour_name}_{index:04d}"
    folder = os.path.join(root, cls)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                    "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", "-c:v", "mpeg4", "-vtag", "XVID",
                    "-q:v", "4", "-pix_fmt", "yuv420p", os.path.join(folder, clip + ".avi")],
                   input=frames.tobytes(), check=True)
    sidecar = {"class": cls, "clip": clip + ".avi", "width": w, "height": h, "fps": fps, "frames": n,
               "actor": {"shape": shape, "colour": colour_name}, "distractors": len(distractors),
               "background_drift_px_per_frame": [round(float(v), 3) for v in drift],
               "boxes": boxes}
    with open(os.path.join(folder, clip + ".json"), "w") as f:
        json.dump(sidecar, f, separators=(",", ":"))
    return cls, clip + ".avi"


def write_splits(root, clips, seed):
    """Per class and split k: 60% train (1), 30% test (2), the rest unused (0), as HMDB-51."""
    folder = os.path.join(root, "testTrainMulti_7030_splits")
    os.makedirs(folder, exist_ok=True)
    for cls in sorted({k for k, _ in clips}, key=CLASSES.index):
        names = sorted(c for k, c in clips if k == cls)
        for split in (1, 2, 3):
            order = np.random.default_rng([seed, CLASSES.index(cls), 1000 + split]).permutation(len(names))
            train, test = round(0.6 * len(names)), round(0.3 * len(names))
            label = {int(i): (1 if r < train else 2 if r < train + test else 0) for r, i in enumerate(order)}
            with open(os.path.join(folder, f"{cls}_test_split{split}.txt"), "w") as f:
                for i, name in enumerate(names):
                    f.write(f"{name} {label[i]} \n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data/actions", help="root folder (default data/actions)")
    p.add_argument("--clips", type=int, default=12, help="clips per class (default 12)")
    p.add_argument("--size", default="160x120", help="frame size WxH (default 160x120)")
    p.add_argument("--frames", type=int, default=48, help="frames per clip (default 48)")
    p.add_argument("--seconds", type=float, help="clip length in seconds (overrides --frames)")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--classes", default=",".join(CLASSES), help="comma-separated subset of " + ",".join(CLASSES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    a = p.parse_args()
    try:
        w, h = (int(v) for v in a.size.lower().split("x"))
    except ValueError:
        sys.exit(f"gen_actions: --size must be WxH, found {a.size!r}")
    n = round(a.seconds * a.fps) if a.seconds else a.frames
    classes = [c for c in a.classes.split(",") if c]
    if unknown := [c for c in classes if c not in CLASSES]:
        sys.exit(f"gen_actions: unknown classes {unknown}; known: {','.join(CLASSES)}")
    if w < 32 or h < 32 or n < 2:
        sys.exit("gen_actions: frames must be at least 32x32 and clips at least 2 frames")
    for c in classes:
        os.makedirs(os.path.join(a.out, c), exist_ok=True)
    jobs = [(c, i, a.seed, a.out, (w, h), n, a.fps) for c in classes for i in range(a.clips)]
    start = time.time()
    clips = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.workers) as pool:
        for done, result in enumerate(pool.map(make_clip, jobs), 1):
            clips.append(result)
            if done % 20 == 0 or done == len(jobs):
                print(f"\rgen_actions: {done}/{len(jobs)} clips", end="" if sys.stdout.isatty() else "\n", flush=True)
    write_splits(a.out, clips, a.seed)
    print(f"{chr(10) if sys.stdout.isatty() else ''}gen_actions: {len(jobs)} clips of {n} frames at {w}x{h} in {len(classes)} classes under {a.out} "
          f"in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
