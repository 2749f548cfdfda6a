"""TSK / Accretech (Tokyo Seimitsu A-PM-90A, UF series) binary probe maps -> ``WaferMap``.

Layout (all integers big-endian, "Motorola order" in the maker's manual):

* Header, 236 bytes (:data:`HEADER`): operator, device, wafer size, index size
  (0.01 um), flat direction (degrees), map version, columns ("map data area row
  size") and rows ("line size"), wafer id, lot, X/Y coordinate increase
  directions, reference die, start/end times (ASCII ``YYMMDDhhmm``), header
  totals (tested / pass / fail dies, 2 bytes each), address of the die records,
  map-file configuration bits, max sites and categories.
* Map versions 0 and 2..7: one 6-byte record per map position, row by row, in
  the map as the prober displays it (first record = top-left):

  - word 1: test result (bits 15-14: 0 not tested, 1 pass, 2 fail 1, 3 fail 2),
    marking, re-probe result, X coordinate (bits 8-0);
  - word 2: die property (bits 15-14: 0 skip, 1 probing, 2 compulsory marking),
    sign bits of X (bit 11) and Y (bit 10), dummy data, Y coordinate (bits 8-0);
  - word 3: measurement finished, reject chip, test site (bits 13-8), category
    (bits 5-0).

  Then, as the configuration bits say (bit 0 header, 1 die results, 2 line
  categories, 3 extension header, 4 extension die records, 5 extension line
  categories; names as in larvata/tsk-parser and jh-n/MapIO): line-category records
  (bit 2, 8 bytes per entry, at the header's line-category address; located, bounded
  and kept as four unnamed 16-bit words per entry: jh-n/MapIO ``LineCategoryPerDie``
  reads them so and no public source names their fields), the 172-byte
  extension header (bit 3) and 4-byte extension records per position (bit 4) carrying
  categories above 63, wider site numbers and, for versions 5 and 7, correction /
  rearranged die flags. Both are decoded in :mod:`tsk_ext` (layouts and sources
  there). Map version 6 has no public description: its 6-bit categories are used
  when the header allows at most 64 categories, else the file is an
  ``unknown_variant`` reject. Every reject names the construct and its byte offset.
* Map version 1 (250,000 chips): extension header right after the header, then
  2-byte records (test result bits 15-14, category bits 13-8, site bits 5-0), then
  1-byte extension records (re-probing result bits 1-0).

Per-die values the die table has no column for are summarised in ``extra`` as
JSON (see :func:`_per_die_extra`): dies and passing dies per test site, re-probing
results, and the positions of flagged dies.

Categories are stored as category - 1 (the manual: "add 1 for actual category"),
so ``bin`` is the stored value + 1. When a category holds both passing and
failing dies (probers that only record pass/fail leave every category at 0), the
bin is the die test result instead: 1 pass, 2 fail 1, 3 fail 2. The file gives a
verdict for every die, so the configured pass bins are not consulted.

Dies: positions whose property is "probing" and that were tested. Skip positions,
compulsory-marking (ink) positions and untested probing positions are counted in
``extra``. The canonical frame is the record order (column right, row down);
``orig_x`` / ``orig_y`` are the prober's coordinates from the records. Flat
direction is in degrees clockwise from the top of the displayed map: 0 U, 90 R,
180 D, 270 L. Source: the real larvata file (flat 180, its bottom row of dies cut
straight and twice as long as the top one; tests/formats/test_orientation_conventions.py);
the manual is public by title only.
"""

from __future__ import annotations

import json
import struct
from typing import AbstractSet, NamedTuple

import numpy as np

from failmap_assets.formats.tsk_ext import (
    EXT_HEADER_SIZE,
    ext_header_extra,
    extension_die_records,
    read_ext_header,
    version1_reprobe,
)
from failmap_assets.wafer.model import WaferMap
from failmap_assets.wafer.rejects import Rejected

FORMAT = "tsk"

