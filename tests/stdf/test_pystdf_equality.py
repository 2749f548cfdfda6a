"""Our tables against pystdf 1.4.0, for every real file pystdf reads.

Count per record type for every file; every field of every record type (MIR, WIR,
WRR, WCR, PIR/PRR, PTR, MPR, FTR, HBR, SBR, TSR and the generic ones), with the
default-data rule applied to pystdf's PTR / MPR / FTR by an independent plain-Python
implementation (tests/stdf/pystdf_ref.py). On the big files PTR / MPR / FTR are
compared on an evenly spaced sample of records (counts always in full).
"""

from __future__ import annotations

import pytest

from failmap_assets.stdf import override_bits
from tests.stdf.conftest import PYSTDF_FILES
from tests.stdf.pystdf_ref import compare_records, counts, ours_as_records, reference_part_of_results
from tests.support.testdata import requires_shared

pytestmark = requires_shared

MAX_RESULTS = 12_000   # per kind and file, for the field-by-field comparison


def _table_counts(data) -> dict[str, int]:
    """Record counts recovered from the tables themselves (not from the scan)."""
    t = data.tables
    c: dict[str, int] = {}

    def add(k, n):
        if n:
            c[k] = c.get(k, 0) + n

    f = t["files"].to_pylist()[0]
    for name in ("FAR", "MIR", "MRR"):
        add(name, int(f[f"{name.lower()}_rec_idx"] is not None))
    add("SDR", len(f["sdr"]))
    w = t["wafers"]
    add("WIR", w["wir_rec_idx"].drop_null().__len__())
    add("WRR", w["wrr_rec_idx"].drop_null().__len__())
    add("WCR", int(len(w["wcr_rec_idx"].drop_null()) > 0))
    add("PIR", len(t["parts"]["pir_rec_idx"].drop_null()))
    add("PRR", len(t["parts"]["prr_rec_idx"].drop_null()))
    for kind in ("PTR", "MPR", "FTR"):
        add(kind, t[f"{kind.lower()}_results"].num_rows)
    bt = t["bins"]["bin_type"].to_pylist()
    add("HBR", bt.count("H"))
    add("SBR", bt.count("S"))
    add("TSR", t["test_summaries"].num_rows)
    for name in t["generic"]["rec_name"].to_pylist():
        add(name, 1)
    return c


@pytest.mark.parametrize("name", PYSTDF_FILES)
def test_counts_per_record_type(name, parsed, pystdf_records):
    recs, err = pystdf_records(name)
    assert err is None
    data = parsed(name)
    ref = dict(counts(recs))
    assert data.record_counts == ref
    assert _table_counts(data) == ref
    assert data.complete, [str(i) for i in data.errors]


@pytest.mark.parametrize("name", PYSTDF_FILES)
def test_every_field_equals_pystdf(name, parsed, pystdf_records):
    recs, _ = pystdf_records(name)
    data = parsed(name)
    ours = ours_as_records(data, override_bits, max_results=MAX_RESULTS)
    assert compare_records(ours, recs, max_results=MAX_RESULTS) == []


@pytest.mark.parametrize("name", PYSTDF_FILES)
def test_results_belong_to_their_part(name, parsed, pystdf_records):
    """Every PTR / MPR / FTR is attached to the PIR/PRR pair of its head and site."""
    recs, _ = pystdf_records(name)
    data = parsed(name)
    ref = reference_part_of_results(recs)
    parts = data.tables["parts"]
    prr_of_part = parts["prr_rec_idx"].to_pylist()
    head, site = parts["head_num"].to_pylist(), parts["site_num"].to_pylist()
    for kind in ("PTR", "MPR", "FTR"):
        t = data.tables[f"{kind.lower()}_results"]
        got = [None if p is None or prr_of_part[p] is None else p for p in t["part_idx"].to_pylist()]
        assert got == ref[kind], kind
        for p, h, s in zip(t["part_idx"].to_pylist(), t["head_num"].to_pylist(), t["site_num"].to_pylist()):
            if p is not None:
                assert (head[p], site[p]) == (h, s)


def test_comparison_detects_a_difference(parsed, pystdf_records):
    """The comparator is not vacuous: a changed value, a missing record and a changed default are caught."""
    name = "sort_4die_20times.stdf"
    recs, _ = pystdf_records(name)
    data = parsed(name)
    ours = ours_as_records(data, override_bits)
    ours["PTR"][5]["RESULT"] = 123456.0
    assert any("PTR[5].RESULT" in e for e in compare_records(ours, recs))
    ours = ours_as_records(data, override_bits)
    ours["PTR"][7]["LO_LIMIT"] = -999.0
    assert any("LO_LIMIT" in e for e in compare_records(ours, recs))
    ours = ours_as_records(data, override_bits)
    ours["PRR"].pop()
    assert any(e.startswith("PRR:") for e in compare_records(ours, recs))


@pytest.mark.parametrize("name", ["rabbi.stdf", "sort_4die_20times.stdf"])
def test_multi_site_interleaving(name, parsed):
    """The multi-site files really interleave sites, and parts are complete and per site."""
    data = parsed(name)
    parts = data.tables["parts"]
    assert parts["prr_rec_idx"].null_count == 0 and parts["pir_rec_idx"].null_count == 0
    ptr = data.tables["ptr_results"]
    sites = ptr["site_num"].to_numpy()
    # several sites' results are interleaved between one PIR and its PRR
    pir, prr = parts["pir_rec_idx"].to_numpy(), parts["prr_rec_idx"].to_numpy()
    rec = ptr["rec_idx"].to_numpy()
    inside = (rec > pir[0]) & (rec < prr[0])
    assert len(set(sites[inside].tolist())) > 1
    assert ptr["part_idx"].null_count == 0
    assert len(set(zip(parts["head_num"].to_pylist(), parts["site_num"].to_pylist()))) >= 4
