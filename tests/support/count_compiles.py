"""`python -m tests.support.count_compiles REPORT.json failmap-args...`: runs the `failmap`
command in this process with a listener on Numba's "numba:compile" event (fired only
when Numba really compiles, never for a cache hit) and writes what was compiled to
REPORT.json: {"exit": code, "compiled": {"module.function": count}}."""

from __future__ import annotations

import json
import sys
from collections import Counter

from numba.core import event


class CompileCounter(event.Listener):
    def __init__(self) -> None:
        self.compiled: Counter = Counter()

    def on_start(self, ev: event.Event) -> None:
        func = ev.data["dispatcher"].py_func
        self.compiled[f"{func.__module__}.{func.__qualname__}"] += 1

    def on_end(self, ev: event.Event) -> None:
        pass


def main() -> int:
    report, args = sys.argv[1], sys.argv[2:]
    counter = CompileCounter()
    event.register("numba:compile", counter)
    from failmap_assets.cli import main as failmap

    code = failmap(args)
    with open(report, "w") as f:
        json.dump({"exit": code, "compiled": dict(counter.compiled)}, f)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
