"""KerasReference: the one runner of the Keras model that export, verify and bench share."""

from __future__ import annotations

import numpy as np
import pytest

from edgeship.manifest import InputSpec
from edgeship.reference import KerasReference


@pytest.fixture(scope="module")
def logits_model():
    import keras

    keras.utils.set_random_seed(4)
    return keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10)])


def test_logits_are_detected_and_turned_into_probabilities(logits_model, test_images):
    reference = KerasReference(logits_model, InputSpec(shape=[28, 28]))
    outputs = reference.outputs(test_images[:64])
    assert reference.detect_output_kind(outputs, softmax_output=False) == "logits"
    probabilities = reference.predict_proba(test_images[:64])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), outputs.argmax(axis=1))
    np.testing.assert_allclose(reference.call(test_images[:1]), probabilities[:1], atol=1e-5)


def test_probabilities_before_the_output_kind_is_known_are_refused(logits_model, test_images):
    reference = KerasReference(logits_model, InputSpec(shape=[28, 28]))
    with pytest.raises(RuntimeError, match="output kind is not known"):
        reference.predict_proba(test_images[:2])


def test_the_bundle_reference_matches_the_probabilities_recorded_at_export(mlp_bundle, mlp_run):
    reference = KerasReference.load(mlp_run.model_path, mlp_bundle.manifest)
    with np.load(mlp_bundle.bundle / "golden.npz") as golden:
        images, probabilities = golden["images"], golden["probabilities"]
    np.testing.assert_allclose(reference.predict_proba(images), probabilities, atol=1e-6)
    assert reference.load_seconds > 0 and reference.logits is False
