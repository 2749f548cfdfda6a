"""The orientation conventions the readers apply, checked on real files where the dies show
where the flat is (formats/README.md, "Orientation conventions and their sources").

A flat cuts the wafer's outermost row straight, so on the flat's side the outermost row
(or column) of dies is clearly longer than on the opposite side. Where a real file shows
that, the side the reader derives from the file's own orientation field must be that side.
Files whose maps are too symmetric to show it are listed in the README, not asserted here.
"""

from __future__ import annotations

import pytest

from failmap_assets.formats.detect import read_wafer_maps
from tests.support.map_edges import edge_lengths, straight_side
from tests.support.testdata import requires_shared, shared_file

pytestmark = requires_shared

# (folder, file, orientation field as written, side it means under the reader's convention)
SHOWN_BY_THE_DIES = [
    # SEMI E5 FNLOC (clockwise from the bottom): 0 is the bottom ...
    ("ascii", "ifx_versid32_84P01V59.21", ("FNLOC1", "0"), "D"),
    # ... and 270 the right (counter-clockwise would make it the left).
    ("ascii", "mchp_3A1877.01", ("FNLOC", "270"), "R"),
    # Clock position: 6 o'clock is the bottom.
    ("ascii", "melexis_S96898-01-B6", ("orient", "6"), "D"),
    # KLARF 1.1 side word, with die indices growing upward (y = -YINDEX).
    ("klarf", "klarfkit_CPS3TwithoutReview.001", ("OrientationMarkLocation", "DOWN"), "D"),
    # TSK counts from the top: 180 is the bottom (the E5 reading would put it on top).
    ("tsk", "larvata_001.QR2352-D5U278-CP-1", ("flat_direction_degrees", "180"), "D"),
]


@pytest.mark.parametrize(("folder", "name", "field", "side"), SHOWN_BY_THE_DIES, ids=[c[1] for c in SHOWN_BY_THE_DIES])
def test_flat_side_agrees_with_the_dies(folder, name, field, side):
    [wafer] = read_wafer_maps(shared_file("maps", folder, name).read_bytes())
    key, value = field
    assert wafer.extra[key] == value                      # the file says what the case says it says
    assert wafer.flat == side
    assert straight_side(wafer) == side, edge_lengths(wafer)


def test_the_edge_rule_can_fail():
    """The rule tells sides apart: a map turned upside down moves the long edge."""
    [wafer] = read_wafer_maps(shared_file("maps", "tsk", "larvata_001.QR2352-D5U278-CP-1").read_bytes())
    wafer.y = (wafer.y.max() - wafer.y).astype(wafer.y.dtype)
    assert straight_side(wafer) == "U"
