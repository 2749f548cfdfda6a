"""Parse speed of fail-map A/B text (kernels warm, JIT cache on disk).

    .venv/bin/python benchmarks/failmap_text_parse.py
"""
import sys, time
import numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
t0 = time.perf_counter()
from failmap_assets.formats.failmap_text import parse_failmap_a, parse_failmap_b
from failmap_assets.kernels import failmap_rows as kr

def wafer(n_target, seed=7):
    rng = np.random.default_rng(seed)
    r = int(np.sqrt(n_target / np.pi)) + 1
    ys, xs = np.mgrid[-r:r + 1, -r:r + 1]
    inside = xs**2 + ys**2 <= r * r
    xs, ys = xs[inside][:n_target], ys[inside][:n_target]
    bins = np.where(rng.random(len(xs)) < 0.9, 1, rng.integers(2, 400, len(xs)))
    return xs, ys, bins

def a_file(n):
    xs, ys, bins = wafer(n)
    head = ("FAILMAP 1\nLOT N4A123.1\nWAFER 07\nPRODUCT SCT101A\nSTEP CP1\nTESTER T5503-02\n"
            "PARTID N4A123-07\nSTIME 20260111_143025\nFLAT D\nDIE_SIZE 5.12 6.34\nORIGIN 0 0\n"
            "BINDEF 1 P PASS\nBINDEF 285 F IDDQ_FAIL\n" f"DIES {len(xs)}\n")
    rows = "".join(f"{x} {y} {b}\n" for x, y, b in zip(xs.tolist(), ys.tolist(), bins.tolist()))
    return (head + rows + "END\n").encode()

def b_file(n):
    xs, ys, bins = wafer(n)
    rng = np.random.default_rng(3)
    v = rng.normal(0.8, 0.01, len(xs)); i = rng.normal(1.2, 0.3, len(xs)); f = rng.integers(1000, 1400, len(xs))
    head = "FAILMAP-B 1\nPARTID N4A123-07\nTESTER T5503-07\nSTIME 20260111_143030\nVALUES 3 VDD_MIN IDDQ_UA FMAX_MHZ\n" f"DIES {len(xs)}\n"
    rows = "".join(f"{x} {y} {b} {a:.3f} {'NA' if c < 0.5 else f'{c:.2f}'} {d}\n" for x, y, b, a, c, d in zip(xs.tolist(), ys.tolist(), bins.tolist(), v.tolist(), i.tolist(), f.tolist()))
    return (head + rows + "END\n").encode()

def bench(name, fn, data, reps=50):
    t = time.perf_counter(); fn(data); first = time.perf_counter() - t
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter(); fn(data); best = min(best, time.perf_counter() - t)
    print(f"{name}: {len(data)/1e6:.2f} MB, first call {first*1e3:.1f} ms, best {best*1e3:.2f} ms = {len(data)/best/1e6:.0f} MB/s")

a = a_file(120_000); b = b_file(120_000)
print(f"import {time.perf_counter()-t0:.2f} s")
bench("A 120k dies parse_failmap_a", parse_failmap_a, a)
bench("B 120k dies parse_failmap_b", parse_failmap_b, b)
buf = np.frombuffer(a, np.uint8); pos = a.index(b"DIES"); pos = a.index(b"\n", pos) + 1
bench("A kernel parse_rows_a only", lambda d: kr.parse_rows_a(buf, pos, 120_000 if False else int(a[a.index(b'DIES')+5:pos-1]), 15), a)
m = parse_failmap_a(a); bench("resolve_retests only", lambda d: kr.resolve_retests(m.x, m.y), a)
bb = np.frombuffer(b, np.uint8); bpos = b.index(b"\n", b.index(b"DIES")) + 1
bench("B kernel parse_rows_b only", lambda d: kr.parse_rows_b(bb, bpos, 120000, 3, 7), b)
