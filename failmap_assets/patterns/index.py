"""The similarity index over wafer signatures: exact top-k by cosine, small in memory.

Pure numpy over unit-length float32 embeddings (``signature.py``); where the index is
kept, versioned and switched is ``pipeline/pattern_index.py``.

How a query stays exact and fast without a float32 copy of every vector:

* The embeddings are turned by one orthonormal rotation (the principal axes of the
  indexed vectors, so the first axes hold most of the spread). A rotation keeps every
  dot product, so cosine similarity is unchanged.
* Each rotated vector is stored as int8 codes with one float32 scale per row (a fourth
  of float32), and its first ``HEAD_DIMS`` dequantised components are kept as float32
  (the *head*) with the length of the rest (the *tail norm*).
* A query scans only the head: ``head . q_head`` plus or minus ``tail_norm * |q_tail|``
  (Cauchy-Schwarz) bounds every row's full dot product from above and below. The k-th
  best lower bound is a floor: only rows whose upper bound reaches it can be in the
  top k, and only those few are scored on all their dimensions. The answer is the
  exact top k over the stored (int8) vectors; an uninformative query (flat bounds)
  only makes the candidate set larger, never the answer wrong.

Rows are whatever the caller indexes, in its order; ``mask`` restricts a search to a
subset (a product's step, the memory bank of normal wafers, earlier days).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INDEX_FORMAT = 1
#: Rotated dimensions scanned in float32 by every query; the rest bound the error.
HEAD_DIMS = 16
#: Rows used to find the principal axes: a fixed, evenly spaced sample, so the same rows
#: always give the same rotation.
ROTATION_SAMPLE = 20_000
#: Rows per block when many queries are scored at once (bounded temporary memory).
BLOCK_ROWS = 65_536
#: Queries per matrix product in ``search_many`` (a 256 x BLOCK_ROWS block of scores: 64 MB).
QUERY_BATCH = 256
_EPS = 1e-5  # float32 rounding between the bound and the exact score


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Float32 rows scaled to unit length (a zero row stays zero)."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"vectors must be a 2-d array, got shape {v.shape}")
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)


def fit_rotation(vectors: np.ndarray) -> np.ndarray:
    """An orthonormal D x D rotation whose first columns are the principal axes of
    ``vectors`` (uncentred: what dot products see), from an evenly spaced sample."""
    v = np.asarray(vectors, dtype=np.float64)
    d = v.shape[1]
    if len(v) > ROTATION_SAMPLE:
        v = v[np.linspace(0, len(v) - 1, ROTATION_SAMPLE).astype(np.int64)]
    if len(v) == 0:
        return np.eye(d, dtype=np.float32)
    # eigh of the D x D second-moment matrix: deterministic, and the eigenvectors form a
    # full orthonormal basis even when the rows span fewer dimensions
    values, vecs = np.linalg.eigh(v.T @ v)
    order = np.argsort(-values, kind="stable")
    rot = vecs[:, order]
    # a fixed sign per axis (eigenvectors are defined up to sign): largest entry positive
    signs = np.sign(rot[np.argmax(np.abs(rot), axis=0), np.arange(d)])
    signs[signs == 0] = 1
    return (rot * signs).astype(np.float32)


def quantise(rotated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes and a float32 scale per row: ``codes * scale`` is the stored vector."""
    peak = np.abs(rotated).max(axis=1) if rotated.size else np.zeros(len(rotated), np.float32)
    scales = (peak / 127.0).astype(np.float32)
    safe = np.where(scales > 0, scales, 1.0).astype(np.float32)
    codes = np.clip(np.rint(rotated / safe[:, None]), -127, 127).astype(np.int8)
    return codes, scales


