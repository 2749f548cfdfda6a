"""Pattern-label quality: held-out synthetic maps (confusion matrix) and real WM-811K dev
wafers, leave one lot out.

    .venv/bin/python benchmarks/patterns_eval.py --per-class 40

(a) synthetic maps of every class at a seed neither the classifier (training.TRAIN_SEEDS)
nor the reference set (evaluate.REFERENCE_SEED) used: confusion matrix (rows: true
class, columns: label), recall per class, and knn@5 against the shipped reference set;
(b) the 15 real dev wafers of ../shared/testdata/wm811k, each lot held out in turn
(the other dev lots join the reference set): the same figures as
`failmap patterns evaluate --test wm811k_dev.jsonl --by-lot`. The labels are the
classifier blended with the vote of the 5 nearest maps of that reference set (vote.py).
Anchors (WM-811K, split
by lot): SupCon ResNet-50 knn@5 88.1 %, ImageNet embedding ~72 %, rule-based 64 %.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from failmap_assets.patterns.evaluate import evaluate, leave_one_lot_out, report_lines, synthetic_reference
from failmap_assets.patterns.signature import PATTERN_CLASSES, wafer_signatures
from failmap_assets.patterns.wm811k import LabelledMap, read_labelled_maps
from failmap_synth.patterns import pattern_set

HELD_OUT_SEED = 3
DEV = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "wm811k" / "wm811k_dev.jsonl"


def synthetic(per_class: int) -> None:
    ref = synthetic_reference()
    wafers = pattern_set(per_class, HELD_OUT_SEED)
    t = time.perf_counter()
    sigs = wafer_signatures([w.grid for w in wafers], [w.die_aspect for w in wafers])
    seconds = time.perf_counter() - t
    k = len(PATTERN_CLASSES)
    conf = np.zeros((k, k), dtype=np.int64)
    for w, s in zip(wafers, sigs):
        if s.label in PATTERN_CLASSES:
            conf[PATTERN_CLASSES.index(w.label), PATTERN_CLASSES.index(s.label)] += 1
    print(f"(a) held-out synthetic maps: seed {HELD_OUT_SEED}, {per_class} per class, "
          f"signed in {seconds:.2f} s ({seconds / len(wafers) * 1000:.1f} ms/wafer)")
    short = [c[:9] for c in PATTERN_CLASSES]
    print("true \\ label " + " ".join(f"{c:>9}" for c in short))
    for i, c in enumerate(PATTERN_CLASSES):
        print(f"{c:<12} " + " ".join(f"{v:>9d}" for v in conf[i]))
    maps = [LabelledMap(f"held-{i}", "synthetic", w.label, w.grid) for i, w in enumerate(wafers)]
    print("\n".join(report_lines(evaluate(maps, ref))))


def dev_by_lot(path: Path, retrain: bool) -> None:
    maps = read_labelled_maps(path)
    how = "classifier retrained on synthetic + the other lots" if retrain else "shipped classifier"
    print(f"(b) real WM-811K dev wafers, leave one lot out ({how}): {path}")
    per_lot, overall = leave_one_lot_out(maps, retrain=retrain)
    for lot, held, ev in per_lot:
        print(f"lot {lot}: " + ", ".join(f"{m.id}:{m.label}->{p}" for m, p in zip(held, ev.predicted)))
    print("\n".join(report_lines(overall)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=40, help="held-out synthetic maps per class")
    ap.add_argument("--dev", type=Path, default=DEV, help="labelled real maps (JSON Lines)")
    args = ap.parse_args()
    synthetic(args.per_class)
    if args.dev.exists():
        dev_by_lot(args.dev, retrain=False)
        dev_by_lot(args.dev, retrain=True)
    else:
        print(f"(b) skipped: {args.dev} is absent (../shared not on this machine)")


if __name__ == "__main__":
    main()
