"""The source Keras model as a reference runner, fed raw pixels scaled as the input spec says.

One class for every stage that needs the Keras model's answers: export measures each file against
it (from the model it already loaded), verify compares every artifact with it, and bench times it
beside the artifacts (both loading the bundle's source model).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.manifest import InputSpec, Manifest
from edgeship.native import import_keras_quietly, native_output_to_log
from edgeship.runtime.postprocess import softmax

KERAS_BATCH = 256
"""Batch size of `model.predict` on a test set."""


class KerasReference:
    """Probabilities of a Keras model for raw uint8 images.

    `logits`: whether the model's outputs are logits (softmax is applied) or probabilities;
    None until `detect_output_kind` has looked at real outputs.
    """

    def __init__(
        self,
        model: Any,
        spec: InputSpec,
        input_shape: tuple[int, ...] | None = None,
        logits: bool | None = None,
        path: Path | None = None,
        load_seconds: float | None = None,
    ) -> None:
        import tensorflow

        self.model = model
        self.spec = spec
        self.input_shape = tuple(input_shape or model.input_shape[1:])
        self.logits = logits
        self.path = path
        self.load_seconds = load_seconds
        self.tensorflow_version = tensorflow.__version__
        with native_output_to_log("Keras first predict"):
            # The first predict builds TensorFlow's data pipeline, which prints C++ warnings once.
            self.model.predict(np.zeros((1, *self.input_shape), dtype=np.float32), verbose=0)

    @classmethod
    def load(cls, model_path: str | Path, manifest: Manifest) -> "KerasReference":
        """The bundle's source model, loaded once, with the input scaling and output kind its manifest records."""
        keras = import_keras_quietly()
        started = time.perf_counter()
        model = keras.saving.load_model(model_path, compile=False)
        load_seconds = time.perf_counter() - started
        return cls(model, manifest.input, logits=manifest.output_kind == "logits", path=Path(model_path), load_seconds=load_seconds)

    def model_input(self, images: np.ndarray) -> np.ndarray:
        """Raw pixels as the model takes them: float32, scaled, in its input shape."""
        return self.spec.to_model_input(images, self.input_shape)

    def outputs(self, images: np.ndarray) -> np.ndarray:
        """The model's raw outputs (`model.predict` in batches of 256), before any softmax."""
        return np.asarray(self.model.predict(self.model_input(images), batch_size=KERAS_BATCH, verbose=0), dtype=np.float32)

    def probabilities(self, outputs: Any) -> np.ndarray:
        """Outputs as probabilities: softmax for a logits model, as they are otherwise."""
        if self.logits is None:
            raise RuntimeError("the output kind is not known yet; call detect_output_kind or pass logits=")
        outputs = np.asarray(outputs, dtype=np.float32)
        return softmax(outputs) if self.logits else outputs

    def detect_output_kind(self, outputs: np.ndarray, softmax_output: bool) -> str:
        """Decide, from real outputs, whether the model gives probabilities or logits; remember it and return its name."""
        from edgeship.export.keras_model import is_probability_rows

        self.logits = not (softmax_output or is_probability_rows(outputs))
        return "logits" if self.logits else "probabilities"

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """`model.predict` in batches of 256: what Keras users run on a test set."""
        return self.probabilities(self.outputs(images))

    def call(self, images: np.ndarray) -> np.ndarray:
        """`model(x)`: the eager call an interactive user makes on one image."""
        return self.probabilities(self.model(self.model_input(images), training=False))
