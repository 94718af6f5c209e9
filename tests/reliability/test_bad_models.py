"""Bad model files through the real command lines and the API: missing, empty, truncated, random, wrong shape, unsafe.

The runtime's `predict` gets the .tflite/.onnx cases, `edgeship export` the .keras cases. Each is
refused with exit 2 and one line naming the file and what to do, and export leaves no bundle.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeship.errors import ModelError
from edgeship.runtime import Classifier

CUT_FRACTIONS = (0.0, 0.01, 0.25, 0.5, 0.9, 0.999)


@pytest.fixture(scope="session")
def bad_models(tmp_path_factory, bundle_path, mlp_run) -> dict[str, Path]:
    """Broken and unsuitable model files, each named for what is wrong with it."""
    import keras
    import onnx
    import tensorflow as tf
    from onnx import TensorProto, helper, numpy_helper

    folder = tmp_path_factory.mktemp("bad-models")
    files: dict[str, Path] = {}

    sources = {"tflite": bundle_path / "model_fp32.tflite", "onnx": bundle_path / "model.onnx", "keras": Path(mlp_run.model_path)}
    rng = np.random.default_rng(0)
    for suffix, source in sources.items():
        content = source.read_bytes()
        for fraction in CUT_FRACTIONS:
            name = f"cut{int(fraction * 1000):03d}.{suffix}"
            (folder / name).write_bytes(content[: int(len(content) * fraction)])
            files[name] = folder / name
        files[f"random.{suffix}"] = folder / f"random.{suffix}"
        files[f"random.{suffix}"].write_bytes(rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes())

    two = keras.Input((28, 28)), keras.Input((28, 28))
    joined = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(keras.layers.Add()(list(two))))
    two_inputs = keras.Model(list(two), joined)
    image_out = keras.Sequential([keras.Input((28, 28)), keras.layers.Reshape((28, 28, 1)),
                                  keras.layers.Conv2D(1, 3, padding="same"), keras.layers.Reshape((28, 28))])
    one_class = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(1, activation="sigmoid")])
    for name, model in (("two_inputs", two_inputs), ("image_output", image_out), ("one_class", one_class)):
        model.save(folder / f"{name}.keras")
        (folder / f"{name}.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
        files[f"{name}.keras"], files[f"{name}.tflite"] = folder / f"{name}.keras", folder / f"{name}.tflite"

    @keras.saving.register_keras_serializable(package="reliability_user_code")
    class Doubler(keras.layers.Layer):
        """A user's own layer: the class lives in the user's code, not in the file."""

        def call(self, inputs):
            return inputs * 2.0

    custom = keras.Sequential([keras.Input((28, 28)), Doubler(), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    custom.save(folder / "custom_layer.keras")
    lambda_model = keras.Sequential([keras.Input((28, 28)), keras.layers.Lambda(lambda t: t * 2.0), keras.layers.Flatten(),
                                     keras.layers.Dense(10, activation="softmax")])
    lambda_model.save(folder / "lambda_layer.keras")
    files["custom_layer.keras"], files["lambda_layer.keras"] = folder / "custom_layer.keras", folder / "lambda_layer.keras"

    def onnx_model(inputs: list[str], nodes: list, output: tuple[str, list]) -> onnx.ModelProto:
        weights = numpy_helper.from_array(rng.normal(size=(784, 10)).astype(np.float32), "weights")
        flat = numpy_helper.from_array(np.array([-1, 784], np.int64), "flat")
        graph = helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 28, 28]) for name in inputs],
            [helper.make_tensor_value_info(output[0], TensorProto.FLOAT, output[1])], [weights, flat],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model

    head = [helper.make_node("Reshape", ["x", "flat"], ["f"]), helper.make_node("MatMul", ["f", "weights"], ["l"]),
            helper.make_node("Softmax", ["l"], ["p"], axis=1)]
    classifier = onnx_model(["x"], head, ("p", ["N", 10]))
    onnx.save(onnx_model(["a", "b"], [helper.make_node("Add", ["a", "b"], ["x"]), *head], ("p", ["N", 10])), folder / "two_inputs.onnx")
    onnx.save(onnx_model(["x"], [helper.make_node("Neg", ["x"], ["y"])], ("y", ["N", 28, 28])), folder / "image_output.onnx")
    files["two_inputs.onnx"], files["image_output.onnx"] = folder / "two_inputs.onnx", folder / "image_output.onnx"

    external = folder / "external"
    external.mkdir()
    onnx.save(classifier, external / "weights_outside.onnx", save_as_external_data=True, location="weights_outside.onnx.data")
    missing = folder / "external-missing"
    missing.mkdir()
    shutil.copy(external / "weights_outside.onnx", missing / "weights_outside.onnx")
    escaping = onnx.load(external / "weights_outside.onnx", load_external_data=False)
    for tensor in escaping.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../../../../../../etc/hostname"
    onnx.save(escaping, folder / "external_escape.onnx")
    files["external.onnx"] = external / "weights_outside.onnx"
    files["external_missing.onnx"] = missing / "weights_outside.onnx"
    files["external_escape.onnx"] = folder / "external_escape.onnx"
    return files


@pytest.mark.parametrize("suffix", ["tflite", "onnx"])
def test_a_missing_model_file(cli, refused, suffix, tmp_path, digit_npy):
    result = cli("runtime", "predict", tmp_path / f"absent.{suffix}", digit_npy)
    refused(result, "runtime", f"absent.{suffix}", "not found")
    with pytest.raises(ModelError, match="not found"):
        Classifier.load(tmp_path / f"absent.{suffix}")


@pytest.mark.parametrize("suffix", ["tflite", "onnx"])
@pytest.mark.parametrize("fraction", CUT_FRACTIONS)
def test_empty_and_truncated_runtime_models(cli, refused, bad_models, suffix, fraction, digit_npy):
    path = bad_models[f"cut{int(fraction * 1000):03d}.{suffix}"]
    line = refused(cli("runtime", "predict", path, digit_npy), "runtime", path.name, "not a valid")
    assert "re-export" in line


@pytest.mark.parametrize("suffix", ["tflite", "onnx"])
def test_random_bytes_with_a_model_extension(cli, refused, bad_models, suffix, digit_npy):
    path = bad_models[f"random.{suffix}"]
    refused(cli("runtime", "predict", path, digit_npy), "runtime", path.name, "not a valid")
    with pytest.raises(ModelError, match="not a valid"):
        Classifier.load(path)


@pytest.mark.parametrize("fraction", CUT_FRACTIONS)
def test_empty_and_truncated_keras_files_leave_no_bundle(cli, refused, bad_models, fraction, tmp_path):
    path = bad_models[f"cut{int(fraction * 1000):03d}.keras"]
    result = cli("edgeship", "export", path, "--formats", "tflite-fp32", "--out", tmp_path / "bundle")
    refused(result, "edgeship", path.name, "not a keras model", "model.save()")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda name, data: None if name == "config.json" else data, "no item named 'config.json'"),
        (lambda name, data: None if name.endswith(".h5") else data, "model.weights.h5"),
        (lambda name, data: data[: len(data) // 2] if name.endswith(".h5") else data, "truncated file"),
        (lambda name, data: b'{"class_name": ' if name == "config.json" else data, "JSONDecodeError"),
    ],
    ids=["no-config", "no-weights", "weights-cut", "config-cut"],
)
def test_keras_archives_damaged_inside(mlp_run, tmp_path, damage, words):
    import zipfile

    from edgeship.export.keras_model import load_classifier

    damaged = tmp_path / "damaged.keras"
    with zipfile.ZipFile(mlp_run.model_path) as source, zipfile.ZipFile(damaged, "w") as target:
        for name in source.namelist():
            content = damage(name, source.read(name))
            if content is not None:
                target.writestr(name, content)
    with pytest.raises(ModelError, match="is not a loadable Keras model") as refusal:
        load_classifier(damaged)
    assert words in str(refusal.value) and "model.save()" in str(refusal.value) and "\n" not in str(refusal.value)


def test_random_bytes_named_keras(cli, refused, bad_models, tmp_path):
    result = cli("edgeship", "export", bad_models["random.keras"], "--out", tmp_path / "bundle")
    refused(result, "edgeship", "random.keras", "not a keras model")
    assert list(tmp_path.iterdir()) == []


def test_onnx_external_data_present_runs_and_missing_is_refused(cli, refused, bad_models, digit_npy):
    with Classifier.load(bad_models["external.onnx"]) as classifier:
        assert classifier.predict(np.load(digit_npy)).shape == (1,)
    line = refused(cli("runtime", "predict", bad_models["external_missing.onnx"], digit_npy), "runtime",
                          "weights_outside.onnx.data")
    assert "beside" in line


def test_onnx_external_data_outside_the_model_folder_is_not_read(cli, refused, bad_models, digit_npy):
    refused(cli("runtime", "predict", bad_models["external_escape.onnx"], digit_npy), "runtime",
                   "external_escape.onnx", "outside")


@pytest.mark.parametrize("suffix", ["tflite", "onnx"])
def test_two_input_runtime_models(cli, refused, bad_models, suffix, digit_npy):
    refused(cli("runtime", "predict", bad_models[f"two_inputs.{suffix}"], digit_npy), "runtime",
                   "2 inputs", "single-input")


@pytest.mark.parametrize("name", ["image_output.tflite", "image_output.onnx", "one_class.tflite"])
def test_non_classifier_runtime_models(cli, refused, bad_models, name, digit_npy):
    refused(cli("runtime", "predict", bad_models[name], digit_npy), "runtime", name, "not a classifier")
    with pytest.raises(ModelError, match="not a classifier"):
        Classifier.load(bad_models[name])


@pytest.mark.parametrize(
    "name, words",
    [
        ("two_inputs.keras", ("2 inputs", "single-input")),
        ("image_output.keras", ("not a classifier", "(batch, classes)")),
        ("one_class.keras", ("not a classifier", "at least 2 classes")),
    ],
)
def test_keras_models_that_are_not_single_input_classifiers(cli, refused, bad_models, name, words, tmp_path):
    result = cli("edgeship", "export", bad_models[name], "--formats", "tflite-fp32", "--out", tmp_path / "bundle")
    refused(result, "edgeship", name, *words)
    assert list(tmp_path.iterdir()) == []


def test_custom_layer_is_refused_with_safe_mode_on(cli, refused, bad_models, tmp_path):
    result = cli("edgeship", "export", bad_models["custom_layer.keras"], "--formats", "tflite-fp32", "--out", tmp_path / "b")
    refused(result, "edgeship", "custom_layer.keras", "reliability_user_code>Doubler", "export_bundle")
    assert list(tmp_path.iterdir()) == []


def test_lambda_layer_is_refused_unless_trusted_and_the_option_says_why(cli, refused, bad_models, tmp_path):
    result = cli("edgeship", "export", bad_models["lambda_layer.keras"], "--formats", "tflite-fp32", "--out", tmp_path / "b")
    line = refused(result, "edgeship", "lambda_layer.keras", "--no-safe-mode", "trust")
    assert len(line) < 400
    assert list(tmp_path.iterdir()) == []
    help_text = " ".join(cli("edgeship", "export", "--help").stdout.split())
    assert "--no-safe-mode" in help_text
    for words in ("runs Python code", "any command", "only for files you trust"):
        assert words in help_text, words
    trusted = cli("edgeship", "export", bad_models["lambda_layer.keras"], "--no-safe-mode", "--formats", "tflite-fp32",
                      "--out", tmp_path / "trusted", "--calibration-images", "10")
    assert trusted.returncode == 0, trusted.stderr
    assert (tmp_path / "trusted" / "manifest.json").is_file()


def test_a_directory_named_like_a_model(cli, refused, tmp_path, digit_npy):
    folder = tmp_path / "model.tflite"
    folder.mkdir()
    refused(cli("runtime", "predict", folder, digit_npy), "runtime", "model.tflite", "manifest.json")


def test_an_unreadable_special_file_is_not_opened_as_a_model(cli, refused, tmp_path, digit_npy):
    fifo = tmp_path / "pipe.tflite"
    os.mkfifo(fifo)
    refused(cli("runtime", "predict", fifo, digit_npy, timeout=30), "runtime", "pipe.tflite", "not a regular file")
