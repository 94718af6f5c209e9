"""A user's own RGB models of any size, without a card: a functional model with a Normalization layer inside, and a
keras.applications model built with weights=None, exported with the preprocessing given as options."""

from __future__ import annotations

import numpy as np
import pytest

from edgeship.data import FolderOptions, load_dataset
from edgeship.errors import UsageError
from edgeship.export import export_bundle
from edgeship.manifest import Resize
from edgeship.parity import dataset_for_bundle, verify_bundle
from edgeship.runtime import Classifier


@pytest.fixture(scope="module")
def shapes_40(shapes_folder):
    return load_dataset(shapes_folder, FolderOptions(image_size=(40, 40)))


@pytest.fixture(scope="module")
def normalization_model(tmp_path_factory, shapes_40):
    """inputs (40, 40, 3) raw pixels -> Normalization adapted on them -> conv -> softmax, trained briefly; no card."""
    import keras

    keras.utils.set_random_seed(3)
    layers = keras.layers
    normalization = layers.Normalization(axis=-1)
    normalization.adapt(shapes_40.x_train.astype("float32"))
    inputs = keras.Input((40, 40, 3), name="photo")
    x = normalization(inputs)
    x = layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(shapes_40.x_train.astype("float32"), shapes_40.y_train, epochs=30, batch_size=8, verbose=0)
    path = tmp_path_factory.mktemp("normalization") / "model.keras"
    model.save(path)
    return path


def test_a_functional_model_with_normalization_inside_takes_raw_pixels(normalization_model, shapes_folder, tmp_path):
    result = export_bundle(normalization_model, tmp_path / "bundle", formats="tflite-fp32,tflite-int8,onnx", dataset=str(shapes_folder))
    spec = result.manifest.input
    assert spec.shape == [40, 40, 3] and spec.color == "rgb" and spec.scale == 1.0 and spec.mean == 0.0 and spec.std == 1.0
    assert "starts with Normalization" in spec.note and "scaling here is 1" in spec.note
    assert spec.resize == Resize() and spec.recipe is None
    assert result.manifest.dataset["split"]["image_size"] == [40, 40]
    assert result.manifest.dataset["keras_accuracy"] > 0.5
    dataset = dataset_for_bundle(result.manifest)
    report = verify_bundle(tmp_path / "bundle", dataset, progress=lambda line: None)
    rows = {row.artifact: row for row in report.rows}
    assert rows["tflite-fp32"].status == rows["onnx"].status == "pass"
    assert rows["tflite-int8"].comparison.agreement >= 0.9


def test_keras_applications_with_per_channel_options(tmp_path, shapes_folder):
    import keras

    keras.utils.set_random_seed(4)
    model = keras.applications.MobileNetV2(input_shape=(48, 48, 3), alpha=0.35, weights=None, classes=3)
    model.save(tmp_path / "mobilenet.keras")
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    result = export_bundle(
        tmp_path / "mobilenet.keras", tmp_path / "bundle", formats="tflite-fp32,onnx", dataset=str(shapes_folder),
        mean=mean, std=std, resize=Resize("area", "pad"),
    )
    spec = result.manifest.input
    assert spec.mean == mean and spec.std == std and spec.scale == pytest.approx(1 / 255) and spec.resize == Resize("area", "pad")
    assert spec.note == "scaling from the export options (the model has no card)"
    assert all(artifact.status == "pass" for artifact in result.manifest.artifacts), result.rows
    # the runtime applies the per-channel contract as Keras was fed: (raw / 255 - mean) / std
    images = result_images = load_dataset(shapes_folder, FolderOptions(image_size=(48, 48), resize=Resize("area", "pad"))).x_test
    expected = model.predict((images / 255.0 - np.array(mean)) / np.array(std), verbose=0)
    with Classifier.load(tmp_path / "bundle", artifact="onnx") as classifier:
        np.testing.assert_allclose(classifier.predict_proba(result_images), expected, atol=1e-5)


@pytest.mark.parametrize(
    "options, words",
    [
        ({"mean": [0.5, 0.5]}, "mean lists 2 values but the model takes 3 channels"),
        ({"std": [0.5, 0.0, 0.5]}, "std must not be 0"),
        ({"color": "grey"}, "color grey does not fit the model's 3 input channels"),
        ({"recipe": "mnist"}, "recipe mnist makes grey pictures"),
    ],
    ids=["mean-length", "std-zero", "grey-for-rgb", "recipe-for-rgb"],
)
def test_preprocessing_options_that_cannot_fit_are_refused_before_writing(normalization_model, shapes_folder, tmp_path, options, words):
    with pytest.raises(UsageError, match=words):
        export_bundle(normalization_model, tmp_path / "bundle", formats="tflite-fp32", dataset=str(shapes_folder), **options)
    assert not (tmp_path / "bundle").exists()
