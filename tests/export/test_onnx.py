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
from edgeship.export.onnx_int8 import export_onnx_int8
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
    assert artifact.details["activation_type"] == "uint8" and artifact.details["weight_type"] == "int8"
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
    assert artifact.bytes <= 0.30 * any_bundle.manifest.artifact("onnx").bytes
    golden = read_golden(any_bundle.bundle)
    outputs = run_onnx(any_bundle.bundle / artifact.file, scale_as_manifest(golden["images"], any_bundle.manifest))
    assert (outputs.argmax(1) == golden["probabilities"].argmax(1)).mean() >= 0.98
    assert {prop.key for prop in model.metadata_props} >= {"labels", "preprocessing", "output_kind"}


def fused_op_types(path) -> list[str]:
    """The op types ONNX Runtime's CPU provider runs for `path` after its graph optimisations (what the runtime gets)."""
    options = onnxruntime.SessionOptions()
    options.optimized_model_filepath = str(path) + ".optimized"
    onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]


@pytest.fixture(scope="module")
def mobile_block_int8(tmp_path_factory, sample_dataset):
    """A MobileNetV2-style block (stem, expand, depthwise, project, residual Add, pooling, dense), trained 1 epoch, in fp32 and int8 ONNX."""
    import keras

    keras.utils.set_random_seed(4)
    layers = keras.layers
    image = keras.Input((28, 28, 1))
    stem = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu6")(image)
    expanded = layers.Conv2D(48, 1, activation="relu6")(stem)
    depthwise = layers.ReLU(6.0)(layers.BatchNormalization()(layers.DepthwiseConv2D(3, padding="same")(expanded)))
    projected = layers.BatchNormalization()(layers.Conv2D(16, 1)(depthwise))
    block = layers.Add()([stem, projected])
    probabilities = layers.Dense(10, activation="softmax")(layers.GlobalAveragePooling2D()(block))
    model = keras.Model(image, probabilities)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(sample_dataset.x_train[..., None] / 255, sample_dataset.y_train, epochs=1, batch_size=64, verbose=0)
    options = ExportOptions(
        input_shape=(28, 28, 1),
        input_spec=InputSpec(shape=[28, 28, 1]),
        labels=[str(d) for d in range(10)],
        output_kind="probabilities",
        calibration_images=sample_dataset.x_train[:64],
        calibration={"images": 64},
    )
    folder = tmp_path_factory.mktemp("mobile-block")
    return export_onnx(model, folder / "model.onnx", options).path, export_onnx_int8(model, folder / "model_int8.onnx", options)


def test_onnx_int8_runs_every_convolution_add_and_dense_as_an_integer_kernel(mobile_block_int8):
    """int8 activations left depthwise convolutions and Adds in float on x86 (slower than fp32); uint8 ones fuse them all."""
    _, record = mobile_block_int8
    fused = fused_op_types(record.path)
    assert not {"Conv", "Add", "Gemm", "MatMul"} & set(fused), fused
    assert fused.count("QLinearConv") == 4 and "QLinearAdd" in fused and "QGemm" in fused
    assert fused.count("QuantizeLinear") == 1 and fused.count("DequantizeLinear") == 1


def test_onnx_int8_keeps_float_biases_and_the_runtimes_names(mobile_block_int8, test_images):
    """Float biases (ONNX Runtime makes them int32 at load); the input/output names and the answers stay."""
    float_path, record = mobile_block_int8
    model = onnx.load(record.path)
    assert [value.name for value in model.graph.input] == ["image"]
    assert [value.name for value in model.graph.output] == ["probabilities"]
    assert not any(init.data_type == onnx.TensorProto.INT32 for init in model.graph.initializer), "biases stay float"
    assert record.details["bias"].startswith("float32")
    inputs = test_images[:200, :, :, None].astype(np.float32) / 255
    float_outputs, int8_outputs = run_onnx(float_path, inputs), run_onnx(record.path, inputs)
    assert (float_outputs.argmax(1) == int8_outputs.argmax(1)).mean() >= 0.95


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


def test_onnx_int8_quantizes_the_bundles_own_model_onnx(mlp_bundle):
    """Both ONNX files come from one graph: every weight of model_int8.onnx dequantizes to the weight of model.onnx it replaced."""
    details = mlp_bundle.manifest.artifact("onnx-int8").details
    assert details["float_model"] == "model.onnx of this bundle"
    float_weights = {
        init.name: onnx.numpy_helper.to_array(init) for init in onnx.load(mlp_bundle.bundle / "model.onnx").graph.initializer
    }
    quantized = onnx.load(mlp_bundle.bundle / "model_int8.onnx")
    initializers = {init.name: onnx.numpy_helper.to_array(init) for init in quantized.graph.initializer}
    matched = 0
    for node in quantized.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in initializers:
            continue
        name = node.input[0].removesuffix("_quantized")
        if name not in float_weights or float_weights[name].ndim < 2:
            continue
        scale = initializers[node.input[1]]
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * float_weights[name].ndim
        shape[axis] = -1
        dequantized = initializers[node.input[0]].astype(np.float32) * scale.reshape(shape)
        np.testing.assert_allclose(dequantized, float_weights[name], atol=float(scale.max()) / 2 + 1e-7)
        matched += 1
    assert matched == 2


