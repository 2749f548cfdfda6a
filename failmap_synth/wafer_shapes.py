"""Realistic wafers: product die grids, bin paretos and spatial fail patterns.

A *product* fixes the die size and therefore the grid, so every wafer of a lot (and
every lot of that product) shares the same set of (x, y) dies. What varies per wafer
is which dies fail and why: a random defect background, an edge ring, clusters and
scratches, each with its own typical fail bins, the way real probe maps look.

Everything is vectorised over dies; a wafer of 5,000 dies takes well under a
millisecond, so 1,000 wafers are dominated by text rendering and compression.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field

import numpy as np

from failmap_synth.measurements import VALUE_SPECS
from failmap_synth.rng import PRODUCT, rng_for


@dataclass(frozen=True)
class BinDef:
    number: int
    pf: str  # "P" or "F", as in a BINDEF line
    name: str


PASS_BIN = BinDef(1, "P", "PASS")
PASS_BIN_2 = BinDef(2, "P", "PASS_LOWGRADE")

# The fab's usual fail bins, most frequent first: the pareto order the products
# inherit (a product uses the first three and a subset of the rest).
FAIL_BINS: tuple[BinDef, ...] = (
    BinDef(285, "F", "IDDQ_FAIL"),
    BinDef(12, "F", "OPEN"),
    BinDef(7, "F", "SHORT"),
    BinDef(33, "F", "VDD_MIN"),
    BinDef(41, "F", "FMAX_LOW"),
    BinDef(56, "F", "LEAKAGE_HI"),
    BinDef(90, "F", "SCAN_FAIL"),
    BinDef(101, "F", "MBIST_FAIL"),
    BinDef(3, "F", "CONTINUITY"),
    BinDef(64, "F", "TRIM_FAIL"),
    BinDef(120, "F", "ADC_INL"),
    BinDef(2048, "F", "TEMP_SENSOR"),
    BinDef(4095, "F", "CONTACT_RETRY"),
)

# Bins a scratch produces: mechanical damage opens or shorts metal lines.
SCRATCH_BINS = (12, 7)

_FAMILIES = ("SCT", "PMX", "RFQ", "ADC", "MCU", "LDO", "DRV", "SNS")
_SIDES = {"D": (0.0, 1.0), "U": (0.0, -1.0), "L": (-1.0, 0.0), "R": (1.0, 0.0)}
# Primary flat length (SEMI M1) for wafers that have a flat rather than a notch.
_FLAT_LEN_MM = {150: 57.5, 200: 57.5}


@dataclass(frozen=True)
class Product:
    name: str
    wafer_mm: int
    die_w_mm: float
    die_h_mm: float
    flat: str                # side of the flat/notch in map orientation: U, D, L, R
    edge_mm: float           # edge exclusion: no complete die within it
    half_offset: tuple[bool, bool]  # grid shifted half a die so no die is centred
    corner_origin: bool      # coordinates count from 1 at the top-left, not 0 at the centre
    serpentine: bool         # prober stepping order
    pass_bins: tuple[BinDef, ...]
    fail_bins: tuple[BinDef, ...]  # most frequent first
    values: tuple[str, ...]  # the B station's VALUES columns
    step: str
    target_dies: int

    @property
    def notch(self) -> bool:
        # 300 mm wafers carry a notch; 150/200 mm a flat.
        return self.wafer_mm >= 300

    @property
    def bindefs(self) -> tuple[BinDef, ...]:
        return self.pass_bins + self.fail_bins

    @property
    def fail_weights(self) -> np.ndarray:
        # Pareto: the k-th most frequent fail bin has weight 1/k^1.4.
        w = 1.0 / np.arange(1, len(self.fail_bins) + 1) ** 1.4
        return w / w.sum()


@dataclass(frozen=True, eq=False)
class Grid:
    """Every die of a product, in the prober's stepping order."""

    x: np.ndarray  # int32 die column, grows to the right
    y: np.ndarray  # int32 die row, grows downward
    u: np.ndarray  # die centre / usable radius, to the right (-1..1)
    v: np.ndarray  # die centre / usable radius, downward (-1..1)
    r: np.ndarray  # distance of the die centre from the wafer centre / usable radius
    origin: tuple[int, int]  # coordinates of the reference (centre) die
    die_px: float  # die size relative to the usable radius (for pattern widths)

    @property
    def n(self) -> int:
        return int(self.x.size)


