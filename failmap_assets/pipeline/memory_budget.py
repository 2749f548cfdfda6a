"""How many bytes the units in flight may hold: compressed objects and what they inflate to.

Each unit reserves its objects' listed sizes before it is downloaded, and grows its
reservation while it decompresses (``formats.compression.unpack`` charges every
chunk before allocating it). Growing never waits: a unit that finds the budget spent
gives everything back and is set aside (``OverBudget``), to be processed alone once
the others are done; alone, a unit that still does not fit is rejected as
``too_large``. So no object, compressed or not, costs more than the budget, and a
day's memory stays bounded whatever its hostile input (bombs, a 2 GiB text file, a
gzip of zeros), without ever deadlocking two units waiting for each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from failmap_assets.wafer.rejects import Rejected


class OverBudget(Rejected):
    """A unit needs more memory than the budget has left (alone: than the whole budget)."""

    def __init__(self, needed: int, total: int):
        self.needed, self.total = needed, total
        super().__init__(
            "too_large",
            f"needs more than the memory budget of {total >> 20} MiB ({needed >> 20} MiB and counting); "
            "raise FAILMAP_MEMORY_BUDGET_MB to process it",
        )


class MemoryBudget:
    def __init__(self, total_bytes: int) -> None:
        self.total = int(total_bytes)
        self.used = 0
        self._lock = threading.Lock()

    def try_take(self, n: int, *, force: bool = False) -> bool:
        """Take ``n`` bytes if they fit (or always, with ``force``: a unit alone)."""
        with self._lock:
            if not force and self.used + n > self.total:
                return False
            self.used += n
            return True

    def give(self, n: int) -> None:
        with self._lock:
            self.used -= n

    def reservation(self, initial: int) -> Reservation:
        """A unit's reservation of its listed size (the caller has taken it already)."""
        return Reservation(self, initial)


class Reservation:
    """What one unit holds; each stream it inflates charges its running total."""

    def __init__(self, budget: MemoryBudget, held: int) -> None:
        self.budget, self.held = budget, held
        self._streams: dict[str, int] = {}
        self._lock = threading.Lock()

    def charger(self, stream: str) -> Callable[[int], None]:
        def charge(total: int) -> None:
            with self._lock:
                extra = total - self._streams.get(stream, 0)
                if extra <= 0:
                    return
                if not self.budget.try_take(extra):
                    raise OverBudget(self.held + extra, self.budget.total)
                self._streams[stream] = total
                self.held += extra

        return charge

    def release(self) -> None:
        with self._lock:
            self.budget.give(self.held)
            self.held = 0
            self._streams.clear()
