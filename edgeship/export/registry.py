"""The export formats by name: one line a format, naming its family, precision, file name and exporter.

A new format is one exporter module, one line here and its tests. Exporters are named as
"module:function" and imported when a format is exported, so reading this registry (for `--help`
and option checks) imports nothing heavy.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from edgeship.errors import UsageError

Exporter = Callable[..., Any]


@dataclass(frozen=True)
class ExportFormat:
    """One format: its name on the command line, the manifest's family and precision, its file and exporter."""

    name: str
    family: str
    precision: str
    filename: str
    exporter: str | Exporter
    parity_measurable: bool = True
    source: str | None = None
    """The format whose file this one is made from when both are exported (exported first)."""
    ranker: str | Callable[..., list[Any]] | None = None
    """Ranks the file's quantized tensors for float fallback (None: this format cannot keep layers in float)."""

    def export(self, *args: Any) -> Any:
        """Run this format's exporter, importing its module on first use."""
        return _resolve(self.exporter)(*args)

    def rank(self, *args: Any) -> Any:
        """Run this format's float-fallback ranker, importing its module on first use."""
        if self.ranker is None:
            raise UsageError(f"{self.name} cannot keep layers in float")
        return _resolve(self.ranker)(*args)


def _resolve(function: str | Callable[..., Any]) -> Callable[..., Any]:
    """A function named as "module:function", imported now; a callable as it is."""
    if isinstance(function, str):
        module, _, name = function.partition(":")
        return getattr(importlib.import_module(module), name)
    return function


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("tflite-fp32", "tflite", "fp32", "model_fp32.tflite", "edgeship.export.tflite:export_tflite_fp32"),
        ExportFormat("tflite-fp16", "tflite", "fp16", "model_fp16.tflite", "edgeship.export.tflite:export_tflite_fp16"),
        ExportFormat("tflite-dynamic", "tflite", "dynamic-int8", "model_dynamic.tflite", "edgeship.export.tflite:export_tflite_dynamic"),
        ExportFormat(
            "tflite-int8", "tflite", "int8", "model_int8.tflite", "edgeship.export.tflite:export_tflite_int8",
            ranker="edgeship.export.fallback:rank_tflite",
        ),
        ExportFormat(
            "tflite-int8-uint8io", "tflite", "int8", "model_int8_uint8io.tflite", "edgeship.export.tflite:export_tflite_int8_uint8io",
            ranker="edgeship.export.fallback:rank_tflite",
        ),
        ExportFormat("tflite-int16x8", "tflite", "int16x8", "model_int16x8.tflite", "edgeship.export.tflite:export_tflite_int16x8"),
        ExportFormat("onnx", "onnx", "fp32", "model.onnx", "edgeship.export.onnx:export_onnx"),
        ExportFormat(
            "onnx-int8", "onnx", "int8", "model_int8.onnx", "edgeship.export.onnx_int8:export_onnx_int8", source="onnx",
            ranker="edgeship.export.fallback:rank_onnx",
        ),
        ExportFormat("onnx-ort", "ort", "fp32", "model.ort", "edgeship.export.ort:export_ort"),
        ExportFormat("onnx-ort-int8", "ort", "int8", "model_int8.ort", "edgeship.export.ort:export_ort_int8"),
        ExportFormat("edgetpu", "edgetpu", "int8", "model_int8_edgetpu.tflite", "edgeship.export.edgetpu:export_edgetpu", parity_measurable=False),
    )
}


def parse_formats(formats: str | Iterable[str] | None) -> list[str]:
    """Format names from "a,b" or a list, checked against the registry; None means all of them, in registry order."""
    if formats is None:
        return list(FORMATS)
    names = [part.strip() for part in formats.split(",")] if isinstance(formats, str) else [str(f).strip() for f in formats]
    names = [name for name in names if name]
    if not names:
        raise UsageError(f"no format given; choose from: {', '.join(FORMATS)}")
    unknown = [name for name in names if name not in FORMATS]
    if unknown:
        raise UsageError(f"unknown format {', '.join(repr(n) for n in unknown)}; valid formats: {', '.join(FORMATS)}")
    return list(dict.fromkeys(names))


def in_making_order(names: list[str]) -> list[str]:
    """The formats in the order given, except that a format made from another's file comes after that one."""
    ordered: list[str] = []
    for name in names:
        source = FORMATS[name].source
        if source in names and source not in ordered:
            ordered.append(source)
        if name not in ordered:
            ordered.append(name)
    return ordered
