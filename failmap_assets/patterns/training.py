"""Train the pattern classifier from labelled synthetic maps (failmap_synth.patterns).

``python -m failmap_assets.patterns.training`` rewrites ``pattern_model.npz``; the
same code, seed and numpy give the same weights (tests/patterns checks that the
shipped file is what this script makes). No data from outside the repository.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from failmap_assets.patterns.model import MODEL_PATH, PatternModel, fit
from failmap_assets.patterns.signature import PATTERN_CLASSES, SIGNATURE_VERSION, features_of
from failmap_synth.patterns import pattern_set

TRAIN_SEED = 1
TRAIN_PER_CLASS = 160


def synthetic_features(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    feats, labels = [], []
    for w in pattern_set(n_per_class, seed):
        f = features_of(w.grid, w.die_aspect)
        if f is not None:
            feats.append(f)
            labels.append(PATTERN_CLASSES.index(w.label))
    return np.asarray(feats), np.asarray(labels, dtype=np.int64)


def train(n_per_class: int = TRAIN_PER_CLASS, seed: int = TRAIN_SEED,
          extra: Sequence[tuple[np.ndarray, str]] = ()) -> PatternModel:
    """The classifier from ``n_per_class`` synthetic maps of each class, plus ``extra``
    (features, label) pairs (e.g. real labelled maps)."""
    x, y = synthetic_features(n_per_class, seed)
    if extra:
        x = np.vstack([x, np.asarray([f for f, _ in extra])])
        y = np.concatenate([y, [PATTERN_CLASSES.index(lab) for _, lab in extra]])
    return fit(x, y, PATTERN_CLASSES, SIGNATURE_VERSION)


def main(argv: list[str] | None = None) -> int:
    model = train()
    model.save(MODEL_PATH)
    print(f"wrote {MODEL_PATH} ({MODEL_PATH.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
