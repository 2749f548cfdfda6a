"""``failmap run-day`` in processes of its own: started, waited for, killed with SIGKILL.

Two ways to start one, the same command line and environment either way:

``exec``  the installed ``failmap`` console script in a new interpreter (about 3 s of
          imports, Dagster's mostly, before it does anything);
``fork``  ``failmap_assets.cli.main`` in a process forked from a server that has already
          imported all of it (``tests.support.cli_preload``): a separate process with
          its own PID, environment, lease and fate, started in milliseconds, so a test
          can afford dozens of runs.

A run's stdout (one JSON line per pipeline) and stderr (its log) go to files, kept
for the failure message. Only processes started here are ever signalled, by PID.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from failmap_assets.storage.layout import lease_key
from failmap_assets.storage.object_store import ObjectStore

_CONTEXT = None


def _fork_context():
    global _CONTEXT
    if _CONTEXT is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["tests.support.cli_preload"])
        _CONTEXT = ctx
    return _CONTEXT


def _child(argv: list[str], env: dict[str, str], out_path: str, err_path: str) -> None:
    """The forked run: its own environment and output files, then the CLI as ``failmap``."""
    for fd, path in ((1, out_path), (2, err_path)):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = ["failmap", *argv]
    code = 1
    try:
        from failmap_assets.cli import main

        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the traceback goes to the run's stderr file
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


@dataclass
class RunProc:
    """One started run."""

    run_id: str
    argv: list[str]
    out_path: Path
    err_path: Path
    started: float
    _proc: object = field(repr=False)
    killed_after: float | None = None   # seconds after its start, when it was killed

    @property
    def pid(self) -> int:
        return self._proc.pid  # type: ignore[attr-defined]

    def poll(self) -> int | None:
        p = self._proc
        if isinstance(p, subprocess.Popen):
            return p.poll()
        return p.exitcode  # type: ignore[attr-defined]

    def wait(self, timeout: float) -> int:
        p = self._proc
        if isinstance(p, subprocess.Popen):
            try:
                return p.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        else:
            p.join(timeout)  # type: ignore[attr-defined]
            if p.exitcode is not None:  # type: ignore[attr-defined]
                return p.exitcode  # type: ignore[attr-defined]
        self.kill()
        raise AssertionError(f"run {self.run_id} did not finish within {timeout:.0f} s; killed it\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL this run (our own child, by its PID) and reap it, so its PID is gone."""
        if self.poll() is None:
            with_pid = self.pid
            os.kill(with_pid, signal.SIGKILL)
        p = self._proc
        if isinstance(p, subprocess.Popen):
            p.wait(30)
        else:
            p.join(30)  # type: ignore[attr-defined]

    def pause(self) -> None:
        """SIGSTOP: the run stalls (a frozen VM, a long GC pause) and stops renewing its lease."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT, unless it ended meanwhile (it may have exited just before the SIGSTOP)."""
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace") if self.err_path.exists() else ""

    def results(self) -> list[dict]:
        """The JSON line of each pipeline the run finished."""
        out = []
        for line in self.stdout().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def tail(self, lines: int = 30) -> str:
        err = "\n".join(self.stderr().splitlines()[-lines:])
        return f"--- {self.run_id} ({' '.join(self.argv)}) stdout:\n{self.stdout()[-3000:]}\n--- stderr:\n{err}"


@dataclass
class DayRuns:
    """Starts ``failmap run-day <day>`` with the given stores (``FAILMAP_*`` locations)."""

    day: date
    as_of: str
    env: dict[str, str]                # FAILMAP_SOURCE_A/B/STDF, FAILMAP_OUTPUT, AWS_*, ...
    logs: Path
    launcher: str = "fork"
    started: list[RunProc] = field(default_factory=list)

    def start(self, run_id: str, *, output: str | None = None, lease_s: float | None = None,
              pipeline: str = "both", as_of: str | None = None, force: bool = False) -> RunProc:
        argv = ["run-day", self.day.isoformat(), "--pipeline", pipeline, "--as-of", as_of or self.as_of,
                "--run-id", run_id, *(["--force"] if force else [])]
        env = dict(self.env)
        env.setdefault("FAILMAP_LEASE_WAIT_SECONDS", "300")
        if output is not None:
            env["FAILMAP_OUTPUT"] = output
        if lease_s is not None:
            env["FAILMAP_LEASE_SECONDS"] = str(lease_s)
        self.logs.mkdir(parents=True, exist_ok=True)
        out, err = self.logs / f"{run_id}.out", self.logs / f"{run_id}.err"
        if self.launcher == "exec":
            failmap = Path(sys.executable).parent / "failmap"
            with open(out, "wb") as fo, open(err, "wb") as fe:
                proc: object = subprocess.Popen([str(failmap), *argv], env=env, stdout=fo, stderr=fe,
                                                stdin=subprocess.DEVNULL)
        else:
            proc = _fork_context().Process(target=_child, args=(argv, env, str(out), str(err)), daemon=False,
                                           name=f"failmap-{run_id}")
            proc.start()  # type: ignore[attr-defined]
        run = RunProc(run_id, argv, out, err, time.monotonic(), proc)
        self.started.append(run)
        return run

    def finish(self, run: RunProc, timeout: float = 180.0) -> None:
        """Wait for a run that must succeed: exit 0 and a result line per pipeline."""
        code = run.wait(timeout)
        assert code == 0, f"run {run.run_id} exited with {code}\n{run.tail()}"
        pipelines = {r.get("pipeline") for r in run.results()}
        assert pipelines == {"failmap", "stdf"}, f"run {run.run_id} printed results for {pipelines}\n{run.tail()}"

    def kill_when(self, run: RunProc, event: Callable[[], bool], delay: float, timeout: float = 60.0, *,
                  pause: bool = False) -> bool:
        """SIGKILL (or, with ``pause``, SIGSTOP) ``run`` ``delay`` s after ``event()`` first
        holds (polled every few ms). False when the run ended first."""
        seen = wait_until(run, event, timeout)
        if seen is None:
            return False
        remaining = seen + delay - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        if run.poll() is not None:
            return False
        run.killed_after = time.monotonic() - run.started
        if pause:
            run.pause()
        else:
            run.kill()
        return True

    def stop_all(self) -> None:
        """Teardown: kill whatever is still running (only runs started here)."""
        for run in self.started:
            if run.poll() is None:
                run.kill()  # SIGKILL ends a stopped (paused) process too


def wait_until(run: RunProc, event: Callable[[], bool], timeout: float, *, kill: bool = True) -> float | None:
    """The monotonic time at which ``event()`` was first seen to hold while ``run`` was
    alive, or None when the run ended before that. After ``timeout``: kill the run and
    fail, or (``kill=False``) return the time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.poll() is not None:
            return None
        if event():
            return time.monotonic()
        time.sleep(0.003)
    if not kill:
        return time.monotonic()
    run.kill()
    raise AssertionError(f"run {run.run_id}: what it was to be killed at did not happen within {timeout:.0f} s\n"
                         f"{run.tail()}")


def lease_holder(store: ObjectStore, pipeline: str, day: date) -> str | None:
    """The run id holding ``pipeline``'s lease of ``day`` (None: free or released)."""
    try:
        holder = json.loads(store.get(lease_key(pipeline, day)))
    except (FileNotFoundError, ValueError):
        return None
    return None if holder.get("released") else holder.get("run_id")
