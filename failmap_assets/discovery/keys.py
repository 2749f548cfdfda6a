"""The object-key grammar of bucket A / bucket B fail-map files.

    <YYYYMMDD>/<token>_<NN><F>_<YYYYMMDD>_<HHMMSS>.<ext>

``token`` is the lot token ``[A-Za-z0-9.-]+``, ``NN`` the wafer slot 01..25, ``F``
one letter (the insertion: P prime, R retest, C correlation; any ASCII letter is
accepted so a new insertion letter is not silently skipped), ``<token>_<NN><F>``
the wafer token, the date/time the moment the file was written (fab-local, naive)
and the leading folder that same date. ``ext`` is only informational: compression
is decided from magic bytes (see ``compression.py``).

Two implementations that must agree on every key (tests check it):

* ``parse_failmap_key`` for one key (sensors, CLI; ``key_time`` and
  ``parse_file_name`` are views of it);
* ``parse_keys`` for a whole listing, as polars expressions (no Python loop per
  key: a million keys in about a second).

A key that does not fit is *skipped*, never an error; ``skip_reason`` says why:

``pattern``       not of the shape above (includes ``../``, spaces, unicode, a
                  wrong or missing extension, a missing folder)
``unsafe_token``  a lot token made only of dots (``.``/``..``): it fits the
                  character class, but downstream layers may use the lot token
                  as a folder name, and the contract says a key must never
                  choose a path outside the output folder
``bad_date``      folder or file date is not a calendar date (``20261341``)
``bad_time``      not a clock time (``256060``; leap second 60 is not accepted)
``date_mismatch`` the folder date differs from the file's date
``bad_slot``      wafer slot outside 01..25

Checks run in that order; the first failing one is the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

import polars as pl

EXTENSIONS = ("Z", "gz", "bz2", "xz", "7z", "zip", "tar", "tar.gz", "tgz", "txt")
SKIP_REASONS = ("pattern", "unsafe_token", "bad_date", "bad_time", "date_mismatch", "bad_slot")
MAX_SLOT = 25

# [0-9] rather than \d: \d also matches other scripts' digits in both Python and
# the Rust regex engine behind polars. Group names are shared by both engines.
_EXT_ALT = "|".join(re.escape(e) for e in EXTENSIONS)
_KEY_PATTERN = (
    r"(?P<folder>[0-9]{8})/(?P<token>[A-Za-z0-9.-]+)_(?P<slot>[0-9]{2})(?P<insertion>[A-Za-z])"
    r"_(?P<fdate>[0-9]{8})_(?P<ftime>[0-9]{6})\.(?P<ext>" + _EXT_ALT + r")"
)
_KEY_RE = re.compile(_KEY_PATTERN)
# Rust regex: without the multi-line flag `$` is the end of the text only (Python's
# `$` would also match before a final newline, hence fullmatch on that side).
_KEY_RE_POLARS = "^" + _KEY_PATTERN + "$"
_DOTS_ONLY = re.compile(r"\.+")


@dataclass(frozen=True)
class FailmapKey:
    key: str
    day: date            # the folder date (== the file's date)
    token: str           # lot token
    slot: int            # 1..25
    insertion: str       # one letter
    wafer_token: str     # "<token>_<NN><F>", the same in A and B for one wafer
    file_time: datetime  # naive, fab-local time
    ext: str


def _classify(key: object) -> tuple[FailmapKey | None, str | None]:
    """(parsed key, None) or (None, skip reason)."""
    if not isinstance(key, str):
        return None, "pattern"
    m = _KEY_RE.fullmatch(key)
    if m is None:
        return None, "pattern"
    token = m["token"]
    if _DOTS_ONLY.fullmatch(token):
        return None, "unsafe_token"
    folder, fdate, ftime = m["folder"], m["fdate"], m["ftime"]
    try:
        day = date(int(folder[:4]), int(folder[4:6]), int(folder[6:]))
        file_day = date(int(fdate[:4]), int(fdate[4:6]), int(fdate[6:]))
    except ValueError:
        return None, "bad_date"
    hh, mm, ss = int(ftime[:2]), int(ftime[2:4]), int(ftime[4:])
    if hh > 23 or mm > 59 or ss > 59:
        return None, "bad_time"
    if folder != fdate:
        return None, "date_mismatch"
    slot = int(m["slot"])
    if not 1 <= slot <= MAX_SLOT:
        return None, "bad_slot"
    parsed = FailmapKey(
        key=key,
        day=day,
        token=token,
        slot=slot,
        insertion=m["insertion"],
        wafer_token=f"{token}_{m['slot']}{m['insertion']}",
        file_time=datetime(file_day.year, file_day.month, file_day.day, hh, mm, ss),
        ext=m["ext"],
    )
    return parsed, None


# ----- day folders: every key of every bucket (fail maps and STDF) sits below one
_DAY_RE = re.compile(r"[0-9]{8}")


def parse_day(text: str) -> date | None:
    """``"20260111"`` -> date; None for anything that is not a real calendar date."""
    if not _DAY_RE.fullmatch(text):
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def parse_day_folder(prefix: str) -> date | None:
    """``"20260111/"`` (a common prefix) -> date, else None."""
    if not prefix.endswith("/"):
        return None
    return parse_day(prefix[:-1])


def day_prefix(day: date) -> str:
    """The folder of a fab day's keys: ``YYYYMMDD/``."""
    return f"{day:%Y%m%d}/"


