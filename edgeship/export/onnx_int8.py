"""ONNX int8 exporter: ONNX Runtime static quantization in QDQ format, per-channel weights, MinMax calibration by default.

The float model is the bundle's own `model.onnx` when that format is exported too (so both ONNX
files come from one graph), else the model converted here the same way. It goes through
`quant_pre_process` (symbolic shape inference and graph optimisation, as ONNX Runtime recommends
before quantizing), then `quantize_static` calibrates activation ranges on the same real training
images as TFLite int8 (MinMax, or ONNX Runtime's Entropy or Percentile calibrators by option).
Input and output stay float32, so the runtime feeds it exactly like the float model. Nodes named in
`options.float_layers` stay in float (`nodes_to_exclude`).

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
Tensor names are kept as the quantizer writes them, so the layer tracer and the float fallback can
match every quantized tensor to the float model's (shortening them saved another 8% of MobileNetV2's
file, not worth a debugger that can no longer name a layer).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from edgeship.export.base import ExportOptions, ExportRecord, FormatSkipped, check_format_options
from edgeship.native import native_output_to_log
from edgeship.export.onnx import INPUT_NAME, add_metadata, convert_to_onnx
from edgeship.files import atomic_write_bytes

ACTIVATION_TYPE, WEIGHT_TYPE = "uint8", "int8"
QUANT_TYPES = {"uint8": "QUInt8", "int8": "QInt8"}


def quantize_onnx(proto: Any, options: ExportOptions) -> tuple[Any, dict[str, Any]]:
    """The float ModelProto quantized to QDQ int8 on the calibration images, with edgeship's metadata; and how."""
    try:
        import onnxruntime.quantization  # noqa: F401
    except ImportError as exc:
        raise FormatSkipped("onnxruntime is not installed; install it with: pip install 'edgeship[onnx]'") from exc
    import onnx

    check_format_options(options.opset, options.int8_io, options.onnx_calibration)
    with tempfile.TemporaryDirectory(prefix="edgeship-onnx-int8-") as folder:
        prepared_path = prepare(proto, Path(folder))
        quantized = quantize_prepared(prepared_path, Path(folder) / "int8.onnx", options)
    add_metadata(quantized, options)
    onnx.checker.check_model(quantized, full_check=True)
    details: dict[str, Any] = {
        "quantizer": "onnxruntime.quantization.quantize_static",
        "pre_process": "quant_pre_process",
        "quant_format": "QDQ",
        "per_channel": True,
        "activation_type": ACTIVATION_TYPE,
        "weight_type": WEIGHT_TYPE,
        "bias": "float32 (ONNX Runtime >= 1.21 makes it int32 when it loads the file)",
        "calibration": {**options.calibration, "method": options.onnx_calibration},
    }
    if options.float_layers:
        details["float_layers"] = list(options.float_layers)
    return quantized, details


def prepare(proto: Any, folder: Path) -> Path:
    """The float model after `quant_pre_process`, written in `folder`: what quantize_static takes."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    float_path, prepared_path = folder / "float.onnx", folder / "prepared.onnx"
    onnx.save(proto, float_path)
    with native_output_to_log("onnxruntime quantization pre-processing"):
        quant_pre_process(str(float_path), str(prepared_path))
    return prepared_path


def quantize_prepared(prepared_path: Path, quantized_path: Path, options: ExportOptions) -> Any:
    """quantize_static on a pre-processed float model in the form described above; the ModelProto, names as the quantizer gave them."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

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

    with native_output_to_log("onnxruntime quantization"):
        quantize_static(
            str(prepared_path),
            str(quantized_path),
            RealImages(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=getattr(QuantType, QUANT_TYPES[ACTIVATION_TYPE]),
            weight_type=getattr(QuantType, QUANT_TYPES[WEIGHT_TYPE]),
            calibrate_method=getattr(CalibrationMethod, options.onnx_calibration),
            nodes_to_exclude=list(options.float_layers),
            extra_options={"QuantizeBias": False},
        )
    return onnx.load(quantized_path)


def float_onnx(model: Any, options: ExportOptions) -> tuple[Any, dict[str, Any]]:
    """The float ONNX model to quantize: the bundle's model.onnx when made, else a fresh conversion; and where it came from."""
    import onnx

    made = options.made.get("onnx")
    if made is not None:
        return onnx.load(made), {"float_model": f"{made.name} of this bundle"}
    proto, details = convert_to_onnx(model, options)
    return proto, {"float_model": "converted for this file", **details}


def export_onnx_int8(model: Any, path: Path, options: ExportOptions) -> ExportRecord:
    """int8 weights (per channel) and activations with QuantizeLinear/DequantizeLinear pairs around each op."""
    try:
        import onnxruntime.quantization  # noqa: F401
    except ImportError as exc:
        raise FormatSkipped("onnxruntime is not installed; install it with: pip install 'edgeship[onnx]'") from exc
    proto, details = float_onnx(model, options)
    quantized, quantization = quantize_onnx(proto, options)
    atomic_write_bytes(path, quantized.SerializeToString())
    details.update(quantization)
    return ExportRecord(path, details)
