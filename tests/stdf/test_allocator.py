"""The allocator setting of converting processes (allocator.keep_freed_memory)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = ("from failmap_assets.stdf.allocator import keep_freed_memory as k; print(k(), k(), end=' ');"
        "from numpy._core.multiarray import _set_madvise_hugepage as h; print('huge' if h(False) else 'small')")


def _run(env_value: str | None) -> str:
    env = dict(os.environ)
    env.pop("FAILMAP_STDF_KEEP_FREED_MEMORY", None)
    env.pop("NUMPY_MADVISE_HUGEPAGE", None)
    if env_value is not None:
        env["FAILMAP_STDF_KEEP_FREED_MEMORY"] = env_value
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt: Linux only")
def test_glibc_takes_the_thresholds_once_per_process():
    """... and numpy's buffers stop asking for transparent huge pages (allocator.py says why)."""
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert _run(None) == "True True small"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="numpy asks for huge pages on Linux only")
def test_opt_out_keeps_the_defaults():
    assert _run("0") == "False False huge"
