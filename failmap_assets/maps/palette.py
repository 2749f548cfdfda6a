"""Stable bin -> colour mapping shared by every wafer map we draw.

A yield engineer compares many wafers side by side, so a bin must have the same
colour on every wafer and in every run. Colours are therefore a pure function of
``(bin, pass flag)`` computed with integer hashing and fixed float maths: no
Python ``hash()`` (randomised per process), no per-wafer assignment order.

- Pass bins are greens (hue 85..155 degrees, green strictly the largest channel);
  bin 1, the usual "good die" bin, is one fixed strong green.
- Fail bins avoid the greens entirely (hue 200..400 degrees, i.e. blues, purples,
  magentas, reds, oranges; green is never the largest channel). Hue steps by the
  golden ratio of the bin number and lightness cycles with ``bin % 3`` so that
  neighbouring bin numbers (285, 286, ...) look clearly different.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# Bin 1 is the overwhelmingly common pass bin: a fixed colour so it never drifts if
# the formula for other bins is tuned.
BIN1_PASS_RGB = (0, 160, 0)
# Notch / flat marker: dark grey, far from every bin colour (those are saturated).
NOTCH_RGB = (32, 32, 32)
# No-die cells: fully transparent. The RGB part is white so a viewer that ignores
# transparency still shows a neutral background.
NO_DIE_RGBA = (255, 255, 255, 0)

# 2**16 / golden ratio, rounded: multiplying by it and keeping the low 16 bits
# (Fibonacci hashing) spreads consecutive integers evenly around the hue circle,
# with exact integer maths so the result is identical on every platform.
_GOLDEN_16 = 40503

_PASS_HUE0, _PASS_HUE_SPAN = 85.0, 70.0
_PASS_LIGHTNESS = np.array([0.30, 0.44, 0.58])
_PASS_SATURATION = 0.75

_FAIL_HUE0, _FAIL_HUE_SPAN = 200.0, 200.0
_FAIL_LIGHTNESS = np.array([0.42, 0.56, 0.70])
_FAIL_SATURATION = 0.85


def _hls_to_rgb(h_deg: np.ndarray, light: np.ndarray, sat: float) -> np.ndarray:
    """Vectorised HLS -> RGB (uint8, shape (n, 3)); hue in degrees."""
    h = np.mod(h_deg, 360.0) / 360.0
    q = np.where(light < 0.5, light * (1.0 + sat), light + sat - light * sat)
    p = 2.0 * light - q

    def channel(t: np.ndarray) -> np.ndarray:
        t = np.mod(t, 1.0)
        return np.select(
            [t < 1 / 6, t < 1 / 2, t < 2 / 3],
            [p + (q - p) * 6.0 * t, q, p + (q - p) * (2 / 3 - t) * 6.0],
            default=p,
        )

    rgb = np.stack([channel(h + 1 / 3), channel(h), channel(h - 1 / 3)], axis=-1)
    return np.floor(rgb * 255.0 + 0.5).clip(0, 255).astype(np.uint8)


def bin_colors(bins: np.ndarray | Sequence[int], pass_flags: np.ndarray | Sequence[bool]) -> np.ndarray:
    """Stable colour of each ``(bin, pass)`` pair as a uint8 array of shape (n, 3)."""
    b = np.asarray(bins, dtype=np.int64).reshape(-1)
    ok = np.broadcast_to(np.asarray(pass_flags, dtype=bool).reshape(-1), b.shape)
    step = ((b * _GOLDEN_16) & 0xFFFF).astype(np.float64) / 65536.0
    level = np.mod(b, 3)
    pass_rgb = _hls_to_rgb(_PASS_HUE0 + step * _PASS_HUE_SPAN, _PASS_LIGHTNESS[level], _PASS_SATURATION)
    fail_rgb = _hls_to_rgb(_FAIL_HUE0 + step * _FAIL_HUE_SPAN, _FAIL_LIGHTNESS[level], _FAIL_SATURATION)
    out = np.where(ok[:, None], pass_rgb, fail_rgb).astype(np.uint8)
    out[ok & (b == 1)] = BIN1_PASS_RGB
    return out


def bin_rgb(bin_no: int, passed: bool) -> tuple[int, int, int]:
    """Stable colour of one bin; the same every call, every wafer, every run."""
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
