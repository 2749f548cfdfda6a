"""Imported once by the fork server of ``tests.support.day_runs``: everything
``failmap run-day`` imports (Dagster included) and every Numba kernel it calls, so
each forked run starts in milliseconds instead of seconds. Nothing here starts a
thread or opens a store: the forked children must not inherit either."""

from __future__ import annotations

import warnings

warnings.simplefilter("ignore")  # import-time warnings of Dagster would land in the server's stderr

import failmap_assets.cli  # noqa: E402,F401
import failmap_assets.defs.failmap.assets  # noqa: E402,F401
import failmap_assets.defs.stdf.assets  # noqa: E402,F401
import failmap_assets.resources  # noqa: E402,F401


def _warm_up() -> None:
    """Load the cached Numba kernels (the A/B parser, JSON writer, STDF decoder) once."""
    from failmap_assets.pipeline.unit import ProcessingOptions, Unit, process_unit
    from failmap_assets.stdf.tables import parse_stdf
    from failmap_assets.stdf.wafer_maps import wafer_maps
    from failmap_synth.stdf_writer import make_wafer_sort_stdf

    a = b"FAILMAP 1\nLOT L1\nWAFER 01\nSTIME 20260111_000000\nDIES 2\n0 0 1\n1 0 7\nEND\n"
    b = b"FAILMAP-B 1\nSTIME 20260111_000001\nVALUES 1 V\nDIES 2\n0 0 1 0.5\n1 0 7 NA\nEND\n"
    unit = Unit("20260111/L1_01P_20260111_000000.txt", "e", "L1_01P", "20260111/L1_01P_20260111_000001.txt", "f")
    process_unit(unit, a, b, ProcessingOptions())
    parsed = parse_stdf(make_wafer_sort_stdf(1, dies=4, tests_per_die=4), file_id="warm", name="warm.stdf")
    wafer_maps(parsed)


_warm_up()
