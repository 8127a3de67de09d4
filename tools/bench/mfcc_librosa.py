"""librosa's time for the MFCC the Swift benchmark measures: 10 s at 16 kHz, n_mfcc 128,
n_mels 128, defaults otherwise. Prints the median and minimum over 50 runs.

    /tmp/librosavenv/bin/python tools/bench/mfcc_librosa.py
"""
import time

import librosa
import numpy as np

sr = 16000
rng = np.random.default_rng(0)
t = np.arange(10 * sr)
y = (0.3 * np.sin(t * 0.05) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
for _ in range(5):
    librosa.feature.mfcc(y=y, sr=sr, n_mfcc=128, n_mels=128)
times = []
for _ in range(50):
    start = time.perf_counter()
    librosa.feature.mfcc(y=y, sr=sr, n_mfcc=128, n_mels=128)
    times.append((time.perf_counter() - start) * 1e3)
times.sort()
print(f"librosa {librosa.__version__} mfcc 10 s 16 kHz -> (128, 313): "
      f"median {times[len(times) // 2]:.3f} ms, min {times[0]:.3f} ms")