@dataclass
class VectorIndex:
    """Exact cosine top-k over N stored vectors (see the module docstring)."""

    rotation: np.ndarray   # float32 (D, D), orthonormal
    codes: np.ndarray      # int8 (N, D): rotated vectors, quantised
    scales: np.ndarray     # float32 (N,)
    head: np.ndarray       # float32 (N, HEAD_DIMS): dequantised first rotated dimensions
    tail_norm: np.ndarray  # float32 (N,): length of the dequantised remaining dimensions

    @classmethod
    def build(cls, vectors: np.ndarray, rotation: np.ndarray | None = None) -> VectorIndex:
        v = unit_rows(vectors)
        rot = fit_rotation(v) if rotation is None else np.asarray(rotation, np.float32)
        if rot.shape != (v.shape[1], v.shape[1]):
            raise ValueError(f"rotation must be {v.shape[1]} x {v.shape[1]}, got {rot.shape}")
        codes, scales = quantise(v @ rot)
        return cls.from_codes(rot, codes, scales)

    @classmethod
    def from_codes(cls, rotation: np.ndarray, codes: np.ndarray, scales: np.ndarray) -> VectorIndex:
        """The index of stored codes (what ``arrays`` gives back); head and tail norms are
        derived, never stored."""
        codes = np.ascontiguousarray(codes, dtype=np.int8)
        scales = np.asarray(scales, dtype=np.float32)
        if codes.ndim != 2 or len(scales) != len(codes) or rotation.shape != (codes.shape[1], codes.shape[1]):
            raise ValueError(f"inconsistent index arrays: codes {codes.shape}, scales {scales.shape}, "
                             f"rotation {rotation.shape}")
        m = min(HEAD_DIMS, codes.shape[1])
        head = np.empty((len(codes), m), np.float32)
        tail = np.empty(len(codes), np.float32)
        for i in range(0, len(codes), BLOCK_ROWS):  # bounded temporaries at 1M rows
            blk = codes[i:i + BLOCK_ROWS].astype(np.float32) * scales[i:i + BLOCK_ROWS, None]
            head[i:i + BLOCK_ROWS] = blk[:, :m]
            tail[i:i + BLOCK_ROWS] = np.linalg.norm(blk[:, m:], axis=1)
        return cls(np.asarray(rotation, np.float32), codes, scales, np.ascontiguousarray(head), tail)

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def dim(self) -> int:
        return self.codes.shape[1]

    def arrays(self) -> dict[str, np.ndarray]:
        """What is stored of the index (head and tail norms are derived on load)."""
        return {"rotation": self.rotation, "codes": self.codes, "scales": self.scales}

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.rotation, self.codes, self.scales, self.head, self.tail_norm))

    def vectors(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The stored vectors (dequantised, turned back), float32; all or ``rows``."""
        codes, scales = (self.codes, self.scales) if rows is None else (self.codes[rows], self.scales[rows])
        return (codes.astype(np.float32) * scales[:, None]) @ self.rotation.T

    def _rotate(self, queries: np.ndarray) -> np.ndarray:
        q = unit_rows(np.atleast_2d(queries))
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have {q.shape[1]} dimensions, the index {self.dim}")
        return q @ self.rotation

    def search(self, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows most similar to one query (among ``mask``), best first:
        (row numbers int64, cosine similarities float32). Fewer when fewer rows qualify;
        ties go to the lower row number."""
        z = self._rotate(query)[0]
        n = len(self)
        if n == 0 or k <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        m = self.head.shape[1]
        partial = self.head @ z[:m]
        slack = self.tail_norm * np.float32(np.linalg.norm(z[m:]))
        lower = partial - slack
        upper = partial + slack
        if mask is not None:
            mask = np.asarray(mask, bool)
            if mask.shape != (n,):
                raise ValueError(f"mask must have {n} entries, got {mask.shape}")
            lower[~mask] = -np.inf
            upper[~mask] = -np.inf
            valid = int(mask.sum())
        else:
            valid = n
        k = min(k, valid)
        if k == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        floor = np.partition(lower, n - k)[n - k] - _EPS
        cand = np.flatnonzero(upper >= floor)
        exact = (self.codes[cand].astype(np.float32) @ z) * self.scales[cand]
        best = np.lexsort((cand, -exact))[:k]
        return cand[best].astype(np.int64), exact[best].astype(np.float32)

    def search_many(self, queries: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``search`` for many queries at once by blocked matrix products (cheaper than
        one scan per query when there are many): (Q, k) row numbers (-1 where fewer
        rows qualify) and similarities (-inf there), best first."""
        z = self._rotate(queries)
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
            blk = self.codes[rows].astype(np.float32) * self.scales[rows, None]
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
