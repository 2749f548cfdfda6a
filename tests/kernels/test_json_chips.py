"""The JSON chips kernels: exact output, integer formatting, and clear errors (never
out-of-bounds access) on inconsistent input."""

from __future__ import annotations

import random

import numpy as np
import pytest

from failmap_assets.kernels import json_chips as kj

I64 = np.iinfo(np.int64)
FIELDS = ("prefix", "x", "y", "order", "die_bin", "bin_off", "bin_data", "with_b", "b_index", "b_bin",
          "val_off", "val_data", "val_null", "b_tail", "suffix")


def u8(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8).copy()


def table(rows: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    off = np.zeros(len(rows) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(r) for r in rows]) if rows else []
    return off, u8(b"".join(rows))


def make_args(rng: np.random.Generator, *, n=None, with_b=True) -> dict:
    n = int(rng.integers(0, 300)) if n is None else n
    special = np.array([0, -1, 1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 99999, 100000, 10**9, -10**9,
                        10**18, -10**18, I64.max, I64.min, I64.min + 1], dtype=np.int64)

    def ints(k):
        v = rng.integers(-3000, 3000, k)
        mask = rng.random(k) < 0.2
        v[mask] = rng.choice(special, int(mask.sum()))
        return v.astype(np.int64)

    n_bins = int(rng.integers(1, 6))
    bin_off, bin_data = table([f'"b":"{i}","pass":{"true" if i % 2 else "false"}'.encode() for i in range(n_bins)])
    n_b = int(rng.integers(0, 200))
    val_off, val_data = table([bytes(rng.integers(32, 127, int(rng.integers(0, 12))).astype(np.uint8))
                               .replace(b'"', b"'").replace(b"\\", b"/") for _ in range(n_b)])
    order = rng.permutation(n)[: int(rng.integers(0, n + 1))] if n else np.zeros(0, np.int64)
    if n and rng.random() < 0.3:
        order = np.concatenate([order, order[:3]])  # a die written twice is allowed
    return dict(
        prefix=u8(b'{"head":1,"chips":['),
        x=ints(n), y=ints(n), order=order.astype(np.int64),
        die_bin=rng.integers(0, n_bins, n).astype(np.int64),
        bin_off=bin_off, bin_data=bin_data,
        with_b=with_b,
        b_index=(rng.integers(-1, n_b, n) if n_b else np.full(n, -1)).astype(np.int64),
        b_bin=ints(n_b),
        val_off=val_off, val_data=val_data,
        val_null=(rng.random(n_b) < 0.2).astype(np.uint8),
        b_tail=u8(b',"stime":"S","partid":null,"tester":"T"}'),
        suffix=u8(b"]}"),
    )


def call(args: dict) -> bytes:
    return kj.render_chips(*(args[f] for f in FIELDS))


def reference(a: dict) -> bytes:
    """The contract of render_chips, in plain Python (raises ValueError like the kernel)."""
    n = len(a["x"])
    if len(a["y"]) != n or len(a["die_bin"]) != n:
        raise ValueError("lengths")

    def check_table(off, data):
        off = off.tolist()  # Python ints: no wrap-around in the differences
        if not off or off[0] < 0 or off[-1] > len(data) or any(b < a for a, b in zip(off, off[1:])):
            raise ValueError("table")

    check_table(a["bin_off"], a["bin_data"])
    n_bins = len(a["bin_off"]) - 1
    n_b = len(a["b_bin"])
    if a["with_b"]:
        if len(a["b_index"]) != n or len(a["val_off"]) != n_b + 1 or len(a["val_null"]) != n_b:
            raise ValueError("lengths")
        check_table(a["val_off"], a["val_data"])
    chips = []
    for i in a["order"].tolist():
        if not 0 <= i < n:
            raise ValueError("order")
        g = int(a["die_bin"][i])
        if not 0 <= g < n_bins:
            raise ValueError("die_bin")
        text = b'{"x_abs":%d,"y_abs":%d,' % (a["x"][i], a["y"][i])
        text += a["bin_data"][a["bin_off"][g] : a["bin_off"][g + 1]].tobytes()
        if a["with_b"]:
            j = int(a["b_index"][i])
            if not -1 <= j < n_b:
                raise ValueError("b_index")
            if j >= 0:
                value = (b"null" if a["val_null"][j] else
                         b'"' + a["val_data"][a["val_off"][j] : a["val_off"][j + 1]].tobytes() + b'"')
                text += b',"bucket_b":{"transformed_values":' + value + b',"b":"%d"' % a["b_bin"][j]
                text += a["b_tail"].tobytes()
        chips.append(text + b"}")
    return a["prefix"].tobytes() + b",".join(chips) + a["suffix"].tobytes()


