"""Numbers and quoted values taken from untrusted map files, checked once here.

Python turns a digit string of any length into an int (or refuses beyond 4300
digits with a ValueError), and numpy then overflows on it; a float may be nan or
inf. Every reader goes through these helpers so such values become a
``Rejected`` naming the construct, never an OverflowError or ValueError.
"""

from __future__ import annotations

import math
import re

from failmap_assets.wafer.rejects import Rejected

INT32 = (-(2**31), 2**31 - 1)
_INTEGER = re.compile(r"[+-]?(\d+)")


def quote(value: object, limit: int = 40) -> str:
    """``repr`` of a file value for a message, shortened: a corrupt file can hold megabytes in one value."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(value))} characters)"


def parse_int(text: str, what: str, *, lo: int = INT32[0], hi: int = INT32[1], reason: str = "bad_value",
              line: int | None = None) -> int:
    """``text`` as an integer in ``lo..hi`` (decimal digits, optional sign)."""
    t = text.strip()
    m = _INTEGER.fullmatch(t)
    if m is not None:
        # Beyond 19 digits every range here is exceeded: no need to convert (slow, or refused past 4300 digits).
        if len(m.group(1)) <= 19 and lo <= int(t) <= hi:
            return int(t)
        raise Rejected(reason, f"{what}: {quote(text)} is outside {lo}..{hi}", line=line)
    raise Rejected(reason, f"{what}: {quote(text)} is not an integer", line=line)


def parse_count(text: str, what: str, *, hi: int = INT32[1], reason: str = "bad_value", line: int | None = None) -> int:
    """A count (0..``hi``, digits only)."""
    if not text.strip().isdigit():
        raise Rejected(reason, f"{what}: {quote(text)} is not a count", line=line)
    return parse_int(text, what, lo=0, hi=hi, reason=reason, line=line)


def finite_float(text: str | None) -> float | None:
    """A finite float, or None (absent, not a number, nan, inf)."""
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
