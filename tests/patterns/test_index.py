"""The similarity index: exact top-k against a plain sort, masks, ties, many queries at once."""

from __future__ import annotations

import numpy as np
import pytest

from failmap_assets.patterns.index import VectorIndex, unit_rows


def clustered(n: int, d: int = 24, clusters: int = 12, noise: float = 0.15, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    return centres[rng.integers(0, clusters, n)] + noise * rng.standard_normal((n, d)).astype(np.float32)


def plain_top(vectors: np.ndarray, q: np.ndarray, k: int, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """The reference: every row scored in float64, a full stable sort."""
    v = unit_rows(vectors).astype(np.float64)
    s = v @ (q / np.linalg.norm(q))
    if mask is not None:
        s[~mask] = -np.inf
    order = np.argsort(-s, kind="stable")[:k]
    order = order[np.isfinite(s[order])]
    return order, s[order]


@pytest.mark.parametrize("noise", [0.05, 0.6, 3.0])   # tight cells, loose cells, no structure (full scan)
def test_search_is_the_exact_top_k(noise):
    x = clustered(6000, noise=noise)
    index = VectorIndex.build(x)
    rng = np.random.default_rng(1)
    for q in [*x[rng.integers(0, len(x), 15)], *rng.standard_normal((5, x.shape[1])).astype(np.float32)]:
        rows, sims = index.search(q, 10)
        want_rows, want_sims = plain_top(x, q, 10)
        # the k best scores, each the true score of the row returned (rows may differ only on float ties)
        np.testing.assert_allclose(sims, want_sims, atol=2e-5)
        true = unit_rows(x).astype(np.float64)[rows] @ (q / np.linalg.norm(q))
        np.testing.assert_allclose(sims, true, atol=2e-5)
        assert len(set(rows.tolist())) == 10 and np.all(np.diff(sims) <= 1e-7)


def test_mask_restricts_and_short_results():
    x = clustered(3000)
    index = VectorIndex.build(x)
    mask = np.zeros(len(x), bool)
    mask[::7] = True
    rows, sims = index.search(x[5], 10, mask)
    assert mask[rows].all() and len(rows) == 10
    want, _ = plain_top(x, x[5], 10, mask)
    assert list(rows) == list(want)
    few = np.zeros(len(x), bool)
    few[[3, 900]] = True
    rows, _ = index.search(x[5], 10, few)
    assert sorted(rows) == [3, 900]
    assert len(index.search(x[5], 10, np.zeros(len(x), bool))[0]) == 0


def test_ties_go_to_the_lower_row():
    x = np.repeat(np.eye(4, dtype=np.float32), 5, axis=0)   # five copies of each axis
    rows, sims = VectorIndex.build(x).search(np.array([1, 0, 0, 0], np.float32), 3)
    assert list(rows) == [0, 1, 2] and np.allclose(sims, 1.0)


def test_search_many_agrees_with_search():
    x = clustered(5000)
    index = VectorIndex.build(x)
    mask = np.arange(len(x)) % 3 != 0
    queries = x[[1, 50, 999, 4000]]
    rows, sims = index.search_many(queries, 7, mask)
    for q, (r, s) in enumerate(zip(rows, sims)):
        want_r, want_s = index.search(queries[q], 7, mask)
        np.testing.assert_allclose(s, want_s, atol=1e-5)
        assert list(r) == list(want_r)
    rows, sims = index.search_many(queries, 5, np.eye(1, len(x), 10, dtype=bool)[0])
    assert (rows[:, 0] == 10).all() and (rows[:, 1:] == -1).all() and np.isneginf(sims[:, 1:]).all()


def test_cells_rebuild_the_same_index():
    x = clustered(4000)
    a = VectorIndex.build(x)
    b = VectorIndex.from_cells(x.astype(np.float16), **a.cells())
    for q in x[:5]:   # float16 vectors: the same neighbours' scores, to float16 precision
        np.testing.assert_allclose(a.search(q, 5)[1], b.search(q, 5)[1], atol=2e-3)
    again = VectorIndex.build(x)   # deterministic cells: the same rows give the same index
    assert np.array_equal(again.cell, a.cell) and np.array_equal(again.centroids, a.centroids)
    with pytest.raises(ValueError):
        VectorIndex.from_cells(x, a.centroids, a.cell[:-1])


def test_empty_and_wrong_dimensions():
    empty = VectorIndex.build(np.zeros((0, 8), np.float32))
    assert len(empty.search(np.ones(8, np.float32), 3)[0]) == 0
    index = VectorIndex.build(clustered(100, d=8))
    with pytest.raises(ValueError):
        index.search(np.ones(9, np.float32), 3)
