"""tools/arm64: the slim runtime on an emulated Raspberry Pi OS (Bookworm arm64) answers as on x86.

The tests marked arm64 run the whole check (about 40 s warm, about 3 minutes on a cold cache, on
2 cores); the rest check the tooling's own logic, its refusals and the emulated device's transport
in seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeship.devices.inventory import Device
from edgeship.devices.transport import QemuArm64Transport
from tools.arm64 import REPO
from tools.arm64.check import GATE_EXIT, SKIP_EXIT, Result, bench_label, compare_artifact, emulated_pi, summary, verdict, x86_machine
from tools.arm64.process import CheckError
from tools.arm64.rootfs import DEFAULT_CACHE, DEFAULT_MIRROR, debian_mirror
from tools.arm64.wheels import target_platform_options


def run_check(*arguments: str, **options) -> subprocess.CompletedProcess:
    """`python -m tools.arm64.check ...` from the checkout, as `make test-arm64` runs it."""
    return subprocess.run([sys.executable, "-m", "tools.arm64.check", *arguments], capture_output=True, text=True, cwd=REPO, **options)


@pytest.fixture(scope="module")
def arm64_check(tmp_path_factory, mlp_bundle):
    """One full run of the check on the session's exported MLP bundle: (completed process, result JSON, out folder)."""
    out = tmp_path_factory.mktemp("arm64-check")
    completed = run_check("--bundle", str(mlp_bundle.bundle), "--out", str(out), timeout=1200)
    result = json.loads((out / "arm64-check.json").read_text(encoding="utf-8"))
    if completed.returncode == SKIP_EXIT:
        pytest.skip(f"arm64 check skipped: {result['reason']}")
    return completed, result, out


@pytest.mark.arm64
def test_arm64_predictions_equal_x86_for_fp32_and_int8(arm64_check):
    completed, result, _ = arm64_check
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert result["status"] == "pass"
    assert result["images"] == 1000
    fp32, int8 = result["artifacts"]["tflite-fp32"], result["artifacts"]["tflite-int8"]
    assert fp32["agreement"] >= 0.999 and int8["agreement"] >= 0.999
    assert fp32["max_abs_diff"] <= 1e-4
    assert int8["max_abs_diff"] <= 2 / 256
    assert fp32["status"] == int8["status"] == "pass"
    assert "tflite-runtime 2.14" in int8["arm64_backend"]
    for name, figures in result["artifacts"].items():
        assert figures["status"] in ("pass", "skipped"), name
        if figures["status"] == "pass":
            assert figures["agreement"] >= 0.999, name
    assert completed.stdout.startswith("arm64 check: ✅ pass")
    assert "agreement" in completed.stdout and "max |dp|" in completed.stdout


@pytest.mark.arm64
def test_emulated_target_is_bookworm_python311_with_the_tflite_extra(arm64_check):
    _, result, _ = arm64_check
    assert result["target"]["python"].startswith("3.11.")
    assert result["target"]["debian"].startswith("12.")
    assert result["target"]["numpy"].startswith("1.")
    assert result["target"]["tflite-runtime"].startswith("2.14")
    assert result["emulated"].startswith("qemu-aarch64 cortex-a72 on ")


@pytest.mark.arm64
def test_runtime_commands_run_under_emulation(arm64_check):
    _, result, _ = arm64_check
    for command in ("selftest", "predict tflite-fp32", "predict tflite-int8", "bench"):
        assert result["runtime_cli"][command]["returncode"] == 0, result["runtime_cli"][command]["output_tail"]
    selftest = json.loads(Path(result["selftest_json"]).read_text(encoding="utf-8"))
    statuses = {row["artifact"]: row["status"] for row in selftest["rows"]}
    assert statuses["tflite-fp32"] == statuses["tflite-int8"] == "pass"
    assert "fail" not in statuses.values()


@pytest.mark.arm64
def test_bench_json_is_labelled_emulated_and_the_report_says_so(arm64_check):
    from edgeship.report.build import bench_rows

    _, result, out = arm64_check
    bench = json.loads((out / "arm64-emulated-bench.json").read_text(encoding="utf-8"))
    assert bench["schema"] == "edgeship.bench/2"
    assert bench["machine"]["emulated"] is True
    assert bench["machine"]["machine"] == "aarch64"
    assert bench["machine"]["label"] == bench_label("cortex-a72") == "arm64 Raspberry Pi OS Bookworm, qemu cortex-a72"
    assert bench["machine"]["backends"]["litert"].startswith("tflite-runtime 2.14")
    assert set(result["emulated_latency"]) >= {"tflite-fp32", "tflite-int8"}
    rows = bench_rows(bench)
    assert {row["artifact"] for row in rows} >= {"tflite-fp32", "tflite-int8"}
    assert {row["machine_label"] for row in rows} == {"arm64 Raspberry Pi OS Bookworm, qemu cortex-a72 (emulated)"}
    assert all(row["status"] == "pass" and row["p50_ms"] > 0 for row in rows)


