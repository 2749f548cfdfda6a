"""Synthetic STDF V4 wafer-sort files, shaped like a real multi-site prober/tester run.

Record sequence::

    FAR MIR SDR WIR
      per touchdown: PIR x sites, then per test PTR/MPR/FTR x sites, then PRR x sites
      (re-test touchdowns at the end, PRR.PART_FLG marking the same X/Y superseded)
    WRR WCR HBR... SBR... PCR... TSR... MRR

The first PTR/MPR of each test carries limits, units and formats; later ones stop
right after ALARM_ID (or right after RESULT, chosen per file) as real testers do, so
their REC_LEN is shorter. Dies, bins and spatial patterns come from wafer_shapes, so
an STDF wafer map looks like a fail map of the same kind.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from failmap_synth import compression
from failmap_synth.rng import rng_for
from failmap_synth.stdf_records import CPU_TYPE, Rows, encode, hstack, record
from failmap_synth.wafer_shapes import (PASS_BIN, Product, generate_wafer, product_for_dies,
                                               product_grid)

HEAD = 1
# Hard bins group soft bins the way a handler sorts parts.
_HARD_OF = {"OPEN": 5, "SHORT": 5, "CONTINUITY": 5, "LEAKAGE_HI": 5, "IDDQ_FAIL": 5,
            "SCAN_FAIL": 6, "MBIST_FAIL": 6, "FMAX_LOW": 6, "CONTACT_RETRY": 8}
_HARD_NAMES = {1: "PASS", 2: "PASS_LOWGRADE", 5: "FAIL_DC", 6: "FAIL_FUNC", 7: "FAIL_PARAM",
               8: "FAIL_CONTACT"}
# Unit, typical value, sd, display scale exponent (RES_SCAL) per parametric kind.
_UNITS = (("V", 0.8, 0.01, 3), ("A", 2e-6, 2e-7, 6), ("Hz", 1.35e9, 2.5e7, -6),
          ("Ohm", 85.0, 2.0, 0), ("V", 1.8, 0.02, 3), ("s", 3e-8, 1e-9, 9))


@dataclass(frozen=True)
class StdfFile:
    data: bytes                 # the file (gzip'd when asked)
    counts: dict[str, int]      # records written per type
    truncated: dict[str, int]   # PTR/MPR/FTR records written without their optional tail
    sites: int
    stop_on_fail: bool
    ptr_tail: str               # "text": later PTRs end after ALARM_ID; "bare": after RESULT


def _die_layout(dies: int) -> tuple[Product, np.ndarray]:
    """A product with at least ``dies`` dies and the ``dies`` closest to the centre."""
    for factor in (1.03, 1.08, 1.2, 1.5, 2.0):
        product = product_for_dies(max(1, int(math.ceil(dies * factor))))
        g = product_grid(product)
        if g.n >= dies:
            break
    else:  # pragma: no cover - the die fit is within a few percent
        raise AssertionError(f"no grid with {dies} dies")
    keep = np.sort(np.argsort(g.r, kind="stable")[:dies])  # stepping order preserved
    return product, keep


@dataclass
class _Tests:
    kind: np.ndarray     # "P", "M", "F"
    num: np.ndarray
    name: list[str]
    fail_bin: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    unit: list[str]
    scal: np.ndarray
    pins: np.ndarray


def _tests(product: Product, n: int, rng: np.random.Generator) -> _Tests:
    kind = np.full(n, "P")
    # Functional (FTR) and multi-pin (MPR) tests spread through the flow.
    kind[np.linspace(1, n - 1, max(1, n // 25), dtype=int)] = "F"
    kind[np.linspace(2, n - 2, max(1, n // 20), dtype=int)] = "M"
    fails = product.fail_bins
    fail_bin = np.array([fails[t % len(fails)].number for t in range(n)])
    names = [f"{fails[t % len(fails)].name.split('_')[0].lower()}_{kind[t].lower()}{t:03d}" for t in range(n)]
    u = rng.integers(0, len(_UNITS), n)
    mean = np.array([_UNITS[i][1] for i in u]) * rng.uniform(0.8, 1.2, n)
    sd = np.array([_UNITS[i][2] for i in u]) * rng.uniform(0.7, 1.3, n)
    width = rng.uniform(4.0, 6.0, n)
    return _Tests(kind=kind, num=1000 + 10 * np.arange(n), name=names, fail_bin=fail_bin,
                  lo=mean - width * sd, hi=mean + width * sd, mean=mean, sd=sd,
                  unit=[_UNITS[i][0] for i in u], scal=np.array([_UNITS[i][3] for i in u]),
                  pins=rng.integers(2, 7, n))


def _hard_bin(product: Product, soft: np.ndarray) -> np.ndarray:
    names = {b.number: b.name for b in product.bindefs}
    table = {s: (s if s in (1, 2) else _HARD_OF.get(names.get(s, ""), 7)) for s in np.unique(soft).tolist()}
    return np.array([table[s] for s in soft.tolist()], np.int64) if soft.size else soft


def build_wafer_sort(seed: int, *, endian: str = "<", dies: int = 1000, tests_per_die: int = 50,
                     lot_id: str = "N4A123.1", wafer_id: str = "01", part_type: str | None = None,
                     start_time: int = 1768141825, node_name: str = "T5503-01",
                     sites: int | None = None, stop_on_fail: bool | None = None,
                     ptr_tail: str | None = None, retests: int | None = None,
                     gzip_output: bool = False) -> StdfFile:
    """A wafer-sort STDF file and the record counts written (see make_wafer_sort_stdf)."""
    if endian not in CPU_TYPE:
        raise ValueError("endian must be '<' or '>'")
    if dies < 1 or tests_per_die < 3:
        raise ValueError("need at least 1 die and 3 tests per die")
    rng = rng_for(seed)
    S = int(sites if sites is not None else rng.choice([1, 2, 4], p=[0.4, 0.3, 0.3]))
    stop = bool(stop_on_fail if stop_on_fail is not None else rng.random() < 0.6)
    tail_mode = ptr_tail or str(rng.choice(["text", "bare"]))
    if tail_mode not in ("text", "bare"):
        raise ValueError("ptr_tail must be 'text' or 'bare'")

    product, keep = _die_layout(dies)
    g = product_grid(product)
    wafer = generate_wafer(product, rng)
    soft_die = wafer.final()[2][keep]
    x_die, y_die = g.x[keep], g.y[keep]
    T = int(tests_per_die)
    tests = _tests(product, T, rng)

    # Which test each die fails (-1: passes); re-tests appended as extra parts.
    pass_bins = [b.number for b in product.pass_bins]

    def failing_test(soft: np.ndarray) -> np.ndarray:
        ft = np.full(soft.size, -1)
        for b in np.unique(soft[~np.isin(soft, pass_bins)]).tolist():
            idx = np.flatnonzero(soft == b)
            cands = np.flatnonzero(tests.fail_bin == b)
            cands = cands if cands.size else np.arange(T)
            ft[idx] = cands[rng.integers(0, cands.size, idx.size)]
        return ft

    fail_die = failing_test(soft_die)
    n_rt = int(retests if retests is not None else min(np.sum(fail_die >= 0), rng.integers(0, 6)))
    failing = np.flatnonzero(fail_die >= 0)
    rt_die = np.sort(rng.choice(failing, size=min(n_rt, failing.size), replace=False)) if n_rt else \
        np.empty(0, np.int64)
    recovered = rng.random(rt_die.size) < 0.55
    part_die = np.concatenate([np.arange(dies), rt_die])
    part_soft = np.concatenate([soft_die, np.where(recovered, PASS_BIN.number, soft_die[rt_die])])
    part_fail = np.concatenate([fail_die, np.where(recovered, -1, fail_die[rt_die])])
    part_retest = np.concatenate([np.zeros(dies, bool), np.ones(rt_die.size, bool)])
    P = part_die.size
    part_hard = _hard_bin(product, part_soft)

    t_idx = np.arange(T)[None, :]
    executed = np.ones((P, T), bool)
    if stop:
        executed = (part_fail[:, None] < 0) | (t_idx <= part_fail[:, None])
    failed = t_idx == part_fail[:, None]

    # PTR results: inside the limits unless this is the die's failing test.
    z = rng.standard_normal((P, T))
    res = tests.mean + np.clip(z, -3.5, 3.5) * tests.sd
    above = rng.random((P, T)) < 0.5
    outside = np.where(above, tests.hi + tests.sd * rng.uniform(0.5, 3, (P, T)),
                       tests.lo - tests.sd * rng.uniform(0.5, 3, (P, T)))
    res = np.where(failed, outside, res).astype(np.float32)

    # Touchdowns: S neighbouring parts at once; re-tests get touchdowns of their own.
    def touchdowns(parts: np.ndarray) -> np.ndarray:
        n_td = math.ceil(parts.size / S)
        td = np.full(n_td * S, -1)
        td[: parts.size] = parts
        return td.reshape(n_td, S)

    layout = np.vstack([touchdowns(np.arange(dies)), touchdowns(np.arange(dies, P))]) if P > dies \
        else touchdowns(np.arange(dies))
    has = layout >= 0
    safe = np.where(has, layout, 0)
    n_td = layout.shape[0]

    counts: Counter[str] = Counter()
    truncated: Counter[str] = Counter()

    # Drawn up front for all touchdowns, so the bytes do not depend on how we slice them.
    first: list[tuple[int, int]] = []  # (touchdown, site) of each test's first record
    for t in range(T):
        flat = np.flatnonzero((has & executed[safe, t]).ravel())  # file order: touchdown, then site
        first.append((int(flat[0] // S), int(flat[0] % S)) if flat.size else (-1, -1))
    pins = {t: int(tests.pins[t]) for t in range(T) if tests.kind[t] == "M"}
    mpr_stat = {t: rng.integers(0, 2, (n_td, S, k)) for t, k in pins.items()}
    mpr_res = {t: (res[safe, t][..., None] * rng.uniform(0.98, 1.02, (n_td, S, k))).astype(np.float32)
               for t, k in pins.items()}
    cycles = rng.integers(10_000, 500_000, T)
    n_exec = executed.sum(axis=1)
    test_ms = np.rint(n_exec * rng.uniform(1.5, 3.0, P)).astype(np.int64)
    part_flag = (np.where(part_fail >= 0, 0x08, 0) | np.where(part_retest, 0x02, 0)).astype(np.uint8)
    text_tail = "OPT_FLAG" if tail_mode == "text" else "TEST_TXT"

    def section(a: int, b: int) -> bytes:
        """Touchdowns a..b-1. Only the few touchdowns holding a test's first record
        need the full-width layout; slicing them apart keeps the byte matrix narrow."""
        m, rows_ = b - a, slice(a, b)
        blocks: list[Rows] = []

        def add(block: Rows, name: str, full: np.ndarray | None = None) -> None:
            blocks.append(block)
            present = block.mask[:, 0]
            counts[name] += int(present.sum())
            if full is not None:
                truncated[name] += int((present & ~full).sum())

        has_, safe_ = has[rows_], safe[rows_]
        for s in range(S):
            add(encode("PIR", endian, m, present=has_[:, s], HEAD_NUM=HEAD, SITE_NUM=s + 1), "PIR")
        for t in range(T):
            ex = has_ & executed[safe_, t]
            flg = np.where(failed[safe_, t], 0x80, 0).astype(np.uint8)
            for s in range(S):
                full = np.zeros(m, bool)
                if first[t][1] == s and a <= first[t][0] < b:
                    full[first[t][0] - a] = True
                common = dict(TEST_NUM=int(tests.num[t]), HEAD_NUM=HEAD, SITE_NUM=s + 1, TEST_FLG=flg[:, s])
                if tests.kind[t] == "P":
                    add(encode("PTR", endian, m, present=ex[:, s], tail_from=text_tail, keep_tail=full,
                               PARM_FLG=0, RESULT=res[safe_[:, s], t], TEST_TXT=tests.name[t],
                               OPT_FLAG=0x0E, RES_SCAL=int(tests.scal[t]), LLM_SCAL=int(tests.scal[t]),
                               HLM_SCAL=int(tests.scal[t]), LO_LIMIT=float(tests.lo[t]),
                               HI_LIMIT=float(tests.hi[t]), UNITS=tests.unit[t], C_RESFMT="%9.4f",
                               C_LLMFMT="%9.4f", C_HLMFMT="%9.4f", **common), "PTR", full)
                elif tests.kind[t] == "M":
                    k = pins[t]
                    add(encode("MPR", endian, m, present=ex[:, s], tail_from=text_tail, keep_tail=full,
                               PARM_FLG=0, RTN_ICNT=k, RSLT_CNT=k, RTN_STAT=mpr_stat[t][rows_, s],
                               RTN_RSLT=mpr_res[t][rows_, s], TEST_TXT=tests.name[t], OPT_FLAG=0x0E,
                               LO_LIMIT=float(tests.lo[t]), HI_LIMIT=float(tests.hi[t]), START_IN=0.0,
                               INCR_IN=0.0, RTN_INDX=np.arange(1, k + 1), UNITS=tests.unit[t], UNITS_IN="V",
                               C_RESFMT="%9.4f", C_LLMFMT="%9.4f", C_HLMFMT="%9.4f", **common), "MPR", full)
                else:
                    # pystdf cannot read an FTR cut before its arrays: cut after them.
                    add(encode("FTR", endian, m, present=ex[:, s], tail_from="FAIL_PIN", keep_tail=full,
                               OPT_FLAG=0x12, CYCL_CNT=int(cycles[t]), REPT_CNT=1,
                               NUM_FAIL=np.where(flg[:, s] > 0, 1 + (t % 7), 0), VECT_NAM=tests.name[t],
                               TIME_SET="ts1", TEST_TXT=tests.name[t], PATG_NUM=255, **common), "FTR", full)
        for s in range(S):
            p = safe_[:, s]
            add(encode("PRR", endian, m, present=has_[:, s], HEAD_NUM=HEAD, SITE_NUM=s + 1,
                       PART_FLG=part_flag[p], NUM_TEST=n_exec[p], HARD_BIN=part_hard[p], SOFT_BIN=part_soft[p],
                       X_COORD=x_die[part_die[p]], Y_COORD=y_die[part_die[p]], TEST_T=test_ms[p],
                       PART_ID=[str(i + 1) for i in p.tolist()]), "PRR")
        return hstack(blocks).tobytes()

    special = sorted({r for r, _ in first if r >= 0})
    cuts = sorted({0, n_td, *special, *(r + 1 for r in special)})
    body = b"".join(section(a, b) for a, b in zip(cuts, cuts[1:]))

    # Final result per die: a re-test supersedes the first touch.
    final_soft = soft_die.copy()
    final_soft[rt_die] = part_soft[dies:]
    final_hard = _hard_bin(product, final_soft)
    good = int(np.isin(final_soft, pass_bins).sum())
    finish = start_time + int(test_ms.sum() // 1000 // S) + 60
    part_type = part_type or product.name

    def rec(name: str, **v) -> bytes:
        counts[name] += 1
        return record(name, endian, **v)

    head = [
        rec("FAR", CPU_TYPE=CPU_TYPE[endian], STDF_VER=4),
        rec("MIR", SETUP_T=start_time - 600, START_T=start_time, STAT_NUM=1, MODE_COD="P", BURN_TIM=65535,
            LOT_ID=lot_id, PART_TYP=part_type, NODE_NAM=node_name, TSTR_TYP="J750", JOB_NAM=f"{part_type}_CP1",
            JOB_REV="1.2", OPER_NAM="op7", EXEC_TYP="IG-XL", EXEC_VER="9.0", TEST_COD="CP1", TST_TEMP="25",
            FACIL_ID="FAB4", FLOW_ID="P"),
        rec("SDR", HEAD_NUM=HEAD, SITE_GRP=1, SITE_CNT=S, SITE_NUM=np.arange(1, S + 1), HAND_TYP="prober",
            HAND_ID="UF3000-02", CARD_ID=f"PC-{4000 + S}"),
        rec("WIR", HEAD_NUM=HEAD, SITE_GRP=255, START_T=start_time, WAFER_ID=wafer_id),
    ]
    tail = [
        rec("WRR", HEAD_NUM=HEAD, SITE_GRP=255, FINISH_T=finish, PART_CNT=P, RTST_CNT=P - dies, ABRT_CNT=0,
            GOOD_CNT=good, FUNC_CNT=4294967295, WAFER_ID=wafer_id),
        rec("WCR", WAFR_SIZ=float(product.wafer_mm), DIE_HT=product.die_h_mm, DIE_WID=product.die_w_mm,
            WF_UNITS=3, WF_FLAT=product.flat, CENTER_X=g.origin[0], CENTER_Y=g.origin[1], POS_X="R", POS_Y="D"),
    ]
    for h in np.unique(final_hard).tolist():
        tail.append(rec("HBR", HEAD_NUM=255, SITE_NUM=0, HBIN_NUM=h, HBIN_CNT=int((final_hard == h).sum()),
                        HBIN_PF="P" if h in (1, 2) else "F", HBIN_NAM=_HARD_NAMES.get(h, "FAIL")))
    names = {b.number: b for b in product.bindefs}
    for sb in np.unique(final_soft).tolist():
        b = names.get(sb)
        tail.append(rec("SBR", HEAD_NUM=255, SITE_NUM=0, SBIN_NUM=sb, SBIN_CNT=int((final_soft == sb).sum()),
                        SBIN_PF=b.pf if b else "F", SBIN_NAM=b.name if b else f"BIN{sb}"))
    site_of = np.empty(P, np.int64)
    site_of[layout[has]] = np.nonzero(has)[1]
    for s in [*range(S), None]:
        sel = np.ones(P, bool) if s is None else site_of == s
        tail.append(rec("PCR", HEAD_NUM=255 if s is None else HEAD, SITE_NUM=0 if s is None else s + 1,
                        PART_CNT=int(sel.sum()), RTST_CNT=int((sel & part_retest).sum()), ABRT_CNT=0,
                        GOOD_CNT=int((sel & (part_fail < 0)).sum()), FUNC_CNT=4294967295))
    for t in range(T):
        ex = executed[:, t]
        v = res[ex, t].astype(np.float64)
        is_p = tests.kind[t] == "P" and v.size > 0
        tail.append(rec("TSR", HEAD_NUM=255, SITE_NUM=0, TEST_TYP=str(tests.kind[t]), TEST_NUM=int(tests.num[t]),
                        EXEC_CNT=int(ex.sum()), FAIL_CNT=int(failed[:, t].sum()), ALRM_CNT=0,
                        TEST_NAM=tests.name[t], SEQ_NAME="main", OPT_FLAG=0x04 if is_p else 0x37,
                        TEST_MIN=float(v.min()) if is_p else 0.0, TEST_MAX=float(v.max()) if is_p else 0.0,
                        TST_SUMS=float(v.sum()) if is_p else 0.0, TST_SQRS=float((v * v).sum()) if is_p else 0.0))
    tail.append(rec("MRR", FINISH_T=finish, DISP_COD=" "))
    data = b"".join(head) + body + b"".join(tail)
    if gzip_output:
        data = compression.gzip_bytes(data, mtime=start_time)
    return StdfFile(data=data, counts=dict(counts), truncated=dict(truncated), sites=S, stop_on_fail=stop,
                    ptr_tail=tail_mode)


def make_wafer_sort_stdf(seed: int, *, endian: str = "<", dies: int = 1000, tests_per_die: int = 50,
                         lot_id: str = "N4A123.1", wafer_id: str = "01", part_type: str | None = None,
                         start_time: int = 1768141825, node_name: str = "T5503-01",
                         sites: int | None = None, stop_on_fail: bool | None = None,
                         ptr_tail: str | None = None, retests: int | None = None,
                         gzip_output: bool = False) -> bytes:
    """The bytes of a synthetic wafer-sort STDF V4 file.

    ``endian`` "<" (CPU_TYPE 2) or ">" (CPU_TYPE 1); ``dies`` parts on the wafer
    (plus ``retests`` re-tested ones, default 0..5); ``tests_per_die`` tests in the
    flow (PTR mostly, 1 in 20 MPR, 1 in 25 FTR); ``sites`` 1, 2 or 4 (default drawn
    from the seed); ``stop_on_fail`` skips the rest of the flow after a failing test;
    ``ptr_tail`` "text" or "bare" (where later PTRs end); times are epoch seconds.
    """
    return build_wafer_sort(seed, endian=endian, dies=dies, tests_per_die=tests_per_die, lot_id=lot_id,
                            wafer_id=wafer_id, part_type=part_type, start_time=start_time,
                            node_name=node_name, sites=sites, stop_on_fail=stop_on_fail, ptr_tail=ptr_tail,
                            retests=retests, gzip_output=gzip_output).data
