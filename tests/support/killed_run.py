"""A fail-map day run that is killed (SIGKILL, no clean-up of any kind) right after it
wrote a die part file, for the failure-injection tests.

``python -m tests.support.killed_run A_DIR B_DIR OUT_DIR DAY NOW WHEN``
WHEN: ``forced-part`` (a forced run, killed after its first part) or ``rewrite`` (a
normal run, killed after it rewrote an old part: flags or dropped units changed).
Exits with code 3 when the run finished without writing such a part (the test then fails).
"""

from __future__ import annotations

import os
import re
import signal
import sys
from datetime import date, datetime

from failmap_assets.pipeline.day_lease import LeaseOptions
from failmap_assets.pipeline.failmap_day import PairingRules, RunnerOptions, run_day
from failmap_assets.pipeline.unit import ProcessingOptions
from failmap_assets.storage.local_store import LocalObjectStore
from tests.support.faulty_store import FaultyStore

# parts a run rewrites are numbered from 1000 (new ones from 0)
REWRITTEN = re.compile(r"parquet/failmap_dies/.*/part-.*-1\d{3}\.parquet$")
ANY_PART = re.compile(r"parquet/failmap_dies/.*/part-.*\.parquet$")


def main(a_dir: str, b_dir: str, out_dir: str, day: str, now: str, when: str) -> None:
    pattern = REWRITTEN if when == "rewrite" else ANY_PART

    def kill_after_rewrite(key: str) -> None:
        if pattern.search(key):
            print(f"killing after {key}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    out = FaultyStore(LocalObjectStore(out_dir), after_put=kill_after_rewrite)
    run_day(day=date.fromisoformat(day), a_store=LocalObjectStore(a_dir), b_store=LocalObjectStore(b_dir),
            out_store=out, now=datetime.fromisoformat(now), pairing=PairingRules(), processing=ProcessingOptions(),
            options=RunnerOptions(max_workers=4, max_in_flight=4, cpu_threads=2, force=when == "forced-part",
                                  lease=LeaseOptions(ttl_s=600)),
            run_id="forced-and-killed", log=lambda line: print(line, flush=True))
    sys.exit(3)


if __name__ == "__main__":
    main(*sys.argv[1:])
