"""The wafer signature: orientation, grid size and die aspect invariance, too-small wafers."""

from __future__ import annotations

import numpy as np
import pytest

from failmap_assets.patterns.signature import (
    EMBEDDING_DIM, PATTERN_CLASSES, RASTER_SIZE, TOO_SMALL, MIN_DIES, wafer_signature, wafer_signatures)
from failmap_synth.patterns import pattern_wafer


def disc_wafer(rows: int, cols: int, pattern) -> np.ndarray:
    """A round wafer of rows x cols dies (non-square dies when rows != cols) with the
    dies where ``pattern(x, y)`` (normalised coordinates, y down) holds failing."""
    r = (np.arange(rows) + 0.5 - rows / 2) / (rows / 2)
    c = (np.arange(cols) + 0.5 - cols / 2) / (cols / 2)
    y, x = np.meshgrid(r, c, indexing="ij")
    grid = np.where(np.hypot(x, y) <= 1.0, pattern(x, y).astype(np.int8), np.int8(-1))
    return grid.astype(np.int8)


def top_cluster(x, y):
    return np.hypot(x - 0.1, y + 0.75) < 0.3   # at the top edge (y up is negative)


def same(a, b) -> None:
    np.testing.assert_array_equal(a.raster, b.raster)
    np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-6)
    assert (a.label, a.dies, a.fail_dies) == (b.label, b.dies, b.fail_dies)
    assert a.confidence == pytest.approx(b.confidence, abs=1e-9)


def test_contract_fields() -> None:
    s = wafer_signature(disc_wafer(40, 40, top_cluster))
    assert s.raster.shape == (RASTER_SIZE, RASTER_SIZE) and s.raster.dtype == np.float32
    assert s.embedding.shape == (EMBEDDING_DIM,) and s.embedding.dtype == np.float32
    assert float(np.linalg.norm(s.embedding)) == pytest.approx(1.0, abs=1e-5)
    assert s.label in PATTERN_CLASSES and 0.0 <= s.confidence <= 1.0 and s.evidence
    assert s.dies == int((disc_wafer(40, 40, top_cluster) >= 0).sum())
    # Off the wafer is NaN, on it a density in [0, 1].
    assert np.isnan(s.raster[0, 0]) and 0.0 <= np.nanmin(s.raster) <= np.nanmax(s.raster) <= 1.0


def test_notch_up_equals_the_same_wafer_turned_notch_down() -> None:
    grid = disc_wafer(37, 37, top_cluster)        # as given: notch down, cluster at the top
    turned = np.rot90(grid, 2)                    # the same wafer seen with its notch up
    same(wafer_signature(grid, notch="down"), wafer_signature(turned, notch="up"))
    down = wafer_signature(grid)
    # The top cluster stays at the top of the raster (notch at the bottom).
    assert np.nanmean(down.raster[:8]) > np.nanmean(down.raster[-8:]) + 0.2


def test_notch_left_and_right_with_non_square_dies() -> None:
    grid = disc_wafer(30, 45, top_cluster)        # dies 30/45 as wide as tall
    aspect = 30 / 45
    ref = wafer_signature(grid, aspect)
    # Turned clockwise the bottom (notch) goes to the left, and dies are now wider than tall.
    same(ref, wafer_signature(np.rot90(grid, -1), 1 / aspect, notch="left"))
    same(ref, wafer_signature(np.rot90(grid, 1), 1 / aspect, notch="right"))


def test_grid_size_and_die_aspect_do_not_change_the_pattern() -> None:
    def center(x, y):
        return np.hypot(x, y) < 0.4

    sigs = [wafer_signature(disc_wafer(n, n, center)) for n in (24, 60, 118)]
    sigs.append(wafer_signature(disc_wafer(40, 64, center), 40 / 64))
    sigs.append(wafer_signature(disc_wafer(64, 40, center), 64 / 40))
    assert {s.label for s in sigs} == {"Center"}
    ref = sigs[1].raster
    for s in sigs:
        both = ~np.isnan(ref) & ~np.isnan(s.raster)
        # The same disc on any grid: the rasters differ only on the pattern's border.
        assert (np.abs(s.raster - ref)[both] > 0.5).mean() < 0.08
        assert float(s.embedding @ sigs[1].embedding) > 0.95


@pytest.mark.parametrize("grid", [
    np.zeros((0, 0), np.int8), np.full((12, 12), -1, np.int8), np.ones((1, 1), np.int8),
    np.zeros((5, 5), np.int8), np.ones((1, MIN_DIES - 1), np.int8)])
def test_a_handful_of_dies_is_too_small(grid) -> None:
    s = wafer_signature(grid)
    assert s.label == TOO_SMALL and s.confidence == 0.0 and "too small" in s.evidence
    assert s.dies == int((grid >= 0).sum()) and not s.embedding.any()
    assert s.raster.shape == (RASTER_SIZE, RASTER_SIZE)


def test_bad_arguments_are_refused() -> None:
    grid = disc_wafer(30, 30, top_cluster)
    with pytest.raises(ValueError):
        wafer_signature(grid, notch="north")
    with pytest.raises(ValueError):
        wafer_signature(grid, die_aspect=0.0)
    with pytest.raises(ValueError):
        wafer_signature(grid[0])
    with pytest.raises(ValueError):
        wafer_signatures([grid], die_aspects=[1.0, 1.0])


def test_batch_equals_one_by_one() -> None:
    wafers = [pattern_wafer(c, seed=5, index=0) for c in PATTERN_CLASSES]
    batch = wafer_signatures([w.grid for w in wafers], [w.die_aspect for w in wafers])
    for w, s in zip(wafers, batch):
        same(s, wafer_signature(w.grid, w.die_aspect))


def test_evidence_names_the_region() -> None:
    s = wafer_signature(disc_wafer(40, 40, lambda x, y: (np.hypot(x - 0.6, y + 0.6) < 0.25)))
    assert s.label in ("Edge-Loc", "Loc")
    assert "upper right" in s.evidence


def test_run_features_tell_a_broken_scratch_from_a_blob_on_any_grid() -> None:
    from failmap_assets.patterns.features import FEATURE_NAMES, wafer_features
    from failmap_assets.patterns.geometry import wafer_geometry

    run = [FEATURE_NAMES.index(n) for n in ("run_length", "run_density", "run_contrast")]
    rng = np.random.default_rng(7)
    for n in (26, 52, 104):
        die = 2.0 / n
        noise = rng.random((n, n)) < 0.05

        def scratch(x, y):   # a sloping line 1.4 radii long, one die wide, two gaps
            t = (x + 0.3 * y) / np.hypot(1.0, 0.3)
            on = (np.abs(y - 0.3 * x) / np.hypot(1.0, 0.3) < 0.5 * die) & (np.abs(t) < 0.7)
            return (on & ~((np.abs(t - 0.2) < 0.6 * die) | (np.abs(t + 0.3) < 0.6 * die))) | noise

        def blob(x, y):
            return (np.hypot(x - 0.3, y + 0.2) < 0.3) | noise

        length, density, contrast = wafer_features(wafer_geometry(disc_wafer(n, n, scratch)))[run]
        # One run from end to end across the gaps, thin: the strips beside it are clean.
        assert 1.2 < length < 1.6 and density > 0.7 and contrast > 0.5, (n, length, density, contrast)
        _, _, blob_contrast = wafer_features(wafer_geometry(disc_wafer(n, n, blob)))[run]
        assert blob_contrast < 0.3, (n, blob_contrast)
