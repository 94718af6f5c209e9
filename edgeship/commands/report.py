"""`edgeship report`: Markdown + JSON + PNG charts from a run folder, with device bench results merged in."""

from __future__ import annotations

import argparse

HELP = "write report.md, report.json and PNG charts for a run folder (merge device bench JSONs with --merge)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder (holds metrics.json, bundle/, verify.json, bench.json)")
    parser.add_argument("--merge", action="append", default=[], metavar="BENCH.json",
                        help="a bench JSON from a device (`python -m edgeship.runtime bench --json`); repeatable")
    parser.add_argument("--bundle", help="bundle folder (default: RUN/bundle)")


def run(args: argparse.Namespace) -> int:
    from edgeship.report import build_report

    written = build_report(args.run, merge=args.merge, bundle=args.bundle)
    figures = [name for name, path in written.items() if path.suffix == ".png"]
    print(f"wrote {written['markdown']} ({len(figures)} figures)")
    return 0
