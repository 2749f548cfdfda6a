"""Labelled wafer maps in the JSON Lines format of ../shared/testdata/wm811k/README.md.

One wafer a line: ``{"id", "lot", "label", "rows", "cols", "map": [rows strings of cols
chars], ...}`` with ``.`` = no die, ``0`` = pass, ``1`` = fail. Read into the grid
convention of the signature: int8, -1 no die, 0 pass, 1 fail. A malformed line raises
``ValueError`` naming its line number and what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_CODES = np.full(256, -2, dtype=np.int8)
_CODES[ord(".")] = -1
_CODES[ord("0")] = 0
_CODES[ord("1")] = 1


@dataclass(frozen=True)
class LabelledMap:
    id: str
    lot: str
    label: str
    grid: np.ndarray   # int8 (rows, cols)


def parse_map(rows: list[str]) -> np.ndarray:
    if not rows:
        return np.zeros((0, 0), dtype=np.int8)
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        raise ValueError("map rows differ in length")
    try:
        raw = np.frombuffer("".join(rows).encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError as exc:
        raise ValueError("map holds a character other than '.', '0', '1'") from exc
    grid = _CODES[raw]
    if (grid == -2).any():
        raise ValueError("map holds a character other than '.', '0', '1'")
    return grid.reshape(len(rows), width)


def read_labelled_maps(path: str | Path) -> list[LabelledMap]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                grid = parse_map(list(rec["map"]))
                if "rows" in rec and "cols" in rec and grid.shape != (int(rec["rows"]), int(rec["cols"])):
                    raise ValueError(f"map is {grid.shape}, header says {(rec['rows'], rec['cols'])}")
                out.append(LabelledMap(str(rec.get("id", f"line{number}")), str(rec.get("lot", "")),
                                       str(rec["label"]), grid))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}: line {number}: {exc}") from exc
    return out
