"""Handcrafted, explainable features of one wafer's fail pattern (notch down, radius 1).

Each feature answers a question a yield engineer asks of a map, and each class of
WM-811K is separated by a few of them:

* zones: fail density by normalised radius (centre .. edge) and in the outermost dies
  (by edge depth, so "the outer ring" is the same dies whatever the outline);
  Center / Donut / Edge-Ring live here;
* sectors: fail density in 8 angular sectors of the edge band and of the middle band,
  sorted (so the features do not depend on where the pattern is): a full ring covers
  every edge sector, an Edge-Loc one or two;
* clusters: the largest 8-connected group of failing dies, raw and after a 3x3
  majority filter (the filter removes random background and thin lines, so comparing
  the two tells a scratch from a blob): its share of the dies, where it is (radius,
  touching the edge), its shape (elongation, width in dies, angular span);
* lines: a Hough transform of the failing dies (16 directions, one-die-wide strips):
  the strongest strip's excess of fails over the wafer's rate (a z-score), how much it
  stands above the strips two dies beside it (a scratch is thin, a blob is not) and
  the length of its failing stretch; and the longest dense run of fails along any
  strip (32 directions, short gaps allowed): its length in radii, density, contrast
  with the strips beside it and share of the fails (a broken or long scratch on a
  noisy wafer, where one strip's z-score says little);
* texture: the overall fail fraction (Near-full, Random) and the spatial
  autocorrelation (how much more often a failing die's neighbours fail than the
  wafer's average: ~0 for Random, high for any clustered pattern).

``FEATURE_NAMES`` fixes the order of the vector; the classifier's weights depend on it.
"""

from __future__ import annotations

import numpy as np

from failmap_assets.kernels.wafer_clusters import fail_clusters, fail_neighbours, line_runs, line_strips
from failmap_assets.patterns.geometry import WaferGeometry

RING_EDGES = (0.0, 0.2, 0.35, 0.5, 0.62, 0.74, 0.85, 0.93, 10.0)
RING_NAMES = tuple(f"ring{i}" for i in range(len(RING_EDGES) - 1))
SECTORS = 8
EDGE_DEPTH = 2          # dies 0..2 from the edge form the edge band
MID_BAND = (0.3, 0.8)   # normalised radius of the middle band

_CLUSTER_STATS = ("share", "share_of_fails", "radius", "min_radius", "max_radius",
                  "touches_edge", "elongation", "width", "length", "span", "fill")

FEATURE_NAMES: tuple[str, ...] = (
    ("fail_fraction", "autocorr", "autocorr_excess", "inner_vs_outer")
    + tuple(f"{r}_density" for r in RING_NAMES)
    + tuple(f"{r}_excess" for r in RING_NAMES)
    + ("edge0_density", "edge1_density", "edge_band_excess")
    + tuple(f"edge_sector{i}" for i in range(SECTORS))
    + ("edge_sector_spread", "edge_coverage")
    + tuple(f"mid_sector{i}" for i in range(SECTORS))
    + ("mid_sector_spread",)
    + tuple(f"raw_{s}" for s in _CLUSTER_STATS)
    + tuple(f"filtered_{s}" for s in _CLUSTER_STATS)
    + ("filtered_fraction", "filtered_clusters", "raw_second_share")
    + ("line_z", "line_contrast", "line_length")
    + ("run_length", "run_density", "run_contrast", "run_share")
)
LINE_ANGLES = 16
RUN_ANGLES = 32         # 5.6 degrees apart: a 1-die strip follows a straight line ~20 dies
RUN_PHASES = np.array([0.0, 0.5])   # strips moved by half a die: see _run_features
RUN_LEVEL = 0.4         # a run's dies fail more often than f + RUN_LEVEL * (1 - f)
N_FEATURES = len(FEATURE_NAMES)


def _density(fail: np.ndarray, index: np.ndarray, bins: int, fallback: float) -> np.ndarray:
    count = np.bincount(index, minlength=bins)[:bins]
    fails = np.bincount(index, weights=fail, minlength=bins)[:bins]
    out = np.full(bins, fallback)
    has = count > 0
    out[has] = fails[has] / count[has]
    return out


