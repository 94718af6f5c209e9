"""`edgeship device check | run` against a real OpenSSH server on localhost, including the faults a fleet has.

Each device is a workdir of its own served by the one sshd; all share the cached runtime venv.
Faults are real: a port nobody listens on, a key sshd does not accept, a host key that changed, a
Python that is not there, connections killed mid-copy, a full disk (a small tmpfs), one device
whose runtime computes in half precision (its selftest fails) and one whose copy of the bundle gets
damaged after it was written (its selftest cannot run).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from fleet import edgeship, write_inventory
from edgeship.devices.remote import bundle_files, remote_bundle_name

pytestmark = pytest.mark.ssh


def device_json(out: Path, name: str) -> dict:
    return json.loads((out / name / "device.json").read_text(encoding="utf-8"))


def remote_bundle(workdir: Path, bundle: Path) -> Path:
    return workdir / "bundles" / remote_bundle_name(bundle)


def test_run_two_devices_then_report_and_recommend(sshd, warm_venv, pipeline_run, digit_picture, tmp_path, capsys):
    """Two devices, each timed end to end from a picture too; the report shows those rows; a second run copies nothing."""
    completed, pipeline_out = pipeline_run
    assert completed.returncode == 0, completed.stderr
    run = tmp_path / "run"
    shutil.copytree(pipeline_out, run, ignore=shutil.ignore_patterns("devices"))
    inventory = write_inventory(tmp_path / "devices.toml", [
        sshd.device("pi-a", tmp_path / "a", venv=str(warm_venv)),
        sshd.device("pi-b", tmp_path / "b", venv=str(warm_venv)),
    ])
    code = edgeship("device", "run", run / "bundle", "--on", "pi-a,pi-b", "--inventory", inventory, "--seconds", "0.1",
                    "--picture", digit_picture)
    out = capsys.readouterr().out
    assert code == 0, out
    # The fastest artifact is a model-only row, never the slower one that starts from the picture.
    assert "| pi-a | ✅ pass | onnx (onnxruntime cpu, 1t) |" in out and "| pi-b | ✅ pass | onnx (onnxruntime cpu, 1t) |" in out
    for name, workdir in (("pi-a", tmp_path / "a"), ("pi-b", tmp_path / "b")):
        result = device_json(run / "devices", name)
        assert result["status"] == "pass" and result["steps"]["venv"] == "reused"
        assert result["steps"]["bundle_files_copied"] == len(bundle_files(run / "bundle"))
        assert result["steps"]["files_copied"] == len(bundle_files(run / "bundle")) + 1  # and the picture
        assert bundle_files(remote_bundle(workdir, run / "bundle")) == bundle_files(run / "bundle")
        (on_device,) = (workdir / "pictures").glob("*/digit.png")
        assert on_device.read_bytes() == digit_picture.read_bytes()
        bench = json.loads((run / "devices" / name / "bench.json").read_text())
        assert bench["machine"]["device"] == name
        passed = [(row["artifact"], row["input"]) for row in bench["rows"] if row["status"] == "pass"]
        assert passed == [("onnx", None), ("onnx", "digit.png (28×28)")]
        assert json.loads((run / "devices" / name / "selftest.json").read_text())["passed"]

    # A second run copies nothing (every file's sha256 matches, the picture is there), and without --picture
    # the venv set up with Pillow is reused as it is.
    assert edgeship("device", "run", run / "bundle", "--all", "--inventory", inventory, "--seconds", "0.05") == 0
    second = device_json(run / "devices", "pi-a")
    assert second["steps"]["bundle_files_copied"] == second["steps"]["files_copied"] == 0 and second["steps"]["venv"] == "reused"
    assert not any(row["input"] for row in json.loads((run / "devices" / "pi-a" / "bench.json").read_text())["rows"])
    assert edgeship("device", "run", run / "bundle", "--all", "--inventory", inventory, "--seconds", "0.05",
                    "--picture", digit_picture) == 0
    assert device_json(run / "devices", "pi-a")["steps"]["files_copied"] == 0
    capsys.readouterr()

    assert edgeship("report", run) == 0
    report = json.loads((run / "report.json").read_text())
    labels = {machine.get("device") for machine in report["machines"]}
    assert {"pi-a", "pi-b"} <= labels
    markdown = (run / "report.md").read_text()
    assert "## Recommendation" in markdown and "| pi-a (" in markdown
    assert "onnx from digit.png (28×28)" in markdown

    assert edgeship("recommend", run, "--json", tmp_path / "rec.json") == 0
    printed = capsys.readouterr().out
    recommendations = {rec["machine"].split(" ")[0]: rec for rec in json.loads((tmp_path / "rec.json").read_text())}
    assert recommendations["pi-a"]["choice"]["artifact"] == "onnx"
    assert recommendations["pi-a"]["runner_up"] is None  # its end-to-end row is no second candidate
    assert recommendations["pi-a"]["python"] == f"Classifier.load({str(remote_bundle(tmp_path / 'a', run / 'bundle'))!r}, artifact='onnx', threads=1)"
    assert any("tflite-int8" in item["candidate"] and "cannot run here" in item["reason"] for item in recommendations["pi-a"]["excluded"])
    assert "Classifier.load(" in printed


def test_check_reports_platform_and_runtime_fit(sshd, tmp_path, capsys):
    inventory = write_inventory(tmp_path / "devices.toml", [sshd.device("box", tmp_path / "box")])
    assert edgeship("device", "check", "box", "--inventory", inventory, "--json", tmp_path / "facts.json") == 0
    out = capsys.readouterr().out
    assert "| box | x86_64 |" in out and "onnx: fits: onnxruntime" in out
    facts = json.loads((tmp_path / "facts.json").read_text())[0]
    assert facts["facts"]["python"].count(".") == 2 and facts["facts"]["disk_free_bytes"] > 0
    assert facts["runtime"]["onnx"].startswith("fits")


def test_closed_port_wrong_key_and_no_python_each_fail_alone(sshd, warm_venv, run_folder, tmp_path, capsys):
    workdir = tmp_path / "devices"
    inventory = write_inventory(tmp_path / "devices.toml", [
        sshd.device("good", workdir / "good", venv=str(warm_venv)),
        sshd.device("closed", workdir / "closed", port=1),
        sshd.device("wrongkey", workdir / "wrongkey", identity_file=str(sshd.other_key)),
        sshd.device("nopython", workdir / "nopython", python="/nonexistent/bin/python3"),
    ])
    code = edgeship("device", "run", run_folder / "bundle", "--all", "--inventory", inventory, "--seconds", "0.05")
    captured = capsys.readouterr()
    assert code == 2
    out = run_folder / "devices"
    assert device_json(out, "good")["status"] == "pass"
    closed, wrong, missing = (device_json(out, name) for name in ("closed", "wrongkey", "nopython"))
    assert closed["stage"] == "connect" and "cannot connect to 127.0.0.1:1" in closed["reason"]
    assert wrong["stage"] == "connect" and "refused the key" in wrong["reason"] and "authorized_keys" in wrong["reason"]
    assert missing["stage"] == "probe" and "no Python at `/nonexistent/bin/python3`" in missing["reason"]
    assert "could not reach or set up: closed, wrongkey, nopython" in captured.err
    assert not (out / "closed" / "bench.json").exists()


def test_host_keys_checked_unknown_refused_until_accepted_changed_always_refused(sshd, tmp_path, capsys):
    empty = tmp_path / "known_hosts"
    inventory = write_inventory(tmp_path / "devices.toml", [sshd.device("fresh", tmp_path / "fresh", known_hosts=str(empty))])
    empty.write_text("")
    assert edgeship("device", "check", "--inventory", inventory) == 2
    out = capsys.readouterr().out
    assert "is not in" in out and "run with --accept-new-host-keys" in out and empty.read_text() == ""
    assert edgeship("device", "check", "--inventory", inventory, "--accept-new-host-keys") == 0
    learned = empty.read_text()
    assert learned.startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    assert learned.split()[2] == (sshd.folder / "host_ed25519.pub").read_text().split()[1]
    assert edgeship("device", "check", "--inventory", inventory) == 0

    other = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "impostor")], check=True)
    assert other.returncode == 0
    impostor = (tmp_path / "impostor.pub").read_text().split()
    empty.write_text(f"[127.0.0.1]:{sshd.port} {impostor[0]} {impostor[1]}\n")
    for extra in ([], ["--accept-new-host-keys"]):
        capsys.readouterr()
        assert edgeship("device", "check", "--inventory", inventory, *extra) == 2
        out = capsys.readouterr().out
        assert "does not match the one in" in out and "ssh-keygen -R" in out


def test_connection_killed_mid_copy_leaves_the_old_bundle_and_the_next_run_finishes(sshd, warm_venv, run_folder, tmp_path, capsys):
    bundle = run_folder / "bundle"
    workdir = tmp_path / "dev"
    inventory = write_inventory(tmp_path / "devices.toml", [sshd.device("flaky", workdir, venv=str(warm_venv))])
    assert edgeship("device", "run", bundle, "--all", "--inventory", inventory, "--seconds", "0.05") == 0
    before = bundle_files(bundle)
    (bundle / "notes").mkdir()
    (bundle / "notes" / "big.bin").write_bytes(os.urandom(96 << 20))
    bundles = workdir / "bundles"
    killed = []

    def kill_when_copying() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for upload in bundles.glob(".*.partial/notes/big.bin.upload"):
                if upload.stat().st_size > (4 << 20):
                    killed.append(sshd.kill_sessions())
                    return
            time.sleep(0.002)

    watcher = threading.Thread(target=kill_when_copying)
    watcher.start()
    code = edgeship("device", "run", bundle, "--all", "--inventory", inventory, "--seconds", "0.05")
    watcher.join()
    capsys.readouterr()
    assert killed and killed[0] >= 1, "the copy finished before it could be cut; make big.bin bigger"
    assert code == 2
    result = device_json(run_folder / "devices", "flaky")
    assert result["stage"] == "copy" and "lost" in result["reason"]
    live = remote_bundle(workdir, bundle)
    assert bundle_files(live) == before  # the previous version, whole
    assert not list(live.rglob("*.upload"))

    assert edgeship("device", "run", bundle, "--all", "--inventory", inventory, "--seconds", "0.05") == 0
    assert bundle_files(live) == bundle_files(bundle)
    assert not list(bundles.glob(".*.partial")) and not list(bundles.rglob("*.upload"))
    assert len([p for p in bundles.iterdir() if p.is_dir() and not p.is_symlink()]) == 1


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a full disk is a small tmpfs, and mounting one needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_is_named_and_leaves_no_bundle(sshd, warm_venv, run_folder, tiny_disk, tmp_path, capsys):
    bundle = run_folder / "bundle"
    inventory = write_inventory(tmp_path / "devices.toml", [
        sshd.device("full", tiny_disk / "edgeship", venv=str(warm_venv)),
        sshd.device("roomy", tmp_path / "roomy", venv=str(warm_venv)),
    ])
    code = edgeship("device", "run", bundle, "--all", "--inventory", inventory, "--seconds", "0.05")
    capsys.readouterr()
    assert code == 2
    full = device_json(run_folder / "devices", "full")
    assert full["stage"] == "copy" and "no space left" in full["reason"]
    assert not remote_bundle(tiny_disk / "edgeship", bundle).exists()
    assert device_json(run_folder / "devices", "roomy")["status"] == "pass"


def fake_venv(folder: Path, warm_venv: Path, script: str) -> Path:
    """A device venv whose python is `script` (a shell script ending in the real venv's python), marked as up to date."""
    (folder / "bin").mkdir(parents=True)
    shutil.copy2(warm_venv / ".edgeship-wheels.json", folder / ".edgeship-wheels.json")
    wrapper = folder / "bin" / "python"
    wrapper.write_text(script)
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return folder


def run_beside_a_healthy_device(sshd, warm_venv: Path, bundle: Path, tmp_path: Path, name: str, venv: Path, capsys) -> tuple[int, str]:
    """`device run --all` on two devices, "healthy" (the warm venv) and `name` (its own venv): the exit code and the output."""
    inventory = write_inventory(tmp_path / "devices.toml", [
        sshd.device("healthy", tmp_path / "healthy", venv=str(warm_venv)),
        sshd.device(name, tmp_path / name, venv=str(venv)),
    ])
    code = edgeship("device", "run", bundle, "--all", "--inventory", inventory, "--seconds", "0.05")
    return code, capsys.readouterr().out


def test_selftest_failing_on_one_device_only(sshd, warm_venv, run_folder, tmp_path, capsys):
    """One device's runtime computes in half precision: its selftest fails (❌ fail), the other passes, exit 1.

    A float model run in fp16 (a GPU delegate's or NNAPI's relaxed float, an NPU) gives float32
    outputs that carry only fp16's 11 significant bits. That device is made here by a
    sitecustomize on its Python's path that rounds ONNX Runtime's float outputs to fp16: its bundle
    is intact (every sha256 passes) and the real runtime runs the real model, but its probabilities
    differ from the workstation's golden ones by up to ~2e-4, past the fp32 gate's max |Δp| of 1e-4,
    while the argmax still agrees. That is a failed gate, not an error: the bench still runs, and the
    row names the numbers.
    """
    bundle = run_folder / "bundle"
    half = tmp_path / "half-precision"
    half.mkdir()
    (half / "sitecustomize.py").write_text(textwrap.dedent("""\
        import numpy as np
        import onnxruntime

        _run = onnxruntime.InferenceSession.run


        def run(self, *args, **kwargs):
            return [out.astype(np.float16).astype(out.dtype) if out.dtype == np.float32 else out for out in _run(self, *args, **kwargs)]


        onnxruntime.InferenceSession.run = run
    """))
    venv = fake_venv(tmp_path / "half-venv", warm_venv, f'#!/bin/sh\nPYTHONPATH={half} exec {warm_venv}/bin/python "$@"\n')
    code, out = run_beside_a_healthy_device(sshd, warm_venv, bundle, tmp_path, "halfp", venv, capsys)
    assert code == 1, out
    failing = device_json(run_folder / "devices", "halfp")
    assert failing["selftest"] == "fail" and failing["status"] == "fail"
    assert failing["reason"].startswith("selftest: self-test failed for onnx: ") and "max |Δp|" in failing["reason"]
    selftest = json.loads((run_folder / "devices" / "halfp" / "selftest.json").read_text())
    (onnx,) = [row for row in selftest["rows"] if row["artifact"] == "onnx"]
    assert onnx["status"] == "fail" and onnx["agreement"] == 1.0 and 1e-4 < onnx["max_abs_diff"] < 1e-3
    assert (run_folder / "devices" / "halfp" / "bench.json").is_file()  # a failed gate still benches
    assert device_json(run_folder / "devices", "healthy")["status"] == "pass"
    (row,) = [line for line in out.splitlines() if line.startswith("| halfp |")]
    assert row.startswith("| halfp | ❌ fail | onnx") and "| ❌ fail | selftest: self-test failed for onnx: max \\|Δp\\| " in row
    assert "| healthy | ✅ pass |" in out


def test_damaged_file_on_one_device_is_a_selftest_error(sshd, warm_venv, run_folder, tmp_path, capsys):
    """One device's storage damages a model file after it was written: its selftest cannot run (⚠️ error), the others pass, exit 1."""
    bundle = run_folder / "bundle"
    damaged_file = next(name for name in bundle_files(bundle) if name.endswith(".onnx"))
    faulty_venv = fake_venv(tmp_path / "faulty-venv", warm_venv, (
        "#!/bin/sh\n"
        "# A device whose storage flips bytes of a model file once it is written, then the real runtime runs.\n"
        f'for arg; do case "$arg" in */bundles/*) target="$arg/{damaged_file}";; esac; done\n'
        f'[ -n "$target" ] && printf "\\377\\377\\377\\377" | dd of="$target" bs=1 seek=64 conv=notrunc 2>/dev/null\n'
        f'exec {warm_venv}/bin/python "$@"\n'
    ))
    code, out = run_beside_a_healthy_device(sshd, warm_venv, bundle, tmp_path, "damaged", faulty_venv, capsys)
    assert code == 1, out
    damaged = device_json(run_folder / "devices", "damaged")
    assert damaged["selftest"] == "error" and damaged["status"] == "error" and damaged["stage"] == "selftest"
    assert not (run_folder / "devices" / "damaged" / "bench.json").exists()  # a selftest that cannot run stops there
    assert "sha256" in damaged["reason"] and damaged_file.split("/")[-1] in damaged["reason"]
    assert device_json(run_folder / "devices", "healthy")["status"] == "pass"
    assert "| damaged | ⚠️ error |" in out
