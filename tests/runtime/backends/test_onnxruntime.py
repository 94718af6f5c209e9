"""ONNX Runtime backend: providers by short name, threads, and no silent CPU fallback."""

from __future__ import annotations

import pytest

from edgeship.errors import BackendUnavailableError, UsageError
from edgeship.runtime.backends import onnxruntime as ort_backend
from edgeship.runtime.classifier import Classifier


def test_provider_names():
    assert ort_backend.provider_name("cuda") == "CUDAExecutionProvider"
    assert ort_backend.provider_name("TensorrtExecutionProvider") == "TensorrtExecutionProvider"
    with pytest.raises(UsageError, match="choose from: cpu, cuda, tensorrt"):
        ort_backend.provider_name("tpu")


def test_probe_lists_cpu():
    found = ort_backend.probe()
    assert "cpu" in found["accelerators"] and found["version"]


def test_explicit_cpu_and_threads(bundle_path, test_images):
    with Classifier.load(bundle_path, artifact="onnx", providers=["cpu"], threads=1) as classifier:
        assert classifier.info()["accelerator"] == "cpu" and classifier.info()["threads"] == 1
        assert classifier.predict(test_images[:5]).shape == (5,)


@pytest.mark.parametrize("provider, hint", [("tensorrt", "TensorRT"), ("openvino", "onnxruntime-openvino"),
                                            ("coreml", "macOS"), ("nnapi", "Android"), ("xnnpack", "--use_xnnpack")])
def test_unavailable_providers_say_how_to_get_them(bundle_path, provider, hint):
    with pytest.raises(BackendUnavailableError, match=f"execution provider {provider}.*{hint}"):
        Classifier.load(bundle_path, artifact="onnx", providers=[provider])
