"""Twenty inventory entries served by one sshd, run at once: every device ends in the report as its own machine.

Slow on 2 shared cores (twenty selftests and benches compete for them), so marked slow; the wall
times, 1 device against 20, are printed by benchmarks/devices_scale.py, never asserted here.
"""

from __future__ import annotations

import json

import pytest

from fleet import edgeship, write_inventory

pytestmark = [pytest.mark.ssh, pytest.mark.slow]

DEVICES = 20


def test_twenty_devices_at_once_land_in_the_report(sshd, warm_venv, pipeline_run, tmp_path, capsys):
    import shutil

    completed, pipeline_out = pipeline_run
    assert completed.returncode == 0, completed.stderr
    run = tmp_path / "run"
    shutil.copytree(pipeline_out, run, ignore=shutil.ignore_patterns("devices"))
    names = [f"dev{index:02d}" for index in range(DEVICES)]
    inventory = write_inventory(tmp_path / "devices.toml",
                                [sshd.device(name, tmp_path / "devices" / name, venv=str(warm_venv)) for name in names])
    for _ in range(2):  # the second run finds venvs and bundles in place
        code = edgeship("device", "run", run / "bundle", "--all", "--inventory", inventory, "--seconds", "0.05", "--jobs", str(DEVICES))
        out = capsys.readouterr().out
        assert code == 0, out
    assert sum(line.startswith("| dev") and "✅ pass" in line for line in out.splitlines()) == DEVICES
    results = [json.loads((run / "devices" / name / "device.json").read_text()) for name in names]
    assert all(r["steps"]["venv"] == "reused" and r["steps"]["bundle_files_copied"] == 0 for r in results)
    assert edgeship("report", run) == 0
    report = json.loads((run / "report.json").read_text())
    assert sorted(m["device"] for m in report["machines"] if "device" in m) == names
    assert len({row["machine_label"] for row in report["bench"]}) == DEVICES + 1
    assert len(report["recommendation"]) == DEVICES + 1
