"""`edgeship device pack`: the folder an offline device gets, and its install script run for real, offline.

The target here is this machine's own platform (Debian Bookworm x86-64, Python 3.11), so the script
can run: it makes a venv from the packed wheels alone (pip --no-index) and the venv's selftest
passes on the packed bundle. The same command for pi-bookworm-arm64 packs aarch64 wheels.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeship.cli import main
from edgeship.devices.remote import bundle_files
from edgeship.errors import UsageError

pytestmark = pytest.mark.slow


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the packed wheels are for Python 3.11 (the target's)")
def test_pack_then_install_offline_and_selftest(bundle_path, tmp_path, capsys):
    out = tmp_path / "pack"
    assert main(["device", "pack", str(bundle_path), "--target", "debian-bookworm-x86_64", "--extra", "onnx", "--out", str(out)]) == 0
    assert "install.sh" in capsys.readouterr().out
    assert bundle_files(out / "bundle") == bundle_files(bundle_path)
    wheels = sorted(p.name for p in (out / "wheels").glob("*.whl"))
    assert any(name.startswith("edgeship-") for name in wheels) and any(name.startswith("onnxruntime-") for name in wheels)
    script = (out / "install.sh").read_text()
    assert "--no-index" in script and "edgeship[onnx]" in script
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    environment["PATH"] = f"{Path(getattr(sys, '_base_executable', sys.executable)).parent}:{environment['PATH']}"
    environment["PIP_CONFIG_FILE"] = os.devnull  # no index or find-links of this machine: the pack alone must do
    venv = tmp_path / "runtime"
    done = subprocess.run(["sh", str(out / "install.sh"), str(venv)], capture_output=True, text=True, env=environment, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ready: {venv}/bin/python -m edgeship.runtime selftest {out}/bundle" in done.stdout
    selftest = subprocess.run([str(venv / "bin" / "python"), "-m", "edgeship.runtime", "selftest", str(out / "bundle")],
                              capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=300)
    assert selftest.returncode == 0 and "self-test passed" in selftest.stdout, selftest.stderr


def test_pack_refuses_a_runtime_without_wheels_there(bundle_path, tmp_path):
    with pytest.raises(UsageError, match=r"edgeship\[onnx\] has no wheels for pi-bookworm-armhf"):
        main(["--debug", "device", "pack", str(bundle_path), "--target", "pi-bookworm-armhf", "--extra", "onnx", "--out", str(tmp_path / "p")])
    assert not (tmp_path / "p").exists()
