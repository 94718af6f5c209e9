"""The `edgeship` command: one subcommand a stage, each importing its stage only when it runs.

Subcommands live in `edgeship/commands/<name>.py`, each with HELP, add_arguments(parser) and
run(args) -> exit code. argparse (standard library) keeps `edgeship --help` fast and adds no
dependency to a device install.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from edgeship import __version__
from edgeship.errors import run_guarded

COMMANDS = ("data", "train", "export", "verify", "bench", "predict", "report", "pipeline", "preflight", "device", "recommend")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeship",
        description="Train a Keras image classifier, export it to TFLite and ONNX, verify parity, benchmark, report.",
    )
    parser.add_argument("--version", action="version", version=f"edgeship {__version__}")
    add_common_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"edgeship.commands.{name}")
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        add_common_options(sub, suppress_default=True)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def add_common_options(parser: argparse.ArgumentParser, suppress_default: bool = False) -> None:
    """--debug and --verbose, accepted before or after the subcommand."""
    default = argparse.SUPPRESS if suppress_default else False
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks for errors")
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="log more detail")


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_guarded(args.handler, args, "edgeship")


if __name__ == "__main__":
    sys.exit(main())
