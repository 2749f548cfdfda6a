"""Tests of maps/ (palette, PNG rendering, JSON coordinates) and their shared builders.

The builders make WaferMap / CompanionMap objects by hand, so these tests do not
depend on the fail-map readers.
"""

from __future__ import annotations

import numpy as np

from failmap_assets.wafer.model import CompanionMap, WaferMap


def make_wafer(x, y, bins, *, flat: str = "D", bin_pass=None, bin_names=None, **meta) -> WaferMap:
    x = np.asarray(x, dtype=np.int32)
    return WaferMap(
        format="failmap",
        x=x,
        y=np.asarray(y, dtype=np.int32),
        bin=np.asarray(bins, dtype=np.int32),
        retest_count=np.zeros(len(x), dtype=np.int16),
        flat=flat,
        bin_pass=dict(bin_pass or {}),
        bin_names=dict(bin_names or {}),
        rows_read=len(x),
        **meta,
    )


def make_companion(x, y, bins, values_text, *, value_names=("V1", "V2", "V3"), stime="20260111_143030",
                   partid="N4A123-07", tester="T5503-07") -> CompanionMap:
    k = len(value_names)
    n = len(x)
    # values / values_na are not used by maps/, but keep them consistent with the text.
    cells = [t.split(",") for t in values_text] if n else []
    na = np.array([[c == "NA" for c in row] for row in cells], dtype=bool).reshape(n, k)
    vals = np.array([[np.nan if c == "NA" else float(c) for c in row] for row in cells], dtype=float).reshape(n, k)
    return CompanionMap(
        x=np.asarray(x, dtype=np.int32),
        y=np.asarray(y, dtype=np.int32),
        bin=np.asarray(bins, dtype=np.int32),
        values=vals,
        values_na=na,
        values_text=list(values_text),
        value_names=list(value_names),
        stime=stime,
        partid=partid,
        tester=tester,
    )


def contract_wafer(flat: str = "D") -> WaferMap:
    """The 4-die bucket-A example of shared/docs/failmap-format.md (rows shuffled)."""
    return make_wafer(
        x=[0, 1, -1, 0],
        y=[1, 0, 0, 0],
        bins=[1, 285, 1, 1],
        flat=flat,
        bin_pass={1: True, 285: False},
        bin_names={1: "PASS", 285: "IDDQ_FAIL"},
        lot="N4A123.1",
        wafer="07",
        product="SCT101A",
        step="CP1",
        tester="T5503-02",
        partid="N4A123-07",
        stime="20260111_143025",
        die_size=(5.12, 6.34),
        origin=(0, 0),
    )


def contract_companion() -> CompanionMap:
    """The 3-die bucket-B example of shared/docs/failmap-format.md."""
    return make_companion(
        x=[-1, 0, 1],
        y=[0, 0, 0],
        bins=[1, 1, 285],
        values_text=["0.812,1.25,1350", "0.807,NA,1342", "0.901,88.1,1101"],
        value_names=("VDD_MIN", "IDDQ_UA", "FMAX_MHZ"),
    )


def round_wafer(radius: int, *, seed: int = 0, flat: str = "D", n_fail_bins: int = 30) -> WaferMap:
    """A round wafer of about pi * radius**2 dies, ~80 % bin 1, the rest random fail bins."""
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    inside = xx**2 + yy**2 <= radius * radius
    rng = np.random.default_rng(seed)
    n = int(inside.sum())
    bins = np.where(rng.random(n) < 0.8, 1, rng.integers(2, 2 + n_fail_bins, n))
    perm = rng.permutation(n)  # readers may hand dies over in any order
    return make_wafer(xx[inside][perm], yy[inside][perm], bins[perm], flat=flat)
