"""Day histories: every way a fab day's objects can arrive, deterministic per seed.

A *history* is a list of operations on the source buckets (put or delete one key of
bucket A, B or STDF). It starts from ``failmap_synth.day.generate_day`` (every
compression format, B partners 0..10 s later, some in the next day's folder, orphans,
multi-map archives, broken files) and adds what real days also bring:

=================  ===========================================================================
note               what the operation is
=================  ===========================================================================
retest             a later A file of a wafer token already tested (other dies and bins)
retest_b           the retest's B partner (sometimes delivered only after the retest ran)
retest_tie         an A file of the same wafer token at the same second, under another key
lone_a / late_b    an A without partner, and its B arriving in a later batch than the A
                   (``late_b`` also marks a quarter of the generated B partners)
prev_day_a         an A of the previous day seconds before midnight; ``midnight_b`` its B in
                   this day's folder (an orphan of this day until that A is there)
reupload           new content under an existing key (A, B or STDF)
reupload_same      the very same bytes put again (a new ETag on local folders, not on S3)
revert             a re-uploaded object put back to its earlier bytes
break / repair     a re-upload that makes a good A unreadable, or a broken one good
delete             an object removed; ``revive`` puts the same bytes back later
stdf / stdf_retest STDF files; a second file of the same lot and wafer with a later start
stdf_tie           an STDF file of the same wafer and start time under another key
stdf_broken        a cut STDF file; ``stdf_junk`` a file that is no STDF at all
=================  ===========================================================================

``plan_batches`` splits a history into batches for delivery: per key, operations keep
their order, and an operation with ``after`` lands in a strictly later batch than
those it names (so a late partner really arrives after its A was processed).
"""

from __future__ import annotations

import calendar
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from failmap_synth import compression
from failmap_synth.day import generate_day
from failmap_synth.stdf_writer import make_wafer_sort_stdf

_A_KEY = re.compile(r"^(\d{8})/([A-Za-z0-9.-]+)_(\d{2})([A-Za-z])_(\d{8})_(\d{6})\.(.+)$")
_FORMATS = ("Z", "gz", "bz2", "xz", "7z", "zip", "tar", "tar.gz", "tgz", "txt")
_FAIL_BINS = (2, 7, 285, 3001)


@dataclass(frozen=True)
class Op:
    n: int                    # position in the history
    bucket: str               # "a", "b" or "stdf"
    key: str
    data: bytes | None        # None: delete the key
    note: str
    after: tuple[int, ...] = ()  # operations that must have been delivered in an earlier batch

    @property
    def is_delete(self) -> bool:
        return self.data is None

    def __repr__(self) -> str:
        what = "delete" if self.data is None else f"put {len(self.data)} B"
        return f"Op({self.n} {self.note} {what} {self.bucket}:{self.key}{' after ' + str(self.after) if self.after else ''})"


@dataclass
class History:
    day: date
    seed: int
    wafers: int
    ops: list[Op] = field(default_factory=list)

    def final(self) -> dict[tuple[str, str], bytes]:
        """What the buckets hold once every operation was applied."""
        objects: dict[tuple[str, str], bytes] = {}
        for op in self.ops:
            if op.data is None:
                objects.pop((op.bucket, op.key), None)
            else:
                objects[(op.bucket, op.key)] = op.data
        return objects

    def notes(self) -> Counter:
        return Counter(op.note for op in self.ops)


