"""How much the pattern labels move with the classifier's training draw: single logistic
models vs bags of them (training.train), over training seeds and sizes.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/patterns_stability.py

For each model: accuracy_macro on held-out synthetic maps of seeds 3 and 6 (40 per
class), and on the 15 real WM-811K dev wafers, each lot held out in turn (the model is
synthetic-only; the other lots join the reference set), as accuracy_macro (right of 15)
and knn5_macro. Signs 6 x 2,880 synthetic training maps first (a few minutes).
The labels are evaluate's, so since SIGNATURE_VERSION 5 the classifier blended with the
5-nearest-neighbour vote over that reference set; benchmarks/patterns_knn.py prints the
classifier alone beside the blend (and scores synthetic maps with their own die aspect,
where this script infers it from the outline as for WM-811K maps).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from failmap_assets.patterns.evaluate import evaluate, merge_lot_evaluations, synthetic_reference, with_maps
from failmap_assets.patterns.model import PatternModel, mean_model
from failmap_assets.patterns.signature import SIGNATURE_VERSION
from failmap_assets.patterns.training import TRAIN_SEEDS, TRAIN_SIZES, train_one
from failmap_assets.patterns.wm811k import LabelledMap, read_labelled_maps
from failmap_synth.patterns import pattern_set

HELD_OUT_SEEDS = (3, 6)
OTHER_SEEDS = (7, 8, 9)
DEV = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "wm811k" / "wm811k_dev.jsonl"


def figures(model: PatternModel, held: dict[int, list[LabelledMap]], dev: list[LabelledMap]) -> str:
    ref = synthetic_reference(model=model)
    syn = [evaluate(maps, ref, model=model).accuracy_macro for maps in held.values()]
    out = f"synthetic {' / '.join(f'{a:.3f}' for a in syn)}"
    if dev:
        per_lot = []
        for lot in sorted({m.lot for m in dev}):
            rest = [m for m in dev if m.lot != lot]
            per_lot.append(evaluate([m for m in dev if m.lot == lot], with_maps(ref, rest, model), model=model))
        ev = merge_lot_evaluations(per_lot)
        right = sum(p == lab for p, lab in zip(ev.predicted, ev.labels))
        out += f"  dev accuracy_macro {ev.accuracy_macro:.3f} ({right}/{ev.n}) knn5_macro {ev.knn5_macro:.3f}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", type=Path, default=DEV, help="labelled real maps (JSON Lines)")
    args = ap.parse_args()
    held = {s: [LabelledMap(f"held-{s}-{i}", "synthetic", w.label, w.grid) for i, w in enumerate(pattern_set(40, s))]
            for s in HELD_OUT_SEEDS}
    dev = read_labelled_maps(args.dev) if args.dev.exists() else []
    if not dev:
        print(f"dev figures skipped: {args.dev} is absent (../shared not on this machine)")
    seeds = tuple(TRAIN_SEEDS) + OTHER_SEEDS
    biggest = max(TRAIN_SIZES)
    single = {(s, n): train_one(n, s, n_made=biggest) for s in seeds for n in TRAIN_SIZES}
    for (s, n), m in single.items():
        print(f"single seed {s} {n}/class: {figures(m, held, dev)}", flush=True)

    def bag(keys):
        return mean_model([single[k] for k in keys], SIGNATURE_VERSION)

    for n in TRAIN_SIZES:
        print(f"bag seeds {TRAIN_SEEDS} at {n}/class: {figures(bag([(s, n) for s in TRAIN_SEEDS]), held, dev)}", flush=True)
    for group in (TRAIN_SEEDS, OTHER_SEEDS, seeds):
        label = "bag (shipped)" if group == tuple(TRAIN_SEEDS) else "bag"
        keys = [(s, n) for s in group for n in TRAIN_SIZES]
        print(f"{label} seeds {group} x {TRAIN_SIZES}: {figures(bag(keys), held, dev)}", flush=True)


if __name__ == "__main__":
    main()
