"""Stable bin colours: fixed values, green passes, non-green fails, legend as data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from failmap_assets.maps.palette import NOTCH_RGB, bin_colors, bin_rgb, legend, rgb_hex

ALL_BINS = np.arange(65536)


def test_bin1_pass_is_the_fixed_strong_green():
    # Hard-coded on purpose: engineers know "bin 1 is this green"; a change must be deliberate.
    assert bin_rgb(1, True) == (0, 160, 0)
    assert rgb_hex(bin_rgb(1, True)) == "#00a000"


def test_other_colours_are_pinned():
    # Pins the formula itself (golden-ratio hue stepping), so a refactor that silently
    # re-colours every fail bin across all existing PNGs is caught.
    assert bin_rgb(285, False) == (16, 54, 198)
    assert bin_rgb(286, False) == (238, 47, 76)
    assert bin_rgb(2, True) == (117, 228, 68)


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


@pytest.mark.parametrize("passed", [True, False])
def test_neighbouring_bins_look_different(passed):
    rgb = bin_colors(np.arange(0, 5001), passed).astype(int)
    step = np.abs(np.diff(rgb, axis=0)).sum(axis=1)
    assert step.min() >= 60


def test_fail_bins_are_well_spread():
    # The first 200 fail bins should use many visibly different colours, not a handful.
    rgb = bin_colors(np.arange(200), False)
    assert len({tuple(c) for c in (rgb // 16).tolist()}) >= 100


def test_other_pass_bins_are_distinct_from_bin1():
    rgb = bin_colors(np.arange(2, 65536), True).astype(int)
    assert np.abs(rgb - np.array(bin_rgb(1, True))).sum(axis=1).min() >= 40


def test_notch_colour_is_unlike_any_bin_colour():
    notch = np.array(NOTCH_RGB)
    for passed in (True, False):
        rgb = bin_colors(ALL_BINS, passed).astype(int)
        assert np.abs(rgb - notch).sum(axis=1).min() >= 100


def test_legend_is_data_with_stable_colours():
    entries = legend([285, 1, 1, 7, 285, 285], [False, True, True, False, False, False],
                     names={1: "PASS", 285: "IDDQ_FAIL"}, counts=[1, 1, 1, 1, 1, 1])
    assert entries == [
        {"bin": 1, "pass": True, "name": "PASS", "rgb": "#00a000", "count": 2},
        {"bin": 7, "pass": False, "name": None, "rgb": rgb_hex(bin_rgb(7, False)), "count": 1},
        {"bin": 285, "pass": False, "name": "IDDQ_FAIL", "rgb": "#1036c6", "count": 3},
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
