"""`edgeship bench`: latency and throughput of a bundle's artifacts through the runtime's own timing loop."""

from __future__ import annotations

import argparse

HELP = "latency (p50/p90/p99) and throughput of every artifact per backend, threads and batch size; --json for the report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgeship.runtime.cli import add_bench_arguments

    add_bench_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from edgeship.runtime.cli import run_bench

    run_bench(args)
    return 0
