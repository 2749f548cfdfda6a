"""The die-row kernels: grammar, error codes, exact floats, retests, and no out-of-bounds reads."""

from __future__ import annotations

import random
import re
import struct

import numpy as np
import pytest
from numba import njit

from failmap_assets.kernels import failmap_rows as kr


def u8(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


def rows_a(data: bytes, n: int, line: int = 1, pos: int = 0):
    x, y, b, done, err, eline, estart, end, end_line = kr.parse_rows_a(u8(data), pos, n, line)
    return dict(x=x.tolist(), y=y.tolist(), bin=b.tolist(), done=done, err=err, line=eline, start=estart, end=end, end_line=end_line)


def rows_b(data: bytes, n: int, k: int, line: int = 1):
    (x, y, b, values, flags, offsets, text, n_fb, done, err, eline, estart, end, end_line) = kr.parse_rows_b(u8(data), 0, n, k, line)
    texts = [text[offsets[i] : offsets[i + 1]].tobytes().decode() for i in range(done)] if err == kr.OK else []
    return dict(x=x.tolist(), y=y.tolist(), bin=b.tolist(), values=values, flags=flags, texts=texts, n_fb=n_fb,
                done=done, err=err, line=eline, start=estart, end=end, end_line=end_line)


def bits(v: float) -> bytes:
    return struct.pack("<d", v)


# ------------------------------------------------------------ A rows: grammar


def test_contract_rows():
    r = rows_a(b"-1 0 1\n0 0 1\n1 0 285\n0 1 1\nEND\n", 4, line=15)
    assert (r["x"], r["y"], r["bin"]) == ([-1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 285, 1])
    assert r["err"] == kr.OK and r["done"] == 4
    # the caller looks for END right where the rows stop
    assert r["end"] == len(b"-1 0 1\n0 0 1\n1 0 285\n0 1 1\n") and r["end_line"] == 19


def test_blanks_tabs_crlf_comments_and_blank_lines_anywhere():
    data = b"\n# comment\n  \t-1\t\t0   1  \r\n\r\n   # indented comment\n \t \r\n+2 -0 0285\t\r\n"
    r = rows_a(data, 2, line=10)
    assert r["err"] == kr.OK
    assert (r["x"], r["y"], r["bin"]) == ([-1, 2], [0, 0], [1, 285])
    assert r["end"] == len(data) and r["end_line"] == 17


def test_last_row_may_end_at_end_of_data():
    r = rows_a(b"1 2 3", 1)
    assert r["err"] == kr.OK and r["bin"] == [3] and r["end"] == 5


def test_zero_rows():
    r = rows_a(b"END\n", 0, line=7)
    assert r["err"] == kr.OK and r["done"] == 0 and r["end"] == 0 and r["end_line"] == 7


def test_int32_and_bin_limits():
    r = rows_a(b"-2147483648 2147483647 65535\n0 0 0\n", 2)
    assert r["err"] == kr.OK and r["x"][0] == -(2**31) and r["y"][0] == 2**31 - 1 and r["bin"] == [65535, 0]


@pytest.mark.parametrize(
    ("data", "n", "err", "line"),
    [
        (b"0 0 1\n0 0 65536\n", 2, kr.ERR_BIN_RANGE, 2),
        (b"0 0 -1\n", 1, kr.ERR_BIN_RANGE, 1),
        (b"0 0 99999999999999999999999999\n", 1, kr.ERR_BIN_RANGE, 1),
        (b"2147483648 0 1\n", 1, kr.ERR_COORD_RANGE, 1),
        (b"0 -2147483649 1\n", 1, kr.ERR_COORD_RANGE, 1),
        (b"0 0\n1 1 1\n", 2, kr.ERR_SYNTAX, 1),           # too few fields
        (b"0 0 1 7\n", 1, kr.ERR_SYNTAX, 1),               # too many fields in an A row
        (b"0 0 1x\n", 1, kr.ERR_SYNTAX, 1),
        (b"0 0 1.0\n", 1, kr.ERR_SYNTAX, 1),
        (b"0,0,1\n", 1, kr.ERR_SYNTAX, 1),
        (b"a b c\n", 1, kr.ERR_SYNTAX, 1),
        (b"0 0 1 # retest\n", 1, kr.ERR_SYNTAX, 1),        # no trailing comments
        (b"- 0 1\n", 1, kr.ERR_SYNTAX, 1),
        (b"0\r0 1\n", 1, kr.ERR_SYNTAX, 1),                # CR inside a line
        (b"\r0 0 1\n", 1, kr.ERR_SYNTAX, 1),
        (b"\n\n# c\n0 0 1\n0 0 x\n", 2, kr.ERR_SYNTAX, 5),
        (b"END\n", 1, kr.ERR_SYNTAX, 1),                   # END early: the caller calls it truncated
        (b"0 0 1\n", 2, kr.ERR_TRUNCATED, 2),              # fewer rows than n
        (b"0 0 1\n1 1", 2, kr.ERR_TRUNCATED, 2),           # data ends inside a row
        (b"0 0 1\n1 -", 2, kr.ERR_TRUNCATED, 2),
        (b"0 0 1\n# only a comment", 2, kr.ERR_TRUNCATED, 2),
        (b"", 2, kr.ERR_TRUNCATED, 1),
    ],
)
def test_a_row_errors_and_their_line(data, n, err, line):
    r = rows_a(data, n)
    assert (r["err"], r["line"]) == (err, line)
    if err != kr.ERR_TRUNCATED:
        # err_line_start points at the offending line so the caller can quote it
        assert data[r["start"] :].split(b"\n", 1)[0] == data.split(b"\n")[line - 1]


def test_row_count_larger_than_the_data_can_hold_allocates_nothing():
    r = rows_a(b"0 0 1\n", 10**15)
    # one row fits in 6 bytes: that is all the kernel may allocate
    assert r["err"] == kr.ERR_TRUNCATED and r["done"] == 1 and len(r["x"]) == 1


def test_negative_count_and_out_of_range_start_are_safe():
    assert rows_a(b"0 0 1\n", -5)["err"] == kr.ERR_TRUNCATED
    assert rows_a(b"0 0 1\n", 1, pos=10**9)["err"] == kr.ERR_TRUNCATED
    assert rows_a(b"0 0 1\n", 1, pos=-10)["err"] == kr.OK


# ------------------------------------------------------------ B rows


def test_contract_b_rows_and_verbatim_text():
    data = b"-1 0 1 0.812 1.25 1350\n0 0 1 0.807 NA 1342\n1 0 285 0.901 88.1 1101\nEND\n"
    r = rows_b(data, 3, 3)
    assert r["err"] == kr.OK
    assert r["texts"] == ["0.812,1.25,1350", "0.807,NA,1342", "0.901,88.1,1101"]
    assert np.isnan(r["values"][1, 1]) and r["flags"][1, 1] == kr.VALUE_NA
    assert r["values"][0].tolist() == [0.812, 1.25, 1350.0]
    assert r["n_fb"] == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1e-3", 1e-3), ("-0.5", -0.5), ("+1.5E+3", 1500.0), (".5", 0.5), ("5.", 5.0), ("0e999", 0.0),
     ("-0", -0.0), ("-0.0e-5", -0.0), ("000012.5000", 12.5), ("1350.000000000000000000", 1350.0),
     ("12e25", 12e25), ("9007199254740993", 9007199254740993.0)],
)
def test_value_grammar(text, expected):
    r = rows_b(f"0 0 1 {text}\n".encode(), 1, 1)
    assert r["err"] == kr.OK and r["texts"] == [text]
    if r["flags"][0, 0] == kr.VALUE_NUMBER:
        assert bits(r["values"][0, 0]) == bits(expected)
    else:
        assert r["flags"][0, 0] == kr.VALUE_FALLBACK
        assert bits(float(text)) == bits(expected)


