"""Device fixtures: a real sshd on localhost, inventories of devices it serves, and the cached runtime venv they share.

Installing edgeship[onnx] into a device venv over SSH takes a minute, so every test device points
its `venv` at one folder under ~/.cache/edgeship/device-venvs: the first run installs it through
the real path (wheels copied over SSH, pip install there), later runs find its marker matching the
wheel set and reuse it (only edgeship's own wheel is reinstalled when the sources change).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fleet import DEVICE_VENV, edgeship, write_inventory  # noqa: E402
from sshd import SSHServer, sshd_missing_reason, start_sshd  # noqa: E402


@pytest.fixture(scope="session")
def sshd(tmp_path_factory) -> SSHServer:
    reason = sshd_missing_reason()
    if reason:
        pytest.skip(reason)
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def digit_picture(sample_dataset, tmp_path_factory) -> Path:
    """A real test digit as a PNG file, as a camera app would hand one to the runtime."""
    from PIL import Image

    path = tmp_path_factory.mktemp("picture") / "digit.png"
    Image.fromarray(sample_dataset.x_test[7]).save(path)
    return path


@pytest.fixture(scope="session")
def warm_venv(sshd, bundle_path, digit_picture, tmp_path_factory) -> Path:
    """The shared device venv brought up to date once per session by one device (so concurrent devices only reuse it).

    Brought up with a picture, so it has Pillow too and serves runs with or without `--picture`.
    """
    folder = tmp_path_factory.mktemp("warm")
    inventory = write_inventory(folder / "devices.toml", [sshd.device("warm", folder / "device", venv=str(DEVICE_VENV))])
    code = edgeship("device", "run", bundle_path, "--all", "--inventory", inventory, "--out", folder / "out", "--seconds", "0.05",
                    "--picture", digit_picture)
    assert code == 0, (folder / "out" / "warm" / "device.json").read_text()
    return DEVICE_VENV


@pytest.fixture
def run_folder(bundle_path, tmp_path) -> Path:
    """A run folder of our own holding a copy of the bundle, so results land in RUN/devices."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(bundle_path, run / "bundle")
    return run
