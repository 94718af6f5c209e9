"""Float fallback: each debugger ranks the tensors int8 ruins, and both int8 exporters keep the layers around them in float."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest

from edgeship.export.fallback import rank_onnx, rank_tflite, signal_lost


def test_signal_lost_is_the_share_of_each_channel_wiped_out():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(64, 8)).astype(np.float32)
    assert signal_lost(values, values) == 0.0
    wiped = values.copy()
    wiped[:, :6] = 0.0
    assert signal_lost(values, wiped) == pytest.approx(6 / 8)
    outlier = values.copy()
    outlier[:, 0] *= 3000
    step = np.abs(outlier).max() / 127
    quantized = np.round(outlier / step) * step
    assert signal_lost(outlier, quantized) > 0.8, "a per-tensor scale set by one channel wipes the others out"
    assert signal_lost(np.zeros((4, 3)), np.ones((4, 3))) == 0.0
    garbage = values.copy()
    garbage[3, 2] = np.nan
    assert signal_lost(garbage, garbage) == 0.0 and signal_lost(garbage, wiped) == pytest.approx(6 / 8)


@pytest.fixture(scope="module")
def outlier_options(outlier_mlp_path, sample_dataset):
    from edgeship.export.base import ExportOptions
    from edgeship.manifest import InputSpec

    return ExportOptions(
        input_shape=(28, 28), input_spec=InputSpec(shape=[28, 28]), labels=[str(d) for d in range(10)],
        output_kind="probabilities", calibration_images=sample_dataset.x_train[:200],
    )


@pytest.fixture(scope="module")
def outlier_model(outlier_mlp_path):
    import keras

    return keras.saving.load_model(outlier_mlp_path, compile=False)


def test_the_tflite_debugger_ranks_the_outlier_layers_output_worst(outlier_model, outlier_options):
    ranked = rank_tflite(outlier_model, outlier_options, ())
    worst = ranked[0]
    assert worst.signal_lost >= 0.9 and "dense_1/" in worst.tensor and "Relu" in worst.tensor
    assert worst.ops == ["FULLY_CONNECTED", "FULLY_CONNECTED"], "the layer making the tensor and the one reading it"
    assert ranked[-1].signal_lost < 0.05
    again = rank_tflite(outlier_model, outlier_options, tuple(worst.layers))
    assert worst.tensor not in {candidate.tensor for candidate in again}, "a tensor already in float is not ranked again"


def test_the_onnx_debugger_ranks_a_tensor_of_the_outlier_path_worst(outlier_model, outlier_options):
    ranked = rank_onnx(outlier_model, outlier_options, ())
    worst = ranked[0]
    # With uint8 activations the scaled units' range swamps the hidden layer and, through it, the logits.
    assert worst.signal_lost >= 0.9 and "dense_1" in worst.tensor
    assert "Gemm" in worst.ops


def test_tflite_int8_keeps_the_named_layers_in_float_and_its_int8_io(outlier_model, outlier_options, tmp_path):
    from edgeship.export.tflite import export_tflite_int8
    from edgeship.runtime.backends.litert import interpreter_module

    layers = tuple(rank_tflite(outlier_model, outlier_options, ())[0].layers)
    record = export_tflite_int8(outlier_model, tmp_path / "m.tflite", dataclasses.replace(outlier_options, float_layers=layers))
    assert record.details["float_layers"] == list(layers)
    module, _, _ = interpreter_module()
    interpreter = module.Interpreter(model_path=str(tmp_path / "m.tflite"))
    interpreter.allocate_tensors()
    assert interpreter.get_input_details()[0]["dtype"] == np.int8 and interpreter.get_output_details()[0]["dtype"] == np.int8
    dtypes = {detail["name"]: detail["dtype"] for detail in interpreter.get_tensor_details()}
    assert all(dtypes[name] == np.float32 for name in layers), "the kept layers compute in float"


def test_onnx_int8_excludes_the_named_nodes(outlier_model, outlier_options, tmp_path):
    from edgeship.export.onnx_int8 import export_onnx_int8

    layers = tuple(rank_onnx(outlier_model, outlier_options, ())[0].layers)
    record = export_onnx_int8(outlier_model, tmp_path / "m.onnx", dataclasses.replace(outlier_options, float_layers=layers))
    assert record.details["float_layers"] == list(layers)
    graph = onnx.load(tmp_path / "m.onnx").graph
    producers = {output: node for node in graph.node for output in node.output}
    for node in graph.node:
        if node.name in layers and node.op_type == "Gemm":
            weight = producers.get(node.input[1])
            assert weight is None or weight.op_type != "DequantizeLinear", f"{node.name} reads float weights"
