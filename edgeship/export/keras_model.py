"""Load a Keras classifier safely and read what export needs from it: input shape, classes, output kind.

Any user's `.keras` file comes through here, so every refusal names the file and what was expected:
one input, one output of shape (batch, classes), an input that the dataset's images fit.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.native import import_keras_quietly
from edgeship.errors import DatasetError, ModelError


PROBABILITY_TOLERANCE = 1e-3
LEGACY_SUFFIXES = (".h5", ".hdf5")


@dataclass
class LoadedClassifier:
    """A loaded Keras classifier and the facts export reads from it."""

    model: Any
    path: Path
    input_shape: tuple[int | None, ...]
    classes: int
    softmax_output: bool
    preprocessing_layers: list[str]
    """Rescaling/Normalization layers the model starts with: it then takes raw pixels and scales them itself."""

    @property
    def channels(self) -> int:
        """1 for an (H, W) or (H, W, 1) input, else its last dimension."""
        return int(self.input_shape[-1]) if len(self.input_shape) == 3 and self.input_shape[-1] is not None else 1


def load_classifier(model_path: str | os.PathLike, safe_mode: bool = True) -> LoadedClassifier:
    """Load `model_path` with Keras (safe_mode on by default) and check that it is a single-input classifier."""
    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"model file {path} not found; give the path of a .keras file saved with model.save()")
    if path.suffix.lower() not in LEGACY_SUFFIXES and not zipfile.is_zipfile(path):
        raise ModelError(f"{path} is not a Keras model (a .keras file is a zip archive); give a .keras file saved with model.save()")
    keras = import_keras_quietly()

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
    except Exception as exc:
        raise _load_failure(path, exc) from exc
    return inspect_classifier(model, path)


def _load_failure(path: Path, exc: Exception) -> ModelError:
    """Why Keras could not load a file, with the fix: code Keras will not run, classes only the author's code defines, or damage."""
    if "safe_mode" in str(exc):
        return ModelError(
            f"{path} holds Python code (a Lambda layer) that Keras will not run in safe mode, since it could do anything; "
            "if you trust this file, pass --no-safe-mode"
        )
    custom = _custom_objects(path)
    if custom:
        return ModelError(
            f"{path} uses {', '.join(custom)}, defined in its author's code rather than in Keras; call "
            "edgeship.export.export_bundle from Python after importing the module that defines it"
        )
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return ModelError(
        f"{path} is not a loadable Keras model ({type(exc).__name__}: {first_line}); give a .keras file saved with model.save()"
    )


def _custom_objects(path: Path) -> list[str]:
    """The registered names of the classes a .keras file's config takes from outside Keras (e.g. "mypackage>MyLayer")."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []
    names: list[str] = []
    pending = [config]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            module, registered = node.get("module"), node.get("registered_name")
            if "class_name" in node and registered and not str(module or "").startswith("keras"):
                names.append(str(registered))
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return sorted(set(names))


def inspect_classifier(model: Any, path: Path) -> LoadedClassifier:
    """Check one input and one (batch, classes) output; read the input shape, the head and a leading Rescaling."""
    inputs = getattr(model, "inputs", None)
    outputs = getattr(model, "outputs", None)
    if not inputs or not outputs:
        raise ModelError(f"{path} has no defined inputs/outputs (a subclassed model?); save a Functional or Sequential model")
    if len(inputs) != 1:
        raise ModelError(f"{path} has {len(inputs)} inputs; export needs a single-input image classifier")
    if len(outputs) != 1:
        raise ModelError(f"{path} has {len(outputs)} outputs; export needs one output of shape (batch, classes)")
    output_shape = tuple(outputs[0].shape)
    if len(output_shape) != 2 or output_shape[1] is None or output_shape[1] < 2:
        raise ModelError(
            f"{path} is not a classifier: its output has shape {output_shape}; "
            "export needs an output of shape (batch, classes) with at least 2 classes"
        )
    if not np.issubdtype(np.dtype(inputs[0].dtype), np.floating):
        raise ModelError(f"{path} takes {inputs[0].dtype} input; export needs a float image input")
    return LoadedClassifier(
        model=model,
        path=path,
        input_shape=tuple(inputs[0].shape[1:]),
        classes=int(output_shape[1]),
        softmax_output=_ends_in_softmax(model),
        preprocessing_layers=leading_preprocessing_layers(model),
    )


def _ends_in_softmax(model: Any) -> bool:
    """True when the last layer is a softmax (an activation, a Softmax layer or a Dense with softmax)."""
    layer = model.layers[-1]
    if type(layer).__name__ == "Softmax":
        return True
    activation = layer.get_config().get("activation")
    return activation == "softmax"


PREPROCESSING_LAYERS = ("Rescaling", "Normalization")


def leading_preprocessing_layers(model: Any) -> list[str]:
    """The Rescaling/Normalization layers a model starts with (looking into a nested model that comes first), e.g. ["Rescaling"]."""
    found: list[str] = []
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    for layer in layers:
        kind = type(layer).__name__
        if kind in PREPROCESSING_LAYERS:
            found.append(kind)
            continue
        if hasattr(layer, "layers") and not found:
            return leading_preprocessing_layers(layer)
        break
    return found


def fitted_input_shape(classifier: LoadedClassifier, image_shape: tuple[int, ...], dataset_name: str) -> tuple[int, ...]:
    """The model's input shape with unknown sizes taken from the dataset; DatasetError when the images do not fit.

    Fits: the model takes (H, W) or (H, W, 1) and the dataset's images are grey (H, W), or the model
    takes (H, W, 3) and the dataset's images are RGB (H, W, 3).
    """
    model_shape = classifier.input_shape
    candidates = [tuple(image_shape)] + ([(*image_shape, 1)] if len(image_shape) == 2 else [])
    for candidate in candidates:
        if len(candidate) == len(model_shape) and all(m is None or m == c for m, c in zip(model_shape, candidate)):
            return candidate
    shown = tuple("?" if d is None else d for d in model_shape)
    kind = "RGB" if classifier.channels == 3 else "grey" if classifier.channels == 1 else f"{classifier.channels}-channel"
    raise DatasetError(
        f"dataset {dataset_name} has images of shape {tuple(image_shape)}, but {classifier.path.name} takes {shown}; "
        f"give --dataset with {shown[0]}x{shown[1]} {kind} images (an image folder is brought to the model's size)"
    )


def is_probability_rows(outputs: np.ndarray) -> bool:
    """True when every row is a probability distribution (non-negative, sums to 1)."""
    return bool(
        np.all(outputs >= -PROBABILITY_TOLERANCE)
        and np.allclose(outputs.sum(axis=1), 1.0, atol=PROBABILITY_TOLERANCE)
    )
