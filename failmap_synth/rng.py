"""One way to make random generators, so every synthetic byte depends only on the seed.

Each stream is keyed by a tuple of non-negative integers (seed, day, purpose, index,
sub-stream). Deriving a separate stream per wafer and per aspect of it means that
adding or removing one object (``broken=False``, a different STDF count) never shifts
the random numbers any other object sees.
"""

from __future__ import annotations

import numpy as np

# Purpose codes: fixed numbers, never hash() of a string (hash randomisation
# would make the output differ between interpreter runs).
PLAN = 1
WAFER = 2
BROKEN = 3
ORPHAN = 4
STDF = 5
PRODUCT = 6
MULTI = 7

# Sub-streams of one wafer, so e.g. a different text style never changes its bins.
SUB_DIES = 0
SUB_A_TEXT = 1
SUB_B_VALUES = 2
SUB_B_TEXT = 3
SUB_CONTAINER = 4
SUB_BREAK = 5


def rng_for(*keys: int) -> np.random.Generator:
    """A PCG64 generator for the stream named by ``keys`` (all ints >= 0)."""
    for k in keys:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
            raise ValueError(f"rng keys must be non-negative integers, got {k!r}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(k) for k in keys])))
