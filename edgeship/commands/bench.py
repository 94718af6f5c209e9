"""`edgeship bench`: the runtime's timing loop over a bundle's artifacts, with the source Keras model as a reference row."""

from __future__ import annotations

import argparse

HELP = "latency (p50/p90/p99) and throughput of every artifact per backend, threads and batch size, beside the Keras model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgeship.runtime.cli import add_bench_arguments

    add_bench_arguments(parser)
    parser.add_argument("--no-keras", action="store_true", help="leave out the Keras reference row")


def run(args: argparse.Namespace) -> int:
    import sys

    from edgeship.bench import bench_bundle
    from edgeship.runtime.cli import bench_arguments, finish_bench

    model, bench = bench_arguments(args)
    # The Keras row belongs to a whole-bundle bench; a bench narrowed to an artifact or accelerator compares those alone.
    narrowed = model.artifacts or model.backend or model.delegates != [None] or model.providers
    keras = not (args.no_keras or narrowed or not model.model.is_dir())
    rows = bench_bundle(model, bench, keras=keras, progress=lambda line: print(line, file=sys.stderr, flush=True))
    finish_bench(bench, rows)
    return 0