@pytest.mark.parametrize(
    ("row", "err"),
    [
        (b"0 0 1 1.0 2.0\n", kr.ERR_VALUE_COUNT),       # k = 3, two values
        (b"0 0 1 1.0 2.0 3.0 4.0\n", kr.ERR_VALUE_COUNT),
        (b"0 0 1\n", kr.ERR_VALUE_COUNT),
        (b"0 0\n", kr.ERR_SYNTAX),
        (b"0 0 1 1.0 abc 3\n", kr.ERR_SYNTAX),
        (b"0 0 1 1.0 nan 3\n", kr.ERR_SYNTAX),          # only NA means missing
        (b"0 0 1 1.0 inf 3\n", kr.ERR_SYNTAX),
        (b"0 0 1 1.0 NAN 3\n", kr.ERR_SYNTAX),
        (b"0 0 1 1.0 1e 3\n", kr.ERR_SYNTAX),
        (b"0 0 1 1.0 1.2.3 3\n", kr.ERR_SYNTAX),
        (b"0 0 1 1.0 . 3\n", kr.ERR_SYNTAX),
        (b"0 0 1 1,5 2 3\n", kr.ERR_SYNTAX),
        (b"0 0 1 1.0 2.0 1e", kr.ERR_TRUNCATED),
        (b"0 0 1 1.0 2.0 N", kr.ERR_TRUNCATED),
        (b"0 0 1 1.0 2.0", kr.ERR_TRUNCATED),
    ],
)
def test_b_row_errors(row, err):
    r = rows_b(b"# header done\n" + row, 1, 3, line=6)
    assert (r["err"], r["line"]) == (err, 7)


