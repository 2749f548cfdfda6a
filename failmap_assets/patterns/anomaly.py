"""Is this wafer unusual for its product? The memory-bank score, calibrated on the bank.

As the users' memory-bank approach does for images: the *memory bank* of a product is
its normal wafers (labelled ``none`` with confidence at least ``NORMAL_MIN_CONFIDENCE``);
a wafer's anomaly score is the mean cosine distance (1 - similarity) to its
``ANOMALY_K`` nearest wafers of that bank. A wafer in the bank never counts as its own
neighbour (its stored row is left out of its search).

The threshold rule (``calibrate``): every bank wafer of an evenly spaced sample of at
most ``CALIBRATION_SAMPLE`` is scored leave-one-out against the rest of the bank, and
the threshold is the ``THRESHOLD_QUANTILE`` quantile of those scores times
``THRESHOLD_MARGIN``: a normal wafer is flagged about 1 % of the time (less with the
margin), and a wafer farther from every normal wafer than almost any normal wafer is
from its neighbours is flagged. A bank of fewer than ``MIN_BANK`` wafers gives no
threshold, and no wafer is flagged against it (too few normals to say what is usual).

Pure numpy over ``index.VectorIndex``; the rows and the product filter are the caller's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from failmap_assets.patterns.index import VectorIndex

NORMAL_LABEL = "none"
NORMAL_MIN_CONFIDENCE = 0.8
ANOMALY_K = 5
THRESHOLD_QUANTILE = 0.99
THRESHOLD_MARGIN = 1.1
CALIBRATION_SAMPLE = 512
MIN_BANK = 10


@dataclass(frozen=True)
class Calibration:
    threshold: float | None   # None: the bank is too small to flag anything
    bank_size: int
    sample: int               # bank wafers scored leave-one-out
    k: int = ANOMALY_K
    quantile: float = THRESHOLD_QUANTILE
    margin: float = THRESHOLD_MARGIN
    loo_median: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def is_normal(labels: np.ndarray, confidences: np.ndarray, min_confidence: float = NORMAL_MIN_CONFIDENCE) -> np.ndarray:
    """Which wafers belong in the memory bank: labelled normal with good confidence."""
    return (np.asarray(labels, dtype=object) == NORMAL_LABEL) & (np.asarray(confidences, np.float64) >= min_confidence)


def knn_scores(index: VectorIndex, queries: np.ndarray, bank: np.ndarray, *, k: int = ANOMALY_K,
               exclude: np.ndarray | None = None) -> np.ndarray:
    """Mean cosine distance of each query to its ``k`` nearest bank rows (``bank``: a
    mask over the index rows); ``exclude`` per query: its own index row, or -1. NaN
    where the bank has no row to compare with."""
    queries = np.atleast_2d(np.asarray(queries, np.float32))
    nq = len(queries)
    if exclude is None:
        exclude = np.full(nq, -1, np.int64)
    rows, sims = index.search_many(queries, k + 1, mask=bank)
    scores = np.full(nq, np.nan)
    for q in range(nq):
        keep = (rows[q] >= 0) & (rows[q] != exclude[q])
        s = sims[q][keep][:k]
        if len(s):
            scores[q] = float(np.mean(1.0 - np.clip(s, -1.0, 1.0)))
    return scores


def calibrate(index: VectorIndex, bank: np.ndarray, *, k: int = ANOMALY_K) -> Calibration:
    """The flag threshold of a product's bank (see the module docstring)."""
    members = np.flatnonzero(np.asarray(bank, bool))
    if len(members) < MIN_BANK:
        return Calibration(threshold=None, bank_size=len(members), sample=0, k=k)
    if len(members) > CALIBRATION_SAMPLE:
        members = members[np.linspace(0, len(members) - 1, CALIBRATION_SAMPLE).astype(np.int64)]
    loo = knn_scores(index, index.vectors(members), bank, k=k, exclude=members)
    loo = loo[np.isfinite(loo)]
    threshold = float(np.quantile(loo, THRESHOLD_QUANTILE) * THRESHOLD_MARGIN)
    return Calibration(threshold=threshold, bank_size=int(np.asarray(bank, bool).sum()), sample=len(members), k=k,
                       loo_median=float(np.median(loo)))


def flag(scores: np.ndarray, calibration: Calibration) -> np.ndarray:
    """Anomalous: score above the threshold (never without a threshold, never for NaN)."""
    scores = np.asarray(scores, np.float64)
    if calibration.threshold is None:
        return np.zeros(len(scores), bool)
    return np.nan_to_num(scores, nan=-np.inf) > calibration.threshold
