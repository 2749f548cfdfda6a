"""Where every output lives inside FAILMAP_OUTPUT, and safe names for untrusted text.

    parquet/<table>/date=YYYY-MM-DD/<file>.parquet      tables (Hive-style, queryable as a dataset),
                                                        wafer_summary and lot_summary too
    png/YYYY-MM-DD/<wafer>.png                          one wafer map per wafer (its latest test event)
    png_true_aspect/YYYY-MM-DD/<wafer>.png              the same map, dies as wide and tall as DIE_SIZE says
    json/YYYY-MM-DD/<wafer>.json                        one coordinate file per wafer
    lot_maps/YYYY-MM-DD/<source>/<lot>/<step>.png|.json one stacked fail-rate map per lot and step
    merged_maps/YYYY-MM-DD/<source>/<lot>/<step>/<wafer>.png|.json  each physical wafer's retests merged
    state/<pipeline>/date=YYYY-MM-DD/manifest.json      the day's commit: names exactly the live files
    state/<pipeline>/date=YYYY-MM-DD/lease.json         who is writing the day (one writer at a time)
    state/<pipeline>/date=YYYY-MM-DD/<kind>-<tag>.parquet   processed units, test events, rejects
    patterns/index/<product>/current.json               which version of the product's pattern index serves
    patterns/index/<product>/<version>/                 one version: embeddings, search codes, rows, stats

A file written by a run carries the run's *tag* (``g<generation>-<run id prefix>``)
in its name, so no run ever overwrites a file another commit names; the manifest,
written last, decides which files are the day's. PNG and JSON keep fixed names
(the users' tools open them by wafer) and are each replaced atomically.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date

_SAFE = re.compile(r"[^A-Za-z0-9._-]")

#: Tables of each pipeline: each lives in ``parquet/<table>/date=.../`` and is committed
#: through that pipeline's manifest.
FAILMAP_TABLES = ("bucket_a_objects", "bucket_b_objects", "failmap_pairs", "failmap_dies", "failmap_rejects")
STDF_LISTING_TABLES = ("stdf_objects", "stdf_rejects")
#: The yield engineer's tables, computed from both pipelines' committed days and
#: committed through a manifest of their own (``state/summaries/date=.../``).
SUMMARY_PIPELINE = "summaries"
SUMMARY_TABLES = ("wafer_summary", "lot_summary", "merged_dies", "merged_wafers", "stacked_lot_maps")
#: Yield trends over a window of days ending at a day, from the days' committed
#: wafer_summary, committed through ``state/trends/date=<last day>/``.
TRENDS_PIPELINE = "trends"
TRENDS_TABLES = ("yield_trend", "bin_pareto_trend")
#: Wafer-map pattern signatures of a day's test events, committed through
#: ``state/patterns/date=.../``; the similar wafers and anomaly scores of a day (read
#: from the pattern index) through ``state/pattern_matches/date=.../``.
PATTERNS_PIPELINE = "patterns"
PATTERNS_TABLES = ("wafer_signatures",)
MATCHES_PIPELINE = "pattern_matches"
MATCHES_TABLES = ("similar_wafers", "wafer_anomaly")
#: STDF wafer files end with this; fail-map wafer files never do (see ``wafer_stem``).
STDF_SUFFIX = "-stdf"


def safe_name(text: str, max_len: int = 120, *, force_digest: bool = False) -> str:
    """A file-name-safe rendering of untrusted text (wafer tokens, member names, MIR lots).

    Unsafe characters become ``_``; whenever anything was changed (or the name is too
    long, or starts with ``.``, which would make it hidden, ``.``/``..`` or a store's
    reserved temp-file name such as ``.~tmp-...``), a short digest of the original is
    appended, so two different names never collide on one file and no result is ever
    a reserved name: every result starts with a letter, digit, ``_`` or ``-``.
    """
    cleaned = _SAFE.sub("_", text)
    if not force_digest and cleaned == text and 0 < len(text) <= max_len and not text.startswith("."):
        return text
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{cleaned[: max_len - 11].lstrip('.') or 'x'}-{digest}"


def run_tag(generation: int, run_id: str, nonce: str) -> str:
    """What a run's files carry in their names: the manifest generation it means to
    commit, its run id and a random nonce of the session, so files of different runs
    (a crashed one, or one that lost its lease and is still writing) never collide."""
    run = re.sub(r"[^A-Za-z0-9]", "", run_id)[:8] or "run"
    return f"g{generation:06d}-{run}-{nonce}"


def table_dir(table: str, day: date) -> str:
    return f"parquet/{table}/date={day.isoformat()}/"


def table_file(table: str, day: date, tag: str, stem: str = "rows") -> str:
    """A run's file of a table (listings, pairs, rejects): ``<stem>-<tag>.parquet``."""
    return f"{table_dir(table, day)}{stem}-{tag}.parquet"


