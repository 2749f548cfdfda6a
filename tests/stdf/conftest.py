"""Session caches for the STDF tests: pystdf is slow, so each file is read by it once
per session (two worker processes), and each file is parsed by us once."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from pathlib import Path

import pyarrow as pa
import pytest

from tests.support.testdata import STDF_DIR

# pystdf 1.4.0 reads these; the README lists what it gets wrong in the others.
PYSTDF_FILES = [
    "11_2014_07_18_11.38.42.stdf",
    "523X3008_datalog_20200417221044.stdf",
    "EJ04D27.5_Data_20180209.172644_ptech.stdf",
    "LX7730_T25_SN192_20160322215334.stdf",
    "N09D212_1_12_P_ETS060702_04222019.std",
    "NI_STS_example.std",
    "TEST_FT_GX36_A2_FT_E_02032013_0230.stdf",
    "WS_P9AR90_25C_SmartScale1_20191226_23h16m02s.stdf",
    "a595.stdf",
    "ayad_ws.stdf",
    "bcdm_S11189_c_01.stdf",
    "d10_1.std",
    "lot2.stdf",
    "main_Lot_1_Wafer_1_Oct_13_09h33m41s_STDF.stdf",
    "rabbi.stdf",
    "sn269_m40c.stdf",
    "sort_4die_20times.stdf",
    "spreadsheet14.stdf",
    "stdf4j_test.stdf",
]
# pystdf reads these without error but wrongly (corrupt tail) or not at all (V3,
# truncated array): hand-checked expectations in test_special_files.py.
PYSTDF_WRONG = [
    "STS_001SRAM_8435_-30c_Nov_10_23h05m08s.stdf",
    "in_v3.std",
    "makechip_x.stdf",
]
ALL_V4_FILES = sorted(set(PYSTDF_FILES) | {"STS_001SRAM_8435_-30c_Nov_10_23h05m08s.stdf", "makechip_x.stdf",
                                            "lot2.stdf.gz"})


class _PystdfCache:
    def __init__(self):
        self._done: dict[str, tuple] = {}
        self._futures: dict[str, cf.Future] = {}
        self._pool: cf.ProcessPoolExecutor | None = None

    def _start(self):
        if self._pool is None and STDF_DIR.is_dir():
            from tests.stdf.pystdf_ref import read_pystdf

            # One background worker (the test process needs the other core), fed in the
            # order the parametrised tests ask for the files.
            workers = max(1, min(2, (os.cpu_count() or 2) - 1))
            self._pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
            for n in PYSTDF_FILES + ["makechip_x.stdf", "STS_001SRAM_8435_-30c_Nov_10_23h05m08s.stdf"]:
                self._futures[n] = self._pool.submit(read_pystdf, str(STDF_DIR / n))

    def get(self, name: str):
        if name not in self._done:
            self._start()
            fut = self._futures.get(name)
            if fut is not None and fut.cancel():
                fut = None      # still queued behind other files: read it here instead of waiting
            if fut is None:
                from tests.stdf.pystdf_ref import read_pystdf

                self._done[name] = read_pystdf(str(STDF_DIR / name))
            else:
                self._done[name] = fut.result()
        return self._done[name]

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)


@pytest.fixture(scope="session")
def pystdf_records():
    cache = _PystdfCache()
    yield cache.get
    cache.close()


@pytest.fixture(scope="session")
def parsed():
    from failmap_assets.stdf import parse_stdf

    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            path = STDF_DIR / name
            if not path.exists():
                pytest.skip(f"real test data not available: {path}")
            cache[name] = parse_stdf(path)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def stdf_path():
    def get(name: str) -> Path:
        from tests.support.testdata import shared_file

        return shared_file("stdf", name)

    return get


_FLOAT_BITS = {pa.float32(): pa.uint32(), pa.float64(): pa.uint64()}


def float_bits(a: pa.Array) -> pa.Array:
    """Floats (and lists of floats) as their bit patterns, for equality: Arrow's ``equals``
    holds NaN unequal to itself."""
    if a.type in _FLOAT_BITS:
        return a.view(_FLOAT_BITS[a.type])
    if pa.types.is_list(a.type) and a.type.value_type in _FLOAT_BITS:
        return a.view(pa.list_(_FLOAT_BITS[a.type.value_type]))
    return a
