"""The platform facts: which runtime extra fits which target, with 'unknown' where nothing is known."""

from __future__ import annotations

import pytest

from edgeship.devices.pack import choose_extra
from edgeship.devices.targets import extra_fit, facts, fits_summary, target
from edgeship.devices.wheels import Platform
from edgeship.errors import DeviceError, UsageError


def test_every_fact_names_its_source():
    data = facts()
    assert all(entry["source"].startswith("https://") for entry in data["wheels"])
    assert all("source" in spec and spec["machine"] for spec in data["targets"].values())
    for extra, packages in data["extras"].items():
        assert packages and extra in ("litert", "tflite", "onnx")


def test_pi_bookworm_arm64():
    pi = target("pi-bookworm-arm64")
    assert (pi.machine, pi.python, pi.glibc) == ("aarch64", "3.11", "2.36")
    assert extra_fit("tflite", pi.machine, pi.python, pi.glibc)[0] == "fits"
    assert extra_fit("onnx", pi.machine, pi.python, pi.glibc)[0] == "fits"
    assert choose_extra("pi-bookworm-arm64", None) == "tflite"


def test_no_wheel_and_unknown_are_told_apart():
    overall, packages = extra_fit("tflite", "aarch64", "3.13", "2.41")
    assert overall == "no wheel" and "no aarch64 wheel for Python 3.13" in packages[0].detail
    assert choose_extra("pi-trixie-arm64", None) == "litert"
    assert extra_fit("onnx", "armv7l", "3.11", "2.36")[0] == "no wheel"
    assert extra_fit("onnx", "riscv64", "3.11", "2.36")[0] == "unknown"
    assert extra_fit("onnx", "aarch64", "3.9", "2.31")[0] == "unknown"
    assert extra_fit("onnx", "aarch64", "3.11", "2.27")[0] == "no wheel"  # onnxruntime 1.32 needs glibc 2.28
    assert fits_summary("aarch64", "3.11", None)["onnx"].startswith("unknown")
    with pytest.raises(UsageError, match="has no wheels for pi-bookworm-armhf"):
        choose_extra("pi-bookworm-armhf", "onnx")
    with pytest.raises(UsageError, match="unknown target 'pi9'; known targets: pi-bookworm-arm64"):
        target("pi9")


def test_pip_platform_options():
    options = Platform("aarch64", "3.11", "2.36").pip_options()
    assert options[options.index("--python-version") + 1] == "3.11" and "cp311" in options
    assert "manylinux_2_17_aarch64" in options and "manylinux_2_36_aarch64" in options and "manylinux_2_37_aarch64" not in options
    assert Platform.from_facts({"machine": "x86_64", "python": "3.12.4", "libc": ["glibc", "2.39"]}).tag == "cp312-x86_64-glibc2.39"
    with pytest.raises(DeviceError, match="no manylinux wheels fit a riscv64 device"):
        Platform("riscv64", "3.11", "2.36").pip_options()