def key_day(key: str) -> date | None:
    """The day folder of an object key, or None when the key is not under one."""
    folder, sep, _ = key.partition("/")
    return parse_day(folder) if sep else None


def parse_failmap_key(key: str) -> FailmapKey | None:
    """The parsed key, or None when the key is not a fail-map key (never raises)."""
    return _classify(key)[0]


def key_time(key: str) -> datetime | None:
    """When a fail-map file was written (naive fab time), or None for other keys."""
    parsed = _classify(key)[0]
    return parsed.file_time if parsed else None


_NAME_DATE_RE = re.compile(r"_([0-9]{8})_[0-9]{6}\.")


def parse_file_name(name: str) -> FailmapKey | None:
    """A bare file name (no day folder, e.g. a file given to ``failmap render``) read
    with the key grammar, its folder taken from its own date; None when it does not fit."""
    stamp = _NAME_DATE_RE.search(name)
    return parse_failmap_key(f"{stamp.group(1)}/{name}") if stamp else None


def key_skip_reason(key: str) -> str | None:
    """Why ``parse_failmap_key`` returns None for this key (None when it parses)."""
    return _classify(key)[1]


def _valid_ymd(ymd: pl.Expr) -> pl.Expr:
    """Is the integer YYYYMMDD a calendar date? Integer arithmetic only.

    Not strptime: chrono's variable-width %Y/%m parsing is not something a grammar
    should depend on, and plain arithmetic is several times faster than when/then.
    """
    y = ymd // 10000
    m = (ymd // 100) % 100
    d = ymd % 100
    leap = (((y % 4) == 0) & (((y % 100) != 0) | ((y % 400) == 0))).cast(pl.Int32)
    short = ((m == 4) | (m == 6) | (m == 9) | (m == 11)).cast(pl.Int32)
    feb = (m == 2).cast(pl.Int32)
    days = 31 - short - feb * (3 - leap)
    # Year 0 is not a date in Python's calendar: keep both implementations equal.
    return (y >= 1) & (m >= 1) & (m <= 12) & (d >= 1) & (d <= days)


def parse_keys(keys: list[str] | pl.Series) -> pl.DataFrame:
    """Parse a whole listing at once; one row per input key, in input order.

    Columns: key, valid, day, token, slot, insertion, wafer_token, file_time
    (datetime[us], naive), ext, skip_reason. Parsed columns are null where
    ``valid`` is False; ``skip_reason`` is null where it is True.
    """
    series = keys if isinstance(keys, pl.Series) else pl.Series("key", list(keys), dtype=pl.String)
    if series.dtype != pl.String:
        series = series.cast(pl.String)
    df = pl.DataFrame({"key": series.alias("key")})
    # A capture-free regex match is ~5x faster than extract_groups. Once a key
    # matches, every field sits at a fixed offset from the first "_" (the token
    # cannot contain one): _NN F _YYYYMMDD _HHMMSS . ext
    key = pl.col("key")
    df = df.with_columns(
        key.str.contains(_KEY_RE_POLARS).fill_null(False).alias("_match"),
        key.str.find("_", literal=True).alias("_u"),
    )
    u = pl.col("_u")
    df = df.with_columns(
        key.str.slice(0, 8).alias("_folder"),
        key.str.slice(9, u - 9).alias("_token"),
        key.str.slice(u + 1, 2).alias("_slot"),
        key.str.slice(u + 3, 1).alias("_ins"),
        key.str.slice(u + 5, 8).alias("_fdate"),
        key.str.slice(u + 14, 6).alias("_ftime"),
        key.str.slice(u + 21).alias("_ext"),
    )
    df = df.with_columns(
        pl.col("_folder").cast(pl.Int32, strict=False).alias("_fo"),
        pl.col("_fdate").cast(pl.Int32, strict=False).alias("_fd"),
        pl.col("_ftime").cast(pl.Int32, strict=False).alias("_ft"),
        pl.col("_slot").cast(pl.Int32, strict=False).alias("_slot_n"),
    )
    fo, fd, ft, slot = pl.col("_fo"), pl.col("_fd"), pl.col("_ft"), pl.col("_slot_n")
    df = df.with_columns(
        (fd // 10000).alias("_y"),
        ((fd // 100) % 100).alias("_m"),
        (fd % 100).alias("_d"),
        (ft // 10000).alias("_hh"),
        ((ft // 100) % 100).alias("_mi"),
        (ft % 100).alias("_ss"),
    )
    hh, mi, ss = pl.col("_hh"), pl.col("_mi"), pl.col("_ss")
    reason = (
        pl.when(~pl.col("_match"))
        .then(pl.lit("pattern"))
        .when(pl.col("_token").str.contains(r"^\.+$"))
        .then(pl.lit("unsafe_token"))
        .when(~(_valid_ymd(fo) & _valid_ymd(fd)))
        .then(pl.lit("bad_date"))
        .when((hh > 23) | (mi > 59) | (ss > 59))
        .then(pl.lit("bad_time"))
        .when(fo != fd)
        .then(pl.lit("date_mismatch"))
        .when((slot < 1) | (slot > MAX_SLOT))
        .then(pl.lit("bad_slot"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    df = df.with_columns(reason.alias("skip_reason"))
    valid = pl.col("skip_reason").is_null()

    def when_valid(expr: pl.Expr) -> pl.Expr:
        return pl.when(valid).then(expr).otherwise(None)

    # pl.date / pl.datetime reject impossible components, so feed them a harmless
    # placeholder on rows that are going to be nulled anyway.
    safe = [when_valid(pl.col(c)).fill_null(v) for c, v in (("_y", 1970), ("_m", 1), ("_d", 1), ("_hh", 0), ("_mi", 0), ("_ss", 0))]
    return df.select(
        key,
        valid.alias("valid"),
        when_valid(pl.date(*safe[:3])).alias("day"),
        when_valid(pl.col("_token")).alias("token"),
        when_valid(slot).alias("slot"),
        when_valid(pl.col("_ins")).alias("insertion"),
        when_valid(pl.concat_str([pl.col("_token"), pl.lit("_"), pl.col("_slot"), pl.col("_ins")])).alias("wafer_token"),
        when_valid(pl.datetime(*safe, time_unit="us")).alias("file_time"),
        when_valid(pl.col("_ext")).alias("ext"),
        pl.col("skip_reason"),
    )
