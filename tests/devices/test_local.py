"""A device that is a local folder (`kind = "local"`) takes the same steps as an SSH device and leaves the same files.

This is the path another kind of device (an emulated arm64 root) takes: only the transport differs.
"""

from __future__ import annotations

import json

from fleet import edgeship, write_inventory
from edgeship.devices.remote import bundle_files, remote_bundle_name


def test_local_folder_device_matches_an_ssh_device(sshd, warm_venv, run_folder, tmp_path, capsys):
    import sys

    home = tmp_path / "home"
    home.mkdir()
    python = getattr(sys, "_base_executable", sys.executable)
    inventory = write_inventory(tmp_path / "devices.toml", [
        f'[devices.here]\nkind = "local"\nfolder = "{home}"\npython = "{python}"\nextra = "onnx"\nvenv = "{warm_venv}"\n',
        sshd.device("there", tmp_path / "there", venv=str(warm_venv)),
    ])
    assert edgeship("device", "run", run_folder / "bundle", "--all", "--inventory", inventory, "--seconds", "0.05") == 0
    capsys.readouterr()
    assert bundle_files(home / ".edgeship" / "bundles" / remote_bundle_name(run_folder / "bundle")) == bundle_files(run_folder / "bundle")
    shapes = {}
    for name in ("here", "there"):
        folder = run_folder / "devices" / name
        assert sorted(p.name for p in folder.iterdir()) == ["bench.json", "device.json", "selftest.json"]
        bench = json.loads((folder / "bench.json").read_text())
        shapes[name] = (sorted(bench), sorted(bench["rows"][0]), [row["artifact"] for row in bench["rows"]],
                        sorted(json.loads((folder / "device.json").read_text())["steps"]["seconds"]))
        assert bench["machine"]["device"] == name
    assert shapes["here"] == shapes["there"]
    assert json.loads((run_folder / "devices" / "here" / "device.json").read_text())["address"] == f"local folder {home}"
