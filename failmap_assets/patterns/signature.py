"""A wafer's pattern signature: raster, embedding, WM-811K label with confidence and evidence.

Design (why):

* Orientation first: the grid is turned so its notch is down, centred, and scaled to
  radius 1 with the die aspect (geometry.py), so every later number means the same on
  any grid size (20..120 dies across) and die shape.
* ``raster``: a RASTER_SIZE x RASTER_SIZE fail-density image (NaN off the wafer), for
  pictures and for the coarse "looks like" part of the embedding.
* ``label``: a linear classifier (model.py) on handcrafted features (features.py):
  zones by radius and edge depth, sorted sector densities, the largest fail cluster
  raw and majority-filtered, fail fraction and spatial autocorrelation. They explain
  themselves, which the ``evidence`` text reuses. Its probabilities are blended with
  the vote of the wafer's 5 nearest maps (on the embedding) in a labelled reference set
  stored with the model (vote.py): label = argmax of (p_classifier + vote share) / 2,
  ``confidence`` = that blended probability; the evidence says when the vote changed
  the classifier's call.
* ``embedding`` (EMBEDDING_DIM, L2-normalised, cosine distance = 1 - dot): three
  parts, each scaled to unit length and then weighted:
  - the classifier's class probabilities (weight EMBED_WEIGHTS[0]; not the blend, so
    the reference that votes is embedded by the classifier alone): wafers with the same pattern
    sit together, which is what "similar" must mean first (knn@5 by class);
  - the classifier's logits, centred (a supervised linear projection of the
    standardised features): within a class, wafers whose evidence is alike sit closer;
  - a coarse polar fail-density map (3 rings x 8 sectors, notch down), down-weighted:
    among wafers of the same class, those with the pattern in the same place and of
    the same strength come first ("which earlier wafers looked like this one").

A wafer with fewer than MIN_DIES dies is labelled ``too_small`` (confidence 0): with
fewer dies than that, a 5-die cluster is a sixth of the wafer and no zone holds enough
dies to tell a pattern from noise. Its embedding is all zeros (similarity 0 to every
wafer: never anybody's near neighbour by accident).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from failmap_assets.patterns.features import FEATURE_NAMES, N_FEATURES, wafer_features
from failmap_assets.patterns.geometry import WaferGeometry, rasterise, wafer_geometry
from failmap_assets.patterns.model import PatternModel, shipped_model, softmax
from failmap_assets.patterns.vote import EXCLUDED, VOTE_K, VotingReference, blend, decide, fingerprint, neighbour_share

PATTERN_CLASSES = ("Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Near-full", "Random", "Scratch", "none")
TOO_SMALL = "too_small"
MIN_DIES = 30
SIGNATURE_VERSION = "5"   # 2: a bag of 9 models (training.py); 3: run features, realistic scratches;
                          # 4: trained on maps whose outermost dies fail more often (failmap_synth);
                          # 5: the label blends the classifier with a 5-nearest-neighbour vote (vote.py)
RASTER_SIZE = 32
EMBEDDING_DIM = 48

POLAR_RINGS = (0.0, 0.45, 0.8, 10.0)
POLAR_SECTORS = 8
EMBED_WEIGHTS = (1.0, 0.25, 0.15)   # probabilities, logits, polar map
_N_POLAR = (len(POLAR_RINGS) - 1) * POLAR_SECTORS
_N_USED = len(PATTERN_CLASSES) * 2 + _N_POLAR


@dataclass(frozen=True)
class WaferSignature:
    raster: np.ndarray      # float32 (RASTER_SIZE, RASTER_SIZE), notch down, NaN off the wafer
    embedding: np.ndarray   # float32 (EMBEDDING_DIM,), unit length
    label: str              # one of PATTERN_CLASSES, or TOO_SMALL
    confidence: float       # 0..1
    evidence: str           # what drives the label, in words
    dies: int
    fail_dies: int


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 1e-12 else v


def polar_map(geo: WaferGeometry) -> np.ndarray:
    """Fail density minus the wafer's fail fraction in 3 rings x 8 sectors."""
    f = float(geo.fail.mean()) if geo.fail.size else 0.0
    ring = np.clip(np.searchsorted(np.asarray(POLAR_RINGS), geo.radius, side="right") - 1,
                   0, len(POLAR_RINGS) - 2)
    sector = ((geo.angle + np.pi) / (2 * np.pi) * POLAR_SECTORS).astype(np.int64) % POLAR_SECTORS
    cell = ring * POLAR_SECTORS + sector
    count = np.bincount(cell, minlength=_N_POLAR)
    fails = np.bincount(cell, weights=geo.fail.astype(np.float64), minlength=_N_POLAR)
    out = np.zeros(_N_POLAR)
    has = count > 0
    out[has] = fails[has] / count[has] - f
    return out


def embed(probabilities: np.ndarray, logits: np.ndarray, polar: np.ndarray) -> np.ndarray:
    wp, wl, wr = EMBED_WEIGHTS
    parts = [wp * _unit(probabilities), wl * _unit(logits - logits.mean()), wr * _unit(polar)]
    v = np.zeros(EMBEDDING_DIM)
    v[:_N_USED] = np.concatenate(parts)
    return _unit(v).astype(np.float32)