@pytest.mark.arm64
def test_backends_that_crash_under_qemu_are_reported_not_testable(arm64_check):
    completed, result, _ = arm64_check
    assert set(result["not_testable_under_emulation"]) == {"litert", "onnx"}
    assert "not testable under emulation: edgeship[litert]" in completed.stdout


@pytest.mark.arm64
def test_the_emulated_root_is_a_device_with_an_arm64_python(arm64_check, tmp_path):
    root = Path(os.environ.get("EDGESHIP_ARM64_CACHE", DEFAULT_CACHE)) / "root"
    device = QemuArm64Transport(Device("emupi", kind="qemu-arm64", folder=str(tmp_path / "home"), root=str(root)))

    code = ("import json, platform, sys; a, b = open('numbers.txt').read().split(); open('sum.txt', 'w').write(str(int(a) + int(b))); "
            "print(json.dumps([platform.machine(), sys.version_info[:2], sys.path]))")

    async def session():
        async with device:
            (tmp_path / "numbers.txt").write_text("3 4\n")
            await device.put(tmp_path / "numbers.txt", "numbers.txt")
            done = await device.run(f"{device.python_command('python3.11')} -c {shlex.quote(code)}")
            await device.get("sum.txt", tmp_path / "sum.txt")
            return done

    done = asyncio.run(session())
    assert done.returncode == 0, done.stderr
    machine, version, path = json.loads(done.stdout)
    assert (machine, version) == ("aarch64", [3, 11])
    assert not [entry for entry in path if str(REPO) in entry or ".venv" in entry], path
    assert (tmp_path / "sum.txt").read_text() == "7"


@pytest.mark.arm64
def test_a_missed_gate_fails_the_check_with_exit_1(arm64_check, mlp_bundle, tmp_path):
    completed = run_check("--bundle", str(mlp_bundle.bundle), "--out", str(tmp_path), "--min-agreement", "1.01",
                          "--bench-options", "--threads 1 --batch 1 --seconds 0.2", timeout=1200)
    result = json.loads((tmp_path / "arm64-check.json").read_text(encoding="utf-8"))
    assert completed.returncode == GATE_EXIT, completed.stdout + completed.stderr
    assert result["status"] == "fail"
    assert result["artifacts"]["tflite-int8"]["status"] == "fail"
    assert "tflite-int8: agreement 100.00% < 101.00%" in result["reason"]
    assert completed.stdout.startswith("arm64 check: ❌ fail: ")


def test_the_verdict_names_every_failed_command_and_artifact():
    result = Result(
        min_agreement=0.999,
        runtime_cli={"selftest": {"returncode": 0, "seconds": 1.0}, "bench": {"returncode": None, "seconds": 2.0}},
        artifacts={
            "tflite-fp32": {"status": "pass", "reason": None, "agreement": 1.0, "mismatches": 0, "images": 10, "max_abs_diff": 0.0,
                            "x86_backend": "a", "arm64_backend": "b"},
            "tflite-fp16": {"status": "fail", "reason": "agreement 90.00% < 99.90%", "agreement": 0.9, "mismatches": 1, "images": 10,
                            "max_abs_diff": 0.3, "x86_backend": "a", "arm64_backend": "b"},
            "tflite-int8": {"status": "error", "reason": "not runnable with edgeship[tflite] on the Pi: no kernel"},
            "tflite-dynamic": {"status": "skipped", "reason": "not runnable with edgeship[tflite] on the Pi: no kernel"},
        },
    )
    result.status, result.reason = verdict(result)
    assert result.status == "fail"
    assert result.reason == ("`bench` killed by a signal under emulation; tflite-fp16: agreement 90.00% < 99.90%; "
                             "tflite-int8 does not run on the Pi's interpreter")
    lines = summary(result).splitlines()
    assert lines[0].startswith("arm64 check: ❌ fail: `bench` killed by a signal")
    assert any(line.strip().startswith("tflite-fp16") and line.endswith("❌ fail: agreement 90.00% < 99.90%") for line in lines)
    assert any(line.strip().startswith("tflite-int8    ⚠️ error: not runnable") and line.endswith("(REQUIRED)") for line in lines)
    assert any(line.strip().startswith("tflite-dynamic ⏭️ skipped: not runnable") for line in lines)
    assert verdict(Result(artifacts={"tflite-fp32": {"status": "pass"}})) == ("pass", "")


def test_skips_with_a_reason_when_qemu_cannot_be_installed(tmp_path):
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    completed = run_check("--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"),
                          env={"PATH": str(empty_path), "HOME": str(tmp_path)}, timeout=60)
    assert completed.returncode == SKIP_EXIT, completed.stderr
    assert completed.stdout.startswith("SKIP: ")
    assert "qemu-user-static" in completed.stdout and "apt-get" in completed.stdout
    result = json.loads((tmp_path / "out" / "arm64-check.json").read_text(encoding="utf-8"))
    assert result["status"] == "skipped"
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["arm64-check.json"]


def test_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    completed = run_check("--bundle", str(tmp_path), "--out", str(tmp_path / "out"), timeout=60)
    assert completed.returncode == 2
    assert "not a bundle (no manifest.json)" in completed.stdout
    assert json.loads((tmp_path / "out" / "arm64-check.json").read_text(encoding="utf-8"))["status"] == "error"


