"""The day lease (``pipeline/day_lease.py``) on local folders and on SeaweedFS: waiting,
giving up, taking over from dead, foreign and stalled holders, races between
processes, and refusing a store that ignores conditional writes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pytest

from failmap_assets.pipeline.day_lease import LEASE_FORMAT, DayBusy, DayLease, LeaseLost, LeaseOptions
from failmap_assets.pipeline.failmap_day import PairingRules, RunnerOptions, run_day
from failmap_assets.pipeline.unit import ProcessingOptions
from failmap_assets.storage.layout import lease_key
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_assets.storage.locations import open_store
from failmap_assets.storage.object_store import ConditionalWritesUnsupported, ObjectStore
from failmap_assets.storage.s3_store import S3ObjectStore, s3_client
from tests.support.rclone_server import BUCKET as RCLONE_BUCKET
from tests.support.rclone_server import rclone_s3  # noqa: F401
from tests.support.s3_server import S3Server

DAY = date(2026, 1, 11)
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Where:
    location: str
    store: ObjectStore


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def where(request, tmp_path) -> Where:
    if request.param == "local":
        (tmp_path / "out").mkdir()
        return Where(str(tmp_path / "out"), LocalObjectStore(tmp_path / "out"))
    bucket = request.getfixturevalue("s3_env")
    location = f"{bucket}/out"
    return Where(location, open_store(location, endpoint_url=os.environ["FAILMAP_S3_ENDPOINT_URL"]))


def lease(where: Where, run_id: str, *, ttl: float = 30.0, wait: float = 30.0, log=None) -> DayLease:
    return DayLease(where.store, "failmap", DAY, run_id, LeaseOptions(ttl_s=ttl, wait_s=wait, poll_s=0.05),
                    log=log if log is not None else (lambda _: None))


def holder(where: Where) -> dict:
    return json.loads(where.store.get(lease_key("failmap", DAY)))


def helper(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.support.lease_holder", *args], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def first_line(proc: subprocess.Popen, timeout: float = 60.0) -> str:
    """The next line the helper prints (fails with its stderr if it exits first)."""
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not out or not out[0]:
        proc.kill()
        pytest.fail(f"the lease helper printed nothing; stderr:\n{proc.stderr.read()}")
    return out[0].strip()


def test_the_second_run_waits_and_gets_the_day_when_the_first_releases(where: Where) -> None:
    first = lease(where, "run-first")
    first.acquire()
    lines: list[str] = []
    second = lease(where, "run-second", log=lines.append)
    done = threading.Event()
    threading.Thread(target=lambda: (second.acquire(), done.set()), daemon=True).start()
    deadline = time.monotonic() + 10
    while not lines and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not done.is_set(), "the second run took a day that was held"
    (line,) = lines
    assert f"waiting for run run-first (host {socket.gethostname()}, pid {os.getpid()})" in line
    assert "failmap 2026-01-11" in line
    time.sleep(0.3)
    assert not done.is_set()
    first.release()
    assert done.wait(10), "the second run did not get the released day"
    assert second.waited_s >= 0.3
    assert holder(where)["run_id"] == "run-second"
    assert not any("took over" in x for x in lines)  # a released lease is taken, not taken over
    second.release()
    assert holder(where)["released"] is True


def test_a_run_that_waited_too_long_gives_up_with_day_busy(where: Where) -> None:
    with lease(where, "run-holder"):
        started = time.monotonic()
        with pytest.raises(DayBusy) as info:
            lease(where, "run-waiter", wait=0.5).acquire()
        assert 0.5 <= time.monotonic() - started < 10
        text = str(info.value)
        assert "failmap day 2026-01-11 is being written by run run-holder" in text
        assert f"host {socket.gethostname()}" in text and f"pid {os.getpid()}" in text
        assert "giving up" in text and "Run it again" in text
        assert holder(where)["run_id"] == "run-holder"  # the waiter changed nothing


def test_a_holder_killed_with_sigkill_is_taken_over_at_once(where: Where) -> None:
    proc = helper("hold", where.location, DAY.isoformat(), "run-killed", "600")
    line = first_line(proc)
    assert line == f"held {proc.pid}"
    assert holder(where)["run_id"] == "run-killed" and holder(where)["pid"] == proc.pid
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)  # reaped: the PID is gone (a zombie would still answer kill(pid, 0))
    lines: list[str] = []
    started = time.monotonic()
    with lease(where, "run-next", ttl=600, wait=60, log=lines.append) as taken:
        assert time.monotonic() - started < 5, "waited for a holder whose process is gone"
        assert holder(where)["run_id"] == "run-next"
        assert taken.waited_s < 5
    assert any(f"from run run-killed (its process {proc.pid} on this host is gone)" in x for x in lines), lines


def _foreign_body(run_id: str, expires_in: float, *, now: float | None = None) -> bytes:
    now = time.time() if now is None else now
    return json.dumps({"run_id": run_id, "host": "another-host.invalid", "pid": 1,
                       "renewed_at": datetime.fromtimestamp(now).isoformat(),
                       "expires_at": now + expires_in, "released": False}).encode()


def test_a_holder_on_another_host_that_stops_renewing_is_taken_over_after_one_lease_time(where: Where) -> None:
    key = lease_key("failmap", DAY)
    # A live-looking lease of another machine (its clock says an hour to go; pid 1 exists
    # here too, but the host differs, so the PID says nothing): first it keeps renewing.
    where.store.put(key, _foreign_body("run-abroad", 3600))
    stop = threading.Event()

    def renew_abroad() -> None:
        while not stop.wait(0.2):
            where.store.put(key, _foreign_body("run-abroad", 3600))

    renewer = threading.Thread(target=renew_abroad, daemon=True)
    renewer.start()
    try:
        with pytest.raises(DayBusy, match="run-abroad"):
            # a renewing holder is never taken over (a lease time of 3 s against renewals every
            # 0.2 s: a loaded machine may stall the renewing thread for a second, not for three)
            lease(where, "run-here", ttl=3.0, wait=4.0).acquire()
    finally:
        stop.set()
        renewer.join()
    # ...then it stops renewing (the machine was lost): taken after one lease time, not before
    lines: list[str] = []
    taker = lease(where, "run-here", ttl=1.0, wait=30, log=lines.append)
    started = time.monotonic()
    taker.acquire()
    try:
        elapsed = time.monotonic() - started
        assert 1.0 <= elapsed < 6, elapsed
        assert holder(where)["run_id"] == "run-here"
        assert any("from run run-abroad (not renewed for 1 s)" in x for x in lines), lines
    finally:
        taker.release()


def test_a_lease_of_an_unknown_format_is_held_until_unchanged_for_a_lease_time(where: Where) -> None:
    # Another release's lease (during an upgrade): released, expired and of a dead PID by
    # its fields, none of which this version may trust; only a whole lease time unchanged frees it.
    body = json.loads(_foreign_body("run-newer", 60, now=time.time() - 3600))
    body.update(format=LEASE_FORMAT + 1, released=True, host=socket.gethostname(), pid=2**22 + 12345)
    where.store.put(lease_key("failmap", DAY), json.dumps(body).encode())
    lines: list[str] = []
    started = time.monotonic()
    with lease(where, "run-now", ttl=1.0, log=lines.append):
        assert 1.0 <= time.monotonic() - started < 6
        assert holder(where)["format"] == LEASE_FORMAT
    assert any("from run run-newer (not renewed for 1 s)" in x for x in lines), lines


def test_an_expired_foreign_lease_is_taken_at_once(where: Where) -> None:
    # a run starting long after a crash elsewhere does not wait a lease time
    where.store.put(lease_key("failmap", DAY), _foreign_body("run-long-gone", 60, now=time.time() - 3600))
    lines: list[str] = []
    started = time.monotonic()
    with lease(where, "run-now", ttl=600, log=lines.append):
        assert time.monotonic() - started < 3
    assert any("from run run-long-gone (expired)" in x for x in lines), lines


def test_a_stalled_holder_whose_lease_was_taken_over_gets_lease_lost(where: Where) -> None:
    # in this process: the holder's renewal thread stops (a stall), another run takes the day
    stalled = lease(where, "run-stalled", ttl=1.0)
    stalled.acquire()
    stalled._stop.set()
    stalled._thread.join()
    with lease(where, "run-new", ttl=1.0, wait=30):
        with pytest.raises(LeaseLost, match="run run-stalled lost the failmap lease of 2026-01-11"):
            stalled.renew()
        with pytest.raises(LeaseLost):
            stalled.check()
        stalled.release()  # must not give back the new holder's lease
        assert holder(where)["run_id"] == "run-new" and holder(where)["released"] is False
    # check() alone (no renewal attempted) also says so
    second = lease(where, "run-stalled-2", ttl=1.0)
    second.acquire()
    second._stop.set()
    second._thread.join()
    with lease(where, "run-new-2", ttl=1.0, wait=30):
        with pytest.raises(LeaseLost):
            second.check()
        second.release()
        assert holder(where)["run_id"] == "run-new-2"


def test_a_holder_process_stopped_and_resumed_finds_its_lease_lost(where: Where) -> None:
    """SIGSTOP (a stall of the whole process, its renewal thread included) for longer
    than the lease time: another run takes over; after SIGCONT the holder's check and
    renew raise LeaseLost and it leaves the new holder's lease alone."""
    proc = helper("hold", where.location, DAY.isoformat(), "run-frozen", "1.0")
    assert first_line(proc) == f"held {proc.pid}"
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        lines: list[str] = []
        with lease(where, "run-thawed-out", ttl=1.0, wait=30, log=lines.append):
            assert any("from run run-frozen (not renewed for 1 s)" in x for x in lines), lines
            os.kill(proc.pid, signal.SIGCONT)
            line = first_line(proc)
            assert line.startswith("lost run run-frozen lost the failmap lease"), line
            assert proc.wait(10) == 0
            assert holder(where)["run_id"] == "run-thawed-out" and not holder(where)["released"]
    finally:
        os.kill(proc.pid, signal.SIGCONT) if proc.poll() is None else None
        proc.kill() if proc.poll() is None else None


