"""A fab on local folders for the asset tests: the three source folders and the output
beside each other, the settings that point at them, and a small synthetic day landed in
them (fail maps with their B files, plus one STDF wafer-sort file)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

from failmap_assets.settings import Settings
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_synth.day import generate_day
from failmap_synth.stdf_writer import build_wafer_sort

SOURCES = ("a", "b", "stdf")


def local_fab(root: Path) -> Settings:
    """Folders a/, b/, stdf/ and out/ under ``root``; the settings that use them."""
    for sub in (*SOURCES, "out"):
        (root / sub).mkdir()
    return replace(Settings.from_env(), source_a=str(root / "a"), source_b=str(root / "b"),
                   source_stdf=str(root / "stdf"), output=str(root / "out"))


def land_small_day(root: Path, day: date, wafers: int, seed: int = 4) -> None:
    """``wafers`` small fail-map wafers (150-400 dies, no broken files) and one STDF
    wafer-sort file of ``day`` into the source folders of ``local_fab(root)``."""
    stores = {sub: LocalObjectStore(root / sub) for sub in SOURCES}
    for o in generate_day(day, wafers, seed, broken=False, dies_range=(150, 400), typical_dies=250):
        stores[o.bucket].put(o.key, o.data)
    stores["stdf"].put(f"{day:%Y%m%d}/S1_03_{day:%Y%m%d}_090000.stdf",
                       build_wafer_sort(9, dies=200, tests_per_die=4, lot_id="S1", wafer_id="03").data)
