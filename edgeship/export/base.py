"""What every exporter shares: the options it takes, the record it returns, and the input scaling it applies.

An exporter is `export_<format>(model, path, options) -> ExportRecord`: it takes a Keras model and a
target path, writes one file atomically, and says what it wrote. The bundle calls them through the
registry and never looks inside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeship.errors import ExportError, UsageError
from edgeship.manifest import InputSpec

MIN_OPSET, MAX_OPSET = 13, 18
"""The ONNX opsets tf2onnx and our ONNX Runtime quantization are tested with."""
INT8_IO_TYPES = ("uint8", "int8")
"""Input/output types of a full-integer TFLite file."""
ONNX_CALIBRATION_METHODS = ("MinMax", "Entropy", "Percentile")
"""ONNX Runtime's calibrators for onnx-int8 (onnxruntime.quantization.CalibrationMethod)."""


def check_format_options(opset: int, int8_io: str, onnx_calibration: str = "MinMax") -> None:
    """Refuse an ONNX opset, int8 I/O type or ONNX calibration method that cannot work: the bundle checks before any heavy work, exporters again when called alone."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UsageError(f"--opset {opset} is not supported; choose {MIN_OPSET}..{MAX_OPSET} (default 17)")
    if int8_io not in INT8_IO_TYPES:
        raise UsageError(f"--int8-io must be one of {', '.join(INT8_IO_TYPES)}, got {int8_io!r}")
    if onnx_calibration not in ONNX_CALIBRATION_METHODS:
        raise UsageError(f"--onnx-calibration must be one of {', '.join(ONNX_CALIBRATION_METHODS)}, got {onnx_calibration!r}")


ProgressCallback = Callable[[str, int, int], None]


@dataclass
class ExportOptions:
    """What an exporter needs besides the model: the input it takes, calibration images and the format knobs."""

    input_shape: tuple[int, ...]
    input_spec: InputSpec
    labels: list[str]
    output_kind: str
    calibration_images: np.ndarray  # raw uint8 training images, (N, H, W)
    calibration: dict[str, Any] = field(default_factory=dict)
    opset: int = 17
    int8_io: str = "int8"
    simplify_onnx: bool = True
    model_name: str = "classifier"
    model_version: str = ""
    progress: ProgressCallback | None = None
    onnx_calibration: str = "MinMax"
    float_layers: tuple[str, ...] = ()
    """Layers to keep in float in an int8 file (the format's own names: TFLite output tensors, ONNX node names)."""
    made: dict[str, Path] = field(default_factory=dict)
    """Files this export has already written, by format name: onnx-int8 quantizes the bundle's own model.onnx."""

    def calibration_inputs(self) -> np.ndarray:
        """The calibration images as the model takes them: float32, scaled, in the model's input shape."""
        return self.input_spec.to_model_input(self.calibration_images, self.input_shape)

    def report(self, stage: str, done: int, total: int) -> None:
        """Tell the caller how far a long step (calibration) has come."""
        if self.progress is not None:
            self.progress(stage, done, total)


@dataclass
class ExportRecord:
    """What an exporter wrote: the file, and facts about how (calibration, simplification, compiler log)."""

    path: Path
    details: dict[str, Any] = field(default_factory=dict)


class FormatSkipped(ExportError):
    """A format that cannot be made on this machine (a missing tool): listed as skipped with the reason."""
