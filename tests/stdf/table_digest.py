"""A content digest of an Arrow table that depends only on its schema and its values.

Two tables get the same digest exactly when they hold the same schema and the same rows
(column for column, nulls where nulls are, float bits included), however their buffers are
chunked, sliced or what bytes sit under their null slots. Computed from the Arrow buffers
with numpy (seconds for every real file), not from a library's serialisation, so the digest
does not change with a pyarrow or Parquet writer upgrade.

``python -m tests.stdf.table_digest`` prints the digests of every real file's tables as JSON
(how ``tables_digest.json`` was made, at the commit before issue 16's speed work).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _feed(h, arr: pa.Array) -> None:
    t = arr.type
    n = len(arr)
    h.update(f"{t}:{n}:".encode())
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    h.update(np.packbits(valid).tobytes())
    if pa.types.is_struct(t):
        for child in arr.flatten():
            _feed(h, child)
        return
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        h.update(pc.list_value_length(arr).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64).tobytes())
        _feed(h, arr.flatten())
        return
    if t == pa.null():
        return
    if pa.types.is_dictionary(t):
        _feed(h, arr.dictionary_decode())
        return
    if pa.types.is_boolean(t):
        h.update(arr.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8).tobytes())
        return
    if pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t) or \
            pa.types.is_large_binary(t):
        filled = arr.fill_null("" if pa.types.is_string(t) or pa.types.is_large_string(t) else b"")
        lens = pc.binary_length(filled).to_numpy(zero_copy_only=False).astype(np.int64)
        h.update(lens.tobytes())
        bufs = filled.buffers()
        width = np.int64 if (pa.types.is_large_string(t) or pa.types.is_large_binary(t)) else np.int32
        offs = np.frombuffer(bufs[1], dtype=width, count=n + 1, offset=filled.offset * np.dtype(width).itemsize)
        if n and bufs[2] is not None:
            h.update(memoryview(bufs[2])[int(offs[0]):int(offs[-1])])
        return
    # fixed width: the values with nulls as zero
    h.update(arr.fill_null(0).to_numpy(zero_copy_only=False).tobytes())


def table_digest(table: pa.Table) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(str(table.schema).encode())
    h.update(str(table.num_rows).encode())
    for name in table.column_names:
        h.update(name.encode())
        _feed(h, table[name].combine_chunks())
    return h.hexdigest()


def digests(names: list[str]) -> dict[str, dict[str, str]]:
    from failmap_assets.stdf import parse_stdf
    from tests.support.testdata import STDF_DIR

    out = {}
    for n in names:
        d = parse_stdf(STDF_DIR / n, file_id="f")
        out[n] = {k: table_digest(t) for k, t in d.tables.items()}
    return out


if __name__ == "__main__":
    import json

    from tests.stdf.conftest import ALL_V4_FILES

    print(json.dumps(digests(ALL_V4_FILES), indent=1, sort_keys=True))
