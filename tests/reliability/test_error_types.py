"""Every error type in edgeship.errors is raised for real by at least one test, and none is forgotten when a new one is added.

Each type gets one genuine cause here (no stand-ins), checked for its exact type; a static scan
then makes sure every type also appears in a `pytest.raises(...)` somewhere under tests/.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import edgeship.errors as errors
from edgeship.errors import (
    BackendUnavailableError,
    BundleError,
    DatasetError,
    DeviceError,
    EdgeshipError,
    ExportError,
    GateFailedError,
    InputError,
    IntegrityError,
    MissingDependencyError,
    ModelError,
    OutputError,
    UsageError,
)
from edgeship.files import ensure_directory, sha256_file
from edgeship.manifest import MANIFEST_NAME, InputSpec, load_manifest
from edgeship.runtime import Classifier

TESTS = Path(__file__).resolve().parents[1]
ERROR_TYPES = sorted(
    (value for value in vars(errors).values()
     if inspect.isclass(value) and issubclass(value, EdgeshipError) and value is not EdgeshipError),
    key=lambda kind: kind.__name__,
)


def raise_usage_error(bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="threads must be a positive integer"):
        Classifier.load(bundle, threads=0)


def raise_missing_dependency_error(bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeship.runtime.images import PictureRule, read_images

    (tmp_path / "digit.png").write_bytes(b"\x89PNG")
    monkeypatch.setitem(sys.modules, "PIL", None)  # Pillow absent, as on a slim device install
    with pytest.raises(MissingDependencyError, match=r"needs Pillow: pip install 'edgeship\[images\]'"):
        read_images([tmp_path / "digit.png"], PictureRule(28, 28))


def raise_dataset_error(bundle: Path, tmp_path: Path) -> None:
    from edgeship.data import load_dataset

    with pytest.raises(DatasetError, match="holds no IDX files"):
        load_dataset(tmp_path)


def raise_model_error(bundle: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.tflite"
    cut.write_bytes((bundle / "model_fp32.tflite").read_bytes()[:1000])
    with pytest.raises(ModelError, match="is not a valid TFLite model"):
        Classifier.load(cut)


def raise_export_error(bundle: Path, tmp_path: Path, model_path: Path) -> None:
    import keras

    from edgeship.export.base import ExportOptions
    from edgeship.export.edgetpu import export_edgetpu

    options = ExportOptions(
        input_shape=(28, 28), input_spec=InputSpec(shape=[28, 28]), labels=[str(i) for i in range(10)],
        output_kind="probabilities", calibration_images=np.zeros((1, 28, 28), np.uint8),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", str(tmp_path))
        with pytest.raises(ExportError, match="edgetpu_compiler"):
            export_edgetpu(keras.saving.load_model(model_path, compile=False), tmp_path / "model_edgetpu.tflite", options)


def raise_bundle_error(bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="has no manifest.json"):
        load_manifest(tmp_path)


def raise_integrity_error(bundle: Path, tmp_path: Path) -> None:
    from edgeship.runtime.bundle import verify_file

    with pytest.raises(IntegrityError, match="does not match its manifest"):
        verify_file(bundle / "model.onnx", "0" * 64)


def raise_input_error(bundle: Path, tmp_path: Path) -> None:
    with Classifier.load(bundle) as classifier, pytest.raises(InputError, match="NaN or infinite"):
        classifier.predict(np.full((28, 28), np.nan))


def raise_backend_unavailable_error(bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="cuda"):
        Classifier.load(bundle, artifact="onnx", providers=["cuda"])


def raise_output_error(bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        ensure_directory(tmp_path / "file")


def raise_gate_failed_error(bundle: Path, tmp_path: Path) -> None:
    from edgeship.runtime.selftest import raise_if_failed, selftest_bundle

    copy = swap_golden_answers(bundle, tmp_path / "bundle")
    with pytest.raises(GateFailedError, match="self-test failed for"):
        raise_if_failed(selftest_bundle(copy))


def raise_device_error(bundle: Path, tmp_path: Path) -> None:
    import asyncio
    import socket

    from edgeship.devices.inventory import parse_device
    from edgeship.devices.transport import SSHTransport

    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "known_hosts").write_text("")
    device = parse_device("nowhere", {"host": "127.0.0.1", "port": port, "known_hosts": str(tmp_path / "known_hosts")})
    with pytest.raises(DeviceError, match=f"nowhere: cannot connect to 127.0.0.1:{port}"):
        asyncio.run(SSHTransport(device).open())


def swap_golden_answers(bundle: Path, copy: Path) -> Path:
    """A copy of the bundle whose golden probabilities belong to other images (sha256 updated, so only the gates object)."""
    import shutil

    shutil.copytree(bundle, copy)
    with np.load(copy / "golden.npz") as golden:
        arrays = dict(golden)
    arrays["probabilities"] = np.roll(arrays["probabilities"], 1, axis=0)
    np.savez(copy / "golden.npz", **arrays)
    manifest = json.loads((copy / MANIFEST_NAME).read_text())
    manifest["golden"]["sha256"] = sha256_file(copy / "golden.npz")
    (copy / MANIFEST_NAME).write_text(json.dumps(manifest))
    return copy


TRIGGERS = {
    "UsageError": raise_usage_error,
    "MissingDependencyError": raise_missing_dependency_error,
    "DatasetError": raise_dataset_error,
    "ModelError": raise_model_error,
    "ExportError": raise_export_error,
    "BundleError": raise_bundle_error,
    "IntegrityError": raise_integrity_error,
    "InputError": raise_input_error,
    "BackendUnavailableError": raise_backend_unavailable_error,
    "OutputError": raise_output_error,
    "GateFailedError": raise_gate_failed_error,
    "DeviceError": raise_device_error,
}


def test_every_error_type_has_a_trigger():
    assert sorted(TRIGGERS) == [kind.__name__ for kind in ERROR_TYPES]


@pytest.mark.parametrize("kind", ERROR_TYPES, ids=lambda kind: kind.__name__)
def test_each_error_type_is_raised_for_real(kind, bundle_path, tmp_path, monkeypatch, mlp_run):
    trigger = TRIGGERS[kind.__name__]
    extra = {"monkeypatch": monkeypatch, "model_path": Path(mlp_run.model_path)}
    wanted = inspect.signature(trigger).parameters
    trigger(bundle_path, tmp_path, **{name: value for name, value in extra.items() if name in wanted})
    assert kind.exit_code == (1 if kind is GateFailedError else 2)


def test_a_failed_gate_exits_1_with_one_line(cli, refused, bundle_path, tmp_path):
    copy = swap_golden_answers(bundle_path, tmp_path / "bundle")
    result = cli("runtime", "selftest", copy)
    line = refused(result, "runtime", "self-test failed for", "agreement", code=1)
    assert "tflite-int8" in line and "onnx" in line


def test_a_missing_pillow_is_one_line_naming_the_extra(cli, refused, bundle_path, tmp_path):
    from PIL import Image

    Image.new("L", (28, 28)).save(tmp_path / "digit.png")
    code = (
        "import sys; sys.modules['PIL'] = None\n"
        "from edgeship.runtime.cli import main\n"
        f"sys.exit(main(['predict', {str(bundle_path)!r}, {str(tmp_path / 'digit.png')!r}]))"
    )
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    refused(result, "runtime", "needs Pillow", "edgeship[images]", ".npy")


def test_every_error_type_appears_in_a_pytest_raises_under_tests():
    sources = "\n".join(path.read_text() for path in TESTS.rglob("*.py"))
    raised = set(re.findall(r"pytest\.raises\(\(?\s*([A-Za-z_][\w, ]*)", sources))
    names = {name.strip() for group in raised for name in group.split(",")}
    missing = [kind.__name__ for kind in ERROR_TYPES if kind.__name__ not in names]
    assert missing == []
