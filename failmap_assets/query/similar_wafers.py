"""``failmap patterns similar WAFER_TOKEN [--product P] [--step S] [-k 10]``: the wafers
whose maps look most like this one, from the products' serving pattern indexes."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from failmap_assets.pipeline.pattern_index import IndexVersion, indexed_products, load_index
from failmap_assets.storage.object_store import ObjectStore

HEADERS = ("rank", "similarity", "distance", "day", "product", "step", "lot", "wafer", "wafer_token", "label")


def add_similar_parser(patterns: argparse._SubParsersAction) -> None:
    p = patterns.add_parser("similar", help="the indexed wafers most similar to a wafer (any lot, any day)")
    p.add_argument("wafer_token", help="the wafer token (its latest indexed test event is the query)")
    p.add_argument("--product", default=None, help="only this product's index (default: the wafer's)")
    p.add_argument("--step", default=None, help="only wafers of this test step")
    p.add_argument("-k", type=int, default=10, help="how many similar wafers (default: 10)")
    p.set_defaults(func=cmd_similar)


def find_wafer(store: ObjectStore, token: str, product: str | None) -> tuple[IndexVersion, int] | None:
    """The index holding the wafer and the row of its latest indexed test event."""
    best = None
    for name in ([product] if product else indexed_products(store)):
        version = load_index(store, name)
        if version is None:
            continue
        hits = np.flatnonzero((version.rows["wafer_token"] == token).fill_null(False).to_numpy())
        if len(hits):
            # rows are sorted by day, so the last hit is the latest day; within it, the latest time
            row = max(hits, key=lambda r: (version.rows["day"][int(r)], version.rows["file_time"][int(r)] or 0))
            key = (version.rows["day"][int(row)], name)
            if best is None or key > best[0]:
                best = (key, version, int(row))
    return None if best is None else (best[1], best[2])


def similar_rows(version: IndexVersion, row: int, k: int, step: str | None) -> list[tuple]:
    """The k most similar other wafers (the same physical wafer left out), best first."""
    rows = version.rows
    mask = version.mask(step=step)
    me = rows.row(row, named=True)
    same = ((rows["wafer_token"] == me["wafer_token"]).fill_null(False)
            | ((rows["lot"] == me["lot"]) & (rows["wafer"] == me["wafer"]) & (rows["source"] == me["source"]))
            .fill_null(False)).to_numpy()
    mask &= ~same
    found, sims = version.index.search(version.embeddings[row].astype(np.float32), k, mask)
    out = []
    for rank, (r, s) in enumerate(zip(found, sims), 1):
        n = rows.row(int(r), named=True)
        out.append((rank, f"{s:.4f}", f"{1 - s:.4f}", n["day"], n["product"], n["step"], n["lot"], n["wafer"],
                    n["wafer_token"], n["label"]))
    return out


def cmd_similar(args) -> int:
    from failmap_assets.settings import Settings
    from failmap_assets.storage.locations import open_store

    s = Settings.from_env()
    store = open_store(s.output, endpoint_url=s.s3_endpoint_url or None, region=s.aws_region or None)
    found = find_wafer(store, args.wafer_token, args.product)
    if found is None:
        where = f"the {args.product!r} index" if args.product else "any product's pattern index"
        print(f"{args.wafer_token!r} is not in {where} (not signed yet, too small to classify, or the index "
              "not rebuilt since)", file=sys.stderr)
        return 1
    version, row = found
    me = version.rows.row(row, named=True)
    print(f"{me['wafer_token']}: {me['label']} ({me['confidence']:.2f}), product {version.product}, step {me['step']}, "
          f"day {me['day']}; index {version.version} ({version.rows.height} wafers)")
    table = similar_rows(version, row, args.k, args.step)
    widths = [max(len(str(h)), *(len(str(r[i])) for r in table)) if table else len(h) for i, h in enumerate(HEADERS)]
    print("  ".join(h.ljust(w) for h, w in zip(HEADERS, widths)))
    for r in table:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)))
    return 0
