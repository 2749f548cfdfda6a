"""Fail-map text under damage: a WaferMap / CompanionMap or a Rejected, never anything else.

Also a plain-Python reference reader for whole files, compared with the parser on
random valid files. Every generator here uses a fixed seed: failures reproduce.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from failmap_assets.wafer.model import CompanionMap, WaferMap
from failmap_assets.formats.failmap_text import REJECT_REASONS, parse_failmap_a, parse_failmap_b
from failmap_assets.wafer.rejects import Rejected
from tests.formats.test_failmap_text import A_EXAMPLE, B_EXAMPLE

pytestmark = pytest.mark.timeout(300)


def check_wafer(w: WaferMap) -> None:
    n = w.die_count
    assert len(w.y) == len(w.bin) == len(w.retest_count) == n <= w.rows_read
    assert w.x.dtype == w.y.dtype == w.bin.dtype == np.int32 and w.retest_count.dtype == np.int16
    assert ((w.bin >= 0) & (w.bin <= 65535)).all() and (w.retest_count >= 0).all()
    assert len(set(zip(w.x.tolist(), w.y.tolist()))) == n          # retests resolved
    assert int(w.retest_count.sum()) == w.rows_read - n


def check_companion(c: CompanionMap) -> None:
    n, k = c.die_count, len(c.value_names)
    assert c.values.shape == c.values_na.shape == (n, k) and len(c.values_text) == n
    assert np.isnan(c.values[c.values_na]).all()
    texts = c.values_text.to_pylist()
    for i in range(n):
        parts = texts[i].split(",") if k else [""]
        assert len(parts) == max(k, 1)
        assert [p == "NA" for p in parts if k] == c.values_na[i].tolist()


def outcome(parse, data: bytes) -> str:
    """The reason, or "ok" after checking the result's invariants. Any other exception fails the test."""
    try:
        result = parse(data)
    except Rejected as exc:
        assert exc.reason in REJECT_REASONS
        assert exc.line is None or 1 <= exc.line <= data.count(b"\n") + 1
        return exc.reason
    if isinstance(result, WaferMap):
        check_wafer(result)
    else:
        check_companion(result)
    return "ok"


@pytest.mark.parametrize(("parse", "sample"), [(parse_failmap_a, A_EXAMPLE), (parse_failmap_b, B_EXAMPLE)], ids=["a", "b"])
def test_truncation_at_every_position(parse, sample):
    assert outcome(parse, sample) == "ok"
    assert outcome(parse, sample[:-1]) == "ok"           # END without its final newline
    magic_len = sample.index(b" ")
    for cut in range(len(sample) - 1):
        reason = outcome(parse, sample[:cut])
        if cut <= magic_len:
            # "", "F", ..., "FAILMAP" is not yet (or for B not) the right first word
            assert reason in ("unknown_format", "truncated"), (cut, reason)
        else:
            assert reason == "truncated", (cut, sample[:cut][-20:], reason)


@pytest.mark.parametrize(("parse", "sample"), [(parse_failmap_a, A_EXAMPLE), (parse_failmap_b, B_EXAMPLE)], ids=["a", "b"])
def test_random_byte_flips(parse, sample):
    rng = random.Random(20260111)
    seen = set()
    for _ in range(3000):
        data = bytearray(sample)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        seen.add(outcome(parse, bytes(data)))
    assert "ok" in seen and len(seen) >= 5     # the damage reaches many different checks


HUGE = ["9" * 30, "-" + "9" * 30, "1" + "0" * 5000, "1e99999999999999", "0." + "0" * 3000 + "1", "65536", "4294967296"]


@pytest.mark.parametrize(("parse", "sample"), [(parse_failmap_a, A_EXAMPLE), (parse_failmap_b, B_EXAMPLE)], ids=["a", "b"])
def test_inserted_huge_numbers_and_long_lines(parse, sample):
    rng = random.Random(7)
    numbers = [m.span() for m in re.finditer(rb"[0-9][0-9.]*", sample)]
    for _ in range(600):
        data = sample
        start, end = rng.choice(numbers)
        data = data[:start] + rng.choice(HUGE).encode() + data[end:]
        if rng.random() < 0.3:
            at = rng.randrange(len(data))
            data = data[:at] + rng.choice([b" " * 100_000, b"# " + b"x" * 200_000 + b"\n", b"\t" * 1000, b"\n" * 500]) + data[at:]
        outcome(parse, data)


def test_huge_values_stay_floats():
    data = B_EXAMPLE.replace(b"88.1", b"1" + b"0" * 400).replace(b"0.901", b"1e-400")
    c = parse_failmap_b(data)
    assert c.values[2].tolist()[:2] == [0.0, float("inf")]
    assert c.values_text.to_pylist()[2].startswith("1e-400,1000")