def test_mirror_comes_from_apt_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGESHIP_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://old.example/debian bookworm main contrib\n")
    assert debian_mirror(tmp_path) == "http://old.example/debian"
    (tmp_path / "sources.list").write_text("deb http://other.example/ubuntu jammy main\n")
    assert debian_mirror(tmp_path) == DEFAULT_MIRROR
    monkeypatch.setenv("EDGESHIP_DEBIAN_MIRROR", "http://override.example/debian/")
    assert debian_mirror(tmp_path) == "http://override.example/debian"


def test_comparison_counts_argmax_flips_and_the_largest_difference_with_the_runtime_comparator():
    x86 = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]])
    arm64 = np.array([[0.9, 0.1], [0.6, 0.4], [0.25, 0.75]])
    labels = np.array([0, 1, 1])
    figures = compare_artifact(x86, arm64, labels, ["zero", "one"], min_agreement=0.999)
    assert figures["images"] == 3
    assert figures["mismatches"] == 1
    assert figures["agreement"] == pytest.approx(2 / 3)
    assert figures["max_abs_diff"] == pytest.approx(0.2)
    assert figures["accuracy_delta_pp"] == pytest.approx(-100 / 3, abs=1e-3)
    assert figures["status"] == "fail"
    assert figures["reason"] == "agreement 66.67% < 99.90%"
    same = compare_artifact(x86, x86, labels, ["zero", "one"], min_agreement=0.999)
    assert (same["status"], same["reason"], same["max_abs_diff"]) == ("pass", None, 0.0)
    with pytest.raises(CheckError, match="same images"):
        compare_artifact(x86, arm64[:2], labels, ["zero", "one"], min_agreement=0.999)


def test_pip_targets_every_manylinux_tag_bookworm_accepts():
    options = target_platform_options()
    platforms = {options[i + 1] for i, option in enumerate(options) if option == "--platform"}
    assert {"manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_27_aarch64", "manylinux_2_34_aarch64", "manylinux_2_36_aarch64"} <= platforms
    assert "manylinux_2_37_aarch64" not in platforms
    assert options[options.index("--abi") + 1] == "cp311"


def test_the_x86_side_runs_this_python_in_the_checkout_with_the_checks_environment(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/the/checkout/first")
    host = x86_machine()
    assert host.python_command(host.device.python) == shlex.quote(sys.executable)
    done = asyncio.run(host.run('pwd; echo "$PYTHONPATH"'))
    assert done.stdout.splitlines() == [str(REPO), "/the/checkout/first"]


def test_the_emulated_pi_is_the_qemu_arm64_device_with_the_checks_site_and_a_clean_environment(tmp_path, monkeypatch):
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    (bin_folder / "qemu-aarch64-static").write_text("#!/bin/sh\n")
    (bin_folder / "qemu-aarch64-static").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_folder))
    monkeypatch.setenv("PYTHONPATH", "/host/only")
    monkeypatch.setenv("VIRTUAL_ENV", "/host/venv")
    (tmp_path / "home").mkdir()
    device = emulated_pi(tmp_path / "root", tmp_path / "home", "cortex-a53", "tflite", tmp_path / "site")
    qemu = f"{bin_folder / 'qemu-aarch64-static'} -cpu cortex-a53 -L {tmp_path / 'root'}"
    assert device.python_command(device.device.python) == f"{qemu} {tmp_path / 'root/usr/bin/python3.11'}"
    assert device.python_command("python3") == f"{qemu} {tmp_path / 'root/usr/bin/python3'}"
    assert device.python_command("venv/bin/python") == f"{qemu} {tmp_path / 'home/venv/bin/python'}"
    done = asyncio.run(device.run('pwd; echo "$PYTHONPATH ${VIRTUAL_ENV-none} $PYTHONNOUSERSITE"'))
    assert done.stdout.splitlines() == [str(tmp_path / "home"), f"{tmp_path / 'site'} none 1"]
    assert device.emulated.startswith("qemu-aarch64 cortex-a53 on ")


@pytest.mark.arm64
@pytest.mark.slow
def test_litert_and_onnxruntime_still_crash_under_qemu(tmp_path, mlp_bundle):
    completed = run_check("--bundle", str(mlp_bundle.bundle), "--out", str(tmp_path), "--probe-unsupported", timeout=1200)
    result = json.loads((tmp_path / "arm64-check.json").read_text(encoding="utf-8"))
    if completed.returncode == SKIP_EXIT:
        pytest.skip(f"arm64 check skipped: {result['reason']}")
    findings = result["not_testable_under_emulation"]
    assert findings["litert"]["crashed"] and findings["onnx"]["crashed"], (
        "a backend documented as crashing under qemu ran: update NOT_TESTABLE in tools/arm64/check.py and test it here"
    )
    assert findings["litert"]["versions"]["ai-edge-litert"].startswith("2.")
    assert "probed now: crashed" in completed.stdout
