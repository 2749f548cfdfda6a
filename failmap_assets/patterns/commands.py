"""The `failmap patterns ...` commands; cli.py only calls ``add_patterns_parser``.

``add_patterns_parser(sub)`` makes the ``patterns`` group and returns its
sub-parsers, so further commands (``similar``) register beside ``evaluate``.
"""

from __future__ import annotations

import argparse


def add_patterns_parser(sub) -> argparse._SubParsersAction:
    group = sub.add_parser("patterns", help="wafer-map patterns: WM-811K labels, similar wafers, evaluation")
    patterns = group.add_subparsers(dest="patterns_command", required=True, help="what to do with wafer-map patterns")
    p = patterns.add_parser("evaluate", help="label labelled maps (WM-811K JSON Lines) and score labels and "
                                             "5 nearest neighbours; last line: patterns: accuracy_macro=.. "
                                             "knn5_macro=.. n=..")
    p.add_argument("--test", required=True, help="labelled maps to score (JSON Lines, ../shared/testdata/wm811k format)")
    p.add_argument("--train", default=None, help="labelled maps added to the shipped reference set of the neighbour query")
    p.add_argument("--by-lot", action="store_true",
                   help="leave one lot out: for each lot of --test, the other lots of --test join the reference set; "
                        "and the classifier's training; prints each lot's labels, then the figures over all maps")
    p.add_argument("--no-retrain", action="store_true",
                   help="with --by-lot: keep the shipped classifier (only the reference set changes per lot)")
    p.set_defaults(func=cmd_evaluate)
    return patterns


def cmd_evaluate(args) -> int:
    from failmap_assets.patterns.evaluate import (
        evaluate, leave_one_lot_out, report_lines, synthetic_reference, with_maps)
    from failmap_assets.patterns.wm811k import read_labelled_maps

    test = read_labelled_maps(args.test)
    train = read_labelled_maps(args.train) if args.train else []
    if not args.by_lot:
        ev = evaluate(test, with_maps(synthetic_reference(), train))
        print("\n".join(report_lines(ev)))
        return 0
    per_lot, overall = leave_one_lot_out(test, train, retrain=not args.no_retrain)
    for lot, held, ev in per_lot:
        print(f"lot {lot}: " + ", ".join(f"{m.id}:{m.label}->{p}" for m, p in zip(held, ev.predicted)))
    print("\n".join(report_lines(overall)))
    return 0