def test_b_row_allocation_bound_counts_the_values():
    # a row of k=50 values needs >= 105 bytes: 150 bytes hold one at most.
    r = rows_b(b"0" * 150, 2, 50)
    assert r["err"] == kr.ERR_TRUNCATED and r["values"].shape == (1, 50)


def _decimal(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.3:
        return f"{rng.uniform(-2000, 2000):.{rng.randint(0, 6)}f}"
    if kind < 0.5:
        return repr(rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-30, 30))
    if kind < 0.6:
        return f"{rng.uniform(-10, 10):.{rng.randint(0, 17)}e}"
    if kind < 0.7:
        return str(rng.randint(-(10**18), 10**18))
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 30)))
    point = rng.randint(0, len(digits))
    mant = digits[:point] + "." + digits[point:] if rng.random() < 0.8 else digits
    if mant == ".":
        mant = "0."
    exp = f"{rng.choice('eE')}{rng.choice(['', '+', '-'])}{rng.randint(0, 40)}" if rng.random() < 0.4 else ""
    return rng.choice(["", "-", "+"]) + mant + exp


def test_floats_are_exact_against_python_float():
    rng = random.Random(1234)
    texts = [_decimal(rng) for _ in range(20_000)]
    data = "".join(f"0 0 1 {t}\n" for t in texts).encode()
    r = rows_b(data, len(texts), 1)
    assert r["err"] == kr.OK
    fast = 0
    for i, t in enumerate(texts):
        assert r["texts"][i] == t
        flag = r["flags"][i, 0]
        if flag == kr.VALUE_NUMBER:
            fast += 1
            assert bits(r["values"][i, 0]) == bits(float(t)), t
        else:
            # left to float() by the caller: long mantissas, extreme exponents
            assert flag == kr.VALUE_FALLBACK, t
    assert r["n_fb"] == len(texts) - fast
    assert fast > len(texts) // 2


def test_typical_tester_values_never_need_the_fallback():
    rng = random.Random(5)
    texts = [f"{rng.uniform(-1e4, 1e4):.{rng.randint(0, 9)}f}" for _ in range(5000)] + ["1e-3", "-0.5", "1350", "0.807"]
    r = rows_b("".join(f"1 2 3 {t}\n" for t in texts).encode(), len(texts), 1)
    assert r["n_fb"] == 0
    assert all(bits(v) == bits(float(t)) for v, t in zip(r["values"][:, 0].tolist(), texts))


# ------------------------------------------------------------ reference parser on random valid files


def reference_rows(data: bytes, n: int, k: int):
    """Plain-Python reading of the same grammar: (x, y, bin, values, na, texts, end)."""
    out_x, out_y, out_b, out_v, out_na, out_t = [], [], [], [], [], []
    pos = 0
    while len(out_x) < n:
        nl = data.find(b"\n", pos)
        end = len(data) if nl < 0 else nl
        line = data[pos:end].strip(b" \t").rstrip(b" \t\r")
        pos = len(data) if nl < 0 else nl + 1
        if not line or line.startswith(b"#"):
            continue
        fields = re.split(r"[ \t]+", line.decode())
        assert len(fields) == 3 + k
        out_x.append(int(fields[0]))
        out_y.append(int(fields[1]))
        out_b.append(int(fields[2]))
        vals = fields[3:]
        out_na.append([v == "NA" for v in vals])
        out_v.append([float("nan") if v == "NA" else float(v) for v in vals])
        out_t.append(",".join(vals))
    return out_x, out_y, out_b, out_v, out_na, out_t, pos


def random_rows(rng: random.Random, n: int, k: int) -> bytes:
    parts = []
    eol = rng.choice(["\n", "\r\n"])
    for _ in range(n):
        while rng.random() < 0.1:
            parts.append(rng.choice(["", "# note", "  ", "\t# x 1 2", " \r"]) + eol)
        sep = lambda: rng.choice([" ", "  ", "\t", " \t "])  # noqa: E731
        fields = [str(rng.randint(-300, 300)), str(rng.randint(-300, 300)), rng.choice(["1", "0285", "65535", "0", str(rng.randint(0, 9999))])]
        fields += ["NA" if rng.random() < 0.1 else _decimal(rng) for _ in range(k)]
        lead = rng.choice(["", "", " ", "\t"])
        trail = rng.choice(["", "", " ", "\t "])
        parts.append(lead + sep().join(fields) + trail + eol)
    return "".join(parts).encode()


