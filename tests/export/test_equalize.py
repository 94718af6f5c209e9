"""Cross-layer equalization: same float function, matched channel ranges, on a copy; pairs through BatchNorm, ReLU6 and depthwise."""

from __future__ import annotations

import numpy as np
import pytest

from edgeship.export.equalize import equalize, find_pairs
from edgeship.files import sha256_file
from tools.outliers import OUTLIER_FACTOR


def _probabilities(model, images):
    return np.asarray(model.predict(images.astype(np.float32) / 255.0, verbose=0, batch_size=256))


def test_the_outlier_mlp_is_equalized_without_changing_its_function(outlier_mlp_path, test_images):
    import keras

    before = sha256_file(outlier_mlp_path)
    model = keras.saving.load_model(outlier_mlp_path, compile=False)
    weights = [w.copy() for w in model.get_weights()]
    result = equalize(model)
    hidden_layer, head_layer = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [(pair.producer, pair.consumer, pair.between, pair.channels) for pair in result.pairs] == [(hidden_layer, head_layer, "relu", 128)]
    difference = np.abs(_probabilities(result.model, test_images) - _probabilities(model, test_images)).max()
    assert difference <= 1e-5
    original = np.abs(model.get_layer(hidden_layer).get_weights()[0]).max(axis=0)
    outlier_units = np.flatnonzero(original > 100 * np.median(original))
    assert len(outlier_units) == 4
    ranges = np.abs(result.model.get_layer(hidden_layer).get_weights()[0]).max(axis=0)
    outliers, others = ranges[outlier_units], np.delete(ranges, outlier_units)
    assert outliers.max() < 5 * np.median(others), "the outlier units' weights are back among the others'"
    assert result.pairs[0].scale_max > OUTLIER_FACTOR / 10
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights())), "the given model is left as it was"
    assert sha256_file(outlier_mlp_path) == before


@pytest.fixture(scope="module")
def mobile_block_model():
    """Conv -> BN -> ReLU6 -> depthwise -> BN -> ReLU6 (an Activation layer) -> pointwise (relu6 fused) -> pool -> conv -> GAP -> dense -> dense.

    BatchNorm statistics are set far from identity so that folding them matters.
    """
    import keras

    keras.utils.set_random_seed(5)
    layers = keras.layers
    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(8, 3, use_bias=False, name="stem")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(6.0)(x)
    x = layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = layers.BatchNormalization(name="depthwise_bn")(x)
    x = layers.Activation("relu6")(x)
    x = layers.Conv2D(16, 1, activation="relu6", name="pointwise")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(16, 3, activation="relu", name="conv")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(32, activation="relu", name="hidden")(x)
    outputs = layers.Dense(10, activation="softmax", name="head")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            layer.set_weights([rng.uniform(0.5, 3, channels), rng.normal(0, 0.3, channels), rng.normal(0, 0.3, channels),
                               rng.uniform(0.2, 2, channels)])
    depthwise = model.get_layer("depthwise")
    kernel, bias = depthwise.get_weights()
    kernel[..., 2, 0] *= 50.0
    depthwise.set_weights([kernel, bias])
    return model


def test_conv_depthwise_pointwise_chain_with_batchnorm_and_relu6_keeps_its_function(mobile_block_model, test_images):
    images = test_images[:300, ..., None]
    result = equalize(mobile_block_model, clipped=True)
    pairs = {(pair.producer, pair.consumer): pair for pair in result.pairs}
    assert set(pairs) == {("stem", "depthwise"), ("depthwise", "pointwise"), ("pointwise", "conv"), ("conv", "hidden"), ("hidden", "head")}
    assert pairs[("stem", "depthwise")].batchnorm == "stem_bn" and pairs[("stem", "depthwise")].between == "relu6"
    assert pairs[("depthwise", "pointwise")].batchnorm == "depthwise_bn" and pairs[("depthwise", "pointwise")].between == "relu6"
    assert pairs[("pointwise", "conv")].between == "relu6" and pairs[("conv", "hidden")].between == "relu"
    assert pairs[("depthwise", "pointwise")].scale_max > 3, "the scaled depthwise channel is brought down"
    difference = np.abs(_probabilities(result.model, images) - _probabilities(mobile_block_model, images)).max()
    assert difference <= 1e-5
    batchnorm = result.model.get_layer("stem_bn")
    np.testing.assert_allclose(batchnorm.moving_mean.numpy(), 0.0)
    np.testing.assert_allclose(batchnorm.gamma.numpy(), 1.0)