HEADER = struct.Struct(
    ">20s16sHHIIHBBHHI"      # operator, device, wafer size, machine, index x/y, flat, editor, version, cols, rows, form
    "21sB18sHH"              # wafer id, probing count, lot, cassette, slot
    "BBBxiihhBB2xiiii"       # x/y direction, ref procedure, target die x/y, ref die x/y, start pos, direction,
                             # distance x/y to centre, centre die x/y
    "ii12s12s12s12s"         # first die x/y, start, end, load, unload times
    "4s4s4sBxHHH"            # machine no 1/2, special characters, end info, tested, pass, fail
    "IIIHHH2x"               # die data address, line category count/address, config, max sites, max categories
)
assert HEADER.size == 236
_FIELDS = (
    "operator", "device", "wafer_size", "machine_no", "index_x", "index_y", "flat_direction", "editor_type",
    "map_version", "columns", "rows", "data_form", "wafer_id", "probing_count", "lot", "cassette", "slot",
    "x_direction", "y_direction", "ref_procedure", "target_x", "target_y", "ref_die_x", "ref_die_y",
    "probing_start", "probing_direction", "centre_distance_x", "centre_distance_y", "centre_die_x",
    "centre_die_y", "first_die_x", "first_die_y", "start_time", "end_time", "load_time", "unload_time",
    "machine_no_1", "machine_no_2", "special_chars", "end_info", "tested", "passed", "failed",
    "die_address", "line_category_count", "line_category_address", "config", "max_sites", "max_categories",
)
_MAX_POSITIONS = 1 << 24  # far above any wafer; bounds memory for a corrupt header
_TEST_RESULT_NAMES = {1: "pass", 2: "fail 1", 3: "fail 2"}
_REPROBE_NAMES = {1: "passed at re-probing", 2: "failed at re-probing", 3: "perform fail"}
_MAX_LISTED_DIES = 4096  # flagged dies listed by position; above this only counted (extra stays small)


class _Positions(NamedTuple):
    """What the record areas say per map position (record order)."""

    result: np.ndarray             # 0 not tested, 1 pass, 2 fail 1, 3 fail 2
    category: np.ndarray           # stored category (actual - 1)
    probing: np.ndarray            # bool: die property "probing"
    site: np.ndarray | None        # actual test execution site number
    site_source: str
    reprobe: np.ndarray | None     # 0 not re-probed, 1 passed, 2 failed, 3 perform fail
    coords: tuple | None           # the prober's (x, y)
    ext: dict | None               # extension header fields
    flags: dict                    # die flag name -> bool per position


# Byte offsets of the header fields a reject may name.
_AT_VERSION, _AT_AREA, _AT_DIE_ADDRESS, _AT_CONFIG = 51, 52, 216, 228


def read_header(data: bytes) -> dict:
    """The 236-byte header as a dict (strings decoded, trailing blanks/NULs removed)."""
    if len(data) < HEADER.size:
        raise Rejected("truncated", f"TSK header: the file ends at byte offset {len(data)}, inside the 236-byte header")
    values = HEADER.unpack_from(data)
    h = dict(zip(_FIELDS, values))
    for k, v in h.items():
        if isinstance(v, bytes):
            h[k] = v.split(b"\0")[0].decode("latin-1").strip()
    return h


def looks_like_tsk(data: bytes) -> bool:
    """Cheap structural test of the header, used by format detection (no exceptions).

    Only the header is judged: a TSK file with an unknown map version or a record area
    cut short is still TSK, so the reader can reject it naming the construct and its
    byte offset instead of detection calling it an unknown format.
    """
    if len(data) < HEADER.size:
        return False
    try:
        h = read_header(data)
    except Rejected:
        return False
    names = data[:36]
    if any(0 < b < 32 or b == 127 for b in names):  # names: text (any 8-bit charset) or NUL padding
        return False
    if h["flat_direction"] > 359 or not h["columns"] or not h["rows"]:
        return False
    return h["x_direction"] <= 2 and h["y_direction"] <= 2 and h["columns"] * h["rows"] <= _MAX_POSITIONS


