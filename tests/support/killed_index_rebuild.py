"""A pattern-index rebuild killed (SIGKILL, no clean-up) right after it wrote a chosen
file of its new version, for the rollback tests.

``python -m tests.support.killed_index_rebuild OUT_DIR FILE_NAME``; exits with code 3
when the rebuild finished without writing such a file (the test then fails)."""

from __future__ import annotations

import os
import signal
import sys

from failmap_assets.pipeline.pattern_index import rebuild_indexes
from failmap_assets.storage.local_store import LocalObjectStore
from tests.support.faulty_store import FaultyStore


def main(out_dir: str, name: str) -> None:
    def kill_after(key: str) -> None:
        if key.endswith("/" + name):
            print(f"killing after {key}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    rebuild_indexes(FaultyStore(LocalObjectStore(out_dir), after_put=kill_after), run_id="killed",
                    log=lambda line: print(line, flush=True))
    sys.exit(3)


if __name__ == "__main__":
    main(*sys.argv[1:])