def die_part_key(day: date, tag: str, number: int) -> str:
    return f"{table_dir('failmap_dies', day)}part-{tag}-{number:04d}.parquet"


def stdf_table_key(table: str, day: date, product: str | None, test_type: str | None, file_id: str) -> str:
    """One STDF file version's rows of one table, Hive-partitioned by product and test type."""
    return (
        f"parquet/stdf/{table}/date={day.isoformat()}/product={safe_name(product or 'unknown', 80)}/"
        f"test_type={safe_name(test_type or 'unknown', 80)}/{file_id}.parquet"
    )


def stdf_table_dir(table: str, day: date) -> str:
    return f"parquet/stdf/{table}/date={day.isoformat()}/"


def file_id_of(key: str, etag: str = "") -> str:
    """One source object version's id in file names: the same key and etag always give
    the same id, a re-upload (new etag) a new one."""
    text = key if not etag else f"{key}\0{etag}"
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def wafer_stem(token: str, pipeline: str) -> str:
    """The file stem of a wafer's PNG and JSON. Both pipelines write into the same
    ``png/<day>/`` and ``json/<day>/`` folders; an STDF stem always ends with
    ``STDF_SUFFIX`` and a fail-map stem never does, so each pipeline knows its own
    files (``stem_pipeline``) and never touches the other's."""
    if pipeline == "stdf":
        base = token[: -len(STDF_SUFFIX)] if token.endswith(STDF_SUFFIX) else token
        return safe_name(base, 120 - len(STDF_SUFFIX)) + STDF_SUFFIX
    stem = safe_name(token)
    return safe_name(token, force_digest=True) if stem.endswith(STDF_SUFFIX) else stem


def stem_pipeline(stem: str) -> str:
    return "stdf" if stem.endswith(STDF_SUFFIX) else "failmap"


def png_key(day: date, wafer_token: str, pipeline: str = "failmap") -> str:
    return f"png/{day.isoformat()}/{wafer_stem(wafer_token, pipeline)}.png"


def true_aspect_png_key(day: date, wafer_token: str, pipeline: str = "failmap") -> str:
    """The wafer map with the true die aspect ratio, beside the contract PNG (same stem,
    a folder of its own: the contract's ``png/`` folder keeps exactly its files)."""
    return f"png_true_aspect/{day.isoformat()}/{wafer_stem(wafer_token, pipeline)}.png"


def json_key(day: date, wafer_token: str, pipeline: str = "failmap") -> str:
    return f"json/{day.isoformat()}/{wafer_stem(wafer_token, pipeline)}.json"


def lot_map_dir(day: date) -> str:
    return f"lot_maps/{day.isoformat()}/"


def lot_map_key(day: date, source: str, lot: str, step: str | None, ext: str) -> str:
    """A lot map's PNG or JSON: fixed names (users open them by lot), one folder level
    per part, each part through ``safe_name``, so two lot maps never share a file."""
    return f"{lot_map_dir(day)}{safe_name(source)}/{safe_name(lot)}/{safe_name(step or '')}.{ext}"


def merged_map_dir(day: date) -> str:
    return f"merged_maps/{day.isoformat()}/"