def read_tsk(data: bytes, pass_bins: AbstractSet[int] | None = None) -> list[WaferMap]:
    """The wafer of a TSK map file. ``pass_bins`` is unused: TSK gives a verdict per die."""
    h = read_header(data)
    version, cols, rows = h["map_version"], h["columns"], h["rows"]
    if version > 7:
        raise Rejected("unknown_variant", f"TSK header map version {version} at byte offset {_AT_VERSION} is unknown (0..7)")
    if not cols or not rows or cols * rows > _MAX_POSITIONS:
        raise Rejected("bad_header", f"TSK header map area {cols} x {rows} at byte offset {_AT_AREA} is not plausible")
    n = cols * rows
    extra: dict[str, str] = {}
    pos = _version1(data, h, n) if version == 1 else _records(data, h, n, extra)
    if pos.ext is not None:
        ext_header_extra(pos.ext, extra)

    tested = pos.probing & (pos.result > 0)
    row_idx, col_idx = np.divmod(np.flatnonzero(tested), cols)
    res_t, cat_t = pos.result[tested], pos.category[tested]
    bins, verdicts, names = _bins(res_t, cat_t, extra)
    _check_totals(h, pos.ext, res_t, extra)
    _per_die_extra(pos, tested, res_t, col_idx, row_idx, extra)

    extra.update({k: str(v) for k, v in h.items() if k not in ("device", "lot", "wafer_id")})
    extra["positions_not_tested"] = str(int(np.count_nonzero(pos.probing & (pos.result == 0))))
    extra["flat_direction_degrees"] = str(h["flat_direction"])
    orig_x = orig_y = None
    if pos.coords is not None:
        orig_x, orig_y = pos.coords[0][tested], pos.coords[1][tested]
    return [
        WaferMap(
            format=FORMAT,
            x=col_idx.astype(np.int32),
            y=row_idx.astype(np.int32),
            bin=bins.astype(np.int32),
            retest_count=np.zeros(len(bins), dtype=np.int16),
            lot=h["lot"] or None,
            wafer=h["wafer_id"] or None,
            product=h["device"] or None,
            stime=_stime(h["start_time"]),
            flat="URDL"[int(round(h["flat_direction"] / 90.0)) % 4],
            die_size=(h["index_x"] / 1e5, h["index_y"] / 1e5) if h["index_x"] and h["index_y"] else None,
            bin_pass=verdicts,
            bin_names=names,
            extra=extra,
            orig_x=orig_x,
            orig_y=orig_y,
            rows_read=int(len(bins)),
        )
    ]


def _records(data: bytes, h: dict, n: int, extra: dict) -> _Positions:
    """6-byte die records (versions 0, 2..7) plus the optional trailing sections."""
    address = h["die_address"] if h["die_address"] >= HEADER.size else HEADER.size
    end = address + 6 * n
    if len(data) < end:
        raise Rejected("truncated", f"TSK die records: {n} records from byte offset {address} (the address at "
                                    f"header byte offset {_AT_DIE_ADDRESS}) need {end} bytes, the file ends at "
                                    f"byte offset {len(data)}")
    words = np.frombuffer(data, dtype=">u2", count=3 * n, offset=address).reshape(n, 3).astype(np.int64)
    w1, w2, w3 = words[:, 0], words[:, 1], words[:, 2]
    result = w1 >> 14
    prop = w2 >> 14
    x = np.where((w2 >> 11) & 1, -(w1 & 0x1FF), w1 & 0x1FF)
    y = np.where((w2 >> 10) & 1, -(w2 & 0x1FF), w2 & 0x1FF)
    category = w3 & 0x3F
    site, site_source = ((w3 >> 8) & 0x3F) + 1, "die records"   # word 3 bits 13-8: test execution site - 1
    reprobe = (w1 >> 10) & 0b11                                  # word 1 bits 11-10: re-probing result
    extra["positions_skip"] = str(int(np.count_nonzero(prop == 0)))
    extra["positions_marking"] = str(int(np.count_nonzero(prop == 2)))

    config, version = h["config"], h["map_version"]
    offset = end
    if version >= 2 and config & 0b100:  # line category information: 8 bytes per entry
        offset = _line_categories(data, h, n, offset, extra)
    ext = None
    if version >= 2 and config & 0b1000:  # extension header
        ext = read_ext_header(data, offset, f"the configuration bits (byte offset {_AT_CONFIG})")
        extra["extension_header_offset"] = str(offset)
        offset += EXT_HEADER_SIZE
    flags: dict = {}
    if version >= 2 and config & 0b10000:  # extension record per die: categories above 63, wider sites
        category, ext_site, flags = extension_die_records(data, offset, n, h, category, extra)
        if ext_site is not None:
            site, site_source = ext_site, "extension die records"
        offset += 4 * n
    if version >= 2 and config & 0b100000:
        # "Extension line category information" (configuration bit 5, named by
        # larvata/tsk-parser and jh-n/MapIO): it follows everything decoded here and
        # no public source gives its layout.
        extra["extension_line_categories"] = (f"present from byte offset {offset} ({len(data) - offset} bytes to the "
                                              f"file's end), not decoded")
    return _Positions(result, category, prop == 1, site, site_source, reprobe, (x, y), ext, flags)


