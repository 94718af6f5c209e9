"""Users' own Keras models, trained briefly on the real bundled digits, and their bundles (built once a session)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _train_and_save(model, x_train, y_train, path: Path, epochs: int, logits: bool = False) -> Path:
    import keras

    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=logits),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


@pytest.fixture(scope="session")
def user_cnn_path(tmp_path_factory, sample_dataset) -> Path:
    """A user's CNN with BatchNormalization and Dropout, input (28, 28, 1), trained on x/255 for 3 epochs, no card."""
    import keras

    keras.utils.set_random_seed(1)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(16, 3),
            layers.BatchNormalization(momentum=0.9),
            layers.ReLU(),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, padding="same"),
            layers.BatchNormalization(momentum=0.9),
            layers.Activation("relu"),
            layers.MaxPooling2D(),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dropout(0.3),
            layers.Dense(10, activation="softmax"),
        ]
    )
    x_train = sample_dataset.x_train[..., None].astype("float32") / 255.0
    return _train_and_save(model, x_train, sample_dataset.y_train, tmp_path_factory.mktemp("user-cnn") / "model.keras", epochs=3)


@pytest.fixture(scope="session")
def rescaling_model_path(tmp_path_factory, sample_dataset) -> Path:
    """A model that takes raw pixels (first layer Rescaling 1/255), input (28, 28), logits out (no softmax)."""
    import keras

    keras.utils.set_random_seed(2)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28)),
            layers.Rescaling(1.0 / 255),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(10),
        ]
    )
    x_train = sample_dataset.x_train.astype("float32")
    return _train_and_save(model, x_train, sample_dataset.y_train, tmp_path_factory.mktemp("rescaling") / "model.keras", epochs=2, logits=True)


@pytest.fixture(scope="session")
def five_class_model_path(tmp_path_factory, sample_dataset) -> Path:
    """A 5-class model (digits 0-4), input (28, 28, 1)."""
    import keras

    keras.utils.set_random_seed(3)
    keep = sample_dataset.y_train < 5
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(5, activation="softmax")]
    )
    x_train = sample_dataset.x_train[keep][..., None].astype("float32") / 255.0
    return _train_and_save(model, x_train, sample_dataset.y_train[keep], tmp_path_factory.mktemp("five") / "model.keras", epochs=2)


@pytest.fixture(scope="session")
def non_classifier_path(tmp_path_factory) -> Path:
    """A model whose output is an image (batch, 28, 28), not (batch, classes)."""
    import keras

    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Reshape((28, 28, 1)), keras.layers.Conv2D(1, 3, padding="same"), keras.layers.Reshape((28, 28))])
    path = tmp_path_factory.mktemp("non-classifier") / "model.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def cnn_bundle(tmp_path_factory, user_cnn_path, sample_dataset):
    """The user CNN exported to every format."""
    from edgeship.export import export_bundle

    return export_bundle(user_cnn_path, tmp_path_factory.mktemp("cnn-bundle") / "bundle", dataset=sample_dataset)


@pytest.fixture(params=["mlp_bundle", "cnn_bundle"])
def any_bundle(request):
    """The seed MLP's bundle and the user CNN's bundle: the must-hold numbers apply to both."""
    return request.getfixturevalue(request.param)


def _golden(bundle: Path) -> dict[str, np.ndarray]:
    with np.load(bundle / "golden.npz") as data:
        return {key: data[key] for key in data.files}


def _scaled(images: np.ndarray, manifest) -> np.ndarray:
    spec = manifest.input
    scaled = (images.astype(np.float32) * np.float32(spec.scale) - np.float32(spec.mean)) / np.float32(spec.std)
    return scaled.reshape((len(images), *spec.shape))


@pytest.fixture(scope="session")
def read_golden():
    """bundle -> its golden set: raw uint8 `images`, Keras `probabilities`, `labels`."""
    return _golden


@pytest.fixture(scope="session")
def scale_as_manifest():
    """(raw images, manifest) -> float model inputs scaled as the manifest says."""
    return _scaled

