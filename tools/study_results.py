#!/usr/bin/env python3
"""Tables of a study run as Markdown, from DIR/study.json and DIR/metrics.json (what
`glassbox study` writes), and the key figures copied beside the output.

    tools/study_results.py out/study --figures docs/study/figures > docs/study/tables.md

Only the standard library: it runs wherever the study ran.
"""
import argparse
import json
import os
import shutil
import sys

SEED = {  # the seed study's numbers, on the real data sets
    "bilstm": ("BiLSTM", 0.736, 0.505), "bilstm_attention1d": ("BiLSTM-Attention-1D", 0.861, 0.257),
    "bilstm_attention2d": ("BiLSTM-Attention-2D", 0.889, 0.107),
    "resnet18_lstm": ("ResNet-LSTM", 0.64, None), "vgg19_lstm": ("VGG-LSTM", 0.32, None),
}
ORDER = ["bilstm", "bilstm_attention1d", "bilstm_attention2d", "resnet18_lstm", "vgg19_lstm"]


def pct(x):
    return "—" if x is None else f"{100 * x:.1f}%"


def num(x, f="{:.3f}"):
    return "—" if x is None else f.format(x)


def get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--figures", help="copy the key figures here (paths in the output are relative to its parent)")
    a = p.parse_args()
    with open(os.path.join(a.dir, "study.json")) as f:
        record = json.load(f)
    metrics = {}
    if os.path.exists(os.path.join(a.dir, "metrics.json")):
        with open(os.path.join(a.dir, "metrics.json")) as f:
            metrics = json.load(f)
    models = {m["name"]: m for m in record["models"]}
    out = []
    w = out.append
    w(f"Run: {'--quick' if record['quick'] else 'full'}, started {record['started']} on {record['machine']}.\n")

    for title, names in (("Spoken language identification", ORDER[:3]), ("Action recognition", ORDER[3:])):
        w(f"### {title}\n")
        w("| model | test accuracy | cross-entropy | chance | train / test examples | t-SNE T(5) | seed accuracy | seed cross-entropy |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        for n in names:
            m = models.get(n, {})
            t, sa, sl = SEED[n]
            classes = len(m.get("classes", [])) or None
            w(f"| {t} `{n}` | {pct(m.get('accuracy'))} | {num(m.get('loss'))} | {pct(1 / classes) if classes else '—'} | "
              f"{m.get('trainExamples', '—')} / {m.get('testExamples', '—')} | {num(m.get('trustworthiness'))} | "
              f"{pct(sa)} | {num(sl)} |")
        w("")

    w("### Confusion matrices (test split; rows true, columns predicted)\n")
    for n in ORDER:
        m = models.get(n)
        if not m or not m.get("confusion"):
            continue
        names = [c[0] + "." + c.split("_", 1)[1][:5] if "_" in c else c[:4] for c in m["classes"]]
        w(f"`{n}`:\n")
        w("| | " + " | ".join(names) + " |")
        w("|---|" + "---:|" * len(names))
        for c, row in zip(m["classes"], m["confusion"]):
            w(f"| {c} | " + " | ".join(str(v) for v in row) + " |")
        w("")

    w("### Explanation metrics (test clips; `glassbox evaluate MODEL TAP`)\n")
    w("| model | tap | examples | deletion AUC ↓ | insertion AUC ↑ | pointing (frames) | pointing (frames of correct clips) | "
      "pointing (space-time peak, correct clips) | energy in box | "
      "attention in speech | speech share of frames | uniform-attention accuracy | permutation flip rate | sanity ρ (top block) |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in ORDER:
        r = metrics.get(n)
        if not r:
            continue
        sanity = r.get("sanity") or []
        w(f"| `{n}` | {r.get('tap')} | {r.get('examples')} | {num(get(r, 'deletion', 'auc'))} | {num(get(r, 'insertion', 'auc'))} | "
          f"{pct(get(r, 'localisation', 'pointing_per_frame'))} | {pct(get(r, 'localisation', 'pointing_per_frame_correct'))} | "
          f"{pct(get(r, 'localisation', 'pointing_clip_peak_correct'))} | "
          f"{pct(get(r, 'localisation', 'energy_per_frame'))} | {pct(get(r, 'speech', 'attention_mass_in_speech'))} | "
          f"{pct(get(r, 'speech', 'speech_frame_share'))} | {pct(get(r, 'attention_faithfulness', 'uniform_accuracy'))} | "
          f"{pct(get(r, 'attention_faithfulness', 'permutation_flip_rate'))} | "
          f"{num(sanity[0]['spearman']) + ' (' + sanity[0]['reinitialised_through'] + ')' if sanity else '—'} |")
    w("")

    w("### Stages\n")
    w("| stage | state | seconds | note |")
    w("|---|---|---:|---|")
    total = 0
    for s in record["stages"]:
        total += s.get("seconds", 0)
        note = (s.get("note") or "").replace("|", "\\|")
        w(f"| `{s['name']}` | {s['state']} | {s.get('seconds', 0):.1f} | {note} |")
    w(f"| all | | {total:.0f} ({total / 60:.1f} min) | |")
    w("")

    if a.figures:
        os.makedirs(a.figures, exist_ok=True)
        rel = os.path.basename(os.path.normpath(a.figures))
        w("### Figures\n")
        for fig in record.get("figures", []):
            src = os.path.join(a.dir, fig["path"])
            if not os.path.exists(src) or fig["path"].endswith(".gif"):
                continue
            name = fig["path"].replace("/", "_")
            shutil.copyfile(src, os.path.join(a.figures, name))
            w(f"![{fig['caption']}]({rel}/{name})\n\n*{fig['caption']}* — `{fig.get('command') or ''}`\n")
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
