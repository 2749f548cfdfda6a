"""The pairing rule of failmap-format.md, case by case, plus a brute-force cross-check."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import polars as pl
import pytest

from failmap_assets.pipeline.pairing import pair_objects, partner_days

T0 = datetime(2026, 1, 11, 14, 30, 25)


def frame(rows):
    return pl.DataFrame(
        [(k, f"etag-{k}", w, T0 + timedelta(seconds=s)) for k, w, s in rows],
        schema={"key": pl.String, "etag": pl.String, "wafer_token": pl.String, "file_time": pl.Datetime("us")},
        orient="row",
    )


def status_of(pairs: pl.DataFrame) -> dict:
    out = {}
    for r in pairs.iter_rows(named=True):
        out[r["a_key"] or r["b_key"]] = (r["status"], r["b_key"] if r["a_key"] else None)
    return out


LATE = T0 + timedelta(days=1)


def test_partner_within_window_inclusive():
    pairs = pair_objects(frame([("a", "w", 0)]), frame([("b", "w", 10)]), now=LATE)
    assert status_of(pairs) == {"a": ("matched", "b")}


def test_partner_after_window_is_not_a_partner():
    pairs = pair_objects(frame([("a", "w", 0)]), frame([("b", "w", 11)]), now=LATE)
    assert status_of(pairs) == {"a": ("a_only", None), "b": ("orphan_b", None)}


def test_partner_before_a_is_not_a_partner():
    pairs = pair_objects(frame([("a", "w", 5)]), frame([("b", "w", 4)]), now=LATE)
    assert status_of(pairs)["a"] == ("a_only", None)


def test_other_wafer_token_never_pairs():
    pairs = pair_objects(frame([("a", "w1", 0)]), frame([("b", "w2", 3)]), now=LATE)
    assert status_of(pairs) == {"a": ("a_only", None), "b": ("orphan_b", None)}


def test_earliest_of_several_candidates_wins():
    pairs = pair_objects(frame([("a", "w", 0)]), frame([("b2", "w", 7), ("b1", "w", 3)]), now=LATE)
    assert status_of(pairs) == {"a": ("matched", "b1"), "b2": ("orphan_b", None)}


def test_each_b_pairs_once_earliest_a_claims_it():
    # a1 and a2 both see b1 first; a1 is earlier so keeps it; a2 takes the next free B.
    pairs = pair_objects(frame([("a2", "w", 3), ("a1", "w", 0)]), frame([("b1", "w", 5), ("b2", "w", 8)]), now=LATE)
    assert status_of(pairs) == {"a1": ("matched", "b1"), "a2": ("matched", "b2")}


def test_loser_without_other_b_is_unmatched():
    pairs = pair_objects(frame([("a1", "w", 0), ("a2", "w", 3)]), frame([("b1", "w", 5)]), now=LATE)
    assert status_of(pairs) == {"a1": ("matched", "b1"), "a2": ("a_only", None)}


def test_pending_until_window_plus_grace():
    a = frame([("a", "w", 0)])
    b = frame([])
    just_before = T0 + timedelta(seconds=10 + 600 - 1)
    assert status_of(pair_objects(a, b, now=just_before, grace_s=600)) == {"a": ("pending", None)}
    at_deadline = T0 + timedelta(seconds=10 + 600)
    assert status_of(pair_objects(a, b, now=at_deadline, grace_s=600)) == {"a": ("a_only", None)}


def test_configurable_window():
    a, b = frame([("a", "w", 0)]), frame([("b", "w", 25)])
    assert status_of(pair_objects(a, b, now=LATE, window_s=30))["a"] == ("matched", "b")
    assert status_of(pair_objects(a, b, now=LATE, window_s=20))["a"] == ("a_only", None)


def test_across_midnight():
    a = pl.DataFrame(
        {"key": ["20260111/x_01P_20260111_235958.Z"], "etag": ["e"], "wafer_token": ["x_01P"],
         "file_time": [datetime(2026, 1, 11, 23, 59, 58)]}
    )
    b = pl.DataFrame(
        {"key": ["20260112/x_01P_20260112_000004.gz"], "etag": ["f"], "wafer_token": ["x_01P"],
         "file_time": [datetime(2026, 1, 12, 0, 0, 4)]}
    )
    pairs = pair_objects(a, b, now=datetime(2026, 1, 13))
    assert pairs.row(0, named=True)["status"] == "matched"


def test_empty_inputs():
    pairs = pair_objects(frame([]), frame([]), now=LATE)
    assert pairs.height == 0


def greedy_reference(a_rows, b_rows, window):
    """The rule read literally: A in time order, each takes its earliest free B in the window."""
    taken, out = set(), {}
    for key, wt, t in sorted(a_rows, key=lambda r: (r[2], r[0])):
        cands = sorted((bt, bk) for bk, bw, bt in b_rows if bw == wt and bk not in taken and t <= bt <= t + window)
        if cands:
            taken.add(cands[0][1])
            out[key] = cands[0][1]
        else:
            out[key] = None
    return out


@pytest.mark.parametrize("seed", range(20))
def test_matches_greedy_reference_on_random_days(seed):
    rng = random.Random(seed)
    tokens = [f"w{i}" for i in range(6)]
    a_rows = [(f"a{i}", rng.choice(tokens), rng.randrange(0, 120)) for i in range(40)]
    b_rows = [(f"b{i}", rng.choice(tokens), rng.randrange(0, 130)) for i in range(40)]
    pairs = pair_objects(frame(a_rows), frame(b_rows), now=LATE)
    got = {r["a_key"]: r["b_key"] for r in pairs.iter_rows(named=True) if r["a_key"]}
    assert got == greedy_reference(a_rows, b_rows, 10)
    claimed = {v for v in got.values() if v}
    orphans = {r["b_key"] for r in pairs.iter_rows(named=True) if r["status"] == "orphan_b"}
    assert claimed | orphans == {k for k, _, _ in b_rows} and not claimed & orphans

def _k(day: date, name: str) -> str:
    return f"{day:%Y%m%d}/{name}"


def _fm(day: date, hhmmss: str, token: str = "N4A123.1_07P") -> str:
    return f"{day:%Y%m%d}/{token}_{day:%Y%m%d}_{hhmmss}.Z"


def test_b_partner_days_only_just_after_midnight():
    def p(key, day):
        return partner_days("b", key, day, 10)

    day = date(2026, 1, 12)
    assert p(_fm(day, "000004"), day) == [date(2026, 1, 11)]
    assert p(_fm(day, "000009"), day) == [date(2026, 1, 11)]
    assert p(_fm(day, "000010"), day) == []  # A at exactly midnight is in `day` itself
    assert p(_fm(day, "143030"), day) == []
    assert p(_k(day, "garbage.gz"), day) == []
    assert partner_days("b", _fm(day, "000000"), day, 0) == []


def test_a_partner_days_only_just_before_midnight():
    def p(key, day):
        return partner_days("a", key, day, 10)

    day = date(2026, 1, 11)
    assert p(_fm(day, "235958"), day) == [date(2026, 1, 12)]
    assert p(_fm(day, "235950"), day) == [date(2026, 1, 12)]  # its B may be written at 00:00:00
    assert p(_fm(day, "235949"), day) == []
    assert p(_fm(day, "120000"), day) == []
    assert p(_k(day, "x.Z"), day) == []


