"""Broken bundles through the runtime's command line and the API: missing or malformed manifests, escaping paths, tampered files.

Paths that lead out of the bundle are refused before anything is opened: the tests point them at a
FIFO outside the bundle (opening it would block, and the command's timeout would fail the test) and
record every file Python opens while loading.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeship.errors import BundleError, EdgeshipError, IntegrityError, ModelError
from edgeship.manifest import MANIFEST_NAME, load_manifest
from edgeship.runtime import Classifier


def edit_manifest(bundle: Path, edit) -> None:
    path = bundle / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def artifact_entry(manifest: dict, name: str) -> dict:
    return next(entry for entry in manifest["artifacts"] if entry["name"] == name)


_opened: list[str] | None = None


def _record_opens(event: str, args: tuple) -> None:
    if _opened is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _opened.append(os.fsdecode(args[0]))


sys.addaudithook(_record_opens)


def files_opened_while(action) -> list[Path]:
    """The paths Python opened (builtin open, os.open, numpy loads) while `action` ran, resolved."""
    global _opened
    _opened = []
    try:
        action()
    finally:
        opened, _opened = _opened, None
    return [Path(name).resolve() for name in opened]


@pytest.mark.parametrize("command", ["predict", "selftest", "bench"])
def test_a_folder_without_manifest(cli, refused, tmp_path, digit_npy, command):
    (tmp_path / "model_fp32.tflite").write_bytes(b"x")
    extra = [digit_npy] if command == "predict" else []
    refused(cli("runtime", command, tmp_path, *extra), "runtime", "has no manifest.json", "edgeship export")


@pytest.mark.parametrize(
    "content, words",
    [
        ('{"schema": "edgeship.bundle/1", "labels": [', ("not valid json", "re-export")),
        ("", ("not valid json",)),
        (b"\xff\xfe\x00garbage", ("not valid json",)),
        ("[1, 2, 3]", ("must hold a json object",)),
        ('"a string"', ("must hold a json object",)),
        ('{"schema": "edgeship.bundle/99"}', ("schema 'edgeship.bundle/99'", "upgrade edgeship")),
        ('{"labels": ["a", "b"]}', ("schema none",)),
    ],
)
def test_unreadable_manifests(cli, refused, bundle_copy, digit_npy, content, words):
    path = bundle_copy / MANIFEST_NAME
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    refused(cli("runtime", "predict", bundle_copy, digit_npy), "runtime", *words)
    with pytest.raises(BundleError):
        load_manifest(bundle_copy)


@pytest.mark.parametrize(
    "drop, field",
    [
        (lambda m: m.pop("labels"), "manifest.labels"),
        (lambda m: m.pop("input"), "manifest.input"),
        (lambda m: m.pop("artifacts"), "manifest.artifacts"),
        (lambda m: m["input"].pop("shape"), "input.shape"),
        (lambda m: artifact_entry(m, "tflite-fp32").pop("sha256"), "sha256"),
        (lambda m: artifact_entry(m, "onnx").pop("file"), "file"),
        (lambda m: artifact_entry(m, "tflite-int8")["input"].pop("dtype"), "input.dtype"),
        (lambda m: m["golden"].pop("sha256"), "golden.sha256"),
    ],
)
def test_a_missing_field_is_named(cli, refused, bundle_copy, digit_npy, drop, field):
    before = (bundle_copy / MANIFEST_NAME).read_text()
    edit_manifest(bundle_copy, drop)
    refused(cli("runtime", "predict", bundle_copy, digit_npy), "runtime", "missing the field", field, "re-export")
    assert (bundle_copy / MANIFEST_NAME).read_text() != before


@pytest.mark.parametrize(
    "field, value, words",
    [
        (("input", "value_range"), "0..255", "input.value_range"),
        (("input", "scale"), "1/255", "input.scale"),
        (("input", "shape"), [], "input.shape"),
        (("input", "layout"), "NWHC", "input.layout"),
        (("labels",), ["only one"], "at least 2 class names"),
        (("output_kind",), "scores", "output_kind"),
    ],
)
def test_a_field_of_the_wrong_kind_is_named(cli, refused, bundle_copy, digit_npy, field, value, words):
    def set_field(manifest):
        target = manifest
        for key in field[:-1]:
            target = target[key]
        target[field[-1]] = value

    edit_manifest(bundle_copy, set_field)
    refused(cli("runtime", "predict", bundle_copy, digit_npy), "runtime", words)


@pytest.mark.parametrize("command", ["predict", "selftest"])
@pytest.mark.parametrize("how", ["climbs", "absolute", "backslashes", "symlink"])
def test_paths_out_of_the_bundle_are_refused_before_anything_is_opened(cli, refused, bundle_copy, tmp_path, digit_npy, command, how):
    trap = tmp_path / "outside.fifo"
    os.mkfifo(trap)
    name = {
        "climbs": "../outside.fifo",
        "absolute": str(trap),
        "backslashes": "..\\outside.fifo",
        "symlink": "inside.tflite",
    }[how]
    if how == "symlink":
        os.symlink(trap, bundle_copy / name)

    def point_everything_at_the_trap(manifest):
        for entry in manifest["artifacts"]:
            if entry["status"] in ("pass", "fail", "unchecked"):
                entry["file"] = name
        manifest["golden"]["file"] = name

    edit_manifest(bundle_copy, point_everything_at_the_trap)
    extra = [digit_npy] if command == "predict" else []
    line = refused(cli("runtime", command, bundle_copy, *extra, timeout=60), "runtime", "outside the bundle")
    assert "outside.fifo" in line or name in line


def test_no_file_outside_the_bundle_is_opened_when_the_manifest_points_out(bundle_copy, tmp_path):
    outside = tmp_path / "elsewhere.tflite"
    shutil.copy(bundle_copy / "model_fp32.tflite", outside)
    os.symlink(outside, bundle_copy / "link.tflite")
    for name in ("../elsewhere.tflite", "../../etc/passwd", "/etc/passwd", str(outside), "link.tflite"):
        edit_manifest(bundle_copy, lambda m: artifact_entry(m, "tflite-fp32").update(file=name))

        def load():
            with pytest.raises(BundleError, match="outside the bundle"):
                Classifier.load(bundle_copy, artifact="tflite-fp32")

        opened = files_opened_while(load)
        assert opened, "the audit hook saw nothing: the manifest at least must have been read"
        assert all(path == (bundle_copy / MANIFEST_NAME).resolve() for path in opened), opened


def test_a_file_whose_sha256_differs_is_refused_unless_told(cli, refused, bundle_copy, digit_npy, test_images):
    path = bundle_copy / "model.onnx"
    damaged = bytearray(path.read_bytes())
    damaged[-100] ^= 0x40
    path.write_bytes(bytes(damaged))
    line = refused(cli("runtime", "predict", bundle_copy, digit_npy, "--artifact", "onnx"), "runtime",
                   "model.onnx does not match its manifest", "--no-verify")
    assert "sha256" in line
    with pytest.raises(IntegrityError, match="copy the bundle again"):
        Classifier.load(bundle_copy, artifact="onnx")
    trusted = cli("runtime", "predict", bundle_copy, digit_npy, "--artifact", "onnx", "--no-verify")
    assert trusted.returncode == 0 and trusted.stderr == "", trusted.stderr


def test_a_damaged_golden_set_fails_the_selftest_check(cli, refused, bundle_copy):
    golden = bundle_copy / "golden.npz"
    golden.write_bytes(golden.read_bytes()[:-10])
    refused(cli("runtime", "selftest", bundle_copy), "runtime", "golden.npz does not match its manifest")
    refused(cli("runtime", "selftest", bundle_copy, "--no-verify"), "runtime", "golden.npz", "re-export")
    refused(cli("runtime", "bench", bundle_copy, "--seconds", "0.01"), "runtime", "golden.npz", "re-export")


def test_a_missing_artifact_file(cli, refused, bundle_copy, digit_npy):
    (bundle_copy / "model_int8.tflite").unlink()
    refused(cli("runtime", "predict", bundle_copy, digit_npy), "runtime", "model_int8.tflite is missing", "copy the whole bundle")
    with pytest.raises(ModelError, match="missing from the bundle"):
        Classifier.load(bundle_copy)


def test_a_manifest_symlinked_from_elsewhere_still_names_only_bundle_files(bundle_copy, tmp_path, test_images):
    real = tmp_path / "kept-manifest.json"
    shutil.move(bundle_copy / MANIFEST_NAME, real)
    os.symlink(real, bundle_copy / MANIFEST_NAME)
    with Classifier.load(bundle_copy, artifact="onnx") as classifier:
        assert classifier.predict(test_images[:5]).shape == (5,)


MANIFEST_PATHS = [
    ("schema",), ("labels",), ("labels", 0), ("input",), ("input", "shape"), ("input", "shape", 0), ("input", "scale"),
    ("input", "mean"), ("input", "std"), ("input", "layout"), ("input", "value_range"), ("input", "value_range", 1),
    ("artifacts",), ("artifacts", 0), ("artifacts", 0, "status"), ("artifacts", 0, "format"), ("artifacts", 0, "file"),
    ("artifacts", 0, "sha256"), ("artifacts", 0, "input"), ("artifacts", 0, "input", "shape"), ("artifacts", 3, "input", "quantization"),
    ("artifacts", 3, "input", "quantization", "scale"), ("artifacts", 3, "output", "quantization", "zero_point"),
    ("output_kind",), ("golden",), ("golden", "file"), ("golden", "sha256"),
]
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.just("../../etc/passwd"), st.just("/etc/passwd"), st.lists(st.integers(-3, 40), max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.tuples(st.sampled_from(MANIFEST_PATHS), st.one_of(st.just("delete"), ODD_VALUES)), min_size=1, max_size=3))
def test_any_damaged_manifest_loads_or_raises_our_error(bundle_copy, test_images, changes):
    original = json.loads((bundle_copy / MANIFEST_NAME).read_text())
    manifest = copy.deepcopy(original)
    for path, value in changes:
        parent = manifest
        try:
            for key in path[:-1]:
                parent = parent[key]
            if value == "delete":
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    (bundle_copy / MANIFEST_NAME).write_text(json.dumps(manifest))
    try:
        with Classifier.load(bundle_copy) as classifier:
            predicted = classifier.predict(test_images[:8])
        assert predicted.shape == (8,) and predicted.dtype == np.int64
    except EdgeshipError:
        pass
    finally:
        (bundle_copy / MANIFEST_NAME).write_text(json.dumps(original))
