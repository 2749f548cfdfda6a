"""A committed day's outputs, read back in a form two days can be compared in.

``read_day`` reads everything both pipelines' manifests name for one day: every table
(fail-map listings, pairs, die rows, rejects; every STDF table with its Hive folder),
the state tables (units, events, rejects), the manifests' own figures, and every PNG
and JSON in the day's folders. Tables become multisets of rows: row order and file
names are free, and the few columns that are run-specific by design are left out:

* ``first_seen`` of rejects (when a run first saw the problem),
* ``processed_at`` and ``run_id`` of units and rejects,
* ``files`` of units (the names of the part / table files: only their number is kept).

``differences`` lists what differs between two days; ``folder_problems`` what a plain
listing of the day's folders shows beyond (or short of) what the manifests name.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import polars as pl

from failmap_assets.storage.local_store import TEMP_PREFIX

from failmap_assets.stdf.tables import TABLES as STDF_TABLES
from failmap_assets.storage.day_manifest import DayManifest, read_manifest
from failmap_assets.storage.layout import (
    day_prefixes,
    lease_key,
    manifest_key,
    stdf_table_dir,
    table_dir,
    wafer_dirs,
)
from failmap_assets.storage.object_store import ObjectStore

PIPELINES = ("failmap", "stdf")
#: columns left out per table (see the module docstring)
RUN_SPECIFIC = {
    "failmap_rejects": ("first_seen",),
    "stdf_rejects": ("first_seen",),
    "state:units": ("processed_at", "run_id"),
    "state:rejects": ("first_seen", "run_id"),
}
#: manifest fields that are a function of the day (generation, run id, commit time and
#: file names are not)
MANIFEST_FIELDS = ("seen", "open", "next_due", "inputs", "totals")


@dataclass
class Table:
    columns: list[str]
    dtypes: list[str]
    rows: Counter


@dataclass
class DayOutputs:
    tables: dict[str, Table] = field(default_factory=dict)      # "<pipeline>:<table>" -> rows
    manifests: dict[str, dict] = field(default_factory=dict)    # pipeline -> MANIFEST_FIELDS
    png: dict[str, bytes] = field(default_factory=dict)         # file name -> bytes
    json: dict[str, object] = field(default_factory=dict)       # file name -> parsed document

    def figures(self) -> dict[str, int]:
        return {name: sum(t.rows.values()) for name, t in sorted(self.tables.items())}


def _norm(v):
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if isinstance(v, list):
        return tuple(_norm(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _norm(x)) for k, x in v.items()))
    return v


def _table(frames: list[pl.DataFrame], drop: tuple[str, ...] = ()) -> Table:
    df = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    df = df.drop([c for c in drop if c in df.columns])
    if "files" in df.columns:  # units: how many files, never their names
        df = df.with_columns(pl.col("files").list.len().alias("files"))
    cols = sorted(df.columns)
    df = df.select(cols)
    return Table(cols, [str(df.schema[c]) for c in cols], Counter(_norm(list(r)) for r in df.iter_rows()))


def _read(store: ObjectStore, key: str, base: str) -> pl.DataFrame:
    df = pl.read_parquet(io.BytesIO(store.get(key)))
    rel = key[len(base):] if key.startswith(base) else key
    folder = rel.rsplit("/", 1)[0] if "/" in rel else ""
    # the Hive folders below date=... (STDF: product=, test_type=) are part of the rows
    return df.with_columns(pl.lit(folder).alias("_folder")) if folder else df


def manifests(store: ObjectStore, day: date) -> dict[str, DayManifest]:
    out = {}
    for p in PIPELINES:
        m, _ = read_manifest(store, p, day)
        if m is not None:
            out[p] = m
    return out


def read_day(store: ObjectStore, day: date) -> DayOutputs:
    out = DayOutputs()
    for pipeline, m in manifests(store, day).items():
        for table, files in sorted(m.tables.items()):
            base = stdf_table_dir(table, day) if pipeline == "stdf" and table in STDF_TABLES else table_dir(table, day)
            out.tables[f"{pipeline}:{table}"] = _table([_read(store, f, base) for f in files],
                                                       RUN_SPECIFIC.get(table, ()))
        for kind, key in sorted(m.state.items()):
            out.tables[f"{pipeline}:state:{kind}"] = _table([pl.read_parquet(io.BytesIO(store.get(key)))],
                                                            RUN_SPECIFIC.get(f"state:{kind}", ()))
        enc = json.loads(m.encode())
        out.manifests[pipeline] = {k: enc[k] for k in MANIFEST_FIELDS} | {"wafer_files": sorted(m.wafer_files)}
    png_dir, json_dir, aspect_dir = wafer_dirs(day)
    for o in store.list(png_dir):
        out.png[o.key[len(png_dir):]] = store.get(o.key)
    for o in store.list(aspect_dir):
        out.png["true_aspect/" + o.key[len(aspect_dir):]] = store.get(o.key)
    for o in store.list(json_dir):
        out.json[o.key[len(json_dir):]] = json.loads(store.get(o.key))
    return out


def _show(table: Table, rows: Counter, limit: int = 4) -> str:
    lines = []
    for row, n in list(rows.items())[:limit]:
        shown = {c: v for c, v in zip(table.columns, row)}
        lines.append(f"      {n} x {shown}"[:1500])
    return "\n".join(lines)


def differences(got: DayOutputs, want: DayOutputs) -> list[str]:
    """What ``got`` (the day after its history) has that ``want`` (one clean run) has not,
    and the other way round; empty when they are the same day."""
    problems = []
    for name in sorted(set(got.tables) | set(want.tables)):
        g, w = got.tables.get(name), want.tables.get(name)
        if g is None or w is None:
            problems.append(f"{name}: only in the {'clean run' if g is None else 'history'}")
            continue
        if g.columns != w.columns or g.dtypes != w.dtypes:
            problems.append(f"{name}: columns {list(zip(g.columns, g.dtypes))} != {list(zip(w.columns, w.dtypes))}")
            continue
        extra, missing = g.rows - w.rows, w.rows - g.rows
        if extra or missing:
            problems.append(f"{name}: {sum(extra.values())} row(s) only after the history, "
                            f"{sum(missing.values())} only in the clean run\n"
                            f"    history only:\n{_show(g, extra)}\n    clean only:\n{_show(w, missing)}")
    for pipeline in sorted(set(got.manifests) | set(want.manifests)):
        g, w = got.manifests.get(pipeline), want.manifests.get(pipeline)
        if g != w:
            keys = sorted(k for k in set(g or {}) | set(w or {}) if (g or {}).get(k) != (w or {}).get(k))
            problems.append(f"manifest of {pipeline}: {', '.join(keys)} differ: "
                            + "; ".join(f"{k}: {(g or {}).get(k)!r:.400} != {(w or {}).get(k)!r:.400}" for k in keys))
    for kind, g, w in (("PNG", got.png, want.png), ("JSON", got.json, want.json)):
        if set(g) != set(w):
            problems.append(f"{kind} files: only after the history {sorted(set(g) - set(w))}, "
                            f"only in the clean run {sorted(set(w) - set(g))}")
        for name in sorted(set(g) & set(w)):
            if g[name] != w[name]:
                problems.append(f"{kind} {name} differs" + (
                    f": source {g[name].get('source')} != {w[name].get('source')}" if kind == "JSON" else ""))
    return problems


def folder_problems(store: ObjectStore, day: date) -> list[str]:
    """A plain listing of every folder of the day must hold exactly what the manifests
    name: each table folder its committed files, each state folder its state tables (and
    the manifest and lease), the PNG / JSON folders the wafer files with the recorded ETags."""
    problems = []
    named_wafer_files: dict[str, str] = {}
    for pipeline, m in manifests(store, day).items():
        prefixes = day_prefixes(pipeline, day, STDF_TABLES if pipeline == "stdf" else ())
        # the summaries' lot maps are fixed-name files in a folder of their own
        own_files = {k: e for k, e in m.wafer_files.items() if k.startswith(tuple(prefixes))}
        named = {f for fs in m.tables.values() for f in fs} | set(m.state.values()) | set(own_files)
        named |= {manifest_key(pipeline, day), lease_key(pipeline, day)}
        listed = set()
        for prefix in prefixes:
            listed |= {o.key for o in store.list(prefix)}
            stale = sorted(o.key for o in store.list(prefix) if o.key in own_files and own_files[o.key] != o.etag)
            if stale:
                problems.append(f"{pipeline}: files whose ETag is not the one the manifest recorded: {stale}")
        listed.discard(lease_key(pipeline, day))
        named.discard(lease_key(pipeline, day))
        if listed != named:
            problems.append(f"{pipeline}: listed but not in the manifest {sorted(listed - named)}; "
                            f"in the manifest but not listed {sorted(named - listed)}")
        named_wafer_files.update({k: e for k, e in m.wafer_files.items() if k not in own_files})
    listed_wafer = {o.key: o.etag for prefix in wafer_dirs(day) for o in store.list(prefix)}
    if set(listed_wafer) != set(named_wafer_files):
        problems.append(f"wafer files listed but not named {sorted(set(listed_wafer) - set(named_wafer_files))}; "
                        f"named but not listed {sorted(set(named_wafer_files) - set(listed_wafer))}")
    stale = sorted(k for k, e in named_wafer_files.items() if k in listed_wafer and listed_wafer[k] != e)
    if stale:
        problems.append(f"wafer files whose ETag is not the one the manifest recorded: {stale}")
    return problems


def temporaries(root: Path, older_than: datetime | None = None) -> list[str]:
    """temp files (``TEMP_PREFIX``) below a local output folder (those last modified before
    ``older_than``, when given)."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            if name.startswith(TEMP_PREFIX):
                path = Path(folder) / name
                try:
                    mtime = path.stat().st_mtime
                except FileNotFoundError:
                    continue
                if older_than is None or mtime < older_than.timestamp():
                    found.append(str(path.relative_to(root)))
    return sorted(found)


def age_temporaries(root: Path, seconds: float) -> int:
    """Make every ``.tmp-`` file below ``root`` look ``seconds`` older (as if the day's
    next run came that much later); returns how many there were."""
    n = 0
    for rel in temporaries(root):
        path = root / rel
        try:
            st = path.stat()
            os.utime(path, (st.st_atime - seconds, st.st_mtime - seconds))
            n += 1
        except FileNotFoundError:
            pass
    return n
