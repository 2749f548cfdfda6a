"""pystdf 1.4.0 as the reference reader, and an independent plain-Python default-data rule.

Everything here is deliberately simple Python (no code shared with the parser), so
the comparison checks the Numba kernels against a second implementation.
"""

from __future__ import annotations

import io
import math
import sys
from collections import Counter

from failmap_assets.stdf import records as R


def read_pystdf(path: str) -> tuple[list[tuple[str, dict]], str | None]:
    """All records pystdf returns, as (NAME, {FIELD: value}), and its exception text if it raised."""
    from pystdf.IO import Parser

    recs: list[tuple[str, dict]] = []

    class Sink:
        def after_send(self, ds, data):
            rt, fields = data
            recs.append((type(rt).__name__.upper(), dict(zip(rt.fieldNames, fields))))

    err = None
    stderr = sys.stderr
    sys.stderr = io.StringIO()  # pystdf prints a warning per record with trailing bytes
    try:
        with open(path, "rb") as f:
            p = Parser(inp=f)
            p.addSink(Sink())
            try:
                p.parse()
            except Exception as e:  # noqa: BLE001 - we record what pystdf does
                err = f"{type(e).__name__}: {e}"
    finally:
        sys.stderr = stderr
    return recs, err


def counts(recs) -> Counter:
    return Counter(name for name, _ in recs)


# ---------------------------------------------------------------- default data


def _opt(rec) -> int | None:
    return rec.get("OPT_FLAG")


def _blank(v, field: R.Field) -> bool:
    if v is None:
        return True
    if isinstance(v, str) or isinstance(v, list):
        return len(v) == 0
    if field.default.blank is not None:
        return v == field.default.blank
    return False


def _bit(opt, b) -> bool:
    return opt is not None and b >= 0 and bool((opt >> b) & 1)


def default_fields(kind: str) -> list[R.Field]:
    return [f for f in R.BY_NAME[kind].fields if f.default is not None]


def establish(kind: str, rec: dict) -> dict:
    out = {}
    opt = _opt(rec)
    for f in default_fields(kind):
        v = rec.get(f.name)
        d = f.default
        if v is None or _bit(opt, d.none_bit) or _bit(opt, d.use_default_bit):
            out[f.name] = None
        elif d.blank is not None and v == d.blank:
            out[f.name] = None
        elif v == "\x00":
            out[f.name] = None
        else:
            out[f.name] = v
    return out


def effective(kind: str, rec: dict, dflt: dict) -> dict:
    out = {}
    opt = _opt(rec)
    for f in default_fields(kind):
        v = rec.get(f.name)
        d = f.default
        if _bit(opt, d.none_bit):
            out[f.name] = None
        elif _bit(opt, d.use_default_bit):
            out[f.name] = dflt[f.name]
        elif not _blank(v, f):
            out[f.name] = None if v == "\x00" else v
        else:
            out[f.name] = dflt[f.name]
    return out


def apply_defaults(kind: str, recs: list[dict]) -> list[dict]:
    """pystdf records with the default-data rule applied (defaults keyed by TEST_NUM)."""
    firsts: dict = {}
    out = []
    for r in recs:
        key = r.get("TEST_NUM")
        if key not in firsts:
            firsts[key] = establish(kind, r)
        e = dict(r)
        e.update(effective(kind, r, firsts[key]))
        out.append(e)
    return out


# ---------------------------------------------------------------- value comparison


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def pack_nibbles(vals):
    if vals is None:
        return None
    out = []
    for i in range(0, len(vals), 2):
        lo = vals[i]
        hi = vals[i + 1] if i + 1 < len(vals) else 0
        out.append(lo | (hi << 4))
    return out


def to_pystdf_shape(field: R.Field, v):
    """Our decoded value in the shape pystdf gives for the field's type."""
    if v is None:
        return None
    if field.type == "N1" and field.is_array:
        return pack_nibbles(v)
    if field.type in ("Bn", "Dn"):
        return list(v)
    return v
