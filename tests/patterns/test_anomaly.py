"""The memory-bank anomaly score on a synthetic product: normal wafers close together,
obvious outliers far from all of them."""

from __future__ import annotations

import numpy as np

from failmap_assets.patterns import anomaly
from failmap_assets.patterns.index import VectorIndex


def product(n_normal=400, n_outliers=6, d=24, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(d).astype(np.float32)
    normal = base + 0.25 * rng.standard_normal((n_normal, d)).astype(np.float32)
    outliers = rng.standard_normal((n_outliers, d)).astype(np.float32) * 3
    return normal, outliers


def test_outliers_are_flagged_and_normals_rarely():
    normal, outliers = product()
    index = VectorIndex.build(normal)
    bank = np.ones(len(normal), bool)
    cal = anomaly.calibrate(index, bank)
    assert cal.threshold is not None and cal.bank_size == len(normal) and cal.sample == len(normal)
    scores = anomaly.knn_scores(index, outliers, bank)
    assert anomaly.flag(scores, cal).all()
    # the bank itself, leave-one-out: at most about 1 % above the threshold (0 with the margin, usually)
    loo = anomaly.knn_scores(index, normal, bank, exclude=np.arange(len(normal)))
    assert anomaly.flag(loo, cal).mean() <= 0.02
    # fresh normal wafers of the same product are not flagged
    rng = np.random.default_rng(9)
    fresh = normal[:50] + 0.05 * rng.standard_normal(normal[:50].shape).astype(np.float32)
    assert anomaly.flag(anomaly.knn_scores(index, fresh, bank), cal).mean() <= 0.04


def test_own_row_is_never_its_own_neighbour():
    normal, _ = product(n_normal=30)
    index = VectorIndex.build(normal)
    bank = np.ones(len(normal), bool)
    with_self = anomaly.knn_scores(index, normal[:1], bank, k=1)
    without = anomaly.knn_scores(index, normal[:1], bank, k=1, exclude=np.array([0]))
    assert with_self[0] < 1e-5 < without[0]


def test_small_bank_flags_nothing_and_bank_rule():
    normal, outliers = product(n_normal=anomaly.MIN_BANK - 1)
    index = VectorIndex.build(np.vstack([normal, outliers]))
    bank = np.arange(len(index)) < len(normal)
    cal = anomaly.calibrate(index, bank)
    assert cal.threshold is None and not anomaly.flag(np.array([5.0, np.nan]), cal).any()
    labels = np.array(["none", "none", "Center", "none"], dtype=object)
    assert list(anomaly.is_normal(labels, np.array([0.95, 0.5, 0.99, 0.8]))) == [True, False, False, True]
    assert anomaly.Calibration.from_dict(cal.as_dict()) == cal
