"""ONNX exporters: tf2onnx through a tf.function, checked, dynamic batch, metadata; ONNX Runtime int8 (QDQ)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest

from edgeship.errors import ExportError
from edgeship.export.base import ExportOptions
from edgeship.export.keras_model import load_classifier
from edgeship.export.onnx import export_onnx, refuse_unconverted_ops
from edgeship.manifest import InputSpec


def run_onnx(path, inputs: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: inputs})[0]


def mlp_options(opset: int = 17, simplify: bool = True) -> ExportOptions:
    return ExportOptions(
        input_shape=(28, 28),
        input_spec=InputSpec(shape=[28, 28]),
        labels=[str(d) for d in range(10)],
        output_kind="probabilities",
        calibration_images=np.zeros((1, 28, 28), np.uint8),
        opset=opset,
        simplify_onnx=simplify,
    )


def test_onnx_matches_keras(any_bundle, read_golden, scale_as_manifest):
    artifact = any_bundle.manifest.artifact("onnx")
    assert artifact.has_file and artifact.precision == "fp32"
    assert artifact.parity["agreement"] >= 0.999
    assert artifact.parity["max_abs_diff"] <= 1e-4
    golden = read_golden(any_bundle.bundle)
    outputs = run_onnx(any_bundle.bundle / artifact.file, scale_as_manifest(golden["images"], any_bundle.manifest))
    assert np.abs(outputs - golden["probabilities"]).max() <= 1e-4


def test_onnx_file_is_checked_opset_17_dynamic_batch_with_metadata(mlp_bundle, read_golden, scale_as_manifest):
    model = onnx.load(mlp_bundle.bundle / "model.onnx")
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain: o.version for o in model.opset_import}[""] == 17
    assert model.graph.input[0].name == "image"
    assert model.graph.output[0].name == "probabilities"
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    assert json.loads(metadata["labels"]) == [str(d) for d in range(10)]
    preprocessing = json.loads(metadata["preprocessing"])
    assert preprocessing["input"]["scale"] == pytest.approx(1 / 255)
    assert preprocessing["normalization_in_pixels"] == {"mean": [0.0], "std": [pytest.approx(255.0)]}
    assert preprocessing["color"] == "GRAYSCALE" and preprocessing["output_kind"] == "probabilities"
    assert metadata["output_kind"] == "probabilities"
    assert "10 classes" in model.doc_string and "normalized as (pixel - mean) / std" in model.doc_string
    images = scale_as_manifest(read_golden(mlp_bundle.bundle)["images"], mlp_bundle.manifest)
    for batch in (1, 33):
        assert run_onnx(mlp_bundle.bundle / "model.onnx", images[:batch]).shape == (batch, 10)
    details = mlp_bundle.manifest.artifact("onnx").details
    assert details["opset"] == 17 and details["simplified"]["tool"].startswith("onnxslim")


def test_cnn_graph_is_simplified(cnn_bundle):
    simplified = cnn_bundle.manifest.artifact("onnx").details["simplified"]
    assert simplified["nodes_after"] < simplified["nodes_before"]


def test_opset_option_and_no_simplify(mlp_run, tmp_path):
    classifier = load_classifier(mlp_run.model_path)
    record = export_onnx(classifier.model, tmp_path / "m.onnx", mlp_options(opset=13, simplify=False))
    model = onnx.load(record.path)
    assert {o.domain: o.version for o in model.opset_import}[""] == 13
    assert "simplified" not in record.details


def test_onnx_int8_is_qdq_per_channel_within_one_point(any_bundle, read_golden, scale_as_manifest):
    artifact = any_bundle.manifest.artifact("onnx-int8")
    assert artifact.has_file and artifact.precision == "int8"
    assert abs(artifact.parity["accuracy_delta_pp"]) <= 1.0
    assert artifact.parity["agreement"] >= 0.99
    assert artifact.details["quant_format"] == "QDQ" and artifact.details["per_channel"] is True
    assert artifact.details["calibration"]["method"] == "MinMax"
    assert artifact.details["calibration"]["images"] == 300
    model = onnx.load(any_bundle.bundle / artifact.file)
    op_types = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= op_types
    initializers = {init.name: init for init in model.graph.initializer}
    per_channel_scales = [
        node for node in model.graph.node
        if node.op_type == "DequantizeLinear" and node.input[1] in initializers
        and len(onnx.numpy_helper.to_array(initializers[node.input[1]]).shape) == 1
        and onnx.numpy_helper.to_array(initializers[node.input[1]]).size > 1
    ]
    assert per_channel_scales, "no weight is quantized per channel"
    assert artifact.bytes <= 0.35 * any_bundle.manifest.artifact("onnx").bytes
    golden = read_golden(any_bundle.bundle)
    outputs = run_onnx(any_bundle.bundle / artifact.file, scale_as_manifest(golden["images"], any_bundle.manifest))
    assert (outputs.argmax(1) == golden["probabilities"].argmax(1)).mean() >= 0.98
    assert {prop.key for prop in model.metadata_props} >= {"labels", "preprocessing", "output_kind"}


def test_ops_tf2onnx_could_not_convert_are_refused():
    """tf2onnx's from_function continues on errors; a TensorFlow op left in the graph must fail the format."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("ImageProjectiveTransformV3", ["y"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])],
    )
    with pytest.raises(ExportError, match="could not convert these ops: ImageProjectiveTransformV3"):
        refuse_unconverted_ops(helper.make_model(graph))
