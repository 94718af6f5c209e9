"""The source Keras model as a reference runner: loaded once, fed raw pixels scaled as the bundle's manifest says.

verify compares every artifact with its probabilities; bench times it beside the artifacts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.manifest import Manifest
from edgeship.runtime.postprocess import softmax
from edgeship.native import import_keras_quietly, native_output_to_log

KERAS_BATCH = 256


class KerasReference:
    """Probabilities of a `.keras` model for raw uint8 images."""

    def __init__(self, model_path: Path, manifest: Manifest) -> None:
        keras = import_keras_quietly()
        import tensorflow

        self.tensorflow_version = tensorflow.__version__
        started = time.perf_counter()
        self.model = keras.saving.load_model(model_path, compile=False)
        self.load_seconds = time.perf_counter() - started
        self.path = Path(model_path)
        self.spec = manifest.input
        self.logits = manifest.output_kind == "logits"
        self.input_shape = tuple(self.model.input_shape[1:])
        with native_output_to_log("Keras first predict"):
            # The first predict builds TensorFlow's data pipeline, which prints C++ warnings once.
            self.model.predict(np.zeros((1, *self.input_shape), dtype=np.float32), verbose=0)

    def _inputs(self, images: np.ndarray) -> np.ndarray:
        return self.spec.to_model_input(images, self.input_shape)

    def _probabilities(self, outputs: Any) -> np.ndarray:
        outputs = np.asarray(outputs, dtype=np.float32)
        if not self.logits:
            return outputs
        return softmax(outputs)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """`model.predict` in batches of 256: what Keras users run on a test set."""
        return self._probabilities(self.model.predict(self._inputs(images), batch_size=KERAS_BATCH, verbose=0))

    def call(self, images: np.ndarray) -> np.ndarray:
        """`model(x)`: the eager call an interactive user makes on one image."""
        return self._probabilities(self.model(self._inputs(images), training=False))
