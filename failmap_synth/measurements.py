"""Bucket B's measured values per die: plausible distributions that agree with the bins.

A die failing IDDQ shows a high IDDQ reading, a FMAX_LOW die a low FMAX, and dies that
are open or shorted often cannot be measured at all (``NA``). Values also drift
slightly from centre to edge, as real parametric maps do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ValueSpec:
    centre: float
    spread: float              # sd (normal) or log-sd (lognormal)
    lognormal: bool
    decimals: int              # how the B station prints it
    sci: bool = False          # printed as 2.13e-09
    radial: float = 0.0        # relative drift at the wafer edge
    fail_effect: dict[int, float] = field(default_factory=dict)  # bin -> multiplier (lognormal) or shift


VALUE_SPECS: dict[str, ValueSpec] = {
    "VDD_MIN": ValueSpec(0.80, 0.015, False, 3, radial=0.03, fail_effect={33: 0.12}),
    "IDDQ_UA": ValueSpec(1.2, 0.35, True, 2, radial=0.2, fail_effect={285: 60.0, 56: 8.0}),
    "FMAX_MHZ": ValueSpec(1350.0, 25.0, False, 0, radial=-0.04, fail_effect={41: -220.0}),
    "ILEAK_A": ValueSpec(2e-9, 0.5, True, 2, sci=True, radial=0.5, fail_effect={56: 150.0}),
    "VTH_MV": ValueSpec(412.0, 6.0, False, 1, radial=0.02),
    "RDSON_MOHM": ValueSpec(85.0, 3.0, False, 2, radial=0.05, fail_effect={64: 12.0}),
    "TEMP_C": ValueSpec(25.0, 0.4, False, 1),
}

# Dies with these bins have no working contact path: usually nothing to measure.
UNMEASURABLE_BINS = (3, 7, 12)


def measure(names: tuple[str, ...], bins: np.ndarray, r: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """Values (n, k) in ``names`` order; NaN where the station reports NA."""
    n, specs = bins.size, [VALUE_SPECS[name] for name in names]
    spread = np.array([s.spread for s in specs])
    centre = np.array([s.centre for s in specs])
    logn = np.array([s.lognormal for s in specs])
    # float32 draws are twice as fast and ample for 3-4 printed digits.
    z = spread * rng.standard_normal((n, len(specs)), dtype=np.float32)
    # All columns at once: exp only matters for the log-normal ones.
    out = np.where(logn, centre * np.exp(z), centre + z)
    out *= 1.0 + np.array([s.radial for s in specs]) * (r * r)[:, None]
    present = set(np.unique(bins).tolist())
    for j, spec in enumerate(specs):
        for b, effect in spec.fail_effect.items():
            if b in present:
                hit = bins == b
                if spec.lognormal:
                    out[hit, j] *= effect
                else:
                    out[hit, j] += effect
    dead = np.isin(bins, UNMEASURABLE_BINS) & (rng.random(n) < 0.7)
    out[dead, :] = np.nan
    if rng.random() < 0.3:
        # A flaky channel on some wafers: scattered single missing readings.
        out[rng.random(out.shape) < rng.uniform(0.001, 0.02)] = np.nan
    return out
