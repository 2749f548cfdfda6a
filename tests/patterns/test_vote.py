"""The label = the classifier blended with a 5-nearest-neighbour vote (vote.py): the vote
turns weak classifier calls, not strong ones, and a map never votes for itself."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from failmap_assets.patterns import training
from failmap_assets.patterns.evaluate import REFERENCE_SEED, Reference, evaluate, synthetic_reference, with_maps
from failmap_assets.patterns.features import wafer_features
from failmap_assets.patterns.geometry import infer_die_aspect, wafer_geometry
from failmap_assets.patterns.model import shipped_model
from failmap_assets.patterns.signature import (
    EMBEDDING_DIM, PATTERN_CLASSES, classifier_view, polar_map, reference_share, wafer_signatures)
from failmap_assets.patterns.vote import EXCLUDED, VotingReference, blend, decide, neighbour_share
from failmap_assets.patterns.wm811k import LabelledMap
from failmap_synth.patterns import pattern_set, pattern_wafer

LOC, SCRATCH = PATTERN_CLASSES.index("Loc"), PATTERN_CLASSES.index("Scratch")


def test_a_knife_edge_call_follows_a_clear_vote() -> None:
    # The classifier's Loc 0.43 vs Scratch 0.42; neighbours: Scratch x4, Loc x1.
    p = np.full(9, 0.15 / 7)
    p[LOC], p[SCRATCH] = 0.43, 0.42
    sim = np.array([[0.9, 0.8, 0.7, 0.6, 0.5, 0.1]])
    share = neighbour_share(sim, np.array([SCRATCH, SCRATCH, LOC, SCRATCH, SCRATCH, LOC]), 9)
    assert share[0, SCRATCH] == pytest.approx(0.8) and share[0, LOC] == pytest.approx(0.2)
    assert decide(blend(p[None], share), p[None])[0] == SCRATCH
    # A strong call survives a split vote.
    strong = np.full(9, 0.05 / 7)
    strong[LOC], strong[SCRATCH] = 0.9, 0.05
    assert decide(blend(strong[None], share), strong[None])[0] == LOC
    # Excluded or no neighbours: the classifier alone.
    none = neighbour_share(np.full((1, 6), EXCLUDED), np.zeros(6, np.int64), 9)
    assert not none.any() and np.array_equal(blend(p[None], none), p[None])


def test_weighted_vote_and_ties() -> None:
    sim = np.array([[0.9, 0.1, 0.1, 0.1, 0.1]])
    w = neighbour_share(sim, np.array([0, 1, 1, 1, 1]), 3, weighted=True)
    assert w[0, 0] == pytest.approx(0.9 / 1.3) and w.sum() == pytest.approx(1.0)
    # A tie in the blend goes to the class the classifier rates higher.
    assert decide(np.array([[0.4, 0.4, 0.2]]), np.array([[0.2, 0.5, 0.3]]))[0] == 1


@pytest.mark.parametrize("sim, labels", [
    (np.zeros(5), np.zeros(5, np.int64)),                 # not 2-D
    (np.zeros((2, 5)), np.zeros(4, np.int64)),            # one label short
    (np.zeros((2, 5)), np.array([0, 1, 2, 3, 9])),        # a class out of range
    (np.zeros((2, 5)), np.array([0, -1, 2, 3, 4])),
])
def test_bad_votes_are_refused(sim, labels) -> None:
    with pytest.raises(ValueError):
        neighbour_share(sim, labels, 9)


def test_random_shapes_never_read_out_of_bounds() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        m, n, k = rng.integers(0, 4), rng.integers(0, 8), int(rng.integers(1, 12))
        sim = rng.normal(size=(m, n))
        sim[rng.random((m, n)) < 0.3] = EXCLUDED
        labels = rng.integers(0, 9, size=n)
        share = neighbour_share(sim, labels, 9, k=k, weighted=bool(rng.integers(0, 2)))
        assert share.shape == (m, 9) and np.all((share.sum(axis=1) == 0) | np.isclose(share.sum(axis=1), 1.0))
    with pytest.raises(ValueError):
        VotingReference(PATTERN_CLASSES, np.zeros(3, np.int64), np.zeros((2, EMBEDDING_DIM), np.float32),
                        np.zeros(3, np.uint64))


# A small synthetic reference, not the dev set: a clear Loc wafer, three Scratch and two
# Loc wafers of another seed. A "weak" classifier is the shipped one with its logits
# divided by 20: the same argmax, probabilities close together.
def _weak(model):
    return dataclasses.replace(model, weights=model.weights / 20, bias=model.bias / 20, reference=None)


def _query():
    return pattern_wafer("Loc", seed=91, index=0)


def _voters():
    return [pattern_wafer("Scratch", seed=92, index=i) for i in range(3)] + \
           [pattern_wafer("Loc", seed=92, index=i) for i in range(2)]


def test_the_vote_turns_a_weak_call_not_a_strong_one() -> None:
    q = _query()
    for strength, model in (("strong", dataclasses.replace(shipped_model(), reference=None)),
                            ("weak", _weak(shipped_model()))):
        alone = wafer_signatures([q.grid], [q.die_aspect], model=model)[0]
        assert alone.label == "Loc", (strength, alone)   # the classifier alone
        voted = dataclasses.replace(model, reference=training.voting_reference(model, _voters()))
        s = wafer_signatures([q.grid], [q.die_aspect], model=voted)[0]
        np.testing.assert_array_equal(s.embedding, alone.embedding)   # the vote moves the label only
        if strength == "strong":
            assert s.label == "Loc" and "nearest" not in s.evidence
            assert s.confidence == pytest.approx((alone.confidence + 2 / 5) / 2)
        else:
            # 3 of 5 neighbours say Scratch: a weak Loc call follows them, and says so.
            assert s.label == "Scratch", s
            assert "3 of its 5 nearest labelled reference maps are Scratch" in s.evidence
            assert "the classifier alone: Loc" in s.evidence
            assert 0.3 < s.confidence < 0.6


def test_a_map_in_the_reference_never_votes_for_itself() -> None:
    q = _query()
    weak = _weak(shipped_model())
    # The query itself (labelled Loc) beside five Scratch maps: it would be its own
    # nearest neighbour; left out, the five Scratch maps vote.
    scratch = [pattern_wafer("Scratch", seed=92, index=i) for i in range(5)]
    with_self = dataclasses.replace(weak, reference=training.voting_reference(weak, [q, *scratch]))
    without = dataclasses.replace(weak, reference=training.voting_reference(weak, scratch))
    a = wafer_signatures([q.grid], [q.die_aspect], model=with_self)[0]
    b = wafer_signatures([q.grid], [q.die_aspect], model=without)[0]
    assert a.label == b.label == "Scratch" and a.confidence == pytest.approx(b.confidence)
    assert "5 of its 5 nearest" in a.evidence
    # The same wafer seen notch up is the same wafer: still not its own voter.
    c = wafer_signatures([np.rot90(q.grid, 2)], [q.die_aspect], notches=["up"], model=with_self)[0]
    assert c.label == "Scratch" and c.confidence == pytest.approx(b.confidence)
    # A different wafer with the query in the reference does get its vote.
    other = pattern_wafer("Loc", seed=91, index=1)
    assert training.voting_reference(weak, [q]).fingerprints[0] != \
        training.voting_reference(weak, [other]).fingerprints[0]

    # evaluate: the same rule by id and grid, for the vote as for the knn figure.
    maps = [LabelledMap("q", "lot-q", "Loc", q.grid)] + \
           [LabelledMap(f"s{i}", "lot-s", "Scratch", w.grid) for i, w in enumerate(scratch)]
    empty = Reference([], [], [], np.zeros((0, EMBEDDING_DIM), np.float32))
    ev = evaluate(maps[:1], with_maps(empty, maps, weak), model=weak)
    ev_without = evaluate(maps[:1], with_maps(empty, maps[1:], weak), model=weak)
    assert ev.predicted == ev_without.predicted == ["Scratch"] and ev.knn_shares == [0.0]


def test_shipped_reference_is_the_synthetic_reference_set() -> None:
    """pattern_model.npz stores the shipped reference set embedded by the shipped
    classifier: evaluate's reference (made by signing) is the same maps, so the CLI and
    signature_of label alike."""
    model = shipped_model()
    ref = synthetic_reference()
    assert model.reference is not None
    assert [PATTERN_CLASSES[i] for i in model.reference.labels] == ref.labels
    np.testing.assert_allclose(model.reference.embeddings, ref.embeddings, atol=1e-6)
    wafers = pattern_set(2, seed=1234)
    aspects = [infer_die_aspect(w.grid) for w in wafers]   # as evaluate does for maps without die sizes
    sigs = wafer_signatures([w.grid for w in wafers], aspects)
    ev = evaluate([LabelledMap(f"h{i}", "h", w.label, w.grid) for i, w in enumerate(wafers)], ref)
    assert ev.predicted == [s.label for s in sigs]
    assert [s.confidence for s in sigs] != [0.0] * len(sigs)


def test_a_reference_map_signed_alone_does_not_vote_for_itself() -> None:
    model = shipped_model()
    w0 = pattern_set(1, seed=REFERENCE_SEED)[0]   # the first map of the shipped reference set
    geo = wafer_geometry(w0.grid, w0.die_aspect)
    _, emb = classifier_view(wafer_features(geo)[None, :], polar_map(geo)[None, :], model)
    sim = model.reference.embeddings.astype(np.float64) @ emb[0].astype(np.float64)
    assert int(np.argmax(sim)) == 0 and sim[0] == pytest.approx(1.0, abs=1e-5)   # it is in the reference
    # Relabel it "none" in a copy of the reference: were it its own voter, none would get a share.
    none = PATTERN_CLASSES.index("none")
    labels = model.reference.labels.copy()
    labels[0] = none
    relabelled = dataclasses.replace(model.reference, labels=labels)
    sim[0] = EXCLUDED
    expected = neighbour_share(sim[None, :], labels, 9)[0]
    got = reference_share(relabelled, emb[0], geo)
    np.testing.assert_allclose(got, expected)
    assert got[none] == 0.0 and got.sum() == pytest.approx(1.0)
