"""Magic-byte detection, decompression and archive unpacking, with a bomb guard.

Object keys can lie about their extension, so the real format is decided from
the first bytes only (``detect_compression``). ``unpack`` turns one object into
its regular-file members:

* single streams (``Z``, ``gz``, ``bz2``, ``xz``) give one ``Member(None, data)``;
  concatenated streams of the same kind (``cat a.gz b.gz``) are one stream, as
  with the command-line tools; a decompressed stream that is itself a tar archive
  (``.tar.gz``/``.tgz``, also ``.tar.bz2``/``.tar.xz``/``.tar.Z``) is unpacked;
* archives (``zip``, ``tar``, ``7z``) give one member per regular file, sorted by
  member name (stable for duplicate names); directories, symlinks, devices and
  other special entries are skipped. Member names are labels, never paths: no
  byte is ever written to disk.

Rejections (``Rejected.reason``):

``bomb``             the decompressed size would exceed ``max_bytes``, or the ratio
                     decompressed / compressed would exceed ``max_ratio``; decided
                     *while* decompressing, with bounded reads, so the huge output
                     is never allocated (also plain objects above ``max_bytes``)
``corrupt_archive``  a truncated or damaged stream/archive (the library's message
                     is kept in the detail), trailing garbage after a stream,
                     encrypted or unsupported archive entries

Text that is not UTF-8 after decompression is for the format layer to reject.

The output limit is one number for the whole object:
``limit = min(max_bytes, max_ratio * len(data))``, i.e. both guards at once.

Unix compress (``.Z``): LZW has no size field and ``ncompress`` no output limit,
and bounding the *input* cannot work: a 16-bit LZW code can expand to a string
as long as the dictionary is deep (up to ~64 KiB per 2-byte code once the table
is full, i.e. > 30,000:1), so any input bound strict enough to stop a bomb would
refuse honest files. ``ncompress.decompress(data, out)`` however streams its
output to ``out.write`` in small blocks (512 bytes here), and an exception raised
by ``write`` stops the C loop; a bounded sink therefore enforces the limit with
at most one block of overshoot. LZW also has no end marker, so a truncated
``.Z`` decodes to a shorter text: the format layer sees it as truncated (no END).

xz: the decoder's memory is bounded (``_XZ_MEMLIMIT``) because an xz header can
ask for a dictionary of up to 4 GiB that liblzma would allocate up front, a
memory bomb that output-size checks never see; exceeding it is a ``bomb``.
7z: py7zr offers no such decoder memory limit, so a 7z header's dictionary size
is not bounded here (its output is, by declared sizes and by the shared budget).
"""

from __future__ import annotations

import bz2
import io
import lzma
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import ncompress
import py7zr
import py7zr.exceptions
import py7zr.io

from failmap_assets.wafer.rejects import Rejected

COMPRESSION_KINDS = ("Z", "gz", "bz2", "xz", "zip", "7z", "tar", "plain")
REJECT_REASONS = ("bomb", "corrupt_archive")

DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_MAX_RATIO = 1000.0
_CHUNK = 1 << 20                 # bounded read size: output allocated per step
_XZ_MEMLIMIT = 256 << 20         # xz -9 needs ~65 MiB to decode; 256 MiB leaves room

_STREAM_MAGIC = {
    "gz": b"\x1f\x8b",
    "bz2": b"BZh",
    "xz": b"\xfd7zXZ\x00",
}


@dataclass(frozen=True)
class Member:
    """One decompressed file: ``name`` is the archive member name (None for a single stream)."""

    name: str | None
    data: bytes


def _is_tar(data: bytes) -> bool:
    # "ustar" at 257 is the POSIX/GNU magic; the header checksum is checked as
    # well so that a text file that happens to hold "ustar" at 257 stays text.
    if len(data) < 512 or data[257:262] != b"ustar":
        return False
    field = data[148:156].split(b"\0", 1)[0].strip()
    try:
        declared = int(field, 8)
    except ValueError:
        return False
    return declared in tarfile.calc_chksums(data[:512])


def detect_compression(data: bytes) -> str:
    """``Z``, ``gz``, ``bz2``, ``xz``, ``zip``, ``7z``, ``tar`` or ``plain``, from magic bytes only."""
    head = bytes(data[:8])
    if head.startswith(b"\x1f\x9d"):
        return "Z"
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    # "BZh" plus the block-size digit: three letters alone are too likely in text.
    if head.startswith(b"BZh") and len(head) > 3 and 0x31 <= head[3] <= 0x39:
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if _is_tar(data):
        return "tar"
    return "plain"


