"""Synthetic, deterministic test data: fail maps (buckets A and B) and STDF files.

Pure: everything returns bytes; writing them into object stores is the CLI's job.

- ``day``            generate_day / generate_days -> SynthObject(bucket, key, data, note, ...)
- ``wafer_shapes``   products, die grids, bins with spatial fail patterns
- ``measurements``   bucket B values per die
- ``failmap_files``  bucket A / B text per docs/failmap-format.md, and its breakages
- ``compression``    Z, gz, bz2, xz, 7z, zip, tar, tar.gz/tgz, txt (reproducible bytes)
- ``textcols``       vectorised number -> text formatting
- ``stdf_records``   STDF V4 record table and vectorised encoder
- ``stdf_writer``    make_wafer_sort_stdf
- ``rng``            the seeded PCG64 streams everything draws from
"""

from failmap_synth.day import (NOTES, SynthObject, expected_summary, expected_totals, generate_day,
                                      generate_days)
from failmap_synth.stdf_writer import build_wafer_sort, make_wafer_sort_stdf

__all__ = ["NOTES", "SynthObject", "build_wafer_sort", "expected_summary", "expected_totals", "generate_day",
           "generate_days", "make_wafer_sort_stdf"]
