"""How much class information features carry: a linear probe and a kNN classifier.

Both are fit on a random training split and scored on a disjoint held-out split of the dataset,
drawn with a fixed seed, so every extractor is scored on the same images. Labels are used here
only; no extractor sees them.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.errors import PipelineError
from pipeline.features import Net, embed

# lbfgs iterations of the linear probe. Converging fully costs minutes on 1,024-d pixels and
# overfits them (Fashion-MNIST, 10k images: 0.82 held-out accuracy at 100 iterations, 0.81 at 1,000).
MAX_ITER = 100


def split(n: int, n_train: int, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint random index sets; when n is smaller than asked for, both shrink in proportion."""
    if n_train + n_test > n:
        n_test = max(1, round(n * n_test / (n_train + n_test)))
        n_train = n - n_test
    if n_train < 2:
        raise PipelineError(f"probe: {n} images are too few for a train/held-out split")
    perm = np.random.default_rng(seed).permutation(n)
    return perm[:n_train], perm[n_train:n_train + n_test]


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int) -> float:
    """Majority vote of the k most cosine-similar training features (features are L2-normalised)."""
    k = min(k, len(train_x))
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    correct = 0
    for start in range(0, len(test_x), 1024):
        sim = test_x[start:start + 1024] @ train_x.T
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        votes = np.zeros((len(top), n_classes))
        np.add.at(votes, (np.arange(len(top))[:, None], train_y[top]), 1)
        correct += int((votes.argmax(1) == test_y[start:start + 1024]).sum())
    return correct / len(test_x)


def linear_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """Multinomial logistic regression (C = 1) on standardised features, lbfgs stopped at MAX_ITER."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(train_x, train_y)
    return float(clf.score(test_x, test_y))


def scores(features: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray, k: int) -> dict[str, float]:
    """Linear-probe and kNN accuracy of ``features`` (rows indexed like ``labels``)."""
    args = features[train], labels[train], features[test], labels[test]
    return {"linear_probe_accuracy": round(linear_accuracy(*args), 4), "knn_accuracy": round(knn_accuracy(*args, k), 4)}


def net_scores(net: Net, images: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray,
               k: int, batch_size: int, device: torch.device, desc: str) -> dict[str, float]:
    """Probe scores of ``net``'s features, embedding only the probe's train and held-out images."""
    subset = np.concatenate([train, test])
    feats = embed(net, images[subset], batch_size, device, desc)
    at = np.arange(len(subset))
    return scores(feats, labels[subset], at[:len(train)], at[len(train):], k)
