"""`edgeship verify`: every artifact of a bundle against its source Keras model, with gates."""

from __future__ import annotations

import argparse

HELP = "check every artifact of a bundle against the Keras model (accuracy, agreement, |Δp|); exit 1 when a gate fails"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="bundle folder (holds manifest.json)")
    parser.add_argument("--dataset", help="dataset for the test split (default: the one the bundle was exported with)")
    parser.add_argument("--model", help="source .keras model (default: the one the manifest records)")
    parser.add_argument("--max-images", type=int, help="use only the first N test images")
    parser.add_argument("--backend", help="run every artifact on this backend, e.g. litert-compiled (default: each format's own)")
    parser.add_argument(
        "--gate", action="append", default=[], metavar="PRECISION:KEY=VALUE",
        help="override a gate, e.g. int8:min_agreement=0.98 or fp32:max_abs_diff=1e-3 (repeatable)",
    )
    parser.add_argument("--json", help="also write the table as JSON to this file")
    parser.add_argument("--skip-bad-images", action="store_true", help="skip unreadable pictures of an image folder instead of stopping")


def run(args: argparse.Namespace) -> int:
    from edgeship.errors import UsageError
    from edgeship.files import atomic_write_json, check_writable
    from edgeship.manifest import load_manifest
    from edgeship.parity import dataset_for_bundle, format_table, raise_if_failed, verify_bundle
    from edgeship.runtime.gates import parse_gate_overrides

    if args.max_images is not None and args.max_images < 1:
        raise UsageError(f"--max-images must be at least 1, got {args.max_images}")
    if args.json:
        check_writable(args.json)
    manifest = load_manifest(args.bundle)
    gates = parse_gate_overrides(args.gate)
    dataset = dataset_for_bundle(manifest, args.dataset, args.skip_bad_images)
    report = verify_bundle(args.bundle, dataset, max_images=args.max_images, gates=gates, model_path=args.model, backend=args.backend)
    print(format_table(report))
    if args.json:
        atomic_write_json(args.json, report.to_dict())
    raise_if_failed(report)
    return 0
