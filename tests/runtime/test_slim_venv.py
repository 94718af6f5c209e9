"""The runtime in venvs holding only a device install: edgeship[litert], edgeship[onnx], edgeship[tflite].

Each venv is built once under ~/.cache/edgeship/venvs/, keyed on pyproject.toml and the extra (the
dependencies); edgeship itself is a wheel built from a copy of the sources and reinstalled with
--no-deps whenever the sources change. In each venv the command line predicts a bundle exported by
the full stack and must give the full stack's probabilities, the golden self-test must pass, and
importing the runtime must leave TensorFlow, Keras, matplotlib and onnx unloaded (not even installed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from edgeship.files import exclusive_lock
from edgeship.manifest import load_manifest
from edgeship.runtime import Classifier

pytestmark = pytest.mark.slimvenv

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("EDGESHIP_VENV_CACHE", Path.home() / ".cache" / "edgeship" / "venvs"))
EXTRAS = {"litert": ("litert",), "onnx": ("onnxruntime",), "tflite": ("litert",)}
HEAVY = ("tensorflow", "keras", "matplotlib", "onnx", "tf2onnx", "PIL")


def _digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _isolated(command: list[str], timeout: int) -> subprocess.CompletedProcess:
    """Run outside the checkout (so `python -m` cannot import its sources) with no PYTHONPATH."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=tempfile.gettempdir(), env=env)


def _run(command: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    done = _isolated(command, timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


@pytest.fixture(scope="session")
def edgeship_wheel() -> Path:
    """A wheel of the current sources (built from a copy, so the checkout gets no build folders), cached by their hash."""
    sources = sorted((ROOT / "edgeship").rglob("*")) + [ROOT / "pyproject.toml", ROOT / "README.md"]
    sources = [p for p in sources if p.is_file() and "__pycache__" not in p.parts]
    key = _digest(sources)
    folder = CACHE / "wheels" / key
    with exclusive_lock(CACHE / "wheels" / f"{key}.lock"):
        return _cached_wheel(folder)


def _cached_wheel(folder: Path) -> Path:
    """The wheel in `folder`, built from a copy of the sources when there is none yet (call it holding the folder's lock)."""
    wheels = list(folder.glob("edgeship-*.whl"))
    if wheels:
        return wheels[0]
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "src"
        shutil.copytree(ROOT / "edgeship", copy / "edgeship", ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, copy / name)
        built = Path(scratch) / "dist"
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(built), str(copy)])
        folder.mkdir(parents=True, exist_ok=True)
        wheel = next(built.glob("edgeship-*.whl"))
        shutil.copy2(wheel, folder / wheel.name)
    return folder / wheel.name


def _base_python(extra: str) -> str:
    """The interpreter for a venv: this one's base; the tflite extra needs Python 3.11 (tflite-runtime 2.14's last wheels)."""
    base = getattr(sys, "_base_executable", sys.executable)
    if extra != "tflite" or sys.version_info[:2] == (3, 11):
        return base
    found = shutil.which("python3.11")
    if found is None:
        pytest.skip("the tflite extra needs Python 3.11 and there is no python3.11 here")
    return found


def slim_venv(extra: str, wheel: Path) -> Path:
    """The venv's python for `edgeship[extra]`; dependencies installed once, edgeship reinstalled when its wheel changes."""
    key = _digest([ROOT / "pyproject.toml"]) + f"-py{sys.version_info[0]}{sys.version_info[1]}"
    venv = CACHE / f"{extra}-{key}"
    python = venv / "bin" / "python"
    marker = venv / ".edgeship-wheel"
    # Parallel test workers may reach the same venv at once: one builds it, the others wait and reuse it.
    with exclusive_lock(CACHE / f"{extra}-{key}.lock"):
        _bring_up_to_date(venv, python, marker, extra, wheel)
    return python


