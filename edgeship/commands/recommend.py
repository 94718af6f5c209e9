"""`edgeship recommend RUN`: per machine, the fastest artifact that passed the parity gates and that machine's selftest."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "per machine (workstation and devices), the fastest artifact × backend × delegate × threads that passed parity and selftest"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder (verify.json, bench.json, devices/NAME/ from `edgeship device run`)")
    parser.add_argument("--max-latency-ms", type=float, help="exclude candidates whose p99 exceeds this")
    parser.add_argument("--min-agreement", type=float, help="exclude artifacts whose top-1 agreement (parity or selftest) is below this fraction, e.g. 0.995")
    parser.add_argument("--batch", type=int, default=1, help="the batch size to choose for (default 1)")
    parser.add_argument("--prefer", choices=("latency", "throughput", "size"), default="latency",
                        help="rank by p50 latency (default), images per second, or file size")
    parser.add_argument("--merge", action="append", default=[], metavar="BENCH.json", help="a device bench JSON from elsewhere (repeatable)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the recommendation as JSON")


def run(args: argparse.Namespace) -> int:
    import sys

    from edgeship.files import atomic_write_json, check_writable
    from edgeship.recommend import format_recommendations, recommend

    if args.json:
        check_writable(args.json)
    recommendations = recommend(args.run, args.max_latency_ms, args.min_agreement, args.batch, args.prefer, args.merge)
    print(format_recommendations(recommendations, args.batch, args.prefer), end="")
    if args.json:
        atomic_write_json(args.json, [rec.to_dict() for rec in recommendations])
    if not any(rec.choice for rec in recommendations):
        print("edgeship: error: no machine has a candidate that meets every condition (see the exclusions above)", file=sys.stderr)
        return 1
    return 0
