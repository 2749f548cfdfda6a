"""The similarity index over wafer signatures: exact top-k by cosine, fast at 1M wafers.

Pure numpy over unit-length embeddings (``signature.py``); where the index is kept,
versioned and switched is ``pipeline/pattern_index.py`` (it stores the embeddings as
float16; the index is exact over those).

How a query stays exact and scores only a few rows:

* At build, the rows are grouped into cells by k-means (``cell_count`` cells, a few
  thousand rows each; fitted on an evenly spaced sample, so the same rows always give
  the same cells), and each row keeps its cell and its distance ``d`` to the cell's
  centroid ``c``.
* For a unit query ``q`` and a row ``x`` of cell ``c``: ``q.x = q.c + q.(x - c)``, so
  ``q.c - d <= q.x <= q.c + d`` (Cauchy-Schwarz). A query scores the centroids (a few
  hundred dot products), scores exactly the rows of its best cells to get a floor (the
  k-th best score found so far: the true k-th best is at least that), and then scores
  exactly only the rows whose upper bound ``q.c + d`` reaches the floor.
* The answer is the exact top k; a query far from every cell (loose bounds) only makes
  the candidate set larger, and past ``FULL_SCAN_SHARE`` of the rows it scores every
  row (what the plain float32 scan does; no slower than that by more than the bounds).

Rows are whatever the caller indexes, in its order; ``mask`` restricts a search to a
subset (a product's step, the memory bank of normal wafers, earlier days).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INDEX_FORMAT = 1
#: Rows per k-means cell, roughly (the cell count grows with the index, up to MAX_CELLS).
ROWS_PER_CELL = 2_000
MAX_CELLS = 1_024
KMEANS_SAMPLE = 20_000
KMEANS_ROUNDS = 8
#: Past this share of the rows as candidates, scoring every row is cheaper.
FULL_SCAN_SHARE = 0.02
#: Cells whose rows are scored first, for the floor (at least until k rows qualify).
FLOOR_CELLS = 1
#: Rows per block when many rows are scored at once (bounded temporary memory).
BLOCK_ROWS = 65_536
#: Queries per matrix product in ``search_many`` (a 256 x BLOCK_ROWS block of scores: 64 MB).
QUERY_BATCH = 256
_EPS = 1e-5  # float32 rounding between the bounds and the exact score


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Float32 rows scaled to unit length (a zero row stays zero)."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"vectors must be a 2-d array, got shape {v.shape}")
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)


def cell_count(rows: int) -> int:
    return int(np.clip(rows // ROWS_PER_CELL, 1, MAX_CELLS))


def _nearest_centroid(v: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Each row's nearest centroid (Euclidean), in blocks."""
    half = 0.5 * np.einsum("ij,ij->i", centroids, centroids)
    out = np.empty(len(v), np.int32)
    for i in range(0, len(v), BLOCK_ROWS // 4):
        out[i:i + BLOCK_ROWS // 4] = np.argmax(v[i:i + BLOCK_ROWS // 4] @ centroids.T - half, axis=1)
    return out


def fit_cells(v: np.ndarray, cells: int) -> np.ndarray:
    """k-means centroids of ``v`` (deterministic: evenly spaced sample and start)."""
    sample = v if len(v) <= KMEANS_SAMPLE else v[np.linspace(0, len(v) - 1, KMEANS_SAMPLE).astype(np.int64)]
    centroids = sample[np.linspace(0, len(sample) - 1, cells).astype(np.int64)].copy()
    for _ in range(KMEANS_ROUNDS):
        assign = _nearest_centroid(sample, centroids)
        counts = np.bincount(assign, minlength=cells)
        order = np.argsort(assign, kind="stable")
        starts = np.searchsorted(assign[order], np.arange(cells))
        sums = np.zeros_like(centroids)
        present = np.flatnonzero(counts)
        sums[present] = np.add.reduceat(sample[order], starts[present], axis=0)
        filled = counts > 0   # an empty cell keeps its centroid
        centroids[filled] = sums[filled] / counts[filled, None]
    return centroids


@dataclass
class VectorIndex:
    """Exact cosine top-k over N vectors (see the module docstring)."""

    vectors_: np.ndarray   # float32 (N, D): unit rows, row-major
    centroids: np.ndarray  # float32 (C, D)
    cell: np.ndarray       # int32 (N,): each row's cell
    spread: np.ndarray     # float32 (N,): each row's distance to its cell's centroid
    cell_rows: list        # per cell, its rows (int64)
    cell_spread: np.ndarray  # float32 (C,): the largest spread in each cell (-inf: empty)

    @classmethod
    def build(cls, vectors: np.ndarray) -> VectorIndex:
        """The index of ``vectors`` (any float dtype; rows scaled to unit length)."""
        v = unit_rows(vectors)
        if not len(v):
            return cls(v, np.zeros((1, v.shape[1]), np.float32), np.zeros(0, np.int32),
                       np.zeros(0, np.float32), [np.zeros(0, np.int64)], np.full(1, -np.inf, np.float32))
        centroids = fit_cells(v, cell_count(len(v)))
        return cls.from_cells(v, centroids, _nearest_centroid(v, centroids))

    @classmethod
    def from_cells(cls, vectors: np.ndarray, centroids: np.ndarray, cell: np.ndarray) -> VectorIndex:
        """The index of ``vectors`` with cells already fitted (a stored version's
        ``cells()``): loading skips the k-means."""
        v = unit_rows(vectors)
        centroids = np.asarray(centroids, np.float32)
        cell = np.asarray(cell, np.int32)
        if cell.shape != (len(v),) or centroids.ndim != 2 or centroids.shape[1] != v.shape[1] or (
                len(cell) and (cell.min() < 0 or cell.max() >= len(centroids))):
            raise ValueError(f"inconsistent index cells: {len(v)} rows, cells {cell.shape}, "
                             f"centroids {centroids.shape}")
        spread = np.empty(len(v), np.float32)
        for i in range(0, len(v), BLOCK_ROWS):
            spread[i:i + BLOCK_ROWS] = np.linalg.norm(v[i:i + BLOCK_ROWS] - centroids[cell[i:i + BLOCK_ROWS]], axis=1)
        order = np.argsort(cell, kind="stable")
        bounds = np.searchsorted(cell[order], np.arange(len(centroids) + 1))
        cell_rows = [order[bounds[c]:bounds[c + 1]] for c in range(len(centroids))]
        cell_spread = np.full(len(centroids), -np.inf, np.float32)
        np.maximum.at(cell_spread, cell, spread)
        return cls(v, centroids, cell, spread, cell_rows, cell_spread)

    def cells(self) -> dict[str, np.ndarray]:
        """What ``from_cells`` needs besides the vectors."""
        return {"centroids": self.centroids, "cell": self.cell}

    def __len__(self) -> int:
        return len(self.vectors_)

    @property
    def dim(self) -> int:
        return self.vectors_.shape[1]

    def nbytes(self) -> int:
        return (sum(a.nbytes for a in (self.vectors_, self.centroids, self.cell, self.spread, self.cell_spread))
                + sum(r.nbytes for r in self.cell_rows))

    def vectors(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The indexed unit vectors, float32; all or ``rows``."""
        return self.vectors_ if rows is None else self.vectors_[rows]

    def _units(self, queries: np.ndarray) -> np.ndarray:
        q = unit_rows(np.atleast_2d(queries))
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have {q.shape[1]} dimensions, the index {self.dim}")
        return q

    def search(self, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows most similar to one query (among ``mask``), best first:
        (row numbers int64, cosine similarities float32). Fewer when fewer rows qualify;
        ties go to the lower row number."""
        z = self._units(query)[0]
        n = len(self)
        none = np.empty(0, np.int64), np.empty(0, np.float32)
        if n == 0 or k <= 0:
            return none
        if mask is not None:
            mask = np.asarray(mask, bool)
            if mask.shape != (n,):
                raise ValueError(f"mask must have {n} entries, got {mask.shape}")
            valid = int(np.count_nonzero(mask))
        else:
            valid = n
        k = min(k, valid)
        if k == 0:
            return none
        near = self.centroids @ z
        # the floor: exact scores of the rows of the best cells (FLOOR_CELLS, or more until k qualify)
        seen, scored = [], 0
        for i, c in enumerate(np.argsort(-near, kind="stable")):
            rows = self.cell_rows[c]
            if mask is not None:
                rows = rows[mask[rows]]
            if len(rows):
                seen.append(rows)
                scored += len(rows)
            if scored >= k and i + 1 >= FLOOR_CELLS:
                break
        first = np.concatenate(seen)
        first_s = self.vectors_[first] @ z
        floor = np.partition(first_s, len(first_s) - k)[len(first_s) - k] - _EPS
        # cells that may hold a row reaching the floor; then, within them, rows that may
        open_cells = np.flatnonzero(near + self.cell_spread >= floor)
        if sum(len(self.cell_rows[c]) for c in open_cells) <= FULL_SCAN_SHARE * n:
            rows = np.concatenate([self.cell_rows[c] for c in open_cells])
            keep = near[self.cell[rows]] + self.spread[rows] >= floor
            if mask is not None:
                keep &= mask[rows]
            cand = rows[keep]
            exact = self.vectors_[cand] @ z
        else:   # loose bounds: score every row (the plain scan)
            exact = self.vectors_ @ z
            if mask is not None:
                exact[~mask] = -np.inf
            cand = np.argpartition(-exact, k - 1)[:k] if k < n else np.arange(n)
            exact = exact[cand]
        best = np.lexsort((cand, -exact))[:k]
        return cand[best].astype(np.int64), exact[best].astype(np.float32)

    def search_many(self, queries: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``search`` for many queries at once by blocked matrix products (cheaper than
        one scan per query when there are many): (Q, k) row numbers (-1 where fewer
        rows qualify) and similarities (-inf there), best first."""
        z = self._units(queries)
        nq = len(z)
        k = max(int(k), 0)
        best_i = np.full((nq, k), -1, np.int64)
        best_s = np.full((nq, k), -np.inf, np.float32)
        if k == 0 or len(self) == 0 or nq == 0:
            return best_i, best_s
        if mask is not None:
            mask = np.asarray(mask, bool)
            if mask.shape != (len(self),):
                raise ValueError(f"mask must have {len(self)} entries, got {mask.shape}")
        for start in range(0, len(self), BLOCK_ROWS):
            rows = np.arange(start, min(start + BLOCK_ROWS, len(self)))
            if mask is not None:
                rows = rows[mask[rows]]
            if not len(rows):
                continue
            blk = self.vectors_[rows] if mask is not None else self.vectors_[rows[0]:rows[-1] + 1]
            for q0 in range(0, nq, QUERY_BATCH):
                sims = z[q0:q0 + QUERY_BATCH] @ blk.T
                if sims.shape[1] > k:   # only each query's k best of the block can matter
                    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
                    sims = np.take_along_axis(sims, part, axis=1)
                    idx = rows[part]
                else:
                    idx = np.broadcast_to(rows, sims.shape)
                cand_s = np.concatenate([best_s[q0:q0 + QUERY_BATCH], sims], axis=1)
                cand_i = np.concatenate([best_i[q0:q0 + QUERY_BATCH], idx], axis=1)
                # best first, ties to the lower row number (the -1 placeholders hold -inf)
                tie = np.where(cand_i < 0, np.iinfo(np.int64).max, cand_i)
                order = np.lexsort((tie, -cand_s), axis=1)[:, :k]
                best_s[q0:q0 + QUERY_BATCH] = np.take_along_axis(cand_s, order, axis=1)
                best_i[q0:q0 + QUERY_BATCH] = np.take_along_axis(cand_i, order, axis=1)
        best_i[~np.isfinite(best_s)] = -1
        return best_i, best_s
