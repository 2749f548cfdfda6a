"""One A object (with its B partner, if any) -> die rows, PNG and JSON per wafer, rejects.

Pure: bytes in, bytes and Arrow tables out; no storage and no Dagster. The day runner
(``failmap_assets.pipeline.failmap_day``) calls this on worker threads: decompression, the
Numba parsing kernels (``nogil``) and PNG encoding release the GIL, so several units
make progress at once.

Each wafer gets its die rows and its JSON. It gets no PNG, and a ``warning`` reject
naming the key, when ``render.no_png`` says so: an empty wafer (``DIES 0``, which the
contract tolerates; reason ``empty_wafer``, the JSON has empty ``chips`` and
``png.written`` false) or dies too far apart for any PNG (``png_too_large``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from failmap_assets.formats.compression import Member, unpack
from failmap_assets.wafer.model import DIE_ROWS_SCHEMA, CompanionMap, WaferMap, match_dies
from failmap_assets.formats.detect import detect_map_format, read_wafer_maps
from failmap_assets.formats.failmap_text import parse_failmap_b, sniff_failmap
from failmap_assets.maps.coordinates import wafer_json
from failmap_assets.maps.render import no_png, render_thumbnail_png, render_true_aspect_png, render_wafer_png
from failmap_assets.pipeline.memory_budget import OverBudget, Reservation
from failmap_assets.wafer.rejects import Rejected, RejectRow


@dataclass(frozen=True)
class Unit:
    """The work for one A object: its identity and, when paired, its B partner's."""

    a_key: str
    a_etag: str
    wafer_token: str
    b_key: str | None = None
    b_etag: str | None = None
    # Set for objects whose key does not fit the fail-map grammar (why, e.g. "pattern"):
    # used only if the content is an industry map format (G85, E142, TSK, KLARF, ASCII).
    key_skip_reason: str | None = None
    # Whether this unit is its wafers' latest test event (wafer/events.py): its die rows
    # say so, and only the latest event's PNG and JSON are drawn.
    latest: bool = True


@dataclass(frozen=True)
class ProcessingOptions:
    pixels_per_die: int = 4
    max_bytes: int = 1 << 30          # decompression bomb guard: decompressed size
    max_ratio: float = 1000.0         # ... and compression ratio
    thumbnail: bool = False           # small PNG for the materialization preview
    pass_bins: frozenset[int] | None = None


@dataclass
class WaferOutput:
    wafer_token: str
    png: bytes | None                 # None: not drawn (not the latest event), or no PNG (``drawable``)
    json: bytes | None                # None: not drawn
    die_count: int
    pass_count: int
    b_only_dies: int
    retests: int
    bins: dict[int, int]
    thumbnail: bytes | None = None
    wafer: WaferMap | None = None     # the map itself (format, lot, product ... of the event)
    with_b: bool = False
    drawable: bool = True             # False: no PNG, JSON only (an empty wafer, or dies too far apart)
    aspect_png: bytes | None = None   # the map with the true die aspect ratio, whenever ``png`` is drawn


@dataclass
class UnitResult:
    unit: Unit
    dies: pa.Table | None = None
    wafers: list[WaferOutput] = field(default_factory=list)
    rejects: list[RejectRow] = field(default_factory=list)
    b_used: bool = False


