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


# ---------------------------------------------------------------- our tables, back as records


def _shape_json(field: R.Field, v):
    """A value from the generic table's JSON in pystdf's shape."""
    if v is None:
        return None
    if field.type in ("Bn", "Dn") and not field.is_array:
        return list(bytes.fromhex(v))
    if field.type == "N1" and field.is_array:
        return pack_nibbles(v)
    if field.type in ("R4", "R8") and isinstance(v, str):
        return float(v.replace("Infinity", "inf"))
    return v


def _gdr_pystdf_shape(items):
    """Our GDR [[code, value], ...] as pystdf's flat value list (pads dropped: pystdf cannot read them)."""
    out = []
    for code, v in items:
        if code == 0:
            continue
        if code in (11,):
            out.append(list(bytes.fromhex(v)))
        elif code == 12:
            out.append(list(bytes.fromhex(v["hex"])))
        elif code in (7, 8) and isinstance(v, str):
            out.append(float(v.replace("Infinity", "inf")))
        else:
            out.append(v)
    return out


def ours_as_records(data, override_bits, max_results: int | None = None) -> dict[str, list[dict]]:
    """Every record of a parsed file, rebuilt from our tables in pystdf's shape, in file order.

    PTR / MPR / FTR come back with the default-data rule applied (effective values);
    with ``max_results`` only every k-th of them (k = ``sample_step``).
    """
    import json

    t = data.tables
    out: dict[str, list[tuple[int, dict]]] = {}

    def add(name, rec_idx, rec):
        out.setdefault(name, []).append((rec_idx, rec))

    def fields_of(name, row, rename=None):
        rec = {}
        for f in R.BY_NAME[name].fields:
            col = (rename or {}).get(f.name, f.column)
            rec[f.name] = to_pystdf_shape(f, row.get(col))
        return rec

    files = t["files"].to_pylist()[0]
    for name in ("FAR", "MIR", "MRR"):
        if files[f"{name.lower()}_rec_idx"] is not None:
            add(name, files[f"{name.lower()}_rec_idx"], fields_of(name, files))
    for s in files["sdr"]:
        add("SDR", s["rec_idx"], fields_of("SDR", s))
    wcr_done = False
    for w in t["wafers"].to_pylist():
        if w["wir_rec_idx"] is not None:
            add("WIR", w["wir_rec_idx"], fields_of("WIR", w))
        if w["wrr_rec_idx"] is not None:
            ren = {"HEAD_NUM": "wrr_head_num", "SITE_GRP": "wrr_site_grp", "WAFER_ID": "wrr_wafer_id"}
            add("WRR", w["wrr_rec_idx"], fields_of("WRR", w, ren))
        if w["wcr_rec_idx"] is not None and not wcr_done:
            add("WCR", w["wcr_rec_idx"], fields_of("WCR", w))
            wcr_done = True
    for p in t["parts"].to_pylist():
        if p["pir_rec_idx"] is not None:
            add("PIR", p["pir_rec_idx"], {"HEAD_NUM": p["head_num"], "SITE_NUM": p["site_num"]})
        if p["prr_rec_idx"] is not None:
            add("PRR", p["prr_rec_idx"], fields_of("PRR", p))
    for b in t["bins"].to_pylist():
        name = "HBR" if b["bin_type"] == "H" else "SBR"
        x = name[0]
        add(name, b["rec_idx"], {"HEAD_NUM": b["head_num"], "SITE_NUM": b["site_num"],
                                 f"{x}BIN_NUM": b["bin_num"], f"{x}BIN_CNT": b["bin_cnt"],
                                 f"{x}BIN_PF": b["bin_pf"], f"{x}BIN_NAM": b["bin_nam"]})
    for r in t["test_summaries"].to_pylist():
        add("TSR", r["rec_idx"], fields_of("TSR", r))
    tests = {(x["kind"], x["test_num"]): x for x in t["tests"].to_pylist()}
    # arrays stored once per test: null with the anchor field present = the test's first record's
    once = {"MPR": ({"RTN_STAT"}, "rtn_rslt"), "FTR": ({"RTN_INDX", "RTN_STAT", "PGM_INDX", "PGM_STAT"}, "fail_pin")}
    for kind in ("PTR", "MPR", "FTR"):
        arrays, anchor = once.get(kind, (set(), None))
        bits = override_bits(kind)
        table = t[f"{kind.lower()}_results"]
        step = sample_step(table.num_rows, max_results)
        if step > 1:
            table = table.take(list(range(0, table.num_rows, step)))
        for r in table.to_pylist():
            tt = tests[(kind, r["test_num"])]
            e = {}
            for f in R.BY_NAME[kind].fields:
                c = f.column
                if f.default is not None:
                    v = r[c] if r["override_mask"] & bits[f.name] else tt[c]
                elif f.name == "TEST_TXT":
                    v = r[c] if r[c] is not None else tt["test_txt"]
                elif f.name in arrays:
                    v = tt[c] if r[c] is None and r[anchor] is not None else r[c]
                else:
                    v = r[c]
                e[f.name] = to_pystdf_shape(f, v)
            add(kind, r["rec_idx"], e)
    for g in t["generic"].to_pylist():
        name = g["rec_name"]
        if name not in R.BY_NAME:
            add(name, g["rec_idx"], {"raw": g["raw"]})
            continue
        js = json.loads(g["fields"])
        rec = {}
        for f in R.BY_NAME[name].fields:
            v = js.get(f.name)
            rec[f.name] = _gdr_pystdf_shape(v) if (f.type == "Vn" and v is not None) else _shape_json(f, v)
        add(name, g["rec_idx"], rec)
    return {k: [r for _, r in sorted(v, key=lambda x: x[0])] for k, v in out.items()}


