"""Stable bin colours: fixed values, green passes, non-green fails, legend as data,
and the stated distance guarantee (palette module docstring) over the whole palette."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from failmap_assets.maps.palette import (BIN1_PASS_RGB, FAIL_COLORS, MIN_DELTA_E, NOTCH_RGB, PASS_COLORS,
                                         bin_colors, bin_rgb, legend, rgb_hex)

ALL_BINS = np.arange(65536)


def test_bin1_pass_is_the_fixed_strong_green():
    # Hard-coded on purpose: engineers know "bin 1 is this green"; a change must be deliberate.
    assert bin_rgb(1, True) == (0, 160, 0)
    assert rgb_hex(bin_rgb(1, True)) == "#00a000"


def test_other_colours_are_pinned():
    # Pins the tables and the rule, so a refactor that silently re-colours every bin
    # across all existing PNGs is caught.
    assert bin_rgb(285, False) == (0, 60, 225)  # FAIL_COLORS[285 % 54 = 15]
    assert bin_rgb(120, False) == (45, 105, 150)  # FAIL_COLORS[12]
    assert bin_rgb(2, True) == (180, 225, 120)  # PASS_COLORS[1 + 2 % 12 = 3]
    assert bin_rgb(0, True) == (0, 225, 180)  # PASS_COLORS[1]


def test_scalar_and_vector_agree_and_repeat():
    bins = [0, 1, 2, 285, 286, 65535]
    for passed in (True, False):
        vec = bin_colors(bins, passed)
        assert [tuple(int(c) for c in row) for row in vec] == [bin_rgb(b, passed) for b in bins]
        assert np.array_equal(vec, bin_colors(bins, passed))


def test_colours_do_not_depend_on_the_process_hash_seed():
    # Python's str/bytes hash is randomised per process; a colour derived from it would
    # differ between two runs of the pipeline. Compute the palette in two fresh
    # interpreters with different seeds and compare with ours.
    repo = Path(__file__).resolve().parents[2]
    code = (
        "import json; from failmap_assets.maps.palette import bin_colors; "
        "print(json.dumps([bin_colors(range(0, 70000, 97), p).tolist() for p in (True, False)]))"
    )
    ours = [bin_colors(range(0, 70000, 97), p).tolist() for p in (True, False)]
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(repo)}
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=repo, capture_output=True, text=True, check=True)
        assert json.loads(out.stdout) == ours


def test_pass_bins_are_green_dominant():
    rgb = bin_colors(ALL_BINS, True).astype(int)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    # Green clearly the largest channel for every possible pass bin.
    assert np.all(g - np.maximum(r, b) >= 40)


def test_fail_bins_are_never_green():
    rgb = bin_colors(ALL_BINS, False).astype(int)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    assert np.all(np.maximum(r, b) - g >= 40)


def test_same_bin_pass_and_fail_differ():
    assert not np.any(np.all(bin_colors(ALL_BINS, True) == bin_colors(ALL_BINS, False), axis=1))


def _lab(rgb) -> np.ndarray:
    """sRGB (D65) -> CIELAB, written out here independently of the palette's own code."""
    c = np.asarray(rgb, dtype=float) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def _hex(colors):
    return [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in colors]


def _delta_e(rgb) -> np.ndarray:
    """Pairwise CIE76 distances of the given colours, the diagonal set to infinity."""
    lab = _lab(rgb)
    d = np.linalg.norm(lab[:, None, :] - lab[None, :, :], axis=2)
    np.fill_diagonal(d, np.inf)
    return d


def test_whole_palette_is_pairwise_far_apart():
    # Every pass and fail entry and the notch colour: CIE76 delta E >= MIN_DELTA_E.
    d = _delta_e(_hex(PASS_COLORS) + _hex(FAIL_COLORS) + [NOTCH_RGB])
    assert MIN_DELTA_E == 20.0 and d.min() >= MIN_DELTA_E


def test_table_sizes_match_the_stated_moduli():
    # The docstring and README state "modulo 54" and "modulo 12": tied to the tables here.
    assert len(FAIL_COLORS) == 54 and len(PASS_COLORS) - 1 == 12
    assert _hex(PASS_COLORS)[0] == BIN1_PASS_RGB


@pytest.mark.parametrize("passed, table", [(True, PASS_COLORS), (False, FAIL_COLORS)])
def test_every_bin_gets_a_colour_of_its_table(passed, table):
    got = {tuple(c) for c in bin_colors(ALL_BINS, passed).tolist()}
    assert got == set(_hex(table))  # in the table, and every entry used


