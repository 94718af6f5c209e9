"""Runtime fixtures: the seed MLP's bundle from the export stage, and foreign model files converted here.

The foreign files stand for models exported elsewhere: a TFLite int8 model with int8 input (zero
point -128) and an ONNX model with NCHW input and logits, as a PyTorch MNIST export would be.
"""

from __future__ import annotations


import numpy as np
import pytest





@pytest.fixture(scope="session")
def foreign_models(tmp_path_factory, sample_dataset) -> dict[str, object]:
    """int8_io.tflite (int8 input/output), nchw_logits.onnx ((N, 1, 28, 28) in, logits out), fixed_batch.tflite (batch 1 only)."""
    import keras
    import tensorflow as tf
    import tf2onnx

    folder = tmp_path_factory.mktemp("foreign")
    x_train = sample_dataset.x_train.astype(np.float32) / 255.0
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x_train, sample_dataset.y_train, epochs=2, batch_size=64, verbose=0)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x_train[i : i + 1]] for i in range(100))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    int8_path = folder / "int8_io.tflite"
    int8_path.write_bytes(converter.convert())

    nchw = keras.Sequential([keras.Input((1, 28, 28)), keras.layers.Flatten(), keras.layers.Dense(32, activation="relu"),
                             keras.layers.Dense(10)])
    nchw.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    nchw.fit(x_train[:, None], sample_dataset.y_train, epochs=2, batch_size=64, verbose=0)
    signature = [tf.TensorSpec([None, 1, 28, 28], tf.float32, name="input")]
    function = tf.function(lambda x: nchw(x), input_signature=signature)
    proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=17)
    onnx_path = folder / "nchw_logits.onnx"
    onnx_path.write_bytes(proto.SerializeToString())
    logits = nchw.predict(x_train[:200, None], verbose=0)

    fixed = keras.Sequential([keras.Input((28, 28), batch_size=1), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    fixed.set_weights([np.resize(model.get_weights()[0], (784, 10)), np.zeros(10, np.float32)])
    fixed_path = folder / "fixed_batch.tflite"
    fixed_path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(fixed).convert())
    return {"int8_io": int8_path, "nchw_logits": onnx_path, "nchw_reference_logits": logits, "fixed_batch": fixed_path}
