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
    from pathlib import Path

    from edgeship.runtime.bench import format_bench_table, write_bench_json
    from edgeship.runtime.cli import run_bench

    path = Path(args.model)
    if args.no_keras or not path.is_dir() or args.artifact or args.backend or args.delegate or args.provider:
        run_bench(args)
        return 0
    from edgeship.bench import keras_rows, source_model_or_none
    from edgeship.files import check_writable
    from edgeship.manifest import load_manifest
    from edgeship.runtime.bench import golden_images
    from edgeship.runtime.cli import parse_positive_list

    manifest = load_manifest(path)
    json_path, args.json = args.json, None
    if json_path:
        check_writable(json_path)
    rows = run_bench(args)
    model = source_model_or_none(path, manifest)
    if model is not None:
        print("  keras reference", file=sys.stderr)
        reference = keras_rows(model, manifest, golden_images(path), parse_positive_list(args.batch, "--batch"), args.seconds)
        print(format_bench_table(reference))
        rows = reference + rows
    if json_path:
        write_bench_json(json_path, rows)
        print(f"wrote {json_path}", file=sys.stderr)
    return 0