def test_a_released_lease_is_taken_at_once(where: Where) -> None:
    with lease(where, "run-before"):
        pass
    assert holder(where)["released"] is True
    lines: list[str] = []
    started = time.monotonic()
    with lease(where, "run-after", ttl=600, wait=0, log=lines.append) as taken:
        assert time.monotonic() - started < 2 and taken.waited_s < 2
        assert holder(where)["run_id"] == "run-after"
    assert lines == []  # no waiting, no take-over


def test_two_processes_racing_for_a_free_lease_exactly_one_wins_each_round(where: Where) -> None:
    racers = [helper("race", where.location, DAY.isoformat(), f"racer-{i}") for i in range(2)]
    try:
        for proc in racers:
            assert first_line(proc) == "ready"
        key = lease_key("failmap", DAY)
        wins = [0, 0]
        for round_ in range(20):
            if round_ % 2 == 0:
                where.store.delete(key)  # even rounds: no lease object (create-if-absent race)
            # odd rounds: the lease object says released (compare-and-swap race)
            at = time.time() + 0.3
            for proc in racers:
                proc.stdin.write(f"go {at}\n")
                proc.stdin.flush()
            answers = [first_line(proc) for proc in racers]
            assert sorted(answers) == ["busy", "won"], (round_, answers)
            winner = answers.index("won")
            wins[winner] += 1
            assert holder(where)["run_id"] == f"racer-{winner}"
            racers[winner].stdin.write("release\n")
            racers[winner].stdin.flush()
            assert first_line(racers[winner]) == "released"
        print(f"race wins per process over 20 rounds: {wins}")
        for proc in racers:
            proc.stdin.write("quit\n")
            proc.stdin.flush()
            assert proc.wait(20) == 0
    finally:
        for proc in racers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# ----- a store that ignores conditional writes -------------------------------------------------