def test_the_equalized_relu6_chain_converts_to_int8_tflite_and_onnx(mobile_block_model, test_images, tmp_path):
    """The per-channel clip that keeps ReLU6 exact is made of ops both converters take."""
    from edgeship.export.base import ExportOptions
    from edgeship.export.onnx import export_onnx
    from edgeship.export.tflite import export_tflite_int8
    from edgeship.manifest import InputSpec
    from edgeship.runtime import Classifier

    result = equalize(mobile_block_model, clipped=True)
    options = ExportOptions(
        input_shape=(28, 28, 1), input_spec=InputSpec(shape=[28, 28, 1]), labels=[str(d) for d in range(10)],
        output_kind="probabilities", calibration_images=test_images[:100],
    )
    export_tflite_int8(result.model, tmp_path / "m.tflite", options)
    export_onnx(result.model, tmp_path / "m.onnx", options)
    expected = _probabilities(mobile_block_model, test_images[:200, ..., None])
    for name in ("m.tflite", "m.onnx"):
        with Classifier.load(tmp_path / name, scale=1 / 255) as classifier:
            probabilities = classifier.predict_proba(test_images[:200])
        assert (probabilities.argmax(1) == expected.argmax(1)).mean() >= 0.9
        if name.endswith(".onnx"):
            assert np.abs(probabilities - expected).max() <= 1e-4


def test_pairs_joined_by_relu6_are_left_alone_by_default(mobile_block_model, test_images):
    """The default (what export's rescue uses) adds no per-channel clip op: only the ReLU and linear pairs are equalized."""
    result = equalize(mobile_block_model)
    assert {(pair.producer, pair.consumer) for pair in result.pairs} == {("conv", "hidden"), ("hidden", "head")}
    assert result.record()["clipped_pairs_left_alone"] == 3
    minimum_ops = [layer for layer in result.model.layers if type(layer).__name__ == "Activation"
                   and "clipped_per_channel" in getattr(layer.activation, "__name__", "")]
    assert minimum_ops == []
    images = test_images[:300, ..., None]
    assert np.abs(_probabilities(result.model, images) - _probabilities(mobile_block_model, images)).max() <= 1e-5


def test_layers_joined_by_anything_but_relu_linear_or_pooling_are_not_paired():
    import keras

    layers = keras.layers
    model = keras.Sequential([
        keras.Input((16,)), layers.Dense(8, activation="sigmoid"), layers.Dense(8), layers.Softmax(), layers.Dense(4),
    ])
    branch_in = keras.Input((16,))
    hidden = layers.Dense(8, activation="relu")(branch_in)
    branched = keras.Model(branch_in, layers.Add()([layers.Dense(8)(hidden), layers.Dense(8)(hidden)]))
    assert find_pairs(model) == []
    assert find_pairs(branched) == [], "a tensor read by two layers cannot be rescaled for one of them"
    result = equalize(model)
    assert not result.changed and result.record()["pairs"] == []


@pytest.mark.slow
def test_a_mobilenetv2_keeps_its_function_when_equalized():
    """Keras' own MobileNetV2 (expand -> depthwise -> project blocks with BatchNorm and ReLU6, residual Adds)."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, channels), rng.normal(0, 0.2, channels), rng.normal(0, 0.2, channels),
                               rng.uniform(0.5, 2, channels)])
    images = rng.uniform(0, 1, (64, 32, 32, 3)).astype(np.float32)
    result = equalize(model, clipped=True)
    assert len(result.pairs) >= 30 and {pair.between for pair in result.pairs} == {"relu6", "linear"}
    assert all(pair.batchnorm for pair in result.pairs)
    difference = np.abs(result.model.predict(images, verbose=0) - model.predict(images, verbose=0)).max()
    assert difference <= 1e-5
