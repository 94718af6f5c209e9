"""Helpers the device tests share: the cached runtime venv's path, an inventory writer, the command in this process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from edgeship.cli import main

DEVICE_VENV = Path(os.environ.get("EDGESHIP_CACHE") or Path.home() / ".cache" / "edgeship") / "device-venvs" / \
    f"onnx-py{sys.version_info[0]}{sys.version_info[1]}"


def write_inventory(path: Path, tables: list[str]) -> Path:
    path.write_text("\n".join(tables), encoding="utf-8")
    return path


def edgeship(*arguments: object) -> int:
    """The `edgeship` command in this process."""
    return main([str(a) for a in arguments])
