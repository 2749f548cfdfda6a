"""Asset checks over a whole day's outputs (not just what one run wrote)."""

from __future__ import annotations

import io
from datetime import date

import numpy as np
import pyarrow.parquet as pq
from dagster import AssetCheckResult, AssetCheckSeverity

from failmap_assets.maps.coordinates import CHIPS_KEY, png_written
from failmap_assets.storage.layout import table_dir
from failmap_assets.storage.object_store import ObjectStore


def unique_die_check(out: ObjectStore, day: date) -> AssetCheckResult:
    """A die is one row: a retest replaces, a B-only die does not duplicate an A die.

    Reads only (wafer_token, x, y), part by part, and packs each die into one int64
    (token code, x, y), so a day of millions of dies is checked in tens of MB.
    """
    codes: dict[str, int] = {}
    keys = []
    for obj in out.list(table_dir("failmap_dies", day)):
        if not obj.key.endswith(".parquet"):
            continue
        part = pq.read_table(io.BytesIO(out.get(obj.key)), columns=["wafer_token", "x", "y"], read_dictionary=["wafer_token"])
        if part.num_rows == 0:
            continue
        tokens = part.column("wafer_token").combine_chunks()
        local = np.array([codes.setdefault(t, len(codes)) for t in tokens.dictionary.to_pylist()], dtype=np.int64)
        token_code = local[tokens.indices.to_numpy(zero_copy_only=False)]
        x = part.column("x").to_numpy().astype(np.int64) & 0xFFFFF
        y = part.column("y").to_numpy().astype(np.int64) & 0xFFFFF
        keys.append((token_code << 40) | (x << 20) | y)
    packed = np.sort(np.concatenate(keys)) if keys else np.empty(0, np.int64)
    dup = np.unique(packed[1:][packed[1:] == packed[:-1]])
    names = {code: token for token, code in codes.items()}
    examples = [(names[int(k >> 40)], _signed20((k >> 20) & 0xFFFFF), _signed20(k & 0xFFFFF)) for k in dup[:5]]
    return AssetCheckResult(
        check_name="unique_die",
        asset_key="failmap_dies",
        passed=len(dup) == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"dies": int(len(packed)), "duplicated_dies": int(len(dup)), "examples": str(examples)},
    )


def _signed20(v: int) -> int:
    # Coordinates are packed as 20-bit two's complement (wafers span far less than +-524,288 dies).
    v = int(v)
    return v - (1 << 20) if v >= (1 << 19) else v


def json_png_check(out: ObjectStore, day: date) -> AssetCheckResult:
    def stems(kind: str) -> set[str]:
        suffix = f".{kind}"
        return {o.key[len(f"{kind}/{day.isoformat()}/") : -len(suffix)] for o in out.list(f"{kind}/{day.isoformat()}/") if o.key.endswith(suffix)}

    pngs, jsons = stems("png"), stems("json")
    missing_png, missing_json = sorted(jsons - pngs), sorted(pngs - jsons)
    # A wafer too large for any PNG has none by design: fine when its JSON says so.
    refused = {s for s in missing_png if png_written(_json_head(out, f"json/{day.isoformat()}/{s}.json")) is False}
    missing_png = [s for s in missing_png if s not in refused]
    return AssetCheckResult(
        check_name="json_has_png",
        asset_key="wafer_coordinates_json",
        passed=not missing_png and not missing_json,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "png": len(pngs),
            "json": len(jsons),
            "png_refused_too_large": len(refused),
            "json_without_png": str(missing_png[:10]),
            "png_without_json": str(missing_json[:10]),
        },
    )


def _json_head(out: ObjectStore, key: str, limit: int = 64 << 20) -> bytes:
    """The start of a wafer JSON, up to its chips (which can be hundreds of MB);
    empty if the object is gone."""
    buf = bytearray()
    try:
        with out.open(key) as f:
            while len(buf) < limit:
                chunk = f.read(1 << 16)
                if not chunk:
                    break
                buf += chunk
                if CHIPS_KEY in buf[-(len(chunk) + len(CHIPS_KEY)):]:
                    break
    except FileNotFoundError:
        pass
    return bytes(buf)
