"""WaferMap (+ optional bucket-B companion) -> the users' per-wafer JSON.

The schema is the contract in shared/docs/failmap-format.md ("The JSON we write"):
the top-level header, ``source``, ``flat``, ``grid`` (``render.png_fields``, the
PNG's own grid, so a reader can find each die's pixel box in the PNG) and
``chips``, one per distinct A die in row-major order (y, then x). Extra fields we
add: ``png`` (whether the PNG was written, at what scale, and why not or why
reduced), ``format``, ``die_count``, ``b_die_count``, ``b_only_dies``,
``b_value_names``, ``bins`` (the colour legend with die counts) and ``pass`` per
chip. Nothing of the contract is renamed.

Any wafer gets its JSON, however far apart its dies: the PNG's scale is decided by
``render.png_fields`` (the decision ``render_wafer_png`` makes), ``grid.pixels_per_die``
is the scale the PNG really has (the requested one when no PNG can be written:
``png.written`` is then false), and coordinates are int64 everywhere here and in
the kernels, written in full.

Speed: a wafer has up to ~120,000 dies (~20 MB of JSON with a B companion), and
``json.dumps`` over one dict per die takes most of a second. So the header goes
through ``json.dumps`` and the whole document is then written, straight into the
returned bytes, by Numba kernels (``kernels/json_chips.py``, GIL released, so two
wafers render at once on two cores) that format the integers themselves and copy
pre-escaped text: ``"b":"285","pass":false`` once per distinct bin, the B file's
stime/partid/tester once per file, the B values straight from their Arrow
buffers. The row-major order is a counting pass over the dies' bounding box
(kernel); the legend's colours are each bin's stable ``palette.bin_colors``.

Every string that comes from a file is escaped by the json module: ``json.dumps``
for the header, and for each per-die ``transformed_values`` that holds any byte
needing an escape (control character, quote, backslash, non-ASCII)
``json.encoder.encode_basestring_ascii``, the very function ``json.dumps`` uses
for a string. Values without such bytes (nearly all: ``0.812,NA,1350``) are
their own JSON text once quoted. Output is ASCII-only JSON (non-ASCII as
``\\uXXXX``), hence valid UTF-8 even for lone surrogates. The bytes are exactly
those the former Arrow implementation wrote (tests/maps/json_reference.py).
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii

import numpy as np
import pyarrow as pa

from failmap_assets.wafer.model import CompanionMap, WaferMap, match_dies
from failmap_assets.kernels import json_chips as kj
from failmap_assets.maps.palette import bin_colors, rgb_hex
from failmap_assets.maps.render import bin_summary, png_fields

SOURCE_KEYS = ("a_key", "a_etag", "b_key", "b_etag")
_I32 = np.iinfo(np.int32)


def _json_str(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def _u8(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


def _arg(values, dtype) -> np.ndarray:
    """A kernel argument: 1-D, C-contiguous, read-only, so that every call has the
    same Numba signature (one compiled, cached specialization per kernel)."""
    view = np.ascontiguousarray(values, dtype=dtype).reshape(-1).view()
    view.flags.writeable = False
    return view


def _string_table(texts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, data)`` of byte strings, as the kernels take them."""
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    if texts:
        np.cumsum([len(t) for t in texts], out=offsets[1:])
    return _arg(offsets, np.int64), _arg(_u8(b"".join(texts)), np.uint8)


def _escaped_inner(value: str) -> bytes:
    """JSON string literal of ``value`` without its quotes (ASCII, json module escaping)."""
    return encode_basestring_ascii(value)[1:-1].encode("ascii")


