"""Which wafer-map format a byte string holds (from its content, never its name),
and reading it into ``WaferMap`` objects.

Detection, in order:

* text (UTF-8, Latin-1, or UTF-16 with a byte-order mark) whose first line that is not blank or a ``#`` comment starts with
  ``FAILMAP`` -> ``"failmap"`` (the testers' own fail-map A file; a ``FAILMAP-B``
  companion is not a wafer map and is not detected);
* text starting with ``<`` (after a BOM / blanks): XML. Root element ``Map`` or
  ``Maps`` -> ``"g85"``; ``MapData`` / ``SubstrateMaps`` / ``SubstrateMap`` ->
  ``"e142"``; other roots are recognised by G85 / E142 markers in the text;
* ``FileVersion 1 n;`` or ``Record FileRecord`` -> ``"klarf"``;
* an ASCII row-map dialect -> ``"ascii:<dialect>"`` (see ``ascii_maps``);
* binary data whose 236-byte header and record area are consistent with a TSK
  map -> ``"tsk"``.

Anything else is not a wafer map: :func:`detect_map_format` returns None and
:func:`read_wafer_maps` rejects it as ``unknown_format``.
"""

from __future__ import annotations

import re
from typing import AbstractSet

from failmap_assets.wafer.model import WaferMap
from failmap_assets.formats.ascii_maps import decode_text, detect_dialect, read_ascii_map
from failmap_assets.formats.e142 import read_e142
from failmap_assets.formats.g85 import read_g85
from failmap_assets.formats.klarf import looks_like_klarf, read_klarf
from failmap_assets.formats.tsk import looks_like_tsk, read_tsk
from failmap_assets.wafer.rejects import Rejected

_HEAD = 1 << 16  # detection reads at most this much
_READERS = {"g85": read_g85, "e142": read_e142, "tsk": read_tsk, "klarf": read_klarf}
_PROLOG = re.compile(r"^(\s*(<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>\[]*(\[.*?\])?\s*>))*\s*", re.S)
_ROOT = re.compile(r"<\s*(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)")
_G85_ROOTS = {"map", "maps"}
_E142_ROOTS = {"mapdata", "substratemaps", "substratemap"}


def detect_map_format(data: bytes) -> str | None:
    """``"failmap"``, ``"g85"``, ``"e142"``, ``"tsk"``, ``"klarf"``, ``"ascii:<dialect>"`` or None."""
    head = data[:_HEAD]
    if not head.strip():
        return None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 text from Windows tools
        text = decode_text(head[: len(head) // 2 * 2])
    elif b"\0" in head:  # 8-bit text never holds NUL bytes; TSK headers do
        return "tsk" if looks_like_tsk(data) else None
    else:
        text = _decode(head)
    lines = text.splitlines()
    if _first_failmap_token(lines) == "FAILMAP":
        return "failmap"
    body = text.lstrip("\ufeff \t\r\n")
    if body.startswith("<"):
        return _xml_kind(body)
    if looks_like_klarf(body):
        return "klarf"
    dialect = detect_dialect(lines)
    if dialect is not None:
        return f"ascii:{dialect}"
    return "tsk" if looks_like_tsk(data) else None


def read_wafer_maps(data: bytes, name: str | None = None, pass_bins: AbstractSet[int] | None = None) -> list[WaferMap]:
    """Every wafer map in ``data``; ``name`` (object key or member) only labels messages.

    ``pass_bins`` is the configured set of passing bins, used for bins whose
    verdict the file does not state.
    """
    fmt = detect_map_format(data)
    if fmt is None:
        raise Rejected("unknown_format", f"{name or 'input'}: not a supported wafer map ({_describe(data)})")
    if fmt == "failmap":
        # Imported here: the fail-map text reader lives beside the industry formats
        # and must not be a hard dependency of detection.
        from failmap_assets.formats.failmap_text import parse_failmap_a

        return _as_list(parse_failmap_a(data))
    if fmt.startswith("ascii:"):
        return read_ascii_map(data, pass_bins, fmt.partition(":")[2])
    return _READERS[fmt](data, pass_bins)


def _decode(head: bytes) -> str:
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # the head cut a multi-byte character in two
            return head[: exc.start].decode("utf-8")
        return head.decode("latin-1")


def _first_failmap_token(lines: list[str]) -> str | None:
    for line in lines:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped.split()[0]
    return None


def _xml_kind(text: str) -> str | None:
    body = _PROLOG.sub("", text, count=1)
    root = _ROOT.match(body)
    kind = root.group(1).lower() if root else ""
    if kind in _G85_ROOTS:
        return "g85"
    if kind in _E142_ROOTS:
        return "e142"
    # Unusual wrapper elements: look for each standard's own vocabulary.
    if re.search(r"E142|<\s*(\w+:)?SubstrateMap\b", text):
        return "e142"
    if re.search(r"G85|<\s*(\w+:)?Device\b[^>]*\bBinType\s*=", text):
        return "g85"
    return None


def _describe(data: bytes) -> str:
    if not data.strip():
        return "empty"
    head = data[:40]
    if b"\0" in data[:_HEAD]:
        return f"binary, {len(data)} bytes, starts {head[:16].hex(' ')}"
    return f"text starting {_decode(head)!r}"


def _as_list(result) -> list[WaferMap]:
    if isinstance(result, WaferMap):
        return [result]
    return list(result)