def _bring_up_to_date(venv: Path, python: Path, marker: Path, extra: str, wheel: Path) -> None:
    """Create the venv with the extra's dependencies once; reinstall edgeship when its wheel changed."""
    if not (venv / ".deps-installed").is_file():
        shutil.rmtree(venv, ignore_errors=True)
        _run([_base_python(extra), "-m", "venv", str(venv)])
        _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{wheel}[{extra}]"])
        (venv / ".deps-installed").write_text(wheel.name)
        marker.write_text(str(wheel))
    if not marker.is_file() or marker.read_text() != str(wheel):
        _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
              "--force-reinstall", str(wheel)])
        marker.write_text(str(wheel))


@pytest.fixture(scope="session", params=list(EXTRAS))
def slim_python(request, edgeship_wheel) -> tuple[str, Path]:
    return request.param, slim_venv(request.param, edgeship_wheel)


def test_import_leaves_heavy_packages_out(slim_python):
    extra, python = slim_python
    code = (
        "import importlib.util, json, sys; import edgeship.runtime, edgeship.runtime.cli;"
        f"print(json.dumps({{'loaded': [m for m in {HEAVY!r} if m in sys.modules],"
        f"'installed': [m for m in {HEAVY!r} if importlib.util.find_spec(m)],"
        "'numpy': __import__('numpy').__version__, 'file': edgeship.runtime.__file__}))"
    )
    found = json.loads(_run([str(python), "-c", code]).stdout)
    assert found["loaded"] == [] and found["installed"] == []
    assert "site-packages" in found["file"]
    if extra == "tflite":
        assert found["numpy"].startswith("1.")


def test_predictions_match_the_full_stack(slim_python, bundle_path, test_images, tmp_path):
    extra, python = slim_python
    images = test_images[:64]
    np.save(tmp_path / "images.npy", images)
    formats = {"litert": ("tflite",), "onnxruntime": ("onnx",)}
    runnable = [a for a in load_manifest(bundle_path).artifacts if a.has_file and a.format in sum((formats[b] for b in EXTRAS[extra]), ())]
    compared = []
    for artifact in runnable:
        done = _isolated([str(python), "-m", "edgeship.runtime", "predict", str(bundle_path), str(tmp_path / "images.npy"),
                          "--artifact", artifact.name, "--json"], 120)
        assert done.returncode == 0, done.stderr
        compared.append(artifact.name)
        predictions = json.loads(done.stdout)["predictions"]
        with Classifier.load(bundle_path, artifact=artifact.name) as classifier:
            expected = classifier.predict_proba(images)
        # int16x8 runs on LiteRT's reference kernels, whose int16 arithmetic changed after tflite-runtime 2.14:
        # there the outputs differ by a few steps of the int16 softmax output (1/16384 each), never in top-1.
        tolerance = 3 / 16384 if artifact.precision == "int16x8" else 1e-6
        np.testing.assert_allclose(np.array([p["probabilities"] for p in predictions]), expected, atol=tolerance,
                                   err_msg=f"{artifact.name} in the {extra} venv")
        assert [p["index"] for p in predictions] == expected.argmax(axis=1).tolist()
    expected_names = {"onnx": {"onnx", "onnx-int8"}}.get(extra, {"tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8"})
    assert expected_names <= set(compared)


def test_selftest_passes_and_png_needs_pillow(slim_python, bundle_path, tmp_path):
    extra, python = slim_python
    done = _run([str(python), "-m", "edgeship.runtime", "selftest", str(bundle_path)], timeout=120)
    assert "self-test passed" in done.stdout and "| ✅ pass |" in done.stdout
    (tmp_path / "digit.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    failed = _isolated([str(python), "-m", "edgeship.runtime", "predict", str(bundle_path), str(tmp_path / "digit.png")], 120)
    assert failed.returncode == 2
    assert "needs Pillow: pip install 'edgeship[images]', or give the images as .npy/.npz" in failed.stderr
