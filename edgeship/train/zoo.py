"""The model zoo: the seed MLP, a small edge-friendly CNN, and MobileNetV2-0.35 for RGB pictures.

Each architecture says how raw pixels are scaled for it (PREPROCESSING): x/255 for the MLP and the
CNN, x/127.5 - 1 for MobileNetV2, as keras.applications.mobilenet_v2.preprocess_input does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from edgeship.errors import UsageError
from edgeship.manifest import RAW_PIXEL_SCALE

MOBILENET_ALPHA = 0.35
MOBILENET_MIN_SIZE = 32
BATCH_NORM_MOMENTUM = 0.9
"""keras.applications' MobileNetV2 uses 0.999, tuned for ImageNet's million steps; trained from scratch for a few hundred
steps its moving averages would still sit near their initial values at test time."""


@dataclass(frozen=True)
class Preprocessing:
    """x = (raw * scale - mean) / std, the scaling an architecture is trained with."""

    scale: float = RAW_PIXEL_SCALE
    mean: float = 0.0
    std: float = 1.0


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

    channels = input_shape[2] if len(input_shape) == 3 else 1
    return keras.Sequential(
        [
            keras.Input(shape=input_shape, name="image"),
            keras.layers.Reshape((*input_shape[:2], channels)),
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


def build_mobilenetv2(input_shape: tuple[int, ...], classes: int) -> Any:
    """keras.applications.MobileNetV2, width 0.35, random weights (none can be downloaded here, none are bundled), softmax head."""
    import keras

    check_mobilenetv2_input(input_shape)
    model = keras.applications.MobileNetV2(
        input_shape=tuple(input_shape), alpha=MOBILENET_ALPHA, include_top=True, weights=None, classes=classes,
        classifier_activation="softmax", name="mobilenetv2",
    )
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BATCH_NORM_MOMENTUM
    return model


def check_mobilenetv2_input(input_shape: tuple[int, ...]) -> None:
    """MobileNetV2 takes RGB pictures of at least 32x32 (five stride-2 stages)."""
    if len(input_shape) != 3 or input_shape[2] != 3:
        raise UsageError(
            f"mobilenetv2 takes RGB pictures (height, width, 3), but the dataset's images are {tuple(input_shape)}; "
            "use an image folder or an .npz of (N, H, W, 3) images, or --model cnn"
        )
    if min(input_shape[:2]) < MOBILENET_MIN_SIZE:
        raise UsageError(
            f"mobilenetv2 needs pictures of at least {MOBILENET_MIN_SIZE}x{MOBILENET_MIN_SIZE}, got "
            f"{input_shape[0]}x{input_shape[1]}; pass --image-size {MOBILENET_MIN_SIZE} or more"
        )


ARCHITECTURES: dict[str, Callable[[tuple[int, ...], int], Any]] = {"mlp": build_mlp, "cnn": build_cnn, "mobilenetv2": build_mobilenetv2}
PREPROCESSING: dict[str, Preprocessing] = {
    "mlp": Preprocessing(),
    "cnn": Preprocessing(),
    "mobilenetv2": Preprocessing(scale=1.0 / 127.5, mean=1.0, std=1.0),
}
DEFAULT_IMAGE_SIZES = {"mobilenetv2": 96}
"""The size an image folder's pictures are brought to for an architecture when --image-size is not given."""


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
