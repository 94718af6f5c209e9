"""What every exporter shares: the options it takes, the record it returns, and the input scaling it applies.

An exporter is `export_<format>(model, path, options) -> ExportRecord`: it takes a Keras model and a
target path, writes one file atomically, and says what it wrote. The bundle calls them through the
registry and never looks inside.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from edgeship.errors import ExportError
from edgeship.manifest import InputSpec

log = logging.getLogger(__name__)

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
    int8_io: str = "uint8"
    simplify_onnx: bool = True
    progress: ProgressCallback | None = None

    def calibration_inputs(self) -> np.ndarray:
        """The calibration images as the model takes them: float32, scaled, in the model's input shape."""
        return model_inputs(self.calibration_images, self.input_spec, self.input_shape)

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


def model_inputs(images: np.ndarray, spec: InputSpec, input_shape: tuple[int, ...]) -> np.ndarray:
    """Raw uint8 pixels -> the float32 tensor the model takes: x = (raw * scale - mean) / std, reshaped."""
    scaled = (images.astype(np.float32) * np.float32(spec.scale) - np.float32(spec.mean)) / np.float32(spec.std)
    return scaled.reshape((len(images), *input_shape))


@contextlib.contextmanager
def native_output_to_log(what: str) -> Iterator[None]:
    """Send what C++ converters print on stdout/stderr (file descriptors 1 and 2) to the debug log.

    The TFLite converter and the calibrator print status lines from C++ that no Python setting
    silences; they would break the command's table. Errors still arrive as Python exceptions.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as capture:
        saved = [os.dup(1), os.dup(2)]
        try:
            for descriptor in (1, 2):
                os.dup2(capture.fileno(), descriptor)
            yield
        finally:
            for descriptor, original in zip((1, 2), saved):
                os.dup2(original, descriptor)
                os.close(original)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace").strip()
            if text:
                log.debug("%s printed:\n%s", what, text)
