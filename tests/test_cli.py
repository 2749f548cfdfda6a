"""The `failmap` command: render, synth, and the demo the README promises."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import polars as pl
from PIL import Image

from failmap_assets.cli import main
from tests.support.contract_examples import A_EXAMPLE, B_EXAMPLE

A_TEXT, B_TEXT = A_EXAMPLE.decode(), B_EXAMPLE.decode()
from tests.support.testdata import REPO, shared_file


def test_render_g85_file(tmp_path, capsys):
    path = shared_file("maps", "g85", "nuvoton_BQ16652-01.xml")
    assert main(["render", str(path), "--out", str(tmp_path / "out")]) == 0
    pngs = list((tmp_path / "out").glob("*.png"))
    assert len(pngs) == 1
    doc = json.loads(pngs[0].with_suffix(".json").read_text())
    assert len(doc["chips"]) == 2040  # the file's own bin counts: 1576 + 464
    assert Image.open(pngs[0]).mode == "P"
    dies = pl.read_parquet(next((tmp_path / "out").glob("*.parquet")))
    assert dies.height == 2040
    assert "2040 dies" in capsys.readouterr().out


def test_render_a_with_partner(tmp_path):
    a = tmp_path / "N4A123.1_07P_20260111_143025.Z"
    b = tmp_path / "N4A123.1_07P_20260111_143030.gz"
    import ncompress

    a.write_bytes(ncompress.compress(A_TEXT.encode()))
    b.write_bytes(gzip.compress(B_TEXT.encode()))
    assert main(["render", str(a), "--partner", str(b), "--out", str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "N4A123.1_07P.json").read_text())
    assert doc["chips"][0]["bucket_b"]["transformed_values"] == "0.812,1.25,1350"


def test_render_broken_file_fails_with_reason(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("FAILMAP 1\nLOT L\nWAFER 01\nSTIME 20260111_000000\nDIES 2\n0 0 1\n")
    assert main(["render", str(bad), "--out", str(tmp_path / "out")]) == 1
    assert "truncated" in capsys.readouterr().err


def test_synth_writes_into_configured_local_sources(tmp_path, monkeypatch, capsys):
    for k in ("A", "B", "STDF"):
        monkeypatch.setenv(f"FAILMAP_SOURCE_{k}", str(tmp_path / k.lower()))
    monkeypatch.setenv("FAILMAP_OUTPUT", str(tmp_path / "out"))
    assert main(["synth", "--days", "1", "--wafers", "30", "--stdf-files", "1", "--start", "2026-01-11", "--seed", "3"]) == 0
    a_files = list((tmp_path / "a").rglob("*.*"))
    assert len(a_files) >= 30 and all(p.parent.name.startswith("2026011") for p in a_files)
    assert list((tmp_path / "stdf").rglob("*.std*"))
    assert "wrote" in capsys.readouterr().out


def test_demo_runs_on_the_embedded_default(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAILMAP_", "DAGSTER_HOME"))}
    proc = subprocess.run(
        [sys.executable, "-m", "failmap_assets.cli", "demo", "--wafers", "12"],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "failmap_dies" in proc.stdout and "wafers=" in proc.stdout
    day_dirs = list((tmp_path / ".failmap" / "out" / "png").iterdir())
    assert len(day_dirs) == 1 and len(list(day_dirs[0].glob("*.png"))) >= 12
    assert (tmp_path / ".dagster").is_dir()


def test_stdf2parquet_and_sql(tmp_path, capsys):
    good = shared_file("stdf", "lot2.stdf.gz")
    v3 = shared_file("stdf", "in_v3.std")
    out = tmp_path / "pq"
    # A rejected file makes the exit code non-zero, and its reason is printed.
    assert main(["stdf2parquet", str(good), str(v3), "--out", str(out), "--workers", "1"]) != 0
    captured = capsys.readouterr()
    assert "V3" in (captured.out + captured.err).upper()
    assert list((out / "parts").rglob("*.parquet"))
    assert main(["sql", "--out", str(out), "select count(*) as n from parts"]) == 0
    assert "1569" in capsys.readouterr().out
