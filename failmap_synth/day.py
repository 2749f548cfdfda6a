"""A day of synthetic objects for buckets A, B and STDF, with notes saying what each is.

Wafers come in lots of 25 tested on one prober each; every A map is followed 0..10 s
later by its B partner, except for the planned exceptions (A without B, multi-map
archives, orphan B files, a B pushed past midnight into the next day's folder) and,
with ``broken=True``, one object of each broken kind. All broken objects and their
partners come from a lot of their own, so ``broken=False`` yields exactly the same
other objects.

Notes (``SynthObject.note``):

=========================  ======  ===========================================================
note                       bucket  what it is
=========================  ======  ===========================================================
a                          a       one fail map, has a B partner (``partner`` = its key)
a_without_b                a       one fail map, no B within the window: processed A-only
a_multi                    a       archive of 2..4 maps (+ README/folder/empty members), no B
a_with_broken_b            a       a valid map whose B partner is ``broken:wrong_value_count``
b                          b       the partner of an ``a`` (possibly in the next day's folder)
orphan_b                   b       a B no A claims (unknown wafer, or just outside the window)
broken:truncated           a       cut short: compressed stream cut, or text without END
broken:corrupt_archive     a       noise in the middle of a compressed object
broken:bad_row             a       one die row that is not ``x y bin``
broken:wrong_value_count   b       one row with a value too few or too many
skipped:bad_key            a       a key that does not fit the pattern (content irrelevant)
stdf                       stdf    an STDF V4 wafer-sort file (maybe gzip'd)
=========================  ======  ===========================================================

``generate_day(wafers=W)`` yields W valid maps in total across ``a``, ``a_without_b``
and ``a_multi`` (``SynthObject.maps``); broken objects come on top.
"""

from __future__ import annotations

import calendar
import functools
import itertools
import math
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import numpy as np

from failmap_synth import compression, failmap_files as ff
from failmap_synth.measurements import measure
from failmap_synth.rng import (BROKEN, MULTI, ORPHAN, PLAN, STDF, SUB_A_TEXT, SUB_B_TEXT,
                                      SUB_B_VALUES, SUB_BREAK, SUB_CONTAINER, SUB_DIES, WAFER, rng_for)
from failmap_synth.stdf_writer import make_wafer_sort_stdf
from failmap_synth.wafer_shapes import (Product, WaferDies, choose_product, generate_wafer,
                                               product_catalog, product_grid)

NOTES = ("a", "a_without_b", "a_multi", "a_with_broken_b", "b", "orphan_b", "broken:truncated",
         "broken:corrupt_archive", "broken:bad_row", "broken:wrong_value_count", "skipped:bad_key",
         "stdf")

DAY_S = 86400
WINDOW_S = 10  # the contract's default pairing window

# How often testers use each container. B files are ~3x larger than A (values per
# die) and their station gzips; the slow compressors (bz2, xz, 7z) stay rare there.
_A_FORMATS = {"Z": .24, "gz": .25, "zip": .12, "7z": .06, "bz2": .04, "xz": .05, "tar": .05,
              "tar.gz": .05, "tgz": .04, "txt": .10}
_B_FORMATS = {"gz": .58, "Z": .20, "txt": .10, "zip": .06, "bz2": .02, "xz": .02, "7z": .01,
              "tar": .005, "tar.gz": .0025, "tgz": .0025}
# Delay of B after A, in seconds: mostly a few seconds, both window ends possible.
_DELAY_P = np.array([2, 4, 8, 12, 14, 12, 10, 8, 6, 4, 2], float)
_DELAY_P /= _DELAY_P.sum()


@dataclass(frozen=True)
class SynthObject:
    bucket: str         # "a", "b" or "stdf"
    key: str
    data: bytes
    note: str           # see the table above
    partner: str | None = None  # key of the partner object in the other bucket
    maps: int = 0       # valid fail maps inside (a_multi: several; broken: 0)
    dies: int = 0       # distinct dies over those maps (B: rows; stdf: parts)


