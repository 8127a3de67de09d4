#!/usr/bin/env python3
"""Generates a spoken-language data set with espeak-ng: ROOT/<Language>/<clip>.(wav|mp3|flac).

Each clip speaks text in the language's own script — pseudo-words built from the script's
consonants, vowel signs and independent vowels, plus a number written in the script's digits
(or ASCII digits) that espeak-ng reads aloud — with a random voice variant, speed and pitch.
Random leading and trailing silence and background noise (white, pink, brown or mains hum at
10–30 dB SNR) are added, and the clip is resampled (band-limited, by ffmpeg) to 16 kHz and
written as WAV (70%), MP3 (15%) or FLAC (15%).

Beside each clip, <clip>.json records the text, voice, speed, pitch, noise, duration and the
speech intervals in seconds ([[start, end], …], from the energy of espeak-ng's clean output,
shifted by the leading silence).

    tools/gen_speech.py --out data/lid                      # the small default: 12 × 24 clips
    tools/gen_speech.py --out data/lid --clips 400 --languages hi,ta,te,bn,mr

Needs python3 with numpy, espeak-ng and ffmpeg (tools/setup installs them). Deterministic for a
given --seed (clip by clip, whatever the worker count).
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
import unicodedata
import wave

import numpy as np

# espeak-ng voice, folder name, Unicode block base (None for Urdu's Arabic script).
LANGUAGES = {
    "hi": ("Hindi", 0x0900), "mr": ("Marathi", 0x0900), "bn": ("Bengali", 0x0980),
    "as": ("Assamese", 0x0980), "pa": ("Punjabi", 0x0A00), "gu": ("Gujarati", 0x0A80),
    "or": ("Odia", 0x0B00), "ta": ("Tamil", 0x0B80), "te": ("Telugu", 0x0C00),
    "kn": ("Kannada", 0x0C80), "ml": ("Malayalam", 0x0D00), "ur": ("Urdu", None),
}
VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+m5", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5"]
URDU_LETTERS = "ابپتٹثجچحخدڈذرڑزژسشصضطظعغفقکگلمنوہھءیے"
URDU_DIGITS = "۰۱۲۳۴۵۶۷۸۹"
ESPEAK_RATE = 22050
OUT_RATE = 16000


def assigned(code, categories):
    try:
        unicodedata.name(chr(code))
    except ValueError:
        return False
    return unicodedata.category(chr(code)) in categories


def script(code):
    """Consonants, vowel signs, independent vowels and digits of a language's script."""
    if code == "ur":
        return {"consonants": list(URDU_LETTERS), "signs": [], "vowels": ["ا", "و", "ی"],
                "digits": list(URDU_DIGITS)}
    base = LANGUAGES[code][1]
    consonants = [chr(c) for c in range(base + 0x15, base + 0x3A) if assigned(c, {"Lo"})]
    signs = [chr(c) for c in range(base + 0x3E, base + 0x4D)
             if assigned(c, {"Mc", "Mn"}) and "VOWEL SIGN" in unicodedata.name(chr(c))]
    vowels = [chr(c) for c in range(base + 0x05, base + 0x15) if assigned(c, {"Lo"})]
    digits = [chr(c) for c in range(base + 0x66, base + 0x70) if assigned(c, {"Nd"})]
    if code == "as":  # Assamese writes ra and wa with their own letters
        consonants = [{"র": "ৰ"}.get(c, c) for c in consonants] + ["ৱ"]
    return {"consonants": consonants, "signs": signs, "vowels": vowels, "digits": digits}


def pseudo_text(rng, letters):
    words = []
    for _ in range(rng.integers(3, 8)):
        word = ""
        if letters["vowels"] and rng.random() < 0.25:
            word += rng.choice(letters["vowels"])
        for _ in range(rng.integers(1, 4)):
            word += rng.choice(letters["consonants"])
            if letters["signs"] and rng.random() < 0.7:
                word += rng.choice(letters["signs"])
        words.append(word)
    number = str(rng.integers(0, 10000))
    if letters["digits"] and rng.random() < 0.6:
        number = "".join(letters["digits"][int(d)] for d in number)
    words.insert(int(rng.integers(0, len(words) + 1)), number)
    return " ".join(words)


def speech_intervals(y, rate, threshold=1e-3, gap=0.05, shortest=0.03):
    """[start, end] seconds where 10 ms frames of espeak-ng's clean output are not silent."""
    hop = rate // 100
    frames = len(y) // hop
    if frames == 0:
        return []
    rms = np.sqrt(np.mean(y[:frames * hop].reshape(frames, hop) ** 2, axis=1))
    active = rms > threshold
    intervals, start = [], None
    for i, a in enumerate(np.append(active, False)):
        if a and start is None:
            start = i
        elif not a and start is not None:
            intervals.append([start * hop / rate, i * hop / rate])
            start = None
    merged = []
    for s, e in intervals:
        if merged and s - merged[-1][1] < gap:
            merged[-1][1] = e
        else:
            merged.append([s, e])
    return [[round(s, 3), round(e, 3)] for s, e in merged if e - s >= shortest]


