"""edgeship.files: atomic writers leave the old file or the new one, never a part, with the usual permissions."""

from __future__ import annotations

import stat

import pytest

from edgeship.errors import OutputError
from edgeship.files import atomic_directory, atomic_path, atomic_write_json, ensure_directory, sha256_file


def test_atomic_write_replaces_and_keeps_normal_permissions(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert target.read_text().strip().endswith("}") and '"a": 2' in target.read_text()
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode & 0o044 == 0o044, oct(mode)
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_failure_inside_a_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_atomic_directory_swaps_the_whole_folder_or_nothing(tmp_path):
    bundle = tmp_path / "bundle"
    with atomic_directory(bundle) as staging:
        (staging / "a.txt").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_directory(bundle) as staging:
            (staging / "b.txt").write_text("2")
            raise RuntimeError("export failed")
    assert sorted(p.name for p in bundle.iterdir()) == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_output_below_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        ensure_directory(tmp_path / "file")
    with pytest.raises(OutputError, match="a part of the path is a file"):
        ensure_directory(tmp_path / "file" / "sub")


def test_sha256_of_a_known_file(tmp_path):
    (tmp_path / "x").write_bytes(b"abc")
    assert sha256_file(tmp_path / "x") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_check_writable_refuses_before_creating_anything(tmp_path):
    from edgeship.files import check_writable

    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    assert check_writable(tmp_path / "new" / "deeper" / "out.json") == tmp_path / "new" / "deeper" / "out.json"
    assert not (tmp_path / "new").exists()
    with pytest.raises(OutputError, match="is a folder, not a file"):
        check_writable(tmp_path / "folder")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_writable(tmp_path / "file", folder=True)
    with pytest.raises(OutputError, match=r"a part of the path is a file"):
        check_writable(tmp_path / "file" / "out.json")


def test_a_killed_exports_leftovers_are_removed_by_the_next_one(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    (tmp_path / f".bundle.{dead}.abc.staging").mkdir()
    (tmp_path / f".bundle.{dead}.old").mkdir()
    (tmp_path / ".bundle.1.keep").mkdir()
    with atomic_directory(tmp_path / "bundle") as staging:
        (staging / "manifest.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".bundle.1.keep", "bundle"]
