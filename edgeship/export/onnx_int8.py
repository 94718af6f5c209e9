"""ONNX int8 exporter: ONNX Runtime static quantization in QDQ format, per-channel weights, MinMax calibration.

The float model from `edgeship.export.onnx` goes through `quant_pre_process` (symbolic shape
inference and graph optimisation, as ONNX Runtime recommends before quantizing), then
`quantize_static` calibrates activation ranges on the same real training images as TFLite int8.
Input and output stay float32, so the runtime feeds it exactly like the float model.
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
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHOD),
            )
        quantized = onnx.load(quantized_path)
    add_metadata(quantized, options)
    onnx.checker.check_model(quantized, full_check=True)
    return quantized, {
        "quantizer": "onnxruntime.quantization.quantize_static",
        "pre_process": "quant_pre_process",
        "quant_format": "QDQ",
        "per_channel": True,
        "activation_type": "int8",
        "weight_type": "int8",
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
