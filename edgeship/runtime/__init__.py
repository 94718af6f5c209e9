"""The slim runtime: run a bundle's artifact, or a bare .tflite/.onnx file, on a device.

Imports numpy and, only when a model is loaded, the one backend it runs on; never TensorFlow,
Keras, matplotlib or edgeship's training and export code (tests/runtime/test_leaf.py checks).
The names below load on first use (PEP 562), so `edgeship --help` and `python -m edgeship.runtime
--help` do not pay for numpy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Classifier", "Ranked", "available_backends"]


def __getattr__(name: str) -> Any:
    if name in ("Classifier", "Ranked"):
        from edgeship.runtime import classifier

        return getattr(classifier, name)
    if name == "available_backends":
        from edgeship.runtime.backends import available_backends

        return available_backends
    raise AttributeError(f"module 'edgeship.runtime' has no attribute {name!r}")
