"""A real `edgeship export` killed with SIGKILL at several points: the output folder holds the previous bundle or none, never a mix.

Each kill lands on an event watched in the file system or on stderr (start-up, the staging folder
appearing, the first model file in it, the ONNX conversion, the golden set staged, the manifest's
temporary file), so the points do not depend on the machine's speed; the last ones may lose the race
to the swap, and then the export has finished and its new bundle must be whole. A bundle counts as whole when its manifest lists exactly the
files in the folder and each file has the recorded sha256.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from edgeship.export import export_bundle
from edgeship.files import sha256_file
from edgeship.manifest import MANIFEST_NAME, load_manifest

PREVIOUS_FORMATS = "tflite-fp32,onnx"
KILLED_FORMATS = "tflite-fp32,tflite-int8,onnx"
EVENT_TIMEOUT_S = 120


def staging_folders(parent: Path, name: str) -> list[Path]:
    return sorted(parent.glob(f".{name}.*.staging"))


def whole_bundle(folder: Path) -> dict[str, bytes]:
    """The bundle's files after checking that the manifest lists exactly them, each with its recorded sha256."""
    manifest = load_manifest(folder)
    listed = {artifact.file: artifact.sha256 for artifact in manifest.artifacts if artifact.has_file}
    listed[manifest.golden["file"]] = manifest.golden["sha256"]
    present = {path.name for path in folder.iterdir()}
    assert present == set(listed) | {MANIFEST_NAME}, (present, listed)
    for name, digest in listed.items():
        assert sha256_file(folder / name) == digest, name
    return {name: (folder / name).read_bytes() for name in present}


def export_until(model: Path, out: Path, log: Path, event: Callable[[], bool]) -> bool:
    """Start `edgeship export`, SIGKILL it as soon as `event()` holds; True when it was killed before finishing."""
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "edgeship.cli", "export", str(model), "--formats", KILLED_FORMATS, "--out", str(out),
             "--calibration-images", "100"],
            stdout=subprocess.DEVNULL, stderr=stderr,
        )
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if event():
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        return_code = process.wait(timeout=EVENT_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert time.monotonic() < deadline, "the event never came: " + log.read_text()
    return return_code == -signal.SIGKILL


def after(seconds: float) -> Callable[[], bool]:
    start = time.monotonic()
    return lambda: time.monotonic() - start >= seconds


def in_staging(parent: Path, name: str, pattern: str | None) -> Callable[[], bool]:
    """True once a staging folder exists (holding a file that matches `pattern`, when given)."""
    def seen() -> bool:
        folders = staging_folders(parent, name)
        return bool(folders) and (pattern is None or any(any(folder.glob(pattern)) for folder in folders))
    return seen


def on_stderr(log: Path, text: str) -> Callable[[], bool]:
    return lambda: log.exists() and text in log.read_text()


@pytest.fixture(scope="module")
def previous_bundle(tmp_path_factory, mlp_run, sample_dataset) -> Path:
    """A complete bundle exported once, with other formats than the interrupted runs ask for, to copy before each kill."""
    return export_bundle(mlp_run.model_path, tmp_path_factory.mktemp("previous") / "bundle", formats=PREVIOUS_FORMATS,
                         dataset=sample_dataset, calibration_images=100).bundle


KILL_POINTS = {
    "during start-up": lambda parent, log: after(0.3),
    "when the staging folder appears": lambda parent, log: in_staging(parent, "bundle", None),
    "when the first model file is staged": lambda parent, log: in_staging(parent, "bundle", "model_fp32.tflite"),
    "while converting to ONNX": lambda parent, log: on_stderr(log, "exporting onnx"),
    "when the golden set is staged": lambda parent, log: in_staging(parent, "bundle", "golden.npz"),
    "while the manifest is written": lambda parent, log: in_staging(parent, "bundle", f".{MANIFEST_NAME}.*"),
}


@pytest.mark.parametrize(
    "point, with_previous",
    [*((point, True) for point in KILL_POINTS), ("when the staging folder appears", False), ("while the manifest is written", False)],
)
def test_a_killed_export_leaves_the_previous_bundle_or_none(mlp_run, previous_bundle, tmp_path, point, with_previous):
    out = tmp_path / "bundle"
    before = None
    if with_previous:
        subprocess.run(["cp", "-a", str(previous_bundle), str(out)], check=True)
        before = whole_bundle(out)
    log = tmp_path / "export.log"
    killed = export_until(Path(mlp_run.model_path), out, log, KILL_POINTS[point](tmp_path, log))
    if not out.exists():
        assert killed, "an export that finished must leave its bundle"
        return
    now = whole_bundle(out)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    names = [artifact["name"] for artifact in manifest["artifacts"]]
    if names == PREVIOUS_FORMATS.split(","):
        assert now == before, "the previous bundle changed"
    else:
        assert names == KILLED_FORMATS.split(","), names


def test_a_killed_export_can_be_run_again_and_leaves_no_stray_folders(mlp_run, previous_bundle, tmp_path):
    out = tmp_path / "bundle"
    subprocess.run(["cp", "-a", str(previous_bundle), str(out)], check=True)
    log = tmp_path / "export.log"
    assert export_until(Path(mlp_run.model_path), out, log, in_staging(tmp_path, "bundle", "model_fp32.tflite"))
    assert staging_folders(tmp_path, "bundle"), "the kill left its staging folder, as a SIGKILL must"
    rerun = subprocess.run(
        [sys.executable, "-m", "edgeship.cli", "export", str(mlp_run.model_path), "--formats", KILLED_FORMATS, "--out", str(out),
         "--calibration-images", "100"],
        capture_output=True, text=True, timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert [artifact.name for artifact in load_manifest(out).artifacts] == KILLED_FORMATS.split(",")
    whole_bundle(out)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bundle", "export.log"]
    assert os.listdir(out)
