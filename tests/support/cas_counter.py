"""A counter object incremented by compare-and-swap, for the conditional-write race
tests: in threads (``increment``) and in other processes (``python -m
tests.support.cas_counter ROOT KEY TIMES``, which waits for a line on stdin before
it starts, so that all processes race from the same moment, and prints the values
it wrote as one JSON list)."""

from __future__ import annotations

import json
import sys

from failmap_assets.storage.object_store import ObjectStore, PreconditionFailed


def increment(store: ObjectStore, key: str, times: int) -> tuple[list[int], int]:
    """Add one to the counter ``times`` times, each a read (etag, then the bytes of that
    version) and a write with if_match, retried when another writer got in between.
    Returns the values this writer wrote and how many of its attempts were refused."""
    written, refused = [], 0
    while len(written) < times:
        info = store.head(key)
        assert info is not None, "the counter must exist before the race"
        try:
            value = int(store.get(key, if_match=info.etag)) + 1
            store.put(key, str(value).encode(), if_match=info.etag)
        except PreconditionFailed:
            refused += 1
            continue
        written.append(value)
    return written, refused


def main(root: str, key: str, times: str) -> None:
    from failmap_assets.storage.local_store import LocalObjectStore

    print("ready", flush=True)
    sys.stdin.readline()
    written, refused = increment(LocalObjectStore(root), key, int(times))
    print(json.dumps({"written": written, "refused": refused}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