@dataclass(frozen=True, eq=False)
class WaferDies:
    """The rows of one fail map: every die once in test order, then re-test rows."""

    x: np.ndarray
    y: np.ndarray
    bins: np.ndarray
    n_dies: int              # distinct dies (rows before the re-tests)
    retest_of: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # row index each re-test replaces

    @property
    def retests(self) -> int:
        return int(self.retest_of.size)

    def final(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, bin) per distinct die after re-tests (the later row wins)."""
        bins = self.bins[: self.n_dies].copy()
        bins[self.retest_of] = self.bins[self.n_dies:]
        return self.x[: self.n_dies], self.y[: self.n_dies], bins


# --------------------------------------------------------------------------- grids

def _cells(wafer_mm: int, edge_mm: float, w: float, h: float, offset: tuple[bool, bool],
           flat: str, notch: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grid indices (i, j) and centres (mm) of the complete dies on the wafer, row-major."""
    radius = wafer_mm / 2.0 - edge_mm
    nx, ny = int(radius // w) + 2, int(radius // h) + 2
    cx = (np.arange(-nx, nx + 1) + 0.5 * offset[0]) * w
    cy = (np.arange(-ny, ny + 1) + 0.5 * offset[1]) * h
    CX, CY = np.meshgrid(cx, cy)  # rows are y: row-major order for free
    I, J = np.meshgrid(np.arange(-nx, nx + 1), np.arange(-ny, ny + 1))
    # A die counts only if its farthest corner is inside the usable circle.
    keep = (np.abs(CX) + w / 2) ** 2 + (np.abs(CY) + h / 2) ** 2 <= radius**2
    dx, dy = _SIDES[flat]
    if notch:
        # The notch (~1 mm deep) costs the dies within ~2 mm of it beyond the edge exclusion.
        px, py = dx * wafer_mm / 2, dy * wafer_mm / 2
        qx = np.clip(px, CX - w / 2, CX + w / 2)
        qy = np.clip(py, CY - h / 2, CY + h / 2)
        keep &= np.hypot(qx - px, qy - py) > 2.0 + edge_mm
    else:
        half = _FLAT_LEN_MM.get(wafer_mm, 57.5) / 2
        flat_dist = math.sqrt((wafer_mm / 2) ** 2 - half**2) - edge_mm
        reach = CX * dx + CY * dy + (w * abs(dx) + h * abs(dy)) / 2
        keep &= reach <= flat_dist
    return I[keep], J[keep], CX[keep] / radius, CY[keep] / radius


def _round_mm(v: float) -> float:
    # Die sizes as a design team writes them: 10 um steps, 1 um for sub-mm dies.
    return round(v, 3 if v < 1.0 else 2)


def _fit_die(target: int, wafer_mm: int, edge_mm: float, aspect: float,
             offset: tuple[bool, bool], flat: str, notch: bool) -> tuple[float, float]:
    """Die width/height (mm) whose complete-die count is closest to ``target``.

    The count is nearly proportional to 1/area, so a multiplicative fixed-point
    update converges in a handful of steps (edge loss only bends it slightly).
    """
    radius = wafer_mm / 2.0 - edge_mm
    area = math.pi * radius**2 / target
    best: tuple[int, float, float] | None = None
    for _ in range(14):
        w = _round_mm(math.sqrt(area * aspect))
        h = _round_mm(area / w)
        n = _cells(wafer_mm, edge_mm, w, h, offset, flat, notch)[0].size
        if best is None or abs(n - target) < best[0]:
            best = (abs(n - target), w, h)
        if n == target or n == 0:
            break
        area *= n / target
    assert best is not None
    return best[1], best[2]


@functools.lru_cache(maxsize=64)
def product_grid(product: Product) -> Grid:
    """The product's dies in stepping order (cached: all its wafers share it)."""
    i, j, u, v = _cells(product.wafer_mm, product.edge_mm, product.die_w_mm, product.die_h_mm,
                        product.half_offset, product.flat, product.notch)
    if product.serpentine:
        # Odd rows step right-to-left; cells are row-major, so flip those runs.
        rows = j - j.min()
        key = np.where(rows % 2 == 1, -i, i)
        order = np.lexsort((key, j))
        i, j, u, v = i[order], j[order], u[order], v[order]
    ox, oy = 0, 0
    if product.corner_origin:
        ox, oy = 1 - int(i.min()), 1 - int(j.min())
    radius = product.wafer_mm / 2.0 - product.edge_mm
    arrays = [np.ascontiguousarray(a) for a in ((i + ox).astype(np.int32), (j + oy).astype(np.int32), u, v,
                                                np.hypot(u, v))]
    for a in arrays:
        a.setflags(write=False)  # shared by every wafer of the product
    return Grid(*arrays, origin=(ox, oy),
                die_px=max(product.die_w_mm, product.die_h_mm) / radius)


# ------------------------------------------------------------------------ products

def _make_product(k: int, target: int) -> Product:
    # Fixed per catalogue slot (not per user seed): a fab's portfolio is stable.
    rng = rng_for(PRODUCT, k)
    if target >= 15000:
        wafer_mm = 300
    elif target < 1500:
        wafer_mm = int(rng.choice([150, 200]))
    else:
        wafer_mm = int(rng.choice([200, 300], p=[0.4, 0.6]))
    edge_mm = float(rng.choice([2.0, 3.0, 3.5]))
    aspect = float(rng.uniform(0.7, 1.4))
    offset = (bool(rng.random() < 0.5), bool(rng.random() < 0.5))
    flat = str(rng.choice(["D", "U", "L", "R"], p=[0.7, 0.1, 0.1, 0.1]))
    notch = wafer_mm >= 300
    w, h = _fit_die(target, wafer_mm, edge_mm, aspect, offset, flat, notch)
    extra = [b for b in FAIL_BINS[3:] if rng.random() < 0.5]
    fail_bins = FAIL_BINS[:3] + tuple(extra)
    pass_bins = (PASS_BIN, PASS_BIN_2) if rng.random() < 0.3 else (PASS_BIN,)
    names = list(VALUE_SPECS)
    n_values = int(rng.choice([1, 2, 3, 4, 5], p=[0.15, 0.3, 0.3, 0.15, 0.1]))
    values = tuple(names[i] for i in sorted(rng.choice(len(names), n_values, replace=False)))
    step = str(rng.choice(["CP1", "CP2", "CP3", "WS1"], p=[0.6, 0.2, 0.1, 0.1]))
    family = _FAMILIES[k % len(_FAMILIES)]
    name = f"{family}{min(target // 100, 9999):03d}{'ABCDEFGHJKLMNPQR'[k % 16]}"
    return Product(name=name, wafer_mm=wafer_mm, die_w_mm=w, die_h_mm=h, flat=flat, edge_mm=edge_mm,
                   half_offset=offset, corner_origin=bool(rng.random() < 0.4),
                   serpentine=bool(rng.random() < 0.6), pass_bins=pass_bins, fail_bins=fail_bins,
                   values=values, step=step, target_dies=target)


@functools.lru_cache(maxsize=16)
def product_catalog(dies_range: tuple[int, int] = (500, 20000),
                    typical_dies: int = 5000) -> tuple[tuple[Product, float], ...]:
    """The products and their share of lots.

    Twelve products sit at the quantiles of a log-normal die-count distribution
    (median ``typical_dies``), plus two rare ones at the ends of ``dies_range`` so
    the extremes (tiny maps, huge maps) always occur somewhere.
    """
    lo, hi = int(dies_range[0]), int(dies_range[1])
    if not 1 <= lo <= hi:
        raise ValueError(f"dies_range must be 1 <= lo <= hi, got {dies_range}")
    # Aim slightly inside the range: the fitted count lands within ~2 % of the target.
    t_lo, t_hi = min(lo * 1.03, (lo + hi) / 2), max(hi / 1.03, (lo + hi) / 2)
    n_q = 12
    z = np.array([_norm_ppf((k + 0.5) / n_q) for k in range(n_q)])
    targets = np.clip(typical_dies * np.exp(0.7 * z), t_lo, t_hi)
    targets = list(np.rint(targets).astype(int)) + [int(round(t_lo)), int(round(t_hi))]
    weights = [1.0] * n_q + [0.25, 0.25]
    products = []
    for k, (t, wgt) in enumerate(zip(targets, weights)):
        p = _make_product(k, int(t))
        n = product_grid(p).n
        if not lo <= n <= hi:  # the fit lands within ~2 %: only a very narrow range misses
            raise ValueError(f"dies_range {dies_range} too narrow: product {p.name} fits {n} dies")
        products.append((p, wgt))
    return tuple(products)


def _norm_ppf(p: float) -> float:
    """Inverse standard normal CDF (Acklam's rational approximation, |err| < 1e-8)."""
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    if p < 0.02425:
        q = math.sqrt(-2 * math.log(p))
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
               ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    if p > 1 - 0.02425:
        return -_norm_ppf(1 - p)
    q = p - 0.5
    r = q * q
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / \
           (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)


def product_for_dies(dies: int, k: int = 99) -> Product:
    """A product whose grid has close to ``dies`` dies (for STDF files of a given size)."""
    p = _make_product(k, max(1, int(dies)))
    return dataclasses.replace(p, name=f"ST{p.name}")  # never the name of a catalogue product


# -------------------------------------------------------------------------- wafers

def generate_wafer(product: Product, rng: np.random.Generator, *, empty: bool = False) -> WaferDies:
    """Bins for every die of one wafer, with spatial fail patterns and re-tests."""
    g = product_grid(product)
    if empty:
        z = np.empty(0, np.int32)
        return WaferDies(z, z, z.copy(), 0)
    n = g.n
    r = g.r
    fail_nums = np.array([b.number for b in product.fail_bins], np.int32)
    weights = product.fail_weights
    bins = np.full(n, PASS_BIN.number, np.int32)

    # Random defect background; now and then a bad wafer with several times the density.
    p0 = rng.beta(2.0, 35.0) if rng.random() > 0.08 else rng.uniform(0.10, 0.18)
    hit = rng.random(n) < p0
    bins[hit] = rng.choice(fail_nums, size=int(hit.sum()), p=weights)

    # Edge ring: film thickness and etch non-uniformity push edge dies out of spec.
    if rng.random() < 0.55:
        r0 = rng.uniform(0.86, 0.95)
        p_edge = rng.uniform(0.15, 0.55) * np.sqrt(np.clip((r - r0) / (1.0 - r0), 0.0, 1.0))
        hit = rng.random(n) < p_edge
        ring = fail_nums[: min(2, fail_nums.size)]
        bins[hit] = rng.choice(ring, size=int(hit.sum()))

    # Clusters: particles or a bad probe-card touchdown area, a Gaussian blob each.
    for _ in range(int(rng.integers(1, 4)) if rng.random() < 0.35 else 0):
        rad, ang = 0.75 * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        sigma = rng.uniform(0.04, 0.12)
        d2 = (g.u - rad * math.cos(ang)) ** 2 + (g.v - rad * math.sin(ang)) ** 2
        hit = rng.random(n) < rng.uniform(0.5, 0.9) * np.exp(-d2 / (2 * sigma**2))
        bins[hit] = fail_nums[int(rng.integers(0, min(4, fail_nums.size)))]

    # Scratch: a thin straight segment of opens/shorts from wafer handling.
    if rng.random() < 0.15:
        cu, cv = rng.uniform(-0.5, 0.5, 2)
        ang = rng.uniform(0, math.pi)
        half_len = rng.uniform(0.2, 0.6)
        width = g.die_px * rng.uniform(0.6, 1.2)
        du, dv = g.u - cu, g.v - cv
        along = du * math.cos(ang) + dv * math.sin(ang)
        across = -du * math.sin(ang) + dv * math.cos(ang)
        on_line = (np.abs(across) < width) & (np.abs(along) < half_len)
        hit = on_line & (rng.random(n) < 0.85)
        scratch = np.array([b for b in SCRATCH_BINS if b in fail_nums] or [fail_nums[0]], np.int32)
        bins[hit] = rng.choice(scratch, size=int(hit.sum()))

    # Low-grade pass bin, commoner towards the edge where speed drops.
    if len(product.pass_bins) > 1:
        p2 = rng.uniform(0.01, 0.05) * (0.5 + r)
        hit = (bins == PASS_BIN.number) & (rng.random(n) < p2)
        bins[hit] = product.pass_bins[1].number

    x, y = g.x, g.y
    retest_of = np.empty(0, np.int64)
    failing = np.flatnonzero(bins != PASS_BIN.number)
    if failing.size and rng.random() < 0.35:
        # Re-probe a few fails at the end of the wafer; about half recover.
        k = max(1, int(round(failing.size * rng.uniform(0.005, 0.03))))
        retest_of = np.sort(rng.choice(failing, size=min(k, failing.size), replace=False))
        new = np.where(rng.random(retest_of.size) < 0.55, PASS_BIN.number, bins[retest_of])
        x = np.concatenate([x, x[retest_of]])
        y = np.concatenate([y, y[retest_of]])
        bins = np.concatenate([bins, new.astype(np.int32)])
    return WaferDies(x=x, y=y, bins=bins, n_dies=n, retest_of=retest_of)


def choose_product(catalog: tuple[tuple[Product, float], ...], rng: np.random.Generator) -> Product:
    w = np.array([wt for _, wt in catalog])
    return catalog[int(rng.choice(len(catalog), p=w / w.sum()))][0]
