"""A full disk and a read-only folder are reported as such, and leave the previous output whole.

The disk is a 1 MiB tmpfs and the read-only folder a read-only bind mount, both mounted for the
test; that needs root and the right to mount (a container may refuse), else these tests skip with
the reason. As root, chmod alone does not stop writes, so a mount is the honest way to test this.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edgeship.errors import OutputError
from edgeship.files import atomic_write_bytes, atomic_write_json


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


def _unmount(point: Path) -> None:
    subprocess.run(["umount", str(point)], capture_output=True, timeout=30)
    if os.path.ismount(point):
        subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=30)


def _mount_or_skip(point: Path, *args: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a test file system needs root")
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    point.mkdir(parents=True, exist_ok=True)
    result = _mount(*args, str(point))
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip() or result.returncode})")


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs: a full bundle (about 1.4 MB) does not fit."""
    point = tmp_path / "small-disk"
    _mount_or_skip(point, "-t", "tmpfs", "-o", "size=1m", "tmpfs")
    yield point
    _unmount(point)


@pytest.fixture
def read_only(tmp_path):
    """A folder seen through a read-only bind mount; its source stays writable for setting up."""
    source = tmp_path / "source"
    source.mkdir()
    point = tmp_path / "read-only"
    _mount_or_skip(point, "--bind", str(source))
    result = _mount("-o", "remount,bind,ro", str(point))
    if result.returncode != 0:
        _unmount(point)
        pytest.skip(f"cannot remount read-only here ({result.stderr.strip()})")
    yield source, point
    _unmount(point)


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def test_export_onto_a_full_disk_says_so_and_leaves_nothing(cli, refused, mlp_run, small_disk):
    result = cli("edgeship", "export", mlp_run.model_path, "--out", small_disk / "bundle", "--calibration-images", "50")
    line = refused(result, "edgeship", "no space left on the device", "free some space", after_progress=True)
    assert f"{small_disk / 'bundle'}/model" in line and ".staging" not in line
    assert list(small_disk.iterdir()) == []
    assert shutil.disk_usage(small_disk).used < 64 * 1024


def test_a_full_disk_keeps_the_previous_bundle_whole(cli, refused, mlp_run, bundle_path, small_disk):
    out = small_disk / "bundle"
    out.mkdir()
    for name in ("manifest.json", "golden.npz", "model_int8.tflite"):
        shutil.copy(bundle_path / name, out / name)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    result = cli("edgeship", "export", mlp_run.model_path, "--out", out, "--calibration-images", "50")
    refused(result, "edgeship", "no space left on the device", after_progress=True)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    assert hidden_leftovers(small_disk) == []


def test_json_and_model_writers_on_a_full_disk(cli, refused, bundle_path, small_disk, mlp_run):
    filler = small_disk / "filler"
    with open(filler, "wb") as stream:
        try:
            while True:
                stream.write(b"\0" * 65536)
                stream.flush()
        except OSError:
            pass
    result = cli("runtime", "bench", bundle_path, "--artifact", "onnx", "--batch", "1", "--seconds", "0.05",
                 "--json", small_disk / "bench.json")
    refused(result, "runtime", "no space left on the device", "bench.json", after_progress=True)
    with pytest.raises(OutputError, match="no space left on the device"):
        atomic_write_bytes(small_disk / "model.keras", Path(mlp_run.model_path).read_bytes())
    with pytest.raises(OutputError, match="no space left"):
        atomic_write_json(small_disk / "metrics.json", {"numbers": list(range(100_000))})
    assert sorted(path.name for path in small_disk.iterdir()) == ["filler"]


def test_training_onto_a_full_disk_keeps_no_half_model(small_disk, sample_dataset):
    from edgeship.train import train_model

    with pytest.raises(OutputError, match="no space left on the device while writing .*model.keras"):
        train_model("mlp", sample_dataset, epochs=1, seed=0, out=small_disk / "run", progress=False)
    leftovers = [path.name for path in (small_disk / "run").iterdir()] if (small_disk / "run").exists() else []
    assert "model.keras" not in leftovers and not any(name.startswith(".model.keras") for name in leftovers)


@pytest.mark.parametrize(
    "program, argv, words",
    [
        ("edgeship", ["export", "{model}", "--out", "{ro}/bundle"], ("read-only file system",)),
        ("edgeship", ["export", "{model}", "--out", "{ro}/kept"], ("read-only file system",)),
        ("edgeship", ["train", "--out", "{ro}/run"], ("read-only file system",)),
        ("edgeship", ["data", "--json", "{ro}/summary.json"], ("read-only file system",)),
        ("edgeship", ["verify", "{bundle}", "--json", "{ro}/verify.json"], ("read-only file system",)),
        ("runtime", ["bench", "{bundle}", "--json", "{ro}/bench.json"], ("read-only file system",)),
        ("runtime", ["selftest", "{bundle}", "--json", "{ro}/selftest.json"], ("read-only file system",)),
    ],
)
def test_read_only_output_is_refused_before_any_work(cli, refused, mlp_run, bundle_path, read_only, program, argv, words):
    source, point = read_only
    shutil.copytree(bundle_path, source / "kept")
    before = {path.name: path.read_bytes() for path in (source / "kept").iterdir()}
    argv = [part.format(model=mlp_run.model_path, bundle=bundle_path, ro=point) for part in argv]
    refused(cli(program, *argv), program, *words, "choose a folder you can write to")
    assert {path.name: path.read_bytes() for path in (source / "kept").iterdir()} == before
    assert sorted(path.name for path in source.iterdir()) == ["kept"]


def test_read_only_reached_while_writing_is_named_too(read_only):
    _, point = read_only
    with pytest.raises(OutputError, match="the file system is read-only"):
        atomic_write_bytes(point / "new-folder" / "file.bin", b"x")
