"""Writes the MFCC fixtures that GlassboxMedia's MFCC must match within 1e-3 (absolute).

Each fixture is a short mono PCM-16 WAV and the MFCC librosa computes from exactly the samples
libsndfile reads from it (soundfile is libsndfile too):

    librosa.feature.mfcc(y=y, sr=sr, n_mfcc=128, n_mels=128)   # n_fft 2048, hop 512, defaults

saved as NAME.mfcc.npy, float32, librosa's layout (n_mfcc, frames). The clips:
  speech16k  espeak-ng Hindi, 16 kHz, with background noise at about -45 dBFS (1.0 s)
  chirp22k   a 200 Hz → 8 kHz chirp with harmonics and noise at 22.05 kHz (0.6 s): another
             sample rate, so another mel bank
  short16k   0.2 s of noisy speech: 7 frames, fewer than one hop on each padded edge
  burst16k   digital silence with a 0.1 s noise burst: exact zeros and the top_db floor

    python3 -m venv /tmp/librosavenv && /tmp/librosavenv/bin/pip install librosa soundfile numpy
    /tmp/librosavenv/bin/python tools/reference/mfcc_fixtures.py Tests/GlassboxMediaTests/Fixtures/mfcc

Needs espeak-ng and ffmpeg on PATH (tools/setup installs both).
"""
import os
import subprocess
import sys
import tempfile

import librosa
import numpy as np
import soundfile as sf


def espeak(text, voice, rate_hz):
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.wav")
        out = os.path.join(tmp, "out.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-w", raw, text], check=True)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", raw, "-ac", "1", "-ar", str(rate_hz),
                        "-c:a", "pcm_f32le", out], check=True)
        y, _ = sf.read(out, dtype="float32")
    return y


def clips(rng):
    speech = espeak("नमस्ते दुनिया एक दो तीन", "hi", 16000)
    noise = lambda n, level: (level * rng.standard_normal(n)).astype(np.float32)
    s = speech[:16000]
    s = np.pad(s, (0, max(0, 16000 - len(s))))
    yield "speech16k", 16000, s + noise(16000, 0.005)

    sr = 22050
    t = np.arange(int(0.6 * sr)) / sr
    f = 200 * (8000 / 200) ** (t / t[-1])
    phase = 2 * np.pi * np.cumsum(f) / sr
    chirp = 0.3 * np.sin(phase) + 0.1 * np.sin(2 * phase) + 0.05 * np.sin(3 * phase)
    yield "chirp22k", sr, chirp.astype(np.float32) + noise(len(t), 0.003)

    yield "short16k", 16000, speech[4000:7200] + noise(3200, 0.005)

    burst = np.zeros(8000, dtype=np.float32)
    burst[3000:4600] = noise(1600, 0.2)
    yield "burst16k", 16000, burst


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(6)
    for name, sr, y in clips(rng):
        path = os.path.join(out_dir, name + ".wav")
        sf.write(path, np.clip(y, -1, 1), sr, subtype="PCM_16")
        samples, rate = sf.read(path, dtype="float32")
        assert rate == sr
        mfcc = librosa.feature.mfcc(y=samples, sr=sr, n_mfcc=128, n_mels=128).astype(np.float32)
        np.save(os.path.join(out_dir, name + ".mfcc.npy"), np.ascontiguousarray(mfcc))
        print(f"{name}: {len(samples)} samples at {sr} Hz -> mfcc {mfcc.shape}, "
              f"range [{mfcc.min():.1f}, {mfcc.max():.1f}]")
    print(f"librosa {librosa.__version__}, numpy {np.__version__}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Tests/GlassboxMediaTests/Fixtures/mfcc")