def noise(rng, kind, n, rate):
    if kind == "hum":
        t = np.arange(n) / rate
        f0 = rng.choice([50.0, 60.0])
        x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 6))
        return x + 0.1 * rng.standard_normal(n)
    white = rng.standard_normal(n)
    if kind == "white":
        return white
    spectrum = np.fft.rfft(white)
    f = np.maximum(np.fft.rfftfreq(n, 1 / rate), 20.0)
    spectrum /= np.sqrt(f) if kind == "pink" else f
    return np.fft.irfft(spectrum, n)


def make_clip(job):
    code, index, seed, root = job
    rng = np.random.default_rng([seed, list(LANGUAGES).index(code), index])
    name, _ = LANGUAGES[code]
    text = pseudo_text(rng, script(code))
    variant = str(rng.choice(VARIANTS))
    speed = int(rng.integers(110, 200))
    pitch = int(rng.integers(25, 80))
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.wav")
        subprocess.run(["espeak-ng", "-v", code + variant, "-s", str(speed), "-p", str(pitch), "-w", raw, text],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with wave.open(raw) as w:
            rate = w.getframerate()
            y = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768
    intervals = speech_intervals(y, rate)
    peak = max(np.abs(y).max(), 1e-9)
    y = y / peak * rng.uniform(0.3, 0.9)
    lead, trail = rng.uniform(0.1, 1.5), rng.uniform(0.1, 1.5)
    y = np.concatenate([np.zeros(int(lead * rate)), y, np.zeros(int(trail * rate))])
    speech_power = np.mean(np.concatenate([y[int((s + lead) * rate):int((e + lead) * rate)] for s, e in intervals]) ** 2) \
        if intervals else np.mean(y ** 2)
    kind = str(rng.choice(["white", "pink", "brown", "hum"]))
    snr = float(rng.uniform(10, 30))
    n = noise(rng, kind, len(y), rate)
    n *= np.sqrt(speech_power / 10 ** (snr / 10) / max(np.mean(n ** 2), 1e-20))
    y = np.clip(y + n, -1, 1).astype("<f4")
    ext = str(rng.choice(["wav", "mp3", "flac"], p=[0.7, 0.15, 0.15]))
    clip = f"{code}_{index:05d}"
    folder = os.path.join(root, name)
    path = os.path.join(folder, f"{clip}.{ext}")
    codec = {"wav": ["-c:a", "pcm_s16le"], "mp3": ["-c:a", "libmp3lame", "-b:a", "64k"], "flac": ["-c:a", "flac"]}[ext]
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "-",
                    "-ar", str(OUT_RATE)] + codec + [path], input=y.tobytes(), check=True)
    sidecar = {
        "language": name, "espeak_voice": code + variant, "text": text, "speed_wpm": speed, "pitch": pitch,
        "sample_rate": OUT_RATE, "format": ext, "duration": round(len(y) / rate, 3),
        "leading_silence": round(lead, 3), "trailing_silence": round(trail, 3),
        "noise": {"kind": kind, "snr_db": round(snr, 2)},
        "speech": [[round(s + lead, 3), round(e + lead, 3)] for s, e in intervals],
    }
    with open(os.path.join(folder, clip + ".json"), "w", encoding="utf-8") as f:
        json.dump(sidecar, f, ensure_ascii=False, indent=1)
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data/lid", help="root folder (default data/lid)")
    p.add_argument("--clips", type=int, default=24, help="clips per language (default 24)")
    p.add_argument("--languages", default=",".join(LANGUAGES),
                   help="espeak-ng codes, comma-separated (default: all 12: " + ",".join(LANGUAGES) + ")")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    a = p.parse_args()
    codes = [c.strip() for c in a.languages.split(",") if c.strip()]
    unknown = [c for c in codes if c not in LANGUAGES]
    if unknown:
        sys.exit(f"gen_speech: unknown language code(s) {unknown}; known: {','.join(LANGUAGES)}")
    for c in codes:
        os.makedirs(os.path.join(a.out, LANGUAGES[c][0]), exist_ok=True)
    jobs = [(c, i, a.seed, a.out) for c in codes for i in range(a.clips)]
    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.workers) as pool:
        for done, _ in enumerate(pool.map(make_clip, jobs), 1):
            if done % 50 == 0 or done == len(jobs):
                print(f"\rgen_speech: {done}/{len(jobs)} clips", end="" if sys.stdout.isatty() else "\n", flush=True)
    print(f"{chr(10) if sys.stdout.isatty() else ''}gen_speech: {len(jobs)} clips in {len(codes)} languages under {a.out} in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
