"""Reading labelled maps in the WM-811K JSON Lines format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from failmap_assets.patterns.wm811k import parse_map, read_labelled_maps


def test_characters_map_to_the_grid_convention() -> None:
    np.testing.assert_array_equal(parse_map([".01", "10."]), np.array([[-1, 0, 1], [1, 0, -1]], np.int8))
    assert parse_map([]).shape == (0, 0)


def test_file_is_read_and_bad_lines_are_named(tmp_path) -> None:
    good = {"id": "w1", "lot": "l1", "label": "Center", "rows": 2, "cols": 3, "map": [".1.", "010"]}
    path = tmp_path / "maps.jsonl"
    path.write_text(json.dumps(good) + "\n\n")
    [m] = read_labelled_maps(path)
    assert (m.id, m.lot, m.label, m.grid.shape) == ("w1", "l1", "Center", (2, 3))
    for bad, why in [({**good, "map": [".1.", "01"]}, "differ in length"),
                     ({**good, "map": [".x.", "010"]}, "character"),
                     ({**good, "rows": 3}, "header says"),
                     ({k: v for k, v in good.items() if k != "label"}, "label")]:
        path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
        with pytest.raises(ValueError, match=f"line 2: .*{why}"):
            read_labelled_maps(path)