class _Budget:
    """How many decompressed bytes one object may produce in total; ``charge`` (the
    caller's memory budget) is told every new total before the bytes are kept."""

    def __init__(self, compressed_size: int, max_bytes: int, max_ratio: float,
                 charge: Callable[[int], None] | None = None):
        self.compressed_size = compressed_size
        self.max_bytes = max_bytes
        self.max_ratio = max_ratio
        self.limit = max(0, min(max_bytes, int(max_ratio * max(compressed_size, 1))))
        self.charge = charge

    def check(self, produced: int, what: str = "decompressed size") -> None:
        if self.charge is not None:
            self.charge(produced)
        if produced > self.limit:
            if produced > self.max_bytes:
                why = f"exceeds the {self.max_bytes}-byte limit"
            else:
                why = f"is more than {self.max_ratio:g} times the {self.compressed_size}-byte input"
            raise Rejected("bomb", f"{what} {produced} {why}: refused as a decompression bomb")

    def next_read(self, produced: int) -> int:
        # One byte past the limit is enough to prove it was crossed.
        return max(1, min(_CHUNK, self.limit - produced + 1))


def _corrupt(kind: str, exc: BaseException) -> Rejected:
    msg = str(exc) or type(exc).__name__
    return Rejected("corrupt_archive", f"{kind}: {msg}")


def _new_stream_decoder(kind: str):
    if kind == "gz":
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=_XZ_MEMLIMIT)


def _drain_one(kind: str, dec, src: bytes, out: bytearray, budget: _Budget) -> bytes:
    """Decode one stream from ``src`` into ``out``; returns the bytes after it."""
    if kind == "gz":
        pending = src
        while not dec.eof:
            chunk = dec.decompress(pending, budget.next_read(len(out)))
            pending = dec.unconsumed_tail
            out += chunk
            budget.check(len(out))
            if not chunk and not pending:
                break
        if not dec.eof:
            raise Rejected("corrupt_archive", "gz: stream is truncated (no end of stream)")
        return dec.unused_data
    first = True
    while not dec.eof:
        if first:
            chunk = dec.decompress(src, budget.next_read(len(out)))
            first = False
        elif dec.needs_input:
            raise Rejected("corrupt_archive", f"{kind}: stream is truncated (no end of stream)")
        else:
            chunk = dec.decompress(b"", budget.next_read(len(out)))
        out += chunk
        budget.check(len(out))
    return dec.unused_data


def _decompress_stream(kind: str, data: bytes, budget: _Budget) -> bytes:
    out = bytearray()
    src = data
    while True:
        try:
            rest = _drain_one(kind, _new_stream_decoder(kind), src, out, budget)
        except lzma.LZMAError as exc:
            if "memory" in str(exc).lower():
                raise Rejected("bomb", f"xz: decoder would need more than {_XZ_MEMLIMIT} bytes of memory") from exc
            raise _corrupt(kind, exc) from exc
        except (zlib.error, OSError, EOFError, ValueError) as exc:
            raise _corrupt(kind, exc) from exc
        if not rest:
            break
        if rest.startswith(_STREAM_MAGIC[kind]):
            src = rest          # another concatenated stream
            continue
        if not rest.strip(b"\0"):
            break               # block padding written by tape-era tools / xz stream padding
        raise Rejected("corrupt_archive", f"{kind}: {len(rest)} bytes of trailing data after the compressed stream")
    return bytes(out)


class _BoundedSink:
    """A write-only file whose writes stop the producer once the budget is spent."""

    def __init__(self, budget: _Budget, start: int = 0):
        self.budget = budget
        self.parts = io.BytesIO()
        self.total = start
        self.over: Rejected | None = None

    def write(self, b) -> int:
        n = len(b)
        self.total += n
        try:
            self.budget.check(self.total)
        except Rejected as exc:
            self.over = exc
            raise
        self.parts.write(b)
        return n

    def getvalue(self) -> bytes:
        return self.parts.getvalue()


def _decompress_z(data: bytes, budget: _Budget) -> bytes:
    sink = _BoundedSink(budget)
    try:
        ncompress.decompress(data, sink)
    except Exception as exc:  # noqa: BLE001 - the C extension's errors are ValueError/RuntimeError/...
        if sink.over is not None:
            raise sink.over from None
        raise _corrupt("Z", exc) from exc
    return sink.getvalue()


def _zip_is_regular(info: zipfile.ZipInfo) -> bool:
    if info.is_dir():
        return False
    mode = info.external_attr >> 16
    # Unix-made archives record the file type; anything but a regular file
    # (symlink, device, fifo) is skipped. Others record no type: regular.
    return stat.S_IFMT(mode) in (0, stat.S_IFREG)


def _read_bounded(read: Callable[[int], bytes], budget: _Budget, produced: int) -> tuple[bytes, int]:
    parts = []
    while True:
        chunk = read(budget.next_read(produced))
        if not chunk:
            return b"".join(parts), produced
        produced += len(chunk)
        budget.check(produced)
        parts.append(chunk)


def _sorted(members: list[Member]) -> list[Member]:
    return sorted(members, key=lambda m: m.name or "")