def merged_map_key(day: date, source: str, lot: str, step: str | None, wafer: str, ext: str) -> str:
    """A physical wafer's merged map (PNG or JSON), beside the per-insertion ones: fixed
    names, one folder level per part, each part through ``safe_name``."""
    return (f"{merged_map_dir(day)}{safe_name(source)}/{safe_name(lot)}/{safe_name(step or '')}/"
            f"{safe_name(wafer)}.{ext}")


def wafer_dirs(day: date) -> tuple[str, str, str]:
    """The day's folders of wafer files (contract PNG, JSON, true-aspect PNG), shared by
    both pipelines (``stem_pipeline`` tells whose a file is)."""
    return f"png/{day.isoformat()}/", f"json/{day.isoformat()}/", f"png_true_aspect/{day.isoformat()}/"


def state_dir(pipeline: str, day: date) -> str:
    return f"state/{pipeline}/date={day.isoformat()}/"


def manifest_key(pipeline: str, day: date) -> str:
    return f"{state_dir(pipeline, day)}manifest.json"


def lease_key(pipeline: str, day: date) -> str:
    return f"{state_dir(pipeline, day)}lease.json"


def state_file(pipeline: str, day: date, kind: str, tag: str) -> str:
    """A run's state table (units, events, rejects) of the day."""
    return f"{state_dir(pipeline, day)}{kind}-{tag}.parquet"


def pipeline_state_dir(pipeline: str) -> str:
    """The folder holding one ``date=YYYY-MM-DD/`` folder per day the pipeline touched."""
    return f"state/{pipeline}/"


PATTERN_INDEX_ROOT = "patterns/index/"


def pattern_index_dir(product: str) -> str:
    """A product's similarity index: ``current.json`` (which version serves) and one
    folder per version, each written whole before the pointer names it."""
    return f"{PATTERN_INDEX_ROOT}{safe_name(product)}/"


def pattern_index_pointer(product: str) -> str:
    return f"{pattern_index_dir(product)}current.json"


def pattern_index_version_dir(product: str, version: str) -> str:
    return f"{pattern_index_dir(product)}{safe_name(version)}/"


def day_of_state_dir(prefix: str, pipeline: str) -> date | None:
    """The day of a ``state/<pipeline>/date=YYYY-MM-DD/`` folder, None for anything else."""
    head = f"{pipeline_state_dir(pipeline)}date="
    if not (prefix.startswith(head) and prefix.endswith("/")):
        return None
    try:
        day = date.fromisoformat(prefix[len(head):-1])
    except ValueError:
        return None
    return day if state_dir(pipeline, day) == prefix else None


def committed_table_dir(table: str, day: date, stdf_tables: tuple[str, ...] = ()) -> str:
    """The folder every file of ``table`` a day's manifest names must lie in: the STDF
    tables (``stdf_tables``) under ``parquet/stdf/``, every other table under ``parquet/``."""
    return stdf_table_dir(table, day) if table in stdf_tables else table_dir(table, day)


def day_prefixes(pipeline: str, day: date, stdf_tables: tuple[str, ...] = ()) -> list[str]:
    """Every folder whose files the pipeline's manifest of ``day`` accounts for (besides
    the shared PNG / JSON folders): what garbage collection may clean."""
    if pipeline == "failmap":
        tables = [table_dir(t, day) for t in FAILMAP_TABLES]
    elif pipeline == SUMMARY_PIPELINE:
        tables = [table_dir(t, day) for t in SUMMARY_TABLES] + [lot_map_dir(day), merged_map_dir(day)]
    elif pipeline == TRENDS_PIPELINE:
        tables = [table_dir(t, day) for t in TRENDS_TABLES]
    elif pipeline == PATTERNS_PIPELINE:
        tables = [table_dir(t, day) for t in PATTERNS_TABLES]
    elif pipeline == MATCHES_PIPELINE:
        tables = [table_dir(t, day) for t in MATCHES_TABLES]
    else:
        tables = [table_dir(t, day) for t in STDF_LISTING_TABLES] + [stdf_table_dir(t, day) for t in stdf_tables]
    return [state_dir(pipeline, day), *tables]
