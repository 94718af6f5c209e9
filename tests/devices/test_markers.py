"""Which venv serves a run: its marker must cover the run's platform, edgeship wheel, extras and dependency wheels."""

from __future__ import annotations

from edgeship.devices.remote import covers

ONNX = {"extra": "onnx", "platform": "cp311-x86_64-glibc2.36", "deps": ["numpy.whl", "onnxruntime.whl"], "edgeship": "aa"}
WITH_PILLOW = {**ONNX, "extra": "onnx,images", "deps": ["numpy.whl", "onnxruntime.whl", "pillow.whl"]}


def test_a_venv_with_pillow_serves_runs_with_and_without_pictures():
    assert covers(ONNX, ONNX) and covers(WITH_PILLOW, ONNX) and covers(WITH_PILLOW, WITH_PILLOW)
    assert not covers(ONNX, WITH_PILLOW)  # a picture needs Pillow: install it


def test_anything_else_that_differs_means_an_install():
    assert not covers(None, ONNX)
    assert not covers({**ONNX, "edgeship": "bb"}, ONNX)
    assert not covers({**ONNX, "platform": "cp311-aarch64-glibc2.36"}, ONNX)
    assert not covers({**ONNX, "deps": ["numpy.whl", "onnxruntime-old.whl"]}, ONNX)
    assert not covers({**WITH_PILLOW, "extra": "tflite,images"}, ONNX)
