"""The export stage: a Keras classifier to TFLite, ONNX and Edge TPU files in a bundle with manifest.json.

One module a format (tflite, onnx, onnx_int8, edgetpu), the registry that names them, the int8
rescue (equalize, fallback, rescue with its RescuePolicy), and `export_bundle`, which exports,
checks each file in its interpreter, rescues quantized files outside their budget and writes the bundle.
TensorFlow, tf2onnx and ONNX Runtime are imported only when an export runs; the names below load
on first use (PEP 562), so reading the registry for `--help` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FORMATS", "ExportResult", "RescuePolicy", "SummaryRow", "export_bundle", "parse_formats"]


def __getattr__(name: str) -> Any:
    if name in ("ExportResult", "SummaryRow", "export_bundle"):
        from edgeship.export import bundle

        return getattr(bundle, name)
    if name == "RescuePolicy":
        from edgeship.export import rescue

        return rescue.RescuePolicy
    if name in ("FORMATS", "parse_formats"):
        from edgeship.export import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'edgeship.export' has no attribute {name!r}")
