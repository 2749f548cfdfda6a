"""Byte order / version detection and the Numba record scan.

The scan walks the record headers (REC_LEN, REC_TYP, REC_SUB) of one contiguous
uint8 buffer and returns the record index: header offset, body length, type and
sub-type of every record. It checks bounds before every read and stops at the
first structural corruption, reporting the byte offset and the reason; every
record before that point is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from failmap_assets.kernels.jit import kernel
from failmap_assets.wafer.rejects import Rejected
from .records import code_table

# error codes of the scan kernel (0: clean end of data)
SCAN_TRUNCATED_HEADER = 1
SCAN_PAST_END = 2
SCAN_ZERO_HEADER = 3

CPU_NAMES = {0: "DEC PDP-11/VAX", 1: "Sun 1-4 (big-endian)", 2: "PC / Sun 386i (little-endian)"}


@dataclass
class Issue:
    """Something wrong in a file: where (byte offset, record ordinal) and why."""

    offset: int
    reason: str
    detail: str
    record: int | None = None
    severity: str = "error"   # "error": data lost; "warning": data kept, but doubtful

    def __str__(self) -> str:
        rec = f", record {self.record}" if self.record is not None else ""
        return f"{self.reason} at byte {self.offset}{rec}: {self.detail}"


@dataclass
class Header:
    big_endian: bool
    cpu_type: int
    stdf_ver: int
    issues: list[Issue] = field(default_factory=list)

    @property
    def byte_order(self) -> str:
        return "big" if self.big_endian else "little"


def detect(buf: np.ndarray, name: str = "<stdf>") -> Header:
    """Byte order from the FAR's REC_LEN bytes, cross-checked with CPU_TYPE; version check.

    Raises ``Rejected`` when the stream is not STDF V4 (``not_stdf``, ``stdf_v3``,
    ``unsupported_version``, ``empty``).
    """
    n = int(buf.shape[0])
    if n == 0:
        raise Rejected("empty", f"{name}: the file is empty")
    if n < 6:
        raise Rejected("not_stdf", f"{name}: {n} bytes is too short for an STDF FAR record")
    b = bytes(buf[:6])
    typ, sub, cpu, ver = b[2], b[3], b[4], b[5]
    if (typ, sub) != (0, 10):
        if ver == 3 or (cpu in (0, 1, 2) and ver == 3):
            raise Rejected("stdf_v3", f"{name}: STDF V3 file (version byte 3); only STDF V4 / V4-2007 is supported")
        raise Rejected("not_stdf", f"{name}: the first record is type {typ}/{sub}, not a FAR (0/10): not an STDF file")
    if b[:2] == b"\x02\x00":
        be_len = False
    elif b[:2] == b"\x00\x02":
        be_len = True
    else:
        be_len = None
    be_cpu = {1: True, 2: False, 0: False}.get(cpu)
    issues: list[Issue] = []
    if ver != 4:
        if ver == 3:
            raise Rejected("stdf_v3", f"{name}: STDF V3 file (FAR STDF_VER=3); only STDF V4 / V4-2007 is supported")
        raise Rejected("unsupported_version", f"{name}: FAR STDF_VER={ver}; only STDF V4 / V4-2007 is supported")
    if be_len is None:
        if be_cpu is None:
            raise Rejected("not_stdf", f"{name}: FAR REC_LEN bytes {b[:2].hex()} are neither 0200 nor 0002 "
                                       f"and CPU_TYPE={cpu} is unknown: cannot tell the byte order")
        big = be_cpu
        issues.append(Issue(0, "far_length", f"FAR REC_LEN bytes {b[:2].hex()} (expected 2); byte order "
                                             f"taken from CPU_TYPE={cpu}", 0, "warning"))
    else:
        big = be_len
        if be_cpu is not None and be_cpu != be_len:
            issues.append(Issue(0, "cpu_type_mismatch",
                                f"CPU_TYPE={cpu} ({CPU_NAMES.get(cpu)}) contradicts the FAR REC_LEN bytes "
                                f"{b[:2].hex()}; decoding as {'big' if big else 'little'}-endian", 0, "warning"))
        elif be_cpu is None:
            issues.append(Issue(0, "cpu_type_unknown",
                                f"CPU_TYPE={cpu} is not a standard value; decoding as "
                                f"{'big' if big else 'little'}-endian from the FAR REC_LEN bytes", 0, "warning"))
        if cpu == 0:
            issues.append(Issue(0, "vax_floats", "CPU_TYPE=0 (DEC VAX): floats are decoded as IEEE, "
                                                 "which VAX F/D floats are not", 0, "warning"))
    return Header(big, cpu, ver, issues)


@kernel
def _scan_kernel(buf, start, big_endian, table, offs, lens, codes):
    """Walk the headers from ``start`` into offs / lens / codes (sized for the worst case:
    only the pages actually written are ever touched). Returns (n, err, stop offset)."""
    n_bytes = buf.shape[0]
    cap = offs.shape[0]
    pos = start
    n = 0
    err = 0
    while pos < n_bytes:
        if pos + 4 > n_bytes:
            err = 1
            break
        if big_endian:
            ln = (np.int64(buf[pos]) << 8) | np.int64(buf[pos + 1])
        else:
            ln = np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8)
        t = buf[pos + 2]
        s = buf[pos + 3]
        if t == 0 and s == 0:
            err = 3
            break
        if pos + 4 + ln > n_bytes:
            err = 2
            break
        if n >= cap:
            err = 4
            break
        offs[n] = pos
        lens[n] = ln
        codes[n] = table[(np.int64(t) << 8) | np.int64(s)]
        n += 1
        pos += 4 + ln
    return n, err, pos


@kernel
def _types_at(buf, offs):
    typ = np.empty(offs.shape[0], dtype=np.uint8)
    sub = np.empty(offs.shape[0], dtype=np.uint8)
    for i in range(offs.shape[0]):
        typ[i] = buf[offs[i] + 2]
        sub[i] = buf[offs[i] + 3]
    return typ, sub


_CODE_TABLE = code_table()


@dataclass
class RecordIndex:
    """Where every record is: header offset, body length and record code."""

    offset: np.ndarray   # int64, offset of the 4-byte header
    length: np.ndarray   # int32, REC_LEN (body bytes)
    code: np.ndarray     # uint8, records.CODE (0 = unknown type)
    end: int             # byte offset where the scan stopped
    issue: Issue | None  # why it stopped early (None: clean end of data)
    buf: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.offset.shape[0])

    def types(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """REC_TYP and REC_SUB of the records at ``positions`` (read from the buffer)."""
        return _types_at(self.buf, np.ascontiguousarray(self.offset[positions]))


def scan(buf: np.ndarray, big_endian: bool, start: int = 0) -> RecordIndex:
    # Worst case one record per 4 bytes; np.empty only reserves address space, and the
    # scan touches just the entries it fills, so over-allocating is free.
    cap = (int(buf.shape[0]) - start) // 4 + 1
    offs = np.empty(cap, dtype=np.int64)
    lens = np.empty(cap, dtype=np.int32)
    codes = np.empty(cap, dtype=np.uint8)
    n, err, stop = _scan_kernel(buf, start, big_endian, _CODE_TABLE, offs, lens, codes)
    offs, lens, codes = offs[:n], lens[:n], codes[:n]
    issue = None
    total = int(buf.shape[0])
    if err == SCAN_TRUNCATED_HEADER:
        issue = Issue(stop, "truncated_header",
                      f"{total - stop} byte(s) left at the end of the file, too few for a record header", n)
    elif err == SCAN_PAST_END:
        b = bytes(buf[stop:stop + 4])
        ln = int.from_bytes(b[:2], "big" if big_endian else "little")
        issue = Issue(stop, "record_past_end",
                      f"record header (type {b[2]}/{b[3]}) claims {ln} bytes but only {total - stop - 4} remain", n)
    elif err == SCAN_ZERO_HEADER:
        rest = buf[stop:]
        if not rest.any():
            issue = Issue(stop, "zero_padding", f"{total - stop} zero bytes after the last record", n, "warning")
        else:
            issue = Issue(stop, "zero_filled",
                          f"record header of type 0/0 (zero-filled or garbage bytes); {total - stop} bytes "
                          f"from here on are not decoded", n)
    return RecordIndex(offs, lens, codes, int(stop), issue, buf)
