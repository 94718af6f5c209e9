"""The export stage: a Keras classifier to TFLite, ONNX and Edge TPU files in a bundle with manifest.json.

One module a format (tflite, onnx, onnx_int8, edgetpu), the registry that names them, and
`export_bundle`, which exports, checks each file in its interpreter and writes the bundle.
TensorFlow, tf2onnx and ONNX Runtime are imported only when an export runs.
"""

from edgeship.export.bundle import ExportResult, SummaryRow, export_bundle
from edgeship.export.registry import FORMATS, parse_formats

__all__ = ["FORMATS", "ExportResult", "SummaryRow", "export_bundle", "parse_formats"]
