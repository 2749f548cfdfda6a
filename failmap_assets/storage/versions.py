"""Object versions: an object is identified by (key, etag); its 64-bit hash.

The sensors' seen-ledgers and the days' manifests both record which versions they
have accounted for as sets of these hashes (collision odds for the ~10^4..10^5
versions of a few days: ~10^-10), so they can be compared with each other.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from array import array
from collections.abc import Iterable


def entry_hash(key: str, etag: str) -> int:
    """64-bit ledger entry of one object version."""
    k = key.encode("utf-8", "surrogatepass")
    data = len(k).to_bytes(4, "little") + k + etag.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def encode_hashes(hashes: Iterable[int]) -> str:
    """Sorted little-endian uint64 array -> zlib -> base64 (ASCII)."""
    arr = array("Q", sorted(hashes))
    if arr.itemsize != 8:  # pragma: no cover - every supported platform has 8-byte Q
        raise RuntimeError("array('Q') is not 64-bit on this platform")
    return base64.b64encode(zlib.compress(arr.tobytes(), 6)).decode("ascii")


def decode_hashes(text: str) -> set[int]:
    arr = array("Q")
    arr.frombytes(zlib.decompress(base64.b64decode(text)))
    return set(arr)
