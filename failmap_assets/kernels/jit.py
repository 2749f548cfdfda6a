"""``@kernel``: the one way this package compiles a Numba kernel (``njit``, cached on disk,
GIL released), with a cache stamp that sees every file the kernel can compile in.

Why not plain ``@njit(cache=True)``: Numba drops a cached kernel when the file that defines
it changes, and only then. A kernel also compiles in the jitted helpers and the constants
it imports from other modules (``from .primitives import _u4``, ``from .. import records``),
so after a change to a helper's file alone, a process would load the old machine code and
compute with the old helper, without a word. That happens to a developer after ``git pull``
in an editable install, and to any deployment that keeps ``NUMBA_CACHE_DIR`` across
upgrades. Here a kernel's stamp is the content hash of its own file and of every module of
this package it imports, transitively: change any of them and the kernel is compiled again.
A file that is not imported (the Dagster wiring, say) leaves the cache alone.

The stamp goes through Numba's cache locator, found before Numba's own: the cache stays
where Numba would put it (``NUMBA_CACHE_DIR`` or ``__pycache__`` beside the sources), only
its freshness check is wider.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

from numba import njit
from numba.core import caching

#: the functions ``kernel`` compiled: the only ones whose cache gets the closure stamp
_STAMPED: set = set()


def kernel(fn=None, **options):
    """``@kernel`` or ``@kernel(boundscheck=True)``: ``njit(cache=True, nogil=True, **options)``
    with this module's cache stamp."""
    _install()
    jit = njit(cache=True, nogil=True, **options)

    def compile_cached(f):
        _STAMPED.add(f)
        return jit(f)

    return compile_cached(fn) if fn is not None else compile_cached


def inlined(fn):
    """``@inlined``: a helper Numba compiles into each kernel that calls it
    (``njit(inline="always")``), for per-record helpers whose call would cost more than
    their work (a call passes every array as a struct). It has no machine code of its own,
    so nothing to cache: its callers are cached, and their stamp covers its file."""
    return njit(nogil=True, inline="always")(fn)


def package_root(path: Path) -> Path:
    """The top-level package folder of the module file ``path`` (the last folder up from it
    that holds an ``__init__.py``)."""
    root = path.parent
    while (root.parent / "__init__.py").is_file():
        root = root.parent
    return root


def _module_file(dotted: str, root: Path) -> Path | None:
    """The file of module ``<root>.a.b`` (``a/b.py`` or ``a/b/__init__.py``), if it is in ``root``."""
    parts = dotted.split(".")
    if parts[0] != root.name:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path, root: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.lru_cache(maxsize=None)
def imported_files(path: Path) -> frozenset[Path]:
    """The files of ``path``'s own top-level package that it imports (any import statement,
    at any depth of the file), each resolved to its module or, for ``from pkg import name``,
    to the submodule ``pkg.name`` when there is one and to ``pkg`` itself otherwise."""
    root = package_root(path)
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(f for f in (_module_file(alias.name, root) for alias in node.names) if f)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                target = _module_file(f"{base}.{alias.name}", root) or _module_file(base, root)
                if target:
                    found.add(target)
    found.discard(path)
    return frozenset(found)


def import_closure(path: Path) -> list[Path]:
    """``path`` and every file of its package it imports, transitively, sorted."""
    seen, todo = {path}, [path]
    while todo:
        for dep in imported_files(todo.pop()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return sorted(seen)


@functools.lru_cache(maxsize=None)
def closure_stamp(path: Path) -> str:
    """The content hash of ``path``'s import closure (paths relative to the package, so a
    moved checkout keeps its cache)."""
    root = package_root(path)
    digest = hashlib.sha256()
    for file in import_closure(path):
        digest.update(str(file.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


class ClosureStampedLocator(caching._CacheLocator):
    """Numba's own locator for the function (same cache folder), with ``closure_stamp`` as
    the freshness check. Functions not compiled by ``kernel`` are left to Numba's locators."""

    #: Numba's locators for a function in a regular source file, in Numba's order
    _inner = (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator, caching.UserWideCacheLocator)

    def __init__(self, inner: caching._CacheLocator, path: Path):
        self._inner_locator, self._path = inner, path

    @classmethod
    def from_function(cls, py_func, py_file):
        if py_func not in _STAMPED:
            return None
        path = Path(py_file).resolve()
        for locator_class in cls._inner:
            inner = locator_class.from_function(py_func, py_file)
            if inner is not None:
                return cls(inner, path)
        return None

    def ensure_cache_path(self):
        self._inner_locator.ensure_cache_path()

    def get_cache_path(self):
        return self._inner_locator.get_cache_path()

    def get_disambiguator(self):
        return self._inner_locator.get_disambiguator()

    def get_source_stamp(self):
        return ("closure", closure_stamp(self._path))


def _install() -> None:
    # CacheImpl._locator_classes (_CacheImpl before Numba 0.61) is the list Numba walks to
    # place a function's cache; ours goes first and answers only for the functions
    # ``kernel`` compiles.
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    classes = impl._locator_classes
    if not classes or classes[0] is not ClosureStampedLocator:
        if ClosureStampedLocator in classes:
            classes.remove(ClosureStampedLocator)
        classes.insert(0, ClosureStampedLocator)
