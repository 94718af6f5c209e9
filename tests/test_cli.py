"""The `edgeship` entry point: fast, light, versioned, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import edgeship

HEAVY = ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "matplotlib", "ai_edge_litert")


def test_importing_the_cli_and_building_every_parser_loads_nothing_heavy():
    probe = (
        "import sys, edgeship.cli; edgeship.cli.build_parser(); "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_help_lists_every_stage():
    result = subprocess.run([sys.executable, "-m", "edgeship.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("data", "train", "export", "verify", "bench", "predict", "report", "pipeline"):
        assert command in result.stdout


def test_version():
    result = subprocess.run([sys.executable, "-m", "edgeship.cli", "--version"], capture_output=True, text=True)
    assert result.stdout.strip() == f"edgeship {edgeship.__version__}"


def test_debug_shows_the_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "edgeship.cli", "--debug", "train", "--epochs", "0", "--out", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "UsageError" in result.stderr


def test_output_piped_into_a_closed_reader_ends_quietly():
    shell = f"{sys.executable} -m edgeship.cli data --dataset mnist-sample | head -n 1"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True)
    assert "Traceback" not in result.stderr
    assert result.stdout.strip()
