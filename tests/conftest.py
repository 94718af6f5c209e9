"""Session fixtures shared by every test area, so the TensorFlow work (training, export) happens once."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest


@pytest.fixture(scope="session")
def sample_dataset():
    """The bundled real MNIST sample: 4,000 train and 1,000 test digits."""
    from edgeship.data import load_dataset

    return load_dataset("mnist-sample")


@pytest.fixture(scope="session")
def mlp_run(tmp_path_factory, sample_dataset):
    """The seed MLP trained for 5 epochs on the sample: a run folder with model.keras and its card."""
    from edgeship.train import train_model

    return train_model("mlp", sample_dataset, epochs=5, seed=0, out=tmp_path_factory.mktemp("mlp-run"), progress=False)


@pytest.fixture(scope="session")
def mlp_bundle(tmp_path_factory, mlp_run, sample_dataset):
    """A bundle of the seed MLP with every format that can be exported here."""
    from edgeship.export import export_bundle

    out = tmp_path_factory.mktemp("mlp-bundle") / "bundle"
    return export_bundle(mlp_run.model_path, out, dataset=sample_dataset)


@pytest.fixture(scope="session")
def bundle_path(mlp_bundle):
    """The seed MLP's bundle folder with every format exported here (read-only: copy it to tamper)."""
    from pathlib import Path

    return Path(mlp_bundle.bundle)


@pytest.fixture(scope="session")
def test_images(sample_dataset):
    """The sample's 1,000 real test digits, uint8 (1000, 28, 28)."""
    return sample_dataset.x_test


@pytest.fixture
def bundle_copy(bundle_path, tmp_path):
    """A private copy of the bundle, for tests that tamper with it."""
    import shutil
    from pathlib import Path

    return Path(shutil.copytree(bundle_path, tmp_path / "bundle"))


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    """`edgeship pipeline` end to end on a reduced setting; returns (completed process, run folder)."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("pipeline") / "run"
    result = subprocess.run(
        [sys.executable, "-m", "edgeship.cli", "pipeline", "--epochs", "2", "--out", str(out),
         "--formats", "tflite-fp32,tflite-int8,onnx", "--max-images", "300",
         "--threads", "1", "--batch", "1,16", "--bench-seconds", "0.1"],
        capture_output=True, text=True, timeout=600,
    )
    return result, out


SHAPES = ("circle", "square", "triangle")
SHAPE_TINTS = {"circle": (220, 60, 60), "square": (60, 200, 60), "triangle": (60, 60, 220)}


def write_shapes_folder(folder, per_class: int = 12, seed: int = 0, sizes=((60, 80), (120, 90), (200, 150), (480, 640))):
    """An image folder DIR/<shape>/*.{png,jpg} of coloured shapes that tests make with Pillow: several sizes, JPEG and PNG.

    Each class has its own tint (jittered) as well as its shape, so a small model learns it in a few epochs.
    """
    from pathlib import Path

    import numpy as np
    from PIL import Image, ImageDraw

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        (folder / shape).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            height, width = sizes[int(rng.integers(len(sizes)))]
            background = tuple(int(v) for v in rng.integers(0, 90, 3))
            fill = tuple(int(np.clip(c + rng.integers(-30, 31), 0, 255)) for c in SHAPE_TINTS[shape])
            picture = Image.new("RGB", (width, height), background)
            draw = ImageDraw.Draw(picture)
            radius = min(width, height) * rng.uniform(0.25, 0.4)
            x, y = width / 2 + rng.uniform(-0.08, 0.08) * width, height / 2 + rng.uniform(-0.08, 0.08) * height
            if shape == "circle":
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=fill)
            elif shape == "square":
                draw.rectangle([x - radius, y - radius, x + radius, y + radius], fill=fill)
            else:
                draw.polygon([(x, y - radius), (x - radius, y + radius), (x + radius, y + radius)], fill=fill)
            suffix = "jpg" if index % 2 else "png"
            picture.save(folder / shape / f"{shape}-{index:03d}.{suffix}", **({"quality": 92} if suffix == "jpg" else {}))
    return folder


@pytest.fixture(scope="session")
def make_shapes_folder():
    """write_shapes_folder(folder, per_class, seed, sizes): an image folder of coloured shapes, made with Pillow."""
    return write_shapes_folder


@pytest.fixture(scope="session")
def shapes_folder(tmp_path_factory):
    """A small image folder, 3 classes x 12 pictures of several sizes (read-only: copy it to change it)."""
    return write_shapes_folder(tmp_path_factory.mktemp("shapes") / "shapes")


@pytest.fixture(scope="session")
def bomb_png() -> bytes:
    """A PNG of a few hundred bytes that claims 100,000 x 100,000 grey pixels: a decompression bomb, refused from its header."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


OUTLIER_UNITS = (0, 1, 2, 3)
OUTLIER_FACTOR = 3000.0


@pytest.fixture(scope="session")
def outlier_mlp_path(tmp_path_factory, mlp_run):
    """The seed MLP with 4 hidden units' incoming weights and bias x3000 and outgoing weights /3000.

    ReLU is positively homogeneous, so the float model computes the same function, but the hidden
    layer's activation range now spans 3000x the other units': per-tensor int8 zeroes them out.
    """
    import shutil

    import keras

    model = keras.saving.load_model(mlp_run.model_path, compile=False)
    hidden, head = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    kernel, bias = hidden.get_weights()
    kernel[:, OUTLIER_UNITS] *= OUTLIER_FACTOR
    bias[list(OUTLIER_UNITS)] *= OUTLIER_FACTOR
    hidden.set_weights([kernel, bias])
    head_kernel, head_bias = head.get_weights()
    head_kernel[list(OUTLIER_UNITS), :] /= OUTLIER_FACTOR
    head.set_weights([head_kernel, head_bias])
    folder = tmp_path_factory.mktemp("outlier-mlp")
    model.save(folder / "model.keras")
    shutil.copy(mlp_run.model_path.with_name("model.edgeship.json"), folder / "model.edgeship.json")
    return folder / "model.keras"


OUTLIER_FORMATS = "tflite-fp32,tflite-int8,onnx,onnx-int8"


@pytest.fixture(scope="session")
def outlier_plain_bundle(tmp_path_factory, outlier_mlp_path, sample_dataset):
    """The outlier MLP exported without rescue: plain int8 collapses."""
    from edgeship.export import export_bundle
    from edgeship.export.rescue import RescuePolicy

    out = tmp_path_factory.mktemp("outlier-plain") / "bundle"
    return export_bundle(outlier_mlp_path, out, formats=OUTLIER_FORMATS, dataset=sample_dataset, rescue=RescuePolicy(enabled=False))


@pytest.fixture(scope="session")
def outlier_rescued_bundle(tmp_path_factory, outlier_mlp_path, sample_dataset):
    """The outlier MLP exported with the default rescue (equalization first)."""
    from edgeship.export import export_bundle

    out = tmp_path_factory.mktemp("outlier-rescued") / "bundle"
    return export_bundle(outlier_mlp_path, out, formats=OUTLIER_FORMATS, dataset=sample_dataset)


@pytest.fixture(scope="session")
def outlier_fallback_bundle(tmp_path_factory, outlier_mlp_path, sample_dataset):
    """The outlier MLP rescued by float fallback alone (equalization turned off)."""
    from edgeship.export import export_bundle
    from edgeship.export.rescue import RescuePolicy

    out = tmp_path_factory.mktemp("outlier-fallback") / "bundle"
    return export_bundle(outlier_mlp_path, out, formats=OUTLIER_FORMATS, dataset=sample_dataset, rescue=RescuePolicy(equalize=False))
