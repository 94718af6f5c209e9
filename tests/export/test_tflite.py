"""TFLite exporters: every file loads in LiteRT's interpreter and keeps the Keras model's answers."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from edgeship.export.base import ExportOptions
from edgeship.export.keras_model import load_classifier
from edgeship.export.tflite import convert_int8, export_tflite_int8
from edgeship.manifest import InputSpec


def run_tflite(path, inputs: np.ndarray) -> tuple[np.ndarray, dict, dict]:
    """Run a .tflite file on `inputs` (already in its input dtype) in one batch; outputs as stored (not dequantized)."""
    interpreter = Interpreter(model_path=str(path))
    input_details = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(input_details["index"], list(inputs.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_details["index"], inputs)
    interpreter.invoke()
    output_details = interpreter.get_output_details()[0]
    return interpreter.get_tensor(output_details["index"]), input_details, output_details


def test_fp32_matches_keras(any_bundle, read_golden, scale_as_manifest):
    artifact = any_bundle.manifest.artifact("tflite-fp32")
    assert artifact.has_file and artifact.precision == "fp32"
    assert artifact.parity["agreement"] >= 0.999
    assert artifact.parity["max_abs_diff"] <= 1e-4
    golden = read_golden(any_bundle.bundle)
    outputs, input_details, _ = run_tflite(any_bundle.bundle / artifact.file, scale_as_manifest(golden["images"], any_bundle.manifest))
    assert input_details["dtype"] == np.float32
    assert np.abs(outputs - golden["probabilities"]).max() <= 1e-4


def test_int8_keeps_accuracy_and_is_small(any_bundle):
    int8, fp32 = any_bundle.manifest.artifact("tflite-int8"), any_bundle.manifest.artifact("tflite-fp32")
    assert int8.has_file and int8.precision == "int8"
    assert int8.parity["accuracy_delta_pp"] >= -0.5
    assert abs(int8.parity["accuracy"] - int8.parity["keras_accuracy"]) <= 0.005
    assert int8.parity["agreement"] >= 0.99
    assert int8.bytes <= 0.30 * fp32.bytes
    assert int8.details["calibration"] == {
        "dataset": "mnist-sample", "split": "train", "images": 300, "seed": 0,
        "method": "TFLite min/max over the representative dataset",
    }


def test_int8_takes_raw_pixels_with_the_top_bit_flipped(mlp_bundle, read_golden):
    """Default int8 I/O: with input scale 1/255 and zero point -128, the quantized input is raw - 128."""
    artifact = mlp_bundle.manifest.artifact("tflite-int8")
    assert artifact.input.dtype == "int8" and artifact.output.dtype == "int8"
    assert artifact.input.quantization.zero_point == -128
    assert artifact.input.quantization.scale == pytest.approx(1 / 255, rel=1e-6)
    golden = read_golden(mlp_bundle.bundle)
    flipped = (golden["images"] ^ np.uint8(0x80)).view(np.int8)
    outputs, input_details, output_details = run_tflite(mlp_bundle.bundle / artifact.file, flipped)
    assert input_details["dtype"] == np.int8
    scale, zero_point = output_details["quantization"]
    assert (scale, zero_point) == (artifact.output.quantization.scale, artifact.output.quantization.zero_point)
    probabilities = (outputs.astype(np.float32) - zero_point) * scale
    assert (probabilities.argmax(1) == golden["probabilities"].argmax(1)).mean() >= 0.98
    assert np.abs(probabilities - golden["probabilities"]).max() < 0.1


@pytest.mark.parametrize("name, size_ratio", [("tflite-fp16", 0.55), ("tflite-dynamic", 0.30)])
def test_fp16_and_dynamic_load_agree_and_shrink(any_bundle, read_golden, scale_as_manifest, name, size_ratio):
    artifact, fp32 = any_bundle.manifest.artifact(name), any_bundle.manifest.artifact("tflite-fp32")
    assert artifact.has_file
    assert artifact.parity["agreement"] >= 0.99
    assert artifact.bytes <= size_ratio * fp32.bytes
    assert artifact.input.dtype == "float32" and artifact.input.quantization is None
    golden = read_golden(any_bundle.bundle)
    outputs, _, _ = run_tflite(any_bundle.bundle / artifact.file, scale_as_manifest(golden["images"], any_bundle.manifest))
    assert (outputs.argmax(1) == golden["probabilities"].argmax(1)).mean() >= 0.98


def test_files_keep_a_dynamic_batch(mlp_bundle, read_golden, scale_as_manifest):
    artifact = mlp_bundle.manifest.artifact("tflite-fp32")
    assert artifact.input.shape == [-1, 28, 28] and artifact.output.shape == [-1, 10]
    images = read_golden(mlp_bundle.bundle)["images"]
    for batch in (1, 7):
        outputs, _, _ = run_tflite(mlp_bundle.bundle / artifact.file, scale_as_manifest(images[:batch], mlp_bundle.manifest))
        assert outputs.shape == (batch, 10)


def _mlp_int8_options(sample_dataset, **overrides) -> ExportOptions:
    """Export options for the seed MLP's int8 file, calibrated on 100 sample digits."""
    return ExportOptions(
        input_shape=(28, 28), input_spec=InputSpec(shape=[28, 28]), labels=[str(d) for d in range(10)],
        output_kind="probabilities", calibration_images=sample_dataset.x_train[:100], **overrides,
    )


