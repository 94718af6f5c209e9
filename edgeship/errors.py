"""The errors edgeship raises for user mistakes: one type a kind, each message naming the bad value and the fix.

The command lines turn them into one line on stderr and the type's exit code
(2 = bad input or usage, 1 = a parity or benchmark gate failed).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable


class EdgeshipError(Exception):
    """Base class: a problem the user can fix; never a bug in edgeship."""

    exit_code = 2


class UsageError(EdgeshipError):
    """An option has a value that cannot work (unknown name, threads <= 0, ...)."""


class MissingDependencyError(EdgeshipError):
    """An optional package is not installed; the message names the extra to install."""


class DatasetError(EdgeshipError):
    """A dataset cannot be found, downloaded or read, or does not fit the model."""


class ModelError(EdgeshipError):
    """A model file is missing, unreadable, truncated, or not a single-input classifier."""


class ExportError(EdgeshipError):
    """One export format failed; recorded in the manifest while the other formats go on."""


class BundleError(EdgeshipError):
    """A bundle's manifest.json is missing, malformed, of an unknown schema, or points outside the bundle."""


class IntegrityError(EdgeshipError):
    """A file's sha256 does not match the one its manifest recorded."""


class InputError(EdgeshipError):
    """Images or arrays given for inference have the wrong shape, type or values."""


class BackendUnavailableError(EdgeshipError):
    """A backend, delegate or execution provider was asked for by name and cannot be loaded here."""


class OutputError(EdgeshipError):
    """An output path cannot be written (a file where a folder should be, read-only, disk full)."""


class DeviceError(EdgeshipError):
    """A device cannot be reached, logged into or set up (host key, key, Python, disk); the message names the device."""


class GateFailedError(EdgeshipError):
    """A parity or benchmark gate failed; the message carries the failing numbers."""

    exit_code = 1


def missing_extra(package: str, extra: str) -> MissingDependencyError:
    """Build the error for an optional package that is not installed."""
    return MissingDependencyError(
        f"{package} is not installed; install it with: pip install 'edgeship[{extra}]'"
    )


def run_guarded(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace, prog: str) -> int:
    """Run a command line's handler; turn our errors into one line on stderr and their exit code.

    Shared by `edgeship` and `python -m edgeship.runtime`, so both fail the same way.
    """
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING,
        format=f"{prog}: %(levelname)s: %(message)s",
    )
    # TensorFlow's Python warnings (tf.function retracing, and through absl the TFLite converter's notes such as
    # "inference_output_type will default to the original type" for a float end kept by the rescue) are not the user's business.
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
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
    finally:
        # A command has said everything now; LiteRT's CompiledModel would print as the process ends.
        compiled = sys.modules.get("edgeship.runtime.backends.litert_compiled")
        if compiled is not None:
            compiled.quiet_teardown()