# ------------------------------------------------------------ exact output


@pytest.mark.parametrize("seed", range(40))
def test_random_inputs_match_reference(seed):
    rng = np.random.default_rng(seed)
    args = make_args(rng, with_b=seed % 4 != 0)
    assert call(args) == reference(args)


def test_integer_formatting_every_width():
    values = [0, -0, 1, -1, 7, 9, 10, 11, 99, 100, 101, 999, 1000, 9999, 10000, 10001, 65535, 99999, 100000,
              2**31 - 1, -(2**31), 2**32, 10**15, 10**17 - 1, 10**18, I64.max, I64.min, I64.min + 1, -(10**18)]
    values += [10**k + d for k in range(19) for d in (-1, 0, 1) if -(2**63) <= 10**k + d < 2**63]
    values += [-(10**k) + d for k in range(19) for d in (-1, 0, 1)]
    v = np.array(values, dtype=np.int64)
    n = len(v)
    bin_off, bin_data = table([b'"b":"1","pass":true'])
    args = dict(prefix=u8(b"["), x=v, y=v[::-1].copy(), order=np.arange(n, dtype=np.int64),
                die_bin=np.zeros(n, np.int64), bin_off=bin_off, bin_data=bin_data, with_b=True,
                b_index=np.arange(n, dtype=np.int64), b_bin=v.copy(), val_off=np.zeros(n + 1, np.int64),
                val_data=u8(b""), val_null=np.zeros(n, np.uint8), b_tail=u8(b"}"), suffix=u8(b"]"))
    out = call(args)
    assert out == reference(args)
    assert [int(t.split(b",", 1)[0]) for t in out.split(b'{"x_abs":')[1:]] == values


def test_empty_and_no_companion():
    rng = np.random.default_rng(1)
    args = make_args(rng, n=0)
    assert call(args) == b'{"head":1,"chips":[]}'
    args = make_args(rng, n=50, with_b=False)
    # Without B, the B arrays are not looked at at all.
    args.update(b_index=np.zeros(0, np.int64), val_off=np.zeros(0, np.int64), val_null=np.zeros(0, np.uint8))
    assert call(args) == reference(args)
    assert b"bucket_b" not in call(args)


def test_small_outputs_and_large_output():
    bin_off, bin_data = table([])
    args = dict(prefix=u8(b""), x=np.zeros(0, np.int64), y=np.zeros(0, np.int64), order=np.zeros(0, np.int64),
                die_bin=np.zeros(0, np.int64), bin_off=bin_off, bin_data=bin_data, with_b=False,
                b_index=np.zeros(0, np.int64), b_bin=np.zeros(0, np.int64), val_off=np.zeros(1, np.int64),
                val_data=u8(b""), val_null=np.zeros(0, np.uint8), b_tail=u8(b""), suffix=u8(b""))
    assert call(args) == b""
    args["suffix"] = u8(b"]")
    assert call(args) == b"]"
    # > 1 MB: the page pre-fault path.
    rng = np.random.default_rng(3)
    big = make_args(rng, n=40_000)
    big["order"] = np.arange(40_000, dtype=np.int64)
    out = call(big)
    assert len(out) > 1 << 20 and out == reference(big)


def test_kernels_release_the_gil():
    for kernel in (kj._size, kj._write, kj.rows_needing_escape, kj.replace_rows, kj.row_major_order):
        assert kernel.targetoptions.get("nogil") is True
    assert kj._write.targetoptions.get("boundscheck") is True


# ------------------------------------------------------------ inconsistent input


def mutate(rng: random.Random, a: dict) -> str:
    """Break one thing in ``a``; returns what."""
    arrays = [f for f in FIELDS if f not in ("with_b", "prefix", "suffix", "b_tail")]
    what = rng.choice(["shorten", "lengthen", "index", "offsets"])
    if what in ("shorten", "lengthen"):
        f = rng.choice(arrays)
        v = a[f]
        a[f] = v[: max(len(v) - rng.randint(1, 3), 0)] if what == "shorten" else np.concatenate(
            [v, v[:1] if len(v) else np.zeros(1, v.dtype)] * rng.randint(1, 3))
        return f"{what} {f}"
    if what == "index":
        f = rng.choice(["order", "die_bin", "b_index"])
        v = a[f].copy()
        if len(v):
            v[rng.randrange(len(v))] = rng.choice([-2, -1, len(v), 10**6, -(10**6), I64.max, I64.min])
        a[f] = v
        return f"index {f}"
    f = rng.choice(["bin_off", "val_off"])
    v = a[f].copy()
    if len(v):
        v[rng.randrange(len(v))] = rng.choice([-1, -(10**9), 10**9, I64.max, I64.min, 0])
    a[f] = v
    return f"offsets {f}"