def process_unit(unit: Unit, a_data: bytes, b_data: bytes | None, opts: ProcessingOptions,
                 memory: Reservation | None = None) -> UnitResult:
    """``memory``: the unit's reservation in the run's memory budget; decompression
    charges it, and ``OverBudget`` propagates (the caller sets the unit aside)."""
    result = UnitResult(unit)
    companions = _read_companions(unit, b_data, opts, result, memory) if b_data is not None else {}

    try:
        members = unpack(a_data, max_bytes=opts.max_bytes, max_ratio=opts.max_ratio,
                         charge=memory.charger("a") if memory else None)
    except OverBudget:
        raise
    except Rejected as exc:
        if unit.key_skip_reason is not None:
            exc = Rejected("not_a_failmap_key", f"key does not fit the fail-map pattern ({unit.key_skip_reason}); {exc}")
            result.rejects.append(RejectRow(unit.a_key, unit.a_etag, "a", exc.reason, exc.detail, severity="warning"))
        else:
            result.rejects.append(_reject(unit.a_key, unit.a_etag, "a", exc))
        return result

    several = len(members) > 1
    tables = []
    tokens: set[str] = set()
    for member in members:
        wafers = _read_member(unit, member, several, opts, result)
        for index, wafer in enumerate(wafers):
            token = unit.wafer_token
            if several:
                token = f"{token}#{member.name}"
            if len(wafers) > 1:
                token = f"{token}#{index + 1}"
            if token in tokens:  # two archive members of the same name: still two wafers
                token = next(f"{token}#{n}" for n in range(2, len(tokens) + 3) if f"{token}#{n}" not in tokens)
            tokens.add(token)
            companion = companions.get(member.name if several else None)
            if companion is None and len(companions) == 1 and len(members) == 1:
                companion = next(iter(companions.values()))
            result.b_used |= companion is not None
            match = match_dies(wafer.x, wafer.y, companion.x, companion.y) if companion is not None else None
            tables.append(die_rows(wafer, token, unit, companion, match))
            result.wafers.append(_outputs(wafer, token, unit, companion, match, opts, result.rejects))
    if tables:
        result.dies = pa.concat_tables(tables)
    return result


def _read_companions(unit: Unit, b_data: bytes, opts: ProcessingOptions, result: UnitResult,
                     memory: Reservation | None) -> dict:
    """B maps by archive member name (None for a plain, single-member B)."""
    try:
        members = unpack(b_data, max_bytes=opts.max_bytes, max_ratio=opts.max_ratio,
                         charge=memory.charger("b") if memory else None)
    except OverBudget:
        raise
    except Rejected as exc:
        result.rejects.append(_reject(unit.b_key, unit.b_etag, "b", exc))
        return {}
    several = len(members) > 1
    out: dict[str | None, CompanionMap] = {}
    for member in members:
        name = member.name if several else None
        if sniff_failmap(member.data) != "b":
            if several:
                result.rejects.append(_skipped(unit.b_key, unit.b_etag, "b", member))
                continue
            result.rejects.append(
                RejectRow(unit.b_key, unit.b_etag, "b", "unknown_format", "not a FAILMAP-B file", member=member.name)
            )
            continue
        try:
            out[name] = parse_failmap_b(member.data)
        except Rejected as exc:
            result.rejects.append(_reject(unit.b_key, unit.b_etag, "b", exc, member.name))
    return out


def _read_member(unit: Unit, member: Member, several: bool, opts: ProcessingOptions, result: UnitResult) -> list[WaferMap]:
    if unit.key_skip_reason is not None and detect_map_format(member.data) in (None, "failmap"):
        # Not a fail-map key, and not an industry map either: listed as skipped, as the
        # contract says, never an error.
        result.rejects.append(
            RejectRow(unit.a_key, unit.a_etag, "a", "not_a_failmap_key",
                      f"key does not fit the fail-map pattern ({unit.key_skip_reason}) and the content is no industry map format",
                      member=member.name, severity="warning")
        )
        return []
    if several and (not member.data.strip() or detect_map_format(member.data) is None):
        # README files, empty members: skipped with a warning, never a failure of the object.
        result.rejects.append(_skipped(unit.a_key, unit.a_etag, "a", member))
        return []
    try:
        return read_wafer_maps(member.data, member.name, pass_bins=opts.pass_bins)
    except Rejected as exc:
        result.rejects.append(_reject(unit.a_key, unit.a_etag, "a", exc, member.name))
        return []


