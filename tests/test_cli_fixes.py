"""`failmap` command fixes: distinct render names, synth's default days, help on every
option, stdf2parquet skipping files that are not STDF."""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import date

from failmap_assets.cli import _token_of, build_parser, default_synth_start, main
from tests.support.testdata import shared_file


def test_render_two_wafers_of_one_lot_get_two_files(tmp_path, capsys):
    # TSK / ASCII names carry the wafer number as a numeric suffix: G345875.021, .022.
    src = shared_file("maps", "ascii", "stm_wm13_G345875.021")
    first, second = tmp_path / "G345875.021", tmp_path / "G345875.022"
    shutil.copy(src, first)
    shutil.copy(src, second)
    out = tmp_path / "out"
    assert main(["render", str(first), str(second), str(first), "--out", str(out)]) == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["G345875.021-2.png", "G345875.021.png", "G345875.022.png"]
    tokens = [json.loads((out / f"{stem}.json").read_text())["wafer_token"] for stem in ("G345875.021", "G345875.022")]
    assert tokens == ["G345875.021", "G345875.022"]
    assert sorted(p.name for p in out.glob("*.parquet")) == [
        "G345875.021-2.dies.parquet", "G345875.021.dies.parquet", "G345875.022.dies.parquet"]
    assert "G345875.022.png" in capsys.readouterr().out


def test_render_names_drop_format_extensions_only_and_stay_safe():
    assert _token_of("nuvoton_BQ16652-01.xml") == "nuvoton_BQ16652-01"
    assert _token_of("G345875.021.gz") == "G345875.021"
    assert _token_of("N4A123.1_07P_20260111_143025.Z") == "N4A123.1_07P"
    assert _token_of("..") == ".."
    # The stem goes through safe_name: no path separators, no hidden names.
    from failmap_assets.cli import unique_stem

    used: set[str] = set()
    stems = [unique_stem(t, used) for t in ("../x", "../x", ".hidden")]
    assert len(set(stems)) == 3 and not any("/" in s or s.startswith(".") for s in stems)


def test_synth_days_end_yesterday_by_default():
    today = date(2026, 3, 10)
    assert default_synth_start(3, today) == date(2026, 3, 7)  # 7, 8, 9: never today or tomorrow
    assert default_synth_start(1, today) == date(2026, 3, 9)


def test_every_option_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {a.dest}" for name, p in sub.choices.items() for a in p._actions
               if not isinstance(a, argparse._HelpAction) and not a.help]
    assert missing == []


def test_stdf2parquet_skips_files_that_are_not_stdf(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(shared_file("stdf", "lot2.stdf.gz"), folder / "lot2.stdf.gz")
    (folder / "README.md").write_text("# wafer sort data of lot 2\n")
    assert main(["stdf2parquet", str(folder / "*"), "--out", str(tmp_path / "pq"), "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert "skipped, not STDF (1)" in err and "README.md: not_stdf" in err
    assert list((tmp_path / "pq" / "parts").rglob("*.parquet"))


def test_stdf2parquet_fails_when_nothing_converted(tmp_path, capsys):
    (tmp_path / "README.md").write_text("no STDF here\n")
    assert main(["stdf2parquet", str(tmp_path / "*.md"), "--out", str(tmp_path / "pq"), "--workers", "1"]) == 1
    assert "no STDF file was converted" in capsys.readouterr().err
