"""Host commands with their output kept in a log, progress lines, and the two ways the check stops early."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any


class Skip(Exception):
    """The check cannot run on this machine for a reason outside the project (exit 77)."""


class CheckError(Exception):
    """The check could not run to the end (exit 2); the message says which step and why."""


def say(message: str) -> None:
    """Progress for the person running the check."""
    print(f"arm64-check: {message}", file=sys.stderr, flush=True)


def append_log(log: Path, command: str, output: str, returncode: int | None) -> None:
    """Keep a command and what it printed in `log`, for when a step needs explaining."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as stream:
        stream.write(f"$ {command}\n{output}[exit {returncode}]\n\n")


def tail(output: str, lines: int) -> str:
    """The last lines of a command's output."""
    return "\n".join(output.strip().splitlines()[-lines:])


def run(command: list[str], what: str, log: Path | None = None, check: bool = True, **options: Any) -> subprocess.CompletedProcess:
    """Run a command, keep its output in `log`, and raise CheckError naming `what` when it fails."""
    completed = subprocess.run(command, capture_output=True, text=True, **options)
    if log is not None:
        append_log(log, " ".join(command), completed.stdout + completed.stderr, completed.returncode)
    if check and completed.returncode != 0:
        raise CheckError(f"{what} failed (exit {completed.returncode}):\n{tail(completed.stdout + completed.stderr, 15)}")
    return completed