def classifier_view(features: np.ndarray, polar: np.ndarray, model: PatternModel) -> tuple[np.ndarray, np.ndarray]:
    """The classifier alone on many wafers: ``features`` (m, N_FEATURES) and ``polar``
    (m, 24, polar_map) -> probabilities (m, 9, PATTERN_CLASSES order) and embeddings
    (m, EMBEDDING_DIM). The embedding never depends on the neighbour vote, so the
    voting reference is embedded by the classifier alone."""
    x = np.atleast_2d(np.asarray(features, dtype=np.float64))
    r = np.atleast_2d(np.asarray(polar, dtype=np.float64))
    if x.shape[0] != r.shape[0]:
        raise ValueError(f"one polar map per feature row: {x.shape} vs {r.shape}")
    logits = model.logits(x)
    probs = softmax(logits)
    # The model's class order is its own; report in PATTERN_CLASSES order.
    order = [model.classes.index(c) for c in PATTERN_CLASSES]
    probs, logits = probs[:, order], logits[:, order]
    emb = np.zeros((x.shape[0], EMBEDDING_DIM), np.float32)
    for i in range(x.shape[0]):
        emb[i] = embed(probs[i], logits[i], r[i])
    return probs, emb


def classifier_calls(geos: Sequence[WaferGeometry], model: PatternModel
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``classifier_view`` of many wafers' geometries, in one batch: probabilities (m, 9;
    NaN for a too-small wafer), embeddings (m, EMBEDDING_DIM; zeros for a too-small wafer)
    and the too-small mask (fewer than MIN_DIES dies)."""
    m = len(geos)
    small = np.array([g.x.size < MIN_DIES for g in geos], dtype=bool)
    probs = np.full((m, len(PATTERN_CLASSES)), np.nan)
    emb = np.zeros((m, EMBEDDING_DIM), np.float32)
    big = np.flatnonzero(~small)
    if big.size:
        probs[big], emb[big] = classifier_view(np.asarray([wafer_features(geos[i]) for i in big]),
                                               np.asarray([polar_map(geos[i]) for i in big]), model)
    return probs, emb, small


def _sector_name(angle: float) -> str:
    """Compass word for an angle (x right, y down towards the notch)."""
    names = ("right", "lower right", "bottom (notch side)", "lower left", "left", "upper left", "top", "upper right")
    k = int(np.round(angle / (np.pi / 4))) % 8
    return names[k]


def explain(label: str, feat: np.ndarray, geo: WaferGeometry) -> str:
    """One sentence naming the zone or region that drives ``label``."""
    v = dict(zip(FEATURE_NAMES, feat))
    f = v["fail_fraction"]
    centre = v["ring0_density"]
    edge = v["edge0_density"]
    raw_share = v["raw_share"]
    if label == "Center":
        return f"fail density {centre:.0%} at the centre (r<0.2) vs {f:.0%} over the wafer"
    if label == "Donut":
        mid = max(v["ring2_density"], v["ring3_density"], v["ring4_density"])
        return f"ring of fails at mid radius ({mid:.0%}) around a centre at {centre:.0%}, wafer {f:.0%}"
    if label == "Edge-Ring":
        return (f"outermost dies fail at {edge:.0%} on {v['edge_coverage']:.0%} of the circumference, "
                f"{v['edge_band_excess']:.0%} above the dies further in (wafer {f:.0%})")
    if label in ("Edge-Loc", "Loc", "Scratch"):
        members = _largest_cluster(geo, filtered=label != "Scratch")
        where = ""
        if members is not None and members.any():
            ang = float(np.arctan2(geo.y[members].mean(), geo.x[members].mean()))
            rad = float(np.hypot(geo.x[members].mean(), geo.y[members].mean()))
            where = f" at the {_sector_name(ang)}, radius {rad:.2f}"
        if label == "Edge-Loc":
            return (f"fail cluster of {int(members.sum()) if members is not None else 0} dies touching the edge{where}, "
                    f"covering {v['filtered_span']:.0%} of the circumference")
        if label == "Loc":
            return f"local fail cluster of {int(members.sum()) if members is not None else 0} dies{where}, away from the edge"
        return (f"thin line of {int(members.sum()) if members is not None else 0} failing dies{where}, "
                f"{v['raw_width']:.1f} dies wide, length {v['raw_length']:.2f} wafer radii")
    if label == "Near-full":
        return f"{f:.0%} of the dies fail, everywhere"
    if label == "Random":
        return (f"{f:.0%} of the dies fail, spread evenly (neighbour fail rate {v['autocorr']:.0%} "
                f"vs {f:.0%}: no clustering)")
    return f"{f:.0%} of the dies fail, no zone or cluster stands out (largest cluster {raw_share:.1%} of the dies)"


def _largest_cluster(geo: WaferGeometry, filtered: bool) -> np.ndarray | None:
    from failmap_assets.kernels.wafer_clusters import fail_clusters, fail_neighbours

    mask = (geo.grid == 1).astype(np.uint8)
    if filtered:
        nf, nd = fail_neighbours(geo.grid)
        mask = (((nf + mask) * 2 > (nd + 1)) & (geo.grid == 1)).astype(np.uint8)
    labels, sizes = fail_clusters(mask)
    if sizes.size == 0:
        return None
    return labels[geo.rows, geo.cols] == int(np.argmax(sizes))


def _too_small(geo: WaferGeometry) -> WaferSignature:
    n = int(geo.x.size)
    return WaferSignature(
        raster=rasterise(geo, RASTER_SIZE), embedding=np.zeros(EMBEDDING_DIM, np.float32),
        label=TOO_SMALL, confidence=0.0,
        evidence=f"too small to classify: {n} dies (a pattern needs at least {MIN_DIES})",
        dies=n, fail_dies=int(geo.fail.sum()))


def reference_share(reference: VotingReference | None, embedding: np.ndarray, geo: WaferGeometry) -> np.ndarray:
    """(9,) PATTERN_CLASSES order: the share of the wafer's VOTE_K nearest reference maps
    in each class; the wafer itself (same notch-down grid and die aspect) never votes.
    All zeros without a reference."""
    share = np.zeros(len(PATTERN_CLASSES))
    if reference is None or reference.labels.size == 0:
        return share
    sim = reference.embeddings.astype(np.float64) @ np.asarray(embedding, dtype=np.float64)
    sim[reference.fingerprints == np.uint64(fingerprint(geo.grid, geo.die_aspect))] = EXCLUDED
    own = neighbour_share(sim[None, :], reference.labels, len(reference.classes))[0]
    for i, c in enumerate(reference.classes):
        if c in PATTERN_CLASSES:
            share[PATTERN_CLASSES.index(c)] += own[i]
    return share


def _vote_words(label: str, model_label: str, p_model: np.ndarray, share: np.ndarray) -> str:
    k, m = PATTERN_CLASSES.index(label), PATTERN_CLASSES.index(model_label)
    return (f"; {round(share[k] * VOTE_K)} of its {VOTE_K} nearest labelled reference maps are {label} "
            f"(the classifier alone: {model_label} {p_model[m]:.2f}, {label} {p_model[k]:.2f})")


def signature_of(geo: WaferGeometry, model: PatternModel | None = None) -> WaferSignature:
    """The label is the classifier blended with the vote of its reference (vote.py): the
    argmax of (p_classifier + share of the 5 nearest reference maps) / 2, its confidence
    that blended probability. The evidence says when the vote changed the classifier's call."""
    if geo.x.size < MIN_DIES:
        return _too_small(geo)
    model = model or shipped_model()
    feat = wafer_features(geo)
    p_model, emb = classifier_view(feat[None, :], polar_map(geo)[None, :], model)
    p_model, emb = p_model[0], emb[0]
    share = reference_share(model.reference, emb, geo)
    p = blend(p_model[None, :], share[None, :])[0]
    k = int(decide(p, p_model)[0])
    label, model_label = PATTERN_CLASSES[k], PATTERN_CLASSES[int(np.argmax(p_model))]
    evidence = explain(label, feat, geo)
    if label != model_label:
        evidence += _vote_words(label, model_label, p_model, share)
    return WaferSignature(
        raster=rasterise(geo, RASTER_SIZE), embedding=emb, label=label, confidence=float(p[k]),
        evidence=evidence, dies=int(geo.x.size), fail_dies=int(geo.fail.sum()))


