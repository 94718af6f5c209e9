"""The shared input checks: both backends refuse a bad model input with the same words."""

from __future__ import annotations

import numpy as np
import pytest

from edgeship.errors import InputError, ModelError
from edgeship.runtime.backends import create_runner


@pytest.fixture(params=[("model_fp32.tflite", "tflite"), ("model.onnx", "onnx")], ids=["litert", "onnxruntime"])
def runner(request, bundle_path):
    name, format_name = request.param
    with create_runner(bundle_path / name, format_name) as active:
        yield active


@pytest.mark.parametrize(
    "batch, message",
    [
        ([[0.0] * 28] * 28, "must be a numpy array, got list"),
        (np.zeros((1, 28, 28), np.uint8), "must be float32, got uint8"),
        (np.zeros((1, 28, 27), np.float32), r"must have shape \(N, 28, 28\), got \(1, 28, 27\)"),
        (np.zeros((28, 28), np.float32), r"must have shape \(N, 28, 28\), got \(28, 28\)"),
        (np.zeros((0, 28, 28), np.float32), "the batch is empty"),
    ],
)
def test_bad_model_input_is_refused_alike(runner, batch, message):
    with pytest.raises(InputError, match=message):
        runner.infer(batch)


def test_lifecycle_and_metadata(runner, test_images):
    assert runner.active
    assert runner.input.shape == (-1, 28, 28) and runner.input.fixed_batch is None
    assert runner.output.shape == (-1, 10)
    outputs = runner.infer((test_images[:3] / 255.0).astype(np.float32))
    assert outputs.shape == (3, 10)
    runner.release()
    assert not runner.active
    runner.activate()
    assert runner.infer((test_images[:2] / 255.0).astype(np.float32)).shape == (2, 10)


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        create_runner(tmp_path / "absent.tflite", "tflite").activate()