def test_random_ascii_garbage_after_a_valid_header():
    rng = random.Random(3)
    header = A_EXAMPLE[: A_EXAMPLE.index(b"DIES")]
    alphabet = b"0123456789 -+\t\r\n#ENDA.xe"
    for _ in range(2000):
        body = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        outcome(parse_failmap_a, header + b"DIES " + str(rng.randint(0, 5)).encode() + b"\n" + body)
        outcome(parse_failmap_b, B_EXAMPLE[: B_EXAMPLE.index(b"DIES")] + b"DIES 2\n" + body)


# ------------------------------------------------------------ reference reader on random valid files


def reference_a(text: str) -> dict:
    """Straightforward reading of the contract, for comparison only (no speed, few checks)."""
    lines = [ln.strip(" \t\r") for ln in text.lstrip("\ufeff").split("\n")]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    assert lines[0].split() == ["FAILMAP", "1"]
    header, bindef, i = {}, {}, 1
    while not lines[i].startswith("DIES"):
        key, _, value = re.split(r"([ \t]+)", lines[i], maxsplit=1)
        if key == "BINDEF":
            b, pf, *name = re.split(r"[ \t]+", value, maxsplit=2)
            bindef[int(b)] = (pf == "P", name[0] if name else None)
        else:
            header[key] = value
        i += 1
    n = int(lines[i].split()[1])
    rows = [tuple(int(v) for v in re.split(r"[ \t]+", ln)) for ln in lines[i + 1 : i + 1 + n]]
    assert lines[i + 1 + n] == "END"
    last, count = {}, {}
    for r, (x, y, _b) in enumerate(rows):
        count[r] = count[last[(x, y)]] + 1 if (x, y) in last else 0
        last[(x, y)] = r
    keep = sorted(last.values())
    return dict(
        header=header, bindef=bindef, rows_read=n,
        x=[rows[r][0] for r in keep], y=[rows[r][1] for r in keep], bin=[rows[r][2] for r in keep],
        retest=[count[r] for r in keep],
    )


def random_a_file(rng: random.Random) -> bytes:
    eol = rng.choice(["\n", "\r\n"])
    blank = lambda: rng.choice([" ", "  ", "\t"])  # noqa: E731
    lines = ["FAILMAP 1"]
    keys = [f"LOT{blank()}N{rng.randint(0, 999)}.1", f"WAFER{blank()}{rng.randint(1, 25):02d}", "STIME 20260111_143025",
            f"FLAT {rng.choice('UDLR')}", "PRODUCT SCT101A", f"OPERATOR{blank()}x y"]
    keys += [f"BINDEF {b} {rng.choice('PF')} NAME_{b}" for b in rng.sample(range(0, 400), rng.randint(0, 5))]
    rng.shuffle(keys)
    lines += keys
    n = rng.randint(0, 400)
    lines.append(f"DIES {n}")
    side = rng.randint(1, 30)
    for _ in range(n):
        if rng.random() < 0.05:
            lines.append(rng.choice(["", "# retest follows", "  "]))
        x, y = rng.randint(-side, side), rng.randint(-side, side)
        b = rng.choice([1, 1, 1, 285, rng.randint(0, 65535)])
        lines.append(rng.choice(["", " "]) + blank().join([str(x), str(y), rng.choice([str(b), f"{b:05d}"])]) + rng.choice(["", " ", "\t"]))
    lines.append("END")
    text = eol.join(lines) + rng.choice([eol, ""])
    return (rng.choice(["", "\ufeff"]) + text).encode()


def test_parser_matches_reference_reader_on_random_valid_files():
    rng = random.Random(11)
    for _ in range(300):
        data = random_a_file(rng)
        w = parse_failmap_a(data)
        ref = reference_a(data.decode("utf-8"))
        assert (w.x.tolist(), w.y.tolist(), w.bin.tolist(), w.retest_count.tolist()) == (ref["x"], ref["y"], ref["bin"], ref["retest"])
        assert w.rows_read == ref["rows_read"]
        assert w.lot == ref["header"]["LOT"] and w.wafer == ref["header"]["WAFER"] and w.flat == ref["header"]["FLAT"]
        assert w.extra == {"OPERATOR": ref["header"]["OPERATOR"]}
        assert w.bin_pass == {b: p for b, (p, _) in ref["bindef"].items()}
        assert w.bin_names == {b: nm for b, (_, nm) in ref["bindef"].items()}
        check_wafer(w)