def wafer_signature(grid: np.ndarray, die_aspect: float = 1.0, notch: str = "down") -> WaferSignature:
    """Signature of one wafer. ``grid`` int8 (rows, cols): -1 no die, 0 pass, 1 fail;
    ``die_aspect`` = die width / die height; ``notch`` = where the notch is in ``grid``."""
    return signature_of(wafer_geometry(grid, die_aspect, notch))


def wafer_signatures(grids: Iterable[np.ndarray], die_aspects: Sequence[float] | None = None,
                     notches: Sequence[str] | None = None, model: PatternModel | None = None) -> list[WaferSignature]:
    """Signatures of many wafers (``model``: another classifier than the shipped one, e.g.
    one retrained without a held-out lot)."""
    grids = list(grids)
    aspects = list(die_aspects) if die_aspects is not None else [1.0] * len(grids)
    notch_list = list(notches) if notches is not None else ["down"] * len(grids)
    if len(aspects) != len(grids) or len(notch_list) != len(grids):
        raise ValueError("die_aspects and notches must have one entry per grid")
    model = model or shipped_model()
    return [signature_of(wafer_geometry(g, a, n), model) for g, a, n in zip(grids, aspects, notch_list)]


def features_of(grid: np.ndarray, die_aspect: float = 1.0, notch: str = "down") -> np.ndarray | None:
    """The classifier's input for one wafer (None when too small): training uses this."""
    geo = wafer_geometry(grid, die_aspect, notch)
    if geo.x.size < MIN_DIES:
        return None
    return wafer_features(geo)


assert N_FEATURES == len(FEATURE_NAMES)
