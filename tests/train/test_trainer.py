"""The train stage on the real bundled MNIST sample: accuracy, determinism, files written, bad options."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeship.errors import OutputError, UsageError
from edgeship.modelcard import read_card
from edgeship.train import train_model


def test_seed_mlp_reaches_090_and_writes_its_run(mlp_run):
    metrics = json.loads((mlp_run.out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.90
    assert metrics["parameters"] == 28 * 28 * 128 + 128 + 128 * 10 + 10
    assert len(metrics["per_class_accuracy"]) == 10
    confusion = np.array(metrics["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == 1000
    assert np.isclose(np.trace(confusion) / 1000, metrics["test_accuracy"])
    history = json.loads((mlp_run.out / "history.json").read_text())
    assert len(history["loss"]) == 5 and history["loss"][-1] < history["loss"][0]
    assert (mlp_run.out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = read_card(mlp_run.model_path)
    assert card.labels == [str(i) for i in range(10)]
    assert card.input.scale == pytest.approx(1 / 255) and card.input.shape == [28, 28]


def test_seed_mlp_is_exactly_the_exercise_model(mlp_run):
    import keras

    model = keras.saving.load_model(mlp_run.model_path)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Flatten", "Dense", "Dense"]
    assert model.layers[1].units == 128 and model.layers[1].activation.__name__ == "relu"
    assert model.layers[2].units == 10 and model.layers[2].activation.__name__ == "softmax"


def test_cnn_reaches_095_on_the_sample(tmp_path, sample_dataset):
    result = train_model("cnn", sample_dataset, epochs=5, seed=0, out=tmp_path, progress=False)
    assert result.metrics["test_accuracy"] >= 0.95
    assert 3_000 <= result.metrics["parameters"] <= 100_000


def test_same_seed_gives_same_accuracy_and_weights(tmp_path, mlp_run, sample_dataset):
    again = train_model("mlp", sample_dataset, epochs=5, seed=0, out=tmp_path, progress=False)
    assert again.metrics["test_accuracy"] == mlp_run.metrics["test_accuracy"]
    assert again.metrics["confusion_matrix"] == mlp_run.metrics["confusion_matrix"]


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"architecture": "resnet"}, UsageError, "unknown model 'resnet'"),
        ({"epochs": 0}, UsageError, "--epochs must be at least 1"),
    ],
)
def test_bad_options_are_refused_before_training(tmp_path, sample_dataset, options, error, words):
    arguments = {"architecture": "mlp", "epochs": 1, **options}
    with pytest.raises(error, match=words):
        train_model(arguments.pop("architecture"), sample_dataset, out=tmp_path / "run", progress=False, **arguments)
    assert not (tmp_path / "run").exists()


def test_out_that_is_a_file_is_refused(tmp_path, sample_dataset):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        train_model("mlp", sample_dataset, epochs=1, out=blocker, progress=False)
