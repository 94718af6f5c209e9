"""ORT Mobile exporters: the ONNX models (fp32 and QDQ int8) in ONNX Runtime's own `.ort` format.

`onnxruntime.tools.convert_onnx_models_to_ort` (ONNX Runtime's documented path to mobile) writes
the `.ort` file, optimized at the fixed "all" level, and the required-operators config that a
reduced ONNX Runtime build (`build.sh --minimal_build --include_ops_by_config`) takes; the config
goes into the bundle beside the model. `check_onnx_model_mobile_usability`'s verdict, how well
the NNAPI (Android) and CoreML (iOS) execution providers would take the graph, is recorded too:
its partition checks are called directly so the manifest gets the figures, not a log to parse.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path
from typing import Any

from edgeship.errors import ExportError
from edgeship.export.base import ExportOptions, ExportRecord, FormatSkipped
from edgeship.export.onnx import convert_to_onnx
from edgeship.export.onnx_int8 import quantize_onnx
from edgeship.files import atomic_write_bytes, sha256_file
from edgeship.native import native_output_to_log

log = logging.getLogger(__name__)

CONFIG_SUFFIX = ".required_operators.config"


def _tools() -> tuple[Any, Any]:
    try:
        from onnxruntime.tools import convert_onnx_models_to_ort as convert_tool
        from onnxruntime.tools.mobile_helpers import usability_checker
    except ImportError as exc:
        raise FormatSkipped("onnxruntime is not installed; install it with: pip install 'edgeship[onnx]'") from exc
    return convert_tool, usability_checker


def config_path(model_path: Path) -> Path:
    """Where the required-operators config of an .ort file goes: beside it, named after it."""
    return model_path.with_name(model_path.stem + CONFIG_SUFFIX)


def write_ort(proto: Any, path: Path, details: dict[str, Any]) -> ExportRecord:
    """Convert an ONNX ModelProto to `path` (.ort) and its required-operators config; record the mobile verdict."""
    import onnx

    convert_tool, usability_checker = _tools()
    with tempfile.TemporaryDirectory(prefix="edgeship-ort-") as folder:
        source = Path(folder) / "model.onnx"
        onnx.save(proto, source)
        out = Path(folder) / "out"
        with native_output_to_log("convert_onnx_models_to_ort"), contextlib.redirect_stdout(io.StringIO()):
            convert_tool.convert_onnx_models_to_ort(
                source, output_dir=out, optimization_styles=[convert_tool.OptimizationStyle.Fixed]
            )
        converted = out / "model.ort"
        configs = sorted(out.glob("*.config"))
        if not converted.is_file() or not configs:
            raise ExportError(f"convert_onnx_models_to_ort wrote no .ort file or config (it wrote: {sorted(p.name for p in out.iterdir())})")
        verdict = mobile_usability(source, usability_checker)
        config = config_path(path)
        atomic_write_bytes(config, configs[0].read_bytes())
        atomic_write_bytes(path, converted.read_bytes())
    details.update(
        {
            "converter": "onnxruntime.tools.convert_onnx_models_to_ort",
            "optimization_style": "Fixed",
            "required_operators": {"file": config.name, "sha256": sha256_file(config), "bytes": config.stat().st_size},
            "mobile_usability": verdict,
        }
    )
    return ExportRecord(path, details)


def mobile_usability(model_path: Path, usability_checker: Any) -> dict[str, Any]:
    """check_onnx_model_mobile_usability's verdict per execution provider, as is and with fixed input shapes.

    The same checks `python -m onnxruntime.tools.check_onnx_model_mobile_usability` logs (after its
    basic-level optimization), called one by one so each verdict comes with its partition figures.
    """
    from onnxruntime.tools.onnx_model_utils import ModelProtoWithShapeInfo, optimize_model

    checks = {
        "NNAPI": lambda model, fixed: usability_checker.check_nnapi_partitions(model, fixed),
        "CoreML NeuralNetwork": lambda model, fixed: usability_checker.check_coreml_partitions(
            model, fixed, "coreml_supported_neuralnetwork_ops.md"
        ),
        "CoreML MLProgram": lambda model, fixed: usability_checker.check_coreml_partitions(
            model, fixed, "coreml_supported_mlprogram_ops.md"
        ),
    }
    with tempfile.TemporaryDirectory(prefix="edgeship-usability-") as folder:
        optimized = Path(folder) / model_path.name
        with native_output_to_log("onnxruntime's model optimizer"):
            optimize_model(model_path, optimized, use_external_initializers=True)
        model = ModelProtoWithShapeInfo(optimized).model_with_shape_info
        verdict: dict[str, Any] = {"tool": "onnxruntime.tools.check_onnx_model_mobile_usability"}
        for provider, check in checks.items():
            as_is = check(model, True)
            with_fixed_shapes = check(model, False)
            verdict[provider] = {
                "as_is": as_is.suitability().name,
                "with_fixed_input_shapes": with_fixed_shapes.suitability().name,
                "nodes": as_is.num_nodes,
                "supported_nodes": as_is.num_supported_nodes,
                "partitions": as_is.num_partitions,
                "supported_nodes_with_fixed_shapes": with_fixed_shapes.num_supported_nodes,
                "partitions_with_fixed_shapes": with_fixed_shapes.num_partitions,
                "unsupported_ops": sorted(as_is.unsupported_ops),
            }
    verdict["summary"] = "; ".join(
        f"{name}: {entry['as_is']} as is, {entry['with_fixed_input_shapes']} with fixed input shapes"
        for name, entry in verdict.items()
        if isinstance(entry, dict)
    )
    return verdict


def export_ort(model: Any, path: Path, options: ExportOptions) -> ExportRecord:
    """The float32 ONNX model as an ORT Mobile .ort file."""
    _tools()
    proto, details = convert_to_onnx(model, options)
    return write_ort(proto, path, details)


def export_ort_int8(model: Any, path: Path, options: ExportOptions) -> ExportRecord:
    """The QDQ int8 ONNX model (as onnx-int8 makes it) as an ORT Mobile .ort file."""
    _tools()
    proto, details = convert_to_onnx(model, options)
    quantized, quantization = quantize_onnx(proto, options)
    return write_ort(quantized, path, {**details, **quantization})
