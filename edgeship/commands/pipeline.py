"""`edgeship pipeline`: data → train → export → verify → bench → report in one run folder."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "run every stage (data, train, export, verify, bench, report) into one run folder; exit 1 if a gate fails"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgeship.commands.train import add_training_arguments

    add_training_arguments(parser, out_default="artifacts/latest")
    parser.add_argument("--formats", help="comma-separated export formats (default: all; one whose tool is missing here is listed as skipped)")
    parser.add_argument("--max-images", type=int, help="verify on only the first N test images")
    parser.add_argument("--threads", default="1,2", help="bench thread counts (default: 1,2)")
    parser.add_argument("--batch", default="1,32,256", help="bench batch sizes (default: 1,32,256)")
    parser.add_argument("--bench-seconds", type=float, default=1.0, help="time budget per bench row, s (default: 1.0)")


def run(args: argparse.Namespace) -> int:
    import sys
    import time

    from edgeship.bench import bench_bundle
    from edgeship.commands.train import load_training_dataset, recipe_option
    from edgeship.errors import UsageError
    from edgeship.export.registry import parse_formats
    from edgeship.files import atomic_write_json, check_writable, ensure_directory
    from edgeship.parity import format_table, raise_if_failed, verify_bundle
    from edgeship.runtime.bench import bench_payload
    from edgeship.runtime.options import BenchOptions, ModelOptions, positive_list
    from edgeship.train.trainer import check_training_options, training_input_spec

    check_training_options(args.model, args.epochs, args.batch_size)
    threads, batches = positive_list(args.threads, "--threads"), positive_list(args.batch, "--batch")
    formats = parse_formats(args.formats)
    if args.max_images is not None and args.max_images < 1:
        raise UsageError(f"--max-images must be at least 1, got {args.max_images}")
    if args.bench_seconds <= 0:
        raise UsageError(f"--bench-seconds must be positive, got {args.bench_seconds}")
    check_writable(args.out, folder=True)
    started = time.perf_counter()
    dataset = load_training_dataset(args)
    training_input_spec(args.model, dataset, recipe_option(args))
    out = ensure_directory(args.out)

    def step(number: int, text: str) -> None:
        print(f"[{number}/6] {text}  (+{time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)

    step(1, f"data: {args.dataset}")
    print(f"dataset {dataset.name}: {len(dataset.x_train)} train / {len(dataset.x_test)} test images, {dataset.num_classes} classes")
    for note in dataset.notes:
        print(f"note: {note}")

    from edgeship.export import export_bundle
    from edgeship.train import train_model

    step(2, f"train: {args.model}, {args.epochs} epochs, seed {args.seed}")
    trained = train_model(args.model, dataset, epochs=args.epochs, seed=args.seed, out=out, batch_size=args.batch_size,
                          recipe=recipe_option(args))
    print(f"trained {args.model}: test accuracy {trained.metrics['test_accuracy']:.4f} in {trained.metrics['training_seconds']:.1f} s")

    step(3, "export: " + ", ".join(formats))
    bundle = out / "bundle"
    exported = export_bundle(trained.model_path, bundle, formats=formats, dataset=dataset, seed=args.seed)
    made = [artifact.name for artifact in exported.manifest.artifacts if artifact.has_file]
    print(f"exported {len(made)} of {len(formats)} formats into {bundle}")

    step(4, "verify: every artifact against the Keras model")
    verified = verify_bundle(bundle, dataset, max_images=args.max_images)
    atomic_write_json(out / "verify.json", verified.to_dict())
    print(format_table(verified))

    step(5, f"bench: threads {threads}, batches {batches}")
    benched = bench_payload(bench_bundle(ModelOptions(bundle, threads=list(threads)), BenchOptions(batches, args.bench_seconds),
                                         keras_model=trained.model_path))
    atomic_write_json(out / "bench.json", benched)

    step(6, "report")
    from edgeship.report import build_report

    written = build_report(out)
    print("\n" + summary_table(exported.manifest, verified, benched["rows"], batches))
    print(f"\nreport: {written['markdown']}  ({time.perf_counter() - started:.0f} s in all)")
    raise_if_failed(verified)
    return 0


def summary_table(manifest: Any, verified: Any, bench_rows: list[dict], batches: list[int]) -> str:
    """One line an artifact: size, parity verdict, and single-thread latency at the smallest and largest batch."""
    from edgeship.runtime.status import PASS, label
    from edgeship.runtime.tables import cell, markdown_table

    small, large = min(batches), max(batches)
    timing = {
        (row["artifact"], row["batch"]): row for row in bench_rows if row["status"] == PASS and row["threads"] in (1, None)
    }
    sizes = {artifact.name: artifact.bytes for artifact in manifest.artifacts}
    rows = []
    for row in verified.rows:
        comparison, first, last = row.comparison, timing.get((row.artifact, small)), timing.get((row.artifact, large))
        rows.append((
            row.artifact,
            cell(sizes[row.artifact] / 1024 if sizes.get(row.artifact) else None, ".0f"),
            cell(comparison and comparison.accuracy, ".4f"),
            cell(comparison and comparison.agreement, ".2%"),
            label(row.status),
            cell(first and first["p50_ms"], ".3f"),
            cell(last and last["throughput_ips"], ",.0f"),
        ))
    return markdown_table(
        ("artifact", "size (KiB)", "accuracy", "agreement", "parity", f"p50 batch {small} (ms)", f"images/s batch {large}"), rows
    )
