"""Every container a tester's files arrive in, written byte-for-byte reproducibly.

Archive formats embed timestamps (gzip, zip, tar, 7z): all of them get the file's own
STIME instead of the wall clock, so the same seed always yields the same bytes.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import time
import zipfile

import ncompress
import numpy as np
import py7zr
from py7zr.helpers import ArchiveTimestamp

# Extensions a key can carry, and the real compression behind each.
FORMATS = ("Z", "gz", "bz2", "xz", "7z", "zip", "tar", "tar.gz", "tgz", "txt")
ARCHIVES = ("zip", "tar", "tar.gz", "tgz", "7z")  # can hold several members

# Fast levels: a tester compresses on the fly, and the generator must write a
# thousand wafers in seconds (zlib level 6 is ~6x slower than 1 on map text for
# a ~20 % smaller file). Readers do not care which level was used.
_GZIP_LEVEL = 1
_BZ2_LEVEL = 9  # bz2's speed hardly depends on the level
_XZ_PRESET = 0
_7Z_FILTERS = [{"id": py7zr.FILTER_LZMA2, "preset": 0}]


def _gzip(data: bytes, mtime: int, name: str | None = None) -> bytes:
    buf = io.BytesIO()
    # gzip stores the original file name, as `gzip file` does; never the wall clock.
    with gzip.GzipFile(filename=name or "", mode="wb", fileobj=buf, compresslevel=_GZIP_LEVEL, mtime=mtime) as f:
        f.write(data)
    return buf.getvalue()


def gzip_bytes(data: bytes, mtime: int, name: str | None = None) -> bytes:
    """gzip with a fixed header time (and optional original name)."""
    return _gzip(data, mtime, name)


def _zip(members: list[tuple[str, bytes | None]], mtime: int, deflate: bool) -> bytes:
    buf = io.BytesIO()
    stamp = time.gmtime(max(mtime, 315532800))[:6]  # zip cannot store dates before 1980
    with zipfile.ZipFile(buf, "w", compresslevel=_GZIP_LEVEL) as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.create_system = 3  # unix; the default depends on the OS we run on
            if data is None:  # a folder entry
                info.external_attr = (0o40755 << 16) | 0x10
                z.writestr(info, b"")
                continue
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
            z.writestr(info, data, compresslevel=_GZIP_LEVEL)
    return buf.getvalue()


def _tar(members: list[tuple[str, bytes | None]], mtime: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            info.uname = info.gname = "tester"
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
                continue
            info.mode = 0o644
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _7z(members: list[tuple[str, bytes | None]], mtime: int) -> bytes:
    buf = io.BytesIO()
    stamp = ArchiveTimestamp.from_datetime(mtime)
    with py7zr.SevenZipFile(buf, "w", filters=_7Z_FILTERS) as z:
        # A plain header, as 7-Zip writes for small archives; the LZMA-encoded header
        # would cost a ~30 ms compressor set-up per file.
        z.set_encoded_header_mode(False)
        for name, data in members:
            if data is None:
                continue  # py7zr cannot write an empty folder entry from memory
            z.writestr(data, name)
            # py7zr stamps in-memory members with time.time(); pin them to STIME.
            info = z.header.files_info.files[-1]
            for k in ("creationtime", "lastwritetime", "lastaccesstime"):
                info[k] = stamp
    return buf.getvalue()


def compress(members: list[tuple[str, bytes | None]], fmt: str, *, mtime: int,
             deflate: bool = True) -> bytes:
    """The object bytes for ``members`` (name, data; data None = folder) in ``fmt``.

    Stream formats (Z, gz, bz2, xz, txt) take exactly one member; its name only
    appears in gzip's header. ``deflate=False`` writes zip members stored.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    if fmt not in ARCHIVES:
        if len(members) != 1 or members[0][1] is None:
            raise ValueError(f"{fmt} holds exactly one file")
        name, data = members[0]
        assert data is not None
        if fmt == "txt":
            return data
        if fmt == "Z":
            return ncompress.compress(data)
        if fmt == "gz":
            return _gzip(data, mtime, name)
        if fmt == "bz2":
            return bz2.compress(data, _BZ2_LEVEL)
        return lzma.compress(data, preset=_XZ_PRESET)
    if fmt == "zip":
        return _zip(members, mtime, deflate)
    if fmt == "tar":
        return _tar(members, mtime)
    if fmt in ("tar.gz", "tgz"):
        return _gzip(_tar(members, mtime), mtime)
    return _7z(members, mtime)


def corrupt(data: bytes, rng: np.random.Generator) -> bytes:
    """Damage the middle of a compressed object (bad sectors, a botched transfer).

    64 bytes of noise in the payload: the decompressor or its CRC check must fail.
    """
    n = len(data)
    if n < 16:
        return bytes(rng.integers(0, 256, 32, dtype=np.uint8))
    span = min(64, max(4, n // 4))
    start = int(rng.integers(n // 3, max(n // 3 + 1, n - n // 4 - span)))
    noise = rng.integers(0, 256, span, dtype=np.uint8).tobytes()
    return data[:start] + noise + data[start + span:]


def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    """An upload cut short: keep 30..80 % of the bytes."""
    return data[: max(1, int(len(data) * rng.uniform(0.3, 0.8)))]
