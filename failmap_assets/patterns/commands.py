"""The `failmap patterns ...` commands; cli.py only calls ``add_patterns_parser``.

``add_patterns_parser(sub)`` makes the ``patterns`` group and returns its
sub-parsers, so further commands (``similar``) register beside ``evaluate``.
"""

from __future__ import annotations

import argparse


def add_patterns_parser(sub) -> argparse._SubParsersAction:
    group = sub.add_parser("patterns", help="wafer-map patterns: WM-811K labels, similar wafers, evaluation")
    patterns = group.add_subparsers(dest="patterns_command", required=True)
    p = patterns.add_parser("evaluate", help="label labelled maps (WM-811K JSON Lines) and score labels and "
                                             "5 nearest neighbours; last line: patterns: accuracy_macro=.. "
                                             "knn5_macro=.. n=..")
    p.add_argument("--test", required=True, help="labelled maps to score (JSON Lines, ../shared/testdata/wm811k format)")
    p.add_argument("--train", default=None, help="labelled maps added to the shipped reference set of the neighbour query")
    p.add_argument("--by-lot", action="store_true",
                   help="leave one lot out: for each lot of --test, the other lots of --test join the reference set; "
                        "prints each lot's line, then the figures over all maps")
    p.set_defaults(func=cmd_evaluate)
    return patterns


def cmd_evaluate(args) -> int:
    from failmap_assets.patterns.evaluate import evaluate, report_lines, synthetic_reference, with_maps
    from failmap_assets.patterns.wm811k import read_labelled_maps

    test = read_labelled_maps(args.test)
    train = read_labelled_maps(args.train) if args.train else []
    base = synthetic_reference()
    if not args.by_lot:
        ev = evaluate(test, with_maps(base, train))
        print("\n".join(report_lines(ev)))
        return 0
    # Leave one lot out: every map is scored once, with its own lot out of the reference.
    from failmap_assets.patterns.evaluate import merge_lot_evaluations

    per_lot = []
    for lot in sorted({m.lot for m in test}):
        held = [m for m in test if m.lot == lot]
        rest = [m for m in test if m.lot != lot]
        ev = evaluate(held, with_maps(base, list(train) + rest))
        per_lot.append(ev)
        got = ", ".join(f"{m.id}:{m.label}->{p}" for m, p in zip(held, ev.predicted))
        print(f"lot {lot}: {got}")
    print("\n".join(report_lines(merge_lot_evaluations(per_lot))))
    return 0
