"""`failmap patterns evaluate`: the macro figures and the exact last line."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from failmap_assets.cli import main
from failmap_assets.patterns.evaluate import score
from tests.support.testdata import shared_file

LAST_LINE = re.compile(r"^patterns: accuracy_macro=(\d\.\d{4}) knn5_macro=(\d\.\d{4}) n=(\d+)$")


def test_macro_figures_weigh_classes_equally() -> None:
    ev = score(["A", "A", "A", "B"], ["A", "B", "B", "B"], [1.0, 0.4, 0.4, 0.6])
    assert ev.recall == {"A": pytest.approx(1 / 3), "B": 1.0}
    assert ev.knn == {"A": pytest.approx(0.6), "B": pytest.approx(0.6)}
    assert ev.accuracy_macro == pytest.approx((1 / 3 + 1) / 2) and ev.knn5_macro == pytest.approx(0.6)


def _disc(n: int, fail) -> list[str]:
    r = (np.arange(n) + 0.5 - n / 2) / (n / 2)
    y, x = np.meshgrid(r, r, indexing="ij")
    on = np.hypot(x, y) <= 1.0
    bad = fail(x, y)
    return ["".join("." if not on[i, j] else "1" if bad[i, j] else "0" for j in range(n)) for i in range(n)]


def _write(path, maps) -> None:
    path.write_text("".join(json.dumps({"id": i, "lot": lot, "label": label, "map": m}) + "\n"
                            for i, lot, label, m in maps))


def test_cli_last_line_on_hand_made_maps(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    maps = [
        ("c1", "l1", "Center", _disc(36, lambda x, y: np.hypot(x, y) < 0.35)),
        ("n1", "l1", "Near-full", _disc(30, lambda x, y: rng.random(x.shape) < 0.95)),
        ("r1", "l2", "Edge-Ring", _disc(40, lambda x, y: np.hypot(x, y) > 0.9)),
        ("z1", "l2", "none", _disc(44, lambda x, y: rng.random(x.shape) < 0.01)),
        ("z2", "l2", "none", _disc(44, lambda x, y: np.hypot(x, y) < 0.35)),   # labelled none, looks Center
    ]
    test = tmp_path / "test.jsonl"
    _write(test, maps)
    assert main(["patterns", "evaluate", "--test", str(test)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    m = LAST_LINE.match(lines[-1])
    assert m, lines[-1]
    acc, knn, n = float(m.group(1)), float(m.group(2)), int(m.group(3))
    # Four clear maps right, the mislabelled one wrong: none has recall 1/2.
    assert n == 5 and acc == pytest.approx((1 + 1 + 1 + 0.5) / 4, abs=1e-4)
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    assert set(rows) == {"Center", "Near-full", "Edge-Ring", "none"}
    assert float(rows["none"][2]) == 0.5
    assert knn == pytest.approx(np.mean([float(r[3]) for r in rows.values()]), abs=1e-4)
    assert knn >= 0.7

    # --train adds maps to the reference set; a map is never its own neighbour.
    _write(tmp_path / "train.jsonl", maps[:1])
    assert main(["patterns", "evaluate", "--test", str(test), "--train", str(tmp_path / "train.jsonl")]) == 0
    assert LAST_LINE.match(capsys.readouterr().out.strip().splitlines()[-1])

    # Leave one lot out: each lot's labels, then the figures over every map.
    assert main(["patterns", "evaluate", "--test", str(test), "--by-lot", "--no-retrain"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("lot l1: c1:Center->Center, n1:Near-full->Near-full")
    assert lines[1].startswith("lot l2: r1:Edge-Ring->Edge-Ring")
    m = LAST_LINE.match(lines[-1])
    assert m and int(m.group(3)) == 5 and float(m.group(1)) == pytest.approx(acc, abs=1e-4)


def test_real_dev_wafers() -> None:
    """The 15 real WM-811K dev wafers with the shipped classifier and reference set."""
    from failmap_assets.patterns.evaluate import evaluate, synthetic_reference
    from failmap_assets.patterns.wm811k import read_labelled_maps

    maps = read_labelled_maps(shared_file("wm811k", "wm811k_dev.jsonl"))
    ev = evaluate(maps, synthetic_reference())
    assert ev.n == 15
    # WM-811K labels are noisy (lot40-w9 "Random" is a structured pattern): not all 15.
    assert ev.accuracy_macro >= 0.75 and ev.knn5_macro >= 0.7, (ev.recall, ev.knn)
    for label in ("Near-full", "Edge-Ring", "none"):
        assert ev.recall[label] == 1.0, (label, ev.predicted)
