"""The neighbour vote that the pattern label blends with the classifier (pure numpy).

Why: the classifier is linear on handmade features; a wafer's nearest labelled maps on
the embedding (which adds a polar fail-density map to the classifier's view) carry
information it lacks. A classic ensemble of a parametric and a non-parametric
estimator: the label is the argmax of

    p = (p_classifier + share of the VOTE_K nearest reference maps per class) / 2

with VOTE_K = 5, neighbours by cosine similarity of the embedding, a map never its own
neighbour. The rule, k and the weight 1/2 were fixed before any real wafer was scored
with it (benchmarks/patterns_knn.py declares the variants it compares). A strong
classifier call survives a split vote; a weak one (e.g. Loc 0.43, Scratch 0.42) follows
the neighbours. With no reference (or no neighbour left) the classifier labels alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

VOTE_K = 5
EXCLUDED = -np.inf   # the similarity that takes a reference map out of a vote

#: The shipped reference set (which maps vote, and the neighbours `failmap patterns evaluate`
#: queries): REFERENCE_PER_CLASS synthetic maps of every class of failmap_synth.patterns at
#: REFERENCE_SEED, a seed no classifier is trained on (training.py) and the held-out maps of the
#: benchmarks do not use. Defined here, below both training.py and evaluate.py.
REFERENCE_SEED = 2
REFERENCE_PER_CLASS = 30


@dataclass(frozen=True)
class VotingReference:
    """The labelled maps that vote: their embeddings, class (index into ``classes``) and
    fingerprint (so that a map in the reference never votes for itself)."""
    classes: tuple[str, ...]
    labels: np.ndarray         # int64 (n,)
    embeddings: np.ndarray     # float32 (n, EMBEDDING_DIM), unit length
    fingerprints: np.ndarray   # uint64 (n,)

    def __post_init__(self) -> None:
        n = self.labels.shape[0]
        if self.labels.ndim != 1 or self.embeddings.ndim != 2 or self.embeddings.shape[0] != n \
                or self.fingerprints.shape != (n,):
            raise ValueError("a voting reference needs one label, embedding and fingerprint per map")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError("voting reference labels must index its classes")


def nearest(similarity: np.ndarray, k: int = VOTE_K) -> list[np.ndarray]:
    """Per row of ``similarity`` (m, n), the indices of its k most similar reference maps,
    most similar first, excluded ones (-inf) left out; ties by reference order (the same
    order as evaluate's knn figure)."""
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2:
        raise ValueError(f"similarity must be 2-D (maps, reference maps), got shape {sim.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    out = []
    for row in sim:
        order = np.argsort(-row, kind="stable")
        out.append(order[np.isfinite(row[order])][:k])
    return out


def neighbour_share(similarity: np.ndarray, reference_labels: np.ndarray, n_classes: int,
                    k: int = VOTE_K, weighted: bool = False) -> np.ndarray:
    """(m, n_classes): the share of each map's k nearest reference maps in each class
    (``weighted``: each neighbour weighs its similarity, floored at 0). A row with no
    neighbour is all zeros."""
    labels = np.asarray(reference_labels, dtype=np.int64)
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2 or labels.shape != (sim.shape[1],):
        raise ValueError(f"reference_labels must hold one class per reference map: {labels.shape} vs {sim.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"reference labels must be class indices in 0..{n_classes - 1}")
    share = np.zeros((sim.shape[0], n_classes))
    for i, idx in enumerate(nearest(sim, k)):
        if idx.size == 0:
            continue
        w = np.maximum(sim[i, idx], 0.0) if weighted else np.ones(idx.size)
        if w.sum() <= 0:
            w = np.ones(idx.size)
        share[i] = np.bincount(labels[idx], weights=w, minlength=n_classes) / w.sum()
    return share


def blend(p_model: np.ndarray, share: np.ndarray) -> np.ndarray:
    """(p_model + share) / 2 per row; a row whose share is empty keeps p_model."""
    p = np.asarray(p_model, dtype=np.float64)
    s = np.asarray(share, dtype=np.float64)
    if p.shape != s.shape:
        raise ValueError(f"p_model and share must have the same shape: {p.shape} vs {s.shape}")
    voted = s.sum(axis=-1, keepdims=True) > 0
    return np.where(voted, (p + s) / 2.0, p)


def decide(p_blend: np.ndarray, p_model: np.ndarray) -> np.ndarray:
    """Per row, the class of the highest blended probability; a tie goes to the class
    the classifier rates higher (then the first)."""
    pb = np.atleast_2d(np.asarray(p_blend, dtype=np.float64))
    pm = np.atleast_2d(np.asarray(p_model, dtype=np.float64))
    top = pb >= pb.max(axis=1, keepdims=True) - 1e-12
    return np.argmax(np.where(top, pm, -np.inf), axis=1)


def fingerprint(grid: np.ndarray, die_aspect: float) -> int:
    """A 63-bit digest of a wafer (its notch-down grid and die aspect): how a map is
    recognised in the voting reference, so that it never votes for itself."""
    g = np.ascontiguousarray(grid, dtype=np.int8)
    h = hashlib.blake2b(digest_size=8)
    h.update(np.asarray(g.shape, dtype=np.int64).tobytes())
    h.update(np.float64(round(float(die_aspect), 9)).tobytes())
    h.update(g.tobytes())
    return int.from_bytes(h.digest(), "little") >> 1