class _Builder:
    def __init__(self, day: date, seed: int, wafers: int) -> None:
        self.history = History(day, seed, wafers)
        self.rng = random.Random(f"day-history-{seed}")
        self.live: dict[tuple[str, str], int] = {}   # key -> the op that put what is there now
        self.day = day

    def put(self, bucket: str, key: str, data: bytes, note: str, after: tuple[int, ...] = ()) -> int:
        n = len(self.history.ops)
        self.history.ops.append(Op(n, bucket, key, data, note, after))
        self.live[(bucket, key)] = n
        return n

    def delete(self, bucket: str, key: str, note: str = "delete") -> int:
        n = len(self.history.ops)
        self.history.ops.append(Op(n, bucket, key, None, note))
        self.live.pop((bucket, key), None)
        return n

    def live_ops(self, bucket: str, notes: tuple[str, ...] | None = None) -> list[Op]:
        ops = [self.history.ops[n] for (b, _), n in sorted(self.live.items()) if b == bucket]
        return [o for o in ops if notes is None or o.note in notes]

    # ----- content ---------------------------------------------------------------------
    def stamp(self, seconds: int) -> datetime:
        return datetime.combine(self.day, time()) + timedelta(seconds=seconds)

    def a_text(self, lot: str, wafer: str, when: datetime) -> bytes:
        r = self.rng.randint(3, 8)
        bins = [1] * 6 + list(_FAIL_BINS[: self.rng.randint(1, len(_FAIL_BINS))])
        rows = [f"{x} {y} {self.rng.choice(bins)}" for y in range(-r, r + 1) for x in range(-r, r + 1)
                if x * x + y * y <= r * r]
        if self.rng.random() < 0.2:  # a re-tested die: the later row wins
            rows.append(rows[0].rsplit(" ", 1)[0] + " 1")
        head = [f"FAILMAP 1", f"LOT {lot}", f"WAFER {wafer}", f"STIME {when:%Y%m%d_%H%M%S}",
                f"PRODUCT SCT{self.rng.randint(100, 999)}A", "BINDEF 1 P PASS", "BINDEF 285 F IDDQ_FAIL"]
        if self.rng.random() < 0.5:
            head.append(f"TESTER T5503-{self.rng.randint(1, 12):02d}")
        return ("\n".join(head + [f"DIES {len(rows)}", *rows, "END"]) + "\n").encode()

    def b_text(self, a_text: bytes, when: datetime) -> bytes:
        rows = []
        for line in a_text.decode().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0].lstrip("-").isdigit():
                if self.rng.random() < 0.1:
                    continue  # B measured fewer dies
                v1 = "NA" if self.rng.random() < 0.05 else f"{self.rng.uniform(0.7, 0.9):.3f}"
                rows.append(f"{parts[0]} {parts[1]} {parts[2]} {v1} {self.rng.uniform(0, 90):.2f}")
        if self.rng.random() < 0.3:
            rows.append("99 99 1 0.800 1.00")  # a B die with no A die
        head = ["FAILMAP-B 1", f"TESTER B7700-{self.rng.randint(1, 6):02d}", f"STIME {when:%Y%m%d_%H%M%S}",
                "VALUES 2 VDD_MIN IDDQ_UA"]
        return ("\n".join(head + [f"DIES {len(rows)}", *rows, "END"]) + "\n").encode()

    def pack(self, text: bytes, member: str, when: datetime) -> tuple[bytes, str]:
        fmt = self.rng.choice(_FORMATS)
        return compression.compress([(member, text)], fmt, mtime=calendar.timegm(when.timetuple())), fmt

    def stdf(self, lot: str, slot: int, when: datetime, *, gz: bool | None = None) -> tuple[str, bytes]:
        gz = self.rng.random() < 0.5 if gz is None else gz
        data = make_wafer_sort_stdf(
            self.rng.randrange(2**63), endian=self.rng.choice("<>"), dies=self.rng.randint(30, 120),
            tests_per_die=self.rng.randint(4, 8), lot_id=lot, wafer_id=f"{slot:02d}", part_type="SCT101A",
            start_time=calendar.timegm(when.timetuple()), node_name="T5503-01", gzip_output=gz)
        key = f"{when:%Y%m%d}/{lot}_{slot:02d}_{when:%Y%m%d}_{when:%H%M%S}.stdf" + (".gz" if gz else "")
        return key, data


def _parts(key: str):
    m = _A_KEY.match(key)
    if m is None:
        return None
    folder, lot, slot, ins, fdate, ftime, ext = m.groups()
    return lot, slot, ins, datetime.strptime(fdate + ftime, "%Y%m%d%H%M%S"), ext


