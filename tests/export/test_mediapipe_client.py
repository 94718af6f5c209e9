"""The real mobile client: MediaPipe Tasks' ImageClassifier loads a bundle's .tflite files and agrees with edgeship's runtime.

MediaPipe 0.10.21 (the last release whose Python metadata writer and tasks work; it pins numpy<2)
lives in its own venv under ~/.cache/edgeship/venvs, keyed on what it installs and built once
(minutes the first time). The model is an RGB MobileNetV2 (alpha 0.35) trained briefly on coloured
shapes that the test draws with Pillow; its bundle is made by `export_bundle`, so the files are
exactly what a user gets. MediaPipe reads the labels and normalization from the files' TFLite
Metadata alone: nothing else is handed to it.
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

pytestmark = pytest.mark.mediapipe

REQUIREMENTS = ("mediapipe==0.10.21",)
CACHE = Path(os.environ.get("EDGESHIP_VENV_CACHE", Path.home() / ".cache" / "edgeship" / "venvs"))
CLIENT = Path(__file__).with_name("mediapipe_classify.py")
SIZE = 64
SHAPES = ("circle", "square", "triangle", "bar")
AGREEMENT_GATE = 0.995


def mediapipe_python() -> Path:
    """The MediaPipe venv's python, built once and reused while the requirements stay the same."""
    key = hashlib.sha256("\n".join(REQUIREMENTS).encode()).hexdigest()[:16]
    venv = CACHE / f"mediapipe-{key}-py{sys.version_info[0]}{sys.version_info[1]}"
    python = venv / "bin" / "python"
    with exclusive_lock(venv.with_name(venv.name + ".lock")):
        _build_once(venv, python)
    return python


def _build_once(venv: Path, python: Path) -> None:
    """Create the MediaPipe venv unless a finished one is there (call it holding the venv's lock)."""
    if not (venv / ".deps-installed").is_file():
        shutil.rmtree(venv, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        for command in ([base, "-m", "venv", str(venv)],
                        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REQUIREMENTS]):
            done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        (venv / ".deps-installed").write_text("\n".join(REQUIREMENTS))


