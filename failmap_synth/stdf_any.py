"""A minimal STDF writer for hand-made files, driven by the reader's own record table
(``failmap_assets.stdf.records``): the tests' special files, and ``every_record_type``
for ``failmap warm`` (the rare records: pin lists, generic data, V4-2007 arrays).

Fields are written in layout order until the first one missing from ``values``, so
a truncated record is simply a record with fewer values. (The realistic wafer-sort
files come from ``stdf_writer.py``, which has a table of its own on purpose: it is
an oracle independent of the reader.)
"""

from __future__ import annotations

import struct

from failmap_assets.stdf import records as R

_FMT = {"U1": "B", "U2": "H", "U4": "I", "U8": "Q", "I1": "b", "I2": "h", "I4": "i", "I8": "q",
        "R4": "f", "R8": "d", "B1": "B", "N1": "B"}
_VN_FMT = {1: "B", 2: "H", 3: "I", 4: "b", 5: "h", 6: "i", 7: "f", 8: "d", 13: "B"}


def _s(x) -> bytes:
    return x if isinstance(x, bytes) else x.encode("latin-1")


def _field(f: R.Field, v, e: str, values: dict) -> bytes:
    t = f.type
    bo = "big" if e == ">" else "little"
    if f.is_array:
        if t == "N1":
            out = bytearray()
            for i in range(0, len(v), 2):
                out.append((v[i] & 15) | ((v[i + 1] & 15) << 4 if i + 1 < len(v) else 0))
            return bytes(out)
        if t in _FMT:
            return b"".join(struct.pack(e + _FMT[t], x) for x in v)
        if t == "Cn":
            return b"".join(bytes([len(_s(x))]) + _s(x) for x in v)
        if t == "Sn":
            return b"".join(struct.pack(e + "H", len(_s(x))) + _s(x) for x in v)
        if t == "Uf":
            w = values[f.width]
            return b"".join(int(x).to_bytes(w, bo) for x in v)
        if t == "Cf":
            w = values[f.width]
            return b"".join(_s(x).ljust(w)[:w] for x in v)
        if t == "Vn":
            out = b""
            for code, x in v:
                out += bytes([code])
                if code == 0:
                    continue
                if code in _VN_FMT:
                    out += struct.pack(e + _VN_FMT[code], x)
                elif code in (10, 11):
                    out += bytes([len(_s(x))]) + _s(x)
                elif code == 12:
                    bits, data = x
                    out += struct.pack(e + "H", bits) + data
            return out
        raise ValueError(t)
    if t in _FMT:
        return struct.pack(e + _FMT[t], v)
    if t == "C1":
        return _s(v)[:1]
    if t in ("Cn", "Bn"):
        return bytes([len(_s(v))]) + _s(v)
    if t == "Sn":
        return struct.pack(e + "H", len(_s(v))) + _s(v)
    if t == "Dn":
        bits, data = v
        return struct.pack(e + "H", bits) + data
    raise ValueError(t)


def body(name: str, values: dict, e: str = "<", alt: bool = False) -> bytes:
    rec = R.BY_NAME[name]
    out = b""
    for f in (rec.alt_fields if alt else rec.fields):
        if f.name not in values:
            break
        out += _field(f, values[f.name], e, values)
    return out


def record(name: str, values: dict | None = None, e: str = "<", alt: bool = False, raw: bytes | None = None,
           typ: int | None = None, sub: int | None = None) -> bytes:
    rec = R.BY_NAME.get(name)
    b = raw if raw is not None else body(name, values or {}, e, alt)
    t = typ if typ is not None else rec.typ
    s = sub if sub is not None else rec.sub
    return struct.pack(e + "HBB", len(b), t, s) + b


def far(e: str = "<") -> bytes:
    return record("FAR", {"CPU_TYPE": 1 if e == ">" else 2, "STDF_VER": 4}, e)


def stdf(recs: list[tuple], e: str = "<", mir: dict | None = None) -> bytes:
    """FAR + MIR + the given (name, values) records + MRR."""
    out = far(e) + record("MIR", mir or {"SETUP_T": 1, "START_T": 2, "STAT_NUM": 1, "MODE_COD": "P",
                                         "RTST_COD": " ", "PROT_COD": " ", "BURN_TIM": 65535, "CMOD_COD": " ",
                                         "LOT_ID": "LOT1", "PART_TYP": "PROD/X", "NODE_NAM": "node",
                                         "TSTR_TYP": "synth", "JOB_NAM": "job", "JOB_REV": "1",
                                         "SBLOT_ID": "", "OPER_NAM": "", "EXEC_TYP": "", "EXEC_VER": "",
                                         "TEST_COD": "WS1"}, e)
    for item in recs:
        if isinstance(item, bytes):
            out += item
        else:
            out += record(item[0], item[1], e)
    return out + record("MRR", {"FINISH_T": 3, "DISP_COD": " ", "USR_DESC": "", "EXC_DESC": ""}, e)


# One value per element type for ``every_record_type``: small, valid, never "missing".
_SAMPLE = {"U1": 3, "U2": 2, "U4": 4, "U8": 8, "I1": -1, "I2": -2, "I4": -4, "I8": -8, "R4": 1.5, "R8": 2.5,
           "B1": 1, "N1": 5, "C1": "A", "Cn": "text", "Sn": "long text", "Bn": b"\x01\x02", "Dn": (9, b"\x0f\x01"),
           "Uf": 7, "Cf": "ab"}
# GDR values of every type code (0 = pad byte, 12 = Dn, 13 = N1).
_GDR = [(1, 7), (0, None), (2, 513), (3, 70000), (4, -5), (5, -300), (6, -70000), (7, 1.5), (8, 2.5),
        (10, "gdr text"), (11, "bytes"), (12, (9, b"\x0f\x01")), (13, 4)]


def _sample_values(rec: R.RecordDef, elements: int = 2) -> dict:
    """Values for every field of ``rec``: arrays of ``elements`` entries, widths of 2."""
    counts = {f.count for f in rec.fields if f.is_array}
    widths = {f.width for f in rec.fields if f.width}
    values: dict = {}
    for f in rec.fields:
        if f.type == "Vn":
            values[f.name] = _GDR
            values[f.count] = len(_GDR)
        elif f.is_array:
            values[f.name] = [_SAMPLE[f.type]] * elements
        elif f.name in widths:
            values[f.name] = 2
        elif f.name in counts:
            values[f.name] = elements
        else:
            values[f.name] = _SAMPLE[f.type]
    return values


def every_record_type(e: str = "<") -> bytes:
    """A small STDF file holding one record of every type in the record table (FAR,
    MIR and MRR once, at their places), each with every field present and arrays of
    two elements: it takes every decoding path the reader has for a field type."""
    middle = [record(rec.name, _sample_values(rec), e) for rec in R.RECORDS
              if rec.name not in ("FAR", "MIR", "MRR")]
    return stdf(middle, e)
