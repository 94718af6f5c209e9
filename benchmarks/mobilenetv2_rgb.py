"""MobileNetV2 (alpha 0.35, 96x96 RGB, 10 classes) as fp32 and int8 .tflite files, made here for the LiteRT benchmarks.

The files come straight from the TFLite converter, without training, so the LiteRT benchmarks get
a realistic MobileNetV2 graph in seconds (edgeship's own flow, `edgeship pipeline --model
mobilenetv2`, trains one first: benchmarks/int8_rescue.py measures that):
keras.applications.MobileNetV2(weights=None) (no pretrained weights can be downloaded). Untrained, its batch-norm statistics (mean 0, variance 1) let the activations die out
over 17 blocks and every image gets exactly 1/10 for every class, which makes parity meaningless;
so the statistics are set from one batch of 64 real images (momentum 0, one call in training mode),
and the classifier head is scaled x5 so that top-1 is decisive (median top probability 0.62, top-1
over top-2 margin >= 0.04 for 95% of the images). int8 is calibrated on 100 real digits of the
bundled sample brought to 96x96 RGB. `make_files` returns the two paths and 200 such
test images with the Keras model's probabilities, the reference the parity gates compare with.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZE = 96
HEAD_GAIN = 5.0


def digits_rgb(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) digits to uint8 (N, 96, 96, 3): bilinear resize, grey in all three channels."""
    import tensorflow as tf

    resized = tf.image.resize(images[..., None].astype(np.float32), (SIZE, SIZE)).numpy()
    return np.repeat(resized, 3, axis=-1).clip(0, 255).round().astype(np.uint8)


def make_files(folder: str | Path, seed: int = 0) -> dict[str, object]:
    """mobilenetv2_fp32.tflite and mobilenetv2_int8.tflite (int8 I/O) in `folder`, with test images and Keras probabilities.

    Cached: an existing pair in `folder` (with its reference.npz) is reused.
    """
    folder = Path(folder)
    fp32_path, int8_path, reference_path = folder / "mobilenetv2_fp32.tflite", folder / "mobilenetv2_int8.tflite", folder / "reference.npz"
    if not (fp32_path.is_file() and int8_path.is_file() and reference_path.is_file()):
        folder.mkdir(parents=True, exist_ok=True)
        from edgeship.native import import_keras_quietly, native_output_to_log

        keras = import_keras_quietly()
        import tensorflow as tf

        from edgeship.data import load_dataset

        sample = load_dataset("mnist-sample")
        calibration = digits_rgb(sample.x_train[:100]).astype(np.float32) / 255.0
        test_images = digits_rgb(sample.x_test[:200])
        keras.utils.set_random_seed(seed)
        model = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), alpha=0.35, weights=None, classes=10)
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.0
        model(calibration[:64], training=True)
        head = model.layers[-1]
        kernel, bias = head.get_weights()
        head.set_weights([kernel * HEAD_GAIN, bias])
        probabilities = model.predict(test_images.astype(np.float32) / 255.0, verbose=0, batch_size=50)
        with native_output_to_log("TFLite converter"):
            fp32_path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(len(calibration)))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.int8
            int8_path.write_bytes(converter.convert())
        np.savez(reference_path, images=test_images, probabilities=probabilities, labels=sample.y_test[:200])
    with np.load(reference_path) as reference:
        arrays = {key: reference[key] for key in reference.files}
    return {"fp32": fp32_path, "int8": int8_path, **arrays}
