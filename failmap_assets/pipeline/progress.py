"""Progress lines in the run log: done / total, rate and ETA every few seconds."""

from __future__ import annotations

import threading
import time


class Progress:
    """done / total, rate and ETA in the run log every few seconds."""

    def __init__(self, total: int, every_s: float, log, what: str = "units"):
        self.total, self.every_s, self.log, self.what = total, every_s, log, what
        self.done = 0
        self.start = self.last = time.monotonic()
        self.lock = threading.Lock()

    def tick(self) -> None:
        with self.lock:
            self.done += 1
            now = time.monotonic()
            if now - self.last < self.every_s and self.done != self.total:
                return
            self.last = now
            elapsed = max(now - self.start, 1e-9)
            rate = self.done / elapsed
            eta = (self.total - self.done) / rate if rate else float("inf")
            self.log(f"progress {self.done}/{self.total} {self.what}, {rate:.1f}/s, ETA {eta:.0f} s")
