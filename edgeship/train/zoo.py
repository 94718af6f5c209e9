"""The model zoo: builders for the seed MLP and a small edge-friendly CNN, both taking (28, 28) inputs in [0, 1]."""

from __future__ import annotations

from typing import Any, Callable

from edgeship.errors import UsageError


def build_mlp(input_shape: tuple[int, ...], classes: int) -> Any:
    """The seed exercise's model, exactly: Flatten -> Dense(128, relu) -> Dense(classes, softmax)."""
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=input_shape, name="image"),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(classes, activation="softmax"),
        ],
        name="mlp",
    )


def build_cnn(input_shape: tuple[int, ...], classes: int) -> Any:
    """A ~13k-parameter conv net: two conv/pool blocks and a softmax head; every op maps to int8 TFLite and the Edge TPU."""
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=input_shape, name="image"),
            keras.layers.Reshape((*input_shape[:2], 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.25),
            keras.layers.Dense(classes, activation="softmax"),
        ],
        name="cnn",
    )


ARCHITECTURES: dict[str, Callable[[tuple[int, ...], int], Any]] = {"mlp": build_mlp, "cnn": build_cnn}


def build_model(architecture: str, input_shape: tuple[int, ...], classes: int) -> Any:
    """Build a zoo model by name, compiled with Adam and sparse categorical cross-entropy as in the seed exercise."""
    check_architecture(architecture)
    model = ARCHITECTURES[architecture](input_shape, classes)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def check_architecture(architecture: str) -> None:
    """Refuse a model name the zoo does not have, listing the ones it has."""
    if architecture not in ARCHITECTURES:
        raise UsageError(f"unknown model {architecture!r}; choose one of: {', '.join(ARCHITECTURES)}")
