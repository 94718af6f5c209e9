"""The slim runtime: run a bundle's artifact, or a bare .tflite/.onnx file, on a device.

Imports numpy and, only when a model is loaded, the one backend it runs on; never TensorFlow,
Keras, matplotlib or edgeship's training and export code (tests/runtime/test_leaf.py checks).
"""

from edgeship.runtime.backends import available_backends
from edgeship.runtime.classifier import Classifier, Ranked

__all__ = ["Classifier", "Ranked", "available_backends"]
