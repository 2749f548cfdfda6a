"""Pattern signatures and the similarity index at scale, against named peers in the same run.

    .venv/bin/python benchmarks/patterns.py                  # 1,000 wafers, 1,000,000-wafer index
    .venv/bin/python benchmarks/patterns.py --wafers 20 --index 5000 --queries 5   # smoke size

(1) Signatures of WAFERS synthetic pattern wafers (failmap_synth.patterns, every WM-811K
    class, 20..120 dies across) on one core (BLAS / Numba threads pinned to 1), kernels
    warm; peer: parsing the same maps written as fail-map A text (parse_failmap_a), the
    cost of merely reading them.
(2) An index of INDEX wafers: the 1,000-wafer signatures, each copied as a same-class
    blend of two real signatures plus noise (sigma 0.01 per dimension), so the vectors
    lie where signatures lie. Build time, stored bytes (float16 embeddings + cells +
    rows table, as a version is written), index memory and process RSS; top-10 latency
    (median / p95 over QUERIES queries: perturbed indexed wafers), unfiltered and
    filtered to one step of four; peers: the plain float32 scan (vectors @ q, then
    argpartition) and the exact full sort (argsort), both over the same vectors;
    every answer checked equal to the plain scan's.
(3) The same size of vectors around 400 tight centres, where the cell bounds prune.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"   # one core: the goal is per core

import argparse  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import date, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from failmap_assets.formats.failmap_text import parse_failmap_a  # noqa: E402
from failmap_assets.patterns.index import VectorIndex  # noqa: E402
from failmap_assets.patterns.signature import wafer_signatures  # noqa: E402
from failmap_assets.pipeline.pattern_index import ROW_COLUMNS, version_files  # noqa: E402
from failmap_synth.patterns import pattern_set  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def a_text(grid: np.ndarray, i: int) -> bytes:
    rows, cols = np.nonzero(grid >= 0)
    bins = np.where(grid[rows, cols] == 1, 285, 1)
    head = (f"FAILMAP 1\nLOT B{i:05d}.1\nWAFER 01\nPRODUCT BENCH\nSTEP CP1\nSTIME 20260111_143025\nFLAT D\n"
            f"BINDEF 1 P PASS\nBINDEF 285 F FAIL\nDIES {len(rows)}\n")
    return (head + "".join(f"{c} {r} {b}\n" for r, c, b in zip(rows.tolist(), cols.tolist(), bins.tolist()))
            + "END\n").encode()


def timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds of one call (on a shared machine the CPU time is what one core spent)."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def signatures(n: int):
    per_class = max(1, -(-n // 9))
    wafers = pattern_set(per_class, seed=11)[:n]
    grids = [w.grid for w in wafers]
    aspects = [w.die_aspect for w in wafers]
    wafer_signatures(grids[:9], aspects[:9])          # kernels compiled / loaded from the cache
    out: list = []
    (t_sig, c_sig) = timed(lambda: out.append(wafer_signatures(grids, aspects)))
    sigs = out[0]
    texts = [a_text(g, i) for i, g in enumerate(grids)]
    (t_parse, c_parse) = timed(lambda: [parse_failmap_a(t) for t in texts])
    dies = sum(int((g >= 0).sum()) for g in grids)
    sizes = [max(g.shape) for g in grids]
    print(f"(1) signatures of {n} wafers ({dies} dies, {min(sizes)}..{max(sizes)} dies across), one core")
    print(f"    ours   wafer_signatures              {t_sig:7.3f} s wall, {c_sig:7.3f} s CPU "
          f"= {1e3 * c_sig / n:6.2f} ms CPU/wafer   goal < 5 s for 1,000")
    print(f"    peer   parse_failmap_a, the same maps {t_parse:7.3f} s wall, {c_parse:7.3f} s CPU "
          f"= {1e3 * c_parse / n:6.2f} ms CPU/wafer")
    print(f"    ratio  signatures / parse = {c_sig / c_parse:.1f}x (CPU)")
    return sigs


def synthetic_vectors(sigs, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    emb = np.stack([s.embedding for s in sigs]).astype(np.float32)
    labels = np.array([s.label for s in sigs])
    i = rng.integers(0, len(emb), n)
    partners = {lab: np.flatnonzero(labels == lab) for lab in set(labels)}
    j = np.empty(n, np.int64)
    for lab, members in partners.items():
        where = labels[i] == lab
        j[where] = members[rng.integers(0, len(members), int(where.sum()))]
    a = rng.uniform(0, 1, (n, 1)).astype(np.float32)
    v = a * emb[i] + (1 - a) * emb[j] + 0.01 * rng.standard_normal((n, emb.shape[1])).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float16), labels[i]


def rows_table(labels: np.ndarray) -> pl.DataFrame:
    n = len(labels)
    idx = np.arange(n)
    day0 = date(2026, 1, 1)
    return pl.DataFrame({
        "day": [day0 + timedelta(days=int(d)) for d in idx // 3000],
        "source": ["failmap"] * n, "wafer_token": [f"W{k:07d}" for k in idx],
        "object_key": [f"2026/W{k:07d}.txt" for k in idx], "lot": [f"L{k // 25:06d}" for k in idx],
        "wafer": [f"{k % 25:02d}" for k in idx], "product": ["P1"] * n, "step": [f"S{k % 4}" for k in idx],
        "file_time": [datetime(2026, 1, 1)] * n, "label": labels.tolist(), "confidence": [0.9] * n,
        "normal": (labels == "none").tolist(),
    }, schema=ROW_COLUMNS)


def percentiles(times: list[float]) -> tuple[float, float]:
    a = np.asarray(times) * 1e3
    return float(np.median(a)), float(np.percentile(a, 95))


def index_bench(sigs, n: int, queries: int) -> None:
    rng = np.random.default_rng(5)
    emb16, labels = synthetic_vectors(sigs, n, rng)
    rows = rows_table(labels)
    before = rss_mb()
    t = time.perf_counter()
    index = VectorIndex.build(emb16)
    t_build = time.perf_counter() - t
    after = rss_mb()
    files = version_files(rows, emb16, index)
    stored = sum(len(b) for b in files.values())
    t = time.perf_counter()
    VectorIndex.from_cells(emb16, **index.cells())
    t_load = time.perf_counter() - t
    print(f"(2) index of {n:,} wafers ({index.dim} dims, {len(index.centroids)} cells)")
    print(f"    build {t_build:.2f} s (load of a stored version {t_load:.2f} s); stored "
          f"{stored / 1e6:.1f} MB ({', '.join(f'{k} {len(v) / 1e6:.1f}' for k, v in files.items())}); "
          f"index memory {index.nbytes() / 1e6:.1f} MB; process RSS {after:.0f} MB "
          f"(+{after - before:.0f} MB for the build; goal index < 500 MB)")
    vectors = index.vectors()   # the same float32 unit vectors the peers scan
    picks = rng.integers(0, n, queries)
    qs = vectors[picks] + 0.01 * rng.standard_normal((queries, index.dim)).astype(np.float32)
    step_mask = (rows["step"] == "S2").to_numpy()
    ours, ours_f, plain, full = [], [], [], []
    agree = 0
    for q in qs:
        t = time.perf_counter()
        r, s = index.search(q, 10)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        index.search(q, 10, step_mask)
        ours_f.append(time.perf_counter() - t)
        qn = q / np.linalg.norm(q)
        t = time.perf_counter()
        sims = vectors @ qn
        top = np.argpartition(-sims, 10)[:10]
        top = top[np.argsort(-sims[top], kind="stable")]
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        np.argsort(-(vectors @ qn), kind="stable")[:10]
        full.append(time.perf_counter() - t)
        agree += bool(np.allclose(np.sort(s), np.sort(sims[top]), atol=1e-5))
    print(f"    top-10 latency over {queries} queries (median / p95 ms):")
    for name, times in (("ours   VectorIndex.search", ours), ("ours   same, one step of four", ours_f),
                        ("peer   float32 scan + argpartition", plain), ("peer   float32 scan + full argsort", full)):
        med, p95 = percentiles(times)
        print(f"    {name:38s} {med:8.2f} / {p95:8.2f}")
    m_ours, m_plain, m_full = percentiles(ours)[0], percentiles(plain)[0], percentiles(full)[0]
    print(f"    ratio  plain scan / ours = {m_plain / m_ours:.1f}x, full sort / ours = {m_full / m_ours:.1f}x "
          f"(median); goal < 100 ms")
    print(f"    exact: {agree}/{queries} answers equal the plain scan's scores")
    print(f"    peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def clustered_bench(n: int, queries: int) -> None:
    """Where the cell bounds prune: n vectors around 400 tight centres (noise 0.1 per dimension)."""
    rng = np.random.default_rng(6)
    centres = rng.standard_normal((400, 48)).astype(np.float32)
    index = VectorIndex.build(centres[rng.integers(0, 400, n)] + 0.1 * rng.standard_normal((n, 48)).astype(np.float32))
    vectors = index.vectors()
    ours, plain = [], []
    for q in vectors[rng.integers(0, n, queries)]:
        t = time.perf_counter()
        index.search(q, 10)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        np.argpartition(-(vectors @ q), 10)[:10]
        plain.append(time.perf_counter() - t)
    (m_o, p_o), (m_p, p_p) = percentiles(ours), percentiles(plain)
    print(f"(3) {n:,} clustered vectors (400 tight centres): ours {m_o:.2f} / {p_o:.2f} ms, "
          f"peer float32 scan {m_p:.2f} / {p_p:.2f} ms (median / p95); plain scan / ours = {m_p / m_o:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wafers", type=int, default=1000)
    ap.add_argument("--index", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    sigs = signatures(args.wafers)
    index_bench(sigs, args.index, args.queries)
    clustered_bench(args.index, args.queries)


if __name__ == "__main__":
    main()
