"""A whole STDF day read from an SFTP server (asyncssh on 127.0.0.1) commits the same
day as the same files in a local folder, outputs on local folders both times; a file
still being written is left out of the day (skipped, not rejected) until it settles."""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from failmap_assets.pipeline.stdf_day import run_stdf_day
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_assets.storage.locations import open_store
from failmap_assets.storage.object_store import ObjectStore
from failmap_synth.stdf_writer import make_wafer_sort_stdf
from tests.support.day_outputs import DayOutputs, Table, differences, read_day
from tests.support.file_servers import FileServer, fresh_folder, server_env

DAY = date(2026, 1, 11)
T0 = int(datetime(2026, 1, 11, 8, tzinfo=UTC).timestamp())
MTIME = int(time.time()) - 3600  # whole seconds: local and SFTP report the same last_modified

FILES = {
    "20260111/L1 wafer 01.stdf": ("L1", "01", 1),
    "20260111/lot ü 中文/L2_02.stdf": ("L2", "02", 2),
    "20260111/L3_03.stdf": ("L3", "03", 3),
}


def stdf(lot: str, wafer: str, seed: int) -> bytes:
    return make_wafer_sort_stdf(seed, dies=60, tests_per_die=4, lot_id=lot, wafer_id=wafer,
                                start_time=T0 + seed * 60, sites=1, retests=0)


def place(roots: list[Path], key: str, data: bytes, mtime: int | None = MTIME) -> None:
    for root in roots:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if mtime is not None:
            os.utime(path, (mtime, mtime))


def run(source: ObjectStore, out: ObjectStore, run_id: str):
    return run_stdf_day(day=DAY, source=source, out=out, retest_rule="last", pixels_per_die=4, run_id=run_id,
                        workers=2, log=lambda _: None)


def with_etags_of(day: DayOutputs, renamed: dict[str, str]) -> DayOutputs:
    """``day`` with every source etag replaced by the other store's etag of that file
    (the one thing that differs by design: an MD5 of inode, size and mtime on a local
    folder, ``sftp-<size>-<mtime_ns>`` on SFTP)."""
    def swap(v):
        if isinstance(v, (tuple, list)):
            return type(v)(swap(x) for x in v)
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        return renamed.get(v, v) if isinstance(v, str) else v

    tables = {name: Table(t.columns, t.dtypes, type(t.rows)({swap(r): n for r, n in t.rows.items()}))
              for name, t in day.tables.items()}
    # and the manifest digests of (key, etag) pairs
    manifests = {p: {k: v for k, v in m.items() if k not in ("inputs", "seen")} for p, m in day.manifests.items()}
    return DayOutputs(tables, manifests, day.png, swap(day.json))


def test_an_stdf_day_from_sftp_equals_the_same_files_on_a_local_folder(
        sftp_server: FileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server_env(sftp_server, monkeypatch, settle=600)  # however long the runs take, the new file stays young
    remote_root, url = fresh_folder(sftp_server)
    local_root = tmp_path / "local-source"
    for key, (lot, wafer, seed) in FILES.items():
        place([remote_root, local_root], key, stdf(lot, wafer, seed))
    # a tester still writing its file: just modified, on the server only
    place([remote_root], "20260111/L4_04.stdf", stdf("L4", "04", 4)[:5000], mtime=None)

    sftp, local = open_store(url), LocalObjectStore(local_root)
    out_sftp, out_local = LocalObjectStore(tmp_path / "out-sftp"), LocalObjectStore(tmp_path / "out-local")
    report = run(sftp, out_sftp, "sftp-1")
    assert report.committed and report.files_total == 3 and report.files_done == 3
    assert run(local, out_local, "local-1").committed

    def compare() -> None:
        renamed = {sftp.head(o.key).etag: o.etag for o in local.list("20260111/")}
        got = with_etags_of(read_day(out_sftp, DAY), renamed)
        want = with_etags_of(read_day(out_local, DAY), {})
        assert got.tables and got.png and got.json
        assert differences(got, want) == []

    compare()
    rejects = read_day(out_sftp, DAY).tables["stdf:stdf_rejects"]
    assert not any("L4_04" in str(r) for r in rejects.rows), "a file being written is skipped, never rejected"

    # the writer finishes; once settled the file is listed, and the day takes it
    place([remote_root, local_root], "20260111/L4_04.stdf", stdf("L4", "04", 4), mtime=None)
    assert run(sftp, out_sftp, "sftp-2").files_done == 0  # just written: not settled yet
    os.utime(remote_root / "20260111/L4_04.stdf", (MTIME + 60, MTIME + 60))
    os.utime(local_root / "20260111/L4_04.stdf", (MTIME + 60, MTIME + 60))
    second = run(sftp, out_sftp, "sftp-3")
    assert (second.files_done, second.files_already_done) == (1, 3)
    assert run(local, out_local, "local-2").files_done == 1
    compare()
