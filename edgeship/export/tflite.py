"""TFLite exporters: float32, float16 weights, dynamic-range int8 weights, and full-integer int8.

Keras 3 path: the model goes through a SavedModel written by `keras.export.ExportArchive` (one
`serve` endpoint calling the model with training=False and an explicit input signature with a
dynamic batch), then `TFLiteConverter.from_saved_model`. This is the path Keras' own LiteRT export
takes. `from_keras_model` broke with Keras 3 (tensorflow/tensorflow#63867, keras-team/keras#18430)
and, where it works again, prints to stdout and silently falls back to a legacy path on error;
`from_concrete_functions` on a Keras 3 `tf.function` leaves the weights as resource variables, so
float models come out wrong and calibration fails on READ_VARIABLE (keras-team/keras#19108
recommends the SavedModel export instead).

Only TFLite builtin ops are allowed (no Flex/Select TF ops): the files must run with the slim
tflite-runtime or LiteRT on a device, and a model that needs more fails here with the reason.
"""

from __future__ import annotations

import dataclasses
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

from edgeship.export.base import ExportOptions, ExportRecord, check_format_options
from edgeship.native import native_output_to_log
from edgeship.errors import MissingDependencyError, UsageError
from edgeship.files import atomic_write_bytes



def write_saved_model(model: Any, folder: Path, input_shape: tuple[int, ...], batch_size: int | None = None) -> None:
    """Write the inference call of `model` (training=False) as a SavedModel with one `serve` endpoint."""
    import keras
    import tensorflow as tf

    signature = [tf.TensorSpec((batch_size, *input_shape), tf.float32, name="image")]

    def serve(image: Any) -> dict[str, Any]:
        return {"output": model(image, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve, input_signature=signature)
    archive.write_out(str(folder), verbose=False)


def convert(
    model: Any, options: ExportOptions, configure: Callable[[Any], None], batch_size: int | None = None
) -> bytes:
    """Convert `model` to a TFLite flatbuffer; `configure` sets the converter's optimisation options."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="edgeship-savedmodel-") as folder:
        write_saved_model(model, Path(folder), options.input_shape, batch_size)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        configure(converter)
        with native_output_to_log("the TFLite converter"):
            return converter.convert()


def export_tflite_fp32(model: Any, path: Path, options: ExportOptions) -> ExportRecord:
    """Float32 weights and activations: the reference the other TFLite files are compared with."""
    atomic_write_bytes(path, convert(model, options, lambda converter: None))
    return ExportRecord(path, {"converter": "TFLiteConverter.from_saved_model"})


def export_tflite_fp16(model: Any, path: Path, options: ExportOptions) -> ExportRecord:
    """Float16 weights (half the size), float32 compute on CPUs; GPU delegates run it in float16."""
    import tensorflow as tf

    def configure(converter: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]

    atomic_write_bytes(path, convert(model, options, configure))
    return ExportRecord(path, {"converter": "TFLiteConverter.from_saved_model", "weights": "float16"})


def export_tflite_dynamic(model: Any, path: Path, options: ExportOptions) -> ExportRecord:
    """Dynamic-range quantization: int8 weights, activations quantized on the fly; float input and output."""
    import tensorflow as tf

    def configure(converter: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        # Per-tensor weights for Dense layers keep FULLY_CONNECTED at an op version that
        # tflite-runtime 2.14 (the last release, what Raspberry Pi OS users install) still loads;
        # per-channel dense weights from TF >= 2.16 need version 12, which it refuses.
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True

    atomic_write_bytes(path, convert(model, options, configure))
    return ExportRecord(path, {"converter": "TFLiteConverter.from_saved_model", "weights": "int8, per-tensor for dense layers"})


def _int8_configure(options: ExportOptions, stage: str, per_channel: bool = True) -> Callable[[Any], None]:
    """Full-integer settings: Optimize.DEFAULT, the calibration images as representative dataset, int8 builtins, the I/O type."""
    import tensorflow as tf

    check_format_options(options.opset, options.int8_io)
    io_type = tf.uint8 if options.int8_io == "uint8" else tf.int8
    inputs = options.calibration_inputs()

    def representative_dataset() -> Any:
        total = len(inputs)
        for index in range(total):
            options.report(stage, index + 1, total)
            yield [inputs[index : index + 1]]

    def configure(converter: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
        converter._experimental_disable_per_channel = not per_channel

    return configure


def convert_int8(model: Any, options: ExportOptions, batch_size: int | None = None, per_channel: bool = True) -> bytes:
    """Full-integer int8: weights and activations int8, calibrated on real training images; int8 or uint8 I/O.

    For a model taking x = raw / 255 the calibrated input quantization is scale 1/255 with zero
    point -128 (int8 I/O, the default: q is the raw pixel with its top bit flipped) or 0 (uint8 I/O:
    q is the raw pixel itself). int8 I/O is the default because XNNPACK leaves the uint8<->int8
    QUANTIZE ops of a uint8-I/O model on the reference kernels: ~2.7x slower at batch 256.

    Weights are per-channel: per-tensor (`per_channel=False`, kept for benchmarks/int8_speed.py)
    runs no faster on XNNPACK and is what makes post-training int8 collapse on MobileNets, whose
    depthwise channels have very different ranges. Per-channel has a fixed price in the TFLite
    schema: a float32 scale and an int64 zero point per output channel, on the weights and again
    on the bias, 24 bytes a channel. A 3x3 depthwise channel has 9 bytes of weights, so in
    MobileNetV2-0.35 these parameters are 170 KB, 10% of the fp32 file, and the int8 file stays
    near 39% of fp32 (per-tensor: 29%).

    With `options.float_layers` the ops producing those tensors stay in float (selective quantization).
    """
    if options.float_layers:
        return _convert_int8_keeping_float(model, options, batch_size)
    return convert(model, options, _int8_configure(options, "calibrating tflite-int8", per_channel), batch_size=batch_size)


def quantization_debugger(
    model: Any, options: ExportOptions, float_layers: tuple[str, ...] = (), debug_dataset: Any = None, metrics: Any = None,
    stage: str = "calibrating tflite-int8",
) -> Any:
    """LiteRT's QuantizationDebugger on the model converted as tflite-int8 is, with `float_layers` denylisted.

    The debugger is TensorFlow's public way to keep chosen ops in float ("selective quantization",
    `QuantizationDebugOptions.denylisted_nodes`, naming ops by their output tensors) and to measure
    each quantized op against its float twin (`layer_direct_compare_metrics`).
    """
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="edgeship-savedmodel-") as folder:
        write_saved_model(model, Path(folder), options.input_shape)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        _int8_configure(options, stage)(converter)
        debug_options = tf.lite.experimental.QuantizationDebugOptions(
            layer_direct_compare_metrics=metrics, denylisted_nodes=list(float_layers) or None
        )
        with native_output_to_log("the TFLite quantization debugger"), warnings.catch_warnings():
            # The debugger runs its models in tf.lite.Interpreter, whose deprecation notice is TensorFlow's business.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=debug_dataset, debug_options=debug_options
            )
    return debugger


def _convert_int8_keeping_float(model: Any, options: ExportOptions, batch_size: int | None) -> bytes:
    """Selective quantization through the debugger, then the I/O type set as the converter itself sets it."""
    import tensorflow as tf

    if batch_size is not None:
        raise UsageError("layers kept in float are only for tflite-int8 files with a dynamic batch")
    try:
        from tensorflow.lite.python.util import modify_model_io_type
    except ImportError as exc:
        raise MissingDependencyError(
            "tensorflow.lite.python.util.modify_model_io_type (what TFLiteConverter uses to set int8 I/O) is gone from "
            "this TensorFlow; install tensorflow 2.21, the version edgeship is tested with"
        ) from exc
    io_type = tf.uint8 if options.int8_io == "uint8" else tf.int8
    debugger = quantization_debugger(model, options, options.float_layers)
    with native_output_to_log("the TFLite quantizer"):
        content = debugger.get_nondebug_quantized_model()
    return modify_model_io_type(content, io_type, io_type)


def export_tflite_int8(model: Any, path: Path, options: ExportOptions) -> ExportRecord:
    """Full-integer int8 TFLite (the Edge TPU's input and the smallest file), calibrated on real images."""
    atomic_write_bytes(path, convert_int8(model, options))
    details: dict[str, Any] = {
        "converter": "TFLiteConverter.from_saved_model",
        "io_type": options.int8_io,
        "weights": "int8, per-channel",
        "calibration": {**options.calibration, "method": "TFLite min/max over the representative dataset"},
    }
    if options.float_layers:
        details["float_layers"] = list(options.float_layers)
        details["quantizer"] = "QuantizationDebugger selective quantization (denylisted_nodes)"
    return ExportRecord(path, details)


def export_tflite_int16x8(model: Any, path: Path, options: ExportOptions) -> ExportRecord:
    """16-bit activations, 8-bit weights: finer activation steps than int8 at int8's weight size; float I/O.

    The converter's EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8 mode. XNNPACK does not
    run these ops, so they take LiteRT's reference kernels (see the bench for what that costs).
    """
    import tensorflow as tf

    inputs = options.calibration_inputs()

    def representative_dataset() -> Any:
        for index in range(len(inputs)):
            options.report("calibrating tflite-int16x8", index + 1, len(inputs))
            yield [inputs[index : index + 1]]

    def configure(converter: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]

    atomic_write_bytes(path, convert(model, options, configure))
    return ExportRecord(
        path,
        {
            "converter": "TFLiteConverter.from_saved_model",
            "ops": "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8",
            "io_type": "float32",
            "calibration": {**options.calibration, "method": "TFLite min/max over the representative dataset"},
        },
    )


def export_tflite_int8_uint8io(model: Any, path: Path, options: ExportOptions) -> ExportRecord:
    """Full-integer int8 with uint8 input and output: the int8 file for MediaPipe Tasks and Android apps.

    MediaPipe Tasks' ImageClassifier takes only uint8 or float32 input tensors; given an int8-input
    model it fails with "Type mismatch for input tensor ...: Requested one of these types:
    uint8/float32, got INT8" (measured with mediapipe 0.10.21). With x = raw / 255 the uint8 input
    is the raw pixel itself, which is what MediaPipe feeds a uint8 model.
    """
    return export_tflite_int8(model, path, dataclasses.replace(options, int8_io="uint8"))
