"""The emulated arm64 Pi as a device (kind "qemu-arm64"): the same steps and files as an SSH device, its rows marked emulated.

Needs the Bookworm arm64 root that `make test-arm64` builds (cached under ~/.cache/edgeship), so it
carries the arm64 marker: `pytest -m arm64 tests/devices/test_qemu.py`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fleet import edgeship, write_inventory
from edgeship.devices.remote import bundle_files, remote_bundle_name

pytestmark = pytest.mark.arm64

ROOT = Path.home() / ".cache" / "edgeship" / "arm64-bookworm" / "root"


def test_emulated_pi_runs_like_any_device(run_folder, tmp_path, capsys):
    if shutil.which("qemu-aarch64-static") is None or not (ROOT / "usr" / "bin" / "python3").exists():
        pytest.skip(f"needs qemu-aarch64-static and the arm64 root at {ROOT}: run `make test-arm64` first")
    home = tmp_path / "pi-home"
    inventory = write_inventory(tmp_path / "devices.toml", [f'[devices.emupi]\nkind = "qemu-arm64"\nfolder = "{home}"\nextra = "tflite"\n'])
    assert edgeship("device", "check", "--inventory", inventory) == 0
    assert "| emupi | aarch64 | Debian GNU/Linux 12 (bookworm) | 3.11" in capsys.readouterr().out
    for venv in ("installed", "reused"):
        code = edgeship("device", "run", run_folder / "bundle", "--all", "--inventory", inventory, "--seconds", "0.1")
        out = capsys.readouterr().out
        assert code == 0, out
        result = json.loads((run_folder / "devices" / "emupi" / "device.json").read_text())
        assert result["steps"]["venv"] == venv
    assert "| emupi | ✅ pass | tflite-" in out
    assert bundle_files(home / ".edgeship" / "bundles" / remote_bundle_name(run_folder / "bundle")) == bundle_files(run_folder / "bundle")
    selftest = json.loads((run_folder / "devices" / "emupi" / "selftest.json").read_text())
    assert {row["artifact"] for row in selftest["rows"] if row["status"] == "pass"} >= {"tflite-fp32", "tflite-int8"}
    machine = json.loads((run_folder / "devices" / "emupi" / "bench.json").read_text())["machine"]
    assert machine["machine"] == "aarch64" and machine["emulated"].startswith("qemu-aarch64 cortex-a72") and machine["device"] == "emupi"
