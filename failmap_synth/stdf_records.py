"""STDF V4 record layouts and a table-driven, vectorised record encoder.

``RECORDS`` lists each record's fields in file order with their STDF type codes; the
encoder turns field values into bytes for *many records at once*: every numeric
value may be an array with one entry per record, so one call packs e.g. the PTRs of
test 17 for all 5,000 dies. The result is a byte matrix (one row per record) plus a
mask of the bytes that exist; rows can then be laid side by side (PIR, PTRs, PRR of
one touchdown) and flattened into the file in a single step.

Trailing fields may be omitted per record (``keep_tail``), which is how testers
shorten repeated PTRs: REC_LEN simply ends earlier and readers treat the rest as
missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_NUMERIC = {"U1": "u1", "U2": "u2", "U4": "u4", "I1": "i1", "I2": "i2", "I4": "i4",
            "R4": "f4", "R8": "f8", "B1": "u1"}

RECORDS: dict[str, tuple[int, int, tuple[tuple[str, str], ...]]] = {
    "FAR": (0, 10, (("CPU_TYPE", "U1"), ("STDF_VER", "U1"))),
    "MIR": (1, 10, (("SETUP_T", "U4"), ("START_T", "U4"), ("STAT_NUM", "U1"), ("MODE_COD", "C1"),
                    ("RTST_COD", "C1"), ("PROT_COD", "C1"), ("BURN_TIM", "U2"), ("CMOD_COD", "C1"),
                    *((f, "Cn") for f in (
                        "LOT_ID", "PART_TYP", "NODE_NAM", "TSTR_TYP", "JOB_NAM", "JOB_REV", "SBLOT_ID",
                        "OPER_NAM", "EXEC_TYP", "EXEC_VER", "TEST_COD", "TST_TEMP", "USER_TXT",
                        "AUX_FILE", "PKG_TYP", "FAMLY_ID", "DATE_COD", "FACIL_ID", "FLOOR_ID",
                        "PROC_ID", "OPER_FRQ", "SPEC_NAM", "SPEC_VER", "FLOW_ID", "SETUP_ID",
                        "DSGN_REV", "ENG_ID", "ROM_COD", "SERL_NUM", "SUPR_NAM")))),
    "MRR": (1, 20, (("FINISH_T", "U4"), ("DISP_COD", "C1"), ("USR_DESC", "Cn"), ("EXC_DESC", "Cn"))),
    "PCR": (1, 30, (("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("PART_CNT", "U4"), ("RTST_CNT", "U4"),
                    ("ABRT_CNT", "U4"), ("GOOD_CNT", "U4"), ("FUNC_CNT", "U4"))),
    "HBR": (1, 40, (("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("HBIN_NUM", "U2"), ("HBIN_CNT", "U4"),
                    ("HBIN_PF", "C1"), ("HBIN_NAM", "Cn"))),
    "SBR": (1, 50, (("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("SBIN_NUM", "U2"), ("SBIN_CNT", "U4"),
                    ("SBIN_PF", "C1"), ("SBIN_NAM", "Cn"))),
    "SDR": (1, 80, (("HEAD_NUM", "U1"), ("SITE_GRP", "U1"), ("SITE_CNT", "U1"), ("SITE_NUM", "kSITE_CNT:U1"),
                    *((f, "Cn") for f in (
                        "HAND_TYP", "HAND_ID", "CARD_TYP", "CARD_ID", "LOAD_TYP", "LOAD_ID", "DIB_TYP",
                        "DIB_ID", "CABL_TYP", "CABL_ID", "CONT_TYP", "CONT_ID", "LASR_TYP", "LASR_ID",
                        "EXTR_TYP", "EXTR_ID")))),
    "WIR": (2, 10, (("HEAD_NUM", "U1"), ("SITE_GRP", "U1"), ("START_T", "U4"), ("WAFER_ID", "Cn"))),
    "WRR": (2, 20, (("HEAD_NUM", "U1"), ("SITE_GRP", "U1"), ("FINISH_T", "U4"), ("PART_CNT", "U4"),
                    ("RTST_CNT", "U4"), ("ABRT_CNT", "U4"), ("GOOD_CNT", "U4"), ("FUNC_CNT", "U4"),
                    ("WAFER_ID", "Cn"), ("FABWF_ID", "Cn"), ("FRAME_ID", "Cn"), ("MASK_ID", "Cn"),
                    ("USR_DESC", "Cn"), ("EXC_DESC", "Cn"))),
    "WCR": (2, 30, (("WAFR_SIZ", "R4"), ("DIE_HT", "R4"), ("DIE_WID", "R4"), ("WF_UNITS", "U1"),
                    ("WF_FLAT", "C1"), ("CENTER_X", "I2"), ("CENTER_Y", "I2"), ("POS_X", "C1"),
                    ("POS_Y", "C1"))),
    "PIR": (5, 10, (("HEAD_NUM", "U1"), ("SITE_NUM", "U1"))),
    "PRR": (5, 20, (("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("PART_FLG", "B1"), ("NUM_TEST", "U2"),
                    ("HARD_BIN", "U2"), ("SOFT_BIN", "U2"), ("X_COORD", "I2"), ("Y_COORD", "I2"),
                    ("TEST_T", "U4"), ("PART_ID", "Cn"), ("PART_TXT", "Cn"), ("PART_FIX", "Bn"))),
    "TSR": (10, 30, (("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("TEST_TYP", "C1"), ("TEST_NUM", "U4"),
                     ("EXEC_CNT", "U4"), ("FAIL_CNT", "U4"), ("ALRM_CNT", "U4"), ("TEST_NAM", "Cn"),
                     ("SEQ_NAME", "Cn"), ("TEST_LBL", "Cn"), ("OPT_FLAG", "B1"), ("TEST_TIM", "R4"),
                     ("TEST_MIN", "R4"), ("TEST_MAX", "R4"), ("TST_SUMS", "R4"), ("TST_SQRS", "R4"))),
    "PTR": (15, 10, (("TEST_NUM", "U4"), ("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("TEST_FLG", "B1"),
                     ("PARM_FLG", "B1"), ("RESULT", "R4"), ("TEST_TXT", "Cn"), ("ALARM_ID", "Cn"),
                     ("OPT_FLAG", "B1"), ("RES_SCAL", "I1"), ("LLM_SCAL", "I1"), ("HLM_SCAL", "I1"),
                     ("LO_LIMIT", "R4"), ("HI_LIMIT", "R4"), ("UNITS", "Cn"), ("C_RESFMT", "Cn"),
                     ("C_LLMFMT", "Cn"), ("C_HLMFMT", "Cn"), ("LO_SPEC", "R4"), ("HI_SPEC", "R4"))),
    "MPR": (15, 15, (("TEST_NUM", "U4"), ("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("TEST_FLG", "B1"),
                     ("PARM_FLG", "B1"), ("RTN_ICNT", "U2"), ("RSLT_CNT", "U2"),
                     ("RTN_STAT", "kRTN_ICNT:N1"), ("RTN_RSLT", "kRSLT_CNT:R4"), ("TEST_TXT", "Cn"),
                     ("ALARM_ID", "Cn"), ("OPT_FLAG", "B1"), ("RES_SCAL", "I1"), ("LLM_SCAL", "I1"),
                     ("HLM_SCAL", "I1"), ("LO_LIMIT", "R4"), ("HI_LIMIT", "R4"), ("START_IN", "R4"),
                     ("INCR_IN", "R4"), ("RTN_INDX", "kRTN_ICNT:U2"), ("UNITS", "Cn"), ("UNITS_IN", "Cn"),
                     ("C_RESFMT", "Cn"), ("C_LLMFMT", "Cn"), ("C_HLMFMT", "Cn"), ("LO_SPEC", "R4"),
                     ("HI_SPEC", "R4"))),
    "FTR": (15, 20, (("TEST_NUM", "U4"), ("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("TEST_FLG", "B1"),
                     ("OPT_FLAG", "B1"), ("CYCL_CNT", "U4"), ("REL_VADR", "U4"), ("REPT_CNT", "U4"),
                     ("NUM_FAIL", "U4"), ("XFAIL_AD", "I4"), ("YFAIL_AD", "I4"), ("VECT_OFF", "I2"),
                     ("RTN_ICNT", "U2"), ("PGM_ICNT", "U2"), ("RTN_INDX", "kRTN_ICNT:U2"),
                     ("RTN_STAT", "kRTN_ICNT:N1"), ("PGM_INDX", "kPGM_ICNT:U2"), ("PGM_STAT", "kPGM_ICNT:N1"),
                     ("FAIL_PIN", "Dn"), ("VECT_NAM", "Cn"), ("TIME_SET", "Cn"), ("OP_CODE", "Cn"),
                     ("TEST_TXT", "Cn"), ("ALARM_ID", "Cn"), ("PROG_TXT", "Cn"), ("RSLT_TXT", "Cn"),
                     ("PATG_NUM", "U1"), ("SPIN_MAP", "Dn"))),
}

# FAR.CPU_TYPE tells readers the byte order: 1 = big-endian (Sun), 2 = little-endian (PC).
CPU_TYPE = {">": 1, "<": 2}


@dataclass
class Rows:
    """Records as a byte matrix: row i is record i, ``mask`` marks the bytes that exist."""

    data: np.ndarray  # uint8 (n, w)
    mask: np.ndarray  # bool (n, w)

    def tobytes(self) -> bytes:
        return self.data[self.mask].tobytes()  # boolean indexing walks row-major

    @property
    def n(self) -> int:
        return int(self.data.shape[0])


def hstack(parts: Sequence[Rows]) -> Rows:
    """Lay record rows side by side: row i of the result is row i of each part in turn."""
    return Rows(np.hstack([p.data for p in parts]), np.hstack([p.mask for p in parts]))


def _numeric(value, code: str, endian: str, n: int) -> np.ndarray:
    dt = np.dtype(endian + _NUMERIC[code])
    col = np.empty(n, dt)
    col[...] = value  # broadcasts a scalar, checks an array's length
    return col.view(np.uint8).reshape(n, dt.itemsize)


def _strings(value, n: int, length_bytes: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Cn (or Bn) cells: a count byte then the text; per-row lengths via a mask."""
    if isinstance(value, (str, bytes)):
        b = value.encode("ascii") if isinstance(value, str) else value
        if len(b) > 255:
            raise ValueError(f"Cn/Bn value longer than 255 bytes: {b[:20]!r}...")
        row = np.frombuffer(bytes([len(b)]) + b, np.uint8)
        return np.repeat(row[None, :], n, axis=0), np.ones((n, row.size), bool)
    encoded = [v.encode("ascii") if isinstance(v, str) else bytes(v) for v in value]
    if len(encoded) != n:
        raise ValueError(f"{len(encoded)} strings for {n} records")
    lens = np.array([len(b) for b in encoded], np.int64)
    if lens.size and lens.max() > 255:
        raise ValueError("Cn value longer than 255 bytes")
    width = 1 + (int(lens.max()) if lens.size else 0)
    data = np.zeros((n, width), np.uint8)
    data[:, 0] = lens
    if lens.sum():
        flat = np.frombuffer(b"".join(encoded), np.uint8)
        rows = np.repeat(np.arange(n), lens)
        starts = np.repeat(np.cumsum(lens) - lens, lens)
        data[rows, 1 + np.arange(flat.size) - starts] = flat
    mask = np.arange(width)[None, :] <= lens[:, None]
    return data, mask


