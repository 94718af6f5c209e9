"""A device that is a local folder (`kind = "local"`) takes the same steps as an SSH device and leaves the same files.

This is the path another kind of device (an emulated arm64 root) takes: only the transport differs.
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from fleet import edgeship, write_inventory
from edgeship.devices.inventory import Device
from edgeship.devices.transport import LocalTransport
from edgeship.errors import DeviceError
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


def test_a_local_device_runs_commands_and_moves_files_in_its_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/workstation/only")
    (tmp_path / "home").mkdir()
    device = LocalTransport(Device("here", kind="local", folder=str(tmp_path / "home")))
    (tmp_path / "in.txt").write_text("payload")

    async def session():
        async with device:
            await device.put(tmp_path / "in.txt", "copy.txt")
            echoed = await device.run('cat copy.txt; cat; echo "${PYTHONPATH-clean}" >&2', input=" and stdin")
            await device.rename("copy.txt", "moved.txt")
            await device.get("moved.txt", tmp_path / "back.txt")
            failed = await device.run("exit 3")
            killed = await device.run("kill -9 $$")
            with pytest.raises(DeviceError, match="did not finish within 1 s"):
                await device.run("sleep 30", timeout=1)
            with pytest.raises(DeviceError, match="missing.txt is not on the device"):
                await device.get("missing.txt", tmp_path / "never.txt")
            assert await device.get("missing.txt", tmp_path / "never.txt", missing_ok=True) is False
            return echoed, failed, killed

    echoed, failed, killed = asyncio.run(session())
    assert (echoed.returncode, echoed.stdout, echoed.stderr) == (0, "payload and stdin", "clean\n")
    assert (tmp_path / "back.txt").read_text() == "payload"
    assert not (tmp_path / "home" / "copy.txt").exists()
    assert failed.returncode == 3
    assert killed.returncode is None
    assert not (tmp_path / "never.txt").exists()
    given = LocalTransport(Device("here", kind="local", folder=str(tmp_path / "home")), environment={"PATH": os.environ["PATH"], "ONLY": "this"})
    assert asyncio.run(given.run('echo "$ONLY ${HOME-unset}"')).stdout == "this unset\n"


def test_a_local_device_needs_its_folder(tmp_path):
    device = LocalTransport(Device("here", kind="local", folder=str(tmp_path / "absent")))
    with pytest.raises(DeviceError, match=f"here: folder {tmp_path / 'absent'} does not exist; create it"):
        asyncio.run(device.open())