def test_fuzz_inconsistent_inputs_raise_clear_errors():
    """Never a crash or a read/write out of bounds: either the reference's output
    (the mutation kept the input consistent) or a ValueError naming the problem."""
    rnd = random.Random(1234)
    raised = 0
    for k in range(600):
        rng = np.random.default_rng(k)
        a = make_args(rng, n=int(rng.integers(1, 60)), with_b=k % 5 != 0)
        what = mutate(rnd, a)
        if rnd.random() < 0.3:
            what += " + " + mutate(rnd, a)
        try:
            expected = reference(a)
        except ValueError:
            expected = None
        if expected is None:
            with pytest.raises(ValueError, match="^json_chips: "):
                call(a)
            raised += 1
        else:
            assert call(a) == expected, what
    assert raised > 300


def test_error_messages_name_the_problem():
    rng = np.random.default_rng(5)
    base = make_args(rng, n=20)
    base["order"] = np.arange(20, dtype=np.int64)
    cases = {
        "x and y differ": dict(y=base["y"][:-1]),
        "die_bin and x differ": dict(die_bin=base["die_bin"][:-1]),
        "b_index and x differ": dict(b_index=base["b_index"][:-1]),
        "val_off must hold": dict(val_off=base["val_off"][:-1]),
        "val_null and b_bin differ": dict(val_null=base["val_null"][:-1]),
        "order holds an index": dict(order=np.array([0, 20], np.int64)),
        "die_bin holds a row": dict(die_bin=np.full(20, 99, np.int64)),
        "b_index holds a row": dict(b_index=np.full(20, -2, np.int64)),
        "bin_off must be": dict(bin_off=base["bin_off"][::-1].copy()),
        "val_off must be": dict(val_off=np.full(len(base["val_off"]), 10**9, np.int64)),
    }
    for message, change in cases.items():
        with pytest.raises(ValueError, match=message):
            call({**base, **change})


def test_write_never_passes_the_end_of_its_buffer():
    """Even handed a buffer too small for the document, _write raises IndexError
    (bounds checks on every store and copy) and leaves the memory after it alone."""
    rng = np.random.default_rng(6)
    a = make_args(rng, n=100)
    total = kj._size(*(a[f] for f in FIELDS))
    for short in (0, 1, 5, total // 2, total - 1):
        guard = np.full(total + 64, 0xAB, dtype=np.uint8)
        with pytest.raises(IndexError):
            kj._write(guard[:short], *(a[f] for f in FIELDS))
        assert (guard[short:] == 0xAB).all()
    out = np.zeros(total + 10, dtype=np.uint8)
    assert kj._write(out, *(a[f] for f in FIELDS)) == total
    assert out[:total].tobytes() == reference(a) and not out[total:].any()


# ------------------------------------------------------------ escaping helpers


def test_rows_needing_escape_and_replace_rows():
    rows = [b"1,2,3", b'q"uote', b"", b'"first', b"back\\", b"\xc2\xb5,NA", b"ctl\x01", b"del\x7f", b"plain"]
    off, data = table(rows)
    bad = kj.rows_needing_escape(off, data)
    assert bad.tolist() == [1, 3, 4, 5, 6]
    assert kj.rows_needing_escape(*table([b"0.812,NA,1350"] * 50)).tolist() == []
    assert kj.rows_needing_escape(*table([])).tolist() == []
    new_off, new_data = kj.replace_rows(off, data, bad, *table([b"A", b"BB", b"", b"DDDD", b"E"]))
    got = [new_data[new_off[i] : new_off[i + 1]].tobytes() for i in range(len(rows))]
    assert got == [b"1,2,3", b"A", b"", b"BB", b"", b"DDDD", b"E", b"del\x7f", b"plain"]
    with pytest.raises(ValueError, match="strictly increasing"):
        kj.replace_rows(off, data, np.array([3, 1], np.int64), *table([b"a", b"b"]))
    with pytest.raises(ValueError, match="rep_off"):
        kj.replace_rows(off, data, np.array([1], np.int64), *table([b"a", b"b"]))
    with pytest.raises(ValueError, match="val_off"):
        kj.rows_needing_escape(np.array([0, 5, 3], np.int64), data)
    with pytest.raises(ValueError, match="val_off"):
        kj.rows_needing_escape(np.array([0, len(data) + 1], np.int64), data)


def test_put_rejects_non_byte_arrays():
    from numba import njit
    from numba.core.errors import TypingError

    @njit
    def copy_ints(dst, src):
        return kj._put(dst, 0, src, 0, src.shape[0])

    with pytest.raises(TypingError):
        copy_ints(np.zeros(4, np.int64), np.zeros(4, np.int64))


# ------------------------------------------------------------ row-major order


def reference_order(x, y):
    key = (np.asarray(y, np.int64) << 32) + (np.asarray(x, np.int64) + (1 << 31))
    order = np.argsort(key, kind="stable")
    if len(order) > 1:
        k = key[order]
        keep = np.ones(len(order), bool)
        keep[:-1] = k[1:] != k[:-1]
        order = order[keep]
    return order


@pytest.mark.parametrize("seed", range(10))
def test_row_major_order_matches_sorting(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 2000))
    span = int(rng.integers(1, 100))
    x = rng.integers(-span, span, n).astype(np.int64) + int(rng.integers(-10**6, 10**6))
    y = rng.integers(-span, span, n).astype(np.int64)
    dense, order = kj.row_major_order(x, y, 4 * n + 65536)
    assert dense
    assert order.tolist() == reference_order(x, y).tolist()


