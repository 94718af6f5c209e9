"""Edge TPU exporter: the full-integer int8 TFLite model compiled by Coral's `edgetpu_compiler`.

The compiler ships only from Coral's own apt repository (x86-64 Debian/Ubuntu); it is not on PyPI
or in Debian. When it is not on PATH the format is listed as skipped with that reason. The Edge TPU
needs static shapes, so the model compiled here has a fixed batch of 1.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from edgeship.errors import ExportError
from edgeship.export.base import ExportOptions, ExportRecord, FormatSkipped
from edgeship.export.tflite import convert_int8
from edgeship.files import atomic_write_bytes

COMPILER = "edgetpu_compiler"
COMPILE_TIMEOUT_S = 600
NOT_INSTALLED = (
    f"{COMPILER} is not on PATH; it ships only from Coral's apt repository for x86-64 Debian/Ubuntu "
    "(not on PyPI or in Debian): install it there and re-export"
)
OPERATION_ROW = re.compile(r"^(?P<op>[A-Z][A-Z0-9_]+)\s+(?P<count>\d+)\s+(?P<status>\S.*)$")


def export_edgetpu(model: Any, path: Path, options: ExportOptions) -> ExportRecord:
    """Compile a batch-1 full-integer model for the Edge TPU and record the compiler's op-mapping summary."""
    compiler = shutil.which(COMPILER)
    if compiler is None:
        raise FormatSkipped(NOT_INSTALLED)
    with tempfile.TemporaryDirectory(prefix="edgeship-edgetpu-") as folder:
        int8_path = Path(folder) / "model_int8.tflite"
        int8_path.write_bytes(convert_int8(model, options, batch_size=1))
        try:
            result = subprocess.run(
                [compiler, "--show_operations", "--out_dir", folder, str(int8_path)],
                capture_output=True,
                text=True,
                timeout=COMPILE_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as exc:
            raise ExportError(f"{COMPILER} did not finish within {COMPILE_TIMEOUT_S} s") from exc
        log_text = result.stdout + result.stderr
        compiled = Path(folder) / "model_int8_edgetpu.tflite"
        if result.returncode != 0 or not compiled.is_file():
            last = (log_text.strip().splitlines() or ["no output"])[-1]
            raise ExportError(f"{COMPILER} failed (exit {result.returncode}): {last}")
        atomic_write_bytes(path, compiled.read_bytes())
    return ExportRecord(path, {"compiler": compiler, **parse_compiler_log(log_text), "io_type": options.int8_io})


def parse_compiler_log(text: str) -> dict[str, Any]:
    """The compiler's version, its `Key: value` summary and the per-operator mapping table."""
    summary: dict[str, str] = {}
    operations = []
    version = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Edge TPU Compiler version"):
            version = line.rsplit(" ", 1)[-1]
            continue
        row = OPERATION_ROW.match(line)
        if row:
            operations.append({"operator": row["op"], "count": int(row["count"]), "status": row["status"].strip()})
            continue
        key, separator, value = line.partition(":")
        if separator and value.strip():
            summary[key.strip()] = value.strip()
    mapped = sum(op["count"] for op in operations if op["status"].startswith("Mapped to Edge TPU"))
    return {
        "compiler_version": version,
        "summary": summary,
        "operations": operations,
        "operations_on_edgetpu": mapped,
        "operations_total": sum(op["count"] for op in operations),
    }
