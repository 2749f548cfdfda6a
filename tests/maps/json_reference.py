"""The previous ``wafer_json`` (Arrow string kernels), frozen as a test oracle.

``failmap_assets.maps.coordinates`` now writes the chips with a Numba kernel; its
output must stay byte-for-byte what this implementation wrote. Kept verbatim
(only this docstring differs) so the equality tests compare against the real
former code, not against a re-derivation of it.

Former module docstring:

    WaferMap (+ optional bucket-B companion) -> the users' per-wafer JSON.

    The schema is the contract in shared/docs/failmap-format.md ("The JSON we write"):
    the top-level header, ``source``, ``flat``, ``grid`` (identical to
    ``render.grid_for`` so a reader can find each die's pixel box in the PNG) and
    ``chips``, one per distinct A die in row-major order (y, then x). Extra fields we
    add: ``format``, ``die_count``, ``b_die_count``, ``b_only_dies``,
    ``b_value_names``, ``bins`` (the colour legend with die counts) and ``pass`` per
    chip. Nothing of the contract is renamed.

    Speed: a wafer has up to ~120,000 dies, and ``json.dumps`` over one dict per die
    takes most of a second. So the header goes through ``json.dumps`` and the ``chips``
    text is assembled column-wise with Arrow string kernels (integer -> decimal cast,
    element-wise concatenation, take): "b"/"pass" are formatted once per distinct bin,
    the B file's stime/partid/tester once per file. Every string that comes from a file
    is escaped by the json module: ``json.dumps`` for the header, and for each per-die
    ``transformed_values`` that holds any byte needing an escape (control character,
    quote, backslash, non-ASCII) ``json.encoder.encode_basestring_ascii``, the very
    function ``json.dumps`` uses for a string. Values without such bytes (nearly all:
    ``0.812,NA,1350``) are their own JSON text once quoted. Output is ASCII-only
    JSON (non-ASCII as ``\\uXXXX``), hence valid UTF-8 even for lone surrogates.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from failmap_assets.wafer.model import CompanionMap, WaferMap, match_dies
from failmap_assets.maps.palette import legend
from failmap_assets.maps.render import bin_summary, png_fields

SOURCE_KEYS = ("a_key", "a_etag", "b_key", "b_etag")


def _json_str(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def _int_text(values: np.ndarray, order: np.ndarray | None = None) -> pa.Array:
    """Decimal text of integers (no leading zeros), vectorised by Arrow's cast."""
    arr = np.asarray(values, dtype=np.int64)
    return pa.array(arr if order is None else arr[order]).cast(pa.string())


def _join(*parts) -> pa.Array:
    """Element-wise concatenation of string arrays and literal pieces."""
    return pc.binary_join_element_wise(*parts, "")


def _json_string_array(text) -> pa.Array:
    """JSON string literals (quotes included; ``null`` for a missing value) of file text.

    Most values (``0.812,NA,1350``) need no escaping, so they are only quoted, with
    Arrow. Any value holding a byte that JSON must or we choose to escape (control
    characters, ``"``, ``\\``, non-ASCII) goes through the json module's own escaper.
    """
    if not hasattr(text, "to_pylist"):
        try:
            text = pa.array(list(text), pa.string())
        except (UnicodeEncodeError, pa.ArrowException):
            # Lone surrogates cannot become Arrow (UTF-8) strings: escape all in Python.
            return pa.array([_json_str(v) for v in text], pa.string())
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    text = text.cast(pa.string())
    if len(text) == 0:
        return text
    quoted = pc.fill_null(_join('"', text, '"'), "null")
    # Arrow string layout: int32 offsets (shifted by the array's slice offset) into
    # one UTF-8 data buffer; scan that buffer once instead of each value in Python.
    _, offsets_buf, data = text.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int32)[text.offset : text.offset + len(text) + 1].astype(np.int64)
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    raw = raw[offsets[0] : offsets[-1]]
    bad = np.flatnonzero((raw < 0x20) | (raw == 0x22) | (raw == 0x5C) | (raw >= 0x80)) + offsets[0]
    if len(bad) == 0:
        return quoted
    # Byte position -> element; empty elements share an offset, side="right" skips them.
    rows = np.unique(np.searchsorted(offsets, bad, side="right") - 1)
    escaped = pa.array([_json_str(v) for v in text.take(pa.array(rows)).to_pylist()], pa.string())
    mask = np.zeros(len(text), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(quoted, pa.array(mask), escaped)


def _row_major(wafer: WaferMap) -> np.ndarray:
    """Die indices in (y, x) order, one per distinct (x, y).

    WaferMap already resolves retests, but should a reader hand us a repeated
    (x, y), the later row wins, as a retest does, so chips stay one per die.
    """
    # One int64 per die, monotone in (y, x): a single argsort beats np.lexsort.
    key = (np.asarray(wafer.y, dtype=np.int64) << 32) + (np.asarray(wafer.x, dtype=np.int64) + (1 << 31))
    order = np.argsort(key, kind="stable")  # stable: equal (x, y) keep file order
    if len(order) > 1:
        k = key[order]
        last_of_group = np.ones(len(order), dtype=bool)
        last_of_group[:-1] = k[1:] != k[:-1]
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
    """
    order = _row_major(wafer)
    bins, passed, counts, inverse = bin_summary(wafer)

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
        "grid": png_fields(wafer, pixels_per_die, max_pixels)[0],
        "png": png_fields(wafer, pixels_per_die, max_pixels)[1],
        "format": wafer.format,
        "die_count": int(len(order)),
        "b_die_count": companion.die_count if companion is not None else None,
        "b_only_dies": None,
        "b_value_names": list(companion.value_names) if companion is not None else None,
        "bins": legend(bins, passed, names=wafer.bin_names, counts=counts),
    }

    # Per die, only the coordinates vary; "b" and "pass" are formatted once per
    # distinct bin and gathered.
    per_bin = pa.array(
        [f'"b":"{b}","pass":{"true" if p else "false"}' for b, p in zip(bins.tolist(), passed.tolist())],
        pa.string(),
    )
    chip_bin = per_bin.take(pa.array(inverse[order]))
    parts = ['{"x_abs":', _int_text(wafer.x, order), ',"y_abs":', _int_text(wafer.y, order), ",", chip_bin]

    if companion is not None:
        b_index, b_only = die_match or match_dies(wafer.x, wafer.y, companion.x, companion.y)
        header["b_only_dies"] = int(len(b_only))
        values = _json_string_array(companion.values_text)
        # stime / partid / tester are the same for every die of the B file: escape once.
        tail = (
            f',"stime":{_json_str(companion.stime)},"partid":{_json_str(companion.partid)},'
            f'"tester":{_json_str(companion.tester)}}}'
        )
        bucket = _join(',"bucket_b":{"transformed_values":', values, ',"b":"', _int_text(companion.bin), '"', tail)
        chip_b = b_index[order]
        # null index (A die not in B) -> null -> no bucket_b for that chip.
        parts.append(pc.fill_null(bucket.take(pa.array(chip_b, mask=chip_b < 0)), ""))
    parts.append("}")
    chips = _join(*parts).cast(pa.binary())
    chips_text = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(chips)], pa.int32()), chips), b",")[0].as_py()

    # json.dumps for the header (file strings escaped by the standard encoder), then
    # splice the prebuilt chips array in as the last key.
    head_text = json.dumps(header, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return head_text[:-1].encode("ascii") + b',"chips":[' + chips_text + b"]}"
