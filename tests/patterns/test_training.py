"""The classifier: the shipped weights are what the training script makes, and it labels
held-out synthetic maps of every class."""

from __future__ import annotations

import numpy as np
import pytest

from failmap_assets.patterns import training
from failmap_assets.patterns.model import MODEL_PATH, load, mean_model, softmax
from failmap_assets.patterns.signature import PATTERN_CLASSES, SIGNATURE_VERSION, wafer_signatures
from failmap_synth.patterns import pattern_set


@pytest.mark.slow   # signs 3 x 2,880 synthetic maps and the 270 of the reference (about a minute on one core)
def test_training_reproduces_the_shipped_weights() -> None:
    shipped = load(MODEL_PATH)
    again = training.shipped()
    assert shipped.classes == again.classes == PATTERN_CLASSES
    assert shipped.version == again.version == SIGNATURE_VERSION
    for name in ("mean", "scale", "weights", "bias"):
        np.testing.assert_allclose(getattr(again, name), getattr(shipped, name), rtol=1e-6, atol=1e-9,
                                   err_msg=f"{name}: run `python -m failmap_assets.patterns.training`")
    # The voting reference stored with the weights (the label's neighbour vote).
    assert shipped.reference is not None and again.reference is not None
    assert shipped.reference.classes == again.reference.classes == PATTERN_CLASSES
    np.testing.assert_array_equal(again.reference.labels, shipped.reference.labels)
    np.testing.assert_array_equal(again.reference.fingerprints, shipped.reference.fingerprints)
    np.testing.assert_allclose(again.reference.embeddings, shipped.reference.embeddings, atol=1e-6,
                               err_msg="reference: run `python -m failmap_assets.patterns.training`")


def test_training_is_deterministic() -> None:
    a = training.train(seeds=(11, 12), sizes=(6, 8))
    b = training.train(seeds=(11, 12), sizes=(6, 8))
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.bias, b.bias)


def test_a_bag_of_models_is_the_mean_of_their_logits() -> None:
    members = [training.train_one(8, seed) for seed in (11, 12, 13)]
    bag = mean_model(members, "x")
    features, _ = training.synthetic_features(8, 14)
    expected = np.mean([m.logits(features) for m in members], axis=0)
    np.testing.assert_allclose(bag.logits(features), expected, rtol=1e-9, atol=1e-9)
    # Its probabilities are the members' geometric mean, renormalised.
    geo = np.exp(np.mean([np.log(m.probabilities(features)) for m in members], axis=0))
    np.testing.assert_allclose(bag.probabilities(features), geo / geo.sum(axis=1, keepdims=True), atol=1e-9)
    assert bag.weights.shape == members[0].weights.shape
    np.testing.assert_allclose(softmax(bag.logits(features)), bag.probabilities(features))


def test_every_class_is_recognised_at_a_held_out_seed() -> None:
    wafers = pattern_set(12, seed=1234)   # neither the training nor the reference seed
    sigs = wafer_signatures([w.grid for w in wafers], [w.die_aspect for w in wafers])
    recall = {c: np.mean([s.label == c for w, s in zip(wafers, sigs) if w.label == c]) for c in PATTERN_CLASSES}
    assert np.mean(list(recall.values())) >= 0.85, recall
    assert min(recall.values()) >= 0.5, recall