@dataclass
class _Lot:
    token: str
    product: Product
    insertion: str
    tester: str
    b_tester: str


@dataclass
class _Wafer:
    keys: tuple[int, ...]  # rng stream prefix for this wafer's content
    lot: _Lot
    slot: int
    t_a: int               # when A was written: seconds after the day's midnight (< DAY_S)
    fate: str = "a"
    delay: int = 0
    empty: bool = False

    @property
    def token(self) -> str:
        return f"{self.lot.token}_{self.slot:02d}{self.lot.insertion}"


# ------------------------------------------------------------------- helpers

def _stamp(day: date, seconds: int) -> datetime:
    return datetime.combine(day, time()) + timedelta(seconds=int(seconds))


def _key(token: str, when: datetime, ext: str) -> str:
    return f"{when:%Y%m%d}/{token}_{when:%Y%m%d}_{when:%H%M%S}.{ext}"


def _epoch(when: datetime) -> int:
    # Fab-local time without zone: archive timestamps just carry the same wall time.
    return calendar.timegm(when.timetuple())


def _pick(rng: np.random.Generator, table: dict[str, float]) -> str:
    names = list(table)
    p = np.array([table[n] for n in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _lot_tokens(rng: np.random.Generator, day: date, n: int) -> list[str]:
    """``N4A123.1``-style tokens, unique within the day.

    The third character encodes the day, so neighbouring days never share a token
    and a B written after midnight cannot be claimed by the next day's A.
    """
    code = chr(ord("A") + day.toordinal() % 26)
    out: list[str] = []
    seen: set[str] = set()  # membership only; order comes from the list
    while len(out) < n:
        t = f"{'NKTM'[int(rng.integers(0, 4))]}{int(rng.integers(1, 10))}{code}" \
            f"{int(rng.integers(0, 1000)):03d}.{int(rng.integers(1, 4))}"
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


def _make_lot(token: str, catalog, rng: np.random.Generator) -> _Lot:
    return _Lot(token=token, product=choose_product(catalog, rng),
                insertion=str(rng.choice(["P", "R", "C"], p=[0.85, 0.10, 0.05])),
                tester=f"T5503-{int(rng.integers(1, 13)):02d}",
                b_tester=f"B7700-{int(rng.integers(1, 7)):02d}")


# ------------------------------------------------------------------- the plan

@dataclass
class _Plan:
    wafers: list[_Wafer]
    groups: list[list[int]]   # wafer indices per multi-map archive
    orphan_lot: _Lot
    broken_lot: _Lot
    lots: list[_Lot]


def _plan(day: date, n_wafers: int, seed: int, catalog) -> _Plan:
    ordinal = day.toordinal()
    rng = rng_for(seed, ordinal, PLAN)
    n_lots = math.ceil(n_wafers / 25)
    tokens = _lot_tokens(rng, day, n_lots + 2)
    lots = [_make_lot(t, catalog, rng) for t in tokens]
    wafers: list[_Wafer] = []
    lot_members: list[list[int]] = []
    for li in range(n_lots):
        lot = lots[li]
        size = min(25, n_wafers - 25 * li)
        slots = np.arange(1, 26) if size == 25 else np.sort(rng.choice(25, size, replace=False) + 1)
        # Probing time per wafer grows with the die count; a lot runs back to back.
        interval = int(np.clip(product_grid(lot.product).n * rng.uniform(0.08, 0.25), 90, 3000))
        start = int(rng.integers(0, max(1, DAY_S - 25 * interval - 120)))
        members = []
        for i, slot in enumerate(slots):
            t = start + i * interval + int(rng.integers(0, 30))
            members.append(len(wafers))
            wafers.append(_Wafer((seed, ordinal, WAFER, len(wafers)), lot, int(slot), min(t, DAY_S - 1)))
        lot_members.append(members)

    # Some probers dump several maps of a lot into one archive.
    groups: list[list[int]] = []
    if n_wafers >= 8:
        eligible = [m for m in lot_members if len(m) >= 4]
        n_groups = min(len(eligible), max(1, n_wafers // 250))
        for li in sorted(rng.choice(len(eligible), n_groups, replace=False)) if eligible else []:
            m = eligible[int(li)]
            length = int(rng.integers(2, 5))
            first = int(rng.integers(0, len(m) - length + 1))
            groups.append(m[first:first + length])
            for w in m[first:first + length]:
                wafers[w].fate = "a_multi"

    singles = [w for w in wafers if w.fate == "a"]
    lone = rng.random(len(singles)) < 0.05
    if n_wafers >= 20 and not lone.any():
        lone[int(rng.integers(0, len(singles)))] = True
    for w, is_lone in zip(singles, lone):
        if is_lone:
            w.fate = "a_without_b"
    paired = [w for w in singles if w.fate == "a"]
    for w in paired:
        w.delay = int(rng.choice(11, p=_DELAY_P))
    if paired:
        # Pin the edge cases: B at +0 s and +10 s, and one A whose B lands after midnight.
        order = rng.permutation(len(paired))
        if len(paired) >= 3:
            paired[int(order[1])].delay = 0
            paired[int(order[2])].delay = WINDOW_S
        late = paired[int(order[0])]
        before = int(rng.integers(1, WINDOW_S))
        late.t_a = DAY_S - before
        late.delay = int(rng.integers(before, WINDOW_S + 1))
        if n_wafers >= 100 and len(paired) >= 4:
            paired[int(order[3])].empty = True  # a wafer aborted before any die: DIES 0
    return _Plan(wafers=wafers, groups=groups, orphan_lot=lots[n_lots], broken_lot=lots[n_lots + 1],
                 lots=lots[:n_lots])


# ------------------------------------------------------------------- rendering

def _a_header(w: _Wafer, when: datetime, rng: np.random.Generator) -> ff.AHeader:
    p = w.lot.product
    g = product_grid(p)

    def maybe(v):  # optional keys are dropped now and then
        return v if rng.random() > 0.08 else None

    extra = []
    for key, val in (("TEMP", "25"), ("PROBECARD", f"PC-{int(rng.integers(1000, 9999))}"),
                     ("OPERATOR", f"op{int(rng.integers(1, 40))}")):
        if rng.random() < 0.25:
            extra.append((key, val))
    return ff.AHeader(
        lot=w.lot.token, wafer=f"{w.slot:02d}", stime=f"{when:%Y%m%d_%H%M%S}",
        product=maybe(p.name), step=maybe(p.step), tester=maybe(w.lot.tester),
        partid=maybe(f"{w.lot.token.split('.')[0]}-{w.slot:02d}"), flat=maybe(p.flat),
        die_size=maybe((p.die_w_mm, p.die_h_mm)), origin=maybe(g.origin),
        bindefs=p.bindefs if rng.random() > 0.08 else (), extra=tuple(extra))


def _dies(w: _Wafer) -> WaferDies:
    return generate_wafer(w.lot.product, rng_for(*w.keys, SUB_DIES), empty=w.empty)


def _render_a(w: _Wafer, when: datetime, dies: WaferDies) -> ff.Rendered:
    rng = rng_for(*w.keys, SUB_A_TEXT)
    return ff.render_a(_a_header(w, when, rng), dies, ff.random_style(rng), rng)


def _render_b(w: _Wafer, when: datetime, dies: WaferDies, keys: tuple[int, ...]) -> tuple[ff.Rendered, int]:
    """B text for the wafer's dies, written at ``when``; the stream prefix ``keys``."""
    rng = rng_for(*keys, SUB_B_VALUES)
    x, y, bins = dies.final()
    r = product_grid(w.lot.product).r[: x.size] if x.size else np.empty(0)
    kind = rng.random()
    if kind < 0.10:  # this B station measures only good dies
        keep = bins == 1
        x, y, bins, r = x[keep], y[keep], bins[keep], r[keep]
    elif kind < 0.15 and x.size:  # a few dies beyond the A map (kept by readers, counted)
        extra = int(rng.integers(1, 4))
        x = np.concatenate([x, np.full(extra, int(x.max()) + 1, x.dtype)])
        y = np.concatenate([y, np.arange(extra, dtype=y.dtype) + y.min()])
        bins = np.concatenate([bins, np.ones(extra, bins.dtype)])
        r = np.concatenate([r, np.ones(extra)])
    values = measure(w.lot.product.values, bins, r, rng)
    trng = rng_for(*keys, SUB_B_TEXT)
    extra_keys = (("LOT", w.lot.token),) if trng.random() < 0.3 else ()
    h = ff.BHeader(stime=f"{when:%Y%m%d_%H%M%S}", values=w.lot.product.values,
                   partid=f"{w.lot.token.split('.')[0]}-{w.slot:02d}" if trng.random() > 0.05 else None,
                   tester=w.lot.b_tester if trng.random() > 0.05 else None, extra=extra_keys)
    return ff.render_b(h, x, y, bins, values, ff.random_style(trng), trng), int(x.size)


def _container(text: bytes, member: str, when: datetime, rng: np.random.Generator,
               table: dict[str, float]) -> tuple[bytes, str]:
    """Compress one map; returns (bytes, key extension), the extension sometimes lying."""
    fmt = _pick(rng, table)
    data = compression.compress([(member, text)], fmt, mtime=_epoch(when), deflate=rng.random() > 0.1)
    ext = ff.lying_extension(fmt, rng) if rng.random() < 0.03 else fmt
    return data, ext


def _member_name(token: str, rng: np.random.Generator) -> str:
    return f"{token}{str(rng.choice(['.txt', '.map', '.fmap', '']))}"


def _single(w: _Wafer, day: date, note: str) -> Iterator[SynthObject]:
    """An A map and, for ``a``, its B partner."""
    when_a = _stamp(day, w.t_a)
    dies = _dies(w)
    text = _render_a(w, when_a, dies).data
    crng = rng_for(*w.keys, SUB_CONTAINER)
    data, ext = _container(text, _member_name(w.token, crng), when_a, crng, _A_FORMATS)
    a_key = _key(w.token, when_a, ext)
    if note != "a":
        yield SynthObject("a", a_key, data, note, None, 1, dies.n_dies)
        return
    when_b = _stamp(day, w.t_a + w.delay)
    b_text, b_rows = _render_b(w, when_b, dies, w.keys)
    b_data, b_ext = _container(b_text.data, _member_name(w.token + "_B", crng), when_b, crng, _B_FORMATS)
    b_key = _key(w.token, when_b, b_ext)
    yield SynthObject("a", a_key, data, "a", b_key, 1, dies.n_dies)
    yield SynthObject("b", b_key, b_data, "b", a_key, 0, b_rows)


def _multi(group: list[_Wafer], day: date, seed: int, gi: int) -> SynthObject:
    rng = rng_for(seed, day.toordinal(), MULTI, gi)
    prefix = "maps/" if rng.random() < 0.4 else ""
    members: list[tuple[str, bytes | None]] = []
    dies_total = 0
    for w in group:
        dies = _dies(w)
        dies_total += dies.n_dies
        members.append((f"{prefix}{w.token}.map", _render_a(w, _stamp(day, w.t_a), dies).data))
    first = group[0]
    readme = (f"Fail maps of lot {first.lot.token}, wafers "
              f"{', '.join(f'{w.slot:02d}' for w in group)}.\nExported by the prober.\n").encode()
    members.append((f"{prefix}README.txt", readme))
    if prefix:
        members.append(("maps", None))
    if rng.random() < 0.3:
        members.append((f"{prefix}empty.txt", b""))
    members = [members[i] for i in rng.permutation(len(members))]  # readers sort by name
    when = _stamp(day, min(max(w.t_a for w in group) + int(rng.integers(5, 60)), DAY_S - 1))
    fmt = str(rng.choice(compression.ARCHIVES))
    data = compression.compress(members, fmt, mtime=_epoch(when))
    return SynthObject("a", _key(first.token, when, fmt), data, "a_multi", None, len(group), dies_total)


def _orphans(plan: _Plan, day: date, seed: int) -> Iterator[SynthObject]:
    """B objects no A claims: just outside the window, far too late, or unknown wafers."""
    ordinal = day.toordinal()
    lone = [w for w in plan.wafers if w.fate == "a_without_b"]
    paired = [w for w in plan.wafers if w.fate == "a" and w.t_a + w.delay < DAY_S - 1000]
    # A few per day: one per hundred wafers, at most ten (they share the orphan lot's 25 slots).
    n = min(10, max(1, len(plan.wafers) // 100)) if plan.wafers else 0
    for k in range(n):
        keys = (seed, ordinal, ORPHAN, k)
        rng = rng_for(*keys, SUB_CONTAINER)
        if k == 0 and lone:
            w = lone[int(rng.integers(0, len(lone)))]
            t_b = w.t_a + WINDOW_S + int(rng.integers(1, 20))  # 11..30 s: just too late
        elif k == 1 and paired:
            w = paired[int(rng.integers(0, len(paired)))]
            t_b = w.t_a + w.delay + int(rng.integers(120, 900))  # a re-sent copy, much later
        else:
            w = _Wafer(keys, plan.orphan_lot, k + 1, int(rng.integers(0, DAY_S)))
            t_b = w.t_a
        when = _stamp(day, t_b)
        dies = _dies(w)
        b_text, rows = _render_b(w, when, dies, keys)
        data, ext = _container(b_text.data, _member_name(w.token + "_B", rng), when, rng, _B_FORMATS)
        yield SynthObject("b", _key(w.token, when, ext), data, "orphan_b", None, 0, rows)


_BAD_KEYS = (
    "{d}/{lot}_{slot}P_{d}_{t}.gz",          # one-digit slot
    "{d}/{lot}_{slot:02d}P_{d}.Z",           # no time
    "{d}/{lot}_{slot:02d}P_{d}_{t}.rar",     # unknown extension
    "{d}/tester log {d} \u00fcbersicht.txt",  # spaces and unicode, nothing like a map key
)


def _broken(plan: _Plan, day: date, seed: int) -> Iterator[SynthObject]:
    """One object of each broken kind, from a lot of their own."""
    ordinal = day.toordinal()
    lot = plan.broken_lot
    for k, kind in enumerate(("truncated", "corrupt_archive", "bad_row", "broken_b", "bad_key")):
        keys = (seed, ordinal, BROKEN, k)
        rng = rng_for(*keys, SUB_BREAK)
        w = _Wafer(keys, lot, k + 1, int(rng.integers(0, DAY_S - 3600)))
        when = _stamp(day, w.t_a)
        dies = _dies(w)
        rendered = _render_a(w, when, dies)
        member = _member_name(w.token, rng)
        mtime = _epoch(when)
        if kind == "truncated":
            fmt = str(rng.choice(["gz", "bz2", "xz", "Z", "zip", "7z", "tar.gz"]))
            if rng.random() < 0.5 and fmt in ("gz", "bz2", "xz", "Z"):
                data = compression.compress([(member, ff.break_truncate_text(rendered, rng))], fmt, mtime=mtime)
            else:
                data = compression.truncate(compression.compress([(member, rendered.data)], fmt, mtime=mtime), rng)
            yield SynthObject("a", _key(w.token, when, fmt), data, "broken:truncated", None, 0, dies.n_dies)
        elif kind == "corrupt_archive":
            fmt = str(rng.choice(["zip", "7z", "tar.gz", "tgz", "gz"]))
            data = compression.corrupt(compression.compress([(member, rendered.data)], fmt, mtime=mtime), rng)
            yield SynthObject("a", _key(w.token, when, fmt), data, "broken:corrupt_archive", None, 0, dies.n_dies)
        elif kind == "bad_row":
            text, _ = ff.break_bad_row(rendered, rng)
            data, ext = _container(text, member, when, rng, _A_FORMATS)
            yield SynthObject("a", _key(w.token, when, ext), data, "broken:bad_row", None, 0, dies.n_dies)
        elif kind == "broken_b":
            data, ext = _container(rendered.data, member, when, rng, _A_FORMATS)
            a_key = _key(w.token, when, ext)
            when_b = _stamp(day, w.t_a + int(rng.integers(0, WINDOW_S + 1)))
            b_rendered, rows = _render_b(w, when_b, dies, keys)
            b_data, b_ext = _container(ff.break_value_count(b_rendered, rng), member + "_B", when_b, rng,
                                       _B_FORMATS)
            b_key = _key(w.token, when_b, b_ext)
            yield SynthObject("a", a_key, data, "a_with_broken_b", b_key, 1, dies.n_dies)
            yield SynthObject("b", b_key, b_data, "broken:wrong_value_count", a_key, 0, rows)
        else:
            template = _BAD_KEYS[int(rng.integers(0, len(_BAD_KEYS)))]
            key = template.format(d=f"{when:%Y%m%d}", t=f"{when:%H%M%S}", lot=lot.token, slot=w.slot)
            data = compression.compress([(member, rendered.data)], "gz", mtime=mtime)
            yield SynthObject("a", key, data, "skipped:bad_key", None, 0, 0)


def _stdf(plan: _Plan, day: date, seed: int, i: int) -> SynthObject:
    """STDF file ``i`` of the day: little-endian for even i, big-endian for odd."""
    rng = rng_for(seed, day.toordinal(), STDF, i)
    lot = plan.lots[int(rng.integers(0, len(plan.lots)))] if plan.lots else plan.orphan_lot
    slot = int(rng.integers(1, 26))
    when = _stamp(day, int(rng.integers(0, DAY_S)))
    dies = int(rng.integers(200, 3000))
    tests = min(int(rng.integers(20, 301)), max(20, 250_000 // dies))  # keeps a file under ~10 MB
    gz = bool(rng.random() < 0.5)
    data = make_wafer_sort_stdf(
        int(rng.integers(0, 2**63)), endian="<" if i % 2 == 0 else ">", dies=dies, tests_per_die=tests,
        lot_id=lot.token, wafer_id=f"{slot:02d}", part_type=lot.product.name, start_time=_epoch(when),
        node_name=lot.tester, gzip_output=gz)
    key = f"{when:%Y%m%d}/{lot.token}_{slot:02d}_{when:%Y%m%d}_{when:%H%M%S}.stdf" + (".gz" if gz else "")
    return SynthObject("stdf", key, data, "stdf", None, 0, dies)


def _run(jobs: list[Callable[[], list[SynthObject]]], workers: int) -> Iterator[SynthObject]:
    """Run jobs on a few threads (zlib, bz2, lzma and big numpy loops release the GIL)
    and yield their objects strictly in job order: the output never depends on
    scheduling. At most 2 x workers jobs are in flight, so memory stays flat."""
    if workers <= 1:
        for job in jobs:
            yield from job()
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synth") as pool:
        todo = iter(jobs)
        pending: deque[Future] = deque(pool.submit(j) for j in itertools.islice(todo, 2 * workers))
        try:
            while pending:
                done = pending.popleft().result()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append(pool.submit(nxt))
                yield from done
        finally:
            for f in pending:  # the consumer stopped early: do not compute the rest
                f.cancel()


# ------------------------------------------------------------------- public API

def generate_day(day: date, wafers: int, seed: int, *, broken: bool = True,
                 dies_range: tuple[int, int] = (500, 20000), typical_dies: int = 5000,
                 stdf_files: int = 0, workers: int | None = None) -> Iterator[SynthObject]:
    """Every object one day of testing produces; deterministic for (day, wafers, seed, knobs).

    ``workers`` threads render and compress in parallel (default: one per CPU, at most 4); the
    objects and their order are the same for any value.
    """
    if wafers < 0 or stdf_files < 0:
        raise ValueError("wafers and stdf_files must be >= 0")
    catalog = product_catalog(tuple(dies_range), int(typical_dies))
    plan = _plan(day, wafers, seed, catalog)
    in_group = {i for g in plan.groups for i in g}
    jobs: list[Callable[[], list[SynthObject]]] = [
        functools.partial(_collect, _single, w, day, w.fate)
        for i, w in enumerate(plan.wafers) if i not in in_group]
    jobs += [functools.partial(_multi_job, [plan.wafers[i] for i in g], day, seed, gi)
             for gi, g in enumerate(plan.groups)]
    jobs.append(functools.partial(_collect, _orphans, plan, day, seed))
    if broken:
        jobs.append(functools.partial(_collect, _broken, plan, day, seed))
    jobs += [functools.partial(_stdf_job, plan, day, seed, i) for i in range(stdf_files)]
    yield from _run(jobs, min(4, os.cpu_count() or 1) if workers is None else workers)


def _collect(gen, *args) -> list[SynthObject]:
    return list(gen(*args))


def _multi_job(group: list[_Wafer], day: date, seed: int, gi: int) -> list[SynthObject]:
    return [_multi(group, day, seed, gi)]


def _stdf_job(plan: _Plan, day: date, seed: int, i: int) -> list[SynthObject]:
    return [_stdf(plan, day, seed, i)]


def generate_days(start: date, days: int, wafers_per_day: int, seed: int,
                  stdf_files_per_day: int = 2, *, broken: bool = True,
                  dies_range: tuple[int, int] = (500, 20000), typical_dies: int = 5000,
                  workers: int | None = None) -> Iterator[SynthObject]:
    """``generate_day`` for ``days`` consecutive days from ``start``."""
    for d in range(days):
        yield from generate_day(start + timedelta(days=d), wafers_per_day, seed, broken=broken,
                                dies_range=dies_range, typical_dies=typical_dies,
                                stdf_files=stdf_files_per_day, workers=workers)


def expected_summary(objects: Iterable[SynthObject]) -> dict[str, int]:
    """How many objects of each note (every note of NOTES present, zeros included)."""
    counts = Counter(o.note for o in objects)
    return {n: counts.get(n, 0) for n in NOTES}


def expected_totals(objects: Iterable[SynthObject]) -> dict[str, int]:
    """Figures a pipeline run over these objects should report."""
    objs = list(objects)
    s = expected_summary(objs)
    a_maps = [o for o in objs if o.bucket == "a" and o.maps]
    return {
        "a_objects": sum(o.bucket == "a" for o in objs),
        "valid_maps": sum(o.maps for o in a_maps),
        "valid_dies": sum(o.dies for o in a_maps),
        "paired": s["a"] + s["a_with_broken_b"],
        "a_only": s["a_without_b"] + s["a_multi"],
        "orphan_b": s["orphan_b"],
        "rejected": sum(o.note.startswith("broken:") for o in objs),
        "skipped": s["skipped:bad_key"],
        "stdf": s["stdf"],
    }


__all__ = ["NOTES", "SynthObject", "generate_day", "generate_days", "expected_summary", "expected_totals"]
