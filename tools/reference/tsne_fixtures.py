#!/usr/bin/env python3
"""t-SNE and trustworthiness fixtures for Tests/GlassboxAnalysisTests: scikit-learn's numbers on
clustered data that Swift rebuilds bit for bit from detrand (so the fixture holds no points).

Data: N points in D dimensions, point i in cluster i % K:
    X[i] = 2 · centers[i % K] + noise[i]
with centers = detrand.tensor("tsne.centers", [K, D]) and noise = detrand.tensor("tsne.noise", [N, D]),
both uniform on [-1, 1) in float32 (2· is exact, so Swift's Float arithmetic gives the same X).

Written: Tests/GlassboxAnalysisTests/Fixtures/tsne.json with
  - trustworthiness(X, X[:, :2], k) for k in (5, 10): the metric on a fixed embedding;
  - scikit-learn TSNE (exact and Barnes-Hut, perplexity 30, PCA init, other defaults) and the
    trustworthiness (k = 5) of each embedding, over several random_state values.

    /tmp/torchvenv/bin/python tools/reference/tsne_fixtures.py
"""
import json
import os
import sys

import numpy as np
import sklearn
from sklearn.manifold import TSNE, trustworthiness

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import detrand  # noqa: E402

N, D, K = 240, 24, 6
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "GlassboxAnalysisTests", "Fixtures", "tsne.json")


def data():
    centers = detrand.tensor("tsne.centers", [K, D])
    noise = detrand.tensor("tsne.noise", [N, D])
    labels = np.arange(N) % K
    return (np.float32(2) * centers[labels] + noise).astype(np.float32), labels


def main():
    X, labels = data()
    fixed = X[:, :2]
    result = {
        "generator": "tools/reference/tsne_fixtures.py",
        "sklearn": sklearn.__version__,
        "n": N, "d": D, "k": K,
        "x_checksum": float(np.sum(X.astype(np.float64))),
        "fixed_embedding_trustworthiness": {str(k): float(trustworthiness(X, fixed, n_neighbors=k)) for k in (5, 10)},
    }
    for method in ("exact", "barnes_hut"):
        values = []
        for seed in range(3):
            Y = TSNE(n_components=2, perplexity=30.0, method=method, init="pca", random_state=seed).fit_transform(X)
            values.append(float(trustworthiness(X, Y, n_neighbors=5)))
        result["tsne_" + method + "_trustworthiness"] = values
    with open(OUT, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
