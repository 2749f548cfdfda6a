"""Each physical wafer's merged map (``merged.py``: the final die of every position over
its insertions) as a ``WaferMap``, so it is drawn and written like the per-insertion
maps: the same PNG rendering and palette, the same JSON schema.

The map takes the lot, wafer, step and product of the wafer's latest test event, its
notch side too (``flat``; ``D`` when the pipelines' state predates recording it), its
format is ``merged``, and each bin keeps the verdict and the name the merged dies got
from their own test events. Its JSON ``source`` names no object (a merged map is no
file) but the merge rule and the test events merged, in test order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from failmap_assets.wafer.model import WaferMap
from failmap_assets.yield_view.merged import WAFER
from failmap_assets.yield_view.summaries import EVENT

#: The flat side of a merged map whose events do not say (state of an older version).
DEFAULT_FLAT = "D"


@dataclass
class MergedMap:
    key: tuple                     # (source, lot, wafer, step)
    wafer_token: str               # of the wafer's latest test event
    wafer: WaferMap
    source: dict                   # the JSON's ``source``


def merged_maps(events: pl.DataFrame, merged: pl.DataFrame, bin_names: pl.DataFrame,
                rule: str) -> Iterator[MergedMap]:
    """One ``MergedMap`` per physical wafer of ``merged`` (a merged_dies table)."""
    order = events.filter(pl.col("lot").is_not_null() & pl.col("wafer").is_not_null()).sort(
        ["file_time", "object_key", "wafer_token"], nulls_last=False)
    tested = {k: g for k, g in order.group_by(WAFER, maintain_order=True)}
    names = bin_names.join(order.select(*EVENT, *[c for c in WAFER if c not in EVENT]), on=EVENT, how="inner",
                           nulls_equal=True)
    named = {k: dict(zip(g["bin"].to_list(), g["name"].to_list())) for k, g in names.group_by(WAFER)}
    for key, dies in merged.group_by(WAFER, maintain_order=True):
        events_of = tested[key]
        last = events_of.row(events_of.height - 1, named=True)
        verdicts = dies.select("bin", "pass").unique("bin", keep="first")
        wafer = WaferMap(
            format="merged", x=dies["x"].to_numpy().astype(np.int32), y=dies["y"].to_numpy().astype(np.int32),
            bin=dies["bin"].to_numpy().astype(np.int32), retest_count=np.zeros(dies.height, dtype=np.int16),
            lot=last["lot"], wafer=last["wafer"], product=last["product"], step=last["step"],
            flat=last["flat"] or DEFAULT_FLAT,
            bin_pass={int(b): bool(p) for b, p in verdicts.iter_rows()},
            bin_names={int(b): n for b, n in named.get(key, {}).items() if n is not None},
            rows_read=dies.height,
        )
        source = {"a_key": None, "a_etag": None, "b_key": None, "b_etag": None, "merge_rule": rule,
                  "merged_events": [{"object_key": e["object_key"], "wafer_token": e["wafer_token"],
                                     "insertion": e["insertion"]} for e in events_of.iter_rows(named=True)]}
        yield MergedMap(key=key, wafer_token=last["wafer_token"], wafer=wafer, source=source)
