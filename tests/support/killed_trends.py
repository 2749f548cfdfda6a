"""A trends run (``yield_trends``' commit) killed with SIGKILL (no clean-up of any kind)
right after it wrote a given file, for the crash tests of the trends' commit.

``python -m tests.support.killed_trends OUT_DIR LAST_DAY DAYS WHEN [force]``
WHEN: a fragment of the key after whose PUT the process dies (``yield_trend/``,
``bin_pareto_trend/``, ``manifest.json``). Exits with code 3 when the run finished
without writing such a file (the test then fails).
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import date

from failmap_assets.pipeline.day_lease import LeaseOptions
from failmap_assets.pipeline.trends_day import run_trends
from failmap_assets.storage.layout import TRENDS_PIPELINE, state_dir
from failmap_assets.storage.local_store import LocalObjectStore
from tests.support.faulty_store import FaultyStore


def main(out_dir: str, last: str, days: str, when: str, *force: str) -> None:
    day = date.fromisoformat(last)

    def kill_after(key: str) -> None:
        # the trends' own files only (the lease lives in the state folder too)
        if when in key and (key.startswith("parquet/") or key.startswith(state_dir(TRENDS_PIPELINE, day))):
            print(f"killing after {key}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    out = FaultyStore(LocalObjectStore(out_dir), after_put=kill_after)
    run_trends(last=day, days=int(days), out=out, run_id="trends-killed", force=bool(force),
               lease=LeaseOptions(ttl_s=600), log=lambda line: print(line, flush=True))
    sys.exit(3)


if __name__ == "__main__":
    main(*sys.argv[1:])
