"""Labelled synthetic wafer maps of the 9 WM-811K pattern classes, deterministic from a seed.

Pattern models (normalised wafer coordinates: centre 0, radius 1, y towards the notch),
chosen to look like the real WM-811K maps (../shared/testdata/wm811k: 26..58 dies
across, background fail rates from ~4 % on clean wafers to ~25 % on small noisy ones,
pattern densities 50..100 %):

* wafer: D dies across (20..120, mostly 25..65 like WM-811K), die aspect 0.6..1.6
  (grid cols = rows / aspect), dies whose centre lies within radius 1 (a few wafers
  lose a flat at the bottom or a corner row);
* background: every die fails independently with p_bg (half the wafers clean,
  log-uniform 0.5..8 %; half noisy, 8..28 %; none wafers at most 12 %), a third of
  wafers add a faint radial gradient (edge dies slightly worse), some an uneven smooth
  field, some a few tiny 2..4-die specks;
* outermost dies: on three wafers of four, the dies of the rim (edge depth 0) fail
  more often, by +2..20 % (RIM_EXCESS), whatever the pattern: on 12 of the 15 real dev
  maps the rim dies fail 2..4 times as often as the dies one row in (a none wafer
  14..18 % against 3..5 %), the known yield loss of edge dies; a model that never saw
  it takes such a rim for the start of an Edge-Ring (it put the real Random wafer with
  a worse edge there);
* mixed maps: 30 % of Center, Donut, Loc, Scratch and Random wafers also carry a short
  shallow edge fragment (10..60 degrees, 0.04..0.14 deep), a quarter of none wafers a
  thin one (5..25 degrees, the outermost die), as real wafers do beside their main pattern;
* Center: a disc at the centre (offset ~0.07), radius 0.1..0.55, density 0.4..1,
  soft border;
* Donut: an annulus around the centre, inner radius 0.12..0.45, width 0.12..0.45,
  density 0.55..1, half of them partial (55..95 % of the circle);
* Edge-Ring: the outermost 1..4 dies (or radius > 0.8..0.93), density 0.55..1, over
  60..100 % of the circumference;
* Edge-Loc: a cluster touching the edge: an angular span of 15..140 degrees reaching
  0.12..0.4 of the radius inwards (or a blob centred on the edge), density 0.55..1;
* Loc: a blob (ellipse, elongation <= 2.5) centred at radius 0.25..0.85, off the edge,
  size 0.08..0.25 of the radius, density 0.55..1;
* Near-full: 80..100 % of the dies fail, sometimes a few passing patches;
* Random: 25..75 % of the dies fail, independently, half of them unevenly (a smooth
  field), half denser towards the edge (+5..30 % at the rim, rising smoothly from
  radius 0.55: real Random maps are often worse at the edge without forming a ring,
  and a model that never saw that calls them Edge-Ring);
* Scratch: a thin line, arc or wandering polyline (1 die wide, 30 % up to 2; length
  0.4..2 radii, any direction; 40 % start at the rim and run inwards, the others are
  centred within 0.75 of the wafer centre and lose what runs off it; half of them
  broken into segments), density 0.55..1; a quarter carry a second, shorter scratch
  (0.25..0.9 radii), a tenth a third: real WM-811K scratches are long, reach the edge,
  curve, break and come in several strokes (the dev maps' two scratches both run to
  the rim);
* none: background only.

``pattern_wafer(label, seed, index)`` makes one wafer; ``pattern_set(n_per_class, seed)``
a balanced list. The same (label, seed, index) always gives the same grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from failmap_synth.rng import rng_for

CLASSES = ("Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Near-full", "Random", "Scratch", "none")
PATTERNS = 8   # rng purpose code of this module (rng.py lists 1..7)
RIM_SHARE = 0.75          # share of wafers whose outermost dies fail more often
RIM_EXCESS = (0.02, 0.2)  # their extra fail probability (uniform)


@dataclass(frozen=True)
class PatternWafer:
    label: str
    grid: np.ndarray    # int8 (rows, cols): -1 no die, 0 pass, 1 fail; notch down
    die_aspect: float   # die width / die height


def _shape(rng: np.random.Generator):
    # Dies across: most WM-811K wafers are 25..65 across; some go to 120, a few down to 20.
    if rng.random() < 0.75:
        across = int(rng.integers(22, 66))
    else:
        across = int(rng.integers(20, 121))
    aspect = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6)))) if rng.random() < 0.6 else 1.0
    rows = across
    cols = max(4, int(round(across / aspect)))
    aspect = rows / cols   # exactly round
    r = (np.arange(rows) + 0.5 - rows / 2) / (rows / 2)
    c = (np.arange(cols) + 0.5 - cols / 2) / (cols / 2)
    y, x = np.meshgrid(r, c, indexing="ij")
    rad = np.hypot(x, y)
    valid = rad <= 1.0
    if rng.random() < 0.2:     # a flat near the notch
        valid &= y < rng.uniform(0.9, 0.98)
    return valid, x, y, rad, aspect


def _soft(dist: np.ndarray, edge: float, rng: np.random.Generator) -> np.ndarray:
    """1 inside (dist < 0), falling to 0 over ``edge`` outside."""
    return np.clip(1.0 - dist / max(edge, 1e-6), 0.0, 1.0) if edge > 0 else (dist <= 0).astype(float)


def _pattern(label: str, rng: np.random.Generator, x, y, rad, depth_dies, die):
    ang = np.arctan2(y, x)
    dens = rng.uniform(0.55, 1.0)
    soft = rng.uniform(0.0, 0.15)
    if label == "Center":
        cx, cy = rng.normal(0, 0.07, 2)
        r0 = rng.uniform(0.1, 0.55)
        dens = rng.uniform(0.4, 1.0)
        d = np.hypot(x - cx, y - cy) - r0
        return dens * _soft(d, soft, rng)
    if label == "Donut":
        r_in = rng.uniform(0.12, 0.45)
        width = rng.uniform(0.12, 0.45)
        r_out = min(r_in + width, 0.85)
        d = np.maximum(r_in - rad, rad - r_out)
        p = dens * _soft(d, soft, rng)
        if rng.random() < 0.5:
            p = p * _arc(ang, rng.uniform(0.55, 0.95) * 2 * np.pi, rng)
        return p
    if label == "Edge-Ring":
        if rng.random() < 0.5:
            width_dies = int(rng.integers(1, 5))
            p = dens * (depth_dies < width_dies)
        else:
            p = dens * _soft(rng.uniform(0.8, 0.93) - rad, soft * 0.5, rng)
        if rng.random() < 0.5:
            p = p * _arc(ang, rng.uniform(0.6, 1.0) * 2 * np.pi, rng)
        return p
    if label == "Edge-Loc":
        centre = rng.uniform(-np.pi, np.pi)
        if rng.random() < 0.6:
            span = np.radians(rng.uniform(15, 140))
            reach = rng.uniform(0.12, 0.4)
            da = np.abs((ang - centre + np.pi) % (2 * np.pi) - np.pi)
            # Deeper in the middle of the span than at its ends.
            inner = 1.0 - reach * np.clip(1.0 - (da / (span / 2)) ** 2, 0, 1)
            d = np.maximum(inner - rad, (da - span / 2) * rad)
            return dens * _soft(d, soft, rng)
        r0 = rng.uniform(0.12, 0.35)
        cr = rng.uniform(0.85, 1.0)
        d = np.hypot(x - cr * np.cos(centre), y - cr * np.sin(centre)) - r0
        return dens * _soft(d, soft, rng)
    if label == "Loc":
        size = rng.uniform(0.08, 0.25)
        # Off the centre (a blob on the centre is Center) and off the edge (Edge-Loc).
        cr = rng.uniform(0.25, max(0.3, 0.88 - size * 1.3))
        ca = rng.uniform(-np.pi, np.pi)
        cx, cy = cr * np.cos(ca), cr * np.sin(ca)
        elong = rng.uniform(1.0, 2.5)
        t = rng.uniform(0, np.pi)
        u = (x - cx) * np.cos(t) + (y - cy) * np.sin(t)
        v = -(x - cx) * np.sin(t) + (y - cy) * np.cos(t)
        d = np.hypot(u / elong, v) - size / np.sqrt(elong)
        p = dens * _soft(d, soft, rng)
        # A Loc blob stays off the outermost dies.
        return p * (depth_dies >= 1)
    if label == "Near-full":
        p = np.full(x.shape, rng.uniform(0.8, 1.0))
        if rng.random() < 0.3:
            cx, cy = rng.uniform(-0.7, 0.7, 2)
            p = p * (np.hypot(x - cx, y - cy) > rng.uniform(0.05, 0.25))
        return p
    if label == "Random":
        p = np.full(x.shape, rng.uniform(0.25, 0.75))
        if rng.random() < 0.5:   # uneven: a smooth field and/or a worse edge
            p = np.clip(p * (1 + _smooth_field(x, y, rng, 0.35)), 0, 1)
        if rng.random() < 0.5:   # denser towards the edge, rising smoothly (not a ring)
            p = np.clip(p + rng.uniform(0.05, 0.3) * np.clip((rad - 0.55) / 0.45, 0, 1) ** 2, 0, 1)
        return p
    if label == "Scratch":
        return dens * _scratch(x, y, die, rng)
    return np.zeros(x.shape)   # none


_WITH_EDGE_FRAGMENT = ("Center", "Donut", "Loc", "Scratch", "Random")


def _edge_fragment(x, y, rad, rng, span, reach, dens):
    """Fails along a short stretch of the edge: ``span`` degrees, ``reach`` radii deep."""
    centre = rng.uniform(-np.pi, np.pi)
    half = np.radians(rng.uniform(*span)) / 2
    da = np.abs((np.arctan2(y, x) - centre + np.pi) % (2 * np.pi) - np.pi)
    return rng.uniform(*dens) * ((da <= half) & (rad >= 1.0 - rng.uniform(*reach)))


def _smooth_field(x, y, rng, amplitude):
    """A smooth random field in [-amplitude, amplitude]: a few low-frequency waves."""
    f = np.zeros(x.shape)
    for _ in range(3):
        kx, ky = rng.normal(0, 1.5, 2)
        f += np.cos(kx * x + ky * y + rng.uniform(0, 2 * np.pi))
    return amplitude * f / 3.0


def _arc(ang: np.ndarray, span: float, rng: np.random.Generator) -> np.ndarray:
    centre = rng.uniform(-np.pi, np.pi)
    da = np.abs((ang - centre + np.pi) % (2 * np.pi) - np.pi)
    return (da <= span / 2).astype(float)


def _scratch(x, y, die, rng):
    """One to three scratches: polylines (straight, curved or wandering), 1..2 dies wide,
    often broken, often running to the edge; a second, shorter one sometimes beside."""
    out = _scratch_line(x, y, die, rng, rng.uniform(0.4, 2.0))
    for _ in range(int(rng.random() < 0.25) + int(rng.random() < 0.1)):
        out = np.maximum(out, _scratch_line(x, y, die, rng, rng.uniform(0.25, 0.9)))
    return out


def _scratch_line(x, y, die, rng, length):
    heading = rng.uniform(-np.pi, np.pi)
    bend = rng.uniform(-1.5, 1.5) if rng.random() < 0.5 else 0.0
    wander = rng.uniform(0.0, 0.12) if rng.random() < 0.5 else 0.0   # radians per step
    steps = 24
    if rng.random() < 0.4:
        # From the edge inwards (real scratches often start or end at the rim).
        a = rng.uniform(-np.pi, np.pi)
        start = 0.98 * np.array([np.cos(a), np.sin(a)])
        heading = a + np.pi + rng.uniform(-1.0, 1.0)
    else:
        # Centred on a point inside the wafer; what runs off it is lost.
        r_mid, a_mid = 0.75 * np.sqrt(rng.random()), rng.uniform(-np.pi, np.pi)
        start = np.array([r_mid * np.cos(a_mid), r_mid * np.sin(a_mid)]) \
            - length / 2 * np.array([np.cos(heading + bend / 2), np.sin(heading + bend / 2)])
    turns = bend / steps + wander * rng.standard_normal(steps)
    pts = [start]
    seg = length / steps
    for i in range(steps):
        heading += turns[i]
        pts.append(pts[-1] + seg * np.array([np.cos(heading), np.sin(heading)]))
    pts = np.array(pts)
    keep = np.ones(steps, bool)
    if rng.random() < 0.5:   # broken line: drop a few segments
        keep[rng.integers(0, steps, int(rng.integers(1, 7)))] = False
    width = die * (rng.uniform(0.5, 0.8) if rng.random() < 0.7 else rng.uniform(0.8, 1.1))
    dist = np.full(x.shape, np.inf)
    for i in range(steps):
        if not keep[i]:
            continue
        a, b = pts[i], pts[i + 1]
        ab = b - a
        t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1]) / max(ab @ ab, 1e-12), 0, 1)
        dist = np.minimum(dist, np.hypot(x - a[0] - t * ab[0], y - a[1] - t * ab[1]))
    return (dist <= width).astype(float)


def _depth_dies(valid: np.ndarray) -> np.ndarray:
    """Dies between each die and the wafer edge (chessboard), by repeated 3x3 erosion
    (a 1x3 then a 3x1 erosion; the grid's border counts as outside)."""
    depth = np.full(valid.shape, -1, dtype=np.int64)
    cur = valid.copy()
    d = 0
    while cur.any():
        rows = cur.copy()
        rows[:, 1:] &= cur[:, :-1]
        rows[:, :-1] &= cur[:, 1:]
        rows[:, 0] = rows[:, -1] = False
        inner = rows.copy()
        inner[1:, :] &= rows[:-1, :]
        inner[:-1, :] &= rows[1:, :]
        inner[0, :] = inner[-1, :] = False
        depth[cur & ~inner] = d
        cur = inner
        d += 1
    return depth


def pattern_wafer(label: str, seed: int, index: int) -> PatternWafer:
    if label not in CLASSES:
        raise ValueError(f"unknown pattern class {label!r}")
    rng = rng_for(seed, PATTERNS, CLASSES.index(label), index)
    valid, x, y, rad, aspect = _shape(rng)
    depth = _depth_dies(valid)
    die = 2.0 / valid.shape[0]
    # Background: log-uniform fail rate, sometimes worse towards the edge.
    # Half the wafers are clean (0.5..8 %), half noisy (8..28 %, like the small WM-811K
    # wafers); a wafer labelled none is never noisier than 12 %.
    if label == "none":
        p_bg = float(np.exp(rng.uniform(np.log(0.005), np.log(0.12))))
    elif rng.random() < 0.5:
        p_bg = float(np.exp(rng.uniform(np.log(0.005), np.log(0.08))))
    else:
        p_bg = float(rng.uniform(0.08, 0.28))
    bg = np.full(x.shape, p_bg)
    if rng.random() < 0.33:
        bg = np.clip(bg * (1 + rng.uniform(0.2, 1.0) * rad ** 4), 0, 1)
    if rng.random() < 0.3:
        bg = np.clip(bg * (1 + _smooth_field(x, y, rng, 0.6)), 0, 1)
    p = _pattern(label, rng, x, y, rad, depth, die)
    # Mixed maps: real wafers of every class carry some fails at the edge beside their
    # pattern (a short, shallow fragment); a none wafer only a faint one.
    if label in _WITH_EDGE_FRAGMENT and rng.random() < 0.3:
        p = np.maximum(p, _edge_fragment(x, y, rad, rng, span=(10, 60), reach=(0.04, 0.14), dens=(0.4, 0.9)))
    elif label == "none" and rng.random() < 0.25:
        p = np.maximum(p, _edge_fragment(x, y, rad, rng, span=(5, 25), reach=(0.02, 0.06), dens=(0.3, 0.8)))
    # Partial patterns: a pattern can be weaker than its model says.
    prob = 1.0 - (1.0 - bg) * (1.0 - np.clip(p, 0, 1))
    fail = rng.random(x.shape) < prob
    if label not in ("Near-full", "Random") and rng.random() < 0.3:
        # A few tiny specks (2..4 dies), as on real clean wafers.
        for _ in range(int(rng.integers(1, 4))):
            r0, c0 = rng.integers(0, valid.shape[0]), rng.integers(0, valid.shape[1])
            fail[r0:r0 + int(rng.integers(1, 3)), c0:c0 + int(rng.integers(1, 3))] = True
    # The outermost dies: on real wafers (the WM-811K dev maps of every class) the dies of
    # the rim fail 2..4 times as often as the dies one row in, whatever the pattern; drawn
    # last, so the rest of the map is the one the same seed made before.
    if rng.random() < RIM_SHARE:
        rim = (depth == 0) & (rng.random(x.shape) < rng.uniform(*RIM_EXCESS))
        fail |= rim
    grid = np.where(valid, fail.astype(np.int8), np.int8(-1)).astype(np.int8)
    return PatternWafer(label, grid, float(aspect))


def pattern_set(n_per_class: int, seed: int, classes: tuple[str, ...] = CLASSES) -> list[PatternWafer]:
    return [pattern_wafer(label, seed, i) for i in range(n_per_class) for label in classes]

