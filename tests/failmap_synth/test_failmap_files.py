"""Synthetic fail maps against the file contract (docs/failmap-format.md)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta

import numpy as np
import pytest

from failmap_synth import compression, textcols
from failmap_synth.day import NOTES, expected_summary, expected_totals, generate_day
from failmap_synth.rng import rng_for
from failmap_synth.wafer_shapes import generate_wafer, product_catalog, product_grid
from tests.failmap_synth.decode import KEY_RE, BadMap, key_time, members, parse_map, sniff, wafer_token

DAY = date(2026, 1, 11)
WAFERS = 150
RANGE = (500, 3000)
VALID_A = ("a", "a_without_b", "a_with_broken_b")
VALID_B = ("b", "orphan_b")


@pytest.fixture(scope="module")
def day_objects():
    # Smaller dies than the default keep the module fast; the shape rules are the same.
    return list(generate_day(DAY, WAFERS, 11, dies_range=RANGE, typical_dies=900))


@pytest.fixture(scope="module")
def maps(day_objects):
    """key -> list of (member name, parsed Map) for every valid object."""
    out = {}
    for o in day_objects:
        if o.note in VALID_A + VALID_B + ("a_multi",):
            out[o.key] = [(n, parse_map(d)) for n, d in members(o.data)
                          if d and not n.endswith(("README.txt", "empty.txt"))]
    return out


# ------------------------------------------------------------------ containers

@pytest.mark.parametrize("fmt", compression.FORMATS)
def test_every_format_decompresses_to_the_text(fmt):
    text = b"FAILMAP 1\nLOT X1A001.1\nWAFER 01\nSTIME 20260111_000000\nDIES 1\n0 0 1\nEND\n" * 50
    data = compression.compress([("m.txt", text)], fmt, mtime=1768089600)
    assert sniff(data) == {"tgz": "tar.gz"}.get(fmt, fmt)
    got = [d for _, d in members(data)]
    assert got == [text]


@pytest.mark.parametrize("fmt", compression.ARCHIVES)
def test_archives_hold_several_members_and_folders(fmt):
    parts = [("maps/b.map", b"two\n"), ("maps/a.map", b"one\n"), ("maps/README.txt", b"hi\n"), ("maps", None)]
    got = dict(members(compression.compress(parts, fmt, mtime=1768089600)))
    assert got["maps/a.map"] == b"one\n" and got["maps/b.map"] == b"two\n" and got["maps/README.txt"] == b"hi\n"


@pytest.mark.parametrize("fmt", ["zip", "7z", "tar.gz", "gz", "bz2", "xz"])
def test_corrupt_really_breaks_the_container(fmt):
    text = "\n".join(f"{i} {i % 7} {1 + i % 3}" for i in range(5000)).encode()
    for seed in range(5):
        data = compression.corrupt(compression.compress([("m.txt", text)], fmt, mtime=0), rng_for(seed))
        with pytest.raises(Exception) as err:  # noqa: PT011 - each library raises its own error type
            members(data)
        assert not isinstance(err.value, AssertionError)


def test_all_extensions_real_formats_and_a_lie_occur(day_objects):
    a = [o for o in day_objects if o.bucket == "a" and o.note in VALID_A + ("a_multi",)]
    exts = {KEY_RE.match(o.key)["ext"] for o in a}
    assert exts == set(compression.FORMATS)
    real = {sniff(o.data) for o in a}
    assert real == {"Z", "gz", "bz2", "xz", "7z", "zip", "tar", "tar.gz", "txt"}
    lies = [o for o in a if {"tgz": "tar.gz"}.get(KEY_RE.match(o.key)["ext"], KEY_RE.match(o.key)["ext"])
            != sniff(o.data)]
    assert lies, "some key should carry a lying extension"


# ------------------------------------------------------------------ contract

def test_valid_objects_follow_the_contract(day_objects, maps):
    for o in day_objects:
        if o.note not in VALID_A + VALID_B + ("a_multi",):
            continue
        m = KEY_RE.match(o.key)
        assert m, o.key
        assert m["folder"] == m["date"]
        parsed = maps[o.key]
        assert parsed, o.key
        if o.note == "a_multi":
            assert len(parsed) == o.maps >= 2
            for _, mp in parsed:
                assert mp.kind == "A" and mp.header["LOT"] == [m["token"]]
            continue
        (_, mp), = parsed
        assert mp.kind == ("A" if o.bucket == "a" else "B")
        assert mp.header["STIME"] == [f"{m['date']}_{m['time']}"]
        if mp.kind == "A":
            assert mp.header["LOT"] == [m["token"]] and mp.header["WAFER"] == [m["slot"]]
            assert o.dies == len({(r[0], r[1]) for r in mp.rows})
        else:
            k = int(mp.header["VALUES"][0].split()[0])
            assert all(len(r) == 3 + k for r in mp.rows) and o.dies == len(mp.rows)


def test_tolerated_variations_all_occur(maps):
    all_maps = [mp for parsed in maps.values() for _, mp in parsed]
    a_maps = [mp for mp in all_maps if mp.kind == "A"]
    assert any(mp.crlf for mp in all_maps) and any(not mp.crlf for mp in all_maps)
    assert any(mp.bom for mp in all_maps)
    assert any(mp.comments for mp in all_maps)
    assert any(mp.tabs for mp in all_maps)
    assert any(r[2].startswith("0") and len(r[2]) > 1 for mp in all_maps for r in mp.rows[:50])
    assert any("BINDEF" not in mp.header for mp in a_maps)                  # empty BINDEF set
    assert any(set(mp.header) - {"LOT", "WAFER", "PRODUCT", "STEP", "TESTER", "PARTID", "STIME", "FLAT",
                                 "DIE_SIZE", "ORIGIN", "BINDEF"} for mp in a_maps)  # unknown keys
    assert any(len(mp.rows) == 0 for mp in a_maps)                          # DIES 0
    retested = [mp for mp in a_maps if len({(r[0], r[1]) for r in mp.rows}) < len(mp.rows)]
    assert retested, "some A maps re-test dies (the same x y twice)"
    assert any("NA" in r[3:] for mp in all_maps if mp.kind == "B" for r in mp.rows)


def test_retest_rows_come_after_the_first_touch(maps):
    for parsed in maps.values():
        for _, mp in parsed:
            if mp.kind != "A" or not mp.rows:
                continue
            xy = [(r[0], r[1]) for r in mp.rows]
            n_distinct = len(set(xy))
            assert len(set(xy[:n_distinct])) == n_distinct  # every die once, then the re-tests


# ------------------------------------------------------------------ pairing and notes

def test_b_partners_are_0_to_10_s_later_with_the_same_token(day_objects):
    by_key = {(o.bucket, o.key): o for o in day_objects}
    for o in day_objects:
        if o.note in ("a", "a_with_broken_b"):
            b = by_key[("b", o.partner)]
            assert b.partner == o.key
            assert wafer_token(b.key) == wafer_token(o.key)
            assert 0 <= (key_time(b.key) - key_time(o.key)).total_seconds() <= 10
    delays = {(key_time(o.partner) - key_time(o.key)).total_seconds() for o in day_objects if o.note == "a"}
    assert {0, 10} <= delays


def test_contract_pairing_rule_reproduces_the_notes(day_objects):
    """Pair as the contract says (earliest B of the same token within [t_A, t_A+10 s];
    each B claimed once) and compare with what the notes promise."""
    a_objs = sorted((o for o in day_objects if o.bucket == "a" and KEY_RE.match(o.key)),
                    key=lambda o: key_time(o.key))
    bs = defaultdict(list)
    for o in day_objects:
        if o.bucket == "b":
            bs[wafer_token(o.key)].append(o)
    claimed: dict[str, str] = {}
    for a in a_objs:
        cands = [b for b in bs[wafer_token(a.key)] if b.key not in claimed.values()
                 and 0 <= (key_time(b.key) - key_time(a.key)).total_seconds() <= 10]
        if cands:
            claimed[a.key] = min(cands, key=lambda b: key_time(b.key)).key
    expected = {o.key: o.partner for o in day_objects if o.note in ("a", "a_with_broken_b")}
    assert claimed == expected
    orphans = {o.key for o in day_objects if o.bucket == "b"} - set(claimed.values())
    assert orphans == {o.key for o in day_objects if o.note == "orphan_b"}


def test_a_b_written_after_midnight_lands_in_the_next_days_folder(day_objects):
    late = [o for o in day_objects if o.note == "b" and o.key.startswith(f"{DAY + timedelta(days=1):%Y%m%d}/")]
    assert late
    for b in late:
        assert b.partner.startswith(f"{DAY:%Y%m%d}/")
        assert key_time(b.partner).strftime("%H%M") == "2359"


def test_notes_and_counts(day_objects):
    s = expected_summary(day_objects)
    assert list(s) == list(NOTES)
    assert sum(o.maps for o in day_objects if o.note in ("a", "a_without_b", "a_multi")) == WAFERS
    assert s["a"] == s["b"]
    assert 1 <= s["a_without_b"] <= 0.15 * WAFERS
    assert s["a_multi"] >= 1 and s["orphan_b"] >= 1
    for kind in ("broken:truncated", "broken:corrupt_archive", "broken:bad_row", "broken:wrong_value_count",
                 "skipped:bad_key", "a_with_broken_b"):
        assert s[kind] == 1, kind
    assert s["stdf"] == 0
    t = expected_totals(day_objects)
    assert t["valid_maps"] == WAFERS + 1  # + the valid A whose B is broken
    assert t["paired"] == s["a"] + 1 and t["rejected"] == 4 and t["skipped"] == 1


def _readable(o) -> bool:
    try:
        parts = [d for _, d in members(o.data) if d]
        for d in parts:
            parse_map(d)
        return bool(parts)
    except BadMap:
        return False
    except Exception:  # noqa: BLE001 - any decompression error counts as unreadable
        return False


def test_broken_objects_are_really_broken(day_objects):
    broken = [o for o in day_objects if o.note.startswith("broken:")]
    assert {o.note for o in broken} == {"broken:truncated", "broken:corrupt_archive", "broken:bad_row",
                                        "broken:wrong_value_count"}
    for o in broken:
        assert KEY_RE.match(o.key), o.key  # the key is fine; the content is not
        assert not _readable(o), o.note
    bad = [o for o in day_objects if o.note == "skipped:bad_key"]
    assert len(bad) == 1 and not KEY_RE.match(bad[0].key)


@pytest.mark.parametrize("seed", range(12))
def test_every_breakage_variant_is_unreadable(seed):
    # wafers=0: only the broken lot, so many seeds (formats, cut points, row kinds) are cheap.
    objs = list(generate_day(DAY, 0, seed, dies_range=(500, 1500), typical_dies=700))
    assert expected_summary(objs)["broken:truncated"] == 1
    for o in objs:
        if o.note.startswith("broken:"):
            assert not _readable(o), (seed, o.note, o.key)
        elif o.note == "a_with_broken_b":
            assert _readable(o)


# ------------------------------------------------------------------ realism

def test_die_counts_in_range_and_bin_1_dominates(maps):
    total = Counter()
    for parsed in maps.values():
        for _, mp in parsed:
            if mp.kind != "A" or not mp.rows:
                continue
            v = mp.ints()
            distinct = {(x, y): b for x, y, b in v.tolist()}  # later row wins
            assert RANGE[0] <= len(distinct) <= RANGE[1]
            c = Counter(distinct.values())
            assert c.most_common(1)[0][0] == 1
            total.update(c)
    assert total[1] / sum(total.values()) > 0.75
    fails = [b for b, _ in total.most_common() if b not in (1, 2)]
    assert len(fails) >= 5 and 285 in fails[:3]  # a pareto led by the usual suspects


def test_default_knobs_give_500_to_20000_dies_and_wide_range_reaches_120000():
    objs = list(generate_day(DAY, 30, 3, broken=False))
    counts = [o.dies for o in objs if o.note in ("a", "a_without_b") and o.dies]
    assert counts and all(500 <= n <= 20000 for n in counts)
    big = [product_grid(p).n for p, _ in product_catalog((500, 120000), 5000)]
    assert max(big) > 100_000 and min(big) < 600 and all(500 <= n <= 120000 for n in big)
    typical = np.median([product_grid(p).n for p, _ in product_catalog()])
    assert 3000 < typical < 8000


def test_a_lot_shares_one_grid(maps):
    grids = defaultdict(set)
    for parsed in maps.values():
        for _, mp in parsed:
            if mp.kind == "A" and mp.rows:
                grids[mp.header["LOT"][0]].add(frozenset((r[0], r[1]) for r in mp.rows))
    assert any(len(g) == 1 for g in grids.values())
    assert all(len(g) == 1 for g in grids.values())


def test_multi_member_archives_skip_readme(day_objects):
    multi = [o for o in day_objects if o.note == "a_multi"]
    assert multi
    for o in multi:
        names = [n for n, d in members(o.data)]
        assert any(n.endswith("README.txt") for n in names)
        assert sum(n.endswith(".map") for n in names) == o.maps


def test_spatial_patterns_edge_ring_and_clustering():
    product = product_catalog()[4][0]
    g = product_grid(product)
    edge, centre, neighbour_pairs, neighbour_both = 0.0, 0.0, 0, 0
    index = {(x, y): i for i, (x, y) in enumerate(zip(g.x.tolist(), g.y.tolist()))}
    right = np.array([index.get((x + 1, y), -1) for x, y in zip(g.x.tolist(), g.y.tolist())])
    has_right = right >= 0
    p_fail = []
    for i in range(200):
        _, _, bins = generate_wafer(product, rng_for(99, i)).final()
        fail = bins > 2
        edge += fail[g.r > 0.93].mean()
        centre += fail[g.r < 0.5].mean()
        neighbour_pairs += has_right.sum()
        neighbour_both += (fail[has_right] & fail[right[has_right]]).sum()
        p_fail.append(fail.mean())
    assert edge > 1.5 * centre  # an edge ring on many wafers
    # Fails cluster: a failing die's right neighbour fails more often than chance.
    p = np.mean(p_fail)
    assert neighbour_both / neighbour_pairs > 1.5 * p * p


def test_die_generation_is_vectorised_fast():
    import time
    product = min((p for p, _ in product_catalog()), key=lambda p: abs(product_grid(p).n - 5000))
    t0 = time.process_time()
    for i in range(1000):
        generate_wafer(product, rng_for(7, i))
    # ~0.5 ms per wafer when idle; a per-die Python loop would take minutes.
    assert time.process_time() - t0 < 15


def test_text_columns_match_python_formatting():
    rng = rng_for(5)
    ints = rng.integers(-300_000, 300_000, 3000)
    assert textcols.join_rows([textcols.int_cells(ints)]).split() == [str(i).encode() for i in ints]
    small = rng.integers(0, 70000, 3000)
    assert textcols.join_rows([textcols.int_cells(small, zero_pad=4)]).split() == [f"{i:04d}".encode() for i in small]
    vals = rng.normal(0, 50, 3000)
    for d in (0, 1, 3):
        got = textcols.join_rows([textcols.fixed_cells(vals, d)]).split()
        assert [float(g) for g in got] == [float(f"{v:.{d}f}") for v in vals]
    tiny = np.exp(rng.normal(-20, 4, 3000))
    assert textcols.join_rows([textcols.sci_cells(tiny)]).split() == [f"{v:.2e}".encode() for v in tiny]
    na = textcols.with_na(textcols.fixed_cells(vals[:3], 2), np.array([False, True, False]))
    assert textcols.join_rows([na]).split()[1] == b"NA"