def _reject(key, etag, bucket: str, exc: Rejected, member: str | None = None) -> RejectRow:
    return RejectRow(key, etag, bucket, exc.reason, exc.detail, exc.line, exc.member or member)


def _skipped(key, etag, bucket: str, member: Member) -> RejectRow:
    what = "empty member" if not member.data.strip() else "member is not a wafer map"
    return RejectRow(key, etag, bucket, "skipped_member", what, member=member.name, severity="warning")


def _outputs(wafer: WaferMap, token: str, unit: Unit, companion: CompanionMap | None, match, opts,
             rejects: list[RejectRow]) -> WaferOutput:
    source = {"a_key": unit.a_key, "a_etag": unit.a_etag, "b_key": None, "b_etag": None}
    if companion is not None:
        source.update(b_key=unit.b_key, b_etag=unit.b_etag)
    values, counts = np.unique(wafer.bin, return_counts=True)
    draw = unit.latest
    # Whether the map gets a PNG is a property of the event (reported whether or not
    # this run draws it), so the day's rejects never depend on which run drew what.
    # An empty wafer (DIES 0) or one too large: a warning, the JSON and die rows kept.
    refused = no_png(wafer, opts.pixels_per_die)
    drawable = refused is None
    if refused is not None:
        rejects.append(RejectRow(unit.a_key, unit.a_etag, "a", refused.reason,
                                 f"wafer {token}: no PNG (die rows and JSON kept): {refused}", severity="warning"))
    png = render_wafer_png(wafer, pixels_per_die=opts.pixels_per_die) if draw and drawable else None
    return WaferOutput(
        wafer_token=token,
        png=png,
        aspect_png=None if png is None else render_true_aspect_png(wafer, pixels_per_die=opts.pixels_per_die,
                                                                   contract_png=png),
        json=wafer_json(wafer, wafer_token=token, source=source, companion=companion,
                        pixels_per_die=opts.pixels_per_die, die_match=match) if draw else None,
        die_count=wafer.die_count,
        pass_count=int(wafer.is_pass().sum()),
        b_only_dies=len(match[1]) if match is not None else 0,
        retests=int(wafer.retest_count.sum()),
        bins={int(b): int(c) for b, c in zip(values, counts)},
        thumbnail=render_thumbnail_png(wafer) if opts.thumbnail and wafer.die_count else None,  # no preview of nothing
        wafer=wafer,
        with_b=companion is not None,
        drawable=drawable,
    )


_NO_STRINGS = pa.array([], pa.string())


def _per_wafer(value: str | None, indices: pa.Int32Array) -> pa.DictionaryArray:
    """``value`` on the rows where ``indices`` is 0, null where it is null, as a one-entry
    dictionary: an int32 index per die instead of a copy of the string. One ``indices``
    array serves every such column of a wafer."""
    if value is None:
        return pa.DictionaryArray.from_arrays(pa.nulls(len(indices), pa.int32()), _NO_STRINGS)
    return pa.DictionaryArray.from_arrays(indices, pa.array([value], pa.string()))


