"""Wafer maps from parsed STDF: PRR x/y/hard bin per wafer, retests resolved, WCR orientation.

* One map per wafer (WIR..WRR); a file without WIR gives one wafer named from the MIR.
  Wafers without any die coordinates give no map (final-test files).
* Dies: closed parts (PRR) whose X_COORD and Y_COORD are not -32768; the bin is HARD_BIN.
* Retest rules, per (x, y), in file order:
  ``last`` (default): the last test wins -- but when the file uses the PART_FLG
  supersede bits (bit 0: same PART_ID, bit 1: same X/Y) anywhere, they are honoured:
  a later test replaces the earlier one only if it sets one of them;
  ``first``: the first test wins; ``best``: a passing test beats a failing one;
  ``worst``: a failing test beats a passing one (ties: the later test).
* Pass/fail: PART_FLG bit 3 (0 = pass) unless bit 4 says there is no verdict, else the
  HBR's P/F for the hard bin, else bin 1 passes. ``bin_pass`` holds the verdict per bin.
* Orientation: the canonical frame has x to the right and y downward. WCR POS_X = L
  (positive x to the left) negates x, POS_Y = U (positive y up) negates y; the file's
  coordinates stay in ``orig_x`` / ``orig_y``. WF_FLAT (U/D/L/R) is the flat in the
  drawing, which negating axes does not move, so it becomes ``flat`` as is.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from failmap_assets.wafer.model import FLAT_SIDES, WaferMap
from .tables import STDFData

RETEST_RULES = ("last", "first", "best", "worst")
MISSING_COORD = -32768
_UNIT_MM = {1: 25.4, 2: 10.0, 3: 1.0, 4: 0.0254}


def _stime(t) -> str | None:
    if not t:
        return None
    try:
        return datetime.fromtimestamp(int(t), tz=timezone.utc).strftime("%Y%m%d_%H%M%S")
    except (OverflowError, OSError, ValueError):
        return None


def _bin_info(bins) -> tuple[dict[int, bool], dict[int, str]]:
    """HBR pass/fail and names; the all-heads summary (HEAD_NUM 255) wins over per-site rows."""
    rows = [r for r in bins.to_pylist() if r["bin_type"] == "H" and r["bin_num"] is not None]
    rows.sort(key=lambda r: r["head_num"] == 255)      # summary rows last: they overwrite
    pf: dict[int, bool] = {}
    names: dict[int, str] = {}
    for r in rows:
        if r["bin_pf"] in ("P", "F"):
            pf[r["bin_num"]] = r["bin_pf"] == "P"
        if r["bin_nam"]:
            names[r["bin_num"]] = r["bin_nam"]
    return pf, names


def _winners(x, y, order_pass, sup, rule: str, strict: bool) -> tuple[np.ndarray, np.ndarray]:
    """Row index of the winning test per (x, y) and how many earlier tests each replaced."""
    n = x.shape[0]
    key = (x.astype(np.int64) << 32) | (y.astype(np.int64) & 0xFFFFFFFF)
    pos = np.arange(n)
    srt = np.lexsort((pos, key))               # by die, then file order
    k = key[srt]
    starts = np.flatnonzero(np.concatenate([[True], k[1:] != k[:-1]]))
    sizes = np.diff(np.concatenate([starts, [n]]))
    first_in_group = np.zeros(n, dtype=bool)
    first_in_group[starts] = True
    if rule == "first":
        score = -pos[srt]
    elif rule == "last":
        if strict:
            cand = first_in_group | sup[srt]
            score = np.where(cand, pos[srt], -1)
        else:
            score = pos[srt]
    elif rule == "best":
        score = order_pass[srt].astype(np.int64) * (n + 1) + pos[srt]
    elif rule == "worst":
        score = (~order_pass[srt]).astype(np.int64) * (n + 1) + pos[srt]
    else:
        raise ValueError(f"retest_rule must be one of {RETEST_RULES}, not {rule!r}")
    best = np.maximum.reduceat(score, starts)
    # position in srt of the best score within each group
    is_best = score == np.repeat(best, sizes)
    grp = np.repeat(np.arange(starts.shape[0]), sizes)
    pick = np.full(starts.shape[0], -1, dtype=np.int64)
    idx = np.flatnonzero(is_best)
    pick[grp[idx][::-1]] = idx[::-1]           # first occurrence per group
    winners = srt[pick]
    order = np.argsort(winners, kind="stable")  # keep file order of the winners
    return winners[order], (sizes - 1)[order].astype(np.int16)


def wafer_maps(data: STDFData, retest_rule: str = "last") -> list[WaferMap]:
    """One ``WaferMap`` (format ``"stdf"``) per wafer with dies; see the module docstring."""
    return tables_wafer_maps(data.tables, file_id=data.file_id, name=data.name, retest_rule=retest_rule)


def tables_wafer_maps(t: dict[str, pa.Table], *, file_id: str, name: str, retest_rule: str = "last") -> list[WaferMap]:
    """``wafer_maps`` of one file's tables (``files``, ``wafers``, ``parts``, ``bins``), e.g.
    as a day's commit holds them: the same maps as from the parsed file."""
    if retest_rule not in RETEST_RULES:
        raise ValueError(f"retest_rule must be one of {RETEST_RULES}, not {retest_rule!r}")
    mir = t["files"].to_pylist()[0]
    parts = t["parts"]
    wafers = t["wafers"].to_pylist()
    closed = parts["prr_rec_idx"].is_valid().to_numpy(zero_copy_only=False).astype(bool)
    xs = parts["x_coord"].fill_null(MISSING_COORD).to_numpy().astype(np.int32)
    ys = parts["y_coord"].fill_null(MISSING_COORD).to_numpy().astype(np.int32)
    hb = parts["hard_bin"].fill_null(0).to_numpy().astype(np.int32)
    flg = parts["part_flg"].fill_null(0).to_numpy().astype(np.int64)
    wid = parts["wafer_idx"].fill_null(-1).to_numpy().astype(np.int64)
    has_xy = closed & (xs != MISSING_COORD) & (ys != MISSING_COORD)
    hbr_pf, bin_names = _bin_info(t["bins"])
    strict = bool(((flg[closed] & 0b11) != 0).any())
    # per-row verdict
    verdict_valid = (flg & 0b1_0000) == 0
    hbr_pass = np.array([hbr_pf.get(int(b), b == 1) for b in hb], dtype=bool) if hb.size else np.zeros(0, bool)
    is_pass = np.where(verdict_valid, (flg & 0b1000) == 0, hbr_pass)
    sup = (flg & 0b11) != 0

    real_wafers = [w for w in wafers if w["wir_rec_idx"] is not None or w["wrr_rec_idx"] is not None]
    groups: list[tuple[dict | None, np.ndarray]] = []
    if real_wafers:
        unassigned = has_xy & (wid < 0)
        for w in real_wafers:
            sel = has_xy & (wid == w["wafer_idx"])
            if len(real_wafers) == 1:
                sel = sel | unassigned          # PRRs before the WIR / after the WRR of the only wafer
            groups.append((w, sel))
    else:
        groups.append((wafers[0] if wafers else None, has_xy))

    out = []
    for w, sel in groups:
        rows = np.flatnonzero(sel)
        if rows.size == 0:
            continue
        win, retests = _winners(xs[rows], ys[rows], is_pass[rows], sup[rows], retest_rule, strict)
        r = rows[win]
        ox, oy = xs[r], ys[r]
        wcr = w or {}
        pos_x, pos_y = (wcr.get("pos_x") or " "), (wcr.get("pos_y") or " ")
        x = -ox if pos_x == "L" else ox.copy()
        y = -oy if pos_y == "U" else oy.copy()
        flipped = pos_x == "L" or pos_y == "U"
        flat = wcr.get("wf_flat")
        extra = {"file_id": file_id, "source": name, "retest_rule": retest_rule,
                 "supersede_bits": "honoured" if strict else "unused",
                 "wcr_wf_flat": str(flat), "wcr_pos_x": str(wcr.get("pos_x")), "wcr_pos_y": str(wcr.get("pos_y"))}
        for k in ("wafr_siz", "wf_units", "die_ht", "die_wid", "center_x", "center_y"):
            if wcr.get(k) is not None:
                extra[f"wcr_{k}"] = str(wcr[k])
        for k in ("sblot_id", "job_nam", "job_rev", "tstr_typ", "exec_typ", "facil_id"):
            if mir.get(k):
                extra[f"mir_{k}"] = str(mir[k])
        if w is not None:
            extra["wafer_idx"] = str(w["wafer_idx"])
        if flat not in FLAT_SIDES:
            extra["flat_unknown"] = "true"
            flat = "D"
        die_size = None
        unit = _UNIT_MM.get(wcr.get("wf_units") or 0)
        if unit and (wcr.get("die_wid") or 0) > 0 and (wcr.get("die_ht") or 0) > 0:
            die_size = (float(wcr["die_wid"]) * unit, float(wcr["die_ht"]) * unit)
        origin = None
        cx, cy = wcr.get("center_x"), wcr.get("center_y")
        if cx is not None and cy is not None and cx != MISSING_COORD and cy != MISSING_COORD:
            origin = (-cx if pos_x == "L" else cx, -cy if pos_y == "U" else cy)
        bins = hb[r]
        # pass/fail per bin: the PART_FLG verdict when every die of the bin has one and they agree
        bin_pass: dict[int, bool] = {}
        for b in np.unique(bins).tolist():
            m = bins == b
            vv = verdict_valid[r][m]
            if vv.all():
                vals = set(((flg[r][m] & 0b1000) == 0).tolist())
                if len(vals) == 1:
                    bin_pass[b] = vals.pop()
                    continue
                extra[f"bin_{b}_mixed_verdicts"] = "true"
            if b in hbr_pf:
                bin_pass[b] = hbr_pf[b]
        wafer_id = None
        if w is not None:
            wafer_id = w.get("wafer_id") or w.get("wrr_wafer_id")
        stime = _stime((w or {}).get("start_t")) or _stime(mir.get("start_t"))
        out.append(WaferMap(
            format="stdf", x=x.astype(np.int32), y=y.astype(np.int32), bin=bins.astype(np.int32),
            retest_count=retests, lot=mir.get("lot_id") or None, wafer=wafer_id or None,
            product=mir.get("part_typ") or None, step=mir.get("test_cod") or None,
            tester=mir.get("node_nam") or mir.get("tstr_typ") or None, partid=None, stime=stime, flat=flat,
            die_size=die_size, origin=origin, bin_pass=bin_pass,
            bin_names={b: n for b, n in bin_names.items()}, extra=extra,
            orig_x=ox.astype(np.int32) if flipped else None, orig_y=oy.astype(np.int32) if flipped else None,
            rows_read=int(rows.size)))
    return out
