"""Each wafer's PNG and JSON show its latest test event, whatever order runs and threads
processed the events in.

Only an event later than the one on disk may replace a wafer's files; every write
happens only while the run still holds the day (``DaySession.check``); and the ETag of
every write is kept for the manifest, so a later run can tell a file drawn by a run
that never committed (its ETag is not the recorded one) and draw it again.
"""

from __future__ import annotations

import threading
from datetime import datetime

import polars as pl

from failmap_assets.pipeline.day_commit import DaySession
from failmap_assets.storage.layout import json_key, png_key, true_aspect_png_key
from failmap_assets.wafer.events import event_rank


class WaferFiles:
    """Who drew each wafer's PNG / JSON of the day (see the module docstring)."""

    def __init__(self, session: DaySession, kept_events: pl.DataFrame, recorded: dict[str, str],
                 stale: set[str]) -> None:
        self.session, self.day, self.pipeline = session, session.day, session.pipeline
        self.lock = threading.Lock()
        self.owner: dict[str, tuple] = {}          # token -> rank of the event whose files are on disk
        self.png_ok: dict[str, bool] = {}
        self.etags: dict[str, str] = {}
        self.flag: dict[tuple[str, str], bool] = {}  # (token, unit) -> latest flag its new rows carry
        for r in kept_events.filter(pl.col("outputs_written")).iter_rows(named=True):
            token = r["wafer_token"]
            keys = self._keys(token, bool(r["png_written"]))
            if any(k in stale or k not in recorded for k in keys):
                continue  # not the version this event drew: it must be drawn again
            self.owner[token] = event_rank(r["event_time"], r["unit_key"])
            self.png_ok[token] = bool(r["png_written"])
            self.etags.update((k, recorded[k]) for k in keys)
        self._locks: dict[str, threading.Lock] = {}

    def _lock_of(self, token: str) -> threading.Lock:
        with self.lock:
            return self._locks.setdefault(token, threading.Lock())

    def _keys(self, token: str, with_png: bool) -> list[str]:
        """A wafer's files: its JSON, and with a PNG the contract PNG and the true-aspect one."""
        keys = [json_key(self.day, token, self.pipeline)]
        if with_png:
            keys += [png_key(self.day, token, self.pipeline), true_aspect_png_key(self.day, token, self.pipeline)]
        return keys

    def offer(self, token: str, unit_key: str, event_time: datetime | None, png: bytes | None,
              json: bytes | None, *, aspect_png: bytes | None = None, flag: bool = True, force: bool = False) -> None:
        """A drawn wafer of one event: written when the event is later than the one on
        disk (``force``: redraw whatever is there). ``flag``: the latest flag the event's
        new rows carry. ``json`` None: the event was not drawn (not its wafer's latest).
        A PNG comes with its true-aspect twin (``aspect_png``)."""
        if png is not None and aspect_png is None:
            raise ValueError(f"wafer {token}: a PNG without its true-aspect PNG")
        rank = event_rank(event_time, unit_key)
        with self.lock:
            self.flag.setdefault((token, unit_key), flag)
        if json is None:
            return
        with self._lock_of(token):
            current = self.owner.get(token)
            if not force and current is not None and current >= rank:
                return
            self.session.check()
            out = self.session.store
            png_at, json_at = png_key(self.day, token, self.pipeline), json_key(self.day, token, self.pipeline)
            aspect_at = true_aspect_png_key(self.day, token, self.pipeline)
            etags = {}
            if png is not None:
                etags[png_at] = out.put(png_at, png, content_type="image/png").etag
                etags[aspect_at] = out.put(aspect_at, aspect_png, content_type="image/png").etag
            etags[json_at] = out.put(json_at, json, content_type="application/json").etag
            with self.lock:
                self.etags.pop(png_at, None)
                self.etags.pop(aspect_at, None)
                self.etags.update(etags)
                self.owner[token] = rank
                self.png_ok[token] = png is not None

    def settle(self, events: pl.DataFrame) -> pl.DataFrame:
        """``events`` with outputs_written / png_written as they are on disk now, and the
        latest flag this run's new rows were written with (``_written_flag``)."""
        owners = {t: r[1] for t, r in self.owner.items()}
        flags = pl.DataFrame([(t, k, v) for (t, k), v in self.flag.items()], orient="row",
                             schema={"wafer_token": pl.String, "unit_key": pl.String, "_written_flag": pl.Boolean})
        own = pl.DataFrame({"wafer_token": list(owners), "_owner": list(owners.values()),
                            "_png": [self.png_ok.get(t, True) for t in owners]},
                           schema={"wafer_token": pl.String, "_owner": pl.String, "_png": pl.Boolean})
        return (
            events.drop("_written_flag", strict=False)
            .join(own, on="wafer_token", how="left")
            .with_columns((pl.col("_owner") == pl.col("unit_key")).fill_null(False).alias("outputs_written"))
            .with_columns(pl.when(pl.col("outputs_written")).then(pl.col("_png")).otherwise(pl.col("png_written"))
                          .fill_null(False).alias("png_written"))
            .drop("_owner", "_png")
            .join(flags, on=["wafer_token", "unit_key"], how="left")
        )

    def files(self, events: pl.DataFrame) -> dict[str, str]:
        """The wafer files of the day's latest events, with the ETags written: what the
        manifest names. A wafer whose latest event could not be drawn has none (the next
        run draws it; a stale file of an earlier event is removed meanwhile)."""
        out = {}
        for r in events.filter(pl.col("latest") & pl.col("outputs_written")).iter_rows(named=True):
            keys = self._keys(r["wafer_token"], bool(r["png_written"]))
            out.update((k, self.etags[k]) for k in keys if k in self.etags)
        return out
