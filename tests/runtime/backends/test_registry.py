"""The backend registry: names, formats, availability."""

from __future__ import annotations

import pytest

from edgeship.errors import UsageError
from edgeship.runtime.backends import available_backends, backend_for_format, backend_module, installed


def test_names_and_formats():
    assert backend_for_format("tflite") == "litert" and backend_for_format("edgetpu") == "litert"
    assert backend_for_format("onnx") == "onnxruntime"
    assert backend_module("onnxruntime").FORMATS == ("onnx", "ort")
    with pytest.raises(UsageError, match="unknown backend 'torch'; choose one of: litert, litert-compiled, onnxruntime"):
        backend_module("torch")
    with pytest.raises(UsageError, match="no backend runs format 'tflm'"):
        backend_for_format("tflm")


def test_available_backends_here():
    statuses = available_backends()
    assert set(statuses) == {"litert", "litert-compiled", "onnxruntime"}
    assert all(status.available and status.version for status in statuses.values())
    assert installed("litert") and installed("litert-compiled") and installed("onnxruntime")
