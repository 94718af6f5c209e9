"""Session fixtures shared by every test area, so the TensorFlow work (training, export) happens once."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from tools.shapes import write_shapes_folder


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


@pytest.fixture(scope="session")
def outlier_mlp_path(tmp_path_factory, mlp_run):
    """The seed MLP with 4 hidden units' incoming weights and bias x3000 and outgoing weights /3000.

    ReLU is positively homogeneous, so the float model computes the same function, but the hidden
    layer's activation range now spans 3000x the other units': per-tensor int8 zeroes them out.
    """
    from tools.outliers import outlier_copy, outlier_mlp

    return outlier_copy(mlp_run.model_path, tmp_path_factory.mktemp("outlier-mlp"), outlier_mlp)


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
