"""`edgeship preflight`: which runtime package runs each artifact of a bundle on a target device, before it goes there."""

from __future__ import annotations

import argparse

HELP = "which runtime package runs each artifact on a target (pi-bookworm-arm64, android, ...); exit 1 when a chosen artifact has none"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="bundle folder (holds manifest.json)")
    parser.add_argument("--target", required=True,
                        help="pi-bookworm-arm64, pi-bookworm-armv7, linux-x86_64, android, ios (or a target of edgeship/devices/targets.toml)")
    parser.add_argument("--artifact", help="comma-separated artifacts to check (default: every file of the bundle)")
    parser.add_argument("--json", help="also write the result as JSON to this file")


def run(args: argparse.Namespace) -> int:
    from edgeship.errors import GateFailedError
    from edgeship.files import atomic_write_json, check_writable
    from edgeship.preflight import format_report, preflight

    if args.json:
        check_writable(args.json)
    names = [name.strip() for name in args.artifact.split(",") if name.strip()] if args.artifact else None
    report = preflight(args.bundle, args.target, names)
    print(format_report(report))
    if args.json:
        atomic_write_json(args.json, report.to_dict())
    without = [check.artifact for check in report.checks if not check.runnable]
    if names and without:
        raise GateFailedError(f"no runtime package for {', '.join(without)} on {args.target}; see the notes above")
    if not names and len(without) == len(report.checks):
        raise GateFailedError(f"no artifact of this bundle has a runtime package on {args.target}")
    return 0