def _cluster_stats(geo: WaferGeometry, members: np.ndarray, n_fail: int) -> list[float]:
    """Stats of one cluster given as a boolean mask over the dies."""
    m = int(members.sum())
    if m == 0:
        return [0.0] * len(_CLUSTER_STATS)
    n = geo.x.size
    x, y, rad = geo.x[members], geo.y[members], geo.radius[members]
    if m >= 2:
        cov = np.cov(np.vstack([x, y]))
        lo, hi = np.linalg.eigvalsh(cov)
        lo, hi = max(lo, 0.0), max(hi, 0.0)
    else:
        lo = hi = 0.0
    die = 1.0 / max(geo.radius_dies, 1.0)        # one die in normalised units
    spread_lo = np.sqrt(lo + die * die / 12.0)    # a die has a width of its own
    spread_hi = np.sqrt(hi + die * die / 12.0)
    span_bins = np.unique(((geo.angle[members] + np.pi) / (2 * np.pi) * 16).astype(np.int64) % 16).size
    ellipse = np.pi * 4.0 * spread_lo * spread_hi / np.pi   # area of the 2-sigma ellipse / pi
    return [
        m / n,
        m / max(n_fail, 1),
        float(np.hypot(x.mean(), y.mean())),
        float(rad.min()),
        float(rad.max()),
        float((geo.depth[members] <= 1).mean()),
        float(np.log(spread_hi / spread_lo)),
        float(spread_lo / die),
        float(spread_hi * np.sqrt(12.0)),
        span_bins / 16.0,
        float(min(m / n / max(ellipse, 1e-9), 4.0)),
    ]


def _line_features(geo: WaferGeometry, f: float) -> list[float]:
    """Strongest thin line of fails (Hough over the dies, strips one die wide)."""
    if f <= 0.0 or f >= 1.0:
        return [0.0, 0.0, 0.0]
    die = 1.0 / max(geo.radius_dies, 1.0)
    bins = int(np.ceil(2.0 / die)) + 3
    dies, fails = line_strips(geo.x, geo.y, geo.fail, die, LINE_ANGLES, bins)
    z = (fails - f * dies) / np.sqrt(np.maximum(dies, 1) * f * (1.0 - f))
    z[dies < 5] = 0.0
    a, b = np.unravel_index(int(np.argmax(z)), z.shape)
    # Strips two dies either side; one off the wafer says nothing (an edge blob's
    # outermost strip would look thin against the void beyond it).
    beside = [z[a, j] for j in (b - 2, b + 2) if 0 <= j < bins and dies[a, j] >= 5]
    theta = a * np.pi / LINE_ANGLES
    offset = np.clip((geo.x * np.cos(theta) + geo.y * np.sin(theta) + 1.0) / die, 0, bins - 1).astype(np.int64)
    on = geo.fail & (offset == b)
    t = -np.sin(theta) * geo.x[on] + np.cos(theta) * geo.y[on]
    length = float(np.percentile(t, 90) - np.percentile(t, 10)) if t.size >= 3 else 0.0
    return [float(z[a, b]), float(z[a, b] - max(beside, default=float(z[a, b]))), length]


def _run_features(geo: WaferGeometry, f: float) -> list[float]:
    """The longest dense stretch of fails along any one-die strip (a scratch), whatever
    the grid size: its length in wafer radii, its fail density, how much denser it is
    than the dies two strips beside it over the same stretch (thin line vs blob) and
    its share of the wafer's fails. Short gaps do not break a run (kernels.line_runs)."""
    if f <= 0.0 or f >= 1.0:
        return [0.0, 0.0, 0.0, 0.0]
    die = 1.0 / max(geo.radius_dies, 1.0)
    bins = int(np.ceil(2.0 / die)) + 3
    q = f + RUN_LEVEL * (1.0 - f)
    # Two phases half a die apart: a sloping one-die line whose dies wander across
    # two strips of one phase lies in one strip of the other.
    runs = line_runs(geo.x, geo.y, geo.fail, die, RUN_ANGLES, bins, q, RUN_PHASES)
    p, a, b = np.unravel_index(int(np.argmax(runs[0])), runs[0].shape)
    gain, lo, hi, dies, fails = (r[p] for r in runs)
    phase = RUN_PHASES[p]
    if gain[a, b] <= 0.0:
        return [0.0, 0.0, 0.0, 0.0]
    theta = a * np.pi / RUN_ANGLES
    strip = np.floor((geo.x * np.cos(theta) + geo.y * np.sin(theta) + 1.0) / die + phase)
    t = -np.sin(theta) * geo.x + np.cos(theta) * geo.y
    t0, t1 = min(lo[a, b], hi[a, b]), max(lo[a, b], hi[a, b])
    along = (t >= t0) & (t <= t1)
    # The denser side counts: a thin line is thin on both sides, a blob's or a ring's
    # border is dense on one.
    sides = [geo.fail[along & (strip == b + k)] for k in (-2, 2)]
    beside_density = max((float(s.mean()) for s in sides if s.size >= 3), default=f)
    density = fails[a, b] / dies[a, b]
    return [float(t1 - t0), float(density), float(density - beside_density),
            float(fails[a, b] / max(int(geo.fail.sum()), 1))]


