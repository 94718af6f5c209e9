"""The `edgeship` command: one subcommand a stage, each importing its stage only when it runs.

Subcommands live in `edgeship/commands/<name>.py`, each with HELP, add_arguments(parser) and
run(args) -> exit code. argparse (standard library) keeps `edgeship --help` fast and adds no
dependency to a device install.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Callable, Sequence

from edgeship import __version__
from edgeship.errors import EdgeshipError

COMMANDS = ("data", "train", "export", "verify", "bench", "predict", "report", "pipeline")


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


def run_guarded(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace, prog: str) -> int:
    """Run a command; turn our errors into one line on stderr and their exit code."""
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING,
        format=f"{prog}: %(levelname)s: %(message)s",
    )
    # TensorFlow's Python warnings (tf.function retracing and the like) are not the user's business.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        return int(handler(args) or 0)
    except EdgeshipError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
        sys.stdout = open(os.devnull, "w")
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_guarded(args.handler, args, "edgeship")


if __name__ == "__main__":
    sys.exit(main())
