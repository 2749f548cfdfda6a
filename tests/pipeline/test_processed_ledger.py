"""The processed ledger: what counts as done, how a run's rows replace earlier ones."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl

from failmap_assets.pipeline import processed_ledger as L
from failmap_assets.storage.layout import json_key, png_key, safe_name

NOW = datetime(2026, 1, 12, tzinfo=timezone.utc)


def units(rows):
    return pl.DataFrame(rows, schema={"a_key": pl.String, "a_etag": pl.String, "b_key": pl.String, "b_etag": pl.String}, orient="row")


def ledger(rows, outputs=None):
    return pl.DataFrame(
        [
            {"a_key": a, "a_etag": ae, "b_key": b, "b_etag": be, "outcome": "ok", "part_file": "p",
             "wafer_tokens": [], "outputs": (outputs or {}).get(a, []), "dies": 1, "processed_at": NOW, "run_id": "r"}
            for a, ae, b, be in rows
        ],
        schema=L.LEDGER_SCHEMA,
    )


def test_units_with_the_same_identity_are_done_nulls_compare_equal():
    done = ledger([("a1", "e1", None, None), ("a2", "e2", "b2", "f2")])
    todo = L.units_to_do(units([("a1", "e1", None, None), ("a2", "e2", "b2", "f2")]), done)
    assert todo.height == 0


def test_new_etag_late_partner_and_new_key_are_to_do():
    done = ledger([("a1", "e1", None, None), ("a2", "e2", None, None)])
    todo = L.units_to_do(units([("a1", "e1-new", None, None), ("a2", "e2", "b2", "f2"), ("a3", "e3", None, None)]), done)
    assert sorted(todo["a_key"].to_list()) == ["a1", "a2", "a3"]


def test_force_redoes_everything():
    done = ledger([("a1", "e1", None, None)])
    assert L.units_to_do(units([("a1", "e1", None, None)]), done, force=True).height == 1


def test_merge_replaces_rows_of_the_same_a_key():
    old = ledger([("a1", "e1", None, None), ("a2", "e2", None, None)])
    new = ledger([("a1", "e9", "b1", "f1")])
    merged = L.merge(old, new).sort("a_key")
    assert merged.select("a_key", "a_etag", "b_key").rows() == [("a1", "e9", "b1"), ("a2", "e2", None)]


def test_stale_outputs_are_what_a_redone_unit_no_longer_writes():
    old = ledger([("a1", "e1", None, None), ("a2", "e2", None, None)], {"a1": ["x.png", "y.png"], "a2": ["z.png"]})
    new = ledger([("a1", "e9", None, None)], {"a1": ["y.png", "w.png"]})
    assert L.stale_outputs(old, new) == ["x.png"]


def test_rejects_keep_first_seen_and_are_replaced_for_redone_units():
    first = datetime(2026, 1, 11, tzinfo=timezone.utc)
    old = pl.DataFrame(
        [{"key": "k", "etag": "e", "bucket": "a", "member": None, "reason": "bad_row", "detail": "d", "line": 3,
          "severity": "error", "a_key": "k", "first_seen": first, "run_id": "r1"},
         {"key": "gone", "etag": "e", "bucket": "a", "member": None, "reason": "truncated", "detail": "d", "line": None,
          "severity": "error", "a_key": "gone", "first_seen": first, "run_id": "r1"}],
        schema=L.REJECT_SCHEMA,
    )
    new = old.head(1).with_columns(pl.lit(NOW).alias("first_seen"), pl.lit("r2").alias("run_id"))
    merged = L.merge_rejects(old, new, ["k", "gone"])
    assert merged.height == 1
    assert merged.row(0, named=True)["first_seen"] == first


def test_safe_names_never_leave_their_folder_and_never_collide():
    hostile = ["../../etc/passwd", "a/b", "..", ".", "N4A#member name.txt", "ü", "a" * 500]
    names = [safe_name(t) for t in hostile]
    assert all("/" not in n and n not in (".", "..") and len(n) <= 120 for n in names)
    assert len(set(names)) == len(names)
    assert safe_name("N4A123.1_07P") == "N4A123.1_07P"
    assert safe_name("a_b") != safe_name("a/b")
    assert png_key(NOW.date(), "../x").startswith("png/2026-01-12/") and json_key(NOW.date(), "../x").count("/") == 2
