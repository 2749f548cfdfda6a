"""The pattern tables' columns (type, meaning): what the day runners write and the UI shows."""

from __future__ import annotations

import polars as pl

from failmap_assets.patterns.signature import EMBEDDING_DIM, PATTERN_CLASSES, RASTER_SIZE, TOO_SMALL

#: Bumped whenever what the day runners write changes for the same inputs.
PATTERNS_DAY_VERSION = 1

_IDENTITY = {
    "source": (pl.String, "failmap (fail maps and industry formats) or stdf"),
    "wafer_token": (pl.String, "the wafer token of the test event"),
    "object_key": (pl.String, "the object (A map / STDF file) of the test event"),
    "lot": (pl.String, "lot id"),
    "wafer": (pl.String, "wafer id in the lot"),
    "insertion": (pl.String, "the key's P/R/C letter; STDF: the MIR retest code"),
    "product": (pl.String, "product (part type)"),
    "step": (pl.String, "test step"),
    "file_time": (pl.Datetime("us"), "when the test event was tested (fab time)"),
    "latest": (pl.Boolean, "the wafer's latest test event of the day"),
}

SIGNATURE_COLUMNS = {
    **_IDENTITY,
    "flat": (pl.String, "notch / flat side of the map (U, D, L, R); the raster is turned notch down"),
    "die_aspect": (pl.Float64, "die width / height: from the file's die size, else from the outline of the dies"),
    "die_aspect_known": (pl.Boolean, "the die aspect comes from the file's die size"),
    "label": (pl.String, f"pattern class ({', '.join(PATTERN_CLASSES)}) or {TOO_SMALL}"),
    "confidence": (pl.Float64, "the label's probability, 0..1 (0 for too_small): the classifier's, "
                               "averaged with the share of the 5 nearest labelled reference maps voting for it"),
    "evidence": (pl.String, "which zone or region drives the label, in words (and the neighbour vote, "
                            "when it changed the classifier's call)"),
    "dies": (pl.Int64, "dies of the test event"),
    "fail_dies": (pl.Int64, "failing dies"),
    "embedding": (pl.Array(pl.Float32, EMBEDDING_DIM),
                  f"unit-length embedding ({EMBEDDING_DIM} floats; cosine distance = 1 - dot)"),
    "raster": (pl.Array(pl.Float32, RASTER_SIZE * RASTER_SIZE),
               f"fail density, {RASTER_SIZE} x {RASTER_SIZE} row-major, notch down, NaN off the wafer"),
}

_NEIGHBOUR = {
    "day": (pl.Date, "the fab day of the wafer"),
    **{k: _IDENTITY[k] for k in ("source", "wafer_token", "object_key", "lot", "wafer", "product", "step")},
    "label": (pl.String, "the wafer's pattern label"),
}

SIMILAR_COLUMNS = {
    **_NEIGHBOUR,
    "rank": (pl.Int32, "1 = the most similar earlier wafer"),
    **{f"similar_{k}": (t, f"the earlier wafer's {k}") for k, (t, _) in _NEIGHBOUR.items()},
    "similar_file_time": (pl.Datetime("us"), "when the earlier wafer was tested"),
    "similarity": (pl.Float64, "cosine similarity of the signatures"),
    "distance": (pl.Float64, "cosine distance, 1 - similarity"),
    "index_version": (pl.String, "the product's pattern index version searched (null: same-day wafer only)"),
}

ANOMALY_COLUMNS = {
    **_NEIGHBOUR,
    "confidence": (pl.Float64, "the label's confidence"),
    "anomaly_score": (pl.Float64, "mean cosine distance to the k nearest earlier normal wafers of the product"),
    "threshold": (pl.Float64, "the product's flag threshold (leave-one-out calibration on its memory bank)"),
    "anomalous": (pl.Boolean, "score above the threshold"),
    "bank_size": (pl.Int64, "earlier normal wafers of the product the score compares with"),
    "index_version": (pl.String, "the product's pattern index version"),
    "reason": (pl.String, "why there is no score: too_small, no_index, no_earlier_normal_wafers, "
                                 "signature_version_differs (the day and the index were signed by different code)"),
}


def schema_of(columns: dict) -> dict:
    return {name: dtype for name, (dtype, _) in columns.items()}