def run_mediapipe(jobs: list[dict]) -> dict:
    """Classify with MediaPipe in its venv, outside the checkout and with no PYTHONPATH."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([str(mediapipe_python()), str(CLIENT)], input=json.dumps({"jobs": jobs}), capture_output=True,
                          text=True, timeout=600, cwd=tempfile.gettempdir(), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def draw(kind: int, rng: np.random.Generator) -> np.ndarray:
    """A coloured shape of one of four kinds on a random background, RGB uint8."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (SIZE, SIZE), tuple(int(v) for v in rng.integers(0, 256, 3)))
    pen = ImageDraw.Draw(picture)
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    x, y = (int(v) for v in rng.integers(2, SIZE // 2, 2))
    side = int(rng.integers(SIZE // 4, SIZE // 2))
    box = [x, y, x + side, y + side]
    if kind == 0:
        pen.ellipse(box, fill=colour)
    elif kind == 1:
        pen.rectangle(box, fill=colour)
    elif kind == 2:
        pen.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=colour)
    else:
        pen.rectangle([x, y + side // 2 - 3, x + side, y + side // 2 + 3], fill=colour)
    return np.asarray(picture)


@pytest.fixture(scope="module")
def rgb_bundle(tmp_path_factory):
    """A MobileNetV2-0.35 64x64 RGB bundle (fp32, int8 with int8 I/O, int8 with uint8 I/O) and its test pictures as PNG."""
    import keras
    from PIL import Image

    from edgeship.data import Dataset
    from edgeship.export import RescuePolicy, export_bundle

    folder = tmp_path_factory.mktemp("rgb")
    rng = np.random.default_rng(0)
    y_train, y_test = rng.integers(0, 4, 800), rng.integers(0, 4, 400)
    x_train = np.stack([draw(int(kind), rng) for kind in y_train])
    x_test = np.stack([draw(int(kind), rng) for kind in y_test])
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), alpha=0.35, weights=None, classes=len(SHAPES))
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9  # so that three short epochs leave usable moving statistics
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train.astype("float32") / 255.0, y_train, epochs=3, batch_size=32, verbose=0)
    model.save(folder / "mobilenetv2.keras")
    dataset = Dataset("shapes", x_train, y_train, x_test, y_test, class_names=list(SHAPES))
    result = export_bundle(folder / "mobilenetv2.keras", folder / "bundle", dataset=dataset,
                           formats="tflite-fp32,tflite-int8,tflite-int8-uint8io", calibration_images=200,
                           rescue=RescuePolicy(enabled=False))
    pictures = []
    for index, image in enumerate(x_test):
        pictures.append(str(folder / f"picture{index:03d}.png"))
        Image.fromarray(image).save(pictures[-1])
    return result, pictures, x_test


def test_mediapipe_image_classifier_agrees_with_the_runtime(rgb_bundle, record_property):
    from edgeship.runtime import Classifier

    result, pictures, images = rgb_bundle
    manifest = result.manifest
    assert manifest.artifact("tflite-fp32").status == "pass"
    assert all(artifact.has_file for artifact in manifest.artifacts), [(a.name, a.reason) for a in manifest.artifacts]
    chosen = manifest.mobile["mediapipe"]
    assert chosen["fp32"] == "tflite-fp32"
    # A MobileNetV2 trained for three epochs may miss the int8 parity gate against Keras; the manifest then
    # names no int8 file for MediaPipe and says why. What MediaPipe does with the uint8-I/O file is checked either way.
    assert chosen["int8"] == "tflite-int8-uint8io" or "tflite-int8-uint8io did not pass its gates" in chosen["int8_reason"]
    names = ["tflite-fp32", "tflite-int8-uint8io"]
    jobs = [{"model": str(result.bundle / manifest.artifact(name).file), "pictures": pictures} for name in names]
    answers = run_mediapipe(jobs)
    assert answers["mediapipe"] == "0.10.21"
    for name, answer in zip(names, answers["results"]):
        assert answer["ok"], f"MediaPipe refused {name}: {answer.get('error')}"
        with Classifier.load(result.bundle, artifact=name) as classifier:
            expected = classifier.predict(images)
        top1 = np.array(answer["index"])
        agreement = float((top1 == expected).mean())
        record_property(f"mediapipe_agreement_{name}", agreement)
        print(f"MediaPipe vs edgeship.runtime, {name}: top-1 agreement {agreement:.4f} on {len(images)} pictures")
        assert agreement >= AGREEMENT_GATE, f"{name}: {agreement:.4f}"
        # The labels come from the file's own metadata: MediaPipe was given nothing else.
        assert answer["label"] == [SHAPES[index] for index in top1]
        assert len(set(expected)) >= 3, "the model must not answer one class for everything, or agreement proves little"


def test_mediapipe_refuses_int8_input_so_the_manifest_names_the_uint8_file(rgb_bundle):
    result, pictures, _ = rgb_bundle
    int8 = result.manifest.artifact("tflite-int8")
    assert int8.input.dtype == "int8"
    answer = run_mediapipe([{"model": str(result.bundle / int8.file), "pictures": pictures[:1]}])["results"][0]
    assert not answer["ok"]
    assert "Requested one of these types: uint8/float32, got INT8" in answer["error"]


def test_what_mediapipe_accepts_of_grey_models(cnn_bundle, bundle_path, tmp_path):
    """Grey models: MediaPipe's ImageClassifier takes RGB 4-D inputs only (measured, written in the README)."""
    from PIL import Image

    from edgeship.manifest import load_manifest

    picture = tmp_path / "digit.png"
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(picture)
    files = {
        "cnn (28, 28, 1)": Path(cnn_bundle.bundle) / load_manifest(cnn_bundle.bundle).artifact("tflite-fp32").file,
        "mlp (28, 28)": bundle_path / load_manifest(bundle_path).artifact("tflite-fp32").file,
    }
    answers = run_mediapipe([{"model": str(path), "pictures": [str(picture)]} for path in files.values()])["results"]
    said = dict(zip(files, answers))
    assert not said["cnn (28, 28, 1)"]["ok"] and "Only RGB color space is supported" in said["cnn (28, 28, 1)"]["error"]
    assert not said["mlp (28, 28)"]["ok"] and "Only 4D tensors in BHWD layout are supported" in said["mlp (28, 28)"]["error"]
