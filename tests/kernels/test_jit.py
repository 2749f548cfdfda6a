"""``@kernel``: a cached kernel is compiled again when any module it imports changes, not
only its own file (Numba's own stamp), and loaded from the cache when nothing changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from failmap_assets.kernels import jit

from ..support.numba_cache import clean_env

PACKAGE = Path(jit.__file__).resolve().parents[1]

HELPER = """
from numba import njit


@njit(cache=True, nogil=True)
def step():
    return {value}
"""

CALLERS = """
from numba import njit

from failmap_assets.kernels.jit import kernel

from .helper import step


@kernel
def stamped():
    return step()


@njit(cache=True, nogil=True)
def plain():
    return step()
"""

RUN = """
import json
import os
from stampcheck.callers import plain, stamped

values = {"stamped": stamped(), "plain": plain()}
print(json.dumps({"values": values, "stamped_hits": sum(stamped.stats.cache_hits.values()),
                  "stamped_misses": sum(stamped.stats.cache_misses.values())}))
"""


def _run(tmp: Path) -> dict:
    # the package under test (PACKAGE.parent) before any installed copy
    env = clean_env(NUMBA_CACHE_DIR=str(tmp / "cache"), PYTHONPATH=f"{tmp}{os.pathsep}{PACKAGE.parent}")
    done = subprocess.run([sys.executable, "-c", RUN], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_kernel_is_compiled_again_when_a_helper_it_imports_changes(tmp_path):
    pkg = tmp_path / "stampcheck"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "callers.py").write_text(CALLERS)
    (pkg / "helper.py").write_text(HELPER.format(value=1))

    first = _run(tmp_path)
    assert first["values"] == {"stamped": 1, "plain": 1}
    assert first["stamped_misses"] == 1

    again = _run(tmp_path)       # nothing changed: loaded from the cache, not compiled
    assert again["values"] == {"stamped": 1, "plain": 1}
    assert again["stamped_hits"] == 1 and again["stamped_misses"] == 0

    (pkg / "helper.py").write_text(HELPER.format(value=2))   # only the helper's file changes
    changed = _run(tmp_path)
    assert changed["values"]["stamped"] == 2
    assert changed["stamped_misses"] == 1
    # Numba's own stamp looks at the caller's file only: the plain kernel still returns
    # what the old helper computed. This is what ``kernel`` is for.
    assert changed["values"]["plain"] == 1


def test_the_closure_follows_relative_absolute_and_nested_imports():
    ptr = PACKAGE / "stdf" / "decode" / "ptr.py"
    names = {str(p.relative_to(PACKAGE)) for p in jit.import_closure(ptr)}
    # from .. import records; from .primitives import ...; from .strings import ...;
    # from failmap_assets.kernels.jit import kernel
    assert {"stdf/decode/ptr.py", "stdf/records.py", "stdf/decode/primitives.py", "stdf/decode/strings.py",
            "kernels/jit.py"} <= names
    assert "defs/__init__.py" not in names and "stdf/tables.py" not in names
    tables = {str(p.relative_to(PACKAGE)) for p in jit.import_closure(PACKAGE / "stdf" / "tables.py")}
    assert names < tables      # tables imports decode, which imports ptr (transitively)


def test_every_cached_kernel_of_the_package_is_compiled_by_kernel():
    from failmap_assets.admin.kernels import cached_kernels

    kernels = cached_kernels()
    assert len(kernels) > 40
    plain = [k.name for k in kernels if not isinstance(k.dispatcher._cache._impl.locator, jit.ClosureStampedLocator)]
    assert plain == [], f"use failmap_assets.kernels.jit.kernel, not njit(cache=True): {plain}"


def test_the_stamp_changes_with_any_file_of_the_closure(tmp_path):
    pkg = tmp_path / "stamppkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from . import b\nfrom ..c import X\n")
    (pkg / "sub" / "b.py").write_text("Y = 1\n")
    (pkg / "c.py").write_text("X = 1\n")
    (pkg / "d.py").write_text("Z = 1\n")
    a = (pkg / "sub" / "a.py").resolve()
    assert [p.name for p in jit.import_closure(a)] == ["c.py", "a.py", "b.py"]

    def stamp() -> str:
        jit.imported_files.cache_clear()
        jit.closure_stamp.cache_clear()
        return jit.closure_stamp(a)

    before = stamp()
    (pkg / "d.py").write_text("Z = 2\n")         # not imported: same stamp
    assert stamp() == before
    (pkg / "c.py").write_text("X = 2\n")
    assert stamp() != before


def test_kernel_passes_numba_options_through():
    @jit.kernel(boundscheck=True)
    def read(a, i):
        return a[i]

    import numpy as np
    import pytest

    assert read(np.arange(3), 2) == 2
    with pytest.raises(IndexError):
        read(np.arange(3), 5)


def test_functions_not_compiled_by_kernel_keep_numbas_locators():
    from numba import njit

    jit._install()

    @njit(cache=True)
    def other():
        return 1

    assert not isinstance(other._cache._impl.locator, jit.ClosureStampedLocator)


def test_inlined_helpers_have_no_cache_of_their_own_and_their_callers_follow_their_file():
    from numba.core.caching import NullCache

    from failmap_assets.stdf.decode import ftr, overrides

    assert isinstance(overrides._test_of._cache, NullCache)     # compiled into each caller only
    assert overrides._test_of.targetoptions.get("inline") == "always"
    closure = jit.import_closure(PACKAGE / "stdf" / "decode" / "ftr.py")
    assert PACKAGE / "stdf" / "decode" / "overrides.py" in closure
    assert isinstance(ftr._ftr_kernel._cache._impl.locator, jit.ClosureStampedLocator)