def _values_table(text) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The B values as the kernel takes them: ``(offsets, data, is_null)``.

    ``data`` is each value's JSON string text without the quotes. An Arrow string
    array is used as is, through its buffers: only values holding a byte that JSON
    must or we choose to escape (control characters, ``"``, ``\\``, non-ASCII;
    rare in tester output) go through the json module's own escaper.
    """
    if not isinstance(text, (pa.Array, pa.ChunkedArray)):
        values = list(text)
        try:
            text = pa.array(values, pa.string())
        except (UnicodeEncodeError, pa.ArrowException):
            # Lone surrogates cannot become Arrow (UTF-8) strings: escape all in Python.
            offsets, data = _string_table([b"" if v is None else _escaped_inner(v) for v in values])
            return offsets, data, _arg([v is None for v in values], np.uint8)
    if isinstance(text, pa.ChunkedArray):
        text = text.chunk(0) if text.num_chunks == 1 else text.combine_chunks()
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        text = text.cast(pa.string())
    n = len(text)
    if n == 0:
        return _string_table([]) + (_arg([], np.uint8),)
    # Arrow string layout: int32 (large_string: int64) offsets, shifted by the
    # array's slice offset, into one UTF-8 data buffer.
    _, offsets_buf, data_buf = text.buffers()
    offset_type = np.int64 if pa.types.is_large_string(text.type) else np.int32
    offsets = _arg(np.frombuffer(offsets_buf, dtype=offset_type)[text.offset : text.offset + n + 1], np.int64)
    data = _arg(np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else [], np.uint8)
    if text.null_count:
        is_null = _arg(text.is_null().to_numpy(zero_copy_only=False), np.uint8)
    else:
        is_null = _arg(np.zeros(n, dtype=np.uint8), np.uint8)
    rows = kj.rows_needing_escape(offsets, data)
    rows = rows[is_null[rows] == 0]  # a null's bytes are never written
    if len(rows):
        escaped = [_escaped_inner(v) for v in text.take(pa.array(rows)).to_pylist()]
        offsets, data = kj.replace_rows(offsets, data, _arg(rows, np.int64), *_string_table(escaped))
        offsets, data = _arg(offsets, np.int64), _arg(data, np.uint8)
    return offsets, data, is_null


def _legend(bins: np.ndarray, passed: np.ndarray, names: dict, counts: np.ndarray) -> list[dict]:
    """``palette.legend(bins, passed, names=names, counts=counts)`` for ``bin_summary``'s
    distinct, ascending bins (one pass flag each, so one entry per bin in that order),
    without its sorting: each bin's stable colour (``palette.bin_colors``)."""
    pairs = zip(bins.tolist(), passed.tolist())
    colours = [rgb_hex(c) for c in bin_colors(bins, passed).tolist()]
    names = names or {}
    return [
        {"bin": b, "pass": p, "name": names.get(b), "rgb": rgb, "count": c}
        for (b, p), rgb, c in zip(pairs, colours, np.asarray(counts, dtype=np.int64).tolist())
    ]


