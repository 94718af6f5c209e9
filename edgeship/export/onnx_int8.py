"""ONNX int8 exporter: ONNX Runtime static quantization in QDQ format, per-channel weights, MinMax calibration.

The float model from `edgeship.export.onnx` goes through `quant_pre_process` (symbolic shape
inference and graph optimisation, as ONNX Runtime recommends before quantizing), then
`quantize_static` calibrates activation ranges on the same real training images as TFLite int8.
Input and output stay float32, so the runtime feeds it exactly like the float model.

The form is the fastest and smallest one measured with ONNX Runtime's CPU provider that keeps
parity (`benchmarks/int8_speed.py` times the alternatives side by side):

- uint8 activations, int8 symmetric per-channel weights (U8S8). With int8 activations (S8S8) the
  x86 CPU provider fuses the plain convolutions but leaves every depthwise convolution and Add as
  a float op between DequantizeLinear/QuantizeLinear (15 of MobileNetV2's 52 convolutions), which
  made MobileNetV2 int8 slower than fp32. With U8S8 every Conv, Add, pooling and Gemm runs as an
  integer kernel (QLinearConv, QLinearAdd, QGemm). reduce_range and QOperator were no faster.
- float biases (the quantizer's QuantizeBias=False). ONNX Runtime >= 1.21 quantizes them to int32
  when it loads the file (its WeightBiasQuantization pass), so the kernels are the same; the file
  no longer carries a per-channel scale and an int32 zero point beside each int32 bias. Older
  ONNX Runtime runs such convolutions in float, hence the `onnx` extra's floor of 1.21.
- short tensor names. The quantizer names each tensor it adds after the float tensor it quantizes,
  so TensorFlow's long scoped names appear up to six times: in MobileNetV2-0.35, 8% of the float
  file's size. The float model keeps its names; the shapes in value_info go too (ONNX Runtime
  infers them again at load).

Together these take MobileNetV2-0.35 96x96 from 41% to 29% of the fp32 file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from edgeship.export.base import ExportOptions, ExportRecord, FormatSkipped
from edgeship.native import native_output_to_log
from edgeship.export.onnx import INPUT_NAME, add_metadata, convert_to_onnx
from edgeship.files import atomic_write_bytes

CALIBRATION_METHOD = "MinMax"
ACTIVATION_TYPE, WEIGHT_TYPE = "uint8", "int8"
QUANT_TYPES = {"uint8": "QUInt8", "int8": "QInt8"}


def quantize_onnx(proto: Any, options: ExportOptions) -> tuple[Any, dict[str, Any]]:
    """The float ModelProto quantized to QDQ int8 on the calibration images, with edgeship's metadata; and how."""
    try:
        from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise FormatSkipped("onnxruntime is not installed; install it with: pip install 'edgeship[onnx]'") from exc
    import onnx

    inputs = options.calibration_inputs()

    class RealImages(CalibrationDataReader):
        """Feeds the calibration images one at a time and reports progress."""

        def __init__(self) -> None:
            self.index = 0

        def get_next(self) -> dict[str, Any] | None:
            if self.index >= len(inputs):
                return None
            self.index += 1
            options.report("calibrating onnx-int8", self.index, len(inputs))
            return {INPUT_NAME: inputs[self.index - 1 : self.index]}

    with tempfile.TemporaryDirectory(prefix="edgeship-onnx-int8-") as folder:
        float_path, prepared_path, quantized_path = (Path(folder) / name for name in ("float.onnx", "prepared.onnx", "int8.onnx"))
        onnx.save(proto, float_path)
        with native_output_to_log("onnxruntime quantization"):
            quant_pre_process(str(float_path), str(prepared_path))
            quantize_static(
                str(prepared_path),
                str(quantized_path),
                RealImages(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=getattr(QuantType, QUANT_TYPES[ACTIVATION_TYPE]),
                weight_type=getattr(QuantType, QUANT_TYPES[WEIGHT_TYPE]),
                calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHOD),
                extra_options={"QuantizeBias": False},
            )
        quantized = onnx.load(quantized_path)
    compact_graph(quantized.graph)
    add_metadata(quantized, options)
    onnx.checker.check_model(quantized, full_check=True)
    return quantized, {
        "quantizer": "onnxruntime.quantization.quantize_static",
        "pre_process": "quant_pre_process",
        "quant_format": "QDQ",
        "per_channel": True,
        "activation_type": ACTIVATION_TYPE,
        "weight_type": WEIGHT_TYPE,
        "bias": "float32 (ONNX Runtime >= 1.21 makes it int32 when it loads the file)",
        "graph": "tensor names shortened, value_info dropped",
        "calibration": {**options.calibration, "method": CALIBRATION_METHOD},
    }


def export_onnx_int8(model: Any, path: Path, options: ExportOptions) -> ExportRecord:
    """int8 weights (per channel) and activations with QuantizeLinear/DequantizeLinear pairs around each op."""
    try:
        import onnxruntime.quantization  # noqa: F401
    except ImportError as exc:
        raise FormatSkipped("onnxruntime is not installed; install it with: pip install 'edgeship[onnx]'") from exc
    proto, details = convert_to_onnx(model, options)
    quantized, quantization = quantize_onnx(proto, options)
    atomic_write_bytes(path, quantized.SerializeToString())
    details.update(quantization)
    return ExportRecord(path, details)


def compact_graph(graph: Any) -> None:
    """Rename every tensor but the graph's inputs and outputs to t0, t1, ..., number the nodes n0, n1, ... and drop value_info.

    Names are only links inside the graph and value_info only records shapes ONNX Runtime infers
    again when it loads the file, so nothing the runtime sees changes. A graph with subgraphs
    (If, Loop) keeps its names: their bodies may refer to outer ones.
    """
    del graph.value_info[:]
    if any(attribute.g.node or attribute.graphs for node in graph.node for attribute in node.attribute):
        return
    kept = {value.name for value in (*graph.input, *graph.output)}
    short: dict[str, str] = {}

    def rename(name: str) -> str:
        if not name or name in kept:
            return name
        return short.setdefault(name, f"t{len(short)}")

    for index, node in enumerate(graph.node):
        node.name = f"n{index}"
        for names in (node.input, node.output):
            renamed = [rename(name) for name in names]
            del names[:]
            names.extend(renamed)
    for initializer in graph.initializer:
        initializer.name = rename(initializer.name)
