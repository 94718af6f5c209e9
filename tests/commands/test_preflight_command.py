"""`edgeship preflight`: a table per target from the facts file, exit 1 when a chosen artifact has no runtime there."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _preflight(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeship.cli", "preflight", *args], capture_output=True, text=True, timeout=600)


def test_pi_arm64_has_a_runtime_for_every_file(bundle_path, tmp_path):
    done = _preflight(str(bundle_path), "--target", "pi-bookworm-arm64", "--json", str(tmp_path / "pf.json"))
    assert done.returncode == 0, done.stderr
    assert "| tflite-int8 | tflite | edgeship[litert] | pip install 'edgeship[litert]' | ai-edge-litert 2.3.0" in done.stdout
    assert "23957" in done.stdout  # the known ONNX Runtime problem on a Pi 4, with its source
    report = json.loads((tmp_path / "pf.json").read_text())
    assert all(entry["runnable"] for entry in report["artifacts"])
    onnx = next(e for e in report["artifacts"] if e["artifact"] == "onnx")
    assert onnx["onnx"].startswith("opset 17, IR ") and "unknown" in onnx["onnx"]
    int8 = next(e for e in report["artifacts"] if e["artifact"] == "tflite-int8")
    assert "Edge TPU list:" in int8["delegates"] and "GPU:" in int8["delegates"]


def test_armv7_has_no_runtime_and_exits_1(bundle_path):
    done = _preflight(str(bundle_path), "--target", "pi-bookworm-armv7", "--artifact", "tflite-int8")
    assert done.returncode == 1
    assert "| tflite-int8 | tflite | no runtime |" in done.stdout and "LiteRT/issues/71" in done.stdout
    assert "no runtime package for tflite-int8 on pi-bookworm-armv7" in done.stderr


@pytest.mark.parametrize("target", ["android", "ios"])
def test_phones_name_their_packages_and_say_unknown_versions(bundle_path, target):
    done = _preflight(str(bundle_path), "--target", target)
    assert done.returncode == 0, done.stderr
    assert "onnxruntime" in done.stdout and "unknown (not checked here)" in done.stdout
    # The MLP's input is (N, 28, 28): MediaPipe takes 4-D RGB only, and preflight says so.
    assert "MediaPipe takes 4-D RGB uint8 or float32" in done.stdout


def test_unknown_target_is_a_usage_error(bundle_path):
    done = _preflight(str(bundle_path), "--target", "pi-wheezy")
    assert done.returncode == 2 and "unknown target 'pi-wheezy'; known targets: pi-bookworm-arm64" in done.stderr
