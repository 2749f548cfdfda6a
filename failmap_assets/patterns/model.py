"""The pattern classifier: multinomial logistic regression on standardised features.

Why this model: the features (patterns/features.py) already say what a pattern is
(where the fails are, how clustered, what shape), so a linear model on them is
enough to separate the 9 WM-811K classes, trains in seconds with numpy alone, is
deterministic (full-batch gradient descent from zeros, fixed step count), and its
weights are a few kilobytes. Its logits double as a learned projection of the
features in which classes are apart: the class-discriminative part of the embedding.

The shipped model is a bag of such models (training.py) folded into one by
``mean_model``: the mean of linear logits is linear, so the bag costs what one does.

The label blends this classifier with a vote of the 5 nearest maps of a labelled
reference set (vote.py); that reference (its embeddings, labels and fingerprints) is
stored with the weights, as ``reference``: a model without one labels alone.

The weights live in ``pattern_model.npz`` beside this file, written by
``python -m failmap_assets.patterns.training`` (tests/patterns check the script
reproduces them).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from failmap_assets.patterns.vote import VotingReference

MODEL_PATH = Path(__file__).with_name("pattern_model.npz")


@dataclass(frozen=True)
class PatternModel:
    classes: tuple[str, ...]
    mean: np.ndarray     # (F,)
    scale: np.ndarray    # (F,)
    weights: np.ndarray  # (F, K)
    bias: np.ndarray     # (K,)
    version: str
    reference: VotingReference | None = None   # the maps whose neighbour vote the label blends in

    def standardise(self, features: np.ndarray) -> np.ndarray:
        return (features - self.mean) / self.scale

    def logits(self, features: np.ndarray) -> np.ndarray:
        return self.standardise(features) @ self.weights + self.bias

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return softmax(self.logits(features))

    def save(self, path: Path) -> None:
        ref = {}
        if self.reference is not None:
            ref = dict(ref_classes=np.asarray(self.reference.classes), ref_labels=self.reference.labels,
                       ref_embeddings=self.reference.embeddings, ref_fingerprints=self.reference.fingerprints)
        np.savez_compressed(
            path, classes=np.asarray(self.classes), mean=self.mean, scale=self.scale,
            weights=self.weights, bias=self.bias, version=np.asarray(self.version), **ref)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit(features: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], version: str,
        l2: float = 1e-3, steps: int = 1500, rate: float = 0.5,
        sample_weight: np.ndarray | None = None) -> PatternModel:
    """Deterministic full-batch training (gradient descent with momentum from zeros).

    ``labels`` are indices into ``classes``. Classes are weighted equally whatever
    their counts (the goals are macro averages).
    """
    x = np.asarray(features, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    n, f = z.shape
    k = len(classes)
    y = np.zeros((n, k))
    y[np.arange(n), labels] = 1.0
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    w_sample = 1.0 / np.maximum(counts[labels], 1.0) / k
    if sample_weight is not None:
        w_sample = w_sample * sample_weight
        w_sample = w_sample / w_sample.sum()
    w = np.zeros((f, k))
    b = np.zeros(k)
    vw = np.zeros_like(w)
    vb = np.zeros_like(b)
    for _ in range(steps):
        p = softmax(z @ w + b)
        g = (p - y) * w_sample[:, None]
        gw = z.T @ g + l2 * w
        gb = g.sum(axis=0)
        vw = 0.9 * vw + gw
        vb = 0.9 * vb + gb
        w -= rate * vw
        b -= rate * vb
    return PatternModel(tuple(classes), mean, scale, w, b, version)


def mean_model(members: Sequence[PatternModel], version: str) -> PatternModel:
    """The model whose logits are the mean of the members' logits (a bag of models).

    Each member is linear in the raw features (its standardisation folds into its
    weights), so their mean is one linear model: it is stored, and costs, like one.
    Its probabilities are the members' geometric mean, renormalised. The stored
    standardisation is the members' mean one (any would give the same logits).
    """
    if not members:
        raise ValueError("a bag needs at least one model")
    classes = members[0].classes
    if any(m.classes != classes for m in members):
        raise ValueError("the members of a bag must share their classes")
    raw_w = np.mean([m.weights / m.scale[:, None] for m in members], axis=0)
    raw_b = np.mean([m.bias - (m.mean / m.scale) @ m.weights for m in members], axis=0)
    mean = np.mean([m.mean for m in members], axis=0)
    scale = np.mean([m.scale for m in members], axis=0)
    return PatternModel(classes, mean, scale, raw_w * scale[:, None], raw_b + mean @ raw_w, version)


def load(path: Path) -> PatternModel:
    with np.load(path, allow_pickle=False) as d:
        reference = None
        if "ref_labels" in d:
            reference = VotingReference(
                classes=tuple(str(c) for c in d["ref_classes"]), labels=d["ref_labels"].astype(np.int64),
                embeddings=d["ref_embeddings"].astype(np.float32), fingerprints=d["ref_fingerprints"].astype(np.uint64))
        return PatternModel(
            classes=tuple(str(c) for c in d["classes"]), mean=d["mean"], scale=d["scale"],
            weights=d["weights"], bias=d["bias"], version=str(d["version"]), reference=reference)


@functools.lru_cache(maxsize=1)
def shipped_model() -> PatternModel:
    if not MODEL_PATH.exists():
        raise FileNotFoundError(
            f"{MODEL_PATH} is missing: run `python -m failmap_assets.patterns.training` to build it")
    return load(MODEL_PATH)