def test_row_major_order_sparse_or_beyond_int32_falls_back():
    x = np.array([-(2**31), 2**31 - 1], np.int64)
    assert kj.row_major_order(x, x.copy(), 10**6)[0] is False
    assert kj.row_major_order(np.array([2**31], np.int64), np.array([0], np.int64), 10**6)[0] is False
    assert kj.row_major_order(np.array([0, 5000], np.int64), np.array([0, 5000], np.int64), 1000)[0] is False
    with pytest.raises(ValueError, match="x and y differ"):
        kj.row_major_order(np.zeros(3, np.int64), np.zeros(2, np.int64), 100)


# ------------------------------------------------------------ extreme coordinates


I32 = np.iinfo(np.int32)


def extreme_ints(rng: np.random.Generator, k: int, *, int64: bool) -> np.ndarray:
    """Coordinates anywhere: at and near the int32 (optionally int64) limits, uniform
    over the whole range, and small."""
    lo, hi = (I64.min, I64.max) if int64 else (I32.min, I32.max)
    pools = [
        rng.integers(lo, hi, k, endpoint=True, dtype=np.int64),
        lo + rng.integers(0, 3, k), hi - rng.integers(0, 3, k),
        rng.integers(-3, 4, k),
        rng.choice(np.array([I32.min, I32.max, I32.min + 1, I32.max - 1, -(2**31 - 10**9), 10**9], np.int64), k),
    ]
    pick = rng.integers(0, len(pools), k)
    return np.choose(pick, pools).astype(np.int64)


@pytest.mark.parametrize("seed", range(30))
def test_fuzz_extreme_coordinates_match_reference(seed):
    rng = np.random.default_rng(1000 + seed)
    a = make_args(rng, n=int(rng.integers(1, 400)), with_b=seed % 3 != 0)
    n = len(a["x"])
    a["x"] = extreme_ints(rng, n, int64=seed % 2 == 0)
    a["y"] = extreme_ints(rng, n, int64=seed % 2 == 0)
    a["b_bin"] = extreme_ints(rng, len(a["b_bin"]), int64=True)
    out = call(a)
    assert out == reference(a)
    chips = [c for c in out.split(b'{"x_abs":')[1:]]
    got = [(int(c.split(b",", 1)[0]), int(c.split(b'"y_abs":', 1)[1].split(b",", 1)[0])) for c in chips]
    assert got == [(int(a["x"][i]), int(a["y"][i])) for i in a["order"].tolist()]


@pytest.mark.parametrize("seed", range(10))
def test_row_major_order_extreme_coordinates(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    x = extreme_ints(rng, n, int64=False)
    y = extreme_ints(rng, n, int64=False)
    for max_cells in (4 * n + 65536, 2**62, I64.max):
        dense, order = kj.row_major_order(x, y, max_cells)
        if dense:
            assert order.tolist() == reference_order(x, y).tolist()
    # The whole int32 square is 2**64 cells: never "dense", whatever max_cells says
    # (width * height would wrap around in int64 and index outside the cell array).
    corners = np.array([I32.min, I32.max], np.int64)
    for max_cells in (2**32, 2**62, I64.max):
        assert kj.row_major_order(corners, corners.copy(), max_cells)[0] is False
    assert kj.row_major_order(corners, corners.copy(), 0)[0] is False
    # A line across the whole int32 range is dense only when allowed that many cells.
    assert kj.row_major_order(corners, np.zeros(2, np.int64), 2**32 - 1)[0] is False