def _row_major(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Die indices in (y, x) order, one per distinct (x, y); ``x``, ``y`` int64.

    WaferMap already resolves retests, but should a reader hand us a repeated
    (x, y), the later row wins, as a retest does, so chips stay one per die.
    """
    # A wafer's dies fill most of their bounding box: a counting pass over the box
    # is O(n) (kernel); a sparse box (or coordinates beyond int32) sorts instead.
    dense, order = kj.row_major_order(x, y, 4 * len(x) + 65536)
    if dense:
        return order
    if len(x) and (x.min() < _I32.min or x.max() > _I32.max or y.min() < _I32.min or y.max() > _I32.max):
        # Beyond int32 (WaferMap holds int32; a caller may hand int64): no packed key.
        order = np.lexsort((x, y))  # stable: equal (x, y) keep file order
        same = (x[order][1:] == x[order][:-1]) & (y[order][1:] == y[order][:-1])
    else:
        # One int64 per die, monotone in (y, x): a single argsort beats np.lexsort.
        key = (y << 32) + (x + (1 << 31))
        order = np.argsort(key, kind="stable")  # stable: equal (x, y) keep file order
        k = key[order]
        same = k[1:] == k[:-1]
    if len(order) > 1:
        last_of_group = np.ones(len(order), dtype=bool)
        last_of_group[:-1] = ~same
        order = order[last_of_group]
    return order


def wafer_json(
    wafer: WaferMap,
    *,
    wafer_token: str,
    source: dict,
    companion: CompanionMap | None,
    pixels_per_die: int = 4,
    die_match: tuple[np.ndarray, np.ndarray] | None = None,
    max_pixels: int | None = None,
) -> bytes:
    """The per-wafer JSON document as UTF-8 bytes (see module docstring).

    ``die_match`` is ``match_dies(A, B)`` when the caller already has it.
    ``pixels_per_die`` and ``max_pixels`` are those given to ``render_wafer_png``:
    ``grid`` and ``png`` describe the PNG it writes (or that it writes none).
    """
    x = _arg(wafer.x, np.int64)
    y = _arg(wafer.y, np.int64)
    order = _row_major(x, y)
    bins, passed, counts, inverse = bin_summary(wafer)
    grid, png = png_fields(wafer, pixels_per_die, max_pixels)

    header: dict = {
        "wafer_token": wafer_token,
        "lot": wafer.lot,
        "wafer": wafer.wafer,
        "product": wafer.product,
        "step": wafer.step,
        "tester": wafer.tester,
        "partid": wafer.partid,
        "stime": wafer.stime,
        "source": {**{k: source.get(k) for k in SOURCE_KEYS}, **{k: v for k, v in source.items() if k not in SOURCE_KEYS}},
        "flat": wafer.flat,
        "grid": grid,
        "png": png,
        "format": wafer.format,
        "die_count": int(len(order)),
        "b_die_count": companion.die_count if companion is not None else None,
        "b_only_dies": None,
        "b_value_names": list(companion.value_names) if companion is not None else None,
        "bins": _legend(bins, passed, wafer.bin_names, counts),
    }

    # Per die, only the coordinates vary; "b" and "pass" are formatted once per
    # distinct bin.
    bin_off, bin_data = _string_table(
        [f'"b":"{b}","pass":{"true" if p else "false"}'.encode("ascii") for b, p in zip(bins.tolist(), passed.tolist())]
    )
    if companion is not None:
        b_index, b_only = die_match or match_dies(wafer.x, wafer.y, companion.x, companion.y)
        header["b_only_dies"] = int(len(b_only))
        b_bin = _arg(companion.bin, np.int64)
        val_off, val_data, val_null = _values_table(companion.values_text)
        if len(val_off) != len(b_bin) + 1:
            raise ValueError(f"companion has {len(b_bin)} dies but {len(val_off) - 1} values_text entries")
        # stime / partid / tester are the same for every die of the B file: escape once.
        b_tail = (
            f',"stime":{_json_str(companion.stime)},"partid":{_json_str(companion.partid)},'
            f'"tester":{_json_str(companion.tester)}}}'
        ).encode("ascii")
    else:
        b_index, b_bin, val_null, b_tail = [], _arg([], np.int64), [], b""
        val_off, val_data = _string_table([])

    # json.dumps for the header (file strings escaped by the standard encoder); the
    # kernel writes it, then the chips array as its last key, into one buffer.
    head_text = json.dumps(header, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return kj.render_chips(
        _arg(_u8(head_text[:-1].encode("ascii") + b',"chips":['), np.uint8),
        x,
        y,
        _arg(order, np.int64),
        _arg(inverse, np.int64),
        bin_off,
        bin_data,
        companion is not None,
        _arg(b_index, np.int64),
        b_bin,
        val_off,
        val_data,
        _arg(val_null, np.uint8),
        _arg(_u8(b_tail), np.uint8),
        _arg(_u8(b"]}"), np.uint8),
    )


CHIPS_KEY = b',"chips":['


def png_written(head: bytes) -> bool | None:
    """``png.written`` of a JSON document we wrote, from its start (at least up to
    ``CHIPS_KEY``; the chips are never parsed), or None when it does not say (a
    document written before the field existed, or not ours).

    ``CHIPS_KEY`` cannot occur inside a header string (its quote would be escaped),
    so its first occurrence is where the header ends.
    """
    end = head.find(CHIPS_KEY)
    try:
        doc = json.loads(head[:end] + b"}" if end >= 0 else head)
    except ValueError:
        return None
    png = doc.get("png") if isinstance(doc, dict) else None
    written = png.get("written") if isinstance(png, dict) else None
    return written if isinstance(written, bool) else None