def make_history(day: date, seed: int, *, wafers: int | None = None) -> History:
    """A day's objects and everything that happens to them (see the module docstring)."""
    b = _Builder(day, seed, 0)
    rng = b.rng
    wafers = wafers if wafers is not None else rng.randint(8, 20)
    b.history.wafers = wafers
    pairs: dict[str, int] = {}  # A key -> op of its B partner
    for o in generate_day(day, wafers, seed, broken=True, dies_range=(40, 600), typical_dies=150,
                          stdf_files=0, workers=1):
        n = b.put(o.bucket, o.key, o.data, o.note)
        if o.bucket == "b" and o.partner:
            pairs[o.partner] = n
    # Some B partners arrive only after their A was processed alone.
    for a_key, b_op in pairs.items():
        a_op = b.live.get(("a", a_key))
        if a_op is not None and rng.random() < 0.25:
            op = b.history.ops[b_op]
            b.history.ops[b_op] = Op(op.n, op.bucket, op.key, op.data, "late_b", (a_op,))

    singles = [o for o in b.live_ops("a", ("a", "a_without_b")) if _parts(o.key)]
    lots = sorted({_parts(o.key)[0] for o in singles})

    # Retests: a later A file of the same wafer token, sometimes with its own B.
    for o in rng.sample(singles, min(len(singles), rng.randint(1, 3))):
        lot, slot, ins, t, _ = _parts(o.key)
        start = (t - datetime.combine(day, time())).seconds
        later = start + rng.randint(600, 6 * 3600)
        when = b.stamp(later if later < 86400 - 60 else max(0, start - rng.randint(600, 3 * 3600)))
        text = b.a_text(lot, slot, when)
        data, ext = b.pack(text, f"{lot}_{slot}{ins}.txt", when)
        a_n = b.put("a", f"{when:%Y%m%d}/{lot}_{slot}{ins}_{when:%Y%m%d}_{when:%H%M%S}.{ext}", data, "retest")
        if rng.random() < 0.6:
            when_b = when + timedelta(seconds=rng.randint(0, 10))
            b_data, b_ext = b.pack(b.b_text(text, when_b), f"{lot}_{slot}{ins}_B.txt", when_b)
            b.put("b", f"{when_b:%Y%m%d}/{lot}_{slot}{ins}_{when_b:%Y%m%d}_{when_b:%H%M%S}.{b_ext}", b_data,
                  "retest_b", (a_n,) if rng.random() < 0.5 else ())
    # The same wafer token at the same second under another key: the greater key is latest
    # (and the first key in order claims the B partner).
    if singles and rng.random() < 0.6:
        o = rng.choice(singles)
        lot, slot, ins, t, ext = _parts(o.key)
        others = [f for f in _FORMATS if f != ext]
        fmt = rng.choice(others)
        text = b.a_text(lot, slot, t)
        data = compression.compress([(f"{lot}_{slot}{ins}.txt", text)], fmt, mtime=calendar.timegm(t.timetuple()))
        b.put("a", f"{t:%Y%m%d}/{lot}_{slot}{ins}_{t:%Y%m%d}_{t:%H%M%S}.{fmt}", data, "retest_tie")

    # A lone A whose B partner arrives later (processed A-only first, then again with B).
    for k in range(rng.randint(1, 2)):
        lot = f"Z{seed % 9 + 1}Q{rng.randint(0, 999):03d}.{k + 1}"
        slot = f"{rng.randint(1, 25):02d}"
        when = b.stamp(rng.randint(0, 86400 - 1))
        text = b.a_text(lot, slot, when)
        data, ext = b.pack(text, f"{lot}_{slot}P.txt", when)
        a_n = b.put("a", f"{when:%Y%m%d}/{lot}_{slot}P_{when:%Y%m%d}_{when:%H%M%S}.{ext}", data, "lone_a")
        when_b = when + timedelta(seconds=rng.randint(0, 10))  # may fall into the next day's folder
        b_data, b_ext = b.pack(b.b_text(text, when_b), f"{lot}_{slot}P_B.txt", when_b)
        b.put("b", f"{when_b:%Y%m%d}/{lot}_{slot}P_{when_b:%Y%m%d}_{when_b:%H%M%S}.{b_ext}", b_data, "late_b",
              (a_n,))

    # An A of the previous day, seconds before midnight, whose B sits in this day's folder:
    # the B is claimed across midnight (not this day's orphan) once that A is there.
    if rng.random() < 0.5:
        lot, slot = f"Z{seed % 9 + 1}P{rng.randint(0, 999):03d}.1", f"{rng.randint(1, 25):02d}"
        when = b.stamp(-rng.randint(1, 9))
        text = b.a_text(lot, slot, when)
        data, ext = b.pack(text, f"{lot}_{slot}P.txt", when)
        a_n = b.put("a", f"{when:%Y%m%d}/{lot}_{slot}P_{when:%Y%m%d}_{when:%H%M%S}.{ext}", data, "prev_day_a")
        when_b = b.stamp(rng.randint(0, 1))
        b_data, b_ext = b.pack(b.b_text(text, when_b), f"{lot}_{slot}P_B.txt", when_b)
        b.put("b", f"{when_b:%Y%m%d}/{lot}_{slot}P_{when_b:%Y%m%d}_{when_b:%H%M%S}.{b_ext}", b_data,
              "midnight_b", (a_n,) if rng.random() < 0.3 else ())
        if rng.random() < 0.3:
            b.delete("a", f"{when:%Y%m%d}/{lot}_{slot}P_{when:%Y%m%d}_{when:%H%M%S}.{ext}")

    # STDF: a few small files, a retest of one wafer, maybe a tie, a cut file, a junk file.
    stdf_lots = lots or ["N1A001.1"]
    firsts = []
    for _ in range(rng.randint(2, 3)):
        lot, slot = rng.choice(stdf_lots), rng.randint(1, 25)
        when = b.stamp(rng.randint(0, 20 * 3600))
        key, data = b.stdf(lot, slot, when)
        b.put("stdf", key, data, "stdf")
        firsts.append((lot, slot, when, key))
    lot, slot, when, first_key = rng.choice(firsts)
    later = when + timedelta(seconds=rng.randint(600, 3 * 3600))
    key, data = b.stdf(lot, slot, later)
    b.put("stdf", key, data, "stdf_retest")
    if rng.random() < 0.5:
        key, data = b.stdf(lot, slot, when, gz=not first_key.endswith(".gz"))
        b.put("stdf", key, data, "stdf_tie")
    if rng.random() < 0.6:
        lot, slot = rng.choice(stdf_lots), rng.randint(1, 25)
        key, data = b.stdf(lot, slot, b.stamp(rng.randint(0, 86399)), gz=False)
        b.put("stdf", key, data[: len(data) * rng.randint(30, 80) // 100], "stdf_broken")
    if rng.random() < 0.4:
        b.put("stdf", f"{day:%Y%m%d}/README_{seed}.txt", b"not an STDF file\n", "stdf_junk")

    # Re-uploads: new content under an existing key, the same bytes again, a good A
    # broken, a broken A repaired.
    for _ in range(rng.randint(2, 4)):
        bucket = rng.choice(("a", "a", "b", "stdf"))
        candidates = b.live_ops(bucket)
        if not candidates:
            continue
        o = rng.choice(candidates)
        if rng.random() < 0.25:
            b.put(bucket, o.key, o.data, "reupload_same")
            continue
        parts = _parts(o.key)
        if bucket == "stdf":
            m = re.match(r"^\d{8}/(.+)_(\d{2})_(\d{8})_(\d{6})\.stdf", o.key)
            if m is None:
                continue
            when = datetime.strptime(m.group(3) + m.group(4), "%Y%m%d%H%M%S")
            _, data = b.stdf(m.group(1), int(m.group(2)), when, gz=o.key.endswith(".gz"))
        elif parts is None:
            continue
        else:
            lot, slot, ins, t, ext = parts
            text = b.a_text(lot, slot, t)
            if bucket == "b":
                text = b.b_text(text, t)
            data = compression.compress([(f"{lot}_{slot}{ins}.txt", text)], rng.choice(_FORMATS),
                                        mtime=calendar.timegm(t.timetuple()))
        b.put(bucket, o.key, data, "reupload")
        if rng.random() < 0.4:  # ... and back to the first bytes (the first ETag again on S3)
            b.put(bucket, o.key, o.data, "revert")
    good = [o for o in b.live_ops("a", ("a", "a_without_b", "retest")) if _parts(o.key)]
    if good and rng.random() < 0.5:
        o = rng.choice(good)
        b.put("a", o.key, o.data[: max(1, len(o.data) // 2)], "break")
    bad = [o for o in b.live_ops("a", ("broken:bad_row", "broken:truncated")) if _parts(o.key)]
    if bad and rng.random() < 0.5:
        o = rng.choice(bad)
        lot, slot, ins, t, _ = _parts(o.key)
        b.put("a", o.key, b.a_text(lot, slot, t), "repair")  # plain text under any extension: magic bytes decide

    # Deletions, some revived later (the same bytes or new content).
    for _ in range(rng.randint(1, 3)):
        bucket = rng.choice(("a", "a", "b", "stdf"))
        candidates = b.live_ops(bucket)
        if not candidates:
            continue
        o = rng.choice(candidates)
        b.delete(bucket, o.key)
        if rng.random() < 0.35:
            b.put(bucket, o.key, o.data, "revive")
    # Deleting a wafer's latest event makes an earlier one latest again.
    retests = b.live_ops("a", ("retest",))
    if retests and rng.random() < 0.4:
        b.delete("a", rng.choice(retests).key)
    return b.history


# ----- delivery ----------------------------------------------------------------------------

def plan_batches(history: History, rng: random.Random, batches: int) -> list[list[Op]]:
    """The history's operations in ``batches`` (or a few more, when ``after`` needs them)
    non-empty batches: per key in order, ``after`` strictly earlier, else random."""
    batch_of: dict[int, int] = {}
    last_of_key: dict[tuple[str, str], int] = {}
    for op in history.ops:
        k = (op.bucket, op.key)
        n = max([rng.randrange(batches), last_of_key.get(k, 0), *(batch_of[p] + 1 for p in op.after)])
        batch_of[op.n] = last_of_key[k] = n
    groups: dict[int, list[Op]] = {}
    for op in history.ops:
        groups.setdefault(batch_of[op.n], []).append(op)
    out = []
    for n in sorted(groups):
        ops = groups[n][:]
        rng.shuffle(ops)
        # random order, except that one key's operations keep theirs
        slots: dict[tuple[str, str], list[int]] = {}
        for i, op in enumerate(ops):
            slots.setdefault((op.bucket, op.key), []).append(i)
        ordered = ops[:]
        for k, idx in slots.items():
            mine = sorted((ops[i] for i in idx), key=lambda o: o.n)
            for i, op in zip(idx, mine):
                ordered[i] = op
        out.append(ordered)
    return out
