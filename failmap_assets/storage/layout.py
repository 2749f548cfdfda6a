"""Where every output lives inside FAILMAP_OUTPUT, and safe names for untrusted text.

    parquet/<table>/date=YYYY-MM-DD/<file>.parquet   tables (Hive-style, queryable as a dataset)
    png/YYYY-MM-DD/<wafer_token>.png                 one wafer map per wafer
    json/YYYY-MM-DD/<wafer_token>.json               one coordinate file per wafer
    state/<pipeline>/date=YYYY-MM-DD/ledger.parquet  what has been processed, by (key, etag)
"""

from __future__ import annotations

import hashlib
import re
from datetime import date

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(text: str, max_len: int = 120) -> str:
    """A file-name-safe rendering of untrusted text (wafer tokens with archive member names).

    Unsafe characters become ``_``; whenever anything was changed (or the name is
    too long, or is ``.``/``..``), a short digest of the original is appended so two
    different names can never collide on one file.
    """
    cleaned = _SAFE.sub("_", text)
    if cleaned == text and 0 < len(text) <= max_len and text not in (".", ".."):
        return text
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{cleaned[: max_len - 11].strip('.') or 'x'}-{digest}"


def table_dir(table: str, day: date) -> str:
    return f"parquet/{table}/date={day.isoformat()}/"


def listing_key(table: str, day: date) -> str:
    """A listing asset's one file (bucket_a_objects, bucket_b_objects, stdf_objects)."""
    return f"{table_dir(table, day)}objects.parquet"


def pairs_key(day: date) -> str:
    return f"{table_dir('failmap_pairs', day)}pairs.parquet"


def stdf_table_key(table: str, day: date, product: str | None, test_type: str | None, file_id: str) -> str:
    """One STDF file's rows of one table, Hive-partitioned by product and test type."""
    return (
        f"parquet/stdf/{table}/date={day.isoformat()}/product={safe_name(product or 'unknown', 80)}/"
        f"test_type={safe_name(test_type or 'unknown', 80)}/{file_id}.parquet"
    )


def file_id_of(key: str) -> str:
    """Stable per source key, so a re-upload replaces its own files instead of adding new ones."""
    return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def png_key(day: date, wafer_token: str) -> str:
    return f"png/{day.isoformat()}/{safe_name(wafer_token)}.png"


def json_key(day: date, wafer_token: str) -> str:
    return f"json/{day.isoformat()}/{safe_name(wafer_token)}.json"


def ledger_key(pipeline: str, day: date) -> str:
    return f"state/{pipeline}/date={day.isoformat()}/ledger.parquet"


def unit_rejects_key(pipeline: str, day: date) -> str:
    """The rejects the day's processed units reported (the ledger's companion)."""
    return f"state/{pipeline}/date={day.isoformat()}/rejects.parquet"
