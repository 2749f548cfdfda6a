"""Bin -> colour: one stable colour per ``(bin, pass flag)``, the same on every wafer.

The users' contract (shared/docs/failmap-format.md, "The PNG we write"): the colour of
a bin is the same on every wafer, pass bins greens, fail bins non-green. So a colour is
a pure function of ``(bin, pass flag)``: integer arithmetic, no Python ``hash()``, no
per-wafer choice. The colours come from two fixed tables chosen (greedy farthest-point
over the sRGB gamut, lightness 30..85, the green margin below, at least 100 (RGB L1)
from the notch colour) so that any two entries, pass or fail, and the notch colour are
at least ``MIN_DELTA_E`` apart in CIE76 (Euclidean CIELAB distance):

- Pass bins: ``PASS_COLORS``, greens (green at least 40 above red and blue). Bin 1, the
  usual good-die bin, is ``PASS_COLORS[0]`` (``BIN1_PASS_RGB``); any other pass bin
  ``b`` is ``PASS_COLORS[1 + b % (len(PASS_COLORS) - 1)]`` (12 entries).
- Fail bins: ``FAIL_COLORS``, no green (red or blue at least 40 above green); fail bin
  ``b`` is ``FAIL_COLORS[b % len(FAIL_COLORS)]`` (54 entries).

Guarantee: two bins drawn on one wafer are at least CIE76 dE ``MIN_DELTA_E`` (20)
apart, unless both are fail bins whose numbers are congruent modulo 54, or both are
pass bins other than 1 whose numbers are congruent modulo 12 (those share a colour).
A pass bin and a fail bin always differ, as do bin 1 and any other pass bin. So every
wafer whose fail bins lie within any 54 consecutive numbers (the usual hard-bin and
soft-bin ranges of a test program) and whose other pass bins lie within any 12 has all
its bins distinct. 65,536 bins cannot all be 20 apart: the tables are what the
greedy search found in the sRGB gamut at that spacing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# Bin 1 is the overwhelmingly common pass bin: one fixed colour, the first pass entry.
BIN1_PASS_RGB = (0, 160, 0)
# Notch / flat marker: near black, at least MIN_DELTA_E from every bin colour.
NOTCH_RGB = (32, 32, 32)
# No-die cells: fully transparent. The RGB part is white so a viewer that ignores
# transparency still shows a neutral background.
NO_DIE_RGBA = (255, 255, 255, 0)
#: Least CIE76 distance between any two table entries (and the notch colour).
MIN_DELTA_E = 20.0

PASS_COLORS = (
    "#00a000", "#00e1b4", "#1e693c", "#b4e178", "#00f000", "#a5e100", "#00f078", "#4b7800",
    "#87b487", "#1ea55a", "#87b41e", "#69e13c", "#69e187",
)
FAIL_COLORS = (
    "#0000ff", "#ff0000", "#ff5ac3", "#f0c300", "#00d2ff", "#004bb4", "#ffc3b4", "#873c00",
    "#f000ff", "#d2b4ff", "#d20f4b", "#873c69", "#2d6996", "#870fa5", "#ff871e", "#003ce1",
    "#c3964b", "#ff87a5", "#a578ff", "#00a5ff", "#f0785a", "#a5695a", "#b40f00", "#871e2d",
    "#b40069", "#8700e1", "#8769b4", "#f069ff", "#b4d2ff", "#f096ff", "#ff00d2", "#ff0087",
    "#c387a5", "#b44ba5", "#8796ff", "#ff003c", "#692d87", "#ffb44b", "#ffa5e1", "#ff5a2d",
    "#3c78ff", "#693c1e", "#b46900", "#9696c3", "#5a4b78", "#c30fa5", "#c34b69", "#5aa5d2",
    "#a54bf0", "#b43c2d", "#1e5aa5", "#ffa569", "#ff6978", "#5a4bd2",
)


def _table(colors: tuple[str, ...]) -> np.ndarray:
    return np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in colors], dtype=np.uint8)


_PASS = _table(PASS_COLORS)
_FAIL = _table(FAIL_COLORS)


def _table_index(bins: np.ndarray, passed: np.ndarray) -> np.ndarray:
    """Each bin's entry in its table (see the module docstring for the rule)."""
    # Residues keep consecutive bin numbers on distinct entries, which is what makes
    # the guarantee a plain congruence; bin 1 alone owns pass entry 0.
    other_pass = 1 + bins % (len(_PASS) - 1)
    return np.where(passed, np.where(bins == 1, 0, other_pass), bins % len(_FAIL))


def bin_colors(bins: np.ndarray | Sequence[int], pass_flags: np.ndarray | Sequence[bool]) -> np.ndarray:
    """Colour of each ``(bin, pass)`` pair as a uint8 array of shape (n, 3)."""
    b = np.asarray(bins, dtype=np.int64).reshape(-1)
    ok = np.broadcast_to(np.asarray(pass_flags, dtype=bool).reshape(-1), b.shape)
    index = _table_index(b, ok)
    # Both lookups are in range for every bin: np.where evaluates both tables.
    return np.where(ok[:, None], _PASS[index % len(_PASS)], _FAIL[index % len(_FAIL)])


def bin_rgb(bin_no: int, passed: bool) -> tuple[int, int, int]:
    """Colour of one bin; the same every call, every wafer, every run."""
    r, g, b = bin_colors([bin_no], [passed])[0]
    return int(r), int(g), int(b)


def rgb_hex(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def legend(
    bins: np.ndarray | Sequence[int],
    pass_flags: np.ndarray | Sequence[bool],
    names: Mapping[int, str] | None = None,
    counts: np.ndarray | Sequence[int] | None = None,
) -> list[dict]:
    """The colour key as data: one entry per distinct ``(bin, pass)``, sorted by bin.

    ``bins`` / ``pass_flags`` are aligned (per die or already distinct). Each entry is
    ``{"bin", "pass", "name", "rgb"}`` (``rgb`` as ``#rrggbb``, ``name`` from
    ``names`` or None); when ``counts`` (aligned weights, e.g. dies per bin) is
    given, entries also carry ``"count"``, the summed weight.
    """
    b = np.asarray(bins, dtype=np.int64).reshape(-1)
    ok = np.asarray(pass_flags, dtype=bool).reshape(-1)
    if b.shape != ok.shape:
        raise ValueError("bins and pass_flags must have the same length")
    # One int key per pair: pass pairs sort right after the fail pair of the same bin.
    keys, inverse = np.unique(b * 2 + ok, return_inverse=True)
    ubins, upass = keys // 2, (keys % 2).astype(bool)
    colors = bin_colors(ubins, upass)
    totals = None
    if counts is not None:
        w = np.asarray(counts, dtype=np.int64).reshape(-1)
        if w.shape != b.shape:
            raise ValueError("counts must be aligned with bins")
        totals = np.bincount(inverse.reshape(-1), weights=w, minlength=len(keys)).astype(np.int64)
    names = names or {}
    out = []
    for i, (bin_no, ok_i) in enumerate(zip(ubins.tolist(), upass.tolist())):
        entry = {"bin": bin_no, "pass": ok_i, "name": names.get(bin_no), "rgb": rgb_hex(colors[i])}
        if totals is not None:
            entry["count"] = int(totals[i])
        out.append(entry)
    return out
