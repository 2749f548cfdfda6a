"""Every cached Numba kernel of the package, and whether Numba's cache holds code for
each that this machine can load.

A kernel here is a module-level cached dispatcher (``@kernel``, kernels/jit.py) defined in
one of ``KERNEL_PACKAGES``. Numba keys a cached entry by the signature, the machine (target
triple, CPU name and features: ``codegen.magic_tuple()``) and the function's bytecode,
and drops the whole index of a function whose stamp changed (kernels/jit.py: its file or
any module of ours it imports) or that another Numba version wrote. So "warm" means: for each kernel, the index Numba would
read holds an entry whose key is exactly the key this process would compute.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass

#: where the kernels live (``kernels/``: fail-map text and JSON chips; ``stdf/``: the STDF
#: decoder; ``maps/`` and ``formats/`` hold none today, but a kernel added there is found)
KERNEL_PACKAGES = ("failmap_assets.kernels", "failmap_assets.stdf", "failmap_assets.maps", "failmap_assets.formats")


@dataclass(frozen=True)
class Kernel:
    name: str          # module.function
    dispatcher: object


@dataclass(frozen=True)
class CacheState:
    kernel: str
    cache_path: str    # the folder Numba reads and writes this kernel's cache in
    entries: int       # entries in its index (any machine)
    usable: int        # entries this process would load (same machine, bytecode, Numba)


def cached_kernels() -> list[Kernel]:
    """Every cached dispatcher (``@kernel``) defined in ``KERNEL_PACKAGES``, by name."""
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    found: dict[str, Kernel] = {}
    for package in KERNEL_PACKAGES:
        pkg = importlib.import_module(package)
        names = [package] + [m.name for m in pkgutil.walk_packages(pkg.__path__, package + ".")]
        for module_name in names:
            module = importlib.import_module(module_name)
            for attr, value in vars(module).items():
                if (isinstance(value, Dispatcher) and value.py_func.__module__ == module_name
                        and not isinstance(value._cache, NullCache)):
                    found[f"{module_name}.{attr}"] = Kernel(f"{module_name}.{attr}", value)
    return [found[k] for k in sorted(found)]


def cache_state(kernel: Kernel) -> CacheState:
    """What Numba's cache holds for ``kernel`` (read only: nothing is compiled)."""
    cache = kernel.dispatcher._cache
    index = cache._cache_file._load_index()   # {} when missing, stale or of another Numba
    codegen = kernel.dispatcher.targetctx.codegen()
    usable = sum(1 for key in index if cache._index_key(key[0], codegen) == key)
    return CacheState(kernel.name, cache._cache_path, len(index), usable)


def cache_dir_problem(path: str) -> str | None:
    """Why Numba would not use ``path`` as its cache directory, or None. Numba checks
    that it can create the folder and write a temporary file in it, even to load, and
    otherwise falls back to another location without a word."""
    import tempfile

    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as exc:
        return f"{path} is not writable ({exc.strerror or exc}): Numba ignores a cache directory it cannot write to"
    return None