def sample_step(n: int, max_results: int | None) -> int:
    if not max_results or n <= max_results:
        return 1
    return -(-n // max_results)


def compare_records(ours: dict[str, list[dict]], ref_recs: list[tuple[str, dict]], names=None,
                    limit: int = 10, max_results: int | None = None) -> list[str]:
    """Differences between our records and pystdf's (default rule applied to pystdf's PTR/MPR/FTR).

    ``max_results`` must be the value given to ``ours_as_records``."""
    by: dict[str, list[dict]] = {}
    for n, f in ref_recs:
        by.setdefault(n, []).append(f)
    for kind in ("PTR", "MPR", "FTR"):
        if kind in by:
            by[kind] = apply_defaults(kind, by[kind])
            by[kind] = by[kind][::sample_step(len(by[kind]), max_results)]
    errs: list[str] = []
    for name in sorted(set(by) | set(ours)):
        if names is not None and name not in names:
            continue
        a, b = ours.get(name, []), by.get(name, [])
        if len(a) != len(b):
            errs.append(f"{name}: {len(a)} records, pystdf {len(b)}")
            continue
        fields = R.BY_NAME[name].names if name in R.BY_NAME else []
        for i, (x, y) in enumerate(zip(a, b)):
            for f in fields:
                if name == "GDR" and f == "FLD_CNT":
                    continue
                if not same(x.get(f), y.get(f)):
                    errs.append(f"{name}[{i}].{f}: ours {x.get(f)!r} pystdf {y.get(f)!r}")
                    if len(errs) >= limit:
                        return errs
    return errs


def reference_part_of_results(recs) -> dict[str, list[int | None]]:
    """Plain-Python part assignment: per PTR/MPR/FTR (file order) the ordinal of the PRR that
    closes its part, following the spec: a result belongs to the open PIR/PRR pair with the
    same HEAD_NUM/SITE_NUM; results before any PIR of their site belong to the next PRR of the
    site only when no PIR comes first (files without PIRs); otherwise they are orphans."""
    owner: dict[str, list] = {"PTR": [], "MPR": [], "FTR": []}
    pending: dict[tuple, list] = {}
    n_prr = 0
    for name, f in recs:
        if name == "PIR":
            pending[(f["HEAD_NUM"], f["SITE_NUM"])] = []
        elif name in owner:
            owner[name].append(None)
            pending.setdefault((f["HEAD_NUM"], f["SITE_NUM"]), []).append((name, len(owner[name]) - 1))
        elif name == "PRR":
            for k, i in pending.pop((f["HEAD_NUM"], f["SITE_NUM"]), []):
                owner[k][i] = n_prr
            n_prr += 1
    return owner