def _array(value, elem: str, k: int, endian: str, n: int) -> np.ndarray:
    """kxTYPE: the same count k in every record (values shaped (n, k) or (k,))."""
    v = np.broadcast_to(np.asarray(value), (n, k)) if k else np.zeros((n, 0))
    if elem == "N1":
        # Nibbles: first item in the low 4 bits; an odd count leaves the high nibble 0.
        padded = np.zeros((n, k + (k % 2)), np.uint8)
        padded[:, :k] = v
        return (padded[:, 0::2] | (padded[:, 1::2] << 4)).astype(np.uint8)
    dt = np.dtype(endian + _NUMERIC[elem])
    return np.ascontiguousarray(v.astype(dt)).view(np.uint8).reshape(n, k * dt.itemsize)


def encode(name: str, endian: str, n: int = 1, *, present: np.ndarray | None = None,
           tail_from: str | None = None, keep_tail: np.ndarray | None = None, **values) -> Rows:
    """``n`` records of type ``name``; fields not given are zero / empty / space.

    ``present`` (bool per row) drops whole records; fields from ``tail_from`` on are
    written only where ``keep_tail`` is set (the rest of those records is truncated).
    """
    typ, sub, fields = RECORDS[name]
    unknown = set(values) - {f for f, _ in fields}
    if unknown:
        raise KeyError(f"{name} has no field(s) {sorted(unknown)}")
    cols: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    tail = False
    # No record keeps its tail: leave those columns out instead of masking them.
    drop_tail = keep_tail is not None and not np.any(keep_tail)
    counts: dict[str, int | None] = {}  # array lengths come from earlier count fields
    for fname, code in fields:
        tail = tail or fname == tail_from
        if tail and drop_tail:
            break
        value = values.get(fname)
        if code in _NUMERIC:
            c = _numeric(0 if value is None else value, code, endian, n)
            m = np.ones(c.shape, bool)
            if code in ("U1", "U2"):
                counts[fname] = int(value or 0) if np.ndim(value) == 0 else None
        elif code == "C1":
            ch = (value or " ").encode("ascii")
            c, m = np.full((n, 1), ch[0], np.uint8), np.ones((n, 1), bool)
        elif code in ("Cn", "Bn"):
            c, m = _strings("" if value is None else value, n)
        elif code == "Dn":
            # Only empty bit fields are needed here: a 2-byte zero bit count.
            if value:
                raise NotImplementedError("non-empty Dn fields")
            c, m = np.zeros((n, 2), np.uint8), np.ones((n, 2), bool)
        else:  # "kCOUNT:TYPE"
            count_field, elem = code[1:].split(":")
            k = counts[count_field]
            if k is None:
                raise ValueError(f"{name}.{count_field} must be one count for all records")
            c = _array(0 if value is None else value, elem, k, endian, n)
            m = np.ones(c.shape, bool)
        if tail and keep_tail is not None:
            m = m & keep_tail[:, None]
        cols.append(c)
        masks.append(m)
    body = np.hstack(cols) if cols else np.zeros((n, 0), np.uint8)
    body_mask = np.hstack(masks) if masks else np.zeros((n, 0), bool)
    rec_len = body_mask.sum(axis=1)
    if rec_len.size and rec_len.max() > 65535:
        raise ValueError(f"{name} longer than 65535 bytes")
    head = np.hstack([_numeric(rec_len, "U2", endian, n), _numeric(typ, "U1", endian, n),
                      _numeric(sub, "U1", endian, n)])
    data = np.hstack([head, body])
    mask = np.hstack([np.ones((n, 4), bool), body_mask])
    if present is not None:
        mask &= np.asarray(present, bool)[:, None]
    return Rows(data, mask)


def record(name: str, endian: str, **values) -> bytes:
    """One record's bytes."""
    return encode(name, endian, 1, **values).tobytes()
