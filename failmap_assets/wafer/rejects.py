"""Why an input could not be used.

Every layer that reads untrusted bytes (decompression, fail-map text, industry map
formats, STDF) raises ``Rejected``; the assets catch it, record one row per
rejected object in ``failmap_rejects`` and carry on with the rest of the partition.
"""

from __future__ import annotations

from dataclasses import dataclass


class Rejected(Exception):
    """An object (or archive member) that cannot be used, and why.

    ``reason`` is a short stable code users can filter on (``truncated``,
    ``bad_row``, ``value_count``, ``corrupt_archive``, ``bomb``, ...);
    ``detail`` is the human sentence; ``line`` is the 1-based line number in the
    decompressed text where it applies; ``member`` the archive member name.
    """

    def __init__(self, reason: str, detail: str, *, line: int | None = None, member: str | None = None):
        self.reason = reason
        self.detail = detail
        self.line = line
        self.member = member
        where = []
        if member is not None:
            where.append(f"member {member!r}")
        if line is not None:
            where.append(f"line {line}")
        suffix = f" ({', '.join(where)})" if where else ""
        super().__init__(f"{reason}: {detail}{suffix}")


@dataclass
class RejectRow:
    """One row of a rejects table: an object (or archive member) that could not be used."""

    key: str
    etag: str | None
    bucket: str                       # "a", "b" or "stdf"
    reason: str
    detail: str
    line: int | None = None
    member: str | None = None
    # "warning": the object was used, with a caveat (skipped archive members, an empty
    # wafer or one too large for a PNG: JSON only); "error": it could not be used.
    severity: str = "error"