def die_rows(wafer: WaferMap, token: str, unit: Unit, companion: CompanionMap | None, match=None) -> pa.Table:
    """The wafer's rows of the canonical die table: every A die, then B dies with no A die.

    ``match`` is ``match_dies(A, B)`` (computed here when not given). Vectorised:
    no Python object per die.
    """
    n = wafer.die_count
    if companion is not None and match is None:
        match = match_dies(wafer.x, wafer.y, companion.x, companion.y)
    b_index, b_only = match if companion is not None else (np.full(n, -1, np.int64), np.empty(0, np.int64))
    m = len(b_only)
    total = n + m
    in_a = np.arange(total) < n
    has_b = np.concatenate([b_index >= 0, np.ones(m, dtype=bool)])
    b_rows = np.concatenate([np.where(b_index >= 0, b_index, 0), b_only]).astype(np.int64)
    every_row = pa.array(np.zeros(total, dtype=np.int32))

    columns = {
        "wafer_token": _per_wafer(token, every_row),
        "source_format": _per_wafer(wafer.format, every_row),
        "lot": _per_wafer(wafer.lot, every_row),
        "wafer": _per_wafer(wafer.wafer, every_row),
        "product": _per_wafer(wafer.product, every_row),
        "step": _per_wafer(wafer.step, every_row),
        "tester": _per_wafer(wafer.tester, every_row),
        "partid": _per_wafer(wafer.partid, every_row),
        "stime": _per_wafer(wafer.stime, every_row),
        "in_a": pa.array(in_a),
        "a_key": _per_wafer(unit.a_key, every_row),
        "a_etag": _per_wafer(unit.a_etag, every_row),
        "retest_count": pa.array(np.concatenate([wafer.retest_count, np.zeros(m)]).astype(np.int16)),
        "latest": pa.array(np.full(total, unit.latest, dtype=bool)),
    }
    a_pass = wafer.is_pass()
    if companion is None:
        columns.update(
            x=pa.array(wafer.x.astype(np.int32)),
            y=pa.array(wafer.y.astype(np.int32)),
            bin=pa.array(wafer.bin.astype(np.int32)),
            **{"pass": pa.array(a_pass)},
            b_values=pa.nulls(total, pa.list_(pa.float64())),
            b_values_text=pa.nulls(total, pa.string()),
        )
        for name in ("b_bin",):
            columns[name] = pa.nulls(total, pa.int32())
        for name in ("b_tester", "b_stime", "b_partid", "b_key", "b_etag"):
            columns[name] = _per_wafer(None, every_row)
    else:
        no_b = ~has_b
        b_rows_only = pa.array(np.zeros(total, dtype=np.int32), mask=no_b)
        k = companion.values.shape[1] if companion.values.ndim == 2 else 0
        flat = companion.values[b_rows].reshape(-1) if k else np.empty(0)
        na = companion.values_na[b_rows].reshape(-1) if k else np.empty(0, bool)
        offsets = pa.array(np.arange(total + 1, dtype=np.int32) * k)
        values_text = companion.values_text if isinstance(companion.values_text, pa.Array) else pa.array(companion.values_text, pa.string())
        columns.update(
            x=pa.array(np.concatenate([wafer.x, companion.x[b_only]]).astype(np.int32)),
            y=pa.array(np.concatenate([wafer.y, companion.y[b_only]]).astype(np.int32)),
            bin=pa.array(np.concatenate([wafer.bin, np.zeros(m)]).astype(np.int32), mask=~in_a),
            **{"pass": pa.array(np.concatenate([a_pass, np.zeros(m, bool)]), mask=~in_a)},
            b_bin=pa.array(companion.bin[b_rows].astype(np.int32), mask=no_b),
            b_tester=_per_wafer(companion.tester, b_rows_only),
            b_stime=_per_wafer(companion.stime, b_rows_only),
            b_partid=_per_wafer(companion.partid, b_rows_only),
            b_values=pa.ListArray.from_arrays(offsets, pa.array(flat, type=pa.float64(), mask=na), mask=pa.array(no_b)),
            b_values_text=_take_or_null(values_text, b_rows, no_b),
            b_key=_per_wafer(unit.b_key, b_rows_only),
            b_etag=_per_wafer(unit.b_etag, b_rows_only),
        )
    return pa.table({name: columns[name] for name in DIE_ROWS_SCHEMA.names}, schema=DIE_ROWS_SCHEMA)


def _take_or_null(values: pa.Array, rows: np.ndarray, null_mask: np.ndarray) -> pa.Array:
    """``values[rows]``, null where ``null_mask``: a take with null indices, one pass."""
    if not len(values):
        return pa.nulls(len(rows), pa.string())
    taken = values.take(pa.array(rows, mask=null_mask))
    return taken if taken.type == pa.string() else taken.cast(pa.string())