def test_int8_with_uint8_io_takes_raw_pixels_as_they_are(mlp_run, sample_dataset, tmp_path):
    classifier = load_classifier(mlp_run.model_path)
    options = _mlp_int8_options(sample_dataset, int8_io="uint8")
    record = export_tflite_int8(classifier.model, tmp_path / "uint8io.tflite", options)
    assert record.path.is_file() and record.details["io_type"] == "uint8"
    raw = sample_dataset.x_test[:50]
    outputs, input_details, output_details = run_tflite(record.path, raw)
    assert input_details["dtype"] == np.uint8
    assert input_details["quantization"][1] == 0
    assert input_details["quantization"][0] == pytest.approx(1 / 255, rel=1e-6)
    scale, zero_point = output_details["quantization"]
    keras_top1 = classifier.model.predict(raw.astype(np.float32) / 255, verbose=0).argmax(1)
    assert (((outputs.astype(np.float32) - zero_point) * scale).argmax(1) == keras_top1).mean() >= 0.96


def test_int8_weights_are_per_channel_unless_asked_per_tensor(mlp_run, sample_dataset, tmp_path):
    """Per-channel weights carry a scale and zero point per output channel (the size the int8 file pays); per-tensor one."""
    classifier = load_classifier(mlp_run.model_path)
    options = _mlp_int8_options(sample_dataset)
    record = export_tflite_int8(classifier.model, tmp_path / "per_channel.tflite", options)
    assert record.details["weights"] == "int8, per-channel"
    per_tensor = tmp_path / "per_tensor.tflite"
    per_tensor.write_bytes(convert_int8(classifier.model, options, per_channel=False))

    def weight_scales(path) -> list[int]:
        interpreter = Interpreter(model_path=str(path))
        tensors = {tensor["index"]: tensor for tensor in interpreter.get_tensor_details()}
        return [len(tensors[op["inputs"][1]]["quantization_parameters"]["scales"])
                for op in interpreter._get_ops_details() if op["op_name"] == "FULLY_CONNECTED"]

    assert weight_scales(record.path) == [128, 10]
    assert weight_scales(per_tensor) == [1, 1]
    assert per_tensor.stat().st_size < record.path.stat().st_size


def test_int16x8_has_16_bit_activations_8_bit_weights_and_float_io(any_bundle, read_golden, scale_as_manifest):
    artifact, fp32 = any_bundle.manifest.artifact("tflite-int16x8"), any_bundle.manifest.artifact("tflite-fp32")
    assert artifact.status == "pass" and artifact.precision == "int16x8"
    assert artifact.parity["agreement"] >= 0.99 and abs(artifact.parity["accuracy_delta_pp"]) <= 0.5
    assert artifact.bytes <= 0.35 * fp32.bytes
    assert artifact.details["ops"] == "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"
    interpreter = Interpreter(model_path=str(any_bundle.bundle / artifact.file))
    dtypes = [detail["dtype"] for detail in interpreter.get_tensor_details()]
    assert np.int16 in dtypes and np.int8 in dtypes
    golden = read_golden(any_bundle.bundle)
    outputs, input_details, _ = run_tflite(any_bundle.bundle / artifact.file, scale_as_manifest(golden["images"], any_bundle.manifest))
    assert input_details["dtype"] == np.float32
    assert (outputs.argmax(1) == golden["probabilities"].argmax(1)).mean() >= 0.98