def _unpack_zip(data: bytes, budget: _Budget) -> list[Member]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in zf.infolist() if _zip_is_regular(i)]
    except Exception as exc:  # noqa: BLE001 - any failure to read the directory is a damaged archive
        raise _corrupt("zip", exc) from exc
    # Declared sizes first: catches overlapping-entry bombs before any inflate.
    budget.check(sum(i.file_size for i in infos), "declared uncompressed size")
    members, produced = [], 0
    for info in infos:
        try:
            with zf.open(info) as f:
                body, produced = _read_bounded(f.read, budget, produced)
        except Rejected:
            raise
        except Exception as exc:  # noqa: BLE001 - BadZipFile, zlib.error, encrypted, unsupported method...
            raise _corrupt("zip", exc) from exc
        members.append(Member(info.filename, body))
    return _sorted(members)


def _clean_name(name: str) -> str:
    # tarfile keeps undecodable bytes as lone surrogates, which later break any
    # UTF-8 writer (Parquet, JSON): replace them visibly instead.
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _unpack_tar(data: bytes, budget: _Budget) -> list[Member]:
    members, declared, produced = [], 0, 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
            for info in tf:
                if not info.isreg():
                    continue
                # Sparse members declare their expanded size: check before reading.
                declared += info.size
                budget.check(declared, "declared uncompressed size")
                f = tf.extractfile(info)
                if f is None:
                    continue
                body, produced = _read_bounded(f.read, budget, produced)
                if len(body) != info.size:
                    raise Rejected("corrupt_archive", f"tar: member {info.name!r} is truncated")
                members.append(Member(_clean_name(info.name), body))
    except Rejected:
        raise
    except Exception as exc:  # noqa: BLE001 - ReadError, EOFError, header decoding errors...
        raise _corrupt("tar", exc) from exc
    return _sorted(members)


class _SevenZipWriter(py7zr.io.Py7zIO):
    """One member's output; every write is charged to the shared budget first."""

    def __init__(self, owner: _SevenZipWriters):
        self.owner = owner
        self.buf = io.BytesIO()

    def write(self, s) -> int:
        self.owner.produced += len(s)
        self.owner.budget.check(self.owner.produced)
        return self.buf.write(s)

    def read(self, size=None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.buf.seek(offset, whence)

    def flush(self) -> None:
        pass

    def size(self) -> int:
        return self.buf.getbuffer().nbytes


class _SevenZipWriters(py7zr.io.WriterFactory):
    """py7zr asks this factory for one writer per member it extracts."""

    def __init__(self, budget: _Budget):
        self.budget = budget
        self.produced = 0
        self.files: list[tuple[str, _SevenZipWriter]] = []

    def create(self, filename: str) -> py7zr.io.Py7zIO:
        writer = _SevenZipWriter(self)
        self.files.append((filename, writer))
        return writer


def _unpack_7z(data: bytes, budget: _Budget) -> list[Member]:
    writers = _SevenZipWriters(budget)
    try:
        with py7zr.SevenZipFile(io.BytesIO(data), mode="r", max_extract_size=budget.limit) as z:
            infos = [i for i in z.list() if i.is_file and not i.is_directory and not i.is_symlink]
            budget.check(sum(int(i.uncompressed or 0) for i in infos), "declared uncompressed size")
            if infos:
                # With a writer factory py7zr never touches the file system; the
                # names it passes back are its sanitised member names.
                z.extract(targets=[i.filename for i in infos], factory=writers)
    except Rejected:
        raise
    except py7zr.exceptions.DecompressionBombError as exc:
        raise Rejected("bomb", f"7z: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - Bad7zFile, CrcError, PasswordRequired, unsupported filters...
        raise _corrupt("7z", exc) from exc
    return _sorted([Member(name, w.buf.getvalue()) for name, w in writers.files])


def unpack(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_ratio: float = DEFAULT_MAX_RATIO,
           charge: Callable[[int], None] | None = None) -> list[Member]:
    """The regular-file members of one object, decompressed, in member-name order.

    ``charge``, when given, is called with the running total of decompressed bytes
    (declared sizes first, where the format has them) before they are allocated; it
    may raise a ``Rejected`` subclass to stop (a memory budget that is spent).

    Raises ``Rejected`` (``bomb`` or ``corrupt_archive``). An archive without any
    regular file returns ``[]``: the caller decides what an empty archive means.
    """
    data = bytes(data)
    budget = _Budget(len(data), max_bytes, max_ratio, charge)
    kind = detect_compression(data)
    if kind == "plain":
        if len(data) > max_bytes:
            raise Rejected("bomb", f"object of {len(data)} bytes exceeds the {max_bytes}-byte limit")
        return [Member(None, data)]
    if kind == "zip":
        return _unpack_zip(data, budget)
    if kind == "7z":
        return _unpack_7z(data, budget)
    if kind == "tar":
        return _unpack_tar(data, budget)
    out = _decompress_z(data, budget) if kind == "Z" else _decompress_stream(kind, data, budget)
    if _is_tar(out):
        return _unpack_tar(out, budget)
    return [Member(None, out)]
