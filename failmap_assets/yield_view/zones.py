"""Wafer zones: centre, middle and edge rings by normalised radius.

A die's radius is its distance, in die pitches, from the centre of its wafer's die
grid: the midpoint of the bounding box of the wafer's dies (not their mean, which a
wafer with a missing region would pull aside). It is normalised by the largest
radius among the wafer's dies, so the outermost die sits at r = 1 whatever the wafer
size or die size. Rings:

    centre   r <= 0.5
    middle   0.5 < r <= 0.8
    edge     r > 0.8

A wafer of one die (radius 0 everywhere) is all centre.
"""

from __future__ import annotations

import polars as pl

ZONES = ("centre", "middle", "edge")
#: Upper bound (inclusive) of the normalised radius of each ring but the last.
CENTRE_MAX_R = 0.5
MIDDLE_MAX_R = 0.8


def normalised_radius(by: list[str], x: str = "x", y: str = "y") -> pl.Expr:
    """Each die's radius over its wafer (``by`` names one wafer test event), 0..1."""
    cx = (pl.col(x).min() + pl.col(x).max()).over(by) / 2
    cy = (pl.col(y).min() + pl.col(y).max()).over(by) / 2
    dist = ((pl.col(x) - cx) ** 2 + (pl.col(y) - cy) ** 2).sqrt()
    furthest = dist.max().over(by)
    return pl.when(furthest > 0).then(dist / furthest).otherwise(0.0)


def zone_of(radius: pl.Expr) -> pl.Expr:
    """The ring of a normalised radius."""
    return (
        pl.when(radius <= CENTRE_MAX_R).then(pl.lit("centre"))
        .when(radius <= MIDDLE_MAX_R).then(pl.lit("middle"))
        .otherwise(pl.lit("edge"))
    )
