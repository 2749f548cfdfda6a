"""Keep freed memory for the next file instead of handing it back to the OS (glibc only).

A conversion allocates ~2.5x the file's size in short-lived numpy / Arrow buffers. With
glibc's defaults every buffer above a few MB is a fresh mmap, returned on free, so each
file pays for touching all of its pages again: on a PRR-heavy 40 MB file that was 20-30 %
of the CPU time (system time for ~25k page faults). Raising the mmap and trim thresholds
once per process lets a converting worker reuse its heap from file to file. The cost: a
worker's resident memory stays at its largest file's peak (it is reused, not leaked).

Also, numpy stops asking the kernel for transparent huge pages for its big buffers
(``madvise(MADV_HUGEPAGE)``, numpy's default on Linux): with THP in ``madvise`` mode the first
touch of such a buffer may wait for the kernel to compact memory into 2 MiB pages. Measured on
a 40 MB file's first conversions in fresh processes (`user+sys` CPU s, three processes each):
with huge pages 5 of 9 runs paid 0.17-0.23 s of system time (2-3x the whole conversion), without
them none paid more than 0.07 s. Kernels' buffers are sized by capacity and touched in part,
which is where a huge page costs most.

``FAILMAP_STDF_KEEP_FREED_MEMORY=0`` keeps glibc's and numpy's defaults (a memory-tight worker).
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
_LIMIT = 1 << 30            # buffers up to 1 GiB from the heap; keep up to 1 GiB free at its top
_result: bool | None = None


def keep_freed_memory() -> bool:
    """Set the thresholds once per process; True when glibc took them."""
    global _result
    if _result is None:
        _result = _set()
    return _result


def _set() -> bool:
    from failmap_assets.settings import Settings   # the one reader of the environment

    if not sys.platform.startswith("linux") or not Settings.from_env().stdf_keep_freed_memory:
        return False
    _no_huge_pages_for_numpy()
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False            # not glibc (musl, ...): keep the allocator's defaults
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(M_TRIM_THRESHOLD, _LIMIT))
    # glibc may cap the mmap threshold (32 MiB on some versions): take the largest it accepts
    return ok and bool(mallopt(M_MMAP_THRESHOLD, _LIMIT) or mallopt(M_MMAP_THRESHOLD, 32 << 20))


def _no_huge_pages_for_numpy() -> None:
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:         # numpy < 2: the same switch under its old name
        try:
            from numpy.core.multiarray import _set_madvise_hugepage
        except ImportError:
            return
    _set_madvise_hugepage(False)
