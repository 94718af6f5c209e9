"""Which layer of a full-integer TFLite file diverges first from its float32 twin, measured on the real files.

Both files come from the same graph, so the converter gives a quantized tensor the name of its float
counterpart. With every intermediate tensor kept (`experimental_preserve_all_tensors`), each
quantized op output is dequantized and compared with the float one. An ideal uniform quantizer has
an RMSE of scale/sqrt(12) (≈ 0.29 × scale); the first op well above that is where int8 lost the
model (a bad calibration shows up as early as the input).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.errors import MissingDependencyError
from edgeship.runtime.preprocess import quantize_input, to_model_input
from edgeship.manifest import InputSpec

IDEAL_RMSE_OVER_SCALE = 1 / math.sqrt(12)
DIVERGENCE_BOUND = 2 * IDEAL_RMSE_OVER_SCALE
OP_DETAIL_KEYS = ("index", "op_name", "inputs", "outputs")
"""What each op record of `Interpreter._get_ops_details()` must hold (checked on every call)."""


def interpreter_ops(interpreter: Any) -> list[dict[str, Any]]:
    """A TFLite interpreter's ops in execution order: index, op name, input and output tensor indices.

    No public API lists them: `get_tensor_details` has no ops and `tf.lite.experimental.Analyzer`
    only prints text. The interpreter's own `_get_ops_details()` does, and TensorFlow's
    QuantizationDebugger relies on it as well (its TODO b/177749613). It is pinned here, in one
    place: every record is checked, so a release that renames or reshapes it fails with this error
    instead of a KeyError deep in a trace, and tests/test_quantdebug.py runs it on every installed
    interpreter.
    """
    listing = getattr(interpreter, "_get_ops_details", None)
    where = type(interpreter).__module__
    if listing is None:
        raise MissingDependencyError(
            f"{where}.Interpreter no longer has _get_ops_details(), which tracing int8 files layer by layer needs; "
            "install ai-edge-litert 2.x or tensorflow 2.21, the versions edgeship is tested with"
        )
    ops = listing()
    for op in ops:
        missing = [key for key in OP_DETAIL_KEYS if key not in op]
        if missing:
            raise MissingDependencyError(
                f"{where}.Interpreter._get_ops_details() records lack {', '.join(missing)}; "
                "install ai-edge-litert 2.x or tensorflow 2.21, the versions edgeship is tested with"
            )
    return ops


def _interpreter(path: Path) -> Any:
    import warnings

    from edgeship.runtime.backends.litert import interpreter_module

    module, _, _ = interpreter_module()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
        interpreter = module.Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    return interpreter


def layer_errors(fp32_path: Path, int8_path: Path, images: np.ndarray, spec: InputSpec) -> list[dict[str, Any]]:
    """Per quantized op output, in execution order: mean RMSE / scale against the float tensor of the same name."""
    float_model, quantized_model = _interpreter(fp32_path), _interpreter(int8_path)
    float_input, quantized_input = float_model.get_input_details()[0], quantized_model.get_input_details()[0]
    float_tensors = {detail["name"]: detail["index"] for detail in float_model.get_tensor_details()}
    quantized_details = quantized_model.get_tensor_details()
    input_scale, input_zero_point = quantized_input["quantization"]
    errors: dict[tuple[int, str, str], list[float]] = {}
    for image in images:
        scaled = to_model_input(image[None], spec, tuple(float_input["shape"][1:]))
        float_model.set_tensor(float_input["index"], scaled)
        quantized = quantize_input(image[None], spec, tuple(float_input["shape"][1:]), input_scale, input_zero_point, quantized_input["dtype"])
        quantized_model.set_tensor(quantized_input["index"], quantized.reshape(quantized_input["shape"]))
        float_model.invoke()
        quantized_model.invoke()
        for op in interpreter_ops(quantized_model):
            if op["op_name"] == "DELEGATE":
                continue
            for index in op["outputs"]:
                detail = quantized_details[index]
                scale, zero_point = detail["quantization"]
                if not scale or detail["name"] not in float_tensors:
                    continue
                reference = float_model.get_tensor(float_tensors[detail["name"]])
                value = (quantized_model.get_tensor(index).astype(np.float32) - zero_point) * scale
                if value.shape == reference.shape:
                    rmse = float(np.sqrt(np.mean((value - reference) ** 2)))
                    errors.setdefault((op["index"], op["op_name"], detail["name"]), []).append(rmse / scale)
    return [
        {"op_index": op_index, "op": op_name, "tensor": name, "rmse_over_scale": round(float(np.mean(values)), 4)}
        for (op_index, op_name, name), values in sorted(errors.items())
    ]


def first_divergent_layer(layers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first op whose error is above twice an ideal quantizer's, or None when every op is within it."""
    for layer in layers:
        if layer["rmse_over_scale"] > DIVERGENCE_BOUND:
            return {**layer, "bound": round(DIVERGENCE_BOUND, 4)}
    return None


def onnx_layer_errors(fp32_path: Path, int8_path: Path, images: np.ndarray, spec: InputSpec) -> list[dict[str, Any]]:
    """Per QDQ-quantized activation of an ONNX int8 file, in graph order: mean RMSE / scale against the float file's tensor.

    ONNX Runtime's own tool (`onnxruntime.quantization.qdq_loss_debug`) saves every activation of
    both files and pairs each quantized one (after its DequantizeLinear) with the float file's
    tensor of the same name; the scale is that of the QuantizeLinear in front of it.
    """
    import tempfile

    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    from edgeship.native import native_output_to_log

    quantized = onnx.load(int8_path)
    input_name = quantized.graph.input[0].name
    batch = to_model_input(images, spec, tuple(spec.shape))
    initializers = {init.name: init for init in quantized.graph.initializer}
    scales = {
        node.input[0]: float(numpy_helper.to_array(initializers[node.input[1]]).reshape(-1)[0])
        for node in quantized.graph.node
        if node.op_type == "QuantizeLinear" and node.input[1] in initializers
    }
    producers = {output: (index, node.op_type) for index, node in enumerate(quantized.graph.node) for output in node.output}

    def feed() -> Any:
        return iter([{input_name: batch[index : index + 1]} for index in range(len(batch))])

    with tempfile.TemporaryDirectory(prefix="edgeship-onnx-trace-") as folder:
        float_saved, quantized_saved = Path(folder) / "float.onnx", Path(folder) / "int8.onnx"
        with native_output_to_log("onnxruntime qdq_loss_debug"):
            modify_model_output_intermediate_tensors(str(fp32_path), str(float_saved))
            modify_model_output_intermediate_tensors(str(int8_path), str(quantized_saved))
            float_activations = collect_activations(str(float_saved), feed())
            quantized_activations = collect_activations(str(quantized_saved), feed())
    matched = create_activation_matching(quantized_activations, float_activations)
    layers = []
    for name, pair in matched.items():
        scale = scales.get(name)
        if not scale or "float" not in pair or name not in producers:
            continue
        ratios = [
            float(np.sqrt(np.mean((np.asarray(value) - np.asarray(reference)) ** 2))) / scale
            for value, reference in zip(pair["post_qdq"], pair["float"])
            if np.shape(value) == np.shape(reference)
        ]
        if ratios:
            index, op_type = producers[name]
            layers.append({"op_index": index, "op": op_type, "tensor": name, "rmse_over_scale": round(float(np.mean(ratios)), 4)})
    return sorted(layers, key=lambda layer: layer["op_index"])