@pytest.mark.parametrize("k", [0, 1, 3, 7])
def test_kernel_matches_reference_parser_on_random_valid_sections(k):
    rng = random.Random(100 + k)
    for _ in range(40):
        n = rng.randint(0, 300)
        data = random_rows(rng, n, k) + b"END\n"
        ref_x, ref_y, ref_b, ref_v, ref_na, ref_t, ref_end = reference_rows(data, n, k)
        if k == 0:
            r = rows_a(data, n)
        else:
            r = rows_b(data, n, k)
        assert r["err"] == kr.OK
        assert (r["x"], r["y"], r["bin"]) == (ref_x, ref_y, ref_b)
        assert r["end"] == ref_end
        assert data[r["end"] :].startswith(b"END")
        if k:
            assert r["texts"] == ref_t
            flags = r["flags"]
            assert (flags == kr.VALUE_NA).tolist() == ref_na
            for i in range(n):
                for c in range(k):
                    if flags[i, c] == kr.VALUE_NUMBER:
                        assert bits(r["values"][i, c]) == bits(ref_v[i][c])


# ------------------------------------------------------------ retests


def reference_retests(x, y):
    last, count = {}, {}
    for i, key in enumerate(zip(x, y)):
        if key in last:
            count[i] = count[last[key]] + 1
        else:
            count[i] = 0
        last[key] = i
    keep = sorted(last.values())
    return keep, [min(count[i], 32767) for i in keep]


@pytest.mark.parametrize("spread", [5, 400, 2**31 - 1])   # dense grid, typical wafer, sparse (sort path)
def test_retest_resolution_matches_reference(spread):
    rng = np.random.default_rng(spread)
    for n in (0, 1, 2, 50, 5000):
        x = rng.integers(-spread, spread, n, endpoint=True).astype(np.int32)
        y = rng.integers(-spread, spread, n, endpoint=True).astype(np.int32)
        if n > 10:   # force some retests even on a sparse spread
            x[n // 2 :: 7] = x[0]
            y[n // 2 :: 7] = y[0]
        keep, count = kr.resolve_retests(x, y)
        ref_keep, ref_count = reference_retests(x.tolist(), y.tolist())
        assert keep.tolist() == ref_keep and count.tolist() == ref_count
        assert count.dtype == np.int16


def test_later_row_wins_and_counts_replacements():
    x = np.array([0, 1, 0, 0], np.int32)
    y = np.array([0, 0, 0, 0], np.int32)
    keep, count = kr.resolve_retests(x, y)
    assert keep.tolist() == [1, 3] and count.tolist() == [0, 2]


def test_retest_count_saturates_at_int16():
    x = np.zeros(40_000, np.int32)
    keep, count = kr.resolve_retests(x, x)
    assert keep.tolist() == [39_999] and count.tolist() == [32767]


def test_extreme_coordinates_do_not_collide():
    x = np.array([-(2**31), 2**31 - 1, -(2**31), 0], np.int32)
    y = np.array([2**31 - 1, -(2**31), 2**31 - 1, 0], np.int32)
    keep, count = kr.resolve_retests(x, y)
    assert keep.tolist() == [1, 2, 3] and count.tolist() == [0, 1, 0]


# ------------------------------------------------------------ no out-of-bounds reads, whatever the bytes


@pytest.fixture(scope="module")
def checked_kernels():
    # The same Python source compiled with bounds checking: an out-of-bounds index
    # raises IndexError instead of silently reading memory.
    return (
        njit(boundscheck=True)(kr._parse_rows.py_func),
        njit(boundscheck=True)(kr.resolve_retests.py_func),
    )


@pytest.mark.timeout(300)
@pytest.mark.slow
def test_fuzzed_bytes_never_read_out_of_bounds(checked_kernels):
    parse, retests = checked_kernels
    rng = random.Random(99)
    alphabet = b"0123456789 \t\r\n-+.eENA#x,"
    seeds = [b"-1 0 1\n0 0 1\r\n1 0 285 0.5 NA 1e3\n", random_rows(rng, 20, 2)]
    for it in range(3000):
        if it % 3 == 0:
            data = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        else:
            data = bytearray(rng.choice(seeds))
            for _ in range(rng.randint(1, 5)):
                op = rng.random()
                at = rng.randrange(len(data) + 1)
                if op < 0.4 and data:
                    data[min(at, len(data) - 1)] = rng.choice(alphabet)
                elif op < 0.7:
                    data[at:at] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
                else:
                    data = data[:at]
            data = bytes(data)
        n = rng.choice([0, 1, 2, 3, 20, 10**12])
        k = rng.choice([0, 1, 2, 3])
        res = parse(u8(data), rng.randint(-2, len(data) + 2), n, k, k > 0, 1)
        done, err, end = res[8], res[9], res[12]
        assert 0 <= done <= max(n, 0) and err in range(6) and 0 <= end <= len(data)
        if err == kr.OK:
            assert done == n
            retests(res[0], res[1])
