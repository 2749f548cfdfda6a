"""One way to make random generators, so every synthetic byte depends only on the seed.

Each stream is keyed by a tuple of non-negative integers (seed, day, purpose, index...).
Deriving a separate stream per wafer means adding or removing one object (for example
``broken=False``) never shifts the random numbers any other object sees.
"""

from __future__ import annotations

import numpy as np

# Purpose codes for rng_for(): fixed numbers, never hash() of a string (hash
# randomisation would make the output differ between interpreter runs).
PLAN = 1
WAFER_DIES = 2
WAFER_TEXT = 3
B_VALUES = 4
B_TEXT = 5
BROKEN = 6
ORPHAN = 7
STDF = 8
PRODUCT = 9
MULTI = 10


def rng_for(*keys: int) -> np.random.Generator:
    """A PCG64 generator for the stream named by ``keys`` (all ints >= 0)."""
    for k in keys:
        if not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"rng keys must be non-negative integers, got {k!r}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(k) for k in keys])))