def wafer_features(geo: WaferGeometry) -> np.ndarray:
    """The feature vector (float64, ``N_FEATURES``) of a wafer with at least one die."""
    n = geo.x.size
    fail = geo.fail.astype(np.float64)
    n_fail = int(geo.fail.sum())
    f = n_fail / n
    out: list[float] = []

    # Texture: fail fraction and autocorrelation over the 8 neighbours.
    nb_fail, nb_dies = fail_neighbours(geo.grid)
    nbf = nb_fail[geo.rows, geo.cols][geo.fail].sum()
    nbd = nb_dies[geo.rows, geo.cols][geo.fail].sum()
    autocorr = nbf / nbd if nbd else 0.0
    inner = fail[geo.radius < 0.5].mean() if (geo.radius < 0.5).any() else f
    outer = fail[geo.radius >= 0.5].mean() if (geo.radius >= 0.5).any() else f
    out += [f, autocorr, autocorr - f, inner - outer]

    # Zones by radius.
    ring = np.searchsorted(np.asarray(RING_EDGES), geo.radius, side="right") - 1
    ring = np.clip(ring, 0, len(RING_NAMES) - 1)
    rings = _density(fail, ring, len(RING_NAMES), f)
    out += list(rings) + list(rings - f)

    # Edge band by depth in dies.
    d = np.minimum(geo.depth, 3)
    depth_density = _density(fail, d.astype(np.int64), 4, f)
    band = geo.depth <= EDGE_DEPTH
    rest = fail[~band].mean() if (~band).any() else f
    band_density = fail[band].mean() if band.any() else f
    out += [depth_density[0], depth_density[1], band_density - rest]

    # Sectors of the edge band and of the middle band, sorted high to low.
    sector = ((geo.angle + np.pi) / (2 * np.pi) * SECTORS).astype(np.int64) % SECTORS
    edge_sec = np.sort(_density(fail[band], sector[band], SECTORS, band_density))[::-1]
    out += list(edge_sec - rest) + [edge_sec[0] - edge_sec[-1],
                                    float((edge_sec > rest + 0.5 * (edge_sec[0] - rest)).mean())
                                    if edge_sec[0] > rest + 0.1 else 0.0]
    mid = (geo.radius >= MID_BAND[0]) & (geo.radius < MID_BAND[1])
    mid_sec = np.sort(_density(fail[mid], sector[mid], SECTORS, f))[::-1]
    out += list(mid_sec - f) + [mid_sec[0] - mid_sec[-1]]

    # Clusters: raw 8-connected fails, then after a 3x3 majority filter.
    raw_mask = (geo.grid == 1).astype(np.uint8)
    labels, sizes = fail_clusters(raw_mask)
    die_labels = labels[geo.rows, geo.cols]
    if sizes.size:
        order = np.argsort(-sizes, kind="stable")
        out += _cluster_stats(geo, die_labels == order[0], n_fail)
        second = sizes[order[1]] / n if sizes.size > 1 else 0.0
    else:
        out += [0.0] * len(_CLUSTER_STATS)
        second = 0.0
    # Majority: the die and its 8 neighbours, more than half of the dies there fail.
    majority = ((nb_fail + raw_mask) * 2 > (nb_dies + 1)) & (geo.grid == 1)
    flabels, fsizes = fail_clusters(majority.astype(np.uint8))
    fdie = flabels[geo.rows, geo.cols]
    if fsizes.size:
        out += _cluster_stats(geo, fdie == int(np.argmax(fsizes)), n_fail)
    else:
        out += [0.0] * len(_CLUSTER_STATS)
    out += [float(majority.sum()) / n, float(np.log1p((fsizes >= 3).sum())), second]
    out += _line_features(geo, f)
    out += _run_features(geo, f)
    return np.asarray(out, dtype=np.float64)
