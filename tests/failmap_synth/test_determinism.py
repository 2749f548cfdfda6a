"""Same seed, same bytes: across runs, thread counts, hash seeds and the broken switch."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from failmap_synth.day import SynthObject, generate_day, generate_days

DAY = date(2026, 1, 11)
SMALL = dict(dies_range=(500, 2500), typical_dies=800)
REPO = Path(__file__).resolve().parents[2]


def fingerprint(objs: list[SynthObject]) -> list[tuple]:
    return [(o.bucket, o.key, o.note, o.partner, o.maps, o.dies, hashlib.sha256(o.data).hexdigest())
            for o in objs]


def test_same_seed_gives_byte_identical_objects_whatever_the_thread_count():
    one = fingerprint(list(generate_day(DAY, 60, 7, stdf_files=2, workers=1, **SMALL)))
    three = fingerprint(list(generate_day(DAY, 60, 7, stdf_files=2, workers=3, **SMALL)))
    assert one == three
    assert len(one) > 100


def test_different_seed_or_day_gives_different_objects():
    a = fingerprint(list(generate_day(DAY, 40, 7, **SMALL)))
    b = fingerprint(list(generate_day(DAY, 40, 8, **SMALL)))
    c = fingerprint(list(generate_day(DAY + timedelta(days=1), 40, 7, **SMALL)))
    for other in (b, c):
        assert {f[1] for f in a}.isdisjoint({f[1] for f in other})
        assert {f[6] for f in a}.isdisjoint({f[6] for f in other})


def test_broken_false_only_removes_the_broken_lot():
    with_broken = fingerprint(list(generate_day(DAY, 50, 3, broken=True, **SMALL)))
    without = fingerprint(list(generate_day(DAY, 50, 3, broken=False, **SMALL)))
    extra = {"a_with_broken_b", "skipped:bad_key"}
    assert [f for f in with_broken if not f[2].startswith("broken:") and f[2] not in extra] == without
    assert not any(f[2].startswith("broken:") or f[2] in extra for f in without)


def test_generate_days_is_generate_day_per_day():
    days = fingerprint(list(generate_days(DAY, 2, 20, 5, stdf_files_per_day=1, **SMALL)))
    single = fingerprint(list(generate_day(DAY, 20, 5, stdf_files=1, **SMALL))
                         + list(generate_day(DAY + timedelta(days=1), 20, 5, stdf_files=1, **SMALL)))
    assert days == single


def test_consecutive_days_never_share_a_lot_token():
    def lots(d):
        return {o.key.split("/")[1].split("_")[0] for o in generate_day(d, 60, 1, broken=False, **SMALL)}
    assert lots(DAY).isdisjoint(lots(DAY + timedelta(days=1)))


def test_output_does_not_depend_on_hash_randomisation():
    code = ("import hashlib, datetime\n"
            "from failmap_synth.day import generate_day\n"
            "h = hashlib.sha256()\n"
            "for o in generate_day(datetime.date(2026, 1, 11), 12, 4, stdf_files=1, workers=2,\n"
            "                      dies_range=(500, 1500), typical_dies=700):\n"
            "    h.update(o.key.encode() + o.note.encode() + o.data)\n"
            "print(h.hexdigest())\n")
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                             timeout=300, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1
