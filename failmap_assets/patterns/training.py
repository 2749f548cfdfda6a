"""Train the pattern classifier from labelled synthetic maps (failmap_synth.patterns).

``python -m failmap_assets.patterns.training`` rewrites ``pattern_model.npz``; the
same code, seed and numpy give the same weights (tests/patterns checks that the
shipped file is what this script makes). No data from outside the repository.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence

import numpy as np

from failmap_assets.patterns.geometry import infer_die_aspect
from failmap_assets.patterns.model import MODEL_PATH, PatternModel, fit
from failmap_assets.patterns.signature import PATTERN_CLASSES, SIGNATURE_VERSION, features_of
from failmap_assets.patterns.wm811k import LabelledMap
from failmap_synth.patterns import pattern_set

TRAIN_SEED = 1
TRAIN_PER_CLASS = 160
REAL_WEIGHT = 10.0


@functools.lru_cache(maxsize=2)
def synthetic_features(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    feats, labels = [], []
    for w in pattern_set(n_per_class, seed):
        f = features_of(w.grid, w.die_aspect)
        if f is not None:
            feats.append(f)
            labels.append(PATTERN_CLASSES.index(w.label))
    return np.asarray(feats), np.asarray(labels, dtype=np.int64)


def train(n_per_class: int = TRAIN_PER_CLASS, seed: int = TRAIN_SEED,
          extra: Sequence[LabelledMap] = ()) -> PatternModel:
    """The classifier from ``n_per_class`` synthetic maps of each class, plus ``extra``
    real labelled maps, each weighing as much as REAL_WEIGHT synthetic ones (there are
    few of them, and they are what the model must be right on)."""
    x, y = synthetic_features(n_per_class, seed)
    weight = np.ones(len(y))
    real = [(features_of(m.grid, infer_die_aspect(m.grid)), m.label) for m in extra if m.label in PATTERN_CLASSES]
    real = [(f, lab) for f, lab in real if f is not None]
    if real:
        x = np.vstack([x, np.asarray([f for f, _ in real])])
        y = np.concatenate([y, [PATTERN_CLASSES.index(lab) for _, lab in real]])
        weight = np.concatenate([weight, np.full(len(real), REAL_WEIGHT)])
    return fit(x, y, PATTERN_CLASSES, SIGNATURE_VERSION, sample_weight=weight)


def main(argv: list[str] | None = None) -> int:
    model = train()
    model.save(MODEL_PATH)
    print(f"wrote {MODEL_PATH} ({MODEL_PATH.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