def _line_categories(data: bytes, h: dict, n: int, offset: int, extra: dict) -> int:
    """Read the line-category area; returns the offset after it.

    Its entries (8 bytes each, ``line_category_count`` of them, one per position when
    the count is 0, as jh-n/MapIO reads them) are four 16-bit words whose fields no
    public source names (MapIO's ``LineCategoryPerDie`` leaves them unnamed). They are
    kept as data, unnamed: ``line_category_words`` lists each entry that is not all
    zero as ``[entry, w1, w2, w3, w4]`` (up to 4,096 entries, else only counted). The
    header's own address is used when it points past the die records.
    """
    start = h["line_category_address"] if h["line_category_address"] >= offset else offset
    count = h["line_category_count"] or n
    end = start + 8 * count
    if count > _MAX_POSITIONS or len(data) < end:
        raise Rejected("truncated", f"TSK line-category area: {count} entries of 8 bytes from byte offset {start} "
                                    f"need {end} bytes, the file ends at byte offset {len(data)}")
    extra["line_category_entries"] = str(count)
    extra["line_category_offset"] = str(start)
    words = np.frombuffer(data, dtype=">u2", count=4 * count, offset=start).reshape(count, 4)
    used = np.flatnonzero(words.any(axis=1))
    if 0 < used.size <= _MAX_LISTED_DIES:
        extra["line_category_words"] = json.dumps([[int(i), *map(int, words[i])] for i in used])
    elif used.size:
        extra["line_category_words"] = f"not listed: {used.size} entries not all zero (more than {_MAX_LISTED_DIES})"
    return end


def _check_totals(h: dict, ext: dict | None, result: np.ndarray, extra: dict) -> None:
    """The file's own tested / pass / fail totals against the die records (kept, not rejected).

    The extension header's 4-byte totals are preferred: the 2-byte header totals wrap at
    65,536 dies. Its fail 1 / fail 2 split is checked too.
    """
    found = (int(len(result)), int(np.count_nonzero(result == 1)), int(np.count_nonzero(result > 1)))
    if ext is not None:
        stated, where = (ext["tested"], ext["passed"], ext["failed"]), "extension header"
        kinds = (int(np.count_nonzero(result == 2)), int(np.count_nonzero(result == 3)))
        if (ext["fail1"], ext["fail2"]) != kinds:
            extra["fail_kind_mismatch"] = (f"extension header fail 1/fail 2 ({ext['fail1']}, {ext['fail2']}), "
                                           f"die records {kinds}")
    else:
        stated, where = (h["tested"], h["passed"], h["failed"]), "header"
        found = tuple(v % 65536 for v in found)
    if stated != found:
        extra["count_mismatch"] = f"{where} tested/pass/fail {stated}, die records {found}"