def test_the_rule_over_every_bin():
    fail_idx = ALL_BINS % len(FAIL_COLORS)
    pass_idx = np.where(ALL_BINS == 1, 0, 1 + ALL_BINS % (len(PASS_COLORS) - 1))
    assert np.array_equal(bin_colors(ALL_BINS, False), np.array(_hex(FAIL_COLORS), dtype=np.uint8)[fail_idx])
    assert np.array_equal(bin_colors(ALL_BINS, True), np.array(_hex(PASS_COLORS), dtype=np.uint8)[pass_idx])


def test_stable_across_calls_orders_and_batches():
    # A wafer's colours cannot depend on which other bins it has, or their order.
    rng = np.random.default_rng(0)
    passed = rng.random(65536) < 0.3
    whole = bin_colors(ALL_BINS, passed)
    for _ in range(5):
        pick = rng.choice(65536, int(rng.integers(1, 300)), replace=False)
        assert np.array_equal(bin_colors(pick, passed[pick]), whole[pick])
        assert bin_rgb(int(pick[0]), bool(passed[pick[0]])) == tuple(whole[pick[0]].tolist())


def test_any_54_consecutive_fail_bins_are_pairwise_far_apart():
    # Every start within one period (the rule's periodicity over all bins is checked
    # below), and starts spread over the whole bin range.
    for start in [*range(54), *range(54, 65536 - 53, 331), 65536 - 54]:
        assert _delta_e(bin_colors(np.arange(start, start + 54), False)).min() >= MIN_DELTA_E


def test_pass_bins_within_12_consecutive_and_bin1_are_pairwise_far_apart():
    for start in (0, 2, 100, 65524):
        bins = np.r_[1, np.arange(start, start + 12)[np.arange(start, start + 12) != 1]]
        d = _delta_e(bin_colors(bins, True))
        assert d.min() >= MIN_DELTA_E


def test_a_pass_bin_and_a_fail_bin_are_always_far_apart():
    # The tables are disjoint and pairwise >= MIN_DELTA_E, so pass vs fail never collide.
    lab_p, lab_f = _lab(_hex(PASS_COLORS)), _lab(_hex(FAIL_COLORS))
    assert np.linalg.norm(lab_p[:, None] - lab_f[None], axis=2).min() >= MIN_DELTA_E


def test_colours_collide_exactly_on_the_stated_congruences():
    # Fail bins share a colour iff congruent mod 54; pass bins other than 1 iff mod 12.
    fail = bin_colors(ALL_BINS, False)
    assert np.array_equal(fail, np.tile(fail[:54], (65536 // 54 + 1, 1))[:65536])
    other = bin_colors(np.arange(2, 65536), True)
    assert np.array_equal(other, np.tile(bin_colors(np.arange(2, 14), True), (65534 // 12 + 1, 1))[:65534])


def test_near_identical_bins_of_the_issue_are_now_distinct():
    # Users' complaints: 120 #1026c6 vs 285 #1036c6, 3 #c63110 vs 4095 #c61c10 (fail bins).
    for a, b in ((120, 285), (3, 4095)):
        assert _delta_e(bin_colors([a, b], False))[0, 1] >= MIN_DELTA_E


def test_other_pass_bins_are_distinct_from_bin1():
    rgb = bin_colors(np.arange(2, 65536), True).astype(int)
    assert np.abs(rgb - np.array(bin_rgb(1, True))).sum(axis=1).min() >= 40


def test_notch_colour_is_unlike_any_bin_colour():
    notch = np.array(NOTCH_RGB)
    for passed in (True, False):
        rgb = bin_colors(ALL_BINS, passed).astype(int)
        assert np.abs(rgb - notch).sum(axis=1).min() >= 100
        assert np.linalg.norm(_lab(rgb) - _lab(notch), axis=1).min() >= MIN_DELTA_E


def test_legend_is_data_with_stable_colours():
    entries = legend([285, 1, 1, 7, 285, 285], [False, True, True, False, False, False],
                     names={1: "PASS", 285: "IDDQ_FAIL"}, counts=[1, 1, 1, 1, 1, 1])
    assert entries == [
        {"bin": 1, "pass": True, "name": "PASS", "rgb": "#00a000", "count": 2},
        {"bin": 7, "pass": False, "name": None, "rgb": rgb_hex(bin_rgb(7, False)), "count": 1},
        {"bin": 285, "pass": False, "name": "IDDQ_FAIL", "rgb": "#003ce1", "count": 3},
    ]
    json.dumps(entries)  # plain Python types only


def test_legend_without_counts_and_mixed_verdicts():
    entries = legend([5, 5], [True, False])
    assert [(e["bin"], e["pass"]) for e in entries] == [(5, False), (5, True)]
    assert entries[0]["rgb"] != entries[1]["rgb"]
    assert all("count" not in e for e in entries)
    assert legend([], []) == []


def test_legend_rejects_misaligned_input():
    with pytest.raises(ValueError):
        legend([1, 2], [True])
    with pytest.raises(ValueError):
        legend([1, 2], [True, False], counts=[1])
