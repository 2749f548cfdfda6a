"""Bytes in: a path, bytes or a buffer, decompressed by magic bytes, as one uint8 array.

Plain files are memory-mapped (no copy); compressed ones (gz, bz2, xz, zip, .Z,
also 7z / tar) go through ``failmap_assets.formats.compression.unpack`` with its bomb guard.
Every array handed to the kernels is read-only and C-contiguous, so Numba compiles
(and caches) one specialisation only.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from failmap_assets.formats.compression import detect_compression, unpack
from failmap_assets.wafer.rejects import Rejected


@dataclass
class Source:
    """One STDF byte stream."""

    name: str                 # file name (plus "!member" for archive members)
    data: np.ndarray          # uint8, read-only, C-contiguous
    compression: str          # "plain", "gz", ...
    member: str | None = None
    size_on_disk: int = 0     # bytes before decompression

    @property
    def nbytes(self) -> int:
        return int(self.data.shape[0])


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.uint8).reshape(-1)
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


def as_array(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return _readonly(data)
    return _readonly(np.frombuffer(data, dtype=np.uint8))


def _map_file(path: Path) -> np.ndarray:
    size = path.stat().st_size
    if size == 0:
        return _readonly(np.zeros(0, dtype=np.uint8))
    with open(path, "rb") as f:
        # MAP_POPULATE maps the whole (page-cached) file in one go instead of one fault per page
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        mm = mmap.mmap(f.fileno(), 0, flags=flags, prot=mmap.PROT_READ)
    # np.frombuffer keeps the mmap alive for as long as the array lives.
    return _readonly(np.frombuffer(mm, dtype=np.uint8))


def open_sources(src: str | os.PathLike | bytes | bytearray | memoryview | np.ndarray,
                 *, name: str | None = None, max_bytes: int = 1 << 32,
                 max_ratio: float = 1000.0) -> list[Source]:
    """The STDF streams in ``src``: one for a plain or single-stream file, one per archive member."""
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        label = name or path.name
        data = _map_file(path)
        disk = int(data.shape[0])
    else:
        label = name or "<bytes>"
        data = as_array(src)
        disk = int(data.shape[0])
    kind = detect_compression(bytes(data[:1024])) if data.shape[0] else "plain"
    if kind == "plain":
        return [Source(label, data, "plain", None, disk)]
    members = unpack(data.tobytes(), max_bytes=max_bytes, max_ratio=max_ratio)
    if not members:
        raise Rejected("empty_archive", f"{label}: the {kind} archive holds no file")
    out = []
    for m in members:
        mname = f"{label}!{m.name}" if m.name else label
        out.append(Source(mname, as_array(m.data), kind, m.name, disk))
    return out