def test_onnx_int8_alone_converts_its_own_float_model(mlp_run, tmp_path):
    from edgeship.export import export_bundle

    result = export_bundle(mlp_run.model_path, tmp_path / "bundle", formats="onnx-int8", say=lambda line: None)
    artifact = result.manifest.artifact("onnx-int8")
    assert artifact.status == "pass" and artifact.details["float_model"].startswith("converted for this file")
    assert artifact.details["converter"] == "tf2onnx.convert.from_function"
    assert not (tmp_path / "bundle" / "model.onnx").exists()


def test_a_format_made_from_another_comes_after_it():
    from edgeship.export.registry import in_making_order

    assert in_making_order(["onnx-int8", "tflite-fp32", "onnx"]) == ["onnx", "onnx-int8", "tflite-fp32"]
    assert in_making_order(["onnx-int8"]) == ["onnx-int8"]


def test_the_onnx_calibration_method_and_image_count_are_options_and_recorded(mlp_run, sample_dataset, tmp_path):
    from edgeship.errors import UsageError
    from edgeship.export import export_bundle

    result = export_bundle(
        mlp_run.model_path, tmp_path / "bundle", formats="onnx-int8", dataset=sample_dataset,
        onnx_calibration="Percentile", calibration_images=100, say=lambda line: None,
    )
    artifact = result.manifest.artifact("onnx-int8")
    assert artifact.status == "pass" and artifact.parity["agreement"] >= 0.99
    assert artifact.details["calibration"]["method"] == "Percentile" and artifact.details["calibration"]["images"] == 100
    assert result.manifest.dataset["calibration"]["images"] == 100
    with pytest.raises(UsageError, match="--onnx-calibration must be one of MinMax, Entropy, Percentile, got 'KL'"):
        export_bundle(mlp_run.model_path, tmp_path / "other", formats="onnx-int8", dataset=sample_dataset, onnx_calibration="KL")
    assert not (tmp_path / "other").exists()


def load_int8_benchmark():
    """benchmarks/int8_speed.py as a module: it holds the channel padding that the ONNX int8 timings compare against."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "int8_speed.py"
    spec = importlib.util.spec_from_file_location("int8_speed", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_padding_the_input_channels_keeps_the_float_and_the_int8_answers(cnn_bundle, sample_dataset, read_golden, scale_as_manifest, tmp_path):
    """The benchmark's padded form is a fair comparison: zero channels change neither the float model nor its int8 integers; names stay."""
    from edgeship.export.onnx_int8 import prepare, quantize_prepared

    benchmark = load_int8_benchmark()
    manifest = cnn_bundle.manifest
    prepared_path = prepare(onnx.load(cnn_bundle.bundle / "model.onnx"), tmp_path)
    padded = onnx.load(prepared_path)
    convs = [node.name for node in padded.graph.node if node.op_type == "Conv"]
    assert benchmark.pad_input_channels(padded) == convs[:1], "only the first conv (1 input channel) needs padding"
    onnx.checker.check_model(padded, full_check=True)
    onnx.save(padded, tmp_path / "padded.onnx")
    unpadded_names = {name for node in onnx.load(prepared_path).graph.node for name in node.output}
    assert unpadded_names <= {name for node in padded.graph.node for name in node.output}

    digits = scale_as_manifest(read_golden(cnn_bundle.bundle)["images"], manifest)
    reference = run_onnx(cnn_bundle.bundle / "model.onnx", digits)
    assert np.abs(run_onnx(tmp_path / "padded.onnx", digits) - reference).max() < 1e-5

    options = ExportOptions(
        input_shape=tuple(manifest.input.shape), input_spec=manifest.input, labels=manifest.labels,
        output_kind="probabilities", calibration_images=sample_dataset.x_train[:64], calibration={"images": 64},
    )
    quantize_prepared(prepared_path, tmp_path / "int8.onnx", options)
    quantized = quantize_prepared(tmp_path / "padded.onnx", tmp_path / "int8_padded.onnx", options)
    initializers = {init.name: onnx.numpy_helper.to_array(init) for init in quantized.graph.initializer}
    scales = {node.input[0]: float(initializers[node.input[1]]) for node in quantized.graph.node if node.op_type == "QuantizeLinear"}
    source = next(name for name in scales if name + "_channels_padded" in scales)
    assert scales[source + "_channels_padded"] == scales[source], "the padded tensor shares its source's scale"
    int8, int8_padded = run_onnx(tmp_path / "int8.onnx", digits), run_onnx(tmp_path / "int8_padded.onnx", digits)
    assert np.abs(int8_padded - int8).max() <= 1 / 255 + 1e-6
    assert (int8_padded.argmax(1) == reference.argmax(1)).mean() >= 0.98
