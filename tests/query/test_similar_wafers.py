"""`failmap patterns similar`: the most similar other wafers of a wafer, from the serving index."""

from __future__ import annotations

from datetime import date, timedelta

from failmap_assets.cli import main
from failmap_assets.pipeline import pattern_index as pix
from failmap_assets.storage.local_store import LocalObjectStore
from tests.support.pattern_days import commit_signature_day, signature_rows

D1 = date(2026, 4, 1)


def table_rows(out: str) -> list[list[str]]:
    lines = out.strip().splitlines()
    assert lines[1].split()[:3] == ["rank", "similarity", "distance"]
    return [line.split() for line in lines[2:]]


def test_similar_lists_other_wafers_best_first_and_filters_by_step(tmp_path, monkeypatch, capsys):
    store = LocalObjectStore(tmp_path)
    for i in range(2):
        d = D1 + timedelta(days=i)
        commit_signature_day(store, d, signature_rows(d, 16, seed=i, steps=("S1", "S2")))
    assert not pix.rebuild_indexes(store, run_id="r", log=lambda _: None).failed
    monkeypatch.setenv("FAILMAP_OUTPUT", str(tmp_path))

    token = "L0402_01"   # a Center wafer of the second day (signature_rows: odd rows are patterns)
    assert main(["patterns", "similar", token, "-k", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{token}: Center") and "product P1" in out
    rows = table_rows(out)
    assert [r[0] for r in rows] == ["1", "2", "3", "4"]
    sims = [float(r[1]) for r in rows]
    assert sims == sorted(sims, reverse=True)
    assert all(r[8] != token for r in rows) and all(r[9] == "Center" for r in rows)

    assert main(["patterns", "similar", token, "--product", "P1", "--step", "S1", "-k", "3"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert len(rows) == 3 and {r[5] for r in rows} == {"S1"}


def test_unknown_wafer_or_product_is_an_error(tmp_path, monkeypatch, capsys):
    store = LocalObjectStore(tmp_path)
    commit_signature_day(store, D1, signature_rows(D1, 8))
    pix.rebuild_indexes(store, run_id="r", log=lambda _: None)
    monkeypatch.setenv("FAILMAP_OUTPUT", str(tmp_path))
    assert main(["patterns", "similar", "NOPE_01"]) == 1
    assert "not in any product's pattern index" in capsys.readouterr().err
    assert main(["patterns", "similar", "L0401_01", "--product", "OTHER"]) == 1
