"""A seeded training run: fit a zoo model on a dataset and write model.keras, its card, history, metrics and curves."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.runtime.compare import confusion_matrix
from edgeship.errors import UsageError
from edgeship.files import atomic_path, atomic_write_json, ensure_directory
from edgeship.manifest import InputSpec
from edgeship.modelcard import ModelCard, write_card
from edgeship.native import import_keras_quietly, native_output_to_log

log = logging.getLogger(__name__)



@dataclass
class TrainResult:
    """What a training run wrote and measured."""

    out: Path
    model_path: Path
    metrics: dict[str, Any]
    history: dict[str, list[float]]


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, classes: int) -> dict[str, Any]:
    """Accuracy, per-class accuracy and the confusion matrix (rows: true class, columns: predicted)."""
    confusion = np.array(confusion_matrix(labels, predictions, classes))
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return {
        "accuracy": float((labels == predictions).mean()),
        "per_class_accuracy": [round(float(v), 4) for v in per_class],
        "confusion_matrix": confusion.tolist(),
    }


def _epoch_logger(epochs: int, console: Any) -> Any:
    """A Keras callback printing one progress line per epoch to `console`."""
    import keras

    class EpochLine(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            print(
                f"  epoch {epoch + 1}/{epochs}  loss {logs.get('loss', float('nan')):.4f}  "
                f"acc {logs.get('accuracy', float('nan')):.4f}  test acc {logs.get('val_accuracy', float('nan')):.4f}  "
                f"({time.perf_counter() - self.started:.1f} s)",
                file=console,
                flush=True,
            )

    return EpochLine()


def check_training_options(architecture: str, epochs: int, batch_size: int) -> None:
    """Refuse an unknown architecture or a non-positive epoch count or batch size, before any work."""
    from edgeship.train.zoo import check_architecture

    check_architecture(architecture)
    if epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {epochs}")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")


AUTO = "auto"


def training_input_spec(architecture: str, dataset: Any, recipe: str | None = AUTO) -> InputSpec:
    """The preprocessing contract a model trained on `dataset` records; UsageError when the architecture cannot take its images."""
    from edgeship.train.zoo import PREPROCESSING, check_mobilenetv2_input

    input_shape = tuple(dataset.x_train.shape[1:])
    if architecture == "mobilenetv2":
        check_mobilenetv2_input(input_shape)
    chosen = dataset.recipe if recipe == AUTO else recipe
    color = "rgb" if len(input_shape) == 3 and input_shape[2] == 3 else "grey"
    if chosen is not None and color != "grey":
        raise UsageError(f"the {chosen} recipe is for grey digit photos; {dataset.name} holds RGB images: leave out --recipe")
    preprocessing = PREPROCESSING[architecture]
    return InputSpec(
        shape=list(input_shape), layout="NHWC", scale=preprocessing.scale, mean=preprocessing.mean,
        std=preprocessing.std, color=color, resize=dataset.resize, recipe=chosen,
    )


def train_model(
    architecture: str,
    dataset: Any,
    epochs: int = 5,
    seed: int = 0,
    out: str | Path = "artifacts/run",
    batch_size: int = 32,
    progress: bool = True,
    recipe: str | None = AUTO,
) -> TrainResult:
    """Train `architecture` on `dataset` (an edgeship.data.Dataset) with a fixed seed and write the run folder.

    The card records the preprocessing contract: the architecture's scaling, the dataset's colour and
    resize rule, and for digit datasets the MNIST recipe for photos (`recipe`: "auto" takes the
    dataset's, None records none).
    """
    from edgeship.train.zoo import build_model

    check_training_options(architecture, epochs, batch_size)
    spec = training_input_spec(architecture, dataset, recipe)
    out = ensure_directory(out)
    keras = import_keras_quietly()
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()

    classes = len(dataset.class_names)
    input_shape = tuple(dataset.x_train.shape[1:])
    model = build_model(architecture, input_shape, classes)
    x_train, x_test = spec.to_model_input(dataset.x_train, input_shape), spec.to_model_input(dataset.x_test, input_shape)

    # TensorFlow's data pipeline prints C++ warnings to stderr during fit; they go to the debug log,
    # while the epoch lines go to a copy of the real stderr taken before the capture.
    with os.fdopen(os.dup(2), "w") as console, native_output_to_log("Keras training"):
        started = time.perf_counter()
        fit = model.fit(
            x_train,
            dataset.y_train,
            epochs=epochs,
            batch_size=batch_size,
            validation_data=(x_test, dataset.y_test),
            shuffle=True,
            verbose=0,
            callbacks=[_epoch_logger(epochs, console)] if progress else [],
        )
        training_seconds = time.perf_counter() - started
        test_loss, _ = model.evaluate(x_test, dataset.y_test, verbose=0)
        probabilities = model.predict(x_test, batch_size=256, verbose=0)
    history = {name: [float(v) for v in values] for name, values in fit.history.items()}

    metrics = {
        "architecture": architecture,
        "dataset": dataset.name,
        "epochs": epochs,
        "seed": seed,
        "batch_size": batch_size,
        "train_images": int(len(x_train)),
        "test_images": int(len(x_test)),
        "parameters": int(model.count_params()),
        "training_seconds": round(training_seconds, 2),
        "test_loss": float(test_loss),
        **classification_metrics(dataset.y_test, probabilities.argmax(axis=1), classes),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    metrics["test_accuracy"] = metrics.pop("accuracy")

    model_path = out / "model.keras"
    with atomic_path(model_path, suffix=".keras") as temporary:
        model.save(temporary)
    card = ModelCard(
        labels=list(dataset.class_names),
        input=spec,
        dataset=dataset.name,
        architecture=architecture,
        seed=seed,
        split=dict(dataset.split),
    )
    write_card(model_path, card)
    atomic_write_json(out / "history.json", history)
    atomic_write_json(out / "metrics.json", metrics)

    from edgeship.plots import plot_training_curves

    plot_training_curves(history, out / "curves.png", title=f"{architecture} on {dataset.name}")
    log.info("trained %s: test accuracy %.4f in %.1f s", architecture, metrics["test_accuracy"], training_seconds)
    return TrainResult(out=out, model_path=model_path, metrics=metrics, history=history)
