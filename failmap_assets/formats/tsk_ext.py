"""TSK map extension areas: the 172-byte extension header and the per-die extension records.

Layouts (big-endian; "add 1 for actual" site and category numbers) as jh-n/MapIO
(src/MapIO.TSK, MIT) transcribes the maker's "Map Data File" manual, field by field:

* Extension header (``ExtendedHeaderInformation.cs``): test start / end time at byte
  20 / 32 (12 bytes each, ``YYMMDDhhmm`` + 2 reserved, as in the main header);
  continuous fail count at 44 (2 bytes); tested / pass / fail dice at 52, 56, 60
  (4 bytes each, they do not wrap at 65,536 like the header's); fail 1 / fail 2 dice
  at 64 / 68; tested / pass / fail of normal or multi-pass probing at 72 and of
  direct multi-pass probing at 84 (3 x 4 bytes each); the rest reserved.
* Extension die records, 4 bytes per map position (``ExtendedTestResultPerDieV*.cs``):

  ===========  ==========================  =====================================
  map version  word 1                      word 2
  ===========  ==========================  =====================================
  2, 3         site bits 15-8,             (not used)
               category bits 7-0
  4            site bits 8-0               category bits 9-0
  5            site bits 11-0              correction die bit 15, rearranged die
                                           bit 14, category bits 9-0
  7            site bits 12-0              correction die bit 15, rearranged die
                                           bit 14, category bits 13-0 (0..9998)
  ===========  ==========================  =====================================

  "Correction die": a SOAK TIME / PMI correction was executed on the die;
  "rearranged die": rearranged by the 1/2 index cap. Map version 3 is version 2
  without the extension header (``ExtendedTestResultPerDieV3`` derives from V2; the
  version names are larvata/tsk-parser's). The byte split is also what fangxu6/JSE2Fab's
  converters edit (``TXT转换TSK-数据/TSK-MERGE-SINF/Form1.cs``: version 2 byte 0 "sitenum",
  byte 1 the category; version 4 byte 3).
* Map version 1 (``ExtendedTestResultPerDieV1.cs``): 1 byte per position after the
  2-byte records, re-probing result in bits 1-0.

Map version 6 has no public description (MapIO's accessor raises "unsupported" for
it): its extension records are not decoded, see :func:`extension_die_records`.
"""

from __future__ import annotations

import struct

import numpy as np

from failmap_assets.wafer.rejects import Rejected

EXT_HEADER_SIZE = 172
_AT_CONFIG, _AT_MAX_CATEGORIES = 228, 232
_TIMES = struct.Struct(">12s12sH6x")   # start, end, continuous fail, reserved (offsets 20..52)
_COUNTS = struct.Struct(">11I")        # tested, pass, fail, fail 1, fail 2, 2 x (tested, pass, fail) from 52


def read_ext_header(data: bytes, offset: int, announced_by: str) -> dict:
    """The extension header at ``offset`` as a dict; a ``truncated`` reject when it is not in the file."""
    if offset < 0 or len(data) < offset + EXT_HEADER_SIZE:
        raise Rejected("truncated", f"TSK extension header (172 bytes) announced by {announced_by} is not in the "
                                    f"file: it would start at byte offset {offset}, the file ends at byte offset "
                                    f"{len(data)}")
    start, end, continuous = _TIMES.unpack_from(data, offset + 20)
    counts = _COUNTS.unpack_from(data, offset + 52)
    return {
        "tested": counts[0], "passed": counts[1], "failed": counts[2], "fail1": counts[3], "fail2": counts[4],
        "multipass": counts[5:8], "direct_multipass": counts[8:], "continuous_fail": continuous,
        "start_time": _text(start), "end_time": _text(end),
    }


def ext_header_extra(ext: dict, extra: dict) -> None:
    """The extension header's fields in the wafer's ``extra`` (blank times and all-zero totals left out)."""
    extra.update({"ext_tested": str(ext["tested"]), "ext_passed": str(ext["passed"]), "ext_failed": str(ext["failed"]),
                  "ext_fail1": str(ext["fail1"]), "ext_fail2": str(ext["fail2"]),
                  "ext_continuous_fail": str(ext["continuous_fail"])})
    for key in ("start_time", "end_time"):
        if ext[key]:
            extra[f"ext_{key}"] = ext[key]
    for key in ("multipass", "direct_multipass"):
        if any(ext[key]):
            extra[f"ext_{key}_tested_pass_fail"] = "/".join(str(v) for v in ext[key])


def extension_die_records(data: bytes, offset: int, n: int, h: dict, category: np.ndarray, extra: dict) -> tuple:
    """(category, site or None, flags) from the 4-byte extension record of each of the ``n`` positions.

    ``category`` is the 6-bit category of the main records, kept for map version 6 when
    the header allows at most 64 categories; ``site`` is the actual site number (stored + 1);
    ``flags`` maps a die flag's name to a bool per position.
    """
    version = h["map_version"]
    if len(data) < offset + 4 * n:
        raise Rejected("truncated", f"TSK extension die records: {n} records of 4 bytes from byte offset {offset} "
                                    f"need {offset + 4 * n} bytes, the file ends at byte offset {len(data)}")
    words = np.frombuffer(data, dtype=">u2", count=2 * n, offset=offset).reshape(n, 2).astype(np.int64)
    w1, w2 = words[:, 0], words[:, 1]
    if version in (2, 3):
        return w1 & 0xFF, (w1 >> 8) + 1, {}
    if version == 4:
        return w2 & 0x3FF, (w1 & 0x1FF) + 1, {}
    if version in (5, 7):
        flags = {"correction": (w2 >> 15).astype(bool), "rearranged": ((w2 >> 14) & 1).astype(bool)}
        if version == 5:
            return w2 & 0x3FF, (w1 & 0xFFF) + 1, flags
        return w2 & 0x3FFF, (w1 & 0x1FFF) + 1, flags
    # Version 6: no public description of its extension records (see formats/README.md).
    # The 6-bit categories of the main records are complete when the header says the map
    # uses at most 64 categories; otherwise the file needs a layout we do not know and is
    # refused rather than binned wrongly.
    if 1 <= h["max_categories"] <= 64:
        extra["extension_records"] = (f"map version {version}: not decoded; header max categories "
                                      f"{h['max_categories']} <= 64, so the 6-bit categories are complete")
        return category, None, {}
    raise Rejected("unknown_variant", f"TSK extension die records of map version {version} at byte offset {offset}: "
                                      f"layout unknown, and the header max categories ({h['max_categories']}, byte offset "
                                      f"{_AT_MAX_CATEGORIES}) allow categories above 64")


def version1_reprobe(data: bytes, offset: int, n: int, config: int) -> np.ndarray | None:
    """Map version 1: the re-probing result per position from the 1-byte extension records.

    Read when the configuration announces extension die records (bit 4; then they must
    be there) or the file holds them anyway (jh-n/MapIO reads them in every version-1 file).
    """
    if len(data) < offset + n:
        if config & 0b10000:
            raise Rejected("truncated", f"TSK map version 1 extension die records (announced by the configuration "
                                        f"bits at byte offset {_AT_CONFIG}): {n} records of 1 byte from byte offset "
                                        f"{offset} need {offset + n} bytes, the file ends at byte offset {len(data)}")
        return None
    return np.frombuffer(data, dtype=np.uint8, count=n, offset=offset).astype(np.int64) & 0b11


def _text(raw: bytes) -> str:
    return raw.split(b"\0")[0].decode("latin-1").strip()