def _version1(data: bytes, h: dict, n: int) -> _Positions:
    """Map version 1 (250,000 chips): extension header, 2-byte records, 1-byte extension records."""
    start = HEADER.size + EXT_HEADER_SIZE
    if len(data) < start + 2 * n:
        raise Rejected("truncated", f"TSK map version 1 die records: {n} records of 2 bytes from byte offset {start} "
                                    f"need {start + 2 * n} bytes, the file ends at byte offset {len(data)}")
    ext = read_ext_header(data, HEADER.size, "map version 1")
    b = np.frombuffer(data, dtype=np.uint8, count=2 * n, offset=start).reshape(n, 2).astype(np.int64)
    result = b[:, 0] >> 6
    reprobe = version1_reprobe(data, start + 2 * n, n, h["config"])
    # byte 2 bits 5-0: test execution site - 1 (jh-n/MapIO TestResultPerDieV1)
    return _Positions(result, b[:, 0] & 0x3F, result > 0, (b[:, 1] & 0x3F) + 1, "die records", reprobe, None, ext, {})


def _per_die_extra(pos: _Positions, tested: np.ndarray, result: np.ndarray, col: np.ndarray, row: np.ndarray,
                   extra: dict) -> None:
    """Per-die values the model has no column for, summarised as data in ``extra`` (JSON).

    ``test_sites``: per actual site number, tested dies and passing dies. ``reprobe_results``:
    tested dies per re-probing result (only when some die was re-probed). ``<flag>_dies``:
    how many tested dies carry an extension flag (map versions 5 and 7), and
    ``<flag>_positions`` their canonical (x, y) when at most 4096.
    """
    if pos.site is not None and len(result):
        site = pos.site[tested]                        # small non-negative ints (at most 13 bits + 1)
        dies = np.bincount(site)
        passed = np.bincount(site[result == 1], minlength=len(dies))
        extra["test_sites"] = json.dumps({str(int(s)): {"dies": int(dies[s]), "pass": int(passed[s])}
                                          for s in np.flatnonzero(dies)})
        extra["test_site_source"] = pos.site_source
    if pos.reprobe is not None:
        kinds = np.bincount(pos.reprobe[tested], minlength=4)
        if kinds[1:].any():
            extra["reprobe_results"] = json.dumps({_REPROBE_NAMES[k]: int(kinds[k]) for k in (1, 2, 3) if kinds[k]})
    for name, flag in pos.flags.items():
        hit = flag[tested]
        count = int(np.count_nonzero(hit))
        extra[f"{name}_dies"] = str(count)
        if 0 < count <= _MAX_LISTED_DIES:
            extra[f"{name}_positions"] = json.dumps([[int(x), int(y)] for x, y in zip(col[hit], row[hit])])
        elif count:
            extra[f"{name}_positions"] = f"not listed: {count} dies (more than {_MAX_LISTED_DIES})"


def _bins(result: np.ndarray, category: np.ndarray, extra: dict) -> tuple[np.ndarray, dict, dict]:
    cat = category + 1
    passed = result == 1
    mixed = np.intersect1d(np.unique(cat[passed]), np.unique(cat[~passed]))
    if mixed.size == 0:
        extra["bin_source"] = "category"
        verdicts = {int(c): True for c in np.unique(cat[passed])}
        verdicts.update({int(c): False for c in np.unique(cat[~passed])})
        return cat, verdicts, {}
    # The categories do not tell pass from fail: bin by the test result instead.
    extra["bin_source"] = "test_result"
    extra["mixed_categories"] = ",".join(str(int(c)) for c in mixed[:20])
    present = np.unique(result).tolist()
    return result, {r: r == 1 for r in present}, {r: _TEST_RESULT_NAMES[r] for r in present}


def _stime(text: str) -> str | None:
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) < 10:
        return None
    year = int(digits[:2])
    return f"{2000 + year if year < 70 else 1900 + year}{digits[2:6]}_{digits[6:10]}00"
