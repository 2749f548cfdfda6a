"""`failmap patterns evaluate`: label labelled maps, query their 5 nearest neighbours, score.

The reference set the project ships is made, not stored: REFERENCE_PER_CLASS synthetic
maps of every class from failmap_synth.patterns at REFERENCE_SEED (a seed the
classifier was not trained on), signed the way any wafer is. ``--train`` maps are
added to it. A test map that is also in the reference set (same id and same grid) is
not its own neighbour.

The label is the one signature_of gives (vote.py): the classifier blended with the vote
of the map's 5 nearest neighbours, here over this evaluation's reference set (the
shipped synthetic set, plus ``--train`` maps, plus with ``--by-lot`` the other lots),
so the vote and the knn figure see the same neighbours. With the shipped model and no
``--train`` that set holds the maps stored with the model: the same labels as
signature_of.

Figures: per class, the recall of the label (share of its maps labelled with it) and
the mean share of a map's 5 nearest neighbours (cosine distance on the embedding)
that carry its label; ``accuracy_macro`` and ``knn5_macro`` are their means over the
classes present in the test set.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from failmap_assets.patterns.geometry import infer_die_aspect, wafer_geometry
from failmap_assets.patterns.model import PatternModel, shipped_model
from failmap_assets.patterns.signature import (
    PATTERN_CLASSES, TOO_SMALL, classifier_calls, wafer_signatures)
from failmap_assets.patterns.vote import (EXCLUDED, REFERENCE_PER_CLASS, REFERENCE_SEED, blend, decide, nearest,
                                          neighbour_share)
from failmap_assets.patterns.wm811k import LabelledMap

K = 5


@dataclass(frozen=True)
class Reference:
    ids: list[str]
    labels: list[str]
    grids: list[np.ndarray]
    embeddings: np.ndarray   # (n, EMBEDDING_DIM) float32


@dataclass(frozen=True)
class Evaluation:
    classes: list[str]
    recall: dict[str, float]
    knn: dict[str, float]
    counts: dict[str, int]
    labels: list[str]
    predicted: list[str]
    knn_shares: list[float]
    accuracy_macro: float
    knn5_macro: float
    n: int


@dataclass(frozen=True)
class ClassifierCalls:
    """The classifier alone on labelled maps (PATTERN_CLASSES order); a too-small map has
    no probabilities (NaN) and a zero embedding."""
    probabilities: np.ndarray   # (m, 9)
    embeddings: np.ndarray      # (m, EMBEDDING_DIM) float32
    too_small: np.ndarray       # bool (m,)


def classify_maps(maps: Sequence[LabelledMap], model: PatternModel | None = None) -> ClassifierCalls:
    """WM-811K maps carry no die size: the aspect that makes the wafer round."""
    geos = [wafer_geometry(lm.grid, infer_die_aspect(lm.grid)) for lm in maps]
    return ClassifierCalls(*classifier_calls(geos, model or shipped_model()))


def synthetic_reference(per_class: int = REFERENCE_PER_CLASS, seed: int = REFERENCE_SEED,
                        model: PatternModel | None = None) -> Reference:
    """The shipped reference set (made once per process for the shipped model)."""
    if model is None:
        return _shipped_reference(per_class, seed)
    return _make_reference(per_class, seed, model)


@functools.lru_cache(maxsize=2)
def _shipped_reference(per_class: int, seed: int) -> Reference:
    return _make_reference(per_class, seed, None)


def _make_reference(per_class: int, seed: int, model: PatternModel | None) -> Reference:
    from failmap_synth.patterns import pattern_set

    wafers = pattern_set(per_class, seed)
    sigs = wafer_signatures([w.grid for w in wafers], [w.die_aspect for w in wafers], model=model)
    return Reference(ids=[f"synthetic-{seed}-{i}" for i in range(len(wafers))],
                     labels=[w.label for w in wafers], grids=[w.grid for w in wafers],
                     embeddings=np.asarray([s.embedding for s in sigs]))


def with_maps(ref: Reference, maps: Sequence[LabelledMap], model: PatternModel | None = None) -> Reference:
    if not maps:
        return ref
    calls = classify_maps(maps, model)
    keep = [i for i in range(len(maps)) if not calls.too_small[i]]   # too small: no embedding
    return Reference(ids=ref.ids + [maps[i].id for i in keep], labels=ref.labels + [maps[i].label for i in keep],
                     grids=ref.grids + [maps[i].grid for i in keep],
                     embeddings=np.vstack([ref.embeddings, calls.embeddings[keep]]))


def evaluate(test: Sequence[LabelledMap], reference: Reference, k: int = K,
             model: PatternModel | None = None) -> Evaluation:
    calls = classify_maps(test, model)
    sim = calls.embeddings.astype(np.float64) @ reference.embeddings.T.astype(np.float64)
    for i, m in enumerate(test):   # a map is not its own neighbour, nor its own voter
        for j, rid in enumerate(reference.ids):
            if rid == m.id and reference.grids[j].shape == m.grid.shape and np.array_equal(reference.grids[j], m.grid):
                sim[i, j] = EXCLUDED
    ref_labels = np.asarray(reference.labels)
    shares = [float((ref_labels[idx] == m.label).mean()) if idx.size else 0.0
              for m, idx in zip(test, nearest(sim, k))]
    predicted = [TOO_SMALL] * len(test)
    known = [i for i, lab in enumerate(reference.labels) if lab in PATTERN_CLASSES]
    big = np.flatnonzero(~calls.too_small)
    if big.size:
        votes = neighbour_share(sim[np.ix_(big, known)], [PATTERN_CLASSES.index(reference.labels[j]) for j in known],
                                len(PATTERN_CLASSES))
        p_model = calls.probabilities[big]
        for i, c in zip(big, decide(blend(p_model, votes), p_model)):
            predicted[i] = PATTERN_CLASSES[c]
    return score([m.label for m in test], predicted, shares)


def score(labels: Sequence[str], predicted: Sequence[str], knn_shares: Sequence[float]) -> Evaluation:
    """Macro figures from per-map results (true label, predicted label, share of same-label neighbours)."""
    classes = [c for c in PATTERN_CLASSES if c in labels] + sorted(set(labels) - set(PATTERN_CLASSES))
    recall, knn, counts = {}, {}, {}
    for c in classes:
        idx = [i for i, lab in enumerate(labels) if lab == c]
        counts[c] = len(idx)
        recall[c] = float(np.mean([predicted[i] == c for i in idx]))
        knn[c] = float(np.mean([knn_shares[i] for i in idx]))
    return Evaluation(
        classes=classes, recall=recall, knn=knn, counts=counts, labels=list(labels),
        predicted=list(predicted), knn_shares=list(knn_shares),
        accuracy_macro=float(np.mean(list(recall.values()))) if classes else 0.0,
        knn5_macro=float(np.mean(list(knn.values()))) if classes else 0.0, n=len(labels))


def merge_lot_evaluations(evaluations: Sequence[Evaluation]) -> Evaluation:
    """One evaluation over the maps of several (e.g. one per held-out lot)."""
    return score([lab for e in evaluations for lab in e.labels], [p for e in evaluations for p in e.predicted],
                 [s for e in evaluations for s in e.knn_shares])


def leave_one_lot_out(maps: Sequence[LabelledMap], train: Sequence[LabelledMap] = (),
                      retrain: bool = True) -> tuple[list[tuple[str, list[LabelledMap], Evaluation]], Evaluation]:
    """Each lot of ``maps`` held out in turn: the other lots (and ``train``) join the
    reference set and, with ``retrain``, the classifier's training (synthetic maps + them),
    so no figure of a lot comes from a model or a reference that saw that lot."""
    from failmap_assets.patterns.training import train as train_model

    per_lot = []
    for lot in sorted({m.lot for m in maps}):
        held = [m for m in maps if m.lot == lot]
        rest = list(train) + [m for m in maps if m.lot != lot]
        model = train_model(extra=rest) if retrain else None
        ref = with_maps(synthetic_reference(model=model), rest, model)
        per_lot.append((lot, held, evaluate(held, ref, model=model)))
    return per_lot, merge_lot_evaluations([e for _, _, e in per_lot])


def report_lines(ev: Evaluation) -> list[str]:
    lines = [f"{'class':<10} {'n':>4} {'recall':>7} {'knn5':>7}"]
    for c in ev.classes:
        lines.append(f"{c:<10} {ev.counts[c]:>4} {ev.recall[c]:>7.4f} {ev.knn[c]:>7.4f}")
    lines.append(f"patterns: accuracy_macro={ev.accuracy_macro:.4f} knn5_macro={ev.knn5_macro:.4f} n={ev.n}")
    return lines
