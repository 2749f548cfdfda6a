"""The pattern label: classifier alone vs classifier blended with a k-nearest-neighbour
vote over a labelled reference set, over training draws (18 single models, 3 bags).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/patterns_knn.py

Rules compared (declared before any figure of this script was seen; the decision to
ship rests on rule A alone, B and C are reported beside it, none is tuned):

* ``model``: argmax of the classifier's probabilities (what shipped before);
* ``A``: argmax of (p_model + share of the 5 nearest reference maps per class) / 2;
* ``B``: as A, each of the 5 neighbours weighing its cosine similarity (floored at 0);
* ``C``: as A with the 10 nearest.

Ties: the class the classifier rates higher. Neighbours: cosine similarity of the
embedding (signature.embed, the classifier's own view plus a polar fail-density map),
a map never its own neighbour (same notch-down grid and die aspect, vote.fingerprint).

The voting reference is the neighbour reference of `failmap patterns evaluate`:
the synthetic reference set (evaluate.REFERENCE_SEED, REFERENCE_PER_CLASS per class)
embedded with the model being scored, plus, for the real dev wafers with each lot held
out, the OTHER dev lots (as `evaluate --by-lot`; the held-out lot is never in it).
``A/syn`` is rule A with the synthetic reference alone (what signature_of does with the
shipped model, and `evaluate` without ``--train``). Held-out synthetic maps: seeds 3 and
6, 40 per class; the synthetic reference alone votes for them.

Figures per model: accuracy_macro on held-out synthetic seed 3 / 6 per rule; on the 15
dev wafers accuracy_macro (right of 15) per rule and knn5_macro (the rule does not move
the embedding, so knn5 is the same for every rule). Then the means over the 18 single
models, the bags, which dev wafers each rule gets wrong over the 18 singles, and the
shipped bag's confusion on held-out synthetic (seeds 3 + 6) for ``model`` and ``A``.
Signs 6 x 2,880 synthetic training maps first (a few minutes on one core).
Smoke size (tests/test_benchmarks_run.py): ``--sizes 4 --held-per-class 2``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from failmap_assets.patterns.evaluate import REFERENCE_PER_CLASS, REFERENCE_SEED, score
from failmap_assets.patterns.features import wafer_features
from failmap_assets.patterns.geometry import infer_die_aspect, wafer_geometry
from failmap_assets.patterns.model import PatternModel, mean_model
from failmap_assets.patterns.signature import MIN_DIES, PATTERN_CLASSES, SIGNATURE_VERSION, classifier_view, polar_map
from failmap_assets.patterns.training import TRAIN_SEEDS, TRAIN_SIZES, train_one
from failmap_assets.patterns.vote import EXCLUDED, blend, decide, fingerprint, nearest, neighbour_share
from failmap_assets.patterns.wm811k import read_labelled_maps
from failmap_synth.patterns import pattern_set

HELD_OUT_SEEDS = (3, 6)
OTHER_SEEDS = (7, 8, 9)
HELD_PER_CLASS = 40
RULES = {"A": dict(k=5, weighted=False), "B": dict(k=5, weighted=True), "C": dict(k=10, weighted=False)}
NAMES = ("model", "A", "B", "C")
DEV = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "wm811k" / "wm811k_dev.jsonl"
N_CLASSES = len(PATTERN_CLASSES)


@dataclass
class Maps:
    """Maps signed once (features, polar map): every model reuses them."""
    ids: list[str]
    lots: list[str]
    labels: np.ndarray        # class indices
    features: np.ndarray
    polar: np.ndarray
    prints: np.ndarray        # vote.fingerprint


def prepare(ids, lots, labels, grids, aspects) -> Maps:
    keep, feats, polars, prints = [], [], [], []
    for i, (g, a) in enumerate(zip(grids, aspects)):
        geo = wafer_geometry(g, a)
        if geo.x.size < MIN_DIES:
            print(f"  {ids[i]}: too small, left out")
            continue
        keep.append(i)
        feats.append(wafer_features(geo))
        polars.append(polar_map(geo))
        prints.append(fingerprint(geo.grid, geo.die_aspect))
    return Maps([ids[i] for i in keep], [lots[i] for i in keep],
                np.asarray([PATTERN_CLASSES.index(labels[i]) for i in keep]), np.asarray(feats),
                np.asarray(polars), np.asarray(prints, dtype=np.uint64))


def labels_by_rule(p: np.ndarray, sim: np.ndarray, ref_labels: np.ndarray) -> dict[str, np.ndarray]:
    out = {"model": np.argmax(p, axis=1)}
    for name, rule in RULES.items():
        out[name] = decide(blend(p, neighbour_share(sim, ref_labels, N_CLASSES, **rule)), p)
    return out


def similarity(emb: np.ndarray, prints: np.ndarray, ref_emb: np.ndarray, ref_prints: np.ndarray) -> np.ndarray:
    sim = emb.astype(np.float64) @ ref_emb.astype(np.float64).T
    sim[prints[:, None] == ref_prints[None, :]] = EXCLUDED   # a map is not its own neighbour
    return sim


def knn_shares(sim: np.ndarray, truth: np.ndarray, ref_labels: np.ndarray) -> list[float]:
    return [float((ref_labels[idx] == truth[i]).mean()) if idx.size else 0.0 for i, idx in enumerate(nearest(sim, 5))]


def names(idx) -> list[str]:
    return [PATTERN_CLASSES[i] for i in idx]


def scored(model: PatternModel, ref: Maps, held: dict[int, Maps], dev: Maps | None) -> dict:
    """Per rule: synthetic accuracy per held-out seed, predictions; dev figures."""
    p_ref, e_ref = classifier_view(ref.features, ref.polar, model)
    out = {"syn": {}, "syn_pred": {}}
    for seed, m in held.items():
        p, e = classifier_view(m.features, m.polar, model)
        sim = similarity(e, m.prints, e_ref, ref.prints)
        pred = labels_by_rule(p, sim, ref.labels)
        shares = knn_shares(sim, m.labels, ref.labels)
        out["syn"][seed] = {r: score(names(m.labels), names(pred[r]), shares).accuracy_macro for r in NAMES}
        out["syn_pred"][seed] = pred
    if dev is None:
        return out
    p, e = classifier_view(dev.features, dev.polar, model)
    pred = {r: np.zeros(len(dev.ids), np.int64) for r in (*NAMES, "A/syn")}
    shares = np.zeros(len(dev.ids))
    for lot in sorted(set(dev.lots)):
        held_i = np.asarray([i for i, lt in enumerate(dev.lots) if lt == lot])
        rest = np.asarray([i for i, lt in enumerate(dev.lots) if lt != lot], dtype=np.int64)
        ref_e = np.vstack([e_ref, e[rest]])
        ref_l = np.concatenate([ref.labels, dev.labels[rest]])
        ref_p = np.concatenate([ref.prints, dev.prints[rest]])
        sim = similarity(e[held_i], dev.prints[held_i], ref_e, ref_p)
        for r, lab in labels_by_rule(p[held_i], sim, ref_l).items():
            pred[r][held_i] = lab
        shares[held_i] = knn_shares(sim, dev.labels[held_i], ref_l)
        sim_syn = similarity(e[held_i], dev.prints[held_i], e_ref, ref.prints)
        pred["A/syn"][held_i] = labels_by_rule(p[held_i], sim_syn, ref.labels)["A"]
    out["dev_pred"] = pred
    out["dev"] = {r: score(names(dev.labels), names(pred[r]), list(shares)) for r in pred}
    return out


def line(name: str, s: dict, held_seeds) -> str:
    syn = "  ".join(f"{r} " + "/".join(f"{s['syn'][sd][r]:.3f}" for sd in held_seeds) for r in NAMES)
    txt = f"{name:<34} synthetic {syn}"
    if "dev" in s:
        dev = "  ".join(f"{r} {ev.accuracy_macro:.3f} ({sum(a == b for a, b in zip(ev.labels, ev.predicted))})"
                        for r, ev in s["dev"].items())
        txt += f"  | dev {dev}  knn5 {s['dev']['model'].knn5_macro:.3f}"
    return txt


def right(ev) -> int:
    return sum(a == b for a, b in zip(ev.labels, ev.predicted))


def confusion(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    c = np.zeros((N_CLASSES, N_CLASSES), np.int64)
    np.add.at(c, (truth, pred), 1)
    return c


def print_confusion(title: str, c: np.ndarray) -> None:
    print(title)
    print("| true \\ label | " + " | ".join(PATTERN_CLASSES) + " |")
    print("|---" * (N_CLASSES + 1) + "|")
    for i, cls in enumerate(PATTERN_CLASSES):
        print(f"| {cls} | " + " | ".join(str(v) for v in c[i]) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", type=Path, default=DEV, help="labelled real maps (JSON Lines)")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(TRAIN_SIZES),
                    help="training maps per class of each single model (default: training.TRAIN_SIZES)")
    ap.add_argument("--held-per-class", type=int, default=HELD_PER_CLASS, help="held-out synthetic maps per class")
    args = ap.parse_args()
    sizes = tuple(args.sizes)
    t0 = time.perf_counter()
    refw = pattern_set(REFERENCE_PER_CLASS, REFERENCE_SEED)
    ref = prepare([f"ref-{i}" for i in range(len(refw))], ["ref"] * len(refw), [w.label for w in refw],
                  [w.grid for w in refw], [w.die_aspect for w in refw])
    held = {}
    for s in HELD_OUT_SEEDS:
        ws = pattern_set(args.held_per_class, s)
        held[s] = prepare([f"held-{s}-{i}" for i in range(len(ws))], ["held"] * len(ws), [w.label for w in ws],
                          [w.grid for w in ws], [w.die_aspect for w in ws])
    dev = None
    if args.dev.exists():
        dm = read_labelled_maps(args.dev)
        dev = prepare([m.id for m in dm], [m.lot for m in dm], [m.label for m in dm], [m.grid for m in dm],
                      [infer_die_aspect(m.grid) for m in dm])
    else:
        print(f"dev figures skipped: {args.dev} is absent (../shared not on this machine)")
    seeds = tuple(TRAIN_SEEDS) + OTHER_SEEDS
    biggest = max(sizes)
    single = {(s, n): train_one(n, s, n_made=biggest) for s in seeds for n in sizes}
    print(f"trained {len(single)} single models in {time.perf_counter() - t0:.0f} s wall", flush=True)
    results = {}
    for (s, n), m in single.items():
        results[("single", s, n)] = r = scored(m, ref, held, dev)
        print(line(f"single seed {s} {n}/class", r, HELD_OUT_SEEDS), flush=True)
    shipped_name = "bag (shipped) seeds 1/4/5 x 160/240/320" if sizes == tuple(TRAIN_SIZES) else "bag seeds 1/4/5"
    bags = {shipped_name: [(s, n) for s in TRAIN_SEEDS for n in sizes],
            "bag seeds 7/8/9": [(s, n) for s in OTHER_SEEDS for n in sizes],
            f"bag of {len(seeds) * len(sizes)}": [(s, n) for s in seeds for n in sizes]}
    for name, keys in bags.items():
        results[name] = r = scored(mean_model([single[k] for k in keys], SIGNATURE_VERSION), ref, held, dev)
        print(line(name, r, HELD_OUT_SEEDS), flush=True)

    singles = [v for k, v in results.items() if isinstance(k, tuple)]
    print("\nSummary (markdown): synthetic accuracy_macro seed 3 / 6; dev accuracy_macro (wafers right of 15)")
    cols = [*NAMES, "A/syn"] if dev is not None else list(NAMES)
    print("| model | " + " | ".join(f"synthetic {r}" for r in NAMES)
          + (" | " + " | ".join(f"dev {r}" for r in cols) + " | dev knn5" if dev is not None else "") + " |")
    print("|---" * (1 + len(NAMES) + (len(cols) + 1 if dev is not None else 0)) + "|")

    def row(name, rs):
        cells = [" / ".join(f"{np.mean([x['syn'][sd][r] for x in rs]):.4f}" for sd in HELD_OUT_SEEDS) for r in NAMES]
        if dev is not None:
            for r in cols:
                acc = [x["dev"][r].accuracy_macro for x in rs]
                n_right = [right(x["dev"][r]) for x in rs]
                cells.append(f"{np.mean(acc):.3f} ({np.mean(n_right):.1f})" if len(rs) > 1 else f"{acc[0]:.3f} ({n_right[0]})")
            cells.append(f"{np.mean([x['dev']['model'].knn5_macro for x in rs]):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")

    row(f"{len(singles)} single models (mean)", singles)
    if dev is not None:
        print(f"| {len(singles)} singles: min..max dev accuracy | " + " | ".join("" for _ in NAMES) + " | " + " | ".join(
            f"{min(x['dev'][r].accuracy_macro for x in singles):.3f}..{max(x['dev'][r].accuracy_macro for x in singles):.3f}"
            for r in cols) + " | |")
    for name in bags:
        row(name, [results[name]])

    # How many held-out synthetic maps the vote turns right -> wrong and wrong -> right.
    for r in RULES:
        gained = lost = 0
        for x in singles:
            for sd, m in held.items():
                base, new = x["syn_pred"][sd]["model"] == m.labels, x["syn_pred"][sd][r] == m.labels
                gained += int((~base & new).sum())
                lost += int((base & ~new).sum())
        print(f"rule {r}: over {len(singles)} singles x {sum(len(m.ids) for m in held.values())} held-out synthetic maps: "
              f"{gained} wrong -> right, {lost} right -> wrong")
    if dev is not None:
        print(f"\nDev wafers: how many of the {len(singles)} single models label each wrong, per rule")
        for i, wid in enumerate(dev.ids):
            wrong = {r: sum(int(x["dev_pred"][r][i] != dev.labels[i]) for x in singles) for r in cols}
            shipped = results[shipped_name]["dev_pred"]
            print(f"  {wid:<14} {PATTERN_CLASSES[dev.labels[i]]:<10} "
                  + " ".join(f"{r}={w:>2}" for r, w in wrong.items())
                  + "   shipped bag: " + " ".join(f"{r}->{PATTERN_CLASSES[shipped[r][i]]}" for r in ("model", "A")))
    shipped = results[shipped_name]
    truth = np.concatenate([held[sd].labels for sd in HELD_OUT_SEEDS])
    for r in ("model", "A"):
        pred = np.concatenate([shipped["syn_pred"][sd][r] for sd in HELD_OUT_SEEDS])
        print_confusion(f"\n{shipped_name}, rule {r}: held-out synthetic seeds 3 + 6, {args.held_per_class * 2} per class "
                        "(rows: true class)", confusion(truth, pred))
    print(f"\n{time.perf_counter() - t0:.0f} s wall in all")


if __name__ == "__main__":
    main()