@pytest.fixture
def ignoring_store(rclone_s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3ObjectStore:
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", rclone_s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", rclone_s3.secret_key)
    return S3ObjectStore(RCLONE_BUCKET, "out", s3_client(rclone_s3.endpoint_url, rclone_s3.region, max_pool=4))


def test_a_store_that_ignores_conditional_writes_is_refused(ignoring_store: S3ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ConditionalWritesUnsupported, match="ignores conditional requests"):
        DayLease(ignoring_store, "failmap", DAY, "run-1", LeaseOptions(), log=lambda _: None).acquire()
    assert ignoring_store.head(lease_key("failmap", DAY)) is None
    # a whole day run refuses it before writing anything
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    a, b = LocalObjectStore(tmp_path / "a"), LocalObjectStore(tmp_path / "b")
    a.put("20260111/L1_01P_20260111_080000.txt",
          b"FAILMAP 1\nLOT L1\nWAFER 01\nSTIME 20260111_080000\nDIES 1\n0 0 1\nEND\n")
    with pytest.raises(ConditionalWritesUnsupported):
        run_day(day=DAY, a_store=a, b_store=b, out_store=ignoring_store, now=datetime(2026, 1, 13),
                pairing=PairingRules(), processing=ProcessingOptions(), options=RunnerOptions(), run_id="run-1",
                log=lambda _: None)
    assert list(ignoring_store.list()) == []
