"""How often each per-record FTR / MPR array equals its test's first record's, in every real
file: the evidence for which arrays ``decode/same_arrays.py`` stores once per test. Reads the
records with the table-driven interpreter (no rule applied); rows are records, elements the
array elements in them.

    .venv/bin/python benchmarks/stdf_same_arrays.py

Needs ../shared/testdata/stdf. Prints one line per file and kind, then the totals.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FIELDS = {"FTR": ("RTN_INDX", "RTN_STAT", "PGM_INDX", "PGM_STAT", "FAIL_PIN", "SPIN_MAP"),
          "MPR": ("RTN_STAT", "RTN_INDX", "RTN_RSLT")}


def main() -> int:
    from failmap_assets.stdf import tables as T
    from failmap_assets.stdf.scan import detect, scan
    from failmap_assets.stdf.source import open_sources
    from tests.support.testdata import STDF_DIR

    if not STDF_DIR.is_dir():
        print(f"no test data at {STDF_DIR}")
        return 1
    total: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for path in sorted(STDF_DIR.iterdir()):
        if path.suffix not in (".stdf", ".std") or path.name == "in_v3.std":
            continue
        src = open_sources(path)[0]
        h = detect(src.data)
        ctx = T._Ctx(src, h, scan(src.data, h.big_endian))
        for kind, fields in FIELDS.items():
            pos = ctx.positions(kind)
            if not pos.size:
                continue
            cols = ctx.cols(kind, pos)
            tn = cols["test_num"].to_pylist()
            out = []
            for f in fields:
                first: dict = {}
                rows = same = elems = same_elems = 0
                for t, v in zip(tn, cols[f.lower()].to_pylist()):
                    first.setdefault(t, v)
                    n = len(v) if v is not None else 0
                    rows += 1
                    elems += n
                    if v is not None and v == first[t]:
                        same += 1
                        same_elems += n
                acc = total[(kind, f)]
                acc[0] += rows
                acc[1] += same
                acc[2] += elems
                acc[3] += same_elems
                out.append(f"{f} {same}/{rows} rows ({same_elems}/{elems} el)")
            print(f"{path.name[:30]:30s} {kind} tests={len(set(tn))}: " + "; ".join(out))
    print("\ntotal over the files (rows equal to their test's first record; elements in those rows)")
    for (kind, f), (rows, same, elems, same_elems) in total.items():
        print(f"  {kind} {f:9s} rows {same}/{rows} ({100 * same / max(rows, 1):.1f} %), "
              f"elements {same_elems}/{elems} ({100 * same_elems / max(elems, 1):.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
